package devmode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrInUse is Lock's answer while another process holds the directory.
var ErrInUse = errors.New("in use by another gateway dev")

// Lock takes dir (created if need be) for this process until unlock, or
// the process's end. A second "gateway dev" on the same directory would
// start a second embedded broker on the first one's files, and, when it
// stopped, write its own stale view of them back: Lock refuses it before
// anything is opened. The partner tools (submit, loadtest, log verify...)
// share a running gateway's directory and take no lock. On systems without
// flock(2) it takes none.
func Lock(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if pid := strings.TrimSpace(string(holder)); pid != "" {
			return nil, fmt.Errorf("%s: %w (pid %s)", dir, ErrInUse, pid)
		}
		return nil, fmt.Errorf("%s: %w", dir, ErrInUse)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}
