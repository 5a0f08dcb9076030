// Package metrics holds the gateway's Prometheus collectors, served on the
// ops listener's /metrics. Labels are bounded: routes are patterns, partners
// come from the registry, outcomes are HTTP statuses or fault codes.
package metrics

import (
	"crypto/x509"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the gateway's own collectors.
type Metrics struct {
	Requests     *prometheus.CounterVec
	Verification *prometheus.CounterVec
	Latency      *prometheus.HistogramVec
	OutboxOldest prometheus.Gauge
	Deliveries   *prometheus.GaugeVec
	CertExpiry   *prometheus.GaugeVec
	CRLNext      *prometheus.GaugeVec
	// InFlightBytes shows the request bytes reserved under
	// limits.max_inflight_bytes (package budget).
	InFlightBytes prometheus.Gauge
	// Connections and ConnectionWaits show the partner listener's open
	// connections under limits.max_connections (package connlimit).
	Connections     prometheus.Gauge
	ConnectionWaits prometheus.Counter
	// HandshakeFailures counts failed TLS handshakes by listener and reason
	// (package server's ErrorLog, which logs only some of them).
	HandshakeFailures *prometheus.CounterVec

	partnerCerts sync.Map // partner id -> the *x509.Certificate it last connected with
}

// New registers the collectors with r.
func New(r prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jambatan_requests_total",
			Help: "Requests that passed mutual TLS, by route, partner and outcome (HTTP status)."}, []string{"route", "partner", "outcome"}),
		Verification: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jambatan_verification_failures_total",
			Help: "Refused signatures, by kind (JWS reason class or WS-Security fault code)."}, []string{"kind"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "jambatan_intake_seconds",
			Help: "Time from request to response, by route.", Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"route"}),
		OutboxOldest: prometheus.NewGauge(prometheus.GaugeOpts{Name: "jambatan_outbox_oldest_age_seconds",
			Help: "Age of the oldest unpublished outbox message (0 when none)."}),
		Deliveries: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "jambatan_deliveries",
			Help: "Outbound deliveries by state."}, []string{"state"}),
		CertExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "jambatan_certificate_expiry_seconds",
			Help: "Seconds until a certificate expires (negative: expired)."}, []string{"certificate"}),
		CRLNext: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "jambatan_crl_next_update_seconds",
			Help: "Seconds until a CRL's next update is due (negative: stale; /readyz then fails)."}, []string{"crl"}),
		InFlightBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "jambatan_request_bytes_in_flight",
			Help: "Request body bytes reserved by requests being served (limits.max_inflight_bytes bounds it)."}),
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "jambatan_connections_open",
			Help: "Connections open on the partner listener (limits.max_connections bounds it)."}),
		ConnectionWaits: prometheus.NewCounter(prometheus.CounterOpts{Name: "jambatan_connection_limit_waits_total",
			Help: "Times the partner listener waited, at limits.max_connections, for a connection to close before accepting another."}),
		HandshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jambatan_tls_handshake_failures_total",
			Help: "Failed TLS handshakes, by listener and reason (no-certificate, untrusted, refused, protocol, closed, timeout)."}, []string{"listener", "reason"}),
	}
	r.MustRegister(m.Requests, m.Verification, m.Latency, m.OutboxOldest, m.Deliveries, m.CertExpiry, m.CRLNext, m.InFlightBytes,
		m.Connections, m.ConnectionWaits, m.HandshakeFailures)
	// Shown at 0 from the start, so that increase() counts the first.
	for _, l := range []string{"partner", "operator"} {
		for _, r := range HandshakeReasons {
			m.HandshakeFailures.WithLabelValues(l, r)
		}
	}
	return m
}

// HandshakeReasons are the reasons of jambatan_tls_handshake_failures_total.
var HandshakeReasons = []string{"no-certificate", "untrusted", "refused", "protocol", "closed", "timeout"}

// ObservePartnerCert records the client certificate a partner connected
// with: its expiry gauge is "partner:<id>". Partner certificates are known
// only when they are used.
func (m *Metrics) ObservePartnerCert(id string, c *x509.Certificate, now time.Time) {
	if m == nil || c == nil {
		return
	}
	if last, ok := m.partnerCerts.Load(id); !ok || last != c { // a new connection
		m.partnerCerts.Store(id, c)
	}
	m.CertExpiry.WithLabelValues("partner:" + id).Set(c.NotAfter.Sub(now).Seconds())
}

// SetCertExpiries sets the expiry gauges afresh: the named certificates,
// the last client certificate of each partner still registered, and the
// CRLs' next updates. Series of anything else (a partner removed, a CA or a
// CRL dropped by a reload) go, so that an alert on expiry never fires for
// what the gateway no longer uses.
func (m *Metrics) SetCertExpiries(certs map[string]*x509.Certificate, crlNextUpdates map[string]time.Time, registered func(id string) bool, now time.Time) {
	m.CertExpiry.Reset()
	for name, c := range certs {
		m.CertExpiry.WithLabelValues(name).Set(c.NotAfter.Sub(now).Seconds())
	}
	m.partnerCerts.Range(func(id, c any) bool {
		if registered(id.(string)) {
			m.CertExpiry.WithLabelValues("partner:" + id.(string)).Set(c.(*x509.Certificate).NotAfter.Sub(now).Seconds())
		} else {
			m.partnerCerts.Delete(id)
		}
		return true
	})
	m.CRLNext.Reset()
	for name, next := range crlNextUpdates {
		m.CRLNext.WithLabelValues(name).Set(next.Sub(now).Seconds())
	}
}

// InFlight is the gauge of request bytes in flight, nil without metrics.
func (m *Metrics) InFlight() prometheus.Gauge {
	if m == nil {
		return nil
	}
	return m.InFlightBytes
}

// ExpectVerificationKinds shows each kind of refused signature as a zero
// before the first refusal of that kind: a series that appears only with its
// first count hides that count from increase() and rate(), which alerts use.
func (m *Metrics) ExpectVerificationKinds(kinds ...string) {
	for _, k := range kinds {
		m.Verification.WithLabelValues(k)
	}
}

// VerificationFailed counts a refused signature.
func (m *Metrics) VerificationFailed(kind string) {
	if m != nil {
		m.Verification.WithLabelValues(kind).Inc()
	}
}
