package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/app"
	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
	"github.com/perkeso/jambatan/cmd/gateway/internal/devmode"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
)

const certsUsage = `usage: gateway certs kit --partner ID [--institution TH:SSO] --ca-cert CA.pem --ca-key CA.key [--out DIR] [--csr FILE [--signing-csr FILE]]
       gateway certs rotate-receipt-key (--config FILE [--public-jwks FILE] | --dev DIR)     then SIGHUP the gateway
       gateway certs list (--config FILE | --dev DIR)`

// runCerts is "gateway certs kit|rotate-receipt-key|list"; each
// subcommand takes only its own flags.
func runCerts(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "kit":
			return certsKit(args[1:], stdout, stderr)
		case "rotate-receipt-key":
			return certsRotate(args[1:], stdout, stderr)
		case "list":
			return certsList(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintln(stderr, certsUsage)
	return errUsage
}

// loadConfigFlags parses the flags of a subcommand that takes --config and
// --dev (and those more adds), and loads the configuration they name (the
// dev one by default). dev is the dev directory's layout when the
// configuration is the dev one.
func loadConfigFlags(name string, args []string, stderr io.Writer, more ...func(*flag.FlagSet)) (cfg *config.Config, dev *devmode.Layout, err error) {
	fs := newFlags(name, stderr)
	cfgPath := fs.String("config", "", "gateway configuration file")
	dir := fs.String("dev", devmode.DefaultDir, "dev directory")
	for _, m := range more {
		m(fs)
	}
	if err := parse(fs, args, 0); err != nil {
		return nil, nil, errUsage
	}
	if *cfgPath == "" {
		l, err := devmode.LayoutOf(*dir)
		if err != nil {
			return nil, nil, err
		}
		*cfgPath, dev = l.Config, &l
	}
	cfg, err = config.Load(*cfgPath)
	return cfg, dev, err
}

// certsKit issues a partner's onboarding kit: a client certificate from
// the partners' CA, and a signing key with the public JWKS to register, or
// for an agency (--institution) a WS-Security signing certificate issued
// to its institution id.
func certsKit(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("certs kit", stderr)
	partnerID := fs.String("partner", "", "partner id (the client certificate's CN)")
	institution := fs.String("institution", "", "an agency's institution id (TH:SSO): the kit holds a WS-Security signing certificate issued to it instead of a JWK")
	caCert := fs.String("ca-cert", "", "CA certificate that issues partner client certificates")
	caKey := fs.String("ca-key", "", "its private key")
	outDir := fs.String("out", "", "kit directory (default ./kit-ID)")
	csrFile := fs.String("csr", "", "the partner's certificate signing request (PEM): its client certificate is issued for that key, and no private key is made")
	signingCSR := fs.String("signing-csr", "", "with --institution and --csr: the agency's request for its WS-Security signing certificate")
	if err := parse(fs, args, 0); err != nil {
		return errUsage
	}
	if *partnerID == "" || *caCert == "" || *caKey == "" || *signingCSR != "" && (*institution == "" || *csrFile == "") ||
		*institution != "" && *csrFile != "" && *signingCSR == "" {
		fmt.Fprintln(stderr, certsUsage)
		return errUsage
	}
	if !config.ValidPartnerID(*partnerID) {
		return fmt.Errorf("--partner %q: a partner id is 1-64 of a-z 0-9 . _ -, starting with a letter or digit (as in the configuration)", *partnerID)
	}
	if *institution != "" && !config.ValidInstitution(*institution) {
		return fmt.Errorf("--institution %q: an institution id is a country code, a colon and 2-20 of A-Z 0-9 _ (TH:SSO)", *institution)
	}
	ca, err := certs.LoadCA(*caCert, *caKey)
	if err != nil {
		return err
	}
	if *outDir == "" {
		*outDir = "kit-" + *partnerID
	}
	if err := os.MkdirAll(*outDir, 0o700); err != nil {
		return err
	}
	kit := partnerkit.KitIn(*outDir)
	if *csrFile != "" {
		return kitFromCSRs(ca, *partnerID, *institution, *caCert, kit, *csrFile, *signingCSR, stdout)
	}
	c, err := ca.IssueClient(*partnerID)
	if err != nil {
		return err
	}
	if err := certs.WriteFiles(kit.ClientCert, kit.ClientKey, c.Cert, c.Key); err != nil {
		return err
	}
	if *institution != "" {
		return agencyKit(ca, *partnerID, *institution, *caCert, kit, c, stdout)
	}
	// The kid names the day of issue and a random part: a partner rotating
	// its key gets a second kit, and both keys are registered side by side
	// until the old one is retired, which needs two kids (the kid of the
	// year, as it was, repeated).
	var r [4]byte
	_, _ = rand.Read(r[:])
	kid := *partnerID + "-" + time.Now().UTC().Format("20060102") + "-" + hex.EncodeToString(r[:])
	if err := partnerkit.WriteSigningKey(kit.SigningJWK, kit.PublicJWKS, kid); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kit for %s in %s: client.pem, client.key, signing.jwk.json (private: the partner keeps it), jwks.json (public: Perkeso registers it)\n", *partnerID, *outDir)
	partnerRegistration(stdout, *partnerID, c.Cert, strconv.Quote(kit.PublicJWKS))
	return nil
}

// certsRotate puts a new receipt key in front of the receipt key file, and
// writes the public keys, new and old, where the back office's ingest reads
// them (--public-jwks; a dev directory's gateway-jwks.json): ingest takes a
// receipt by a key its copy lacks as a reason to read its copy again.
func certsRotate(args []string, stdout, stderr io.Writer) error {
	var public *string
	cfg, dev, err := loadConfigFlags("certs rotate-receipt-key", args, stderr, func(fs *flag.FlagSet) {
		public = fs.String("public-jwks", "", "also write the public keys (new and old) to this file, for gateway ingest --jwks")
	})
	if err != nil {
		return err
	}
	if *public == "" && dev != nil {
		*public = dev.GatewayJWKS
	}
	kid, first, err := receipt.RotateKeyFile(cfg.ReceiptKeyFile)
	if err != nil {
		return err
	}
	if first {
		fmt.Fprintf(stdout, "first receipt key %s in %s (there was none): the gateway signs its receipts with it from its start.\n", kid, cfg.ReceiptKeyFile)
	} else {
		fmt.Fprintf(stdout, "new receipt key %s in %s; the previous keys stay in the JWKS. Send SIGHUP to the gateway to use it.\n", kid, cfg.ReceiptKeyFile)
	}
	if *public == "" {
		fmt.Fprintln(stdout, "gateway ingest verifies receipts with its --jwks file: put the new public key there (--public-jwks writes it; /.well-known/jwks.json serves it).")
		return nil
	}
	if err := receipt.WritePublicJWKS(cfg.ReceiptKeyFile, *public); err != nil {
		return fmt.Errorf("the new key is in place, but the public JWKS was not written: %w", err)
	}
	fmt.Fprintf(stdout, "public keys (the current and any retired) in %s, for gateway ingest --jwks\n", *public)
	return nil
}

// certsList prints every certificate the configuration names, and each
// CRL's next update, soonest first. Each row is named as the gateway names
// it in jambatan_certificate_expiry_seconds, jambatan_crl_next_update_seconds
// and /readyz (app.newWatched; TestCertsListNames holds the two lists to
// the same names). Unlike the gateway, it reports an unreadable file and
// goes on.
func certsList(args []string, stdout, stderr io.Writer) error {
	cfg, _, err := loadConfigFlags("certs list", args, stderr)
	if err != nil {
		return err
	}
	type row struct {
		name, subject string
		until         time.Time // a certificate's NotAfter, a CRL's NextUpdate
	}
	var rows []row
	// add lists path's certificates, named by name(i); leafOnly: the first
	// alone, as the others of a certificate file are its chain.
	add := func(path string, leafOnly bool, name func(i int) string) []*x509.Certificate {
		if path == "" {
			return nil
		}
		cs, err := certs.LoadCertificates(path)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name(0), err)
			return nil
		}
		for i, c := range cs {
			if leafOnly && i > 0 {
				break
			}
			rows = append(rows, row{name(i), c.Subject.CommonName, c.NotAfter})
		}
		return cs
	}
	named := func(name string) func(int) string { return func(int) string { return name } }
	add(cfg.CertFile, true, named("server"))
	cas := add(cfg.ClientCAFile, false, func(i int) string { return fmt.Sprintf("client-ca-%d", i) }) // the CRLs' issuers too
	var operatorCAs []*x509.Certificate
	if cfg.File.Operator.Listen != "" {
		operatorCAs = add(cfg.File.Operator.ClientCAFile, false, func(i int) string { return fmt.Sprintf("operator-ca-%d", i) })
	}
	if k := cfg.File.Kafka.TLS; k != nil {
		add(k.CAFile, false, func(i int) string { return fmt.Sprintf("kafka-ca-%d", i) })
		add(k.CertFile, true, named("kafka-client"))
	}
	add(cfg.File.SOAP.SigningCertFile, true, named("soap-signing"))
	add(cfg.File.Outbound.ClientCertFile, true, named("outbound-client"))
	// addCRLs lists the CRLs of paths, issued by cas, named prefix and
	// their file's name (app.CRLName).
	addCRLs := func(paths []string, cas []*x509.Certificate, prefix string) {
		for i, path := range paths {
			if cas == nil {
				break // the CA file is unreadable, and said so above
			}
			crl, err := certs.LoadCRL(path, cas)
			if err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", strings.TrimSuffix(prefix, ":"), err)
				continue
			}
			rows = append(rows, row{prefix + app.CRLName(paths, i), crl.Issuer.CommonName, crl.NextUpdate})
		}
	}
	for _, p := range cfg.File.Partners {
		signing := add(p.SigningCAFile, false, func(i int) string { return fmt.Sprintf("signing-ca:%s:%d", p.ID, i) })
		addCRLs(p.SigningCRLFiles, signing, "crl:"+app.SigningCRLPrefix(p.ID))
		if p.Endpoint != nil {
			add(p.Endpoint.ClientCertFile, true, named("outbound-client:"+p.ID))
			endpoint := add(p.Endpoint.CAFile, false, func(i int) string { return fmt.Sprintf("endpoint-ca:%s:%d", p.ID, i) })
			addCRLs(p.Endpoint.CRLFiles, endpoint, "crl:"+app.EndpointCRLPrefix(p.ID))
		}
	}
	addCRLs(cfg.File.TLS.CRLFiles, cas, "crl:")
	addCRLs(cfg.File.Operator.CRLFiles, operatorCAs, "crl:"+app.OperatorCRLPrefix)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].until.Before(rows[j].until) })
	now := time.Now()
	fmt.Fprintf(stdout, "%-36s %-32s %-22s %s\n", "CERTIFICATE", "SUBJECT", "NOT AFTER", "DAYS LEFT")
	for _, r := range rows {
		fmt.Fprintf(stdout, "%-36s %-32s %-22s %.0f\n", r.name, r.subject, r.until.UTC().Format(time.RFC3339), r.until.Sub(now).Hours()/24)
	}
	return nil
}

