package operator_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/operator"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/pgtest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

func TestOperatorAPI(t *testing.T) {
	ca, _ := certs.NewCA("operators")
	op, _ := ca.IssueClient("ops-alice")
	stranger, _ := ca.IssueClient("mallory")
	st := openStore(t)
	reg := partner.NewRegistry([]*partner.Partner{{ID: "th-sso", Kind: partner.KindAgency, Institution: "TH:SSO", Endpoint: &partner.Endpoint{URL: "https://x", Protocol: "soap"}}})
	var logs bytes.Buffer
	var woken atomic.Int32 // the deliverer's wakes: a delivery to attempt now
	hs, handshakes := servedLogging(t, ca, &operator.API{Store: st, Partners: reg, Log: slog.New(slog.NewJSONHandler(&logs, nil)),
		Queued: func() { woken.Add(1) }}, operator.NewAccess(pool(ca), []string{"ops-alice"}, nil, nil))
	client := func(c *certs.Issued) *http.Client { return operatorClient(ca, c) }
	req := []byte(`{"id":"dec-9","partner":"th-sso","messageType":"NotifyDecision","caseId":"MY:PERKESO:XB-1","payload":{"subject":"WORK_RELATEDNESS","note":"Siti binti Ahmad"}}`)
	for _, tc := range []struct {
		name         string
		method, path string
		body         []byte
		want         int
	}{
		{"ok/queued", "POST", "/v1/outbound", req, 202},
		{"ok/same-id-again", "POST", "/v1/outbound", req, 200},
		{"ok/same-id-again-spaced", "POST", "/v1/outbound", bytes.Replace(req, []byte(`{"subject"`), []byte(`{ "subject"`), 1), 200},
		{"fail/same-id-other-payload", "POST", "/v1/outbound", bytes.Replace(req, []byte("WORK_RELATEDNESS"), []byte("DISABLEMENT"), 1), 409},
		{"fail/same-id-other-case", "POST", "/v1/outbound", bytes.Replace(req, []byte("XB-1"), []byte("XB-2"), 1), 409},
		{"fail/unknown-partner", "POST", "/v1/outbound", bytes.Replace(req, []byte("th-sso"), []byte("nobody"), 1), 422},
		{"fail/answers-on-an-unknown-case", "POST", "/v1/outbound", []byte(`{"id":"ans-1","partner":"th-sso","messageType":"InformationReply","caseId":"TH:SSO:C-404","payload":{"items":[{"code":"POLICE_REPORT","outcome":"NOT_HELD"}]}}`), 422},
		{"fail/answers-that-break-c13", "POST", "/v1/outbound", []byte(`{"id":"ans-2","partner":"th-sso","messageType":"InformationReply","caseId":"TH:SSO:C-404","payload":{"items":[{"code":"POLICE_REPORT","outcome":"TO_FOLLOW"}]}}`), 422},
		{"fail/notification-with-a-case", "POST", "/v1/outbound", []byte(`{"id":"ni-1","partner":"th-sso","messageType":"NotifyInjury","caseId":"TH:SSO:C-1","payload":{"record":{}}}`), 422},
		{"fail/not-json", "POST", "/v1/outbound", []byte("nope"), 400},
		{"fail/member-twice", "POST", "/v1/outbound", bytes.Replace(req, []byte(`"partner":"th-sso"`), []byte(`"partner":"nobody","partner":"th-sso"`), 1), 400},
		{"fail/unknown-member", "POST", "/v1/outbound", bytes.Replace(req, []byte(`{"id"`), []byte(`{"priority":"urgent","id"`), 1), 400},
		{"fail/id-too-long", "POST", "/v1/outbound", bytes.Replace(req, []byte(`"dec-9"`), []byte(`"`+strings.Repeat("d", 257)+`"`), 1), 422},
		{"fail/too-large", "POST", "/v1/outbound", append(bytes.Repeat([]byte(" "), 4<<20), req...), 413},
		{"ok/retry-a-partner", "POST", "/v1/outbound/retry?partner=th-sso", nil, 200},
		{"fail/retry-no-partner", "POST", "/v1/outbound/retry", nil, 400},
		{"fail/retry-unknown", "POST", "/v1/outbound/999/retry", nil, 404},
		{"fail/retry-not-a-number", "POST", "/v1/outbound/x/retry", nil, 400},
		{"fail/no-such-route", "GET", "/v1/nothing", nil, 404},
		{"fail/wrong-method", "DELETE", "/v1/outbound", nil, 405},
		{"fail/list-unknown-state", "GET", "/v1/outbound?state=stuck", nil, 400},
		{"ok/list-limit-1", "GET", "/v1/outbound?limit=1", nil, 200},
		{"ok/list-limit-1000", "GET", "/v1/outbound?limit=1000", nil, 200},
		{"fail/list-partner-with-a-nul", "GET", "/v1/outbound?partner=th%00sso", nil, 400},
		{"fail/id-with-a-nul", "POST", "/v1/outbound", bytes.Replace(req, []byte(`"dec-9"`), []byte(`"dec\u00009"`), 1), 422},
		// Query parameters: only a route's own, each once, as text; a
		// request with one it does not take does nothing.
		{"fail/post-with-a-query", "POST", "/v1/outbound?dry-run=1", bytes.Replace(req, []byte(`"dec-9"`), []byte(`"dec-dry"`), 1), 400},
		{"fail/list-misspelt-filter", "GET", "/v1/outbound?stat=dead", nil, 400},
		{"fail/list-state-twice", "GET", "/v1/outbound?state=dead&state=pending", nil, 400},
		{"fail/list-malformed-escape", "GET", "/v1/outbound?state=%zz", nil, 400},
		{"fail/list-long-name", "GET", "/v1/outbound?" + strings.Repeat("n", 200) + "=1", nil, 400},
		{"fail/retry-a-partner-and-more", "POST", "/v1/outbound/retry?partner=th-sso&all=1", nil, 400},
		{"fail/retry-a-partner-with-a-nul", "POST", "/v1/outbound/retry?partner=th%00sso", nil, 400},
		{"fail/retry-one-with-a-query", "POST", "/v1/outbound/999/retry?force=1", nil, 400},
		{"fail/answer-id-twice", "GET", "/v1/outbound/answer?id=dec-9&id=dec-8", nil, 400},
		{"fail/answer-id-not-utf8", "GET", "/v1/outbound/answer?id=dec%ff", nil, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs.Reset()
			wakes := woken.Load()
			defer func() {
				want := map[bool]int32{true: 1}[tc.name == "ok/queued"] // only a delivery queued wakes it
				if n := woken.Load() - wakes; n != want {
					t.Errorf("the deliverer woken %d times, want %d", n, want)
				}
			}()
			hr, _ := http.NewRequest(tc.method, hs.URL+tc.path, bytes.NewReader(tc.body))
			hr.Header.Set("X-Request-ID", "from-the-client")
			r, err := client(op).Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode != tc.want {
				t.Fatalf("HTTP %d, want %d: %s", r.StatusCode, tc.want, b)
			}
			details := map[string]string{ // what the detail must say, where the status alone does not tell
				"fail/answers-on-an-unknown-case": `caseId \"TH:SSO:C-404\": the case is unknown`,
				"fail/answers-that-break-c13":     "ExpectedBy is given if and only if the outcome is TO_FOLLOW",
				"fail/notification-with-a-case":   "a NotifyInjury has no caseId: the agency assigns it",
				"fail/post-with-a-query":          `query parameter \"dry-run\": this route takes none`,
				"fail/member-twice":               `duplicate member name \"partner\"`,
				"fail/unknown-member":             `member \"priority\" is not one of a request's`,
				"fail/list-misspelt-filter":       `query parameter \"stat\" is not one of this route's: partner, state, before, limit`,
				"fail/list-state-twice":           "query parameter state is given 2 times; give it once",
				"fail/list-malformed-escape":      "the query is malformed",
				"fail/list-long-name":             `query parameter \"` + strings.Repeat("n", 64) + `…\" is not one`,
				"fail/retry-a-partner-and-more":   `query parameter \"all\" is not one of this route's: partner`,
				"fail/retry-a-partner-with-a-nul": "query parameter partner must be UTF-8 text without NUL",
				"fail/answer-id-not-utf8":         "query parameter id must be UTF-8 text without NUL",
			}
			if want, ok := details[tc.name]; ok && !bytes.Contains(b, []byte(want)) {
				t.Fatalf("detail: %s, want %s", b, want)
			}
			id := r.Header.Get("X-Correlation-ID")
			if len(id) != 32 {
				t.Fatalf("correlation id %q", id)
			}
			// A JSON answer says so; a 204 has no body and no type.
			if ct := r.Header.Get("Content-Type"); r.StatusCode < 300 && r.StatusCode != http.StatusNoContent && ct != "application/json" && ct != "text/xml; charset=utf-8" ||
				r.StatusCode == http.StatusNoContent && (ct != "" || len(b) != 0) {
				t.Fatalf("answer %d with content type %q and %d bytes", r.StatusCode, ct, len(b))
			}
			if r.StatusCode >= 400 {
				var doc struct{ Type, Instance string }
				if r.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(b, &doc) != nil || doc.Instance != id || doc.Type == "" {
					t.Fatalf("not a problem with the correlation id %s: %s %s", id, r.Header.Get("Content-Type"), b)
				}
			}
			var rec map[string]any
			if err := json.Unmarshal(logs.Bytes(), &rec); err != nil {
				t.Fatalf("not one log line: %q", logs.String())
			}
			if rec["msg"] != "operator request" || rec["correlation_id"] != id || rec["operator"] != "ops-alice" || rec["status"] != float64(tc.want) {
				t.Fatalf("log line %v, want correlation id %s, operator ops-alice, status %d", rec, id, tc.want)
			}
			if strings.Contains(logs.String(), "Siti") || strings.Contains(logs.String(), "from-the-client") {
				t.Fatalf("the log holds the payload or the client's request id: %s", logs.String())
			}
		})
	}
	r, err := client(op).Get(hs.URL + "/v1/outbound?state=pending")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	var list []map[string]any
	if json.Unmarshal(b, &list) != nil || len(list) != 1 || list[0]["key"] != "dec-9" {
		t.Fatalf("list: %s", b)
	}
	if d, err := st.DeliveryByKey(context.Background(), "dec-9"); err != nil || !bytes.Contains(d.Payload, []byte("WORK_RELATEDNESS")) || d.CaseID != "MY:PERKESO:XB-1" {
		t.Fatalf("the queued delivery changed under a reused id: %+v %v", d, err)
	}
	// Pages: newest first, each full page linking to the next (RFC 8288).
	// Between them, another partner's dead letter.
	if _, err := st.EnqueueRefused(context.Background(), &store.Delivery{Key: "other-1", PartnerID: "bn-spk", MessageType: "JSON", Payload: []byte(`{}`)},
		"unknown partner", time.Now(), func(d *store.Delivery) *store.Entry {
			return &store.Entry{CorrelationID: "c-other", PartnerID: d.PartnerID, ReceivedAt: time.Now(), Route: "OUTBOUND", SourceKey: d.Key}
		}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"dec-10", "dec-11"} {
		b := bytes.Replace(req, []byte(`"dec-9"`), []byte(`"`+k+`"`), 1)
		if r, err := client(op).Post(hs.URL+"/v1/outbound", "application/json", bytes.NewReader(b)); err != nil || r.StatusCode != 202 {
			t.Fatalf("queue %s: %v %v", k, err, r)
		} else {
			r.Body.Close()
		}
	}
	pages := func(first string) (keys []string) {
		for next := first; next != ""; {
			r, err := client(op).Get(hs.URL + next)
			if err != nil {
				t.Fatal(err)
			}
			var page []struct{ Key string }
			_ = json.NewDecoder(r.Body).Decode(&page)
			r.Body.Close()
			for _, d := range page {
				keys = append(keys, d.Key)
			}
			next = ""
			if l := r.Header.Get("Link"); l != "" {
				next = l[1:strings.Index(l, ">")]
			}
		}
		return keys
	}
	keys := pages("/v1/outbound?state=pending&limit=2")
	if want := []string{"dec-11", "dec-10", "dec-9"}; !slices.Equal(keys, want) {
		t.Fatalf("pages: %v, want %v", keys, want)
	}
	// One partner's deliveries, page by page (the link keeps the partner:
	// bn-spk's dead letter lies between th-sso's).
	if got, want := pages("/v1/outbound?partner=th-sso&limit=2"), []string{"dec-11", "dec-10", "dec-9"}; !slices.Equal(got, want) {
		t.Fatalf("th-sso's pages: %v, want %v", got, want)
	}
	if got := pages("/v1/outbound?partner=bn-spk"); !slices.Equal(got, []string{"other-1"}) {
		t.Fatalf("bn-spk's: %v", got)
	}
	// A partner's dead letters, all queued again at once.
	if _, err := st.EnqueueRefused(context.Background(), &store.Delivery{Key: "dead-1", PartnerID: "th-sso", MessageType: "NotifyDecision", Payload: []byte(`{}`)},
		"HTTP 404", time.Now(), func(d *store.Delivery) *store.Entry {
			return &store.Entry{CorrelationID: "c", PartnerID: d.PartnerID, ReceivedAt: time.Now(), Route: "OUTBOUND", SourceKey: d.Key}
		}); err != nil {
		t.Fatal(err)
	}
	wakes := woken.Load()
	if r, err := client(op).Post(hs.URL+"/v1/outbound/retry?partner=th-sso", "", nil); err != nil || r.StatusCode != 200 {
		t.Fatalf("retry a partner: %v %v", err, r)
	} else {
		if n := woken.Load() - wakes; n != 1 {
			t.Errorf("a partner's dead letters queued again woke the deliverer %d times, want 1", n)
		}
		var got struct{ Queued int }
		_ = json.NewDecoder(r.Body).Decode(&got)
		r.Body.Close()
		if d, err := st.DeliveryByKey(context.Background(), "dead-1"); got.Queued != 1 || err != nil || d.State != store.DeliveryPending {
			t.Fatalf("retry a partner: %d queued, %+v %v", got.Queued, d, err)
		}
	}
	// A dead letter refused for good is not queued again: 422, and the
	// list says so.
	forGood := &store.Delivery{Key: "kafka:perkeso.outbound.v1:0:7", PartnerID: "th-sso", MessageType: "NotifyDecision", Payload: []byte(`{}`), NoRetry: true}
	if _, err := st.EnqueueRefused(context.Background(), forGood, "id must be UTF-8 text without control characters", time.Now(), func(d *store.Delivery) *store.Entry {
		return &store.Entry{CorrelationID: "c", PartnerID: d.PartnerID, ReceivedAt: time.Now(), Route: "OUTBOUND", SourceKey: d.Key}
	}); err != nil {
		t.Fatal(err)
	}
	if r, err := client(op).Post(fmt.Sprintf("%s/v1/outbound/%d/retry", hs.URL, forGood.ID), "", nil); err != nil || r.StatusCode != 422 {
		t.Fatalf("retry of a dead letter refused for good: %v %v, want 422", err, r)
	}
	if r, err := client(op).Post(hs.URL+"/v1/outbound/retry?partner=th-sso", "", nil); err != nil || r.StatusCode != 200 {
		t.Fatalf("retry a partner: %v %v", err, r)
	} else {
		var got struct{ Queued, RefusedForGood int }
		_ = json.NewDecoder(r.Body).Decode(&got)
		r.Body.Close()
		if got.Queued != 0 || got.RefusedForGood != 1 {
			t.Fatalf("retry a partner: %+v, want none queued and one left refused for good", got)
		}
	}
	if d, err := st.DeliveryByKey(context.Background(), forGood.Key); err != nil || d.State != store.DeliveryDead {
		t.Fatalf("after its retries were refused: %+v %v", d, err)
	}
	if r, err := client(op).Get(hs.URL + "/v1/outbound?state=dead&limit=1"); err != nil {
		t.Fatal(err)
	} else {
		var got struct{ Deliveries []map[string]any }
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if json.Unmarshal(b, &got.Deliveries) != nil || len(got.Deliveries) != 1 || got.Deliveries[0]["noRetry"] != true {
			t.Fatalf("the list: %s, want the dead letter with noRetry", b)
		}
	}
	// A delivery waiting behind an earlier one on its case says which.
	var onCase []int64
	for _, k := range []string{"order-1", "order-2"} {
		d := &store.Delivery{Key: k, PartnerID: "th-sso", MessageType: "NotifyDecision", CaseID: "TH:SSO:C-ORDER", Payload: []byte(`{}`)}
		if _, err := st.Enqueue(context.Background(), d, time.Now()); err != nil {
			t.Fatal(err)
		}
		onCase = append(onCase, d.ID)
	}
	if r, err := client(op).Get(hs.URL + "/v1/outbound?state=pending&limit=2"); err != nil {
		t.Fatal(err)
	} else {
		var got []struct {
			Key      string
			WaitsFor *int64
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if json.Unmarshal(b, &got) != nil || len(got) != 2 || got[0].Key != "order-2" || got[0].WaitsFor == nil || *got[0].WaitsFor != onCase[0] || got[1].WaitsFor != nil {
			t.Fatalf("the list: %s, want order-2 waiting for %d and order-1 for none", b, onCase[0])
		}
	}
	// A delivered request's answer, by its request id: as the partner
	// answered it (an agency's signed envelope, documents and all).
	ctx := context.Background()
	if _, err := st.Enqueue(ctx, &store.Delivery{Key: "req-answered", PartnerID: "th-sso", MessageType: "RequestInformation", CaseID: "TH:SSO:C-1", Payload: []byte(`{}`)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	due, err := st.ClaimDue(ctx, time.Now().Add(time.Hour), time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range due {
		if d.Key == "req-answered" {
			if err := st.RecordAttempt(ctx, d, store.Attempt{State: store.DeliveryDelivered}, &store.Entry{CorrelationID: "c", PartnerID: d.PartnerID,
				ReceivedAt: time.Now(), Route: "OUTBOUND RequestInformation", SourceKey: d.Key, Receipt: "<soap:Envelope>the answer</soap:Envelope>"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		query  string
		status int
		body   string
	}{
		{"id=req-answered", 200, "<soap:Envelope>the answer</soap:Envelope>"},
		{"id=dec-9", 404, ""}, // queued, not delivered
		{"id=nobody", 404, ""},
		{"", 400, ""},
		{"id=req%00answered", 400, ""},
	} {
		r, err := client(op).Get(hs.URL + "/v1/outbound/answer?" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != tc.status || tc.body != "" && (string(b) != tc.body || r.Header.Get("Content-Type") != "text/xml; charset=utf-8") {
			t.Fatalf("answer?%s: %d %s %q, want %d", tc.query, r.StatusCode, r.Header.Get("Content-Type"), b, tc.status)
		}
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "before=0", "before=x"} {
		if r, err := client(op).Get(hs.URL + "/v1/outbound?" + q); err != nil || r.StatusCode != 400 {
			t.Fatalf("%s: %v %v", q, err, r)
		} else {
			r.Body.Close()
		}
	}
	t.Run("fail/not-an-operator", func(t *testing.T) {
		if r, err := client(stranger).Get(hs.URL + "/v1/outbound"); err == nil {
			r.Body.Close()
			t.Fatal("a certificate outside the allow-list was accepted")
		}
		refusedAsNoOperator(t, handshakes)
	})
}

// TestStoreFailures: a request the store failed to queue is answered 503
// saying nothing was queued, unless the store cannot say whether it
// committed (here PostgreSQL's answer to the COMMIT cut on its way): then
// that it may have been, and to send it again unchanged, which finds it
// queued. Before, both said nothing was queued.
func TestStoreFailures(t *testing.T) {
	ca, _ := certs.NewCA("operators")
	op, _ := ca.IssueClient("ops-alice")
	reg := partner.NewRegistry([]*partner.Partner{{ID: "th-sso", Kind: partner.KindAgency, Institution: "TH:SSO", Endpoint: &partner.Endpoint{URL: "https://x", Protocol: "soap"}}})
	req := []byte(`{"id":"dec-lost","partner":"th-sso","messageType":"NotifyDecision","caseId":"MY:PERKESO:XB-1","payload":{"subject":"WORK_RELATEDNESS"}}`)
	post := func(st *store.DB) (int, string) {
		t.Helper()
		hs := served(t, ca, &operator.API{Store: st, Partners: reg, Log: slog.New(slog.DiscardHandler)}, operator.NewAccess(pool(ca), []string{"ops-alice"}, nil, nil))
		r, err := operatorClient(ca, op).Post(hs.URL+"/v1/outbound", "application/json", bytes.NewReader(req))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		return r.StatusCode, string(b)
	}

	closed := openStore(t)
	closed.Close()
	if status, body := post(closed); status != 503 || !strings.Contains(body, "nothing was queued") {
		t.Fatalf("fail/store-closed: HTTP %d %s", status, body)
	}

	dsn, arm := pgtest.CutCommits(t, pgtest.DSN(t))
	st, err := store.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	arm(1)
	if status, body := post(st); status != 503 || !strings.Contains(body, "may or may not have been queued: send it again unchanged") {
		t.Fatalf("fail/commit-lost: HTTP %d %s", status, body)
	}
	if status, body := post(st); status != 200 {
		t.Fatalf("ok/sent-again: HTTP %d %s, want 200: it was queued", status, body)
	}
}

// TestAccessRevoked: an operator whose certificate the operators' CA's CRL
// lists is refused, in the handshake and, once a reload brings the CRL, on
// the connection it holds open, though its name is still allowed; another
// operator goes on.
func TestAccessRevoked(t *testing.T) {
	ca, _ := certs.NewCA("operators")
	lost, _ := ca.IssueClient("ops-alice") // the certificate alice lost
	kept, _ := ca.IssueClient("ops-bob")
	crl, err := ca.RevocationList(1, lost.Cert)
	if err != nil {
		t.Fatal(err)
	}
	access := operator.NewAccess(pool(ca), []string{"ops-alice", "ops-bob"}, nil, nil)
	hs, handshakes := servedLogging(t, ca, &operator.API{Store: openStore(t), Partners: partner.NewRegistry(nil), Log: slog.New(slog.DiscardHandler), Access: access}, access)
	get := func(c *http.Client) (int, error) {
		r, err := c.Get(hs.URL + "/v1/outbound")
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, r.Body) // read whole, so that the connection is kept
		r.Body.Close()
		return r.StatusCode, nil
	}
	alice, bob := operatorClient(ca, lost), operatorClient(ca, kept)
	for _, c := range []*http.Client{alice, bob} {
		if status, err := get(c); err != nil || status != 200 {
			t.Fatalf("before the CRL: %d %v", status, err)
		}
	}
	access.Set(pool(ca), []string{"ops-alice", "ops-bob"}, nil, certs.NewRevocations([]*x509.RevocationList{crl}))
	t.Run("fail/revoked-on-its-open-connection", func(t *testing.T) {
		if status, err := get(alice); err != nil || status != http.StatusForbidden {
			t.Fatalf("%d %v, want 403", status, err)
		}
	})
	t.Run("fail/revoked-handshake", func(t *testing.T) {
		alice.CloseIdleConnections()
		if status, err := get(alice); err == nil {
			t.Fatalf("a new handshake with the revoked certificate got HTTP %d", status)
		}
		refusedAsNoOperator(t, handshakes)
	})
	t.Run("ok/not-listed", func(t *testing.T) {
		if status, err := get(bob); err != nil || status != 200 {
			t.Fatalf("%d %v", status, err)
		}
	})
}

// TestOperatorRoles: with operator.roles, each operator may use only the
// routes of its roles, and a route refused queues, retries and reads
// nothing; a reload that takes a role away refuses it on the connection
// the operator holds open.
func TestOperatorRoles(t *testing.T) {
	ca, _ := certs.NewCA("operators")
	st := openStore(t)
	ctx := context.Background()
	// A dead letter, for the retries: what a refused retry leaves dead.
	if _, err := st.EnqueueRefused(ctx, &store.Delivery{Key: "dead-1", PartnerID: "th-sso", MessageType: "NotifyDecision", Payload: []byte(`{}`)},
		"HTTP 503", time.Now(), func(d *store.Delivery) *store.Entry {
			return &store.Entry{CorrelationID: "c", PartnerID: d.PartnerID, ReceivedAt: time.Now(), Route: "OUTBOUND", SourceKey: d.Key}
		}); err != nil {
		t.Fatal(err)
	}
	dead, err := st.DeliveryByKey(ctx, "dead-1")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"ops-backoffice", "ops-duty", "ops-reader"}
	roles := map[string][]string{"ops-backoffice": {"send", "queue", "answers"}, "ops-duty": {"queue"}, "ops-reader": {"answers"}}
	access := operator.NewAccess(pool(ca), names, roles, nil)
	reg := partner.NewRegistry([]*partner.Partner{{ID: "th-sso", Kind: partner.KindAgency, Institution: "TH:SSO", Endpoint: &partner.Endpoint{URL: "https://x", Protocol: "soap"}}})
	hs := served(t, ca, &operator.API{Store: st, Partners: reg, Log: slog.New(slog.DiscardHandler), Access: access}, access)
	clients := map[string]*http.Client{}
	for _, n := range names {
		c, _ := ca.IssueClient(n)
		clients[n] = operatorClient(ca, c)
	}
	do := func(t *testing.T, who, method, path string, body []byte) (int, []byte) {
		t.Helper()
		hr, _ := http.NewRequest(method, hs.URL+path, bytes.NewReader(body))
		r, err := clients[who].Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		return r.StatusCode, b
	}
	send := func(id string) []byte {
		return []byte(`{"id":"` + id + `","partner":"th-sso","messageType":"NotifyDecision","caseId":"MY:PERKESO:XB-1","payload":{"subject":"WORK_RELATEDNESS"}}`)
	}
	for _, tc := range []struct {
		name, who    string
		method, path string
		body         []byte
		want         int
		role         string // the role a 403 names
	}{
		{"ok/backoffice-sends", "ops-backoffice", "POST", "/v1/outbound", send("dec-backoffice"), 202, ""},
		{"ok/backoffice-lists", "ops-backoffice", "GET", "/v1/outbound", nil, 200, ""},
		{"ok/backoffice-reads-answers", "ops-backoffice", "GET", "/v1/outbound/answer?id=dec-backoffice", nil, 404, ""},
		{"fail/duty-sends", "ops-duty", "POST", "/v1/outbound", send("dec-duty"), 403, "send"},
		{"fail/duty-reads-answers", "ops-duty", "GET", "/v1/outbound/answer?id=dec-backoffice", nil, 403, "answers"},
		{"ok/duty-lists", "ops-duty", "GET", "/v1/outbound?state=dead", nil, 200, ""},
		{"fail/reader-sends", "ops-reader", "POST", "/v1/outbound", send("dec-reader"), 403, "send"},
		{"fail/reader-lists", "ops-reader", "GET", "/v1/outbound", nil, 403, "queue"},
		{"fail/reader-retries", "ops-reader", "POST", fmt.Sprintf("/v1/outbound/%d/retry", dead.ID), nil, 403, "queue"},
		{"fail/reader-retries-a-partner", "ops-reader", "POST", "/v1/outbound/retry?partner=th-sso", nil, 403, "queue"},
		{"ok/reader-reads-answers", "ops-reader", "GET", "/v1/outbound/answer?id=dec-backoffice", nil, 404, ""},
		{"fail/reader-no-such-route", "ops-reader", "GET", "/v1/nothing", nil, 404, ""},
		{"ok/duty-retries", "ops-duty", "POST", fmt.Sprintf("/v1/outbound/%d/retry", dead.ID), nil, 204, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b := do(t, tc.who, tc.method, tc.path, tc.body)
			if status != tc.want {
				t.Fatalf("HTTP %d, want %d: %s", status, tc.want, b)
			}
			if tc.role != "" && !bytes.Contains(b, []byte(`not given the role \"`+tc.role+`\"`)) {
				t.Fatalf("the refusal does not name the role %q: %s", tc.role, b)
			}
			if tc.want == 403 {
				if _, err := st.DeliveryByKey(ctx, "dec-"+strings.TrimPrefix(tc.who, "ops-")); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("a refused operator's request: %v, want it not queued", err)
				}
				if d, err := st.DeliveryByKey(ctx, "dead-1"); err != nil || d.State != store.DeliveryDead {
					t.Fatalf("the dead letter after a refused retry: %+v %v", d, err)
				}
			}
		})
	}
	// The retry the duty operator may make put the dead letter back.
	if d, err := st.DeliveryByKey(ctx, "dead-1"); err != nil || d.State != store.DeliveryPending {
		t.Fatalf("after the duty operator's retry: %+v %v", d, err)
	}
	access.Set(pool(ca), names, map[string][]string{"ops-backoffice": {"send", "queue", "answers"}, "ops-duty": {"answers"}, "ops-reader": {"answers"}}, nil)
	t.Run("fail/role-taken-away-on-its-open-connection", func(t *testing.T) {
		if status, b := do(t, "ops-duty", "GET", "/v1/outbound", nil); status != 403 {
			t.Fatalf("HTTP %d, want 403: %s", status, b)
		}
	})
	access.Set(pool(ca), names, nil, nil)
	t.Run("ok/without-roles-every-route", func(t *testing.T) {
		if status, b := do(t, "ops-reader", "GET", "/v1/outbound", nil); status != 200 {
			t.Fatalf("HTTP %d, want 200: %s", status, b)
		}
	})
}

// served serves api over mutual TLS as the operator listener does (access
// checked in each handshake), with a server certificate of ca, until the
// test ends.
func served(t *testing.T, ca *certs.CA, api *operator.API, access *operator.Access) *httptest.Server {
	t.Helper()
	hs, _ := servedLogging(t, ca, api, access)
	return hs
}

// servedLogging is served, with what the server logs of its failed
// handshakes (their reasons: "not an operator certificate").
func servedLogging(t *testing.T, ca *certs.CA, api *operator.API, access *operator.Access) (*httptest.Server, *gatewaytest.SyncBuffer) {
	t.Helper()
	srv, err := ca.IssueServer("localhost", nil, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(api.Handler())
	serverCert := &tls.Certificate{Certificate: [][]byte{srv.Cert.Raw}, PrivateKey: srv.Key}
	hs.TLS = operator.TLSConfig(func() *tls.Certificate { return serverCert }, access)
	handshakes := &gatewaytest.SyncBuffer{}
	hs.Config.ErrorLog = log.New(handshakes, "", 0)
	hs.StartTLS()
	t.Cleanup(hs.Close)
	return hs, handshakes
}

// refusedAsNoOperator waits for the server's word that a handshake was
// refused by the operators' check (the client hears of the refusal first).
func refusedAsNoOperator(t *testing.T, handshakes *gatewaytest.SyncBuffer) {
	t.Helper()
	gatewaytest.Until(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !strings.Contains(handshakes.String(), "not an operator certificate") {
			return fmt.Errorf("the handshake was not refused by the operators' check:\n%s", handshakes.String())
		}
		return nil
	})
}

// operatorClient presents c and trusts ca.
func operatorClient(ca *certs.CA, c *certs.Issued) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool(ca),
		Certificates: []tls.Certificate{{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key}}}}}
}

// pool holds ca alone.
func pool(ca *certs.CA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// openStore is a new SQLite store, closed when the test ends.
func openStore(t *testing.T) *store.DB {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
