package metrics_test

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/metrics"
)

// expiries reads jambatan_certificate_expiry_seconds by certificate label.
func expiries(t *testing.T, r *prometheus.Registry) map[string]float64 {
	return gatewaytest.Series(t, r, "jambatan_certificate_expiry_seconds", "certificate")
}

// TestPartnerCertExpiry: a partner's certificate expiry is the one it last
// connected with, also once the gauges are set afresh (a partner that
// renewed its certificate is not reported by the old one), and goes with
// the partner; a connection without a certificate records nothing.
func TestPartnerCertExpiry(t *testing.T) {
	now := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	cert := func(d time.Duration) *x509.Certificate { return &x509.Certificate{NotAfter: now.Add(d)} }
	r := prometheus.NewRegistry()
	m := metrics.New(r)
	old, renewed, server := cert(10*day), cert(300*day), cert(90*day)

	m.ObservePartnerCert("acme", nil, now)
	if got := expiries(t, r); len(got) != 0 {
		t.Fatalf("a connection without a certificate recorded %v", got)
	}
	m.ObservePartnerCert("acme", old, now)
	if got := expiries(t, r)["partner:acme"]; got != (10 * day).Seconds() {
		t.Fatalf("after its first connection: %v s, want 10 days", got)
	}
	m.ObservePartnerCert("acme", renewed, now)
	registered := true
	m.SetCertExpiries(map[string]*x509.Certificate{"server": server}, nil, func(string) bool { return registered }, now)
	if got := expiries(t, r); got["partner:acme"] != (300*day).Seconds() || got["server"] != (90*day).Seconds() {
		t.Fatalf("set afresh after a renewal: %v, want the renewed certificate's 300 days and the server's 90", got)
	}
	registered = false
	m.SetCertExpiries(map[string]*x509.Certificate{"server": server}, nil, func(string) bool { return registered }, now)
	if got := expiries(t, r); len(got) != 1 || got["server"] == 0 {
		t.Fatalf("after the partner was removed: %v, want the server's alone", got)
	}
}