// kitFromCSRs issues a kit's certificates for keys the partner made and
// keeps: the client certificate from its request, and an agency's
// WS-Security signing certificate from its second; no private key is made
// or written. A JSON partner sends its public signing keys (a JWKS) itself.
func kitFromCSRs(ca *certs.CA, partnerID, institution, caCert string, kit partnerkit.Kit, csrFile, signingCSR string, stdout io.Writer) error {
	issue := func(file, cn, path string, eku x509.ExtKeyUsage) (*x509.Certificate, error) {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		c, err := ca.IssueFromCSR(cn, b, eku)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return c, os.WriteFile(path, certs.CertPEM(c), 0o644)
	}
	client, err := issue(csrFile, partnerID, kit.ClientCert, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return err
	}
	if institution == "" {
		fmt.Fprintf(stdout, "kit for %s in %s: client.pem, issued for the key of %s (the partner keeps the key, and sends its public signing keys as a JWKS)\n", partnerID, kit.Dir, csrFile)
		partnerRegistration(stdout, partnerID, client, `"<the JWKS the partner sends>"`)
		return nil
	}
	signing, err := issue(signingCSR, institution, kit.SigningCert, 0)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kit for %s (%s) in %s: client.pem and ws-signing.pem, issued for the keys of %s and %s (the agency keeps the keys)\n",
		partnerID, institution, kit.Dir, csrFile, signingCSR)
	agencyRegistration(stdout, partnerID, institution, caCert, client, signing)
	return nil
}

