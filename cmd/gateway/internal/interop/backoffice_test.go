package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/segmentio/kafka-go"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/outbound"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
)

// TestNodeBackOfficeVerifiesEvents: a back office written in Node from the
// README (backoffice-verify.mjs, npm jose) checks the verified events of
// notices a real gateway accepted in each of the three forms, with text
// that JSON writers escape differently (&, <, >, é, a line separator): the
// receipt verifies with the gateway's JWKS and names the record (its
// recordSha256 is the SHA-256 of the record's bytes as they stand in the
// event), and the partner's JWS, as the event carries it, verifies with the
// partner's keys over the document the partner sent.
func TestNodeBackOfficeVerifiesEvents(t *testing.T) {
	dir := nodeModules(t)
	env := gatewaytest.Start(t, gatewaytest.Options{EventLimit: 1 << 20})
	a := env.Partners["employer-a"]
	client := env.Client(&a.TLS)
	example := readExample(t, "sgemployer", "example-a.in.json")
	docs := map[partnerkit.Form][]byte{
		partnerkit.Compact:           bytes.Replace(example, []byte(`"TPE-2026-0042"`), []byte(`"BO-1"`), 1),
		partnerkit.Detached:          bytes.Replace(bytes.Replace(example, []byte(`"TPE-2026-0042"`), []byte(`"BO-2"`), 1), []byte(`Tuas Precision Engineering Pte. Ltd.`), []byte(`Tan & Sons <Pte> Ltd`), 1),
		partnerkit.DetachedUnencoded: bytes.Replace(bytes.Replace(example, []byte(`"TPE-2026-0042"`), []byte(`"BO-3"`), 1), []byte(`the pallet racking.`), []byte(`the pallet racking (caf\u00e9 side) \u2028 \"B&B\" <5 m>.`), 1),
	}
	sent := map[string]bool{}
	for form, doc := range docs {
		sig, err := partnerkit.Sign(doc, a.SigningKey, form)
		must(t, err)
		req, _ := http.NewRequest("POST", env.Server.URL+"/v1/injury-notices", strings.NewReader(sig))
		req.Header.Set("Content-Type", "application/jose")
		if form != partnerkit.Compact {
			req, _ = http.NewRequest("POST", env.Server.URL+"/v1/injury-notices", bytes.NewReader(doc))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-JWS-Signature", sig)
		}
		resp, err := client.Do(req)
		must(t, err)
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 202 {
			t.Fatalf("%v: HTTP %d %s", form, resp.StatusCode, body)
		}
		sent[string(doc)] = true
	}

	claim, err := env.Store.ClaimOutbox(context.Background(), 100)
	must(t, err)
	defer claim.Release()
	type event struct {
		Value string `json:"value"`
	}
	var evs []event
	for _, m := range claim.Messages {
		if m.Render == "" {
			continue // not an accepted notice's event
		}
		must(t, events.Render(&m))
		evs = append(evs, event{string(m.Value)})
	}
	if len(evs) != len(docs) {
		t.Fatalf("%d verified events for %d notices", len(evs), len(docs))
	}

	partnerKeys, err := jwk.PublicSetOf(jwkSet(t, a.SigningKey))
	must(t, err)
	out := runNode(t, dir, []string{"EVENTS=" + jsonFile(t, "events.json", evs), "GATEWAY_JWKS=" + jsonFile(t, "gateway.json", env.Receipts.JWKS()),
		"PARTNER_JWKS=" + jsonFile(t, "partner.json", partnerKeys)}, "backoffice-verify.mjs")
	var found []struct {
		Receipt, JWS, Document, Error          string
		RecordShaRaw, RecordShaNaive, RecordID bool
	}
	must(t, json.Unmarshal(out, &found))
	naive := 0
	for i, f := range found {
		if f.Error != "" || f.Receipt != "ok" || f.JWS != "ok" || !f.RecordShaRaw || !f.RecordID || !sent[f.Document] {
			t.Errorf("event %d: %+v", i, f)
		}
		if f.RecordShaNaive {
			naive++
		}
	}
	t.Logf("%d events verified by npm jose; a consumer hashing JSON.stringify of the parsed record instead of its bytes would match %d of them", len(found), naive)
}

