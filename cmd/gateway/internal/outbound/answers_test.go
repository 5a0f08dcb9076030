package outbound

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// TestReplyItems: the back office's answers become reply items an agency
// accepts, or are refused naming the rule they break.
func TestReplyItems(t *testing.T) {
	pdf := base64.StdEncoding.EncodeToString([]byte("%PDF-1.4 medical report"))
	for _, tc := range []struct {
		name, payload string
		want          string // the refusal's text; "" when the items are held
	}{
		{"ok/wages", `{"items":[{"code":"WAGES_6M","outcome":"PROVIDED","months":[{"period":"2026-01","amount":"3200.00","currency":"MYR"},{"period":"2026-02","amount":"3350.50","currency":"MYR"}]}]}`, ""},
		{"ok/every-part", `{"items":[{"code":"SICK_LEAVE_PERIODS","outcome":"PROVIDED","text":"as certified","sickLeave":[{"from":"2026-03-02","to":"2026-03-22"}]},
			{"code":"MEDICAL_REPORT","outcome":"PROVIDED","documents":[{"mediaType":"application/pdf","content":"` + pdf + `"}]},
			{"code":"POLICE_REPORT","outcome":"NOT_HELD"},{"code":"ROUTE_SKETCH","outcome":"TO_FOLLOW","expectedBy":"2026-04-01"}]}`, ""},
		{"fail/no-items", `{"items":[]}`, "needs items"},
		{"fail/not-json", `[1]`, "needs items"},
		{"fail/twice", `{"items":[{"code":"POLICE_REPORT","outcome":"NOT_HELD"},{"code":"POLICE_REPORT","outcome":"NOT_HELD"}]}`, `item "POLICE_REPORT" is given twice`},
		{"fail/unknown-code", `{"items":[{"code":"SHOE_SIZE","outcome":"NOT_HELD"}]}`, "value not in the enumeration at /xb:RequestInformation/xb:Request/xb:Item[1]/xb:Code"},
		{"fail/unknown-outcome", `{"items":[{"code":"POLICE_REPORT","outcome":"MAYBE"}]}`, "/xb:InformationReply/xb:Reply/xb:Item[1]/xb:Outcome"},
		{"fail/months-on-other-code", `{"items":[{"code":"POLICE_REPORT","outcome":"PROVIDED","months":[{"period":"2026-01","amount":"1.00","currency":"MYR"}]}]}`, "Month only answers WAGES_6M"},
		{"fail/not-a-date", `{"items":[{"code":"SICK_LEAVE_PERIODS","outcome":"PROVIDED","sickLeave":[{"from":"2025-02-29","to":"2025-03-01"}]}]}`, "/xb:SickLeave[1]/xb:From"},
		{"fail/to-follow-without-date", `{"items":[{"code":"ROUTE_SKETCH","outcome":"TO_FOLLOW"}]}`, "ExpectedBy is given if and only if the outcome is TO_FOLLOW"},
		{"fail/document-not-base64", `{"items":[{"code":"MEDICAL_REPORT","outcome":"PROVIDED","documents":[{"mediaType":"application/pdf","content":"not base64!"}]}]}`, "/xb:Document[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, err := ReplyItems("TH:SSO", "MY:PERKESO:XB-2026-ABC", []byte(tc.payload))
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			case err != nil:
				return
			}
			// Each item stands alone: its namespace declared, its code its key.
			for code, b := range items {
				d := etree.NewDocument()
				if err := d.ReadFromBytes(b); err != nil || d.Root().Tag != "Item" || d.Root().NamespaceURI() != "urn:xb-injury:exchange:v1" ||
					d.Root().FindElement("./Code").Text() != code {
					t.Fatalf("item %s: %v %s", code, err, b)
				}
			}
			if n := strings.Count(tc.payload, `"code"`); len(items) != n {
				t.Fatalf("%d items, want %d", len(items), n)
			}
		})
	}
}

// TestReplyEvent: an agency's InformationReply goes to the back office on
// the case-messages topic; one that would outgrow the broker's message
// size goes without its Documents' contents, and one that would still
// outgrow it is an error (the relay publishes in order: an event the
// broker refuses would stop it).
func TestReplyEvent(t *testing.T) {
	pdf := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("%PDF"), 4096))
	reply := func(text, doc string) []byte {
		items, err := ReplyItems("TH:SSO", "MY:PERKESO:XB-2026-ABC", []byte(`{"items":[{"code":"MEDICAL_REPORT","outcome":"PROVIDED","text":"`+text+`"`+doc+`}]}`))
		if err != nil {
			t.Fatal(err)
		}
		return items["MEDICAL_REPORT"]
	}
	withDoc := `,"documents":[{"mediaType":"application/pdf","content":"` + pdf + `"}]`
	for _, tc := range []struct {
		name      string
		item      []byte
		omitted   bool
		wantError bool
	}{
		{"ok/whole", reply("report", withDoc), false, false},
		{"ok/documents-omitted", reply("report", withDoc), true, false},
		{"fail/too-large-without-documents", reply(strings.Repeat("x", 3000), ""), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &events.Builder{Topics: events.Topics{CaseMessages: "perkeso.case-messages.v1"}, Source: "test", MaxValue: 1 << 20}
			if tc.name != "ok/whole" {
				b.MaxValue = 2000 // smaller than the document, larger than the rest
			}
			body := `<xb:InformationReply xmlns:xb="urn:xb-injury:exchange:v1"><xb:Header><xb:MessageId>urn:uuid:r-1</xb:MessageId>` +
				`<xb:InReplyTo>urn:uuid:q-1</xb:InReplyTo><xb:CaseId>MY:PERKESO:XB-2026-ABC</xb:CaseId><xb:Sender>TH:SSO</xb:Sender>` +
				`<xb:Receiver>MY:PERKESO</xb:Receiver><xb:SentAt>2026-03-10T01:00:00Z</xb:SentAt></xb:Header><xb:Reply>` + string(tc.item) + `</xb:Reply></xb:InformationReply>`
			d := &store.Delivery{Key: "ri-1", PartnerID: "th-sso", MessageType: "RequestInformation", CaseID: "MY:PERKESO:XB-2026-ABC", Reply: []byte(body)}
			m, err := ReplyEvent(b, d, time.Now())
			if tc.wantError {
				if !errors.Is(err, events.ErrTooLarge) {
					t.Fatalf("error %v, want ErrTooLarge", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var cm events.CaseMessage
			if err := json.Unmarshal(m.Value, &cm); err != nil {
				t.Fatal(err)
			}
			if cm.Operation != "InformationReply" || cm.Sender != "TH:SSO" || cm.MessageID != "urn:uuid:r-1" || string(m.Key) != d.CaseID || cm.RequestID != "ri-1" ||
				cm.DocumentsOmitted != tc.omitted || strings.Contains(cm.Body, pdf) == tc.omitted || !strings.Contains(cm.Body, "report") {
				t.Fatalf("event %+v (%d bytes)", cm, len(m.Value))
			}
		})
	}
}
