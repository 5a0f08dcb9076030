package server_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/pgtest"
)

// TestForeignBytesLogged: a request whose headers hold bytes that are not
// UTF-8 (HTTP allows them) gets its refusal and is logged, on both stores,
// its text as U+FFFD where the bytes were. On PostgreSQL, whose TEXT
// refuses them, the log entry failed: the partner was answered 503 "try
// again" for a request that can only be refused, and it was not logged.
func TestForeignBytesLogged(t *testing.T) {
	for name, target := range pgtest.Targets(t) {
		t.Run("ok/"+name, func(t *testing.T) {
			env := gatewaytest.Start(t, gatewaytest.Options{Store: target(t)})
			hc := env.Client(&env.Partners["employer-a"].TLS)
			for _, tc := range []struct {
				header, value string
				status        int
			}{
				{"X-JWS-Signature", "eyJ\xff..x", http.StatusUnauthorized},
				{"Content-Type", "application/jose\xfe", http.StatusUnsupportedMediaType},
			} {
				req, err := http.NewRequest("POST", env.Server.URL+"/v1/injury-notices", bytes.NewReader([]byte(`{"a":1}`)))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(tc.header, tc.value)
				before, _ := env.Store.Entries(context.Background())
				r, err := hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				r.Body.Close()
				after, _ := env.Store.Entries(context.Background())
				if r.StatusCode != tc.status || after != before+1 {
					t.Fatalf("%s with a byte that is not UTF-8: HTTP %d, %d entries logged; want %d and one", tc.header, r.StatusCode, after-before, tc.status)
				}
				var signature, contentType string
				if err := env.Store.DB().QueryRow(`SELECT signature, content_type FROM message_log ORDER BY seq DESC LIMIT 1`).Scan(&signature, &contentType); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(signature+contentType, "\uFFFD") {
					t.Fatalf("logged %q and %q, want U+FFFD where the byte was", signature, contentType)
				}
			}
			if rep, err := env.Store.Verify(context.Background(), nil); err != nil || rep.BrokenSeq != 0 {
				t.Fatalf("chain: %+v %v", rep, err)
			}
		})
	}
}
