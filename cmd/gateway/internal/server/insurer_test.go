package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/perkeso/jambatan/adapters/adaptertest"
	"github.com/perkeso/jambatan/adapters/insurerclaim"
	"github.com/perkeso/jambatan/adapters/jsonrules"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/intake"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/problem"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
)

func insurerBatch(t testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "adapters", "insurerclaim", "testdata", "example-batch.in.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// largeBatch makes n distinct claims from claim 0 of the example; the
// claims at the bad indexes get a wrong check letter.
func largeBatch(t testing.TB, batchID string, n int, bad ...int) []byte {
	var m map[string]any
	if err := json.Unmarshal(insurerBatch(t), &m); err != nil {
		t.Fatal(err)
	}
	m["batchId"] = batchID
	c0, _ := json.Marshal(m["claims"].([]any)[0])
	var claims []any
	for i := 0; i < n; i++ {
		var c map[string]any
		if err := json.Unmarshal(c0, &c); err != nil {
			t.Fatal(err)
		}
		c["claimNo"] = fmt.Sprintf("WC%s-%d", strings.TrimPrefix(batchID, "WIC017-"), i)
		for _, k := range bad {
			if k == i {
				c["claimant"].(map[string]any)["idNo"] = "G5123456X"
			}
		}
		claims = append(claims, c)
	}
	m["claims"] = claims
	b, _ := json.Marshal(m)
	return b
}

func postClaims(t testing.TB, env *gatewaytest.Env, id string, doc []byte, key jwk.Key) response {
	t.Helper()
	p := env.Partners[id]
	if key == nil {
		key = p.SigningKey
	}
	c := env.Client(&p.TLS)
	req := []byte(sign(t, doc, key, partnerkit.Compact))
	return postJOSE(t, c, env.Server.URL+"/v1/insurer-claims", req)
}

func TestInsurerClaims(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{EventLimit: 1 << 20})
	doc := insurerBatch(t)
	r := postClaims(t, env, "insurer-wic", doc, nil)
	if r.status != 200 {
		t.Fatalf("HTTP %d: %s", r.status, r.body)
	}
	var res intake.BatchResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	want := []string{"20d6ffb6-2415-5925-8ac3-1df538e887c7", "7938a770-f4d2-5ccf-b1a8-3cf7d240804c", "60c452ba-a5f0-56c6-b0a1-d87cf950abec"}
	if res.Status != "PROCESSED" || res.BatchID != "WIC017-20260310-01" || len(res.Results) != 3 {
		t.Fatalf("response %s", r.body)
	}
	for i, cr := range res.Results {
		if cr.Status != "ACCEPTED" || cr.RecordID != want[i] || cr.Index != i {
			t.Fatalf("result %d: %+v", i, cr)
		}
	}
	rc, err := receipt.Verify(res.Receipt, env.Receipts.JWKS())
	if err != nil || rc.RecordID != "" {
		t.Fatalf("receipt: %v", err)
	}
	// Each accepted claim has a receipt of its own, naming its record.
	var receivedAt time.Time
	rows, err := env.Store.DB().Query(`SELECT record_id, receipt FROM records`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, compact string
		_ = rows.Scan(&id, &compact)
		crc, err := receipt.Verify(compact, env.Receipts.JWKS())
		if err != nil || crc.RecordID != id || crc.BatchID != res.BatchID || crc.RecordSHA256 == "" || crc.Format != "insurer-claim/v1" {
			t.Fatalf("claim receipt %+v: %v", crc, err)
		}
		receivedAt, _ = time.Parse(time.RFC3339, crc.ReceivedAt)
	}
	rows.Close()
	// Each claim's record, as its event carries it, keeps every rule of the
	// canonical record.
	values, err := env.Store.DB().Query(`SELECT value FROM outbox WHERE topic = 'perkeso.injury-notices.verified.v1'`)
	if err != nil {
		t.Fatal(err)
	}
	records := 0
	for values.Next() {
		var v []byte
		_ = values.Scan(&v)
		var ev struct{ Record schema.Record }
		if err := json.Unmarshal(v, &ev); err != nil {
			t.Fatal(err)
		}
		adaptertest.CheckRecord(t, &ev.Record, adaptertest.Source{Format: insurerclaim.Format, ReceivedAt: receivedAt, Rates: mapping.ExampleRates})
		records++
	}
	values.Close()
	if records != 3 {
		t.Fatalf("%d verified events, want 3", records)
	}

	// The same batch again: the same results and receipt.
	again := postClaims(t, env, "insurer-wic", doc, nil)
	if again.status != 200 || !bytes.Equal(again.body, r.body) {
		t.Fatalf("repeat: %d %s", again.status, again.body)
	}
	// The same batch id with other content: 409.
	changed := bytes.Replace(doc, []byte(`"permanentIncapacityPct": 3`), []byte(`"permanentIncapacityPct": 4`), 1)
	assertProblem(t, postClaims(t, env, "insurer-wic", changed, nil), problem.Conflict, `[{"pointer":"/batchId","code":"DUPLICATE"}]`)
	// A claim version repeated in another batch: DUPLICATE; with other values: REJECTED.
	var m map[string]any
	if err := json.Unmarshal(changed, &m); err != nil {
		t.Fatal(err)
	}
	m["batchId"] = "WIC017-20260311-01"
	b2, _ := json.Marshal(m)
	r2 := postClaims(t, env, "insurer-wic", b2, nil)
	var res2 intake.BatchResult
	if err := json.Unmarshal(r2.body, &res2); err != nil {
		t.Fatal(err)
	}
	if r2.status != 200 || res2.Results[0].Status != "REJECTED" || res2.Results[0].Problems[0]["pointer"] != "/claims/0/revision" ||
		res2.Results[1].Status != "DUPLICATE" || res2.Results[1].RecordID != want[1] {
		t.Fatalf("second batch: %d %s", r2.status, r2.body)
	}
	if n := count(t, env, `SELECT count(*) FROM records`); n != 3 {
		t.Fatalf("%d records, want 3", n)
	}
}

