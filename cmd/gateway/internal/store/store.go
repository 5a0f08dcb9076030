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
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/cmd/gateway/internal/sqldialect"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
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

// DB is the store.
type DB struct {
	db       *sql.DB
	postgres bool

	reqs chan *writeReq
	// head caches the chain's last (seq, hash) within the writer's current
	// transaction, so a group commit reads it once, not once per entry.
	head      *chainHead
	group     *pgGroup             // the PostgreSQL group commit in progress (writer only)
	stmts     map[string]*sql.Stmt // by query text; read-only after Open
	closeOnce sync.Once
	closing   chan struct{}
	writerWG  sync.WaitGroup
}

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
		`CREATE TABLE IF NOT EXISTS batches (
  sender TEXT NOT NULL, batch_id TEXT NOT NULL, payload_sha256 TEXT NOT NULL, response ` + t.blob + ` NOT NULL,
  seq ` + t.bigint + ` NOT NULL, PRIMARY KEY (sender, batch_id))`,
		`CREATE TABLE IF NOT EXISTS deliveries (
  id ` + t.serial + `, delivery_key TEXT NOT NULL UNIQUE, partner_id TEXT NOT NULL, message_type TEXT NOT NULL,
  case_id TEXT NOT NULL, payload ` + t.blob + ` NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL,
  next_at TEXT NOT NULL, last_error TEXT NOT NULL, response ` + t.blob + `, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)`,
	}
}

// IsPostgres reports whether a store target is a PostgreSQL DSN.
func IsPostgres(target string) bool { return sqldialect.IsPostgres(target) }

// Open opens the store: a postgres:// DSN, or a SQLite file path (created if
// needed; WAL, synchronous=FULL).
func Open(target string) (*DB, error) {
	s := &DB{postgres: IsPostgres(target), reqs: make(chan *writeReq, 1024), closing: make(chan struct{})}
	var err error
	ddl := schemaSQLite
	if s.postgres {
		s.db, err = sql.Open("pgx", target)
		ddl = schemaPostgres
		if err == nil {
			s.db.SetMaxOpenConns(16)
		}
	} else {
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
	if err := s.addColumns(); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("store: schema: %w", err)
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
	s.writerWG.Add(1)
	go s.writer()
	return s, nil
}

// addedColumns are columns added after a table was first released: a
// store made by an earlier build gets them when it is opened.
var addedColumns = []struct{ table, column, def string }{
	{"outbox", "log_seq", "BIGINT"},
	{"outbox", "render", "TEXT NOT NULL DEFAULT ''"},
}

func (s *DB) addColumns() error {
	for _, c := range addedColumns {
		if _, err := s.db.Exec(`SELECT ` + c.column + ` FROM ` + c.table + ` LIMIT 0`); err == nil {
			continue
		}
		if _, err := s.db.Exec(`ALTER TABLE ` + c.table + ` ADD COLUMN ` + c.column + ` ` + c.def); err != nil {
			return fmt.Errorf("adding %s.%s: %w", c.table, c.column, err)
		}
	}
	return nil
}

// OpenSQLite opens a SQLite store.
func OpenSQLite(path string) (*DB, error) { return Open(path) }

// Close stops the writer (after the waiting writes) and closes the database.
func (s *DB) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.writerWG.Wait()
	for _, st := range s.stmts {
		_ = st.Close()
	}
	return s.db.Close()
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

var hotStatements = []string{qChainHead, qInsertLog, qInsertOutbox, qInsertRecord, qRecordBy + "record_id = ?"}

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

// writeReq is one write waiting for the group commit.
type writeReq struct {
	ctx      context.Context
	fn       func(tx wtx) error
	done     chan error
	recordID string // an Accept's record id (its idempotency key), looked up for the whole group at once (PostgreSQL)
}

// maxGroup bounds how many writes share one transaction.
const maxGroup = 256

// groupLinger is how long the writer may wait for more writes before it
// commits, while there is load (the previous group held more than one
// write); it stops waiting as soon as the group is as large as the previous
// one. Without it, concurrent callers reach the writer a few at a time: at
// 32 concurrent callers the groups averaged 2 writes, and each commit's
// fixed cost (BEGIN, chain head, the tail pages rewritten, the fsync) was
// paid for every other notice. With it: loadtest 1,991 -> about 2,420
// notices/s, p99 42 -> 32 ms; 32 callers in a loop (BenchmarkAccept) 64-69
// -> 47-57 us per accept. A lone caller (groups of one) never waits.
const groupLinger = time.Millisecond

var groupSize = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "jambatan_store_group_commit_size",
	Help: "Writes committed together in one transaction (group commit).", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}})

