package store

import "context"

// LockWriter is the advisory lock key of the PostgreSQL writer, for tests
// that hold it from another session.
const LockWriter = lockWriter

// QClaimDue is the deliverer's polling query.
const QClaimDue = qClaimDue

// QPendingPartners and QPendingPartnerAfter find the partners with pending
// deliveries.
const (
	QPendingPartners     = qPendingPartners
	QPendingPartnerAfter = qPendingPartnerAfter
)

// QRecordsIn is a SQLite group's record lookup.
const QRecordsIn = qRecordsIn

// SetFreshBytes bounds the parts the store keeps for the relay's claims.
func (s *DB) SetFreshBytes(n int) {
	s.fresh.mu.Lock()
	defer s.fresh.mu.Unlock()
	s.fresh.limit = n
}

// Fresh is the number of entries whose parts the store keeps, and their size.
func (s *DB) Fresh() (entries, bytes int) {
	s.fresh.mu.Lock()
	defer s.fresh.mu.Unlock()
	return len(s.fresh.parts), s.fresh.bytes
}

// KeepFresh keeps e's parts as if the writer had just committed it.
func (s *DB) KeepFresh(e *Entry) { s.fresh.add([]*Entry{e}) }

// SetNextAt writes a delivery's next_at as given, for rows as earlier builds
// wrote them.
func (s *DB) SetNextAt(ctx context.Context, id int64, raw string) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE deliveries SET next_at = ? WHERE id = ?`), raw, id)
	return err
}

// QueuedWrites is the number of writes waiting for the writer.
func (s *DB) QueuedWrites() int { return len(s.reqs) }

// LockInstances is the first key of the instances' advisory locks.
const LockInstances = lockInstances

// LeaseMark is the mark of this store's claims: an instance's token on
// PostgreSQL.
func (s *DB) LeaseMark() int64 { return s.leaseMark }

// InstanceLocksRetaken is the count of instance locks taken again.
var InstanceLocksRetaken = instanceLocksRetaken
