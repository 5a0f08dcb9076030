package server_test

import (
	"bytes"
	"io"
	"net/http"
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

// postSOAP sends the signed NotifyInjury example as the agency and returns
// the HTTP status and body.
func postSOAP(t *testing.T, env *gatewaytest.Env, agency string) (int, []byte) {
	t.Helper()
	return postSOAPWith(t, env, agency, nil)
}

// postSOAPWith is postSOAP with more request headers (added: a header may
// repeat).
func postSOAPWith(t *testing.T, env *gatewaytest.Env, agency string, hdr http.Header) (int, []byte) {
	t.Helper()
	r := postSOAPAnswer(t, env, agency, hdr)
	return r.status, r.body
}

// postSOAPAnswer is postSOAPWith returning the whole answer, its headers
// too.
func postSOAPAnswer(t *testing.T, env *gatewaytest.Env, agency string, hdr http.Header) response {
	t.Helper()
	return postSOAPTo(t, env, agency, "/soap/v1/exchange", hdr)
}

// postSOAPTo is postSOAPAnswer to the path (and query) target.
func postSOAPTo(t *testing.T, env *gatewaytest.Env, agency, target string, hdr http.Header) response {
	t.Helper()
	d := unsigned(t, soapExample(t))
	if err := agencyClient(t, env, agency).Signer.Sign(d); err != nil {
		t.Fatal(err)
	}
	body, _ := d.WriteToBytes()
	req, _ := http.NewRequest("POST", env.Server.URL+target, bytes.NewReader(body))
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", `"urn:xb-injury:exchange:v1#NotifyInjury"`)
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := env.Client(&env.Partners[agency].TLS).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, raw}
}

// assertFault checks that raw is a SOAP fault with the sub-code code.
func assertFault(t *testing.T, raw []byte, code string) {
	t.Helper()
	f, err := wssec.Parse(raw, wssec.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if c := f.FindElement("//FaultDetail/Code"); c == nil || c.Text() != code {
		t.Fatalf("fault %s, want %s", raw, code)
	}
}
