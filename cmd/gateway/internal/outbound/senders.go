package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/go-resty/resty/v2"
	"github.com/google/uuid"

	"github.com/perkeso/jambatan/adapters/agencysoap"
	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/retryafter"
	"github.com/perkeso/jambatan/cmd/gateway/internal/soapclient"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
	"github.com/perkeso/jambatan/schema"
)

// maxResponseBytes bounds a partner's answer to a JSON delivery (a status
// and perhaps a receipt); without it a partner's endpoint could make the
// gateway hold any amount of memory.
const maxResponseBytes = 1 << 20

// JSONSender posts JWS-signed JSON with resty over mutual TLS.
type JSONSender struct {
	URL      string
	Client   *resty.Client
	Sign     func(payload []byte) (string, error) // detached JWS over the body
	Receipts func(compact string) error           // verifies a receipt in the response, if any
	limit    int                                  // the response body limit, for its error
}

// NewJSONSender builds a keep-alive mTLS client for a partner endpoint.
func NewJSONSender(p *partner.Partner, clientCert tls.Certificate, signer *receipt.Signer) *JSONSender {
	ep := p.Endpoint.WithDefaults()
	// The gateway's keep-alive client to partners (a connection kept for
	// each attempt the partner's concurrency allows), without resty's
	// cookie jar: a partner's cookies are not Perkeso's to send back.
	limit := ep.MaxResponseBytes
	if limit <= 0 {
		limit = maxResponseBytes
	}
	c := resty.NewWithClient(certs.HTTPClient(ep.RootCAs, ep.Revoked, clientCert, ep.Timeout, ep.Concurrency)).
		SetResponseBodyLimit(limit).
		// resty writes some failures to stderr in a format of its own;
		// an attempt's outcome is the deliverer's to log, as JSON.
		SetLogger(partnerkit.Silent{})
	return &JSONSender{URL: ep.URL, Client: c, limit: limit,
		Sign: func(b []byte) (string, error) { return signer.SignDetached(b) },
		Receipts: func(compact string) error {
			_, err := partnerkit.VerifyWith(compact, p.Keys)
			return err
		}}
}

// Send implements Sender: 2xx delivered (a "receipt" in the response must
// verify with the partner's keys); 429, 5xx and transport errors retried
// (Retry-After honoured); other 4xx not.
func (s *JSONSender) Send(ctx context.Context, d *store.Delivery) ([]byte, int, error) {
	sig, err := s.Sign(d.Payload)
	if err != nil {
		return nil, 0, &Error{Msg: "signing: " + err.Error()}
	}
	resp, err := s.Client.R().SetContext(ctx).SetHeader("Content-Type", "application/json").SetHeader("X-JWS-Signature", sig).
		SetHeader("Idempotency-Key", d.Key).SetBody(d.Payload).Post(s.URL)
	if errors.Is(err, resty.ErrResponseBodyTooLarge) {
		// Sending again would not make the answer shorter: an operator looks.
		return nil, resp.StatusCode(), &Error{Status: resp.StatusCode(), Msg: fmt.Sprintf("HTTP %d with a response over %d bytes (the endpoint's max_response_bytes)", resp.StatusCode(), s.limit)}
	}
	if err != nil {
		return nil, 0, &Error{Retry: true, Msg: "transport: " + err.Error()}
	}
	code := resp.StatusCode()
	body := resp.Body()
	switch {
	case code >= 200 && code < 300:
		var r struct {
			Receipt string `json:"receipt"`
		}
		if json.Unmarshal(body, &r) == nil && r.Receipt != "" && s.Receipts != nil {
			if err := s.Receipts(r.Receipt); err != nil {
				return body, code, &Error{Status: code, Msg: "the partner's receipt does not verify: " + err.Error()}
			}
		}
		return body, code, nil
	case retryable(code):
		return body, code, &Error{Retry: true, Status: code, RetryAfter: retryafter.Parse(resp.Header().Get("Retry-After")), Msg: fmt.Sprintf("HTTP %d", code)}
	default:
		return body, code, &Error{Status: code, Msg: fmt.Sprintf("HTTP %d: refused by the partner", code)}
	}
}

// retryable reports whether a delivery answered with this HTTP status may
// succeed if sent again: no answer at all (0), the partner busy (429) or
// failing (5xx).
func retryable(status int) bool {
	return status == 0 || status == http.StatusTooManyRequests || status >= 500
}

// CloseIdleConnections closes the sender's idle kept-alive connections.
func (s *JSONSender) CloseIdleConnections() { s.Client.GetClient().CloseIdleConnections() }

