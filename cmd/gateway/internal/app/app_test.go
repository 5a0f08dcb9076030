package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
	"github.com/perkeso/jambatan/cmd/gateway/internal/correlation"
	"github.com/perkeso/jambatan/cmd/gateway/internal/devmode"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/jwsin"
	"github.com/perkeso/jambatan/cmd/gateway/internal/kafkaclient"
	"github.com/perkeso/jambatan/cmd/gateway/internal/outbound"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/relay"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// TestEventBuilderBound: the events' bound follows kafka.max_message_bytes.
func TestEventBuilderBound(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cluster  int // kafka.max_message_bytes
		value    int // an event's value
		tooLarge bool
	}{
		{"ok/default-cluster", config.DefaultKafkaMaxMessageBytes, 900 << 10, false},
		{"fail/default-cluster", config.DefaultKafkaMaxMessageBytes, 1 << 20, true},
		{"ok/small-cluster", 256 << 10, 200 << 10, false},
		{"fail/small-cluster", 256 << 10, 250 << 10, true},
		{"ok/large-cluster", 4 << 20, 2 << 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{File: config.File{Kafka: config.Kafka{MaxMessageBytes: tc.cluster}}}
			b := eventBuilder(cfg, events.DefaultTopics, nil)
			err := b.Check(store.Message{Value: make([]byte, tc.value)}, nil)
			if errors.Is(err, events.ErrTooLarge) != tc.tooLarge {
				t.Fatalf("Check: %v", err)
			}
		})
	}
}

// TestReadyCRL: a CRL past its next update fails /readyz and shows a
// negative gauge; a fresh one passes; a reload swaps what is watched while
// /readyz and the metrics refresh read it (run with -race: the watched set
// was a map written by the reload and read by both).
func TestReadyCRL(t *testing.T) {
	g, l := devGateway(t)
	ca, err := certs.LoadCA(l.CACert, l.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	writeCRL := func(next time.Time) {
		b, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(time.Now().UnixNano()),
			ThisUpdate: next.Add(-48 * time.Hour), NextUpdate: next}, ca.Cert, ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		useCRL(t, l, b)
	}
	good, err := os.ReadFile(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	writeCRL(time.Now().Add(-time.Hour))
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	ready := func() (Check, bool) {
		checks, ok := g.Ready(ctx)
		if !checks["certificate:server"].OK || !checks["certificate:soap-signing"].OK || !checks["store"].OK {
			t.Fatalf("other checks failed: %+v", checks)
		}
		return checks["crl:clients.crl"], ok
	}
	gauge := func() (float64, bool) { return metricValue(t, g, "jambatan_crl_next_update_seconds", "clients.crl") }

	c, ok := ready()
	if ok || c.OK || !strings.Contains(c.Detail, "stale since") {
		t.Fatalf("fail/stale: ready %v, check %+v", ok, c)
	}
	if v, found := gauge(); !found || v > -3000 || v < -4000 {
		t.Fatalf("fail/stale: gauge %v (found %v), want about -3600", v, found)
	}

	writeCRL(time.Now().Add(24 * time.Hour))
	done := make(chan struct{})
	go func() { // readers during the reloads
		defer close(done)
		for i := 0; i < 50; i++ {
			g.Ready(ctx)
			g.refresh(ctx)
		}
	}()
	for i := 0; i < 5; i++ {
		if err := g.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	if c, ok := ready(); !ok || !c.OK || !strings.Contains(c.Detail, "next update due") {
		t.Fatalf("ok/fresh: ready %v, check %+v", ok, c)
	}
	if v, found := gauge(); !found || v < 23*3600 || v > 24*3600 {
		t.Fatalf("ok/fresh: gauge %v (found %v), want about 86400", v, found)
	}

	if err := os.WriteFile(l.Config, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if c, ok := ready(); !ok || c != (Check{}) {
		t.Fatalf("ok/no-crl: ready %v, check %+v", ok, c)
	}
	if _, found := gauge(); found {
		t.Fatal("ok/no-crl: the dropped CRL's gauge is still served")
	}
}

// employerClient serves g and is the demo employer's client of it.
func employerClient(t *testing.T, g *Gateway, l devmode.Layout) *partnerkit.Client {
	t.Helper()
	ln, _ := serve(t, g)
	kit := l.Kit("demo-employer")
	c, err := partnerkit.NewClient("https://"+ln.Addr().String(), l.CACert, kit.ClientCert, kit.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// employerNotice is employerClient with the demo employer's signing key
// and example A of sg-employer-notice/v1, unsigned.
func employerNotice(t *testing.T, g *Gateway, l devmode.Layout) (*partnerkit.Client, jwk.Key, []byte) {
	t.Helper()
	c := employerClient(t, g, l)
	key, err := partnerkit.LoadSigningKey(l.Kit("demo-employer").SigningJWK)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "adapters", "sgemployer", "testdata", "example-a.in.json"))
	if err != nil {
		t.Fatal(err)
	}
	return c, key, doc
}

// useCRL writes der as the dev directory's pki/clients.crl and names that
// file in the configuration's tls.crl_files, for the next Reload.
func useCRL(t *testing.T, l devmode.Layout, der []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(l.Dir, "pki", "clients.crl"), der, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cfg, []byte(`"crl_files"`)) {
		return
	}
	withCRL := bytes.Replace(cfg, []byte(`"client_ca_file": "pki/ca.pem"`), []byte(`"client_ca_file": "pki/ca.pem", "crl_files": ["pki/clients.crl"]`), 1)
	if bytes.Equal(withCRL, cfg) {
		t.Fatal("config layout changed")
	}
	if err := os.WriteFile(l.Config, withCRL, 0o644); err != nil {
		t.Fatal(err)
	}
}

// devGateway assembles a gateway (not listening) on a fresh dev directory,
// its configuration changed by edit, if given.
func devGateway(t *testing.T, edit ...func(*config.Config)) (*Gateway, devmode.Layout) {
	t.Helper()
	return devGatewayLogging(t, slog.New(slog.DiscardHandler), edit...)
}

// devGatewayLogging is devGateway logging to log.
func devGatewayLogging(t *testing.T, log *slog.Logger, edit ...func(*config.Config)) (*Gateway, devmode.Layout) {
	t.Helper()
	l, _, err := devmode.Ensure(filepath.Join(t.TempDir(), "dev"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range edit {
		e(cfg)
	}
	g, err := New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Store.Close() })
	return g, l
}

// serve serves g on loopback, its partners' listener and its ops listener,
// until the test ends.
func serve(t *testing.T, g *Gateway) (ln, ops net.Listener) {
	t.Helper()
	ln, err := g.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if ops, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, ln, ops) }()
	t.Cleanup(func() { cancel(); <-served })
	return ln, ops
}

