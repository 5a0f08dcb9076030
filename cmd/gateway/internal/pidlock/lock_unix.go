//go:build unix

package pidlock

import (
	"os"
	"syscall"
)

// lockFile takes f's exclusive advisory lock, failing at once when another
// process holds it. The kernel drops it when the process ends, however.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
