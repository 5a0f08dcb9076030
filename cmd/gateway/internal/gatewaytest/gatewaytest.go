// Package gatewaytest starts a real gateway for tests: an in-memory CA, a
// server certificate, registered partners with their TLS and signing keys, a
// SQLite store in a temporary directory, and the real handler behind
// httptest's TLS server configured with the gateway's own mutual-TLS config.
package gatewaytest

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/intake"
	"github.com/perkeso/jambatan/cmd/gateway/internal/metrics"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/server"
	"github.com/perkeso/jambatan/cmd/gateway/internal/soapsrv"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
	"github.com/perkeso/jambatan/mapping"
)

// Partner is a test partner with its private material.
type Partner struct {
	*partner.Partner
	TLS        tls.Certificate
	SigningKey jwk.Key       // private, with kid and alg
	WSSigning  *certs.Issued // agencies: WS-Security signing certificate
}

// Env is a running gateway.
type Env struct {
	Server   *httptest.Server
	CA       *certs.CA
	Store    *store.DB
	Receipts *receipt.Signer
	Partners map[string]*Partner
	Dir      string
	// SOAPSigning is the gateway's WS-Security certificate.
	SOAPSigning *certs.Issued

	tls        *server.TLS
	serverCert tls.Certificate
}

// Revoke swaps in CRLs, as a reload does: new handshakes and the requests
// of open connections are checked against them.
func (e *Env) Revoke(crls ...*x509.RevocationList) {
	e.tls.Set(e.serverCert, []*x509.Certificate{e.CA.Cert}, crls)
}

// TrustClientCAs swaps in another client CA bundle, as a reload does.
func (e *Env) TrustClientCAs(cas ...*x509.Certificate) {
	e.tls.Set(e.serverCert, cas, nil)
}

// Options adjust an Env.
type Options struct {
	MaxBodyBytes int64
	// MaxInflightBytes bounds the request bytes served at once (0: unbounded).
	MaxInflightBytes int64
	Store            string // SQLite path or postgres:// DSN; default a SQLite file in a temp dir
	SOAPMaxTTL       time.Duration
	Log              *slog.Logger // default: discard (GATEWAYTEST_LOG=1: stderr)
	// EventLimit, when set, makes accepted submissions write events to the
	// outbox, with this bound on an event's size (events.Builder.MaxValue).
	EventLimit int
	// Metrics, when set, is given to the server and its pipeline, and
	// counts the listener's failed handshakes.
	Metrics *metrics.Metrics
}

