package outbound_test

import (
	"strings"
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/outbound"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
)

// TestValidate: a request from the back office is checked, field by field,
// before it is queued (and again before each attempt), and each refusal
// says what is wrong with it.
func TestValidate(t *testing.T) {
	reg := partner.NewRegistry([]*partner.Partner{
		{ID: "th-sso", Kind: partner.KindAgency, Institution: "TH:SSO", Endpoint: &partner.Endpoint{URL: "https://sso.example", Protocol: "soap"}},
		{ID: "bn-spk", Kind: partner.KindAgency, Institution: "BN:SPK"}, // answers held for it, nothing sent
		{ID: "sg-ins", Kind: partner.KindInsurer, Endpoint: &partner.Endpoint{URL: "https://ins.example", Protocol: "json"}},
		{ID: "sg-hr", Kind: partner.KindEmployer},
	})
	const items = `{"items":[{"code":"POLICE_REPORT","outcome":"NOT_HELD"}]}`
	for _, tc := range []struct {
		name string
		req  outbound.Request
		want string // "" for a valid request
	}{
		{"ok/agency-decision", outbound.Request{ID: "d-1", Partner: "th-sso", MessageType: "NotifyDecision", CaseID: "TH:SSO:C-1", Payload: []byte(`{}`)}, ""},
		{"ok/agency-notification", outbound.Request{ID: "n-1", Partner: "th-sso", MessageType: "NotifyInjury", Payload: []byte(`{"record":{}}`)}, ""},
		{"ok/json-partner", outbound.Request{ID: "j-1", Partner: "sg-ins", MessageType: "JSON", Payload: []byte(`[1]`)}, ""},
		{"ok/json-partner-with-a-case", outbound.Request{ID: "j-2", Partner: "sg-ins", MessageType: "JSON", CaseID: "C-1", Payload: []byte(`{}`)}, ""},
		{"ok/reply-held-without-an-endpoint", outbound.Request{ID: "r-1", Partner: "bn-spk", MessageType: outbound.InformationReply, CaseID: "BN:SPK:C-1", Payload: []byte(items)}, ""},
		{"ok/id-of-256-bytes", outbound.Request{ID: strings.Repeat("i", 256), Partner: "sg-ins", MessageType: "JSON", Payload: []byte(`{}`)}, ""},
		{"fail/no-id", outbound.Request{Partner: "sg-ins", MessageType: "JSON", Payload: []byte(`{}`)}, "id is required"},
		{"fail/id-too-long", outbound.Request{ID: strings.Repeat("i", 257), Partner: "sg-ins", MessageType: "JSON", Payload: []byte(`{}`)}, "id is over 256 bytes"},
		{"fail/id-with-a-nul", outbound.Request{ID: "j\x001", Partner: "sg-ins", MessageType: "JSON", Payload: []byte(`{}`)}, "id must be UTF-8 text without control characters"},
		{"fail/id-not-utf8", outbound.Request{ID: "j\xff", Partner: "sg-ins", MessageType: "JSON", Payload: []byte(`{}`)}, "id must be UTF-8"},
		{"fail/case-too-long", outbound.Request{ID: "d-2", Partner: "th-sso", MessageType: "NotifyDecision", CaseID: strings.Repeat("c", 257), Payload: []byte(`{}`)}, "caseId is over 256 bytes"},
		{"fail/case-with-a-newline", outbound.Request{ID: "d-3", Partner: "th-sso", MessageType: "NotifyDecision", CaseID: "TH:SSO:C-1\n", Payload: []byte(`{}`)}, "caseId must be UTF-8 text without control characters"},
		{"fail/unknown-partner", outbound.Request{ID: "d-4", Partner: "nobody", MessageType: "JSON", Payload: []byte(`{}`)}, `unknown partner "nobody"`},
		{"fail/no-endpoint", outbound.Request{ID: "d-5", Partner: "sg-hr", MessageType: "JSON", Payload: []byte(`{}`)}, `partner "sg-hr" has no endpoint registered`},
		{"fail/unknown-type", outbound.Request{ID: "d-6", Partner: "th-sso", MessageType: "NotifyRelapse", CaseID: "TH:SSO:C-1", Payload: []byte(`{}`)}, `unknown messageType "NotifyRelapse"`},
		{"fail/no-payload", outbound.Request{ID: "d-7", Partner: "sg-ins", MessageType: "JSON"}, "payload must be JSON"},
		{"fail/payload-not-json", outbound.Request{ID: "d-8", Partner: "sg-ins", MessageType: "JSON", Payload: []byte(`{`)}, "payload must be JSON"},
		{"fail/agency-without-a-case", outbound.Request{ID: "d-9", Partner: "th-sso", MessageType: "RequestInformation", Payload: []byte(`{}`)}, "caseId is required for an agency"},
		{"fail/notification-with-a-case", outbound.Request{ID: "n-2", Partner: "th-sso", MessageType: "NotifyInjury", CaseID: "TH:SSO:C-1", Payload: []byte(`{}`)}, "a NotifyInjury has no caseId: the agency assigns it"},
		{"fail/json-to-an-agency", outbound.Request{ID: "d-10", Partner: "th-sso", MessageType: "JSON", CaseID: "TH:SSO:C-1", Payload: []byte(`{}`)}, "messageType JSON does not fit the partner's protocol soap"},
		{"fail/agency-type-to-a-json-partner", outbound.Request{ID: "d-11", Partner: "sg-ins", MessageType: "NotifyDecision", CaseID: "C-1", Payload: []byte(`{}`)}, "messageType NotifyDecision does not fit the partner's protocol json"},
		{"fail/reply-for-a-non-agency", outbound.Request{ID: "r-2", Partner: "sg-ins", MessageType: outbound.InformationReply, CaseID: "C-1", Payload: []byte(items)}, `an InformationReply is held for an agency, and partner "sg-ins" is not one`},
		{"fail/reply-without-a-case", outbound.Request{ID: "r-3", Partner: "th-sso", MessageType: outbound.InformationReply, Payload: []byte(items)}, "caseId is required for an agency"},
		{"fail/reply-without-items", outbound.Request{ID: "r-4", Partner: "th-sso", MessageType: outbound.InformationReply, CaseID: "TH:SSO:C-1", Payload: []byte(`{"items":[]}`)}, "InformationReply payload needs items"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.req.Validate(reg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

// TestParseRequest: a request is read strictly, so the gateway delivers
// what the back office wrote and signed, not what encoding/json makes of
// it; a refused one still names its id and partner for its dead letter.
func TestParseRequest(t *testing.T) {
	const ok = `{"id":"dec-1","partner":"th-sso","messageType":"NotifyDecision","caseId":"MY:PERKESO:XB-1","payload":{"subject":"WORK_RELATEDNESS"}}`
	for _, tc := range []struct {
		name, in string
		want     string // what the refusal says; "" to accept
		id       string // the id read, refused or not
	}{
		{"ok/as-documented", ok, "", "dec-1"},
		{"ok/spaced", " {\n \"id\": \"dec-2\", \"partner\": \"p1\", \"messageType\": \"JSON\", \"payload\": [] }\n", "", "dec-2"},
		{"fail/member-twice", `{"id":"dec-3","partner":"th-sso","partner":"bn-spk","messageType":"JSON","payload":{}}`, `duplicate member name "partner"`, "dec-3"},
		{"fail/member-in-another-case", `{"id":"dec-4","partner":"th-sso","Partner":"bn-spk","messageType":"JSON","payload":{}}`, `member "Partner" is not one of a request's (id, partner, messageType, caseId, payload)`, "dec-4"},
		{"fail/unknown-member", `{"id":"dec-5","partner":"th-sso","messageType":"JSON","payload":{},"priority":"urgent"}`, `member "priority" is not one of a request's`, "dec-5"},
		{"fail/payload-member-twice", `{"id":"dec-6","partner":"th-sso","messageType":"NotifyDecision","caseId":"C-1","payload":{"outcome":"ACCEPTED","outcome":"REJECTED"}}`, `duplicate member name "outcome"`, "dec-6"},
		{"fail/second-object", ok + `{"id":"dec-7"}`, "data after the document", ""},
		{"fail/an-array", `[` + ok + `]`, "the request is not a JSON object", ""},
		{"fail/id-a-number", `{"id":7,"partner":"th-sso","messageType":"JSON","payload":{}}`, "the request's members are not of their types", ""},
		{"fail/not-json", `nope`, "not one strict JSON object", ""},
		{"fail/too-many-values", `{"id":"dec-8","partner":"p1","messageType":"JSON","payload":[` + strings.Repeat("0,", 100_000) + `0]}`, "the request holds more than 100000 JSON values", "dec-8"},
		{"ok/many-values", `{"id":"dec-9","partner":"p1","messageType":"JSON","payload":[` + strings.Repeat("0,", 99_990) + `0]}`, "", "dec-9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := outbound.ParseRequest([]byte(tc.in))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err %v, want %q", err, tc.want)
			case r.ID != tc.id:
				t.Fatalf("id %q, want %q", r.ID, tc.id)
			}
		})
	}
}
