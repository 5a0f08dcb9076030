// Package store is the gateway's durable message log, idempotency table and
// outbox, on SQLite (embedded, the default) or PostgreSQL.
//
// Every request that passed mutual TLS is logged, accepted or not, with its
// raw body, signature, verification outcome and correlation id. Entries are
// hash-chained: each stores the hash of the previous entry, so an edit or a
// deletion anywhere is found by Verify. A submission counts as accepted only
// once the transaction that logs it, records its source key and queues its
// events has committed.
//
// Writes go through one writer goroutine that commits whatever requests are
// waiting in a single transaction (group commit): one fsync serves many
// requests, and the hash chain is extended in one place. On PostgreSQL the
// writer also takes a transaction-scoped advisory lock, so several gateway
// instances on one database extend one chain and never double-accept.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"github.com/perkeso/jambatan/cmd/gateway/internal/pidlock"
	"github.com/perkeso/jambatan/cmd/gateway/internal/sqldialect"
)

// Outcomes of a logged request.
const (
	OutcomeAccepted  = "ACCEPTED"
	OutcomeDuplicate = "DUPLICATE"
	OutcomeRejected  = "REJECTED"
)

// Entry is one logged request.
type Entry struct {
	Seq           int64
	CorrelationID string
	PartnerID     string
	ReceivedAt    time.Time
	Route         string // e.g. "POST /v1/injury-notices"
	ContentType   string
	Body          []byte
	Signature     string // detached JWS header value; empty when the body is the JWS
	Verification  string // "verified alg=ES256 kid=..." or the refusal reason
	Status        int
	Outcome       string
	ProblemType   string
	SourceKey     string
	RecordID      string
	PayloadSHA256 string
	Canonical     []byte
	Receipt       string
	PrevHash      string
	Hash          string
	// Outbox holds messages to publish; they are written in the same
	// transaction as the entry, so an accepted notice is never without its
	// event and an event never without its accepted notice.
	Outbox []Message
	// Exchange, for a SOAP request, records (Sender, MessageId) with the
	// response given, in the same transaction (agency-soap/v1 §8.3).
	Exchange *Exchange

	// at is ReceivedAt as logged, worked out by prepare from atOf.
	at   string
	atOf time.Time
}

// Exchange is a SOAP message received from an institution and the response
// Body child given to it.
type Exchange struct {
	Sender, MessageID, BodySHA256, Operation, CaseID string
	Response                                         []byte // response Body child, canonical XML
	NewCase                                          bool   // CaseID was assigned by this message
}

// Message is one outbox message: what the relay will produce to Kafka.
type Message struct {
	ID        int64
	Topic     string
	Key       []byte
	Headers   []Header
	Value     []byte
	CreatedAt time.Time
	// Render, when set, names how the relay builds Value from the entry
	// the message was logged with (log_seq, kept for every message): the
	// outbox then holds a reference, not a second copy of the document,
	// record and receipt the log already holds (about 5 KB per accepted
	// notice; disk writes under loadtest 47 -> 38 KB per notice).
	Render string
	// Logged is that entry's body, signature, canonical record and
	// receipt, as ClaimOutbox read them for Render.
	Logged *Entry

	headersJSON string // Headers as stored, worked out by prepare
}

// Header is a Kafka record header.
type Header struct {
	Key   string `json:"k"`
	Value string `json:"v"`
}

// Record is an accepted submission, found by record id (which stands for its source key).
type Record struct {
	RecordID      string
	SourceKey     string
	PartnerID     string
	PayloadSHA256 string
	Receipt       string
	AcceptedAt    time.Time
	Seq           int64
}

// ErrNotFound is returned for an unknown record.
var ErrNotFound = errors.New("store: not found")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("store: closed")

// ErrCommitTimeout is returned for the writes of a PostgreSQL group commit
// that did not finish within the commit timeout (a database that stopped
// answering, or another instance holding the writer's lock). Whether the
// group committed is unknown; an idempotent submission sent again finds out.
var ErrCommitTimeout = errors.New("store: the database did not answer in time")

