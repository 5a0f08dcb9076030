// Package pidlock takes a file's exclusive advisory lock for one process
// and writes that process's id into it, so that a second process refused
// can say which one holds it. The kernel drops the lock when its holder
// ends, however it ends: a file left by a crash holds nobody. On systems
// without flock(2) it takes none.
package pidlock

import (
	"os"
	"strconv"
	"strings"
)

// HeldError is Take's answer while another holder has the file.
type HeldError struct {
	PID string // the holder's, as its file says ("" if it says nothing)
}

func (e *HeldError) Error() string {
	if e.PID == "" {
		return "held by another process"
	}
	return "held by another process (pid " + e.PID + ")"
}

// Take locks path (created if need be) until release is called or the
// process ends. It fails at once with a *HeldError while another process
// (or another Take in this one) holds it.
func Take(path string) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		return nil, &HeldError{PID: strings.TrimSpace(string(holder))}
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}