// Start starts a gateway with partners "employer-a" (UEN 201912345K and
// 53412345B, 199801234D) and "employer-b" (UEN 200000001A), the insurer
// "insurer-wic" and the agencies "agency-th" (TH:SSO) and "agency-bn"
// (BN:SPK).
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.NewCA("test root")
	must(t, err)
	srvCert, err := ca.IssueServer("localhost", []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	must(t, err)
	signer := NewSigner(t, "test-receipt-1")
	target := opts.Store
	if target == "" {
		target = filepath.Join(dir, "gateway.db")
	}
	st, err := store.Open(target)
	must(t, err)
	t.Cleanup(func() { st.Close() })

	env := &Env{CA: ca, Store: st, Receipts: signer, Partners: map[string]*Partner{}, Dir: dir}
	var reg []*partner.Partner
	for id, uens := range map[string][]string{
		"employer-a": {"201912345K", "53412345B", "199801234D"},
		"employer-b": {"200000001A"},
	} {
		p := NewPartner(t, ca, id, uens)
		env.Partners[id] = p
		reg = append(reg, p.Partner)
	}
	// An insurer registered for WIC017.
	ins := NewPartner(t, ca, "insurer-wic", nil)
	ins.Kind, ins.Formats, ins.InsurerCodes = partner.KindInsurer, []string{"insurer-claim/v1"}, map[string]bool{"WIC017": true}
	env.Partners[ins.ID] = ins
	reg = append(reg, ins.Partner)

	// An agency (TH:SSO) whose WS-Security certificates the test CA issues.
	ag := NewPartner(t, ca, "agency-th", nil)
	ag.Kind, ag.Formats, ag.Institution = partner.KindAgency, []string{"agency-soap/v1"}, "TH:SSO"
	ag.SigningCAs = pool(ca.Cert)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	ag.WSSigning, err = ca.IssueSigning("TH:SSO", rk)
	must(t, err)
	env.Partners[ag.ID] = ag
	reg = append(reg, ag.Partner)
	// A second agency (BN:SPK, an EC signing key), whose cases are not
	// TH:SSO's.
	bn := NewPartner(t, ca, "agency-bn", nil)
	bn.Kind, bn.Formats, bn.Institution = partner.KindAgency, []string{"agency-soap/v1"}, "BN:SPK"
	bn.SigningCAs = pool(ca.Cert)
	bn.WSSigning, err = ca.IssueSigning("BN:SPK", nil)
	must(t, err)
	env.Partners[bn.ID] = bn
	reg = append(reg, bn.Partner)
	env.SOAPSigning, err = ca.IssueSigning("MY:PERKESO", nil)
	must(t, err)

	registry := partner.NewRegistry(reg)
	max := opts.MaxBodyBytes
	if max == 0 {
		max = 1 << 20
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("GATEWAYTEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if opts.Log != nil {
		log = opts.Log
	}
	srv := &server.Server{
		Partners: registry, Store: st, Receipts: signer, Log: log,
		Pipeline: &intake.Pipeline{Store: st, Receipts: signer, Rates: mapping.ExampleRates, Log: log, Metrics: opts.Metrics},
		Metrics:  opts.Metrics,
		Limits:   server.Limits{MaxBodyBytes: max, MaxInflightBytes: opts.MaxInflightBytes, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute},
	}
	if opts.EventLimit > 0 {
		srv.Pipeline.Events = &events.Builder{Topics: events.DefaultTopics, Source: "urn:test", MaxValue: opts.EventLimit, Receipts: signer}
	}
	srv.SOAP = &soapsrv.Handler{Store: st, Receipts: signer, Events: srv.Pipeline.Events, Signer: &wssec.Signer{Cert: env.SOAPSigning.Cert, Key: env.SOAPSigning.Key},
		Institution: "MY:PERKESO", Rates: mapping.ExampleRates, Log: log, MaxTTL: opts.SOAPMaxTTL}
	env.serverCert = tls.Certificate{Certificate: [][]byte{srvCert.Cert.Raw}, PrivateKey: srvCert.Key, Leaf: srvCert.Cert}
	env.tls = server.NewTLS(env.serverCert, []*x509.Certificate{ca.Cert}, nil, registry)
	srv.TLS = env.tls
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.TLS = env.tls.Config()
	var failures *prometheus.CounterVec // failed handshakes, by reason, with Metrics
	if opts.Metrics != nil {
		failures = opts.Metrics.HandshakeFailures
	}
	hs.Config.ErrorLog = server.ErrorLog(log, "partner", failures)
	hs.StartTLS()
	t.Cleanup(hs.Close)
	env.Server = hs
	return env
}

// NewPartner issues a client certificate and an ES256 signing key.
func NewPartner(t testing.TB, ca *certs.CA, id string, uens []string) *Partner {
	t.Helper()
	cc, err := ca.IssueClient(id)
	must(t, err)
	priv, err := receipt.NewES256Key(id + "-key-1")
	must(t, err)
	pub, err := jwk.PublicKeyOf(priv)
	must(t, err)
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	p := &partner.Partner{ID: id, Kind: partner.KindEmployer, Country: "SG", Formats: []string{"sg-employer-notice/v1"},
		Identity: partner.Identity{SubjectCN: id}, Keys: set, UENs: map[string]bool{}}
	for _, u := range uens {
		p.UENs[u] = true
	}
	return &Partner{Partner: p, TLS: tls.Certificate{Certificate: [][]byte{cc.Cert.Raw}, PrivateKey: cc.Key, Leaf: cc.Cert}, SigningKey: priv}
}

func pool(cs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cs {
		p.AddCert(c)
	}
	return p
}

// Client returns an HTTP client presenting cert (nil: no client certificate)
// and trusting the test CA.
func (e *Env) Client(cert *tls.Certificate) *http.Client {
	conf := &tls.Config{RootCAs: pool(e.CA.Cert), MinVersion: tls.VersionTLS12}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
}

// WriteFiles writes the CA certificate and a partner's kit as files, for
// tools outside the process (node, kcat, the gateway binary).
func (e *Env) WriteFiles(t testing.TB, id string) (caFile, certFile, keyFile, jwkFile string) {
	t.Helper()
	d := filepath.Join(e.Dir, "kit-"+id)
	must(t, os.MkdirAll(d, 0o700))
	kit := partnerkit.KitIn(d)
	caFile, certFile, keyFile, jwkFile = filepath.Join(d, "ca.pem"), kit.ClientCert, kit.ClientKey, kit.SigningJWK
	must(t, os.WriteFile(caFile, certs.CertPEM(e.CA.Cert), 0o644))
	p := e.Partners[id]
	must(t, certs.WriteFiles(certFile, keyFile, p.TLS.Leaf, p.TLS.PrivateKey.(*ecdsa.PrivateKey)))
	b, err := json.Marshal(p.SigningKey)
	must(t, err)
	must(t, os.WriteFile(jwkFile, b, 0o600))
	return
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// FullDisk runs f as if the disk were full: every write past the first byte
// of a file fails. It sets the process's file-size limit (RLIMIT_FSIZE),
// which needs no privilege, to one byte, and restores it when f returns.
// The write fails with EFBIG where a full disk gives ENOSPC; SQLite takes
// both for an I/O error of the write. The limit holds for the whole test
// process, so f must not run beside tests that write files.
func FullDisk(t testing.TB, f func()) {
	t.Helper()
	var room syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &room); err != nil {
		t.Fatal(err)
	}
	full := room
	full.Cur = 1
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &full); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &room); err != nil {
			t.Fatal(err)
		}
	}()
	f()
}
