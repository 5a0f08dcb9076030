package events_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

func hdr(json string) string { return base64.RawURLEncoding.EncodeToString([]byte(json)) }

// TestRender: a verified event rendered from its log entry is byte for byte
// the event built directly from the same parts (what the intake published
// before events were held by reference).
func TestRender(t *testing.T) {
	b := &events.Builder{Topics: events.DefaultTopics, Source: "test"}
	// Text that encoding/json escapes: HTML characters, U+2028, non-ASCII,
	// a control character, quotes.
	record, _ := json.Marshal(map[string]string{"recordId": "r1", "narrative": "fell <2m> & \u2028 jatuh tangga – \"kaki\"\t"})
	receipt := "eyJ.receipt.sig"
	doc := []byte(`{"noticeId":"n1","narrative":"<b>&amp;</b> \u2028 é"}`)
	compact := hdr(`{"alg":"ES256"}`) + "." + base64.RawURLEncoding.EncodeToString(doc) + ".c2ln"
	detached := hdr(`{"alg":"ES256","kid":"k"}`) + "..c2ln"
	unencoded := hdr(`{"alg":"ES256","b64":false,"crit":["b64"]}`) + "..c2ln"
	tests := []struct {
		name    string
		render  string
		logged  *store.Entry
		want    events.Verified // built directly; zero for a failure
		wantErr bool
	}{
		{name: "ok/compact", render: events.RenderVerifiedJWS, logged: &store.Entry{Body: []byte(compact)},
			want: events.Verified{JWS: ptr(events.SignedFrom(compact, nil, true))}},
		{name: "ok/detached", render: events.RenderVerifiedJWS, logged: &store.Entry{Body: doc, Signature: detached},
			want: events.Verified{JWS: ptr(events.SignedFrom(detached, doc, true))}},
		{name: "ok/detached-unencoded", render: events.RenderVerifiedJWS, logged: &store.Entry{Body: doc, Signature: unencoded},
			want: events.Verified{JWS: ptr(events.SignedFrom(unencoded, doc, false))}},
		{name: "ok/soap", render: events.RenderVerifiedSOAP, logged: &store.Entry{Body: []byte(`<Envelope a="&amp;">é</Envelope>`)},
			want: events.Verified{SOAP: `<Envelope a="&amp;">é</Envelope>`}},
		{name: "ok/soap-only-html-characters", render: events.RenderVerifiedSOAP, logged: &store.Entry{Body: []byte("<Envelope/>&")},
			want: events.Verified{SOAP: "<Envelope/>&"}},
		// No payload member at all, as in an insurer claim's event (its batch's JWS, detached).
		{name: "ok/empty-payload-omitted", render: events.RenderVerifiedJWS, logged: &store.Entry{Body: []byte{}, Signature: detached},
			want: events.Verified{JWS: &events.Signed{Protected: hdr(`{"alg":"ES256","kid":"k"}`), Signature: "c2ln"}}},
		{name: "fail/unknown-renderer", render: "verified/fax", logged: &store.Entry{Body: doc}, wantErr: true},
		{name: "fail/no-entry", render: events.RenderVerifiedJWS, wantErr: true},
		{name: "fail/header-not-base64", render: events.RenderVerifiedJWS, logged: &store.Entry{Body: doc, Signature: "!!..c2ln"}, wantErr: true},
		{name: "fail/header-not-json", render: events.RenderVerifiedJWS, logged: &store.Entry{Body: doc, Signature: hdr("alg") + "..c2ln"}, wantErr: true},
	}
	at := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.logged != nil {
				tt.logged.Canonical, tt.logged.Receipt = record, receipt
			}
			m := b.VerifiedRef("r1", "p1", at, tt.render)
			m.Logged = tt.logged
			err := events.Render(&m)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("rendered %s, want an error", m.Value)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Record, tt.want.Receipt = record, receipt
			direct, err := b.VerifiedMessage("r1", "p1", at, tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if string(m.Value) != string(direct.Value) {
				t.Fatalf("rendered\n%s\nwant\n%s", m.Value, direct.Value)
			}
			if string(m.Key) != string(direct.Key) || m.Topic != direct.Topic || len(m.Headers) != len(direct.Headers) {
				t.Fatalf("rendered message %+v, want %+v", m, direct)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// FuzzRender holds the rendered event to json.Marshal's bytes for any record
// text (the record as json.Marshal wrote it) and any signed document.
func FuzzRender(f *testing.F) {
	f.Add("fell from a ladder", []byte(`{"noticeId":"n1"}`), false)
	f.Add("<b> & \u2028", []byte("<Envelope>\x00é</Envelope>"), true)
	f.Add("", []byte{0xff, '"', '\\'}, false)
	// Each byte encoding/json escapes (and the two next to the control
	// characters' bound, which it does not), alone and in a string that
	// starts with one it copies: the quick copy must stop at each.
	for _, c := range []string{"\"", "\\", "<", ">", "&", "\x1f", "\x00", "\x80", "\u00e9", "\u2028", "\xff", " ", "\x7f"} {
		for _, soap := range []bool{true, false} {
			f.Add("", []byte(c), soap)
			f.Add("", []byte("a"+c+"b"), soap)
		}
	}
	b := &events.Builder{Topics: events.DefaultTopics, Source: "fuzz"}
	unencoded := hdr(`{"alg":"ES256","b64":false,"crit":["b64"]}`) + "..c2ln"
	f.Fuzz(func(t *testing.T, text string, body []byte, soap bool) {
		record, err := json.Marshal(map[string]string{"narrative": text})
		if err != nil {
			t.Skip()
		}
		m := b.VerifiedRef("r1", "p1", time.Time{}, events.RenderVerifiedJWS)
		m.Logged = &store.Entry{Body: body, Signature: unencoded, Canonical: record, Receipt: "eyJ.r.s"}
		want := events.Verified{Record: record, Receipt: "eyJ.r.s", JWS: ptr(events.SignedFrom(unencoded, body, false))}
		if soap {
			m.Render, m.Logged.Signature = events.RenderVerifiedSOAP, ""
			want.JWS, want.SOAP = nil, string(body)
		}
		if err := events.Render(&m); err != nil {
			t.Fatal(err)
		}
		direct, err := b.VerifiedMessage("r1", "p1", time.Time{}, want)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Value) != string(direct.Value) {
			t.Fatalf("rendered\n%q\nwant\n%q", m.Value, direct.Value)
		}
	})
}

// BenchmarkRender renders the event of example A (its golden record,
// compacted, and a compact JWS of its notice) as the relay does, against
// json.Marshal of the same value.
func BenchmarkRender(b *testing.B) {
	golden, err := os.ReadFile("../../../../adapters/sgemployer/testdata/example-a.golden.json")
	if err != nil {
		b.Fatal(err)
	}
	var record bytes.Buffer
	if err := json.Compact(&record, golden); err != nil {
		b.Fatal(err)
	}
	notice, err := os.ReadFile("../../../../adapters/sgemployer/testdata/example-a.in.json")
	if err != nil {
		b.Fatal(err)
	}
	compact := hdr(`{"alg":"ES256","kid":"k"}`) + "." + base64.RawURLEncoding.EncodeToString(notice) + "." + strings.Repeat("s", 86)
	receipt := hdr(`{"alg":"ES256","kid":"r"}`) + "." + strings.Repeat("p", 700) + "." + strings.Repeat("s", 86)
	bd := &events.Builder{Topics: events.DefaultTopics, Source: "bench"}
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := bd.VerifiedRef("r1", "p1", time.Time{}, events.RenderVerifiedJWS)
			m.Logged = &store.Entry{Body: []byte(compact), Canonical: record.Bytes(), Receipt: receipt}
			if err := events.Render(&m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sg := events.SignedFrom(compact, nil, true)
			if _, err := bd.VerifiedMessage("r1", "p1", time.Time{}, events.Verified{Record: record.Bytes(), Receipt: receipt, JWS: &sg}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestCheck: an event over the builder's bound is refused; a document
// small enough that its event cannot exceed the bound is not rendered to
// find out.
func TestCheck(t *testing.T) {
	b := &events.Builder{Topics: events.DefaultTopics, Source: "test", MaxValue: 3000}
	compact := hdr(`{"alg":"ES256"}`) + "." + strings.Repeat("A", 1000) + ".c2ln"
	tests := []struct {
		name   string
		m      store.Message
		e      *store.Entry
		tooBig bool
	}{
		{name: "ok/value-under", m: store.Message{Value: bytes.Repeat([]byte("x"), 3000)}},
		{name: "fail/value-over", m: store.Message{Value: bytes.Repeat([]byte("x"), 3001)}, tooBig: true},
		// 6 × 60 + 256 < 3000: not rendered (the unknown renderer is never asked).
		{name: "ok/small-document-not-rendered", m: store.Message{Render: "verified/unknown"}, e: &store.Entry{Body: bytes.Repeat([]byte("<"), 60)}},
		// 6 × 1,020 > 3000, so rendered: about 1,100 bytes.
		{name: "ok/rendered-fits", m: store.Message{Render: events.RenderVerifiedJWS}, e: &store.Entry{Body: []byte(compact), Canonical: []byte(`{}`)}},
		// 500 '<' become 3,000 bytes of \u003c.
		{name: "fail/rendered-over", m: store.Message{Render: events.RenderVerifiedSOAP}, e: &store.Entry{Body: bytes.Repeat([]byte("<"), 500), Canonical: []byte(`{}`)}, tooBig: true},
		// A small document, but the record, the receipt or the signature
		// alone makes the event too large: each counts in the estimate.
		{name: "fail/record-over", m: store.Message{Render: events.RenderVerifiedSOAP},
			e: &store.Entry{Body: []byte("<x/>"), Canonical: []byte(`{"a":"` + strings.Repeat("r", 2990) + `"}`)}, tooBig: true},
		{name: "fail/receipt-over", m: store.Message{Render: events.RenderVerifiedSOAP},
			e: &store.Entry{Body: []byte("<x/>"), Canonical: []byte(`{}`), Receipt: strings.Repeat("R", 2990)}, tooBig: true},
		{name: "fail/signature-over", m: store.Message{Render: events.RenderVerifiedJWS},
			e: &store.Entry{Body: []byte(`{}`), Canonical: []byte(`{}`), Signature: hdr(`{"alg":"ES256","kid":"k"}`) + ".." + strings.Repeat("S", 2900)}, tooBig: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := b.Check(tt.m, tt.e)
			if tt.tooBig != errors.Is(err, events.ErrTooLarge) || (!tt.tooBig && err != nil) {
				t.Fatalf("Check = %v, want too large: %t", err, tt.tooBig)
			}
		})
	}
}

// TestCheckDefaultLimit: a builder without MaxValue holds events to
// MaxValueBytes.
func TestCheckDefaultLimit(t *testing.T) {
	b := &events.Builder{Topics: events.DefaultTopics, Source: "test"}
	if err := b.Check(store.Message{Value: make([]byte, events.MaxValueBytes)}, nil); err != nil {
		t.Fatalf("at the default limit: %v", err)
	}
	if err := b.Check(store.Message{Value: make([]byte, events.MaxValueBytes+1)}, nil); !errors.Is(err, events.ErrTooLarge) {
		t.Fatalf("one byte over the default limit: %v", err)
	}
}

// TestWithin: a pointer too long for a rejected event becomes its longest
// ancestor that fits, which still holds the problem.
func TestWithin(t *testing.T) {
	long := strings.Repeat("n", 300)
	for _, tc := range []struct{ name, pointer, want string }{
		{"ok/short", "/claims/3/claimant/idNo", "/claims/3/claimant/idNo"},
		{"ok/root", "", ""},
		{"ok/exactly-the-bound", "/" + long[:255], "/" + long[:255]},
		{"fail/long-member-in-a-claim", "/claims/3/" + long, "/claims/3"},
		{"fail/long-top-level-member", "/" + long, ""},
		{"fail/long-member-then-more", "/claims/3/" + long + "/x", "/claims/3"},
		{"fail/no-slash", long, ""},
		{"fail/soap-location", "/xb:NotifyInjury/xb:" + long, "/xb:NotifyInjury"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := events.Within(tc.pointer, events.MaxPointer); got != tc.want {
				t.Fatalf("Within(%.40q…) = %.60q, want %q", tc.pointer, got, tc.want)
			}
		})
	}
}

// TestCaseMessageReceipt: a case message's event carries the gateway's
// receipt, which states every member and the body's hash; VerifyCaseMessage
// takes such an event and refuses it altered, signed by another key, without
// a receipt, or with a notice's receipt in its place.
func TestCaseMessageReceipt(t *testing.T) {
	signer, set := newSigner(t, "gw-1")
	other, _ := newSigner(t, "gw-1") // the same kid, another key
	b := &events.Builder{Topics: events.DefaultTopics, Source: "test", Receipts: signer}
	cm := events.CaseMessage{Operation: "NotifyDecision", CaseID: "MY:PERKESO:XB-2026-000731", Sender: "TH:SSO", MessageID: "urn:uuid:m-1",
		ReceivedAt: "2026-03-20T02:00:00Z", Body: `<xb:NotifyDecision xmlns:xb="urn:xb-injury:exchange:v1"><xb:Outcome>ACCEPTED</xb:Outcome></xb:NotifyDecision>`}
	m, err := b.CaseMessageMessage("th-sso", time.Now(), cm)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(map[string]any)) []byte { return edited(t, m.Value, f) }
	noticeReceipt, _ := signer.Sign(map[string]string{"recordId": "r-1"})
	forged, _ := (&events.Builder{Topics: events.DefaultTopics, Receipts: other}).CaseMessageMessage("th-sso", time.Now(), cm)
	for _, tc := range []struct {
		name  string
		value []byte
		ok    bool
	}{
		{"ok/as-published", m.Value, true},
		{"fail/body-altered", edit(func(v map[string]any) { v["body"] = strings.Replace(cm.Body, "ACCEPTED", "REJECTED", 1) }), false},
		{"fail/case-altered", edit(func(v map[string]any) { v["caseId"] = "MY:PERKESO:XB-2026-000999" }), false},
		{"fail/documents-omitted-added", edit(func(v map[string]any) { v["documentsOmitted"] = true }), false},
		{"fail/no-receipt", edit(func(v map[string]any) { delete(v, "receipt") }), false},
		{"fail/notice-receipt", edit(func(v map[string]any) { v["receipt"] = noticeReceipt }), false},
		{"fail/another-key", forged.Value, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := events.VerifyCaseMessage(tc.value, set)
			if tc.ok != (err == nil) {
				t.Fatalf("VerifyCaseMessage: %v", err)
			}
			if tc.ok && (got.CaseID != cm.CaseID || got.Body != cm.Body) {
				t.Fatalf("returned %+v", got)
			}
		})
	}
}

// ownEventKind is one kind of event about the gateway's own doing: how a
// Builder makes an example, how it is read back, and member alterations its
// verifier must refuse.
type ownEventKind struct {
	name   string
	build  func() (store.Message, error)
	verify func([]byte, jwk.Set) (any, error)
	edits  map[string]func(map[string]any)
}

// ownEvents are the events about the gateway's own doing, each built by
// b from one example and read back by its verifier.
func ownEvents(b *events.Builder) []ownEventKind {
	st := events.DeliveryStatus{DeliveryID: 7, Key: "ni-001", Partner: "th-sso", MessageType: "NotifyInjury", CaseID: "TH:SSO:C-1",
		State: "delivered", Attempts: 2, At: "2026-03-20T02:00:00Z",
		Error: "the partner answered \"\xff\x00\""} // text that is not UTF-8: a reader decodes it as U+FFFD
	rj := events.Rejected{ProblemType: "https://perkeso.gov.my/problems/schema-invalid", Status: 422, CorrelationID: "c-1", Partner: "sg-acme",
		Format: "sg-employer-notice/v1", ReceivedAt: "2026-03-20T02:00:00Z",
		Problems: []adapters.Problem{{Pointer: "/injury/occurredAt", Code: "format"}, {Pointer: "/employee/é\u2028<&>", Code: "required"}, {Pointer: "/employee/\xfe", Code: "required"}}}
	return []ownEventKind{
		{"delivery-status", func() (store.Message, error) { return b.DeliveryStatusMessage("t.status", st, time.Now()) },
			func(v []byte, set jwk.Set) (any, error) { return events.VerifyDeliveryStatus(v, set) },
			map[string]func(map[string]any){
				"state-altered":    func(v map[string]any) { v["state"] = "dead-lettered" },
				"case-altered":     func(v map[string]any) { v["caseId"] = "TH:SSO:C-2" },
				"error-added":      func(v map[string]any) { v["error"] = "refused" },
				"attempts-altered": func(v map[string]any) { v["attempts"] = 1 },
			}},
		{"rejection", func() (store.Message, error) { return b.RejectedMessage(rj, time.Now()) },
			func(v []byte, set jwk.Set) (any, error) { return events.VerifyRejected(v, set) },
			map[string]func(map[string]any){
				"partner-altered": func(v map[string]any) { v["partner"] = "sg-other" },
				"problem-dropped": func(v map[string]any) { v["problems"] = v["problems"].([]any)[:1] },
				"status-altered":  func(v map[string]any) { v["status"] = 400 },
				"format-dropped":  func(v map[string]any) { delete(v, "format") },
			}},
	}
}

// TestOwnEventReceipts: a delivery-status and a rejected event carry the
// gateway's receipt, which states every member; the verifiers take such an
// event and refuse it altered, signed by another key, without a receipt,
// or with another kind's receipt in its place.
func TestOwnEventReceipts(t *testing.T) {
	signer, set := newSigner(t, "gw-1")
	other, _ := newSigner(t, "gw-1") // the same kid, another key
	caseReceipt, _ := signer.SignCaseMessage(receipt.CaseMessage{Issuer: receipt.Issuer, CaseID: "TH:SSO:C-1"})
	kinds := ownEvents(&events.Builder{Topics: events.DefaultTopics, Source: "test", Receipts: signer})
	forgedKinds := ownEvents(&events.Builder{Topics: events.DefaultTopics, Source: "test", Receipts: other})
	for k, kind := range kinds {
		m, err := kind.build()
		if err != nil {
			t.Fatal(err)
		}
		forged, _ := forgedKinds[k].build()
		otherKind, _ := kinds[1-k].build()
		edit := func(f func(map[string]any)) []byte { return edited(t, m.Value, f) }
		type tc struct {
			name  string
			value []byte
			ok    bool
		}
		cases := []tc{
			{"ok/as-published", m.Value, true},
			{"ok/members-reordered", edit(func(map[string]any) {}), true}, // map keys re-marshalled in sorted order
			{"fail/no-receipt", edit(func(v map[string]any) { delete(v, "receipt") }), false},
			{"fail/case-message-receipt", edit(func(v map[string]any) { v["receipt"] = caseReceipt }), false},
			{"fail/other-kinds-receipt", edit(func(v map[string]any) {
				var o map[string]any
				if err := json.Unmarshal(otherKind.Value, &o); err != nil {
					t.Fatal(err)
				}
				v["receipt"] = o["receipt"]
			}), false},
			{"fail/another-key", forged.Value, false},
			{"fail/not-json", []byte("delivered"), false},
		}
		for name, f := range kind.edits {
			cases = append(cases, tc{"fail/" + name, edit(f), false})
		}
		for _, c := range cases {
			t.Run(kind.name+"/"+c.name, func(t *testing.T) {
				if _, err := kind.verify(c.value, set); c.ok != (err == nil) {
					t.Fatalf("verify: %v", err)
				}
			})
		}
		// Without a signer (tests, tools) the event goes without a receipt.
		plain, err := ownEvents(&events.Builder{Topics: events.DefaultTopics})[k].build()
		if err != nil || strings.Contains(string(plain.Value), "receipt") {
			t.Fatalf("unsigned %s %s: %v", kind.name, plain.Value, err)
		}
	}
}

// FuzzVerifyOwnEvent: VerifyDeliveryStatus and VerifyRejected read whatever
// a topic holds without panicking, and what they let through is an event
// the gateway's key signed, member for member.
func FuzzVerifyOwnEvent(f *testing.F) {
	signer, set := newSigner(f, "gw-1")
	kinds := ownEvents(&events.Builder{Topics: events.DefaultTopics, Source: "fuzz", Receipts: signer})
	signed := map[string]bool{}
	for k, kind := range kinds {
		m, err := kind.build()
		if err != nil {
			f.Fatal(err)
		}
		got, err := kind.verify(m.Value, set)
		if err != nil {
			f.Fatal(err)
		}
		b, _ := json.Marshal(got)
		signed[string(b)] = true
		f.Add(m.Value, k)
	}
	f.Add([]byte(`{"receipt":"a.b.c","state":"delivered"}`), 0)
	f.Fuzz(func(t *testing.T, value []byte, k int) {
		got, err := kinds[k&1].verify(value, set)
		if err != nil {
			return
		}
		if b, _ := json.Marshal(got); !signed[string(b)] {
			t.Fatalf("accepted %s, which the gateway did not sign", b)
		}
	})
}

// edited is the JSON object value with f applied to its members.
func edited(t testing.TB, value []byte, f func(map[string]any)) []byte {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(value, &v); err != nil {
		t.Fatal(err)
	}
	f(v)
	out, _ := json.Marshal(v)
	return out
}

// newSigner is a receipt signer with a new key and the JWKS of its public half.
func newSigner(t testing.TB, kid string) (*receipt.Signer, jwk.Set) {
	t.Helper()
	s := gatewaytest.NewSigner(t, kid)
	return s, s.JWKS()
}

// FuzzVerifyCaseMessage: VerifyCaseMessage reads whatever a topic holds
// without panicking, and what it lets through is an event whose every
// member and body the gateway's key signed.
func FuzzVerifyCaseMessage(f *testing.F) {
	signer, set := newSigner(f, "gw-1")
	b := &events.Builder{Topics: events.DefaultTopics, Source: "fuzz", Receipts: signer}
	for _, cm := range []events.CaseMessage{
		{Operation: "NotifyDecision", CaseID: "MY:PERKESO:XB-1", Sender: "TH:SSO", MessageID: "urn:uuid:m-1", ReceivedAt: "2026-03-20T02:00:00Z", Body: "<xb:NotifyDecision/>"},
		{Operation: "InformationReply", CaseID: "TH:SSO:C-1", Sender: "TH:SSO", MessageID: "m-2", ReceivedAt: "x", Body: "é\u2028<&>", RequestID: "ri-1", DocumentsOmitted: true},
	} {
		m, err := b.CaseMessageMessage("th-sso", time.Now(), cm)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m.Value)
	}
	f.Add([]byte(`{"receipt":"a.b.c","body":""}`))
	f.Fuzz(func(t *testing.T, value []byte) {
		got, err := events.VerifyCaseMessage(value, set)
		if err != nil {
			return
		}
		st, err := receipt.VerifyCaseMessage(got.Receipt, set)
		if err != nil {
			t.Fatalf("accepted with a receipt that does not verify: %v", err)
		}
		sum := sha256.Sum256([]byte(got.Body))
		if st.CaseID != got.CaseID || st.Operation != got.Operation || st.Sender != got.Sender || st.MessageID != got.MessageID ||
			st.ReceivedAt != got.ReceivedAt || st.RequestID != got.RequestID || st.DocumentsOmitted != got.DocumentsOmitted ||
			st.BodySHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("accepted %+v under a receipt stating %+v", got, st)
		}
	})
}