// SOAPSender calls an agency's exchange endpoint with the SOAP client.
type SOAPSender struct {
	Client      *soapclient.Client
	Institution string // this side, MY:PERKESO
	Receiver    string // the agency's institution
}

// NewSOAPSender builds the SOAP client of an agency endpoint.
func NewSOAPSender(p *partner.Partner, clientCert tls.Certificate, signer *wssec.Signer, institution string) *SOAPSender {
	ep := p.Endpoint.WithDefaults()
	return &SOAPSender{Institution: institution, Receiver: p.Institution, Client: &soapclient.Client{
		URL: ep.URL, HTTP: certs.HTTPClient(ep.RootCAs, ep.Revoked, clientCert, ep.Timeout, ep.Concurrency), Signer: signer,
		Verifier:    &wssec.Verifier{Trust: func(c *x509.Certificate) error { return p.TrustSigningCert(c, time.Now()) }},
		MaxResponse: ep.MaxResponseBytes}}
}

// CloseIdleConnections closes the sender's idle kept-alive connections.
func (s *SOAPSender) CloseIdleConnections() { s.Client.HTTP.CloseIdleConnections() }

// sentAt is when d was queued, or now for a delivery that has no such time.
func sentAt(d *store.Delivery) time.Time {
	if d.CreatedAt.IsZero() {
		return time.Now()
	}
	return d.CreatedAt
}

// messageID is stable across retries, so the agency's duplicate rule
// (agency-soap/v1 §8.3) makes a re-sent message harmless.
func messageID(key string) string {
	return "urn:uuid:" + uuid.NewSHA1(uuid.NameSpaceURL, []byte("jambatan-delivery:"+key)).String()
}

// Send implements Sender for NotifyInjury, RequestInformation and
// NotifyDecision. A delivered NotifyInjury gets the case id the agency
// assigned (d.CaseID), which the status event and the queue then carry.
func (s *SOAPSender) Send(ctx context.Context, d *store.Delivery) ([]byte, int, error) {
	doc, op, action, err := s.envelope(d)
	if err != nil {
		return nil, 0, &Error{Msg: err.Error()}
	}
	resp, err := s.Client.Call(ctx, action, doc)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.Status
		}
		// No answer, a busy or failing agency (429, 5xx, or a 2xx it could
		// not sign as it should) is tried again. A 3xx or 4xx that is not a
		// Fault (a wrong URL, a refused certificate at a proxy) would only
		// repeat, and neither would an answer too large: an operator looks.
		retry := !errors.Is(err, soapclient.ErrResponseTooLarge) && (retryable(status) || status/100 == 2)
		return nil, status, &Error{Retry: retry, Status: status, Msg: err.Error()}
	}
	if f := resp.Fault; f != nil {
		if strings.HasPrefix(f.Code, "server.") {
			return resp.Raw, resp.Status, &Error{Retry: true, Status: resp.Status, RetryAfter: f.RetryAfter, Msg: f.Error()}
		}
		return resp.Raw, resp.Status, &Error{Status: resp.Status, Msg: f.Error()}
	}
	// A signed answer that breaks the exchange's rules is not a delivery.
	// Sending again would only repeat it (the agency answers a repeated
	// MessageId with its first response, §8.3), so it goes to dead letter.
	if p := agencysoap.CheckResponse(op, resp.Body); p != nil {
		return resp.Raw, resp.Status, &Error{Status: resp.Status, Msg: fmt.Sprintf("the agency's response breaks agency-soap/v1 (%s at %s): %s", p.Code, p.Location, p.Reason)}
	}
	switch {
	case d.CaseID == "": // a notification: the agency's InjuryAcknowledgement names the case from now on
		d.CaseID, d.CaseWith = agencysoap.ReadHeader(resp.Body).CaseID, s.Receiver
	case d.MessageType == "RequestInformation": // the answer, for the back office
		if d.Reply, err = wssec.Canonical(resp.Body); err != nil {
			return resp.Raw, resp.Status, &Error{Msg: "the agency's reply could not be canonicalized: " + err.Error()}
		}
	}
	return resp.Raw, resp.Status, nil
}

