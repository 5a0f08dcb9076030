// Package demoagency is a stand-in for a neighbouring institution's
// agency-soap/v1 endpoint (TH:SSO), for dev mode (gateway dev
// --with-demo-agency): it verifies Perkeso's signed requests and answers
// with signed acknowledgements, so an operator can watch an outbound round
// trip on one machine. It is not a partner implementation to deploy.
package demoagency

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/beevik/etree"
	"github.com/google/uuid"

	"github.com/perkeso/jambatan/adapters/agencysoap"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

// Agency is a running demo endpoint.
type Agency struct {
	URL      string
	Received chan string // operation names, for tests and the console
	srv      *http.Server
}

// Start serves on 127.0.0.1 (any port) with mutual TLS: the server
// certificate, the CA whose clients (the gateway) it accepts, its own
// signing key, and the signing certificate it trusts (Perkeso's).
func Start(serverCert tls.Certificate, clientCAs *x509.CertPool, own *wssec.Signer, perkeso *x509.Certificate, log *slog.Logger) (*Agency, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	a := &Agency{URL: "https://" + ln.Addr().String() + "/soap/v1/exchange", Received: make(chan string, 64)}
	v := &wssec.Verifier{Trust: func(c *x509.Certificate) error {
		if !c.Equal(perkeso) {
			return errors.New("not Perkeso's signing certificate")
		}
		return nil
	}}
	a.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, TLSConfig: &tls.Config{Certificates: []tls.Certificate{serverCert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs, MinVersion: tls.VersionTLS12},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			doc, err := wssec.Parse(raw, wssec.Limits{})
			if err != nil {
				http.Error(w, "bad envelope", http.StatusBadRequest)
				return
			}
			res, verr := v.Verify(doc)
			if verr != nil {
				log.Warn("demo agency: request not verified", "err", verr)
				http.Error(w, verr.Error(), http.StatusBadRequest)
				return
			}
			op := res.BodyChild.Tag
			name, ok := agencysoap.Responses[op]
			if !ok {
				http.Error(w, "unknown operation", http.StatusBadRequest)
				return
			}
			out := Response(res.BodyChild, name, "TH:SSO:DEMO-"+uuid.NewString()[:8], func(resp, _ *etree.Element) {
				if name != "InformationReply" {
					resp.CreateElement("xb:ReceivedAt").SetText(time.Now().UTC().Format("2006-01-02T15:04:05Z"))
					return
				}
				rep := resp.CreateElement("xb:Reply")
				for _, it := range res.BodyChild.FindElements("./Request/Item") {
					ri := rep.CreateElement("xb:Item")
					ri.CreateElement("xb:Code").SetText(it.FindElement("./Code").Text())
					ri.CreateElement("xb:Outcome").SetText("NOT_HELD")
				}
			})
			if err := own.Sign(out); err != nil {
				http.Error(w, "signing failed", http.StatusInternalServerError)
				return
			}
			b, _ := out.WriteToBytes()
			w.Header().Set("Content-Type", "text/xml; charset=utf-8")
			_, _ = w.Write(b)
			select {
			case a.Received <- op:
			default:
			}
			log.Info("demo agency TH:SSO answered", "operation", op)
		})}
	go func() { _ = a.srv.Serve(tls.NewListener(ln, a.srv.TLSConfig)) }()
	return a, nil
}

// Response builds TH:SSO's unsigned answer name to the request operation
// element req: the reply header (a new MessageId, InReplyTo, the request's
// CaseId — or newCaseID for a notification, whose receiver assigns it,
// agency-soap/v1 §6.2 — sender, receiver, SentAt), then fill adds the body
// of the answer. Tests build broken answers with it too.
func Response(req *etree.Element, name, newCaseID string, fill func(resp, hdr *etree.Element)) *etree.Document {
	out := etree.NewDocument()
	env := out.CreateElement("soap:Envelope")
	env.CreateAttr("xmlns:soap", wssec.NSSoap11)
	env.CreateAttr("xmlns:xb", "urn:xb-injury:exchange:v1")
	resp := env.CreateElement("soap:Body").CreateElement("xb:" + name)
	h := resp.CreateElement("xb:Header")
	h.CreateElement("xb:MessageId").SetText("urn:uuid:" + uuid.NewString())
	h.CreateElement("xb:InReplyTo").SetText(req.FindElement("./Header/MessageId").Text())
	if c := req.FindElement("./Header/CaseId"); c != nil {
		h.CreateElement("xb:CaseId").SetText(c.Text())
	} else {
		h.CreateElement("xb:CaseId").SetText(newCaseID)
	}
	h.CreateElement("xb:Sender").SetText("TH:SSO")
	h.CreateElement("xb:Receiver").SetText(req.FindElement("./Header/Sender").Text())
	h.CreateElement("xb:SentAt").SetText(time.Now().UTC().Format("2006-01-02T15:04:05Z"))
	fill(resp, h)
	return out
}

// Close stops the endpoint.
func (a *Agency) Close() error { return a.srv.Close() }
