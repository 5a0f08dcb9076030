package app

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/perkeso/jambatan/cmd/gateway/internal/correlation"
	"github.com/perkeso/jambatan/cmd/gateway/internal/problem"
	"github.com/perkeso/jambatan/cmd/gateway/internal/relay"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// Health is the ops view of the gateway.
func (g *Gateway) Health(ctx context.Context) (map[string]any, bool) {
	h := map[string]any{"status": "ok"}
	n, err := g.Store.Entries(ctx)
	if err != nil {
		h["status"], h["store"] = "unavailable", err.Error()
		return h, false
	}
	h["messageLogEntries"] = n
	if g.Deliverer != nil {
		if c, err := g.Store.DeliveryCounts(ctx); err == nil {
			h["deliveries"] = c
		}
	}
	if g.Relay != nil {
		h["outbox"] = g.Relay.Status(ctx)
	} else if b, err := g.Store.OutboxBacklog(ctx); err == nil {
		h["outbox"] = relay.Status{Backlog: b, LastError: "no kafka brokers configured"}
	}
	return h, true
}

// refresh sets the gauges read from the store and the certificates.
func (g *Gateway) refresh(ctx context.Context) {
	now := time.Now()
	if at, ok, err := g.Store.OutboxOldest(ctx); err == nil {
		age := 0.0
		if ok {
			age = now.Sub(at).Seconds()
		}
		g.M.OutboxOldest.Set(age)
	}
	if c, err := g.Store.DeliveryCounts(ctx); err == nil {
		for _, st := range []string{store.DeliveryPending, store.DeliveryDelivered, store.DeliveryDead} {
			g.M.Deliveries.WithLabelValues(st).Set(float64(c[st]))
		}
	}
	watch := g.watch.Load()
	crlNext := map[string]time.Time{}
	for name, c := range watch.crls {
		if !c.crl.NextUpdate.IsZero() { // a CRL that names no next update has no gauge
			crlNext[name] = c.crl.NextUpdate
		}
	}
	g.M.SetCertExpiries(watch.certs, crlNext, func(id string) bool { _, ok := g.Config.Partners.ByID(id); return ok }, now)
	if g.Relay != nil {
		g.Relay.Status(ctx) // sets the backlog gauge
	}
}

// Check is one readiness check.
type Check struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	// Partner names the partner whose material a check watches (an
	// agency's signing CA or its CRL, an endpoint's CA, CRL or client
	// certificate). Such a check is reported but leaves the gateway ready:
	// it concerns that partner's messages alone, which fail on their own,
	// and a readiness probe failing on every instance for it would take
	// the intake away from every partner.
	Partner string `json:"partner,omitempty"`
}

// Ready runs the readiness checks: the store is writable, Kafka is reachable
// or the outbox is within bounds, no certificate has expired and no CRL is
// past its next update (a partner's own are reported, and leave it ready).
func (g *Gateway) Ready(ctx context.Context) (map[string]Check, bool) {
	checks := map[string]Check{}
	if err := g.Store.Ping(ctx); err != nil {
		checks["store"] = Check{Detail: err.Error()}
	} else if err := g.Store.WriteFailure(WriteFailureWindow); err != nil {
		checks["store"] = Check{Detail: "writes are failing: " + err.Error()}
	} else {
		checks["store"] = Check{OK: true}
	}
	if g.Relay != nil {
		st := g.Relay.Status(ctx)
		switch {
		case st.LastError == "":
			checks["kafka"] = Check{OK: true, Detail: fmt.Sprintf("backlog %d", st.Backlog)}
		case st.Backlog <= MaxBacklog:
			checks["kafka"] = Check{OK: true, Detail: fmt.Sprintf("%s, backlog %d within %d", relayFailing[st.Failing], st.Backlog, MaxBacklog)}
		default:
			checks["kafka"] = Check{Detail: fmt.Sprintf("%s, backlog %d over %d: %s", relayFailing[st.Failing], st.Backlog, MaxBacklog, st.LastError)}
		}
	}
	maps.Copy(checks, g.watch.Load().checks(time.Now()))
	ok := true
	for _, c := range checks {
		ok = ok && (c.OK || c.Partner != "")
	}
	return checks, ok
}

// relayFailing says what stops the relay, in the kafka check's detail: the
// broker, or the store's outbox (a failing store has its own check), or
// an event that cannot be built.
var relayFailing = map[relay.Side]string{
	relay.SideKafka:  "unreachable",
	relay.SideOutbox: "not publishing: the outbox cannot be read or marked",
	relay.SideRender: "not publishing: an event cannot be built",
}

// WriteFailureWindow is how long a failed write, with none committed since,
// keeps the store check failing. Longer, and a gateway that readiness has
// turned traffic away from, so that nothing writes, would stay unready
// after its disk has room again; a write is the only test of that.
const WriteFailureWindow = 30 * time.Second

// MaxBacklog is the outbox backlog above which a gateway that cannot reach
// Kafka stops reporting ready.
const MaxBacklog = 100000

// opsRoutes are the ops listener's routes (its profiles aside).
var opsRoutes = []problem.Route{{Method: "GET", Path: "/metrics"}, {Method: "GET", Path: "/healthz"}, {Method: "GET", Path: "/readyz"}}

// OpsHandler serves /metrics (Prometheus), /healthz (the process is up, with
// detail) and /readyz (per-check readiness) without client certificates;
// bind it to a management network or loopback only. Its answers carry a
// correlation id like every other listener's.
func (g *Gateway) OpsHandler() http.Handler {
	mux := http.NewServeMux()
	prom := promhttp.HandlerFor(g.Metrics, promhttp.HandlerOpts{})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		g.refresh(r.Context())
		prom.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		h, _ := g.Health(r.Context())
		h["status"] = "up"
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h)
	})
	// Profiles for the operator (loopback/management network only, as the
	// whole ops listener): go tool pprof http://OPS/debug/pprof/profile. An
	// execution trace (go tool trace; -pprof=sched, syscall, sync) shows what
	// a CPU profile cannot: goroutines waiting for a processor, or for the
	// disk.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/heap", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		checks, ok := g.Ready(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": ok, "checks": checks})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, id := correlation.Start(w, r)
		if _, pattern := mux.Handler(r); pattern == "" {
			problem.Unrouted(r.Method, r.URL.Path, opsRoutes).WriteHTTP(w, id)
			return
		}
		mux.ServeHTTP(w, r)
	})
}