// envelope builds the request for d: the document, its operation element
// (the Body's child, which the response is checked against) and the SOAP action.
func (s *SOAPSender) envelope(d *store.Delivery) (*etree.Document, *etree.Element, string, error) {
	doc := etree.NewDocument()
	env := doc.CreateElement("soap:Envelope")
	env.CreateAttr("xmlns:soap", wssec.NSSoap11)
	env.CreateAttr("xmlns:xb", "urn:xb-injury:exchange:v1")
	op := env.CreateElement("soap:Body").CreateElement("xb:" + d.MessageType)
	h := op.CreateElement("xb:Header")
	h.CreateElement("xb:MessageId").SetText(messageID(d.Key))
	if d.MessageType != "NotifyInjury" { // the receiver assigns the case id of a notification
		h.CreateElement("xb:CaseId").SetText(d.CaseID)
	}
	h.CreateElement("xb:Sender").SetText(s.Institution)
	h.CreateElement("xb:Receiver").SetText(s.Receiver)
	// The Body must be the same on every attempt: the agency answers a
	// MessageId it has with another Body client.duplicate (§8.3), so an
	// attempt after one it took but did not answer in time would fail for
	// good. SentAt is the time the message was queued, not this attempt's.
	h.CreateElement("xb:SentAt").SetText(sentAt(d).UTC().Format("2006-01-02T15:04:05Z"))
	switch d.MessageType {
	case "NotifyInjury":
		if err := notifyInjury(op, d.Payload); err != nil {
			return nil, nil, "", err
		}
	case "RequestInformation":
		var p struct {
			Items []struct {
				Code string `json:"code"`
				Note string `json:"note"`
			} `json:"items"`
			ReplyBy string `json:"replyBy"`
		}
		if err := json.Unmarshal(d.Payload, &p); err != nil || len(p.Items) == 0 {
			return nil, nil, "", errors.New("RequestInformation payload needs items")
		}
		req := op.CreateElement("xb:Request")
		for _, it := range p.Items {
			i := req.CreateElement("xb:Item")
			i.CreateElement("xb:Code").SetText(it.Code)
			if it.Note != "" {
				i.CreateElement("xb:Note").SetText(it.Note)
			}
		}
		if p.ReplyBy != "" {
			r := req.CreateElement("xb:ReplyBy")
			r.CreateAttr("cal", "CE")
			r.SetText(p.ReplyBy)
		}
	case "NotifyDecision":
		var p struct {
			Subject, Outcome, DecisionDate, LegalBasis, Reason, AppealBy string
			PermanentIncapacityPct                                       *int
		}
		if err := json.Unmarshal(d.Payload, &p); err != nil || p.Subject == "" {
			return nil, nil, "", errors.New("NotifyDecision payload needs subject, outcome, decisionDate and legalBasis")
		}
		dec := op.CreateElement("xb:Decision")
		dec.CreateElement("xb:Subject").SetText(p.Subject)
		dec.CreateElement("xb:Outcome").SetText(p.Outcome)
		dd := dec.CreateElement("xb:DecisionDate")
		dd.CreateAttr("cal", "CE")
		dd.SetText(p.DecisionDate)
		dec.CreateElement("xb:LegalBasis").SetText(p.LegalBasis)
		if p.Reason != "" {
			dec.CreateElement("xb:Reason").SetText(p.Reason)
		}
		if p.PermanentIncapacityPct != nil {
			dec.CreateElement("xb:PermanentIncapacityPct").SetText(strconv.Itoa(*p.PermanentIncapacityPct))
		}
		if p.AppealBy != "" {
			a := dec.CreateElement("xb:AppealBy")
			a.CreateAttr("cal", "CE")
			a.SetText(p.AppealBy)
		}
	default:
		return nil, nil, "", fmt.Errorf("message type %s cannot go to an agency", d.MessageType)
	}
	// What goes out must be what the agency's schema accepts.
	xs, err := schema.AgencySOAP()
	if err != nil {
		return nil, nil, "", err
	}
	if verr := xs.Validate(op, "xb"); verr != nil {
		return nil, nil, "", fmt.Errorf("the %s built from the payload breaks the schema: %v", d.MessageType, verr)
	}
	// ... and its content rules (§7), which the agency would refuse with
	// client.content.invalid after the message had used up its MessageId.
	var p *agencysoap.Problem
	if d.MessageType == "NotifyInjury" {
		p = agencysoap.ReadNotifyInjury(op).First()
	} else {
		p = agencysoap.CheckCaseMessage(op)
	}
	if p != nil {
		return nil, nil, "", fmt.Errorf("the %s built from the payload breaks %s at %s: %s", d.MessageType, p.Code, p.Location, p.Reason)
	}
	return doc, op, "urn:xb-injury:exchange:v1#" + d.MessageType, nil
}
