package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// TestOutboundRetryPartner: "outbound retry --partner P" queues P's dead
// letters again and says how many; those refused for good stay dead, and
// only then does it say how many it left.
func TestOutboundRetryPartner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	entry := func(d *store.Delivery) *store.Entry {
		return &store.Entry{CorrelationID: "c", PartnerID: d.PartnerID, ReceivedAt: time.Now(), Route: "OUTBOUND", SourceKey: d.Key}
	}
	for _, d := range []*store.Delivery{
		{Key: "dead-1", PartnerID: "th-sso", MessageType: "NotifyDecision", Payload: []byte(`{}`)},
		{Key: "for-good-1", PartnerID: "th-sso", MessageType: "NotifyDecision", Payload: []byte(`{}`), NoRetry: true},
		{Key: "dead-2", PartnerID: "bn-spk", MessageType: "NotifyDecision", Payload: []byte(`{}`)},
	} {
		if _, err := st.EnqueueRefused(context.Background(), d, "HTTP 404", time.Now(), entry); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	for _, tc := range []struct{ name, partner, want string }{
		{"ok/one-left-for-good", "th-sso", "1 dead letters of th-sso queued again\n" +
			"1 refused for good when queued are left dead (a retry would send other than was asked; see outbound list --state dead)\n"},
		{"ok/none-left", "bn-spk", "1 dead letters of bn-spk queued again\n"},
		{"ok/nothing-dead", "my-nobody", "0 dead letters of my-nobody queued again\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, err := gateway(t, "outbound", "retry", "--store", path, "--partner", tc.partner)
			if err != nil || out != tc.want {
				t.Fatalf("%v %s\n%s\nwant %q", err, stderr, out, tc.want)
			}
		})
	}
}

// TestOutboundListWaits: `outbound list` says which delivery a pending one
// waits behind on its case, and says nothing of the others.
func TestOutboundListWaits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, k := range []string{"decision-1", "decision-2", "other-case"} {
		d := &store.Delivery{Key: k, PartnerID: "th-sso", MessageType: "NotifyDecision", CaseID: "TH:SSO:C-" + map[bool]string{true: "2", false: "1"}[k == "other-case"], Payload: []byte(`{}`)}
		if _, err := st.Enqueue(context.Background(), d, time.Now()); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	st.Close()
	out, _, err := gateway(t, "outbound", "list", "--store", path)
	if err != nil {
		t.Fatal(err)
	}
	waits := regexp.MustCompile(`(?m)^(\d+) .*\[waits for delivery (\d+) on its case\]`).FindAllStringSubmatch(out, -1)
	if len(waits) != 1 || waits[0][1] != strconv.FormatInt(ids[1], 10) || waits[0][2] != strconv.FormatInt(ids[0], 10) {
		t.Fatalf("list:\n%s\nwant only delivery %d waiting for %d", out, ids[1], ids[0])
	}
	// The largest --limit is taken (one more is refused: TestFlagsRefused).
	if most, stderr, err := gateway(t, "outbound", "list", "--store", path, "--limit", "10000"); err != nil || most != out {
		t.Fatalf("--limit 10000: %v %s\n%s\nwant the list as before", err, stderr, most)
	}
}