// ErrCommitUnknown is returned for the writes of a PostgreSQL group commit
// whose COMMIT was sent but whose answer never came: the connection was
// lost (the database restarting, a failover, the network), so the group
// may well have committed. A fast restart of the database under load
// committed 24 such notices in one run, each answered "nothing was
// accepted" before this error was told apart.
var ErrCommitUnknown = errors.New("store: the connection to the database was lost during the commit")

// OutcomeUnknown reports whether err, a write's, leaves it unknown whether
// the write committed: a caller must not say that nothing was done.
func OutcomeUnknown(err error) bool {
	return errors.Is(err, ErrCommitTimeout) || errors.Is(err, ErrCommitUnknown)
}

// FailureAdvice is what a caller may tell the sender of a submission whose
// write failed with err, on any transport: that nothing was accepted, or,
// after a commit timeout or a connection lost during the commit, that it
// may have been, so that it is sent again unchanged (idempotency then
// answers it once).
func FailureAdvice(err error) string {
	switch {
	case errors.Is(err, ErrCommitTimeout): // a timeout may cut the connection too
		return "the message log did not answer in time, so this submission may or may not have been accepted: send it again unchanged (it is never accepted twice)"
	case errors.Is(err, ErrCommitUnknown):
		return "the connection to the message log was lost during the commit, so this submission may or may not have been accepted: send it again unchanged (it is never accepted twice)"
	}
	return "the message log is unavailable; nothing was accepted, try again"
}

// DefaultCommitTimeout bounds a PostgreSQL group commit, from taking a
// connection to COMMIT. A group of 256 takes tens of milliseconds; the bound
// is for a database that stops answering, which would otherwise hold every
// waiting request until TCP gives up, hours later.
const DefaultCommitTimeout = 30 * time.Second

// DB is the store.
type DB struct {
	db       *sql.DB
	postgres bool

	reqs chan *writeReq
	// head caches the chain's last (seq, hash) within the writer's current
	// transaction, so a group commit reads it once, not once per entry.
	head      *chainHead
	group     *group               // the group commit in progress (writer only)
	stmts     map[string]*sql.Stmt // by query text; read-only after Open
	closeOnce sync.Once
	closing   chan struct{}
	// writerDone is closed when the writer has returned: a write queued
	// after its last look at the queue is answered by nobody else.
	writerDone chan struct{}
	// commitTimeout bounds a PostgreSQL group commit (nanoseconds).
	commitTimeout atomic.Int64
	health        writeHealth // the writer's last commits (WriteFailure)
	fresh         fresh       // committed entries' parts, for the relay's claims
	release       func()      // OpenExclusive's lock file, let go at Close
	leasesFreed   int         // deliveries OpenExclusive found claimed by a process gone
	// leaseMark is what a claim writes in a delivery's leased column:
	// 1, or on PostgreSQL for a gateway instance (OpenExclusive) its own
	// token, whose advisory lock instanceLock holds until Close, so that
	// the instance that follows it can tell its claims from a live one's.
	leaseMark    int64
	instanceLock *sql.Conn     // keepInstanceLock's, and Close's once it has returned
	lockKept     chan struct{} // closed when keepInstanceLock has returned
}

// SetCommitTimeout changes the bound of a PostgreSQL group commit
// (DefaultCommitTimeout when the store is opened).
func (s *DB) SetCommitTimeout(d time.Duration) { s.commitTimeout.Store(int64(d)) }

type chainHead struct {
	tx    wtx
	seq   int64
	hash  string
	valid bool
}

// Advisory lock keys (PostgreSQL).
const (
	lockWriter = 0x4a616d62 // "Jamb": one writer at a time extends the chain
	lockRelay  = 0x52656c61 // "Rela": one relay at a time publishes, in order
	// lockInstances is the first key of the two-key advisory locks (a key
	// space apart from the one-key locks above) that gateway instances
	// hold, the second being an instance's token (OpenExclusive).
	lockInstances = 0x496e7374 // "Inst"
)

