// Package devmode creates, on first run, everything a local gateway needs:
// a development PKI (root CA, server certificate for localhost and
// 127.0.0.1, receipt-signing key), a configuration file, and one demo
// partner per shipped format with its onboarding kit. Later runs reuse it.
// It also writes dev.json, the machine-readable map of a running dev gateway.
package devmode

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
)

// Defaults of "gateway dev".
const (
	DefaultDir  = ".gateway-dev"
	DefaultAddr = "127.0.0.1:8443"
)

// DemoPartner describes a demo partner generated for a shipped format.
type DemoPartner struct {
	ID          string
	Kind        string
	Country     string
	Format      string
	Kid         string // JSON partners: signing key id
	Institution string // agencies
}

// Demos are the demo partners, one per shipped format.
var Demos = []DemoPartner{
	{ID: "demo-employer", Kind: "employer", Country: "SG", Format: "sg-employer-notice/v1", Kid: "demo-employer-2026-1"},
	{ID: "demo-insurer", Kind: "insurer", Country: "SG", Format: "insurer-claim/v1", Kid: "demo-insurer-2026-1"},
	{ID: "demo-agency", Kind: "agency", Country: "TH", Format: "agency-soap/v1", Institution: "TH:SSO"},
}

// Layout is where dev mode keeps its files (absolute paths).
type Layout struct {
	Dir, CACert, CAKey, ServerCert, ServerKey, ReceiptKey, GatewayJWKS, SOAPCert, SOAPKey, OutboundCert, OutboundKey, OperatorCert, OperatorKey, Config, Store, DevJSON, KafkaDir string
	// KafkaPort holds the port the embedded broker last listened on
	// (LastKafkaPort).
	KafkaPort string
	// The dev back office's key for signing outbound requests, and its
	// public half, which the configuration names (outbound.request_signers_file).
	BackOfficeKey, BackOfficeJWKS string
}

// BackOfficeKid is the kid of the dev back office's request-signing key.
const BackOfficeKid = "perkeso-backoffice-dev-1"

// PartnerKit is a demo partner's onboarding kit.
type PartnerKit = partnerkit.Kit

// LayoutOf returns the layout of a dev directory.
func LayoutOf(dir string) (Layout, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Layout{}, err
	}
	j := func(p ...string) string { return filepath.Join(append([]string{abs}, p...)...) }
	return Layout{Dir: abs, CACert: j("pki", "ca.pem"), CAKey: j("pki", "ca.key"), ServerCert: j("pki", "server.pem"),
		ServerKey: j("pki", "server.key"), ReceiptKey: j("pki", "receipt-signing.jwk.json"), GatewayJWKS: j("pki", "gateway-jwks.json"),
		SOAPCert: j("pki", "soap-signing.pem"), SOAPKey: j("pki", "soap-signing.key"),
		OutboundCert: j("pki", "outbound-client.pem"), OutboundKey: j("pki", "outbound-client.key"),
		OperatorCert: j("pki", "operator.pem"), OperatorKey: j("pki", "operator.key"),
		BackOfficeKey: j("pki", "backoffice-signing.jwk.json"), BackOfficeJWKS: j("pki", "backoffice-jwks.json"),
		Config: j("gateway.json"), Store: j("gateway.db"), DevJSON: j("dev.json"), KafkaDir: j("kafka"), KafkaPort: j("kafka.port")}, nil
}

// LastKafkaPort is the port the directory's embedded broker last listened
// on, or 0 when none is recorded. "gateway dev" asks for it again, so that
// what was left running against the broker (a dev ingest, kcat) finds it
// after a restart of the gateway.
func (l Layout) LastKafkaPort() int {
	b, err := os.ReadFile(l.KafkaPort)
	if err != nil {
		return 0
	}
	port, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || port <= 0 || port > 65535 {
		return 0
	}
	return port
}

// SaveKafkaPort records the port of addr (host:port) for LastKafkaPort.
func (l Layout) SaveKafkaPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	return os.WriteFile(l.KafkaPort, []byte(port+"\n"), 0o600)
}

// Kit returns the kit paths of a demo partner.
func (l Layout) Kit(id string) PartnerKit {
	return partnerkit.KitIn(filepath.Join(l.Dir, "partners", id))
}

