package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// TestDeliveredNotificationOpensCase: a delivered NotifyInjury registers
// the case its agency assigned as shared with that agency; a second
// notification the agency put in the same case leaves the first
// registration; a delivery that failed registers nothing.
func TestDeliveredNotificationOpensCase(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		deliver(t, s, []string{"n1", "n2", "n3"}, func(d *store.Delivery) (store.Attempt, string) {
			switch d.Key {
			case "n3":
				return store.Attempt{State: store.DeliveryDead, Error: "HTTP 400"}, "TH:SSO:C-2"
			default: // two notifications the agency put in one case
				return store.Attempt{State: store.DeliveryDelivered}, "TH:SSO:C-1"
			}
		})
		if inst, err := s.CaseInstitution(ctx, "TH:SSO:C-1"); err != nil || inst != "TH:SSO" {
			t.Fatalf("case TH:SSO:C-1: %q, %v", inst, err)
		}
		if _, err := s.CaseInstitution(ctx, "TH:SSO:C-2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a failed delivery registered its case: %v", err)
		}
	})
}

// TestHoldAnswers: answers are held per case and code, a later answer for
// a code replacing the earlier; the same key again changes nothing; a case
// not shared with the institution is refused before any write, so the
// refusal does not count against the store's health.
func TestHoldAnswers(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		// The case: one an agency assigned to a delivered NotifyInjury.
		deliver(t, s, []string{"n1"}, func(d *store.Delivery) (store.Attempt, string) {
			return store.Attempt{State: store.DeliveryDelivered}, "TH:SSO:C-1"
		})
		hold := func(key, institution, caseID string, items map[string][]byte) (bool, error) {
			d := &store.Delivery{Key: key, PartnerID: "th-sso", MessageType: "InformationReply", CaseID: caseID, Payload: []byte(`{}`)}
			return s.HoldAnswers(ctx, d, institution, items, deliveryAt, deliveryEntry)
		}
		// a0: an answer refused before the others were written (its case
		// not yet shared, say), taken back by a retry below.
		a0 := &store.Delivery{Key: "a0", PartnerID: "th-sso", MessageType: "InformationReply", CaseID: "TH:SSO:C-1", Payload: []byte(`{}`)}
		if _, err := s.EnqueueRefused(ctx, a0, "not shared", deliveryAt, deliveryEntry); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			key   string
			items map[string][]byte
			held  bool
		}{
			{"a1", map[string][]byte{"WAGES_6M": []byte("<w1/>"), "POLICE_REPORT": []byte("<p1/>")}, true},
			{"a2", map[string][]byte{"WAGES_6M": []byte("<w2/>")}, true},
			{"a1", map[string][]byte{"WAGES_6M": []byte("<w3/>")}, false}, // a1 again: nothing changes
		} {
			if held, err := hold(tc.key, "TH:SSO", "TH:SSO:C-1", tc.items); err != nil || held != tc.held {
				t.Fatalf("%s: held %v, %v", tc.key, held, err)
			}
		}
		got, err := s.CaseAnswers(ctx, "TH:SSO:C-1")
		if err != nil || len(got) != 2 || string(got["WAGES_6M"]) != "<w2/>" || string(got["POLICE_REPORT"]) != "<p1/>" {
			t.Fatalf("answers %q, %v", got, err)
		}
		for _, tc := range []struct{ institution, caseID string }{{"BN:SPK", "TH:SSO:C-1"}, {"TH:SSO", "TH:SSO:C-404"}} {
			if _, err := hold("a9", tc.institution, tc.caseID, map[string][]byte{"WAGES_6M": []byte("<x/>")}); !errors.Is(err, store.ErrCaseNotShared) {
				t.Fatalf("%s on %s: %v", tc.institution, tc.caseID, err)
			}
		}
		if err := s.WriteFailure(time.Minute); err != nil {
			t.Fatalf("a refused case counted against the store: %v", err)
		}
		if d, err := s.DeliveryByKey(ctx, "a2"); err != nil || d.State != store.DeliveryDelivered {
			t.Fatalf("held answers' delivery: %+v %v", d, err)
		}
		// Taken back by a retry and claimed: held under its lease. a0 was
		// queued before a1 and a2, and its items do not replace theirs,
		// which the back office wrote later; a3, queued after them, does.
		if err := s.RetryDelivery(ctx, a0.ID, deliveryAt.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		enqueue(t, s, "a3")
		due, err := s.ClaimDue(ctx, deliveryAt.Add(2*time.Hour), time.Minute, 2)
		if err != nil || len(due) != 2 || due[0].Key != "a3" || due[1].Key != "a0" {
			t.Fatalf("claim: %v %v", due, err)
		}
		for _, d := range []*store.Delivery{due[1], due[0]} { // a0, then a3
			d.CaseID = "TH:SSO:C-1"
			if err := s.HoldClaimed(ctx, d, "TH:SSO", map[string][]byte{"WAGES_6M": []byte("<" + d.Key + "/>")}, deliveryAt, deliveryEntry); err != nil {
				t.Fatal(err)
			}
			if got, err := s.DeliveryByKey(ctx, d.Key); err != nil || got.State != store.DeliveryDelivered {
				t.Fatalf("claimed answers' delivery: %+v %v", got, err)
			}
			want := map[string]string{"a0": "<w2/>", "a3": "<a3/>"}[d.Key]
			if got, _ := s.CaseAnswers(ctx, "TH:SSO:C-1"); string(got["WAGES_6M"]) != want {
				t.Fatalf("answers after %s's hold: %q, want %s", d.Key, got, want)
			}
			var verification string
			if err := s.DB().QueryRow(`SELECT verification FROM message_log WHERE source_key = '` + d.Key + `' ORDER BY seq DESC LIMIT 1`).Scan(&verification); err != nil ||
				strings.Contains(verification, "not held") != (d.Key == "a0") {
				t.Fatalf("%s's log entry: %q %v", d.Key, verification, err)
			}
		}
	})
}
