package interop

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// TestCloudEventsSDK: the gateway's events, as they go to Kafka (binary
// mode: attributes in ce_* headers, the data as the record's value), read
// and validate as CloudEvents 1.0 with the CloudEvents SDK's Kafka binding
// (npm cloudevents), and the SDK reads the attributes the gateway wrote:
// one event of each type the back office consumes.
func TestCloudEventsSDK(t *testing.T) {
	dir := nodeModules(t)
	b := &events.Builder{Topics: events.DefaultTopics, Source: "urn:my:perkeso:jambatan:jambatan@gw-1"}
	at := time.Date(2026, 3, 3, 8, 20, 0, 123456789, time.UTC)
	var msgs []store.Message
	add := func(m store.Message, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	add(b.VerifiedMessage("b0867b30-be3c-5595-a939-c4d47c281950", "demo-employer", at, events.Verified{Record: json.RawMessage(`{"recordId":"b0867b30-be3c-5595-a939-c4d47c281950"}`), Receipt: "h.p.s"}))
	add(b.RejectedMessage(events.Rejected{ProblemType: "https://perkeso.gov.my/problems/invalid", Status: 422, Partner: "demo-employer", CorrelationID: "c-1"}, at))
	add(b.CaseMessageMessage("demo-agency", at, events.CaseMessage{Operation: "NotifyDecision", CaseID: "MY:PERKESO:XB-2026-000731", Sender: "TH:SSO", MessageID: "urn:uuid:1", ReceivedAt: at.Format(time.RFC3339)}))
	add(b.DeliveryStatusMessage("perkeso.delivery-status.v1", events.DeliveryStatus{DeliveryID: 1, Key: "dec-001", Partner: "demo-agency", MessageType: "NotifyDecision", State: "delivered", Attempts: 1, At: at.Format(time.RFC3339)}, at))

	type record struct {
		Key     string            `json:"key"`
		Value   string            `json:"value"`
		Headers map[string]string `json:"headers"`
	}
	records := make([]record, len(msgs))
	for i, m := range msgs {
		records[i] = record{Key: string(m.Key), Value: string(m.Value), Headers: map[string]string{}}
		for _, h := range m.Headers {
			records[i].Headers[h.Key] = h.Value
		}
	}
	file := filepath.Join(t.TempDir(), "records.json")
	rb, _ := json.Marshal(records)
	if err := os.WriteFile(file, rb, 0o644); err != nil {
		t.Fatal(err)
	}
	out := runNode(t, dir, []string{"RECORDS=" + file}, "cloudevents-read.mjs")
	var got []struct {
		OK                                                            bool
		Error                                                         string
		ID, Type, Source, Subject, Time, Specversion, Datacontenttype string
		DataIsObject                                                  bool
	}
	if err := json.Unmarshal(out, &got); err != nil || len(got) != len(records) {
		t.Fatalf("the SDK's reading: %v\n%s", err, out)
	}
	for i, g := range got {
		h := records[i].Headers
		if !g.OK {
			t.Errorf("%s: the SDK refuses the event: %s", h["ce_type"], g.Error)
			continue
		}
		if g.ID != h["ce_id"] || g.Type != h["ce_type"] || g.Source != h["ce_source"] || g.Subject != h["ce_subject"] ||
			g.Specversion != "1.0" || g.Datacontenttype != "application/json" || !g.DataIsObject || g.Time[:19] != "2026-03-03T08:20:00" {
			t.Errorf("%s: the SDK read %+v", h["ce_type"], g)
		}
	}
}