func TestInsurerLargeBatch(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	r := postClaims(t, env, "insurer-wic", largeBatch(t, "WIC017-LARGE-01", 500, 7, 250, 499), nil)
	if r.status != 200 {
		t.Fatalf("HTTP %d: %.300s", r.status, r.body)
	}
	var res intake.BatchResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	accepted, rejected := 0, 0
	for _, cr := range res.Results {
		switch cr.Status {
		case "ACCEPTED":
			accepted++
		case "REJECTED":
			rejected++
			if p := cr.Problems[0]["pointer"]; p != fmt.Sprintf("/claims/%d/claimant/idNo", cr.Index) || cr.Problems[0]["code"] != "CHECKSUM" {
				t.Fatalf("rejected claim %d: %+v", cr.Index, cr.Problems)
			}
		}
	}
	if accepted != 497 || rejected != 3 {
		t.Fatalf("%d accepted, %d rejected", accepted, rejected)
	}
	if n := count(t, env, `SELECT count(*) FROM records`); n != 497 {
		t.Fatalf("%d records", n)
	}
}

func TestInsurerRefusals(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	doc := insurerBatch(t)
	otherCode := bytes.Replace(doc, []byte(`"insurerCode": "WIC017"`), []byte(`"insurerCode": "WIC099"`), 1)
	badTZ := bytes.Replace(doc, []byte(`"tz": "Asia/Singapore"`), []byte(`"tz": "Asia/Johor"`), 1)
	for _, tc := range []struct {
		name, partner string
		doc           []byte
		kind          problem.Kind
		problems      string
	}{
		{"fail/employer-on-insurer-route", "employer-a", doc, problem.NotAuthorised, `[{"pointer":"","code":"NOT_AUTHORISED"}]`},
		{"fail/insurer-code-not-registered", "insurer-wic", otherCode, problem.NotAuthorised, `[{"pointer":"/insurerCode","code":"NOT_AUTHORISED"}]`},
		{"fail/batch-level", "insurer-wic", badTZ, problem.Invalid, `[{"pointer":"/tz","code":"CODE"}]`},
		{"fail/too-many-values", "insurer-wic", tooManyValues(t, doc), problem.TooLarge, `[{"pointer":"","code":"RANGE"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertProblem(t, postClaims(t, env, tc.partner, tc.doc, nil), tc.kind, tc.problems)
			if n := count(t, env, `SELECT count(*) FROM records`); n != 0 {
				t.Fatalf("%d records", n)
			}
		})
	}
}

// BenchmarkInsurerBatch measures claims/s through the whole batch intake
// (verify, rules, mapping, one durable transaction, receipt) with 500-claim batches.
func BenchmarkInsurerBatch(b *testing.B) {
	env := gatewaytest.Start(b, gatewaytest.Options{})
	docs := make([][]byte, b.N)
	for i := range docs {
		docs[i] = largeBatch(b, fmt.Sprintf("WIC017-BENCH-%06d-%02d", i, i%100), 500)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := postClaims(b, env, "insurer-wic", docs[i], nil); r.status != 200 {
			b.Fatalf("HTTP %d %.200s", r.status, r.body)
		}
	}
	b.ReportMetric(float64(500*b.N)/b.Elapsed().Seconds(), "claims/s")
}

// TestInsurerManyProblems: a claim made mostly of unknown members lists
// jsonrules.MaxProblems problems and one RANGE problem at the claim, is
// rejected alone (the batch is processed), and the batch receipt, which
// every accepted claim's event carries, holds statuses without problems.
func TestInsurerManyProblems(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	var m map[string]any
	if err := json.Unmarshal(insurerBatch(t), &m); err != nil {
		t.Fatal(err)
	}
	c1 := m["claims"].([]any)[1].(map[string]any)
	for i := range 3 * jsonrules.MaxProblems {
		c1[fmt.Sprintf("x%04d", i)] = 0
	}
	doc, _ := json.Marshal(m)
	r := postClaims(t, env, "insurer-wic", doc, nil)
	if r.status != 200 {
		t.Fatalf("HTTP %d: %.300s", r.status, r.body)
	}
	var res intake.BatchResult
	if err := json.Unmarshal(r.body, &res); err != nil {
		t.Fatal(err)
	}
	got := res.Results[1]
	if got.Status != "REJECTED" || len(got.Problems) != jsonrules.MaxProblems+1 {
		t.Fatalf("claim 1: %s, %d problems", got.Status, len(got.Problems))
	}
	if p := got.Problems[0]; p["pointer"] != "/claims/1/x0000" || p["code"] != "UNKNOWN_MEMBER" {
		t.Fatalf("first problem %v", p)
	}
	if p := got.Problems[jsonrules.MaxProblems]; p["pointer"] != "/claims/1" || p["code"] != "RANGE" {
		t.Fatalf("last problem %v", p)
	}
	if res.Results[0].Status != "ACCEPTED" || res.Results[2].Status != "ACCEPTED" {
		t.Fatalf("results %+v", res.Results)
	}
	if _, err := receipt.Verify(res.Receipt, env.Receipts.JWKS()); err != nil {
		t.Fatal(err)
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(res.Receipt, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var rc receipt.BatchReceipt
	if err := json.Unmarshal(payload, &rc); err != nil {
		t.Fatal(err)
	}
	if len(rc.Results) != 3 || rc.Results[1].Status != "REJECTED" || rc.Results[1].Problems != nil || bytes.Contains(payload, []byte("problems")) {
		t.Fatalf("receipt %s", payload)
	}
	if n := count(t, env, `SELECT count(*) FROM records`); n != 2 {
		t.Fatalf("%d records, want 2", n)
	}
}

// tooManyValues pads claim 0 with unknown members past insurerclaim.MaxValues.
func tooManyValues(t *testing.T, doc []byte) []byte {
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	c0 := m["claims"].([]any)[0].(map[string]any)
	for i := range insurerclaim.MaxValues {
		c0[fmt.Sprintf("u%d", i)] = 0
	}
	b, _ := json.Marshal(m)
	return b
}

// TestInsurerEventsCarryTheBatchSignature: each claim's event carries the
// insurer's signature over the whole batch (protected header and
// signature, the payload left out), in whichever form the batch came, so
// that the back office can verify it against the batch the message log
// keeps.
func TestInsurerEventsCarryTheBatchSignature(t *testing.T) {
	for _, tc := range []struct {
		name string
		form partnerkit.Form
	}{
		{"ok/compact", partnerkit.Compact},
		{"ok/detached", partnerkit.Detached},
		{"ok/detached-unencoded", partnerkit.DetachedUnencoded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := gatewaytest.Start(t, gatewaytest.Options{EventLimit: 1 << 20})
			p := env.Partners["insurer-wic"]
			doc := insurerBatch(t)
			sig := sign(t, doc, p.SigningKey, tc.form)
			req, _ := http.NewRequest("POST", env.Server.URL+"/v1/insurer-claims", bytes.NewReader(doc))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-JWS-Signature", sig)
			if tc.form == partnerkit.Compact {
				req, _ = http.NewRequest("POST", env.Server.URL+"/v1/insurer-claims", strings.NewReader(sig))
				req.Header.Set("Content-Type", "application/jose")
			}
			resp, err := env.Client(&p.TLS).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("HTTP %d", resp.StatusCode)
			}
			pub, _ := jwk.PublicKeyOf(p.SigningKey)
			alg, _ := p.SigningKey.Algorithm()
			values, err := env.Store.DB().Query(`SELECT value FROM outbox WHERE topic = 'perkeso.injury-notices.verified.v1'`)
			if err != nil {
				t.Fatal(err)
			}
			defer values.Close()
			n := 0
			for ; values.Next(); n++ {
				var v []byte
				_ = values.Scan(&v)
				var ev struct{ JWS *events.Signed }
				if err := json.Unmarshal(v, &ev); err != nil || ev.JWS == nil || ev.JWS.Payload != "" {
					t.Fatalf("event's jws %+v (%v), want the batch's signature without its payload", ev.JWS, err)
				}
				detached := ev.JWS.Protected + ".." + ev.JWS.Signature
				if _, err := jws.Verify([]byte(detached), jws.WithKey(alg.(jwa.SignatureAlgorithm), pub), jws.WithDetachedPayload(doc)); err != nil {
					t.Fatalf("the event's batch signature does not verify over the batch: %v", err)
				}
			}
			if n != 3 {
				t.Fatalf("%d events, want 3", n)
			}
		})
	}
}
