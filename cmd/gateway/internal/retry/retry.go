// Package retry tries a write to a store again until it is taken: what the
// gateway has read from Kafka (an outbound request, a batch for the back
// office) waits for its store rather than being dropped or ending the
// reader, since its offset is committed only once the write is done. Its
// Pauses are the one pause policy of every loop that tries again (this
// package's, the relay's produce, the back-office consumer's fetch, the
// outbound consumer's owed offset commits).
package retry

import (
	"context"
	"log/slog"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/correlation"
)

// The pauses between tries: the first after a failure, doubling to the
// last, so that a store that restarts or fails over is met again within
// seconds, with no busy loop meanwhile. Variables for the tests.
var (
	firstPause = 100 * time.Millisecond
	maxPause   = 5 * time.Second
)

// Pauses are the pauses of a spell of failures: Next after each failure,
// Reset after a success. The zero value has no pause yet.
type Pauses struct{ last time.Duration }

// Next is the pause after one more failure: the first pause, then twice
// the last, up to the bound.
func (p *Pauses) Next() time.Duration {
	p.last = min(max(2*p.last, firstPause), maxPause)
	return p.last
}

// Last is the pause Next last gave, or 0 after Reset.
func (p *Pauses) Last() time.Duration { return p.last }

// Reset ends the spell: the next failure starts again at the first pause.
func (p *Pauses) Reset() { p.last = 0 }

// Lines are the messages of a spell of failures: Failed for each failure
// (at Error, with its err and the pause after it), Succeeded for the try
// that worked after failures (at Info). Both carry the spell's correlation
// id and the caller's attributes.
type Lines struct {
	Failed, Succeeded string
}

// Until calls try until it returns nil, and reports true then; it reports
// false when ctx ends first (a stopping gateway), with try's work not done.
func Until(ctx context.Context, log *slog.Logger, lines Lines, try func() error, attrs ...any) bool {
	var outage correlation.Outage // the lines of these failures and of the success at last
	var pauses Pauses
	for {
		err := try()
		if err == nil {
			if id := outage.End(); id != "" {
				log.Info(lines.Succeeded, append([]any{correlation.LogKey, id}, attrs...)...)
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		pause := pauses.Next()
		log.Error(lines.Failed, append(append([]any{correlation.LogKey, outage.ID()}, attrs...), "err", err, "pause", pause)...)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(pause):
		}
	}
}
