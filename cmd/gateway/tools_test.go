package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// TestAcknowledges: "gateway submit" takes a verified receipt only for the
// document it sent: the receipt's payloadSha256 must be that document's,
// and its recordId the answer's (when the answer names one).
func TestAcknowledges(t *testing.T) {
	doc := []byte(`{"noticeId":"N-1"}`)
	sent := receipt.Digest(doc)
	for _, tc := range []struct {
		name string
		rc   receipt.Receipt
		a    partnerkit.Accepted
		want string
	}{
		{"ok/notice", receipt.Receipt{PayloadSHA256: sent, RecordID: "r-1"}, partnerkit.Accepted{RecordID: "r-1"}, ""},
		{"ok/answer-without-record-id", receipt.Receipt{PayloadSHA256: sent, RecordID: "r-1"}, partnerkit.Accepted{}, ""},
		{"fail/another-document", receipt.Receipt{PayloadSHA256: receipt.Digest([]byte(`{}`)), RecordID: "r-1"}, partnerkit.Accepted{RecordID: "r-1"}, "its payloadSha256 is"},
		{"fail/another-record", receipt.Receipt{PayloadSHA256: sent, RecordID: "r-2"}, partnerkit.Accepted{RecordID: "r-1"}, `its recordId is "r-2", the answer's "r-1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := acknowledges(&tc.rc, &tc.a, doc)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("%v, want %q", err, tc.want)
			}
		})
	}
}

// TestLogVerifyEmpty: a store with no entries verifies, and names no head
// (there is no entry to anchor a later verify to).
func TestLogVerifyEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if stdout, stderr, err := gateway(t, "log", "verify", "--store", path); err != nil || stdout != "OK: 0 entries, hash chain intact\n" {
		t.Fatalf("%v: %q %s", err, stdout, stderr)
	}
}