// FuzzOwnEventRoundTrip: whatever text a delivery status or a rejection
// carries (a partner's answer in the error, a member's name in a problem's
// pointer), the event the gateway signs passes the check a back office
// makes of it: the gateway's own events are never quarantined.
func FuzzOwnEventRoundTrip(f *testing.F) {
	signer, set := newSigner(f, "gw-1")
	b := &events.Builder{Topics: events.DefaultTopics, Source: "test", Receipts: signer}
	f.Add("timeout", "/employee/name", "TH:SSO:C-1")
	f.Add("the partner answered \"\xff\x00\"", "/employee/\xfe", "")
	f.Add("\u2028<&>\\u0000", "~1~0", "\x00")
	f.Fuzz(func(t *testing.T, text, pointer, caseID string) {
		st := events.DeliveryStatus{DeliveryID: 1, Key: "k-1", Partner: "th-sso", MessageType: "NotifyDecision", CaseID: caseID,
			State: "retrying", Attempts: 1, Error: text, At: "2026-03-20T02:00:00Z"}
		m, err := b.DeliveryStatusMessage("t.status", st, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := events.VerifyDeliveryStatus(m.Value, set); err != nil {
			t.Fatalf("the gateway's own status (error %q, case %q) fails its check: %v", text, caseID, err)
		}
		rj := events.Rejected{ProblemType: "https://perkeso.gov.my/problems/schema-invalid", Status: 422, CorrelationID: "c-1", Partner: "sg-acme",
			Format: "sg-employer-notice/v1", ReceivedAt: "2026-03-20T02:00:00Z", Problems: []adapters.Problem{{Pointer: pointer, Code: "required", Message: text}}}
		if m, err = b.RejectedMessage(rj, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := events.VerifyRejected(m.Value, set); err != nil {
			t.Fatalf("the gateway's own rejection (pointer %q) fails its check: %v", pointer, err)
		}
	})
}
