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
	"sync"
	"time"

	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/cmd/gateway/internal/sqldialect"
)

// ChainHash is the hash of an entry given its predecessor's hash: SHA-256
// over the previous hash and every logged field, each length-prefixed so no
// two different entries encode alike.
func ChainHash(e *Entry) string {
	return chainHash(e, e.loggedAt())
}

// prepare works out, before e is queued for the writer, what e's inserts
// need that its caller has fixed already: the logged form of its time and
// its messages' headers. The writer is the store's one serial path, and
// there this was about 1 % of the gateway's CPU under loadtest (the same
// instant formatted for the hash, the entry, its message and its record).
// What prepare did not see (a message a conflict adds in the writer) is
// worked out there.
func (e *Entry) prepare() error {
	e.at, e.atOf = formatAt(e.ReceivedAt), e.ReceivedAt
	for i := range e.Outbox {
		hdr, err := json.Marshal(e.Outbox[i].Headers)
		if err != nil {
			return err
		}
		e.Outbox[i].headersJSON = string(hdr)
	}
	return nil
}

// loggedAt is ReceivedAt as the log holds it.
func (e *Entry) loggedAt() string {
	if e.at != "" && e.atOf.Equal(e.ReceivedAt) {
		return e.at
	}
	return formatAt(e.ReceivedAt)
}

// formatAt is how the store writes an instant: RFC 3339 in UTC, to the
// nanosecond.
func formatAt(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// chainHash is ChainHash with received_at as it is written in the log: the
// hash covers the text, so Verify hashes the stored text, and the same
// instant written with another offset is an edit (TestPythonVerifiesLogChain).
func chainHash(e *Entry, receivedAt string) string {
	bp := chainInputs.Get().(*[]byte)
	b := (*bp)[:0]
	b = appendField(b, e.PrevHash)
	b = appendField(b, strconv.FormatInt(e.Seq, 10))
	b = appendField(b, e.CorrelationID)
	b = appendField(b, e.PartnerID)
	b = appendField(b, receivedAt)
	b = appendField(b, e.Route)
	b = appendField(b, e.ContentType)
	b = appendField(b, e.Body)
	b = appendField(b, e.Signature)
	b = appendField(b, e.Verification)
	b = appendField(b, strconv.Itoa(e.Status))
	b = appendField(b, e.Outcome)
	b = appendField(b, e.ProblemType)
	b = appendField(b, e.SourceKey)
	b = appendField(b, e.RecordID)
	b = appendField(b, e.PayloadSHA256)
	b = appendField(b, e.Canonical)
	b = appendField(b, e.Receipt)
	sum := sha256.Sum256(b)
	if cap(b) <= maxPooledChainInput {
		*bp = b
		chainInputs.Put(bp)
	}
	return hex.EncodeToString(sum[:])
}

// appendField appends one field of the chain's input: its length as 8
// bytes, big-endian, then the field.
func appendField[T string | []byte](b []byte, f T) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(f)))
	return append(b, f...)
}