// Register adds the store's metrics to a registry.
func Register(r prometheus.Registerer) { r.MustRegister(groupSize) }

// writer runs waiting writes in one transaction per round. If the round
// fails, each write is retried alone so one bad write cannot fail others.
func (s *DB) writer() {
	defer s.writerWG.Done()
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	last := 1 // size of the previous group
	for {
		var first *writeReq
		select {
		case first = <-s.reqs:
		case <-s.closing:
			for {
				select {
				case r := <-s.reqs:
					r.done <- ErrClosed
				default:
					return
				}
			}
		}
		batch := []*writeReq{first}
		waiting := last > 1
		if waiting {
			linger.Reset(groupLinger)
		}
	drain:
		for len(batch) < maxGroup {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
				continue
			default:
			}
			if !waiting || len(batch) >= last {
				break
			}
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			case <-linger.C:
				waiting = false
				break drain
			}
		}
		linger.Stop() // Go 1.23 timers: no stale tick is left to drain
		last = len(batch)
		groupSize.Observe(float64(len(batch)))
		err := s.commit(batch)
		if err != nil && len(batch) > 1 {
			for _, r := range batch {
				r.done <- s.commit([]*writeReq{r})
			}
			continue
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}

func (s *DB) commit(batch []*writeReq) error {
	if s.postgres {
		return s.commitPG(batch)
	}
	ctx := context.Background()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	s.head = &chainHead{tx: tx}
	defer func() { s.head = nil }()
	if err := run(batch, tx); err != nil {
		return err
	}
	return tx.Commit()
}

// run makes the group's writes in tx.
func run(batch []*writeReq, tx wtx) error {
	for _, r := range batch {
		// A write whose caller has gone is made all the same: it may be an
		// accepted notice, and idempotency answers the sender's retry.
		if err := r.fn(tx); err != nil {
			return err
		}
	}
	return nil
}

// write queues fn for the next group commit and waits until it is durable.
func (s *DB) write(ctx context.Context, fn func(tx wtx) error) error {
	return s.writeKeyed(ctx, "", fn)
}

// writeKeyed is write for an Accept of the record recordID.
func (s *DB) writeKeyed(ctx context.Context, recordID string, fn func(tx wtx) error) error {
	r := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1), recordID: recordID}
	select {
	case s.reqs <- r:
	case <-s.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, wait for the outcome even if ctx ends: the write may
	// already be in a committing transaction.
	return <-r.done
}

// ChainHash is the hash of an entry given its predecessor's hash: SHA-256
// over the previous hash and every logged field, each length-prefixed so no
// two different entries encode alike.
func ChainHash(e *Entry) string {
	h := sha256.New()
	put := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	puts := func(s string) { put([]byte(s)) }
	puts(e.PrevHash)
	puts(strconv.FormatInt(e.Seq, 10))
	puts(e.CorrelationID)
	puts(e.PartnerID)
	puts(e.ReceivedAt.UTC().Format(time.RFC3339Nano))
	puts(e.Route)
	puts(e.ContentType)
	put(e.Body)
	puts(e.Signature)
	puts(e.Verification)
	puts(strconv.Itoa(e.Status))
	puts(e.Outcome)
	puts(e.ProblemType)
	puts(e.SourceKey)
	puts(e.RecordID)
	puts(e.PayloadSHA256)
	put(e.Canonical)
	puts(e.Receipt)
	return hex.EncodeToString(h.Sum(nil))
}

