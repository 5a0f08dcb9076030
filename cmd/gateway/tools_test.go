package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
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

func TestSignCommand(t *testing.T) {
	l, _ := devLayout(t)
	jwkPath := l.Kit("demo-employer").SigningJWK
	for _, tc := range []struct {
		name  string
		args  []string
		parts func([]string) bool
	}{
		{"ok/compact", nil, func(p []string) bool { return len(p) == 3 && p[1] != "" }},
		{"ok/detached", []string{"--detached"}, func(p []string) bool { return len(p) == 3 && p[1] == "" }},
		{"ok/unencoded", []string{"--detached", "--unencoded"}, func(p []string) bool { return len(p) == 3 && p[1] == "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(gatewayBin, append([]string{"sign", "--jwk", jwkPath}, tc.args...)...)
			cmd.Stdin = strings.NewReader(`{"a":1}`)
			out, err := cmd.Output()
			if err != nil || !tc.parts(strings.Split(strings.TrimSpace(string(out)), ".")) {
				t.Fatalf("sign: %v %s", err, out)
			}
		})
	}
	t.Run("ok/file", func(t *testing.T) {
		doc := filepath.Join(t.TempDir(), "notice.json")
		os.WriteFile(doc, []byte(`{"a":1}`), 0o600)
		cmd := exec.Command(gatewayBin, "sign", "--jwk", jwkPath, doc)
		cmd.Stdin = strings.NewReader(`{"from":"stdin"}`)
		out, err := cmd.Output()
		p := strings.Split(strings.TrimSpace(string(out)), ".")
		if err != nil || len(p) != 3 {
			t.Fatalf("sign FILE: %v %s", err, out)
		}
		if payload, _ := base64.RawURLEncoding.DecodeString(p[1]); string(payload) != `{"a":1}` {
			t.Fatalf("sign FILE signed %q, not the file", payload)
		}
	})
	// A document of maxDocument bytes is signed; one byte more is refused.
	largest := filepath.Join(t.TempDir(), "largest.json")
	tooLarge := filepath.Join(t.TempDir(), "too-large.json")
	for path, n := range map[string]int{largest: maxDocument, tooLarge: maxDocument + 1} {
		doc := append(append([]byte(`{"a":"`), bytes.Repeat([]byte("x"), n-8)...), `"}`...)
		if err := os.WriteFile(path, doc, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("ok/largest", func(t *testing.T) {
		if out, err := exec.Command(gatewayBin, "sign", "--jwk", jwkPath, largest).Output(); err != nil || strings.Count(string(out), ".") != 2 {
			t.Fatalf("sign %d bytes: %v", maxDocument, err)
		}
	})
	for _, tc := range []struct {
		name, stdin, want string
		args              []string
	}{
		{"fail/no-jwk", `{"a":1}`, "give --jwk", nil},
		{"fail/too-large", `{"a":1}`, fmt.Sprintf("too-large.json: document over %d bytes", maxDocument), []string{"--jwk", jwkPath, tooLarge}},
		{"fail/empty-stdin", "", "stdin: the document is empty", []string{"--jwk", jwkPath}},
		{"fail/empty-file", `{"a":1}`, "the document is empty", []string{"--jwk", jwkPath, os.DevNull}},
		{"fail/two-files", `{"a":1}`, `unexpected argument "` + os.DevNull + `"`, []string{"--jwk", jwkPath, os.DevNull, os.DevNull}},
		{"fail/no-such-file", `{"a":1}`, "no such file", []string{"--jwk", jwkPath, filepath.Join(t.TempDir(), "absent.json")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(gatewayBin, append([]string{"sign"}, tc.args...)...)
			cmd.Stdin = strings.NewReader(tc.stdin)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err == nil || len(out) != 0 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("sign %v: %v, stdout %q, stderr %q; want an error naming %q", tc.args, err, out, stderr.String(), tc.want)
			}
		})
	}
}

// TestSubmitUnreachable: a partner tool that cannot reach the gateway says
// so once, in its own words. (resty's own logger wrote the failure to
// stderr twice more, as "WARN RESTY …" and "ERROR RESTY …" lines.)
func TestSubmitUnreachable(t *testing.T) {
	l, _ := devLayout(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, stderr, err := gateway(t, "submit", "--kit", filepath.Join(l.Dir, "partners", "demo-employer"), "--url", "https://"+addr, "--ca", l.CACert, example("example-a.in.json"))
	if err == nil || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "gateway submit: ") || !strings.Contains(stderr, "connection refused") {
		t.Fatalf("err %v, stderr %q; want one line, gateway submit's, saying the connection was refused", err, stderr)
	}
}