// chainInputs are buffers for chainHash's input, laid out whole and then
// hashed: written to a hash.Hash field by field, each string was copied to
// a new []byte (an interface's Write may keep its argument), some 16
// allocations per entry in the store's one writer.
var chainInputs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledChainInput bounds the buffers chainInputs keeps: an insurer's
// batch of several MB is hashed from a buffer of its own.
const maxPooledChainInput = 64 << 10

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
				x.CaseID, x.Sender, e.loggedAt()); err != nil {
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
	if g := s.group; g != nil && g.tx == tx {
		g.rendered(e)
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
	e.storable()
	e.Hash = ChainHash(e)
	if h := s.head; h != nil && h.tx == tx {
		h.seq, h.hash, h.valid = e.Seq, e.Hash, true
	}
	return nil
}

// storable makes e's text what both databases store (sqldialect.Text),
// before it is hashed: a refused request's headers and the values its
// problems quote are foreign bytes, and on PostgreSQL one that was not
// UTF-8 failed the request's log entry (answered 503, "try again", and not
// logged).
func (e *Entry) storable() {
	for _, f := range []*string{&e.CorrelationID, &e.PartnerID, &e.Route, &e.ContentType, &e.Signature, &e.Verification,
		&e.Outcome, &e.ProblemType, &e.SourceKey, &e.RecordID, &e.PayloadSHA256, &e.Receipt} {
		*f = sqldialect.Text(*f)
	}
}

// logArgs are the values of qInsertLog for e.
func logArgs(e *Entry) []any {
	return []any{e.Seq, e.CorrelationID, e.PartnerID, e.loggedAt(), e.Route, e.ContentType, nonNil(e.Body),
		e.Signature, e.Verification, e.Status, e.Outcome, e.ProblemType, e.SourceKey, e.RecordID, e.PayloadSHA256, e.Canonical, e.Receipt, e.PrevHash, e.Hash}
}

// outboxArgs are the values of qInsertOutbox for m, written with e.
func outboxArgs(e *Entry, m Message) ([]any, error) {
	hdr := m.headersJSON
	if hdr == "" {
		b, err := json.Marshal(m.Headers)
		if err != nil {
			return nil, err
		}
		hdr = string(b)
	}
	return []any{m.Topic, nonNil(m.Key), hdr, nonNil(m.Value), e.loggedAt(), e.Seq, m.Render}, nil
}

// decodeHeaders reads an outbox row's headers as outboxArgs wrote them
// ([{"k":…,"v":…},…]). The relay reads them for every message it
// publishes, and through encoding/json's reflection that was 1.7 % of the
// gateway's CPU under loadtest. Only the tree's strings are kept, and they
// are the row's own, so it is read with jsondoc.ParseThen.
func decodeHeaders(b []byte) (hs []Header, err error) {
	err = jsondoc.ParseThen(b, 3, func(v *jsondoc.Value) error {
		if v.Kind == jsondoc.Null {
			return nil
		}
		if v.Kind != jsondoc.Array {
			return errors.New("not an array")
		}
		hs = make([]Header, len(v.Items))
		for i, it := range v.Items {
			k, kok := it.Get("k")
			val, vok := it.Get("v")
			if !kok || !vok || k.Kind != jsondoc.String || val.Kind != jsondoc.String || len(it.Members) != 2 {
				return fmt.Errorf("header %d is not {\"k\":…,\"v\":…}", i)
			}
			hs[i] = Header{Key: k.Str, Value: val.Str}
		}
		return nil
	})
	if err != nil {
		return nil, err
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
	at := e.loggedAt()
	if !r.AcceptedAt.Equal(e.ReceivedAt) {
		at = formatAt(r.AcceptedAt)
	}
	return []any{r.RecordID, r.SourceKey, r.PartnerID, r.PayloadSHA256, receipt, at, r.Seq}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// ChainReport is the result of Verify.
type ChainReport struct {
	Entries   int64
	BrokenSeq int64 // 0 when the chain is intact
	Reason    string
	// Head is the last entry's hash: with Entries, what an auditor keeps
	// to check later that no entry up to it was changed or deleted (a
	// chain alone cannot show its newest entries deleted).
	Head string
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
		rep.Entries++
		switch {
		case e.Seq != expectSeq:
			return ChainReport{Entries: rep.Entries, BrokenSeq: expectSeq, Reason: fmt.Sprintf("entry %d is missing", expectSeq)}, nil
		case e.PrevHash != prev:
			return ChainReport{Entries: rep.Entries, BrokenSeq: e.Seq, Reason: "prev_hash does not match the previous entry's hash"}, nil
		case chainHash(&e, at) != e.Hash:
			return ChainReport{Entries: rep.Entries, BrokenSeq: e.Seq, Reason: "content does not match its hash"}, nil
		}
		prev, rep.Head = e.Hash, e.Hash
		expectSeq++
		if progress != nil && rep.Entries%10000 == 0 {
			progress(rep.Entries)
		}
	}
	return rep, rows.Err()
}

// HashAt is the stored hash of entry seq, or ErrNotFound.
func (s *DB) HashAt(ctx context.Context, seq int64) (string, error) {
	var h string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT hash FROM message_log WHERE seq = ?`), seq).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return h, err
}

// Head is the last entry's sequence number and hash (0 and "" when the
// log is empty).
func (s *DB) Head(ctx context.Context) (int64, string, error) {
	var seq int64
	var h string
	err := s.db.QueryRowContext(ctx, `SELECT seq, hash FROM message_log ORDER BY seq DESC LIMIT 1`).Scan(&seq, &h)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	return seq, h, err
}

// Entries returns the number of logged entries.
//
// It is the chain's last sequence number: entries are numbered from 1
// without gaps, so the primary key answers in one lookup where count(*)
// read the whole log (seconds on a log of a few hundred thousand entries,
// and /healthz asks every few seconds).
func (s *DB) Entries(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM message_log`).Scan(&n)
	return n, err
}
