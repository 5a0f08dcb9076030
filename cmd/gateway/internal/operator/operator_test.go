package operator_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/operator"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

func TestOperatorAPI(t *testing.T) {
	ca, _ := certs.NewCA("operators")
	srv, _ := ca.IssueServer("localhost", nil, []net.IP{net.ParseIP("127.0.0.1")})
	op, _ := ca.IssueClient("ops-alice")
	stranger, _ := ca.IssueClient("mallory")
	st, err := store.Open(filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg := partner.NewRegistry([]*partner.Partner{{ID: "th-sso", Kind: partner.KindAgency, Endpoint: &partner.Endpoint{URL: "https://x", Protocol: "soap"}}})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	hs := httptest.NewUnstartedServer((&operator.API{Store: st, Partners: reg}).Handler())
	hs.TLS = operator.TLSConfig(tls.Certificate{Certificate: [][]byte{srv.Cert.Raw}, PrivateKey: srv.Key}, pool, []string{"ops-alice"})
	hs.StartTLS()
	defer hs.Close()
	client := func(c *certs.Issued) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool,
			Certificates: []tls.Certificate{{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key}}}}}
	}
	req := []byte(`{"id":"dec-9","partner":"th-sso","messageType":"NotifyDecision","caseId":"MY:PERKESO:XB-1","payload":{"subject":"WORK_RELATEDNESS"}}`)
	for _, tc := range []struct {
		name string
		body []byte
		want int
	}{
		{"ok/queued", req, 202},
		{"ok/same-id-again", req, 200},
		{"fail/unknown-partner", bytes.Replace(req, []byte("th-sso"), []byte("nobody"), 1), 422},
		{"fail/not-json", []byte("nope"), 400},
		{"fail/too-large", append(bytes.Repeat([]byte(" "), 4<<20), req...), 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := client(op).Post(hs.URL+"/v1/outbound", "application/json", bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode != tc.want {
				t.Fatalf("HTTP %d, want %d", r.StatusCode, tc.want)
			}
		})
	}
	r, err := client(op).Get(hs.URL + "/v1/outbound?state=pending")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	var list []map[string]any
	if json.Unmarshal(b, &list) != nil || len(list) != 1 || list[0]["key"] != "dec-9" {
		t.Fatalf("list: %s", b)
	}
	t.Run("fail/not-an-operator", func(t *testing.T) {
		if r, err := client(stranger).Get(hs.URL + "/v1/outbound"); err == nil {
			r.Body.Close()
			t.Fatal("a certificate outside the allow-list was accepted")
		}
	})
}
