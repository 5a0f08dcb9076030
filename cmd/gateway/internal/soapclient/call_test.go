package soapclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

// TestCallResponseBound: an answer of exactly MaxResponse bytes is read
// (and here refused for what it is, not for its size); one byte more is
// ErrResponseTooLarge, read no further.
func TestCallResponseBound(t *testing.T) {
	const limit = 100
	ca, err := certs.NewCA("test root")
	if err != nil {
		t.Fatal(err)
	}
	signing, err := ca.IssueSigning("MY:PERKESO", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		size  int
		large bool
	}{
		{"ok/at-the-bound", limit, false},
		{"fail/one-byte-over", limit + 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/xml; charset=utf-8")
				_, _ = w.Write([]byte(strings.Repeat(" ", tc.size)))
			}))
			defer srv.Close()
			c := &Client{URL: srv.URL, HTTP: srv.Client(), Signer: &wssec.Signer{Cert: signing.Cert, Key: signing.Key},
				Verifier: &wssec.Verifier{}, MaxResponse: limit}
			doc := etree.NewDocument()
			if err := doc.ReadFromString(`<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><xb:Ping xmlns:xb="urn:xb-injury:exchange:v1"/></soap:Body></soap:Envelope>`); err != nil {
				t.Fatal(err)
			}
			_, err := c.Call(context.Background(), "urn:xb-injury:exchange:v1#Ping", doc)
			if err == nil || errors.Is(err, ErrResponseTooLarge) != tc.large {
				t.Fatalf("%d bytes: %v; too large: want %v", tc.size, err, tc.large)
			}
		})
	}
}