// TestOpsHandler: the ops listener's routes answer with a correlation id,
// and a request no route takes is a problem (404, or 405 for a route's path
// under another method) with that id.
func TestOpsHandler(t *testing.T) {
	g, _ := devGateway(t)
	srv := httptest.NewServer(g.OpsHandler())
	defer srv.Close()
	for _, tc := range []struct {
		name, method, path string
		status             int
		contentType, allow string
	}{
		{"ok/metrics", "GET", "/metrics", 200, "text/plain", ""},
		{"ok/healthz", "GET", "/healthz", 200, "application/json", ""},
		{"ok/readyz", "GET", "/readyz", 200, "application/json", ""},
		{"ok/cpu-profile", "GET", "/debug/pprof/profile?seconds=1", 200, "application/octet-stream", ""},
		{"ok/heap-profile", "GET", "/debug/pprof/heap", 200, "application/octet-stream", ""},
		{"ok/trace", "GET", "/debug/pprof/trace?seconds=0.1", 200, "application/octet-stream", ""},
		{"fail/no-such-route", "GET", "/nothing", 404, "application/problem+json", ""},
		{"fail/wrong-method", "POST", "/readyz", 405, "application/problem+json", "GET, HEAD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			id := r.Header.Get("X-Correlation-ID")
			if r.StatusCode != tc.status || !strings.HasPrefix(r.Header.Get("Content-Type"), tc.contentType) || len(id) != 32 || r.Header.Get("Allow") != tc.allow {
				t.Fatalf("%d %q, Allow %q, correlation id %q: %s", r.StatusCode, r.Header.Get("Content-Type"), r.Header.Get("Allow"), id, b)
			}
			var doc struct{ Instance string }
			if tc.status >= 400 && (json.Unmarshal(b, &doc) != nil || doc.Instance != id) {
				t.Fatalf("problem without its correlation id %s: %s", id, b)
			}
		})
	}
}

