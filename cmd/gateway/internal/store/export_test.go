package store

// LockWriter is the advisory lock key of the PostgreSQL writer, for tests
// that hold it from another session.
const LockWriter = lockWriter

// QClaimDue is the deliverer's polling query.
const QClaimDue = qClaimDue

// QRecordsIn is a SQLite group's record lookup.
const QRecordsIn = qRecordsIn
