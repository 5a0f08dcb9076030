package server_test

import (
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/problem"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

// TestEventSizeBound: a submission whose event would be larger than a
// broker accepts is refused (413, or a SOAP fault) and nothing is accepted,
// so one event can never stop the relay: a notice, an agency message and
// an insurer batch (refused whole). The bound is lowered here to what
// example A's event (about 6 KB) and each claim's (about 3 KB) exceed; at
// the default they are accepted.
func TestEventSizeBound(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int
		fits  bool
	}{
		{"ok/default-bound", 1 << 20, true},
		{"fail/over-the-bound", 2 << 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := gatewaytest.Start(t, gatewaytest.Options{EventLimit: tc.limit})
			a := env.Partners["employer-a"]
			r := post(t, env.Client(&a.TLS), env.Server.URL, "application/jose", []byte(sign(t, example(t, "example-a.in.json"), a.SigningKey, partnerkit.Compact)), nil)
			if tc.fits {
				if r.status != 202 {
					t.Fatalf("status %d: %s", r.status, r.body)
				}
			} else {
				assertProblem(t, r, problem.TooLarge, "")
			}

			status, raw := postSOAP(t, env, "agency-th")
			if tc.fits != (status == 200) {
				t.Fatalf("SOAP HTTP %d\n%.500s", status, raw)
			}
			if !tc.fits {
				assertFault(t, raw, wssec.CodeSchema)
			}

			// An insurer batch: its three claims' events are refused whole.
			r = postClaims(t, env, "insurer-wic", insurerBatch(t), nil)
			if tc.fits {
				if r.status != 200 {
					t.Fatalf("batch: status %d: %s", r.status, r.body)
				}
			} else {
				assertProblem(t, r, problem.TooLarge, "")
			}

			want := map[bool]int{true: 2 + 3, false: 0}[tc.fits]
			if n := count(t, env, `SELECT count(*) FROM records`); n != want {
				t.Fatalf("%d records, want %d", n, want)
			}
			if n := count(t, env, `SELECT count(*) FROM outbox WHERE topic = 'perkeso.injury-notices.verified.v1'`); n != want {
				t.Fatalf("%d verified events, want %d", n, want)
			}
			if n := count(t, env, `SELECT count(*) FROM message_log WHERE receipt <> ''`); n != map[bool]int{true: 3, false: 0}[tc.fits] {
				t.Fatalf("%d logged receipts", n)
			}
		})
	}
}
