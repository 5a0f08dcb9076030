package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/adapters/agencysoap"
	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/devmode"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/soapclient"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

// runSOAP is an agency engineer's tool: sign an envelope with an agency's
// kit (a dev one, or the one Perkeso sent), call the exchange, verify the
// signed response and print it.
func runSOAP(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("soap", stderr)
	dir := fs.String("dev", devmode.DefaultDir, "dev directory of a running \"gateway dev\"")
	partnerID := fs.String("partner", "demo-agency", "agency partner in dev.json")
	kitDir := fs.String("kit", "", "instead of --dev: an agency's kit from \"gateway certs kit --institution\" (client.pem, client.key, ws-signing.pem, ws-signing.key); needs --url and --signing-ca")
	url := fs.String("url", "", "with --kit: the exchange, https://HOST[:PORT]/soap/v1/exchange")
	caFile := fs.String("ca", "", "with --kit: the CA certificates that issue the gateway's server certificate (default: the system's)")
	signingCA := fs.String("signing-ca", "", "with --kit: the CA certificates that issue Perkeso's WS-Security signing certificate (MY:PERKESO)")
	action := fs.String("action", "", "operation (default: the Body child's name): NotifyInjury, RequestInformation, NotifyDecision")
	if err := parse(fs, args, 1); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "gateway soap: give one envelope file (- for stdin); an existing Security header is replaced")
		return errUsage
	}
	if (*kitDir == "") != (*url == "") || (*kitDir == "") != (*signingCA == "") || *kitDir == "" && *caFile != "" {
		fmt.Fprintln(stderr, "gateway soap: --kit, --url and --signing-ca go together (with --ca if needed); without them, --dev names a running gateway dev")
		return errUsage
	}
	var k agencySide
	var err error
	if *kitDir != "" {
		if !strings.HasPrefix(*url, "https://") {
			return fmt.Errorf("--url %s: must be https://", *url)
		}
		k = agencySide{url: *url, serverCA: *caFile, signingCA: *signingCA, kit: partnerkit.KitIn(*kitDir)}
	} else if k, err = devAgencySide(*dir, *partnerID); err != nil {
		return err
	}
	raw, err := readDoc(fs.Arg(0), stdin)
	if err != nil {
		return err
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return err
	}
	if h := doc.FindElement("/Envelope/Header"); h != nil {
		h.Parent().RemoveChild(h) // the client signs afresh
	}
	env, ferr := wssec.Inspect(doc)
	if ferr != nil {
		return ferr
	}
	op := *action
	if op == "" {
		op = env.BodyChild.Tag
	}
	c, err := k.client()
	if err != nil {
		return err
	}
	resp, err := c.Call(ctx, "urn:xb-injury:exchange:v1#"+op, doc)
	if err != nil {
		if resp != nil {
			stdout.Write(resp.Raw)
		}
		if *kitDir == "" {
			return devRunning(err, *dir)
		}
		return err
	}
	stdout.Write(resp.Raw)
	fmt.Fprintln(stdout)
	if resp.Fault != nil {
		return resp.Fault
	}
	// A signature alone would pass another message's response: it must
	// answer this one (InReplyTo, Sender and Receiver, CaseId, the XSD and
	// the reply's items), as the gateway holds an agency's answers to.
	if p := agencysoap.CheckResponse(env.BodyChild, resp.Body); p != nil {
		return fmt.Errorf("the response does not answer this message (%s at %s): %s", p.Code, p.Location, p.Reason)
	}
	fmt.Fprintf(stderr, "HTTP %d, %s, response signature verified; it answers this message\n", resp.Status, resp.Body.Tag)
	return nil
}

// agencySide is what "gateway soap" calls the exchange with: where, the files
// of the agency's side, and whom it trusts.
type agencySide struct {
	url       string
	serverCA  string // "" for the system's roots
	signingCA string // issues Perkeso's WS-Security signing certificate
	kit       partnerkit.Kit
}

// devAgencySide is an agency partner of a running "gateway dev", whose CA
// issues every certificate.
func devAgencySide(dir, partnerID string) (agencySide, error) {
	d, err := devmode.ReadDevJSON(dir)
	if err != nil {
		return agencySide{}, err
	}
	p, err := d.Partner(partnerID)
	if err != nil {
		return agencySide{}, err
	}
	if p.Kind != "agency" {
		return agencySide{}, fmt.Errorf("partner %s is not an agency", partnerID)
	}
	return agencySide{url: p.SOAPURL, serverCA: d.CACert, signingCA: d.CACert,
		kit: partnerkit.Kit{ClientCert: p.ClientCert, ClientKey: p.ClientKey, SigningCert: p.SigningCert, SigningKey: p.SigningKey}}, nil
}

// client is a SOAP client signing with the kit's certificate and trusting
// responses signed for MY:PERKESO under signingCA.
func (k agencySide) client() (*soapclient.Client, error) {
	var serverPool *x509.CertPool // nil: the system's roots
	if k.serverCA != "" {
		p, err := certs.LoadPool(k.serverCA)
		if err != nil {
			return nil, err
		}
		serverPool = p
	}
	signingPool, err := certs.LoadPool(k.signingCA)
	if err != nil {
		return nil, err
	}
	cert, err := certs.LoadKeyPair(k.kit.ClientCert, k.kit.ClientKey)
	if err != nil {
		return nil, err
	}
	sc, err := certs.LoadCertificates(k.kit.SigningCert)
	if err != nil {
		return nil, err
	}
	sk, err := certs.LoadKey(k.kit.SigningKey)
	if err != nil {
		return nil, err
	}
	return &soapclient.Client{URL: k.url, HTTP: certs.HTTPClient(serverPool, nil, cert, 30*time.Second, 1), Signer: &wssec.Signer{Cert: sc[0], Key: sk},
		Verifier: &wssec.Verifier{Trust: wssec.TrustInstitution(signingPool, "MY:PERKESO")}}, nil
}