// The records table is indexed by record id alone. Since a record id is
// derived from its source key, a unique index on source_key (which stores
// from earlier builds keep) repeated the primary key's and cost each notice
// one more B-tree page at a random place, written to the WAL and again at
// the checkpoint. Likewise the outbox has no index of pending rows: since
// published rows are deleted, every row is pending and the table's own id
// order is that index. Stores from builds that stamped published_at keep
// their outbox_pending index, which skips the stamped rows.
var (
	schemaSQLite   = schema(columnTypes{blob: "BLOB", bigint: "INTEGER", serial: "INTEGER PRIMARY KEY AUTOINCREMENT"})
	schemaPostgres = schema(columnTypes{blob: "BYTEA", bigint: "BIGINT", serial: "BIGSERIAL PRIMARY KEY"})
)

// columnTypes are the column types the two databases spell differently.
type columnTypes struct{ blob, bigint, serial string }

func schema(t columnTypes) []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS message_log (
  seq ` + t.bigint + ` PRIMARY KEY, correlation_id TEXT NOT NULL, partner_id TEXT NOT NULL, received_at TEXT NOT NULL,
  route TEXT NOT NULL, content_type TEXT NOT NULL, body ` + t.blob + ` NOT NULL, signature TEXT NOT NULL, verification TEXT NOT NULL,
  status INTEGER NOT NULL, outcome TEXT NOT NULL, problem_type TEXT NOT NULL, source_key TEXT NOT NULL, record_id TEXT NOT NULL,
  payload_sha256 TEXT NOT NULL, canonical ` + t.blob + `, receipt TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS outbox (
  id ` + t.serial + `, topic TEXT NOT NULL, msg_key ` + t.blob + ` NOT NULL, headers TEXT NOT NULL,
  value ` + t.blob + ` NOT NULL, created_at TEXT NOT NULL, published_at TEXT, log_seq ` + t.bigint + `, render TEXT NOT NULL DEFAULT '')`,
		`CREATE TABLE IF NOT EXISTS records (
  record_id TEXT PRIMARY KEY, source_key TEXT NOT NULL, partner_id TEXT NOT NULL, payload_sha256 TEXT NOT NULL,
  receipt TEXT NOT NULL, accepted_at TEXT NOT NULL, seq ` + t.bigint + ` NOT NULL REFERENCES message_log(seq))`,
		`CREATE TABLE IF NOT EXISTS soap_exchanges (
  sender TEXT NOT NULL, message_id TEXT NOT NULL, body_sha256 TEXT NOT NULL, operation TEXT NOT NULL,
  case_id TEXT NOT NULL, response ` + t.blob + ` NOT NULL, seq ` + t.bigint + ` NOT NULL, PRIMARY KEY (sender, message_id))`,
		`CREATE TABLE IF NOT EXISTS soap_cases (case_id TEXT PRIMARY KEY, institution TEXT NOT NULL, opened_at TEXT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS case_answers (
  case_id TEXT NOT NULL, code TEXT NOT NULL, item ` + t.blob + ` NOT NULL, delivery_key TEXT NOT NULL, answered_at TEXT NOT NULL,
  PRIMARY KEY (case_id, code))`,
		`CREATE TABLE IF NOT EXISTS batches (
  sender TEXT NOT NULL, batch_id TEXT NOT NULL, payload_sha256 TEXT NOT NULL, response ` + t.blob + ` NOT NULL,
  seq ` + t.bigint + ` NOT NULL, PRIMARY KEY (sender, batch_id))`,
		`CREATE TABLE IF NOT EXISTS deliveries (
  id ` + t.serial + `, delivery_key TEXT NOT NULL UNIQUE, partner_id TEXT NOT NULL, message_type TEXT NOT NULL,
  case_id TEXT NOT NULL, payload ` + t.blob + ` NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL,
  next_at TEXT NOT NULL, last_error TEXT NOT NULL, response ` + t.blob + `, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
  no_retry INTEGER NOT NULL DEFAULT 0, answer_seq ` + t.bigint + `, leased INTEGER NOT NULL DEFAULT 0)`,
		// qClaimDue, qPendingPartners. A store from an earlier build keeps
		// its deliveries_due (state, next_at, id) too: an instance of that
		// build sharing the store through a rolling upgrade still claims
		// by it, and without it would read the whole table on every look.
		`CREATE INDEX IF NOT EXISTS deliveries_partner_due ON deliveries (state, partner_id, next_at, id)`,
		// qClaimDue's check for an earlier pending delivery on the case,
		// and moveFollowers. Partial: a delivery without a case, or no
		// longer pending, has no entry, so keeping it up costs those
		// nothing (a full index cost 4-14 % of BenchmarkDelivery).
		`CREATE INDEX IF NOT EXISTS deliveries_case ON deliveries (partner_id, case_id, id) WHERE ` + pendingOnCase,
		`CREATE TABLE IF NOT EXISTS store_probe (id INTEGER PRIMARY KEY, at TEXT NOT NULL)`, // Ping
	}
}

// IsPostgres reports whether a store target is a PostgreSQL DSN.
func IsPostgres(target string) bool { return sqldialect.IsPostgres(target) }

// Open opens the store: a postgres:// DSN, or a SQLite file path (created if
// needed; WAL, synchronous=FULL).
func Open(target string) (*DB, error) {
	s := &DB{postgres: IsPostgres(target), reqs: make(chan *writeReq, 1024), closing: make(chan struct{}), writerDone: make(chan struct{}), leaseMark: 1}
	s.SetCommitTimeout(DefaultCommitTimeout)
	var err error
	ddl := schemaSQLite
	if s.postgres {
		s.db, err = sql.Open("pgx", target)
		ddl = schemaPostgres
		if err == nil {
			s.db.SetMaxOpenConns(16)
		}
	} else if err = sqldialect.CreateSQLite(target); err == nil {
		s.db, err = sql.Open("sqlite", "file:"+target+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_txlock=immediate")
		if err == nil {
			s.db.SetMaxOpenConns(4)
		}
	}
	if err != nil {
		return nil, err
	}
	for _, q := range ddl {
		if _, err := s.db.Exec(q); err != nil {
			s.db.Close()
			return nil, fmt.Errorf("store: schema: %w", err)
		}
	}
	if err := sqldialect.AddColumns(s.db, addedColumns); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("store: schema: %w", err)
	}
	if err := s.countDeliveries(); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("store: schema: delivery counts: %w", err)
	}
	if err := s.countOutbox(); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("store: schema: outbox counts: %w", err)
	}
	if !s.postgres {
		s.stmts = map[string]*sql.Stmt{}
		for _, q := range hotStatements {
			st, err := s.db.Prepare(q)
			if err != nil {
				s.db.Close()
				return nil, fmt.Errorf("store: prepare: %w", err)
			}
			s.stmts[q] = st
		}
	}
	go s.writer()
	return s, nil
}

// addedColumns are columns added after a table was first released: a
// store made by an earlier build gets them when it is opened.
var addedColumns = []sqldialect.Column{
	{Table: "outbox", Name: "log_seq", Def: "BIGINT"},
	{Table: "outbox", Name: "render", Def: "TEXT NOT NULL DEFAULT ''"},
	{Table: "deliveries", Name: "no_retry", Def: "INTEGER NOT NULL DEFAULT 0"},
	{Table: "deliveries", Name: "answer_seq", Def: "BIGINT"},
	{Table: "deliveries", Name: "leased", Def: "INTEGER NOT NULL DEFAULT 0"},
}

// OpenSQLite opens a SQLite store.
func OpenSQLite(path string) (*DB, error) { return Open(path) }

// Close stops the writer (after the waiting writes) and closes the database.
func (s *DB) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	<-s.writerDone
	for _, st := range s.stmts {
		_ = st.Close()
	}
	if s.lockKept != nil {
		<-s.lockKept
	}
	if s.instanceLock != nil {
		_ = s.instanceLock.Close() // its session's end lets the lock go
	}
	err := s.db.Close()
	if s.release != nil {
		s.release()
	}
	return err
}

// OpenExclusive is Open for a gateway process: a SQLite store is taken for
// this process alone until Close, by a lock file beside it (PATH.lock,
// naming the holder's pid). Its relay claims the outbox without a lock of
// the database's (PostgreSQL's relays take turns under an advisory lock):
// two gateways on one SQLite file each published what the other had
// claimed, 21,976 repeats on the verified topic for 51,435 notices. The
// tools that read or mend a running gateway's store (log verify, store
// backup, outbound) use Open. A PostgreSQL store takes no lock file:
// instances share it, each holding an advisory lock of its own while it
// runs (takeInstanceLock). Then it frees the deliveries still claimed by
// a process that is gone (FreeLeases): on SQLite all of them, since the
// store is this process's alone; on PostgreSQL those of instances whose
// lock is free.
func OpenExclusive(target string) (*DB, error) {
	s, err := openOwned(target)
	if err != nil {
		return nil, err
	}
	if s.leasesFreed, err = s.FreeLeases(context.Background(), time.Now()); err != nil {
		s.Close()
		return nil, fmt.Errorf("store %s: free the deliveries in flight in gateways that ended: %w", sqldialect.Redacted(target), err)
	}
	return s, nil
}

// openOwned opens the store as this process's: a SQLite file under its
// lock file, or a PostgreSQL database with this instance's advisory lock.
func openOwned(target string) (*DB, error) {
	if IsPostgres(target) {
		s, err := Open(target)
		if err != nil {
			return nil, err
		}
		if err := s.takeInstanceLock(context.Background()); err != nil {
			s.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
		return s, nil
	}
	release, err := pidlock.Take(target + ".lock")
	var held *pidlock.HeldError
	if errors.As(err, &held) {
		return nil, fmt.Errorf("store %s: %w: a SQLite store belongs to one gateway process (instances share a PostgreSQL store)", target, err)
	} else if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s, err := Open(target)
	if err != nil {
		release()
		return nil, err
	}
	s.release = release
	return s, nil
}

// LeasesFreed is how many deliveries OpenExclusive found in flight, claimed
// by a process that ended without recording their attempts, and made due.
func (s *DB) LeasesFreed() int { return s.leasesFreed }

// takeInstanceLock gives this PostgreSQL instance a token of its own, the
// mark of its claims, and holds the token's advisory lock on a connection
// kept until Close. A session's advisory locks end with it, so a token
// whose lock another session can take belongs to an instance that has
// ended, however it ended. Tokens are random and above 1 (the mark of
// claims by earlier builds and by tools, which no instance owns).
func (s *DB) takeInstanceLock(ctx context.Context) error {
	for range 8 {
		token := 2 + rand.Int64N(math.MaxInt32-1)
		conn, err := s.lockOn(ctx, token)
		if err != nil {
			return fmt.Errorf("instance lock: %w", err)
		}
		if conn != nil {
			s.instanceLock, s.leaseMark, s.lockKept = conn, token, make(chan struct{})
			go s.keepInstanceLock(InstanceLockCheck)
			return nil
		}
	}
	return errors.New("instance lock: 8 tokens drawn were each held by another session")
}

// lockOn takes token's advisory lock on a connection of its own, which it
// returns; none when another session holds the lock.
func (s *DB) lockOn(ctx context.Context, token int64) (*sql.Conn, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var got bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, $2)`, lockInstances, token).Scan(&got); err != nil || !got {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// InstanceLockCheck is how often a PostgreSQL instance makes sure the
// session holding its lock lives.
const InstanceLockCheck = 2 * time.Second

// keepInstanceLock looks every period at the session holding this
// instance's lock, and when it has ended (the database restarted, the
// connection cut) takes the token's lock again on a new one. Without
// it, the first instance to start after a database restart would take
// every live instance for ended and send their deliveries in flight
// again. An instance that starts in the moments before the lock is taken
// again still may: the partner has each delivery's idempotency key.
func (s *DB) keepInstanceLock(period time.Duration) {
	defer close(s.lockKept)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), period)
		if s.instanceLock.PingContext(ctx) != nil {
			if conn, err := s.lockOn(ctx, s.leaseMark); err == nil && conn != nil {
				_ = s.instanceLock.Close()
				s.instanceLock = conn
				instanceLocksRetaken.Inc()
			}
		}
		cancel()
	}
}

