package server_test

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/perkeso/jambatan/cmd/gateway/internal/metrics"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
)

// TestRevocationReachesOpenConnections: a CRL swapped in by a reload
// refuses the revoked certificate's next request on a connection opened
// before it (403, and the connection closed), and then its handshakes; a
// partner it does not list goes on.
func TestRevocationReachesOpenConnections(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry())
	env := gatewaytest.Start(t, gatewaytest.Options{Metrics: m})
	a, b := env.Partners["employer-a"], env.Partners["employer-b"]
	ca, cb := env.Client(&a.TLS), env.Client(&b.TLS)
	for _, c := range []*http.Client{ca, cb} {
		if status, _, _, _, err := getOn(c, env.Server.URL); err != nil || status != http.StatusNotFound {
			t.Fatalf("before the revocation: %d %v", status, err)
		}
	}

	crl, err := env.CA.RevocationList(1, a.TLS.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	env.Revoke(crl)

	t.Run("fail/revoked-on-its-open-connection", func(t *testing.T) {
		status, reused, closed, detail, err := getOn(ca, env.Server.URL)
		if err != nil || !reused || status != http.StatusForbidden || !closed || detail != "client certificate revoked" {
			t.Fatalf("HTTP %d (connection reused %v, closed %v, %q), %v; want 403 on the open connection, then closed", status, reused, closed, detail, err)
		}
	})
	t.Run("fail/revoked-handshake", func(t *testing.T) {
		before := gatewaytest.HandshakeFailures(t, m, "partner")
		if status, _, _, _, err := getOn(ca, env.Server.URL); err == nil {
			t.Fatalf("a new handshake with the revoked certificate got HTTP %d", status)
		}
		gatewaytest.RefusedFor(t, m, "partner", "refused", before) // by the listener's own check: revoked
	})
	t.Run("ok/not-listed", func(t *testing.T) {
		if status, reused, _, _, err := getOn(cb, env.Server.URL); err != nil || status != http.StatusNotFound || !reused {
			t.Fatalf("HTTP %d (reused %v), %v", status, reused, err)
		}
	})
}

// TestDistrustedCAReachesOpenConnections: a reload whose client CA bundle
// no longer holds the CA of a partner's certificate refuses its next request
// on a connection opened before (403, and the connection closed), and then
// its handshakes; a bundle that still holds it, or holds its certificate
// renewed for the same key, changes nothing.
func TestDistrustedCAReachesOpenConnections(t *testing.T) {
	m := metrics.New(prometheus.NewRegistry())
	env := gatewaytest.Start(t, gatewaytest.Options{Metrics: m})
	other, err := certs.NewCA("another partner CA")
	if err != nil {
		t.Fatal(err)
	}
	a := env.Partners["employer-a"]
	c := env.Client(&a.TLS)
	if status, _, _, _, err := getOn(c, env.Server.URL); err != nil || status != http.StatusNotFound {
		t.Fatalf("before the reload: %d %v", status, err)
	}
	env.TrustClientCAs(other.Cert, env.CA.Cert)
	t.Run("ok/ca-still-trusted", func(t *testing.T) {
		if status, reused, _, _, err := getOn(c, env.Server.URL); err != nil || status != http.StatusNotFound || !reused {
			t.Fatalf("HTTP %d (reused %v), %v", status, reused, err)
		}
	})
	// The partners' CA certificate issued again for its key (renewed).
	tmpl := *env.CA.Cert
	tmpl.SerialNumber, tmpl.NotAfter = big.NewInt(2), env.CA.Cert.NotAfter.AddDate(1, 0, 0)
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, env.CA.Key.Public(), env.CA.Key)
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	env.TrustClientCAs(renewed)
	t.Run("ok/ca-renewed", func(t *testing.T) {
		if status, reused, _, detail, err := getOn(c, env.Server.URL); err != nil || status != http.StatusNotFound || !reused {
			t.Fatalf("HTTP %d (reused %v, %q), %v: the renewed CA's open connection refused", status, reused, detail, err)
		}
	})
	env.TrustClientCAs(other.Cert)
	t.Run("fail/ca-removed-on-open-connection", func(t *testing.T) {
		status, reused, closed, detail, err := getOn(c, env.Server.URL)
		if err != nil || !reused || status != http.StatusForbidden || !closed || !strings.Contains(detail, "no longer chains to a trusted client CA") {
			t.Fatalf("HTTP %d (connection reused %v, closed %v, %q), %v; want 403 on the open connection, then closed", status, reused, closed, detail, err)
		}
	})
	t.Run("fail/ca-removed-handshake", func(t *testing.T) {
		// c would now send no certificate (the server no longer names its
		// CA); one that sends it anyway is refused as untrusted.
		before := gatewaytest.HandshakeFailures(t, m, "partner")
		if status, _, _, _, err := getOn(sending(env, &a.TLS), env.Server.URL); err == nil {
			t.Fatalf("a new handshake with the distrusted CA's certificate got HTTP %d", status)
		}
		gatewaytest.RefusedFor(t, m, "partner", "untrusted", before)
	})
}

// getOn GETs a notice that does not exist (404 for a partner let in) and
// says whether the connection was reused and closed after the answer.
func getOn(c *http.Client, base string) (status int, reused, closed bool, detail string, err error) {
	req, _ := http.NewRequest("GET", base+"/v1/injury-notices/00000000-0000-5000-8000-000000000000", nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	}))
	r, err := c.Do(req)
	if err != nil {
		return 0, reused, false, "", err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return 0, reused, false, "", err
	}
	var doc struct{ Detail string }
	if err := json.Unmarshal(b, &doc); err != nil {
		return 0, reused, false, "", fmt.Errorf("%w: %s", err, b)
	}
	return r.StatusCode, reused, r.Close, doc.Detail, nil
}
