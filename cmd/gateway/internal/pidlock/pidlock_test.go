//go:build unix

package pidlock

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestTake: one holder at a time, also within one process; the refusal
// names the holder's pid; the file is free once released, and a file
// left by a holder that ended (its pid in it, no lock) is taken.
func TestTake(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	release, err := Take(path)
	if err != nil {
		t.Fatalf("ok/first: %v", err)
	}
	_, err = Take(path)
	var held *HeldError
	if !errors.As(err, &held) || held.PID != strconv.Itoa(os.Getpid()) || err.Error() != "held by another process (pid "+strconv.Itoa(os.Getpid())+")" {
		t.Fatalf("fail/second: %v, want held by pid %d", err, os.Getpid())
	}
	release()
	again, err := Take(path)
	if err != nil {
		t.Fatalf("ok/after-release: %v", err)
	}
	again()

	left := filepath.Join(t.TempDir(), "left.lock")
	if err := os.WriteFile(left, []byte("999999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	release, err = Take(left)
	if err != nil {
		t.Fatalf("ok/left-by-a-crash: %v", err)
	}
	defer release()
	if b, _ := os.ReadFile(left); string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Fatalf("ok/left-by-a-crash: the file says %q, want this process's pid", b)
	}
	if _, err := Take(filepath.Join(t.TempDir(), "no", "such", "dir.lock")); err == nil || errors.As(err, &held) {
		t.Fatalf("fail/no-directory: %v, want the open's error", err)
	}
}
