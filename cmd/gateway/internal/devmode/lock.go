package devmode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/perkeso/jambatan/cmd/gateway/internal/pidlock"
)

// ErrInUse is Lock's answer while another process holds the directory.
var ErrInUse = errors.New("in use by another gateway dev")

// Lock takes dir (created if need be) for this process until unlock, or
// the process's end. A second "gateway dev" on the same directory would
// start a second embedded broker on the first one's files, and, when it
// stopped, write its own stale view of them back: Lock refuses it before
// anything is opened. The partner tools (submit, loadtest, log verify...)
// share a running gateway's directory and take no lock.
func Lock(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	unlock, err = pidlock.Take(filepath.Join(dir, ".lock"))
	var held *pidlock.HeldError
	if !errors.As(err, &held) {
		return unlock, err
	}
	if held.PID == "" {
		return nil, fmt.Errorf("%s: %w", dir, ErrInUse)
	}
	return nil, fmt.Errorf("%s: %w (pid %s)", dir, ErrInUse, held.PID)
}