// Postgres reports the dialect.
func (s *DB) Postgres() bool { return s.postgres }

// The statements of every accepted notice, prepared once (SQLite): a
// group commit runs them hundreds of times a second, and the pure-Go
// SQLite otherwise parses each one on every call. pgx caches its own.
const (
	qInsertLog = `INSERT INTO message_log (seq, correlation_id, partner_id, received_at, route, content_type, body,
		signature, verification, status, outcome, problem_type, source_key, record_id, payload_sha256, canonical, receipt, prev_hash, hash)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`
	qInsertOutbox = `INSERT INTO outbox (topic, msg_key, headers, value, created_at, log_seq, render) VALUES (?,?,?,?,?,?,?)`
	qInsertRecord = `INSERT INTO records (record_id, source_key, partner_id, payload_sha256, receipt, accepted_at, seq) VALUES (?,?,?,?,?,?,?)`
	qChainHead    = `SELECT seq, hash FROM message_log ORDER BY seq DESC LIMIT 1`
	// A record's receipt is its log entry's unless the record holds its
	// own (recordArgs): an insurer's claim has one of its own, a notice
	// shares its entry's.
	qRecordBy = `SELECT r.record_id, r.source_key, r.partner_id, r.payload_sha256,
		CASE WHEN r.receipt = '' THEN l.receipt ELSE r.receipt END, r.accepted_at, r.seq
		FROM records r JOIN message_log l ON l.seq = r.seq WHERE r.`
)