// metricValue refreshes g's gauges and reads one series of a gauge or a
// counter by its only label's value ("" for one without labels).
func metricValue(t *testing.T, g *Gateway, name, label string) (float64, bool) {
	t.Helper()
	g.refresh(context.Background())
	mfs, err := g.Metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				if l := m.GetLabel(); len(l) == 0 && label == "" || len(l) > 0 && l[0].GetValue() == label {
					if m.Counter != nil {
						return m.GetCounter().GetValue(), true
					}
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// TestCertExpirySeries: the expiry gauges cover what the gateway uses now:
// a partner's client certificate once it has connected, while the partner
// is registered, and the signing CA of a registered agency; a reload that
// removes the agency removes its series.
func TestCertExpirySeries(t *testing.T) {
	g, l := devGateway(t)
	cc, err := certs.LoadCertificates(l.Kit("demo-employer").ClientCert)
	if err != nil {
		t.Fatal(err)
	}
	const metric = "jambatan_certificate_expiry_seconds"
	g.M.ObservePartnerCert("demo-employer", cc[0], time.Now())
	g.M.ObservePartnerCert("no-longer-registered", cc[0], time.Now())
	for _, tc := range []struct {
		label string
		want  bool
	}{{"server", true}, {"client-ca-0", true}, {"soap-signing", true}, {"partner:demo-employer", true},
		{"signing-ca:demo-agency:0", true}, {"partner:no-longer-registered", false}} {
		if v, found := metricValue(t, g, metric, tc.label); found != tc.want || (found && v < 24*3600) {
			t.Fatalf("%s: %v (found %v), want found %v and more than a day", tc.label, v, found, tc.want)
		}
	}

	gatewaytest.EditConfig(t, l.Config, l.Config, func(f map[string]any) {
		var kept []any
		for _, p := range f["partners"].([]any) {
			if p.(map[string]any)["id"] != "demo-agency" {
				kept = append(kept, p)
			}
		}
		f["partners"] = kept
	})
	if err := g.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, found := metricValue(t, g, metric, "signing-ca:demo-agency:0"); found {
		t.Fatal("a removed agency's signing CA still has an expiry series")
	}
	if _, found := metricValue(t, g, metric, "partner:demo-employer"); !found {
		t.Fatal("a registered partner's series went with the reload")
	}
}

// TestReadyStore: the store check fails while the store's writes fail
// (here on a full disk), and still once Ping's own write commits again, as
// it may on a disk with no room to grow; it passes again once a write has
// committed.
func TestReadyStore(t *testing.T) {
	g, _ := devGateway(t)
	ctx := context.Background()
	check := func() Check {
		checks, _ := g.Ready(ctx)
		return checks["store"]
	}
	write := func() error {
		return g.Store.Log(ctx, &store.Entry{CorrelationID: "c-ready", PartnerID: "demo-employer", ReceivedAt: time.Now(),
			Route: "POST /v1/injury-notices", Status: 400, Outcome: store.OutcomeRejected})
	}
	if c := check(); !c.OK {
		t.Fatalf("ok/writable: %+v", c)
	}
	var failed error
	var full Check
	gatewaytest.FullDisk(t, func() {
		failed = write()
		full = check()
	})
	if failed == nil || full.OK {
		t.Fatalf("fail/full-disk: write %v, check %+v", failed, full)
	}
	if c := check(); c.OK || !strings.Contains(c.Detail, "writes are failing") {
		t.Fatalf("fail/no-write-since: %+v", c)
	}
	if err := write(); err != nil {
		t.Fatal(err)
	}
	if c := check(); !c.OK {
		t.Fatalf("ok/written-again: %+v", c)
	}
}

// TestReadyRelayOnTheOutbox: a relay that cannot read its outbox (the
// table taken away, as from a store that is down) does not make the kafka
// check say the broker is unreachable: its detail names the outbox.
func TestReadyRelayOnTheOutbox(t *testing.T) {
	g, _ := devGateway(t, func(c *config.Config) { c.File.Kafka.Brokers = []string{"127.0.0.1:1"} }) // never reached
	serve(t, g)
	ctx := context.Background()
	if _, err := g.Store.DB().Exec(`ALTER TABLE outbox RENAME TO outbox_away`); err != nil {
		t.Fatal(err)
	}
	g.Relay.Wake()
	gatewaytest.Until(t, 10*time.Second, 20*time.Millisecond, func() error {
		if g.Relay.Status(ctx).Failing == "" {
			return errors.New("the relay has not failed to read its outbox")
		}
		return nil
	})
	checks, _ := g.Ready(ctx)
	if c := checks["kafka"]; !strings.Contains(c.Detail, "the outbox cannot be read") || strings.Contains(c.Detail, "unreachable") {
		t.Fatalf("kafka check %+v: want the outbox named, not the broker", c)
	}
}

// TestDrainUndone: a gateway that stops with events it could not publish
// says that its outbox was not drained, and why: with the broker away, how
// many are left for the next start; with the outbox unreadable (the table
// taken away, as from a store that is down), the store's error and no count
// (it said nothing, as if nothing were left).
func TestDrainUndone(t *testing.T) {
	for _, tc := range []struct {
		name, edit string
		want       []string
		not        string
	}{
		{"fail/broker-away", `INSERT INTO outbox (topic, msg_key, headers, value, created_at) VALUES ('t', 'k', '[]', '{}', '2026-01-01T00:00:00Z')`,
			[]string{"published=0", "left=1"}, "no such table"},
		{"fail/store-away", `ALTER TABLE outbox RENAME TO outbox_away`,
			[]string{"published=0", "no such table"}, "left="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logged gatewaytest.SyncBuffer
			g, _ := devGatewayLogging(t, slog.New(slog.NewTextHandler(&logged, nil)), func(c *config.Config) { c.File.Kafka.Brokers = []string{"127.0.0.1:1"} })
			if _, err := g.Store.DB().Exec(tc.edit); err != nil {
				t.Fatal(err)
			}
			g.drain()
			out := logged.String()
			if !strings.Contains(out, "outbox not drained as the gateway stops") || strings.Contains(out, tc.not) {
				t.Fatalf("the stop logged:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Fatalf("the stop's log lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestConnectionLimit: the partner listener holds at most
// limits.max_connections open; past it a client's handshake waits until an
// open connection closes, and the metrics show both. The ops listener holds
// at most MaxAdminConnections.
func TestConnectionLimit(t *testing.T) {
	g, l := devGateway(t, func(c *config.Config) { c.File.Limits.MaxConnections = 2 })
	ln, ops := serve(t, g)

	kit := l.Kit("demo-employer")
	cert, err := tls.LoadX509KeyPair(kit.ClientCert, kit.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	ca, err := os.ReadFile(l.CACert)
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(ca)
	dial := func(timeout time.Duration) (*tls.Conn, error) {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}}}
		dctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c, err := d.DialContext(dctx, "tcp", ln.Addr().String())
		if err != nil {
			return nil, err
		}
		return c.(*tls.Conn), nil
	}
	var open []*tls.Conn
	for range 2 {
		c, err := dial(10 * time.Second)
		if err != nil {
			t.Fatalf("ok/under-limit: %v", err)
		}
		defer c.Close()
		open = append(open, c)
	}
	if c, err := dial(300 * time.Millisecond); err == nil {
		c.Close()
		t.Fatal("fail/at-limit: a third handshake completed with 2 connections open and a bound of 2")
	}
	open[0].Close()
	third, err := dial(10 * time.Second)
	if err != nil {
		t.Fatalf("ok/after-close: %v", err)
	}
	defer third.Close()
	if v, found := metricValue(t, g, "jambatan_connections_open", ""); !found || v != 2 {
		t.Fatalf("jambatan_connections_open %v (found %v), want 2", v, found)
	}
	if v, found := metricValue(t, g, "jambatan_connection_limit_waits_total", ""); !found || v < 1 {
		t.Fatalf("jambatan_connection_limit_waits_total %v (found %v), want at least 1", v, found)
	}

	// The ops listener holds MaxAdminConnections.
	healthz := func(timeout time.Duration) error {
		c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get("http://" + ops.Addr().String() + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	var held []net.Conn
	for range MaxAdminConnections {
		c, err := net.Dial("tcp", ops.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	time.Sleep(100 * time.Millisecond) // let the server accept them
	if err := healthz(300 * time.Millisecond); err == nil {
		t.Fatalf("fail/ops-at-limit: /healthz answered with %d connections held", MaxAdminConnections)
	}
	held[0].Close()
	if err := healthz(10 * time.Second); err != nil {
		t.Fatalf("ok/ops-after-close: %v", err)
	}
}

// TestMetricsLint: the gateway's metrics pass Prometheus's own linter
// (promlint: counters end in _total, units in base units and in the name,
// help on every metric), so dashboards and alerts can be written the usual
// way. A family with no series yet is not gathered, so the test gives
// each labelled one a series first.
func TestMetricsLint(t *testing.T) {
	g, _ := devGateway(t)
	gatherAll(t, g)
	problems, err := testutil.GatherAndLint(g.Metrics)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// gatherAll gathers every metric family of g, giving each labelled one a
// series first (a family with none is not gathered).
func gatherAll(t *testing.T, g *Gateway) []*dto.MetricFamily {
	t.Helper()
	g.refresh(context.Background())
	g.M.Requests.WithLabelValues("POST /v1/injury-notices", "demo-employer", "202").Inc()
	g.M.Verification.WithLabelValues("signature").Inc()
	g.M.Latency.WithLabelValues("POST /v1/injury-notices").Observe(0.01)
	g.M.CRLNext.WithLabelValues("clients.crl").Set(3600)
	families, err := g.Metrics.Gather()
	if err != nil || len(families) < 50 {
		t.Fatalf("%d metric families gathered (%v)", len(families), err)
	}
	return families
}

// TestAlertMetricsExist: each metric the README's alert table names is one
// the gateway exports, with the labels the rules select or group by, so
// the table cannot drift from the code; a label value a rule matches exactly
// is a series the gateway shows from its start.
func TestAlertMetricsExist(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "**What to alert on**")
	if table, _, _ = strings.Cut(table, "\n\n**"); !ok {
		t.Fatal("the README has no alert table")
	}
	g, _ := devGateway(t)
	labels := map[string]map[string]bool{} // family -> its label names
	values := map[string]bool{}            // `family{label="value"}` of each series
	for _, f := range gatherAll(t, g) {
		labels[f.GetName()] = map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[f.GetName()][l.GetName()] = true
				values[fmt.Sprintf("%s{%s=%q", f.GetName(), l.GetName(), l.GetValue())] = true
			}
		}
		if f.GetType() == dto.MetricType_HISTOGRAM {
			labels[f.GetName()+"_bucket"] = maps.Clone(labels[f.GetName()])
			labels[f.GetName()+"_bucket"]["le"] = true
		}
	}
	metric := regexp.MustCompile(`jambatan_[a-z_]+`)
	label := regexp.MustCompile(`\{([a-z_]+)=|by \(([a-z_]+)\)`)
	selector := regexp.MustCompile(`jambatan_[a-z_]+\{[a-z_]+="[^"]*"`)
	rules := 0
	for line := range strings.Lines(table) {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		rule, _, _ := strings.Cut(line[1:], "|")
		rules++
		for _, n := range metric.FindAllString(line, -1) { // the rule's, and those its row names
			if labels[n] == nil {
				t.Errorf("%s: the gateway exports no %s", strings.TrimSpace(rule), n)
			}
		}
		// A label matched exactly names a series the gateway shows from
		// its start (a series first seen with its first event hides that
		// event from increase()).
		for _, sel := range selector.FindAllString(rule, -1) {
			if !values[sel] {
				t.Errorf("%s: the gateway shows no series %s}", strings.TrimSpace(rule), sel)
			}
		}
		names := metric.FindAllString(rule, -1)
		for _, m := range label.FindAllStringSubmatch(rule, -1) {
			l := m[1] + m[2]
			if !slices.ContainsFunc(names, func(n string) bool { return labels[n][l] }) {
				t.Errorf("%s: no metric of the rule has the label %q", strings.TrimSpace(rule), l)
			}
		}
	}
	if rules < 5 {
		t.Fatalf("read %d rules from the README's alert table", rules)
	}
}

// TestVerificationFailureKinds: each refused signature counts once in
// jambatan_verification_failures_total under the kind jwsin gave it, and an
// accepted notice counts nowhere.
func TestVerificationFailureKinds(t *testing.T) {
	g, l := devGateway(t)
	c, key, doc := employerNotice(t, g, l)
	compact, err := partnerkit.Sign(doc, key, partnerkit.Compact)
	if err != nil {
		t.Fatal(err)
	}
	// Every kind is a series from the start, at zero.
	kinds := []string{"ws-security:client.signature.invalid", "ws-security:mustUnderstand", "outbound-request"}
	for _, k := range jwsin.Kinds() {
		kinds = append(kinds, string(k))
	}
	for _, k := range kinds {
		if v, ok := metricValue(t, g, "jambatan_verification_failures_total", k); !ok || v != 0 {
			t.Errorf("kind %s before any refusal: %v (present %t), want a zero", k, v, ok)
		}
	}
	parts := strings.Split(compact, ".")
	header := func(h string) string { return base64.RawURLEncoding.EncodeToString([]byte(h)) }
	jose := map[string]string{"Content-Type": "application/jose"}
	for _, tc := range []struct {
		name, body string
		status     int
		kind       string // "" for accepted
	}{
		{"ok/accepted", compact, 202, ""},
		{"fail/signature", parts[0] + "." + parts[1] + "." + parts[2][:10] + strings.Repeat("A", len(parts[2])-10), 401, "signature"},
		{"fail/kid", header(`{"alg":"ES256","kid":"nobody"}`) + "." + parts[1] + "." + parts[2], 401, "kid"},
		{"fail/alg", header(`{"alg":"HS256","kid":"demo-employer-2026-1"}`) + "." + parts[1] + "." + parts[2], 401, "alg"},
		{"fail/typ", header(`{"alg":"ES256","kid":"demo-employer-2026-1","typ":"JWT"}`) + "." + parts[1] + "." + parts[2], 401, "typ"},
		{"fail/malformed", parts[0] + "." + parts[1], 401, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := map[string]float64{}
			for _, k := range []string{"signature", "kid", "alg", "typ", "malformed"} {
				before[k], _ = metricValue(t, g, "jambatan_verification_failures_total", k)
			}
			resp, err := c.Raw("POST", "/v1/injury-notices", jose, []byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.Status, tc.status, resp.Body)
			}
			for k, was := range before {
				now, _ := metricValue(t, g, "jambatan_verification_failures_total", k)
				if want := was + map[bool]float64{true: 1}[k == tc.kind]; now != want {
					t.Errorf("kind %s counted %v, want %v", k, now, want)
				}
			}
		})
	}
}

// TestOutboundTopicCreatedLater: a gateway started before the cluster has
// its outbound topic reads the requests written once the topic is created
// (a consumer group started on the missing topic never read it, even once
// it existed, until a restart). The line that says the topic is missing
// and the one that says reading starts share an id of their own.
func TestOutboundTopicCreatedLater(t *testing.T) {
	var logged gatewaytest.SyncBuffer
	g, l, addrs := kafkaGatewayLogging(t, slog.New(correlation.NewHandler(slog.NewTextHandler(&logged, nil))))
	gatewaytest.Until(t, 20*time.Second, 10*time.Millisecond, func() error {
		if !strings.Contains(logged.String(), "outbound requests are not read") {
			return fmt.Errorf("the missing topic not logged:\n%s", logged.String())
		}
		return nil
	})
	admin := &kafka.Client{Addr: kafka.TCP(addrs...)}
	if _, err := admin.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: g.Config.File.Outbound.Topic, NumPartitions: 1, ReplicationFactor: 1}}}); err != nil {
		t.Fatal(err)
	}
	writeRequest(t, g, l, addrs[0], 0, "late-001")
	waitDeliveries(t, g, 40*time.Second, "late-001")
	out := logged.String()
	missing := regexp.MustCompile(`msg="outbound requests are not read[^"]*" correlation_id=([0-9a-f]{32})`).FindAllStringSubmatch(out, -1)
	found := regexp.MustCompile(`msg="the cluster has topic `+regexp.QuoteMeta(g.Config.File.Outbound.Topic)+`; reading outbound requests" correlation_id=([0-9a-f]{32})`).FindAllStringSubmatch(out, -1)
	if len(missing) != 1 || len(found) != 1 || missing[0][1] != found[0][1] {
		t.Fatalf("the missing topic's line and the found one's: %q and %q, want one each with one id:\n%s", missing, found, out)
	}
}

// TestOutboundPartitionsAdded: partitions added to the outbound topic while
// the gateway reads it are read too (earlier builds read the partitions
// they were given when they joined, and a request keyed to a new one
// waited unread until a restart).
func TestOutboundPartitionsAdded(t *testing.T) {
	g, l, addrs := kafkaGateway(t, "perkeso.outbound.v1") // the default outbound topic
	writeRequest(t, g, l, addrs[0], 0, "first-001")
	waitDeliveries(t, g, 20*time.Second, "first-001")
	admin := &kafka.Client{Addr: kafka.TCP(addrs...)}
	res, err := admin.CreatePartitions(context.Background(), &kafka.CreatePartitionsRequest{Topics: []kafka.TopicPartitionsConfig{{Name: g.Config.File.Outbound.Topic, Count: 3}}})
	if err != nil || res.Errors[g.Config.File.Outbound.Topic] != nil {
		t.Fatalf("create partitions: %v %v", err, res)
	}
	writeRequest(t, g, l, addrs[0], 2, "added-001")
	waitDeliveries(t, g, 4*kafkaclient.PartitionWatchInterval, "added-001", "first-001")
}

// kafkaGateway serves a dev gateway whose broker is a cluster of one
// partition a topic, holding the topics it publishes to and extra.
func kafkaGateway(t *testing.T, extra ...string) (*Gateway, devmode.Layout, []string) {
	t.Helper()
	return kafkaGatewayLogging(t, slog.New(slog.DiscardHandler), extra...)
}

// kafkaGatewayLogging is kafkaGateway logging to log.
func kafkaGatewayLogging(t *testing.T, log *slog.Logger, extra ...string) (*Gateway, devmode.Layout, []string) {
	t.Helper()
	topics := Topics(config.Kafka{})
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(1, append([]string{topics.Verified, topics.Rejected, topics.CaseMessages, outbound.StatusTopic}, extra...)...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	addrs := cluster.ListenAddrs()
	g, l := devGatewayLogging(t, log, func(c *config.Config) { c.File.Kafka.Brokers = addrs })
	serve(t, g)
	return g, l, addrs
}

// writeRequest writes an outbound request with id to partition of the
// gateway's outbound topic, signed as the dev back office signs.
func writeRequest(t *testing.T, g *Gateway, l devmode.Layout, broker string, partition int, id string) {
	t.Helper()
	key, err := partnerkit.LoadSigningKey(l.BackOfficeKey)
	if err != nil {
		t.Fatal(err)
	}
	writeSignedRequest(t, g, key, broker, partition, id)
}

// writeSignedRequest is writeRequest signed with key.
func writeSignedRequest(t *testing.T, g *Gateway, key jwk.Key, broker string, partition int, id string) {
	t.Helper()
	request := []byte(`{"id":"` + id + `","partner":"demo-agency","messageType":"NotifyDecision","caseId":"MY:PERKESO:XB-1","payload":{}}`)
	sig, err := partnerkit.Sign(request, key, partnerkit.Detached)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := kafka.DialLeader(context.Background(), "tcp", broker, g.Config.File.Outbound.Topic, partition)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.WriteMessages(kafka.Message{Value: request,
		Headers: []kafka.Header{{Key: outbound.RequestSignatureHeader, Value: []byte(sig)}}}); err != nil {
		t.Fatal(err)
	}
}

// waitDeliveries waits until the gateway's deliveries are those of keys
// (newest first).
func waitDeliveries(t *testing.T, g *Gateway, within time.Duration, keys ...string) {
	t.Helper()
	gatewaytest.Until(t, within, 100*time.Millisecond, func() error {
		ds, err := g.Store.DeliveriesOf(context.Background(), "", "", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range ds {
			got = append(got, d.Key)
		}
		if !slices.Equal(got, keys) {
			return fmt.Errorf("deliveries %q, want %q: the requests written were not read", got, keys)
		}
		return nil
	})
}

// TestHealthDetail: the ops listener's /healthz says how many entries the
// message log holds, the outbox's state (the relay's, or without Kafka
// brokers its backlog and why nothing publishes) and, with outbound
// delivery on, the deliveries by state.
func TestHealthDetail(t *testing.T) {
	for _, tc := range []struct {
		name         string
		edit         func(*config.Config)
		relay        bool
		outboxError  string
		withDelivery bool
	}{
		{"ok/relay", func(c *config.Config) { c.File.Kafka.Brokers = []string{"127.0.0.1:1"} }, true, "", true}, // not started
		{"ok/no-brokers", func(c *config.Config) { c.File.Kafka.Brokers = nil }, false, "no kafka brokers configured", true},
		{"ok/no-outbound", func(c *config.Config) { c.File.Outbound = config.Outbound{} }, false, "no kafka brokers configured", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, _ := devGateway(t, tc.edit)
			if (g.Relay != nil) != tc.relay || (g.Deliverer != nil) != tc.withDelivery {
				t.Fatalf("relay %v, deliverer %v; the case expects %v, %v", g.Relay != nil, g.Deliverer != nil, tc.relay, tc.withDelivery)
			}
			h, ok := g.Health(context.Background())
			outbox, _ := h["outbox"].(relay.Status)
			_, deliveries := h["deliveries"]
			if !ok || h["status"] != "ok" || h["messageLogEntries"] != int64(0) || h["outbox"] == nil ||
				outbox.LastError != tc.outboxError || deliveries != tc.withDelivery {
				t.Fatalf("health %v (ok %v)", h, ok)
			}
		})
	}
}

// TestTopics: each topic named in the configuration replaces its default;
// the others keep theirs.
func TestTopics(t *testing.T) {
	var k config.Kafka
	if got := Topics(k); got != events.DefaultTopics {
		t.Fatalf("no names: %+v, want the defaults", got)
	}
	k.Topics.Verified, k.Topics.Rejected, k.Topics.CaseMessages = "v", "r", "c"
	if got := Topics(k); got.Verified != "v" || got.Rejected != "r" || got.CaseMessages != "c" {
		t.Fatalf("all named: %+v", got)
	}
	k.Topics.Rejected = ""
	if got := Topics(k); got.Verified != "v" || got.Rejected != events.DefaultTopics.Rejected || got.CaseMessages != "c" {
		t.Fatalf("rejected left out: %+v", got)
	}
}

// TestOutboxOldestAge: the age of the outbox's oldest unpublished event is
// 0 with nothing waiting and grows once an accepted notice's event waits
// (here for a relay the gateway does not have).
func TestOutboxOldestAge(t *testing.T) {
	g, l := devGateway(t)
	c, key, doc := employerNotice(t, g, l)
	if age, ok := metricValue(t, g, "jambatan_outbox_oldest_age_seconds", ""); !ok || age != 0 {
		t.Fatalf("nothing waiting: age %v (present %t), want 0", age, ok)
	}
	resp, err := c.Submit("/v1/injury-notices", doc, key, partnerkit.Compact)
	if err != nil || resp.Status != 202 {
		t.Fatalf("notice: %v %+v", err, resp)
	}
	time.Sleep(20 * time.Millisecond)
	if age, ok := metricValue(t, g, "jambatan_outbox_oldest_age_seconds", ""); !ok || age <= 0 || age > 60 {
		t.Fatalf("an event waiting: age %v s (present %t)", age, ok)
	}
}

// TestDeliveriesInFlightFreedAtStart: a gateway started on the SQLite store
// of one killed with a delivery in flight sends it at once, not after its
// lease, and says how many it found; one that finds none says nothing.
func TestDeliveriesInFlightFreedAtStart(t *testing.T) {
	var quiet gatewaytest.SyncBuffer
	g, l := devGatewayLogging(t, slog.New(slog.NewTextHandler(&quiet, nil)))
	if out := quiet.String(); strings.Contains(out, "in flight") {
		t.Fatalf("ok/none-in-flight: the start logged:\n%s", out)
	}
	ctx := context.Background()
	if _, err := g.Store.Enqueue(ctx, &store.Delivery{Key: "in-flight-1", PartnerID: "demo-agency", MessageType: "NotifyDecision",
		CaseID: "MY:PERKESO:XB-1", Payload: []byte(`{}`)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if due, err := g.Store.ClaimDue(ctx, time.Now(), time.Hour, 10); err != nil || len(due) != 1 {
		t.Fatalf("claimed %d, %v", len(due), err)
	}
	g.Store.Close() // killed: the attempt never recorded, the lease an hour long

	cfg, err := config.Load(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	var logged gatewaytest.SyncBuffer
	again, err := New(cfg, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer again.Store.Close()
	if out := logged.String(); !strings.Contains(out, "outbound deliveries in flight when the gateway last ended are due again") || !strings.Contains(out, "deliveries=1") {
		t.Fatalf("the start logged:\n%s", out)
	}
	if due, err := again.Store.ClaimDue(ctx, time.Now(), time.Minute, 10); err != nil || len(due) != 1 || due[0].Key != "in-flight-1" {
		t.Fatalf("due after the start: %d, %v; want the delivery in flight", len(due), err)
	}
}