// Ensure creates whatever of the dev directory is missing and returns its
// layout. created is true when the PKI was generated in this call.
func Ensure(dir string) (l Layout, created bool, err error) {
	if l, err = LayoutOf(dir); err != nil {
		return l, false, err
	}
	if err := os.MkdirAll(filepath.Join(l.Dir, "pki"), 0o700); err != nil {
		return l, false, err
	}
	var ca *certs.CA
	if exists(l.CACert) {
		if ca, err = certs.LoadCA(l.CACert, l.CAKey); err != nil {
			return l, false, fmt.Errorf("dev CA: %w", err)
		}
	} else {
		created = true
		if ca, err = certs.NewCA("Jambatan dev root CA"); err != nil {
			return l, false, err
		}
		if err := certs.WriteFiles(l.CACert, l.CAKey, ca.Cert, ca.Key); err != nil {
			return l, false, err
		}
	}
	if !exists(l.ServerCert) {
		srv, err := ca.IssueServer("localhost", []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback})
		if err != nil {
			return l, false, err
		}
		if err := certs.WriteFiles(l.ServerCert, l.ServerKey, srv.Cert, srv.Key); err != nil {
			return l, false, err
		}
	}
	if !exists(l.ReceiptKey) {
		if err := receipt.GenerateKeyFile(l.ReceiptKey, "perkeso-receipt-dev-1"); err != nil {
			return l, false, err
		}
	}
	if !exists(l.GatewayJWKS) {
		s, err := receipt.LoadSigner(l.ReceiptKey)
		if err != nil {
			return l, false, err
		}
		if err := writeJSON(l.GatewayJWKS, s.JWKS(), 0o644); err != nil {
			return l, false, err
		}
	}
	if !exists(l.SOAPCert) {
		if err := issueRSASigning(ca, "MY:PERKESO", l.SOAPCert, l.SOAPKey); err != nil {
			return l, false, err
		}
	}
	if !exists(l.OutboundCert) {
		c, err := ca.IssueClient("jambatan-gateway")
		if err != nil {
			return l, false, err
		}
		if err := certs.WriteFiles(l.OutboundCert, l.OutboundKey, c.Cert, c.Key); err != nil {
			return l, false, err
		}
	}
	if !exists(l.OperatorCert) {
		c, err := ca.IssueClient("operator")
		if err != nil {
			return l, false, err
		}
		if err := certs.WriteFiles(l.OperatorCert, l.OperatorKey, c.Cert, c.Key); err != nil {
			return l, false, err
		}
	}
	if !exists(l.BackOfficeKey) {
		if err := partnerkit.WriteSigningKey(l.BackOfficeKey, l.BackOfficeJWKS, BackOfficeKid); err != nil {
			return l, false, err
		}
	}
	for _, d := range Demos {
		if err := ensureKit(ca, l.Kit(d.ID), d); err != nil {
			return l, false, fmt.Errorf("demo partner %s: %w", d.ID, err)
		}
	}
	if !exists(l.Config) {
		if err := writeConfig(l); err != nil {
			return l, false, err
		}
	}
	return l, created, nil
}

func ensureKit(ca *certs.CA, k PartnerKit, d DemoPartner) error {
	if err := os.MkdirAll(k.Dir, 0o700); err != nil {
		return err
	}
	if !exists(k.ClientCert) {
		c, err := ca.IssueClient(d.ID)
		if err != nil {
			return err
		}
		if err := certs.WriteFiles(k.ClientCert, k.ClientKey, c.Cert, c.Key); err != nil {
			return err
		}
	}
	if d.Kind == "agency" {
		if !exists(k.SigningCert) {
			return issueRSASigning(ca, d.Institution, k.SigningCert, k.SigningKey)
		}
		return nil
	}
	if !exists(k.SigningJWK) {
		return partnerkit.WriteSigningKey(k.SigningJWK, k.PublicJWKS, d.Kid)
	}
	return nil
}

// issueRSASigning issues a WS-Security signing certificate with an RSA 2048
// key, as agencies' PKIs commonly issue.
func issueRSASigning(ca *certs.CA, cn, certPath, keyPath string) error {
	c, err := ca.IssueRSASigning(cn)
	if err != nil {
		return err
	}
	return certs.WriteFiles(certPath, keyPath, c.Cert, c.Key)
}

func writeConfig(l Layout) error {
	f := config.File{
		Listen:         DefaultAddr,
		Instance:       "jambatan-dev",
		TLS:            config.TLS{CertFile: "pki/server.pem", KeyFile: "pki/server.key", ClientCAFile: "pki/ca.pem"},
		Store:          "gateway.db",
		ReceiptKeyFile: "pki/receipt-signing.jwk.json",
		Limits:         config.Limits{MaxBodyBytes: config.DefaultMaxBodyBytes, MaxInflightBytes: config.DefaultMaxInflightBytes},
		SOAP:           config.SOAP{Institution: "MY:PERKESO", SigningCertFile: "pki/soap-signing.pem", SigningKeyFile: "pki/soap-signing.key"},
		Outbound: config.Outbound{ClientCertFile: "pki/outbound-client.pem", ClientKeyFile: "pki/outbound-client.key",
			RequestSignersFile: "pki/backoffice-jwks.json"},
		Operator: config.Operator{Listen: "127.0.0.1:0", ClientCAFile: "pki/ca.pem", AllowedCNs: []string{"operator"}},
		// gzip: the embedded broker keeps a tenth of the events' bytes
		// (a minute's load test left 1.8 GB of segments without it).
		Kafka: config.Kafka{Compression: "gzip"},
	}
	for _, d := range Demos {
		pc := config.PartnerConfig{ID: d.ID, Kind: d.Kind, Country: d.Country, Formats: []string{d.Format},
			TLSIdentity: config.TLSIdentity{SubjectCN: d.ID}}
		switch d.Kind {
		case "employer":
			pc.JWKSFile = filepath.Join("partners", d.ID, "jwks.json")
			pc.AgentForUENs = []string{"*"} // dev only: a submitting agent for any UEN
		case "insurer":
			pc.JWKSFile = filepath.Join("partners", d.ID, "jwks.json")
			pc.InsurerCodes = []string{"*"} // dev only: any insurer code
		case "agency":
			pc.Institution, pc.SigningCAFile = d.Institution, "pki/ca.pem"
		}
		f.Partners = append(f.Partners, pc)
	}
	return writeJSON(l.Config, f, 0o644)
}

