// Package metrics holds the gateway's Prometheus collectors, served on the
// ops listener's /metrics. Labels are bounded: routes are patterns, partners
// come from the registry, outcomes are HTTP statuses or fault codes.
package metrics

import (
	"crypto/x509"
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
	}
	r.MustRegister(m.Requests, m.Verification, m.Latency, m.OutboxOldest, m.Deliveries, m.CertExpiry, m.CRLNext, m.InFlightBytes)
	return m
}

// ObserveCert sets the expiry gauge of a named certificate.
func (m *Metrics) ObserveCert(name string, c *x509.Certificate, now time.Time) {
	if m == nil || c == nil {
		return
	}
	m.CertExpiry.WithLabelValues(name).Set(c.NotAfter.Sub(now).Seconds())
}

// ObserveCRL sets the next-update gauge of a named CRL (none when the CRL
// gives no next update).
func (m *Metrics) ObserveCRL(name string, c *x509.RevocationList, now time.Time) {
	if m == nil || c == nil || c.NextUpdate.IsZero() {
		return
	}
	m.CRLNext.WithLabelValues(name).Set(c.NextUpdate.Sub(now).Seconds())
}

// InFlight is the gauge of request bytes in flight, nil without metrics.
func (m *Metrics) InFlight() prometheus.Gauge {
	if m == nil {
		return nil
	}
	return m.InFlightBytes
}

// VerificationFailed counts a refused signature.
func (m *Metrics) VerificationFailed(kind string) {
	if m != nil {
		m.Verification.WithLabelValues(kind).Inc()
	}
}
