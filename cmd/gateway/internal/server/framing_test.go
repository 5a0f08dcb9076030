package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/perkeso/jambatan/adapters/jsonrules"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
)

// TestAnswersWhole: every answer the intake writes carries its
// Content-Length, the long ones too (net/http sends a body over 2 KB
// without one, in chunks, unless told its length): a batch's results, a
// long list of problems, a signed SOAP acknowledgement and a SOAP Fault.
func TestAnswersWhole(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	a := env.Partners["employer-a"]
	c := env.Client(&a.TLS)
	var notice map[string]any
	if err := json.Unmarshal(example(t, "example-a.in.json"), &notice); err != nil {
		t.Fatal(err)
	}
	for i := range 2 * jsonrules.MaxProblems {
		notice[fmt.Sprintf("x%04d", i)] = 0
	}
	unknown, _ := json.Marshal(notice)
	for _, tc := range []struct {
		name   string
		answer func(t *testing.T) response
		status int
	}{
		{"ok/notice-accepted", func(t *testing.T) response {
			return post(t, c, env.Server.URL, "application/jose", []byte(sign(t, example(t, "example-a.in.json"), a.SigningKey, partnerkit.Compact)), nil)
		}, http.StatusAccepted},
		{"ok/batch-results", func(t *testing.T) response {
			return postClaims(t, env, "insurer-wic", largeBatch(t, "WIC017-WHOLE-1", 40), nil)
		}, http.StatusOK},
		{"ok/soap-acknowledgement", func(t *testing.T) response {
			return postSOAPAnswer(t, env, "agency-th", nil)
		}, http.StatusOK},
		{"fail/many-problems", func(t *testing.T) response {
			return post(t, c, env.Server.URL, "application/jose", []byte(sign(t, unknown, a.SigningKey, partnerkit.Compact)), nil)
		}, http.StatusUnprocessableEntity},
		{"fail/soap-fault", func(t *testing.T) response {
			return postSOAPAnswer(t, env, "agency-th", http.Header{"Content-Encoding": {"gzip"}})
		}, http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.answer(t)
			if r.status != tc.status {
				t.Fatalf("HTTP %d, want %d: %.300s", r.status, tc.status, r.body)
			}
			if len(r.body) <= 2048 && tc.name != "ok/notice-accepted" {
				t.Fatalf("answer of %d bytes: too short to show chunking", len(r.body))
			}
			if got := r.header.Get("Content-Length"); got != strconv.Itoa(len(r.body)) {
				t.Fatalf("Content-Length %q for %d bytes", got, len(r.body))
			}
		})
	}
}