// agencyKit adds an agency's WS-Security signing certificate to its kit:
// RSA 2048, as agencies' PKIs commonly issue, with the institution id as
// its subject CN, which the registration's signing CA and institution
// then accept (agency-soap/v1 §3).
func agencyKit(ca *certs.CA, partnerID, institution, caCert string, kit partnerkit.Kit, client *certs.Issued, stdout io.Writer) error {
	sc, err := ca.IssueRSASigning(institution)
	if err != nil {
		return err
	}
	if err := certs.WriteFiles(kit.SigningCert, kit.SigningKey, sc.Cert, sc.Key); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kit for %s (%s) in %s: client.pem, client.key, ws-signing.pem, ws-signing.key (private: the agency keeps the keys)\n", partnerID, institution, kit.Dir)
	agencyRegistration(stdout, partnerID, institution, caCert, client.Cert, sc.Cert)
	return nil
}

// partnerRegistration prints the configuration entry of a JSON partner
// whose client certificate is client; jwksFile is written as given (JSON).
func partnerRegistration(stdout io.Writer, partnerID string, client *x509.Certificate, jwksFile string) {
	fmt.Fprintf(stdout, "registration: {\"id\": %q, \"tls_identity\": {\"subject_cn\": %q, \"sha256\": %q}, \"jwks_file\": %s, ...}\n",
		partnerID, partnerID, certs.Fingerprint(client), jwksFile)
}

// agencyRegistration prints the configuration entry of an agency: its client
// certificate, institution, and the CA and fingerprint of its signing
// certificate.
func agencyRegistration(stdout io.Writer, partnerID, institution, caCert string, client, signing *x509.Certificate) {
	fmt.Fprintf(stdout, "registration: {\"id\": %q, \"kind\": \"agency\", \"formats\": [\"agency-soap/v1\"], \"institution\": %q, \"tls_identity\": {\"subject_cn\": %q, \"sha256\": %q}, \"signing_ca_file\": %q, \"signing_cert_sha256\": [%q], ...}\n",
		partnerID, institution, partnerID, certs.Fingerprint(client), caCert, certs.Fingerprint(signing))
}
