package outbound

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/beevik/etree"
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
