package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"time"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/devmode"
	"github.com/perkeso/jambatan/cmd/gateway/internal/soapclient"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

// runSOAP is an agency engineer's tool: sign an envelope with a dev agency
// kit, call the exchange, verify the signed response and print it.
func runSOAP(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("soap", stderr)
	dir := fs.String("dev", devmode.DefaultDir, "dev directory of a running \"gateway dev\"")
	partnerID := fs.String("partner", "demo-agency", "agency partner in dev.json")
	action := fs.String("action", "", "operation (default: the Body child's name): NotifyInjury, RequestInformation, NotifyDecision")
	if err := parse(fs, args); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "gateway soap: give one envelope file (- for stdin); an existing Security header is replaced")
		return errUsage
	}
	d, err := devmode.ReadDevJSON(*dir)
	if err != nil {
		return err
	}
	p, err := d.Partner(*partnerID)
	if err != nil {
		return err
	}
	if p.Kind != "agency" {
		return fmt.Errorf("partner %s is not an agency", *partnerID)
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
	pool, err := certs.LoadPool(d.CACert)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(p.ClientCert, p.ClientKey)
	if err != nil {
		return err
	}
	sc, err := certs.LoadCertificates(p.SigningCert)
	if err != nil {
		return err
	}
	sk, err := certs.LoadKey(p.SigningKey)
	if err != nil {
		return err
	}
	c := &soapclient.Client{URL: p.SOAPURL, HTTP: soapclient.NewHTTP(pool, cert, 30*time.Second), Signer: &wssec.Signer{Cert: sc[0], Key: sk},
		Verifier: &wssec.Verifier{Trust: wssec.TrustInstitution(pool, "MY:PERKESO")}}
	resp, err := c.Call(ctx, "urn:xb-injury:exchange:v1#"+op, doc)
	if err != nil {
		if resp != nil {
			stdout.Write(resp.Raw)
		}
		return err
	}
	stdout.Write(resp.Raw)
	fmt.Fprintln(stdout)
	if resp.Fault != nil {
		return resp.Fault
	}
	fmt.Fprintf(stderr, "HTTP %d, %s, response signature verified\n", resp.Status, resp.Body.Tag)
	return nil
}