// DevJSON is the machine-readable description of a running dev gateway.
type DevJSON struct {
	GatewayURL string `json:"gateway_url"`
	CACert     string `json:"ca_cert"`
	JWKSURL    string `json:"jwks_url"`
	// GatewayJWKS is the public half of the receipt/attestation key as a file.
	GatewayJWKS    string `json:"gateway_jwks"`
	Config         string `json:"config"`
	Store          string `json:"store"`
	KafkaBootstrap string `json:"kafka_bootstrap"`
	// DemoAgencyURL is set with --with-demo-agency: where outbound messages to demo-agency go.
	DemoAgencyURL string `json:"demo_agency_url,omitempty"`
	// The operator listener (outbound requests without Kafka) and a dev operator's certificate.
	OperatorURL  string `json:"operator_url,omitempty"`
	OperatorCert string `json:"operator_cert,omitempty"`
	OperatorKey  string `json:"operator_key,omitempty"`
	// BackOfficeKey signs outbound requests as the back office does
	// (gateway sign --jwk KEY --detached REQUEST.json; the record's "jws"
	// header), set when the configuration takes signed requests only.
	BackOfficeKey string           `json:"backoffice_signing_jwk,omitempty"`
	Topics        events.Topics    `json:"topics"`
	MetricsURL    string           `json:"metrics_url"`
	Partners      []DevJSONPartner `json:"partners"`

	path string
}

// DevJSONPath is where this dev.json was read from.
func (d *DevJSON) DevJSONPath() string { return d.path }

// DevJSONPartner is one demo partner in dev.json.
type DevJSONPartner struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	Format      string `json:"format"`
	ClientCert  string `json:"client_cert"`
	ClientKey   string `json:"client_key"`
	SigningJWK  string `json:"signing_jwk,omitempty"`
	Kid         string `json:"kid,omitempty"`
	Institution string `json:"institution,omitempty"`
	SigningCert string `json:"signing_cert,omitempty"`
	SigningKey  string `json:"signing_key,omitempty"`
	SOAPURL     string `json:"soap_url,omitempty"`
}

// Describe builds dev.json for a gateway listening at addr.
func (l Layout) Describe(addr string) DevJSON {
	url := "https://" + addr
	d := DevJSON{GatewayURL: url, CACert: l.CACert, JWKSURL: url + "/.well-known/jwks.json", GatewayJWKS: l.GatewayJWKS, Config: l.Config, Store: l.Store}
	for _, p := range Demos {
		k := l.Kit(p.ID)
		dp := DevJSONPartner{ID: p.ID, Kind: p.Kind, Format: p.Format, ClientCert: k.ClientCert, ClientKey: k.ClientKey}
		if p.Kind == "agency" {
			dp.Institution, dp.SigningCert, dp.SigningKey, dp.SOAPURL = p.Institution, k.SigningCert, k.SigningKey, url+"/soap/v1/exchange"
		} else {
			dp.SigningJWK, dp.Kid = k.SigningJWK, p.Kid
		}
		d.Partners = append(d.Partners, dp)
	}
	return d
}

// WriteDevJSON writes dev.json atomically (rename), so a reader never sees half of it.
func (l Layout) WriteDevJSON(d DevJSON) error {
	tmp := l.DevJSON + ".tmp"
	if err := writeJSON(tmp, d, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, l.DevJSON)
}

// AskRunning adds to err, met by a tool pointed at dir, the question
// whether "gateway dev --dir dir" runs: its dev.json is missing, or its
// gateway or broker refused a connection (dev.json outlives a gateway that
// was killed).
func AskRunning(err error, dir string) error {
	return fmt.Errorf("%w (is \"gateway dev --dir %s\" running?)", err, dir)
}

// ReadDevJSON reads dev.json from a dev directory.
func ReadDevJSON(dir string) (*DevJSON, error) {
	l, err := LayoutOf(dir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(l.DevJSON)
	if err != nil {
		return nil, AskRunning(err, dir)
	}
	d := DevJSON{path: l.DevJSON}
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", l.DevJSON, err)
	}
	return &d, nil
}

// Partner finds a partner in dev.json.
func (d *DevJSON) Partner(id string) (*DevJSONPartner, error) {
	for i := range d.Partners {
		if d.Partners[i].ID == id {
			return &d.Partners[i], nil
		}
	}
	return nil, fmt.Errorf("dev.json has no partner %q", id)
}

func writeJSON(path string, v any, mode os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), mode)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