// appendEntry chains and inserts e, and its outbox messages, inside tx.
func (s *DB) appendEntry(ctx context.Context, tx wtx, e *Entry) error {
	if err := s.chain(ctx, tx, e); err != nil {
		return err
	}
	if _, err := s.execTx(ctx, tx, qInsertLog, logArgs(e)...); err != nil {
		return err
	}
	if x := e.Exchange; x != nil {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO soap_exchanges (sender, message_id, body_sha256, operation, case_id, response, seq) VALUES (?,?,?,?,?,?,?)`),
			x.Sender, x.MessageID, x.BodySHA256, x.Operation, x.CaseID, nonNil(x.Response), e.Seq); err != nil {
			return err
		}
		if x.NewCase {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO soap_cases (case_id, institution, opened_at) VALUES (?,?,?)`),
				x.CaseID, x.Sender, e.ReceivedAt.UTC().Format(time.RFC3339Nano)); err != nil {
				return err
			}
		}
	}
	for _, m := range e.Outbox {
		args, err := outboxArgs(e, m)
		if err != nil {
			return err
		}
		if _, err := s.execTx(ctx, tx, qInsertOutbox, args...); err != nil {
			return err
		}
	}
	return nil
}

// chain gives e the next sequence number, its predecessor's hash and its
// own hash, and moves the cached chain head on.
func (s *DB) chain(ctx context.Context, tx wtx, e *Entry) error {
	var prev string
	var last int64
	if h := s.head; h != nil && h.tx == tx && h.valid {
		last, prev = h.seq, h.hash
	} else {
		err := txQuerier{s, tx}.QueryRowContext(ctx, qChainHead).Scan(&last, &prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	}
	e.Seq, e.PrevHash = last+1, prev
	e.Hash = ChainHash(e)
	if h := s.head; h != nil && h.tx == tx {
		h.seq, h.hash, h.valid = e.Seq, e.Hash, true
	}
	return nil
}

// logArgs are the values of qInsertLog for e.
func logArgs(e *Entry) []any {
	return []any{e.Seq, e.CorrelationID, e.PartnerID, e.ReceivedAt.UTC().Format(time.RFC3339Nano), e.Route, e.ContentType, nonNil(e.Body),
		e.Signature, e.Verification, e.Status, e.Outcome, e.ProblemType, e.SourceKey, e.RecordID, e.PayloadSHA256, e.Canonical, e.Receipt, e.PrevHash, e.Hash}
}

// outboxArgs are the values of qInsertOutbox for m, written with e.
func outboxArgs(e *Entry, m Message) ([]any, error) {
	hdr, err := json.Marshal(m.Headers)
	if err != nil {
		return nil, err
	}
	return []any{m.Topic, nonNil(m.Key), string(hdr), nonNil(m.Value), e.ReceivedAt.UTC().Format(time.RFC3339Nano), e.Seq, m.Render}, nil
}

// decodeHeaders reads an outbox row's headers as outboxArgs wrote them
// ([{"k":…,"v":…},…]). The relay reads them for every message it
// publishes, and through encoding/json's reflection that was 1.7 % of the
// gateway's CPU under loadtest.
func decodeHeaders(b []byte) ([]Header, error) {
	v, err := jsondoc.Parse(b, 3)
	if err != nil {
		return nil, err
	}
	if v.Kind == jsondoc.Null {
		return nil, nil
	}
	if v.Kind != jsondoc.Array {
		return nil, errors.New("not an array")
	}
	hs := make([]Header, len(v.Items))
	for i, it := range v.Items {
		k, kok := it.Get("k")
		val, vok := it.Get("v")
		if !kok || !vok || k.Kind != jsondoc.String || val.Kind != jsondoc.String || len(it.Members) != 2 {
			return nil, fmt.Errorf("header %d is not {\"k\":…,\"v\":…}", i)
		}
		hs[i] = Header{Key: k.Str, Value: val.Str}
	}
	return hs, nil
}

// recordArgs are the values of qInsertRecord for r, logged with e. A
// receipt that is e's too (a notice's) is not stored a second time: the
// record reads it from its log entry (qRecordBy). Each was about 0.9 KB in
// the records table, whose pages every accepted notice writes; without
// them the loadtest's disk writes fell by 2.2 KB per notice.
func recordArgs(r *Record, e *Entry) []any {
	receipt := r.Receipt
	if receipt == e.Receipt {
		receipt = ""
	}
	return []any{r.RecordID, r.SourceKey, r.PartnerID, r.PayloadSHA256, receipt, r.AcceptedAt.UTC().Format(time.RFC3339Nano), r.Seq}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Log appends an entry (and its outbox messages); durable on return.
func (s *DB) Log(ctx context.Context, e *Entry) error {
	return s.write(ctx, func(tx wtx) error { return s.appendEntry(ctx, tx, e) })
}

// AcceptResult tells what Accept did.
type AcceptResult struct {
	Outcome string  // ACCEPTED, DUPLICATE, or REJECTED for a conflict
	Record  *Record // the accepted record (the first one, for a duplicate)
}

// Accept logs an accepted submission and records it, atomically, under its
// record id: the UUIDv5 of its source key (canonical-record-v1), so the
// record id stands for the source key, and records are looked up by it.
// When the source key is already recorded, onExisting adjusts the entry
// (DUPLICATE with the first receipt, or a conflict) before it is logged.
// The entry is durable when Accept returns.
func (s *DB) Accept(ctx context.Context, e *Entry, onExisting func(e *Entry, first *Record)) (AcceptResult, error) {
	var res AcceptResult
	err := s.writeKeyed(ctx, e.RecordID, func(tx wtx) error {
		first, err := s.recordByID(ctx, tx, e.RecordID)
		switch {
		case err == nil:
			onExisting(e, first)
			res = AcceptResult{Outcome: e.Outcome, Record: first}
			return s.appendEntry(ctx, tx, e)
		case !errors.Is(err, ErrNotFound):
			return err
		}
		e.Outcome = OutcomeAccepted
		rec := &Record{RecordID: e.RecordID, SourceKey: e.SourceKey, PartnerID: e.PartnerID, PayloadSHA256: e.PayloadSHA256,
			Receipt: e.Receipt, AcceptedAt: e.ReceivedAt}
		if err := s.appendAccepted(ctx, tx, e, rec); err != nil {
			return err
		}
		rec.Seq = e.Seq
		res = AcceptResult{Outcome: OutcomeAccepted, Record: rec}
		return nil
	})
	return res, err
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// recordBy looks up the record id's record through q.
func (s *DB) recordBy(ctx context.Context, q querier, id string) (*Record, error) {
	r, err := scanRecord(q.QueryRowContext(ctx, s.q(qRecordBy+`record_id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return r, err
}

// scanRecord reads one row of qRecordBy's columns.
func scanRecord(row interface{ Scan(...any) error }) (*Record, error) {
	var r Record
	var at string
	if err := row.Scan(&r.RecordID, &r.SourceKey, &r.PartnerID, &r.PayloadSHA256, &r.Receipt, &at, &r.Seq); err != nil {
		return nil, err
	}
	r.AcceptedAt, _ = time.Parse(time.RFC3339Nano, at)
	return &r, nil
}

// RecordByID returns an accepted record.
func (s *DB) RecordByID(ctx context.Context, recordID string) (*Record, error) {
	return s.recordBy(ctx, s.db, recordID)
}

// Claim is a batch of outbox messages held by one relay until Done or Release.
type Claim struct {
	Messages []Message
	s        *DB
	tx       *sql.Tx // PostgreSQL: holds the row locks and the relay lock
}

// ClaimBytes bounds what one claim reads (values, and the log entries of
// events rendered from them): the relay holds a claim and its events in
// memory while it produces them, and 500 events near a broker's 1 MiB
// limit would be 500 MB. A claim stops at the message that reaches it.
const ClaimBytes = 16 << 20

// ClaimOutbox takes up to limit unpublished messages, oldest first, and no
// more than about ClaimBytes of them. On
// PostgreSQL the rows are locked (FOR UPDATE SKIP LOCKED) under a relay
// advisory lock, so of several gateway instances one relays at a time, in
// order, and none publishes a row another holds. An empty claim means
// nothing to do (or another instance is relaying).
func (s *DB) ClaimOutbox(ctx context.Context, limit int) (*Claim, error) {
	c := &Claim{s: s}
	var q querier = s.db
	if s.postgres {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return nil, err
		}
		var got bool
		if err := tx.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock($1)`, lockRelay).Scan(&got); err != nil || !got {
			tx.Rollback()
			return c, err
		}
		c.tx, q = tx, tx
	}
	lock := ""
	if s.postgres {
		lock = " FOR UPDATE OF o SKIP LOCKED"
	}
	rows, err := q.(interface {
		QueryContext(context.Context, string, ...any) (*sql.Rows, error)
	}).QueryContext(ctx, s.q(qClaimOutbox+lock), limit)
	if err != nil {
		c.Release()
		return nil, err
	}
	defer rows.Close()
	for size := 0; size < ClaimBytes && rows.Next(); {
		var m Message
		var hdr []byte
		var at string
		var seq sql.NullInt64
		var l Entry
		var sig, receipt sql.NullString
		if err := rows.Scan(&m.ID, &m.Topic, &m.Key, &hdr, &m.Value, &at, &m.Render, &seq, &l.Body, &sig, &l.Canonical, &receipt); err != nil {
			c.Release()
			return nil, err
		}
		if m.Render != "" {
			if !seq.Valid {
				c.Release()
				return nil, fmt.Errorf("outbox %d: its log entry is missing", m.ID)
			}
			l.Seq, l.Signature, l.Receipt = seq.Int64, sig.String, receipt.String
			m.Logged = &l
		}
		if m.Headers, err = decodeHeaders(hdr); err != nil {
			c.Release()
			return nil, fmt.Errorf("outbox %d: headers: %w", m.ID, err)
		}
		m.CreatedAt, _ = time.Parse(time.RFC3339Nano, at)
		c.Messages = append(c.Messages, m)
		size += len(m.Value) + len(l.Body) + len(l.Canonical) + len(l.Receipt) + len(hdr)
	}
	if err := rows.Err(); err != nil {
		c.Release()
		return nil, err
	}
	if len(c.Messages) == 0 {
		c.Release()
	}
	return c, nil
}

// qClaimOutbox reads pending messages with, for those rendered from their
// log entry, the entry's parts.
const qClaimOutbox = `SELECT o.id, o.topic, o.msg_key, o.headers, o.value, o.created_at, o.render,
	l.seq, l.body, l.signature, l.canonical, l.receipt
	FROM outbox o LEFT JOIN message_log l ON o.render <> '' AND l.seq = o.log_seq
	WHERE o.published_at IS NULL ORDER BY o.id LIMIT ?`

// Done removes the claimed messages: the broker acknowledged them, so they
// live on in Kafka, and the message log keeps the audit record. Deleting
// rather than stamping a published_at matters for speed: SQLite rewrites a
// whole row (the event, kilobytes of overflow pages) when a column changes
// size, so the stamp wrote every event a second time. (Rows of stores from
// before this carry published_at and are skipped by their outbox_pending
// index.)
func (c *Claim) Done(ctx context.Context) error {
	if len(c.Messages) == 0 {
		return nil
	}
	// One statement per claim: the ids as a list of placeholders.
	args := make([]any, len(c.Messages))
	marks := make([]string, len(c.Messages))
	for i, m := range c.Messages {
		marks[i] = "?"
		args[i] = m.ID
	}
	query := c.s.q(`DELETE FROM outbox WHERE id IN (` + strings.Join(marks, ",") + `)`)
	mark := func(tx wtx) error {
		_, err := tx.ExecContext(ctx, query, args...)
		return err
	}
	if c.tx != nil {
		defer func() { c.tx = nil }()
		if err := mark(c.tx); err != nil {
			c.tx.Rollback()
			return err
		}
		return c.tx.Commit()
	}
	return c.s.write(ctx, mark)
}

// Release gives the claim up without marking anything.
func (c *Claim) Release() {
	if c.tx != nil {
		c.tx.Rollback()
		c.tx = nil
	}
}

// OutboxBacklog counts unpublished messages.
func (s *DB) OutboxBacklog(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&n)
	return n, err
}

// ClaimKey identifies one claim version of a batch.
type ClaimKey struct {
	SourceKey, RecordID, Hash string
}

// Claim states found by AcceptBatch.
const (
	ClaimNew       = "NEW"
	ClaimDuplicate = "DUPLICATE" // same version, same values: already accepted
	ClaimConflict  = "CONFLICT"  // same version, other values
)

// BatchOutcome is what AcceptBatch found before writing.
type BatchOutcome struct {
	// ExistingHash and ExistingResponse are set when the batch id was seen.
	ExistingHash     string
	ExistingResponse []byte
	Existing         bool
	States           []string // per claim key, when the batch is new
}

// BatchWrite is what the caller decided to write.
type BatchWrite struct {
	Response []byte   // the response body to keep for a repeated batch
	Accept   []int    // indexes into the claim keys to record as accepted
	Receipts []string // each accepted claim's own receipt, in Accept's order
}

// AcceptBatch logs a batch, records its new claims, and keeps its response,
// in one transaction. decide sees what already exists (the whole batch, or
// per claim) and says what to write; it may set e's outbox and status.
func (s *DB) AcceptBatch(ctx context.Context, e *Entry, sender, batchID string, claims []ClaimKey, decide func(e *Entry, o BatchOutcome) (BatchWrite, error)) (BatchOutcome, BatchWrite, error) {
	var out BatchOutcome
	var w BatchWrite
	err := s.write(ctx, func(tx wtx) error {
		out, w = BatchOutcome{}, BatchWrite{}
		err := tx.QueryRowContext(ctx, s.q(`SELECT payload_sha256, response FROM batches WHERE sender = ? AND batch_id = ?`), sender, batchID).
			Scan(&out.ExistingHash, &out.ExistingResponse)
		switch {
		case err == nil:
			out.Existing = true
		case !errors.Is(err, sql.ErrNoRows):
			return err
		default:
			for _, c := range claims {
				first, err := s.recordBy(ctx, txQuerier{s, tx}, c.RecordID)
				switch {
				case errors.Is(err, ErrNotFound):
					out.States = append(out.States, ClaimNew)
				case err != nil:
					return err
				case first.PayloadSHA256 == c.Hash:
					out.States = append(out.States, ClaimDuplicate)
				default:
					out.States = append(out.States, ClaimConflict)
				}
			}
		}
		if w, err = decide(e, out); err != nil {
			return err
		}
		if err := s.appendEntry(ctx, tx, e); err != nil {
			return err
		}
		if out.Existing {
			return nil
		}
		for k, i := range w.Accept {
			c := claims[i]
			rec := &Record{RecordID: c.RecordID, SourceKey: c.SourceKey, PartnerID: e.PartnerID, PayloadSHA256: c.Hash,
				Receipt: w.Receipts[k], AcceptedAt: e.ReceivedAt, Seq: e.Seq}
			if _, err := s.execTx(ctx, tx, qInsertRecord, recordArgs(rec, e)...); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO batches (sender, batch_id, payload_sha256, response, seq) VALUES (?,?,?,?,?)`),
			sender, batchID, e.PayloadSHA256, w.Response, e.Seq)
		return err
	})
	return out, w, err
}

// ExchangeByMessage returns the first reception of (sender, messageID).
func (s *DB) ExchangeByMessage(ctx context.Context, sender, messageID string) (*Exchange, error) {
	x := &Exchange{Sender: sender, MessageID: messageID}
	err := s.db.QueryRowContext(ctx, s.q(`SELECT body_sha256, operation, case_id, response FROM soap_exchanges WHERE sender = ? AND message_id = ?`),
		sender, messageID).Scan(&x.BodySHA256, &x.Operation, &x.CaseID, &x.Response)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return x, err
}

// CaseInstitution returns the institution a case is shared with.
func (s *DB) CaseInstitution(ctx context.Context, caseID string) (string, error) {
	var inst string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT institution FROM soap_cases WHERE case_id = ?`), caseID).Scan(&inst)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return inst, err
}

// ChainReport is the result of Verify.
type ChainReport struct {
	Entries   int64
	BrokenSeq int64 // 0 when the chain is intact
	Reason    string
}

// Verify recomputes the hash chain and names the first broken entry.
func (s *DB) Verify(ctx context.Context, progress func(done int64)) (ChainReport, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, correlation_id, partner_id, received_at, route, content_type, body, signature, verification,
		status, outcome, problem_type, source_key, record_id, payload_sha256, canonical, receipt, prev_hash, hash FROM message_log ORDER BY seq`)
	if err != nil {
		return ChainReport{}, err
	}
	defer rows.Close()
	var rep ChainReport
	prev := ""
	var expectSeq int64 = 1
	for rows.Next() {
		var e Entry
		var at string
		if err := rows.Scan(&e.Seq, &e.CorrelationID, &e.PartnerID, &at, &e.Route, &e.ContentType, &e.Body, &e.Signature, &e.Verification,
			&e.Status, &e.Outcome, &e.ProblemType, &e.SourceKey, &e.RecordID, &e.PayloadSHA256, &e.Canonical, &e.Receipt, &e.PrevHash, &e.Hash); err != nil {
			return rep, err
		}
		e.ReceivedAt, _ = time.Parse(time.RFC3339Nano, at)
		rep.Entries++
		switch {
		case e.Seq != expectSeq:
			return ChainReport{Entries: rep.Entries, BrokenSeq: expectSeq, Reason: fmt.Sprintf("entry %d is missing", expectSeq)}, nil
		case e.PrevHash != prev:
			return ChainReport{Entries: rep.Entries, BrokenSeq: e.Seq, Reason: "prev_hash does not match the previous entry's hash"}, nil
		case ChainHash(&e) != e.Hash:
			return ChainReport{Entries: rep.Entries, BrokenSeq: e.Seq, Reason: "content does not match its hash"}, nil
		}
		prev = e.Hash
		expectSeq++
		if progress != nil && rep.Entries%10000 == 0 {
			progress(rep.Entries)
		}
	}
	return rep, rows.Err()
}

// Entries returns the number of logged entries.
func (s *DB) Entries(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM message_log`).Scan(&n)
	return n, err
}

// DB exposes the database for reports and for tests that tamper with the log.
func (s *DB) DB() *sql.DB { return s.db }

// Ping proves the store writable: an empty transaction through the writer.
func (s *DB) Ping(ctx context.Context) error {
	return s.write(ctx, func(tx wtx) error {
		_, err := tx.ExecContext(ctx, `SELECT 1`)
		return err
	})
}

// OutboxOldest is the creation time of the oldest unpublished message.
func (s *DB) OutboxOldest(ctx context.Context) (time.Time, bool, error) {
	var at sql.NullString
	if err := s.db.QueryRowContext(ctx, `SELECT min(created_at) FROM outbox WHERE published_at IS NULL`).Scan(&at); err != nil {
		return time.Time{}, false, err
	}
	if !at.Valid {
		return time.Time{}, false, nil
	}
	t, err := time.Parse(time.RFC3339Nano, at.String)
	return t, err == nil, err
}