// jwkSet is a set holding k.
func jwkSet(t *testing.T, k jwk.Key) jwk.Set {
	s := jwk.NewSet()
	must(t, s.AddKey(k))
	return s
}

// TestNodeVerifiesCaseMessages: a back office written in Node from the
// README (casemessage-verify.mjs, npm jose) verifies the receipts of
// case-messages events as the gateway builds them, with bodies holding text
// JSON writers escape differently, and finds an altered body and an altered
// case id.
func TestNodeVerifiesCaseMessages(t *testing.T) {
	dir := nodeModules(t)
	env := gatewaytest.Start(t, gatewaytest.Options{})
	b := &events.Builder{Topics: events.DefaultTopics, Source: "test", Receipts: env.Receipts}
	body := `<xb:NotifyDecision xmlns:xb="urn:xb-injury:exchange:v1"><xb:Reason>Jatuh &amp; cedera &lt;5 m&gt; – café ` + "\u2028" + `</xb:Reason></xb:NotifyDecision>`
	var values []string
	for _, cm := range []events.CaseMessage{
		{Operation: "NotifyDecision", CaseID: "MY:PERKESO:XB-2026-000731", Sender: "TH:SSO", MessageID: "urn:uuid:m-1", ReceivedAt: "2026-03-20T02:00:00Z", Body: body},
		{Operation: "InformationReply", CaseID: "TH:SSO:CASE-9", Sender: "TH:SSO", MessageID: "urn:uuid:m-2", ReceivedAt: "2026-03-21T02:00:00Z", Body: body,
			RequestID: "ri-001", DocumentsOmitted: true},
	} {
		m, err := b.CaseMessageMessage("th-sso", time.Now(), cm)
		must(t, err)
		values = append(values, string(m.Value))
	}
	values = append(values, strings.Replace(values[0], "Jatuh", "Jatuh tidak", 1), strings.Replace(values[1], "TH:SSO:CASE-9", "TH:SSO:CASE-8", 1))
	out := runNode(t, dir, []string{"EVENTS=" + jsonFile(t, "events.json", values), "GATEWAY_JWKS=" + jsonFile(t, "gateway.json", env.Receipts.JWKS())}, "casemessage-verify.mjs")
	var found []string
	must(t, json.Unmarshal(out, &found))
	want := []string{"ok", "ok", "Error: body differs", "Error: caseId differs"}
	if !slices.Equal(found, want) {
		t.Fatalf("npm jose found %q, want %q", found, want)
	}
}

