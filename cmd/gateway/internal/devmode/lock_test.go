//go:build unix

package devmode

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestLock: one holder at a time, the refusal names the holder's pid, and
// the directory is free again once it is unlocked.
func TestLock(t *testing.T) {
	dir := t.TempDir() + "/dev"
	unlock, err := Lock(dir)
	if err != nil {
		t.Fatalf("ok/first: %v", err)
	}
	_, err = Lock(dir)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("fail/second: %v, want ErrInUse naming pid %d", err, os.Getpid())
	}
	unlock()
	again, err := Lock(dir)
	if err != nil {
		t.Fatalf("ok/after-unlock: %v", err)
	}
	again()
}