// qRecordsIn finds a group's records on SQLite: their ids are one JSON
// array, since a statement per Accept cost 4 % of the gateway's CPU under
// load.
const qRecordsIn = qRecordBy + `record_id IN (SELECT value FROM json_each(?))`

var hotStatements = []string{qChainHead, qInsertLog, qInsertOutbox, qInsertRecord, qRecordBy + "record_id = ?", qRecordsIn,
	// The deliverer's look, on every round: parsing qClaimDue, with its
	// subquery, took longer than running it.
	qClaimDue, qPendingPartners, qPendingPartnerAfter}

// query reads outside the writer, through query's prepared statement when
// there is one (SQLite; pgx keeps its own).
func (s *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := s.stmts[query]; st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.db.QueryContext(ctx, s.q(query), args...)
}

// queryRow is query for one row.
func (s *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := s.stmts[query]; st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.db.QueryRowContext(ctx, s.q(query), args...)
}

// execTx runs query in tx, through its prepared statement when there is one.
func (s *DB) execTx(ctx context.Context, tx wtx, query string, args ...any) (sql.Result, error) {
	if st, t := s.prepared(tx, query); st != nil {
		return t.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, s.q(query), args...)
}

// prepared is query's prepared statement and the transaction to run it in,
// if it has one (SQLite).
func (s *DB) prepared(tx wtx, query string) (*sql.Stmt, *sql.Tx) {
	t, ok := tx.(*sql.Tx)
	if st := s.stmts[query]; st != nil && ok {
		return st, t
	}
	return nil, nil
}

// wtx is the writer's transaction: a *sql.Tx on SQLite; on PostgreSQL the
// writer's own connection, inside the transaction it began (commitPG).
type wtx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// txQuerier reads inside tx through the prepared statements.
type txQuerier struct {
	s  *DB
	tx wtx
}

func (t txQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st, tx := t.s.prepared(t.tx, query); st != nil {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

// q adapts a query written with ? placeholders to the dialect.
func (s *DB) q(query string) string { return sqldialect.Rebind(query, s.postgres) }

// DB exposes the database for reports and for tests that tamper with the log.
func (s *DB) DB() *sql.DB { return s.db }

// Ping proves the store writable: it writes a row, through the writer.
// An empty transaction (SELECT 1) writes nothing to disk, so it committed
// on a full disk while every notice was refused for it, and /readyz said
// ready.
func (s *DB) Ping(ctx context.Context) error {
	return s.submit(&writeReq{ctx: ctx, done: make(chan error, 1), probe: true, fn: func(ctx context.Context, tx wtx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO store_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at`),
			ts(time.Now()))
		return err
	}})
}
