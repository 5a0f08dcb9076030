// Package retry tries a write to a store again until it is taken: what the
// gateway has read from Kafka (an outbound request, a batch for the back
// office) waits for its store rather than being dropped or ending the
// reader, since its offset is committed only once the write is done.
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
	for pause := firstPause; ; pause = min(2*pause, maxPause) {
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
		log.Error(lines.Failed, append(append([]any{correlation.LogKey, outage.ID()}, attrs...), "err", err, "pause", pause)...)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(pause):
		}
	}
}
