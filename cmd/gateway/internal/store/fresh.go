package store

import (
	"cmp"
	"sync"
)

// freshBytes bounds what fresh holds: about 1,600 accepted notices (5 KB
// each), some 0.4 s of them at full speed, far more than the relay lags
// while Kafka answers.
const freshBytes = 8 << 20

// fresh keeps the parts the relay renders events from (body, signature,
// canonical record, receipt) of the entries this process committed, until
// their messages are published. A claim takes them from here instead of
// reading back from the log what the writer wrote a moment before: that
// read (about 5 KB per notice, from the log's overflow pages) was 3.5 % of
// the gateway's CPU under load.
//
// It is a cache and nothing more: an entry it does not hold (it was full,
// the process restarted, another instance wrote it) is read from the log.
// An entry goes in only once its transaction committed, so it holds
// nothing the log does not.
type fresh struct {
	mu    sync.Mutex
	parts map[int64]*Entry // by seq: Seq, Body, Signature, Canonical and Receipt only
	bytes int
	limit int // freshBytes, unless a test sets another
}

func partsSize(e *Entry) int {
	return len(e.Body) + len(e.Signature) + len(e.Canonical) + len(e.Receipt)
}

// add keeps the parts of committed entries while there is room.
func (f *fresh) add(committed []*Entry) {
	if len(committed) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.parts == nil {
		f.parts = map[int64]*Entry{}
	}
	for _, e := range committed {
		n := partsSize(e)
		if limit := cmp.Or(f.limit, freshBytes); f.bytes+n > limit {
			return // the oldest are published first: keep those
		}
		f.parts[e.Seq] = &Entry{Seq: e.Seq, Body: e.Body, Signature: e.Signature, Canonical: e.Canonical, Receipt: e.Receipt}
		f.bytes += n
	}
}

// get is the parts of the entry seq, if kept.
func (f *fresh) get(seq int64) *Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.parts[seq]
}

// forgetBefore forgets the entries before seq, the first entry a claim
// renders from: the relay publishes in order, so theirs were published.
// Done forgets what it published; this catches an entry kept after its
// messages were published (on PostgreSQL, Done does not pass through the
// writer, so a relay might publish a group's messages, from the log, in the
// moment between its commit and add), which would otherwise take room until
// the process ends.
func (f *fresh) forgetBefore(seq int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.parts {
		if s < seq {
			f.forget(s)
		}
	}
}

// drop forgets the entries whose messages were published.
func (f *fresh) drop(msgs []Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range msgs {
		if m.Logged != nil {
			f.forget(m.Logged.Seq)
		}
	}
}

// forget forgets the entry seq, if kept; f.mu is held.
func (f *fresh) forget(seq int64) {
	if e, ok := f.parts[seq]; ok {
		f.bytes -= partsSize(e)
		delete(f.parts, seq)
	}
}

// rendered notes, in the group commit in progress, an entry with messages
// rendered from it, for fresh once the group commits.
func (g *group) rendered(e *Entry) {
	for _, m := range e.Outbox {
		if m.Render != "" {
			g.committed = append(g.committed, e)
			return
		}
	}
}