// TestNodeVerifiesOwnEvents: a back office written in Node from the README
// (event-verify.mjs, npm jose) verifies the receipts of delivery-status and
// rejected events as the gateway builds them, and finds a status, a case,
// an error, a problem and a partner that are not the ones signed, and one
// kind's receipt on the other.
func TestNodeVerifiesOwnEvents(t *testing.T) {
	dir := nodeModules(t)
	env := gatewaytest.Start(t, gatewaytest.Options{})
	b := &events.Builder{Topics: events.DefaultTopics, Source: "test", Receipts: env.Receipts}
	var statuses, rejections []string
	for _, st := range []events.DeliveryStatus{
		{DeliveryID: 1, Key: "ni-001", Partner: "th-sso", MessageType: "NotifyInjury", CaseID: "TH:SSO:CASE-9", State: "delivered", Attempts: 1, At: "2026-03-20T02:00:00Z"},
		{DeliveryID: 2, Key: "dec-001", Partner: "th-sso", MessageType: "NotifyDecision", CaseID: "MY:PERKESO:XB-2026-000731", State: "retrying", Attempts: 3,
			Error: "soap fault client.case.unknown: café – \u2028 <5 m>", At: "2026-03-20T02:00:05Z"},
	} {
		m, err := b.DeliveryStatusMessage("perkeso.delivery-status.v1", st, time.Now())
		must(t, err)
		statuses = append(statuses, string(m.Value))
	}
	m, err := b.RejectedMessage(events.Rejected{ProblemType: "https://perkeso.gov.my/problems/schema-invalid", Status: 422, CorrelationID: "c-1",
		Partner: "sg-acme", Format: "sg-employer-notice/v1", ReceivedAt: "2026-03-20T02:00:00Z",
		Problems: []adapters.Problem{{Pointer: "/injury/occurredAt", Code: "format"}, {Pointer: "/employee/é\u2028<&>", Code: "required"}}}, time.Now())
	must(t, err)
	rejections = append(rejections, string(m.Value))
	statuses = append(statuses, strings.Replace(statuses[1], `"retrying"`, `"delivered"`, 1), strings.Replace(statuses[0], "TH:SSO:CASE-9", "TH:SSO:CASE-8", 1),
		strings.Replace(statuses[0], `"state"`, `"error":"x","state"`, 1), statuses[0][:strings.Index(statuses[0], `"receipt"`)]+rejections[0][strings.Index(rejections[0], `"receipt"`):])
	rejections = append(rejections, strings.Replace(rejections[0], `"required"`, `"format"`, 1), strings.Replace(rejections[0], `"sg-acme"`, `"sg-other"`, 1))
	for _, tc := range []struct {
		typ    string
		values []string
		want   []string
	}{
		{"perkeso-delivery-status+jws", statuses, []string{"ok", "ok", "Error: state differs", "Error: caseId differs", "Error: error differs", "Error: typ perkeso-rejection+jws"}},
		{"perkeso-rejection+jws", rejections, []string{"ok", "Error: problems differs", "Error: partner differs"}},
	} {
		out := runNode(t, dir, []string{"EVENTS=" + jsonFile(t, "events.json", tc.values), "GATEWAY_JWKS=" + jsonFile(t, "gateway.json", env.Receipts.JWKS()),
			"TYP=" + tc.typ}, "event-verify.mjs")
		var found []string
		must(t, json.Unmarshal(out, &found))
		if !slices.Equal(found, tc.want) {
			t.Fatalf("%s: npm jose found %q, want %q", tc.typ, found, tc.want)
		}
	}
}

// jsonFile writes v as JSON to a new file named name, for a Node script.
func jsonFile(t *testing.T, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	f := filepath.Join(t.TempDir(), name)
	must(t, os.WriteFile(f, b, 0o600))
	return f
}

// TestNodeSignsOutboundRequests: a back office written in Node from the
// README (outbound-sign.mjs, npm jose) signs outbound requests, and the
// gateway's check takes each signature for its own request's bytes (UTF-8
// text and escapes included) and for no other.
func TestNodeSignsOutboundRequests(t *testing.T) {
	dir := nodeModules(t)
	key, err := receipt.NewES256Key("bo-2026-1")
	must(t, err)
	pub, err := jwk.PublicKeyOf(key)
	must(t, err)
	keys := jwk.NewSet()
	must(t, keys.AddKey(pub))
	requests := []string{
		`{"id":"dec-001","partner":"th-sso","messageType":"NotifyDecision","caseId":"MY:PERKESO:XB-2026-000731","payload":{"outcome":"ACCEPTED","legalBasis":"Akta 4 – sek. 26 \u2028 café"}}`,
		"{\n  \"id\": \"ri-001\",\n  \"partner\": \"th-sso\",\n  \"messageType\": \"RequestInformation\"\n}\n",
	}
	out := runNode(t, dir, []string{"REQUESTS=" + jsonFile(t, "requests.json", requests), "SIGNING_JWK=" + jsonFile(t, "bo.jwk.json", key)}, "outbound-sign.mjs")
	var sigs []string
	must(t, json.Unmarshal(out, &sigs))
	if len(sigs) != len(requests) {
		t.Fatalf("%d signatures for %d requests", len(sigs), len(requests))
	}
	record := func(value, sig string) kafka.Message {
		return kafka.Message{Value: []byte(value), Headers: []kafka.Header{{Key: outbound.RequestSignatureHeader, Value: []byte(sig)}}}
	}
	for i, req := range requests {
		if err := outbound.VerifyRequest(record(req, sigs[i]), keys); err != nil {
			t.Errorf("request %d, signed by npm jose: %v", i, err)
		}
		if err := outbound.VerifyRequest(record(req, sigs[1-i]), keys); err == nil {
			t.Errorf("request %d taken with the other request's signature", i)
		}
	}
}
