package outbound

import "time"

// SetSteadyRun changes how long a Run must last for its failure to start a
// new spell of restarts, until the returned function restores it.
func SetSteadyRun(d time.Duration) (restore func()) {
	old := steadyRun
	steadyRun = d
	return func() { steadyRun = old }
}
