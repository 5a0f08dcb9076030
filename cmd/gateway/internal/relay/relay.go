// Package relay publishes the outbox to Kafka: it reads unpublished messages
// in commit order, produces them with kafka-go (acks from all in-sync
// replicas), and marks them published only after the broker acknowledged
// them. Delivery is at least once; consumers de-duplicate by ce_id.
//
// While the broker is away the outbox grows and intake goes on; the relay
// retries with backoff and drains the backlog, in order, when it returns.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/perkeso/jambatan/cmd/gateway/internal/correlation"
	"github.com/perkeso/jambatan/cmd/gateway/internal/retry"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// Outbox is what the relay needs of the store.
type Outbox interface {
	ClaimOutbox(ctx context.Context, limit int) (*store.Claim, error)
	OutboxBacklog(ctx context.Context) (int64, error)
}

// Producer is the part of kafka.Writer the relay uses.
type Producer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Relay moves outbox messages to Kafka.
type Relay struct {
	Outbox   Outbox
	Producer Producer
	Batch    int           // messages per produce call (default 500)
	Poll     time.Duration // how often to look without a wake-up (default 250ms)
	// Linger is how long the relay waits after a wake-up, while there is
	// load (its last claim published something), before it claims: the
	// claim then takes the commits of that time, not one group commit's
	// few messages (default DefaultLinger; negative: no wait). Every claim
	// costs a query, a produce call (a write and an fsync at the broker)
	// and a delete through the store's writer; claiming after every group
	// commit (a few messages each) cost a loadtest at a steady 3,000
	// notices/s 424-463 us of gateway CPU per notice, against 411-461 us
	// with 10 ms (medians 449 and 420, 6 interleaved pairs). An event
	// reaches Kafka up to Linger later; the first after a quiet spell does
	// not wait.
	Linger time.Duration
	Log    *slog.Logger
	// Render builds the value of a message the outbox holds by reference
	// to its log entry (store.Message.Render); events.Render in the gateway.
	Render func(m *store.Message) error

	wake chan struct{}
	once sync.Once

	mu        sync.Mutex
	lastErr   string
	failing   Side
	outage    correlation.Outage // one spell of failure's lines: its start, a change of side, its end
	lastOK    time.Time
	published int64
}

// Side is what a failed batch failed on, which decides where an operator
// looks: the broker, the store, or the event.
type Side string

const (
	SideKafka  Side = "kafka"  // the produce: the broker is away or refused the batch
	SideOutbox Side = "outbox" // claiming or marking the batch: the store is away or failing
	SideRender Side = "render" // building an event from its log entry
)

// warnings are the relay's log line when a side starts failing.
var warnings = map[Side]string{
	SideKafka:  "cannot publish to kafka; outbox is growing",
	SideOutbox: "cannot read or mark the outbox; publishing waits for the store",
	SideRender: "cannot build an outbox event; publishing waits",
}

// sideError is a failed batch and the side it failed on.
type sideError struct {
	side Side
	err  error
}

func (e *sideError) Error() string { return e.err.Error() }
func (e *sideError) Unwrap() error { return e.err }

// failedOn wraps err as failed on side.
func failedOn(side Side, err error) error { return &sideError{side, err} }

// sideOf is the side err, from Once, failed on (SideKafka for an error
// Once did not make).
func sideOf(err error) Side {
	if se, ok := errors.AsType[*sideError](err); ok {
		return se.side
	}
	return SideKafka
}

// DefaultLinger is the relay's wait for company under load (Relay.Linger).
const DefaultLinger = 10 * time.Millisecond

// Metrics of every relay in the process.
var (
	backlogGauge = prometheus.NewGauge(prometheus.GaugeOpts{Name: "jambatan_outbox_backlog",
		Help: "Outbox messages not yet acknowledged by Kafka."})
	publishedTotal = prometheus.NewCounter(prometheus.CounterOpts{Name: "jambatan_outbox_published_total",
		Help: "Outbox messages acknowledged by Kafka."})
	errorsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "jambatan_relay_errors_total",
		Help: "Failed batches, by the side they failed on: kafka (the produce), outbox (the store), render (an event)."}, []string{"side"})
)

// Register adds the relay's metrics to a registry.
func Register(r prometheus.Registerer) {
	for side := range warnings {
		errorsTotal.WithLabelValues(string(side)) // shown at 0 from the start
	}
	r.MustRegister(backlogGauge, publishedTotal, errorsTotal)
}

func (r *Relay) init() {
	r.once.Do(func() {
		r.wake = make(chan struct{}, 1)
		if r.Batch <= 0 {
			r.Batch = 500
		}
		if r.Poll <= 0 {
			r.Poll = 250 * time.Millisecond
		}
		if r.Linger == 0 {
			r.Linger = DefaultLinger
		}
		if r.Log == nil {
			r.Log = slog.Default()
		}
	})
}

// Wake tells the relay that new messages were committed.
func (r *Relay) Wake() {
	r.init()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Status is the relay's health detail.
type Status struct {
	Backlog       int64  `json:"backlog"`
	Published     int64  `json:"published"`
	LastError     string `json:"lastError,omitempty"`
	Failing       Side   `json:"failing,omitempty"` // the side LastError failed on
	LastPublished string `json:"lastPublished,omitempty"`
}

// Status reports the backlog and the last outcome.
func (r *Relay) Status(ctx context.Context) Status {
	n, _ := r.Outbox.OutboxBacklog(ctx)
	backlogGauge.Set(float64(n))
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Status{Backlog: n, Published: r.published, LastError: r.lastErr, Failing: r.failing}
	if !r.lastOK.IsZero() {
		s.LastPublished = r.lastOK.UTC().Format(time.RFC3339)
	}
	return s
}

// Run publishes until ctx is done.
func (r *Relay) Run(ctx context.Context) error {
	r.init()
	var pauses retry.Pauses
	for {
		n, err := r.Once(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			side := sideOf(err)
			errorsTotal.WithLabelValues(string(side)).Inc()
			msg := brief(err)
			r.mu.Lock()
			first := r.failing != side
			r.lastErr, r.failing = msg, side
			outage := r.outage.ID()
			r.mu.Unlock()
			if first {
				r.Log.Warn(warnings[side], correlation.LogKey, outage, "err", msg)
			}
			if !sleep(ctx, pauses.Next(), nil) {
				return nil
			}
			continue
		}
		pauses.Reset()
		if n == r.Batch {
			continue // more waiting
		}
		if !sleep(ctx, r.Poll, r.wake) {
			return nil
		}
		if n > 0 && r.Linger > 0 && !sleep(ctx, r.Linger, nil) {
			return nil
		}
	}
}

// Drain publishes batches until the outbox is empty, a produce fails or
// ctx ends (a batch under way then has StopGrace to finish), and returns
// how many messages it published: the gateway's last act once nothing
// more comes in.
func (r *Relay) Drain(ctx context.Context) (int, error) {
	total := 0
	for ctx.Err() == nil {
		n, err := r.Once(ctx)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
	return total, ctx.Err()
}

// Once publishes one batch and returns how many messages it published.
func (r *Relay) Once(ctx context.Context) (int, error) {
	r.init()
	claim, err := r.Outbox.ClaimOutbox(ctx, r.Batch)
	if err != nil {
		return 0, failedOn(SideOutbox, err)
	}
	msgs := claim.Messages
	if len(msgs) == 0 {
		return 0, nil
	}
	km := make([]kafka.Message, len(msgs))
	ids := make([]int64, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		if m.Render != "" {
			if err := r.render(m); err != nil {
				claim.Release()
				return 0, failedOn(SideRender, fmt.Errorf("outbox %d: %w", m.ID, err))
			}
		}
		hs := make([]protocol.Header, len(m.Headers))
		for j, h := range m.Headers {
			hs[j] = protocol.Header{Key: h.Key, Value: []byte(h.Value)}
		}
		km[i] = kafka.Message{Topic: m.Topic, Key: m.Key, Value: m.Value, Headers: hs, Time: m.CreatedAt}
		ids[i] = m.ID
	}
	// A batch under way is finished though the gateway stops: cut short,
	// its produce may well reach the broker while the outbox keeps it, and
	// the next start publishes it again (45 duplicates a graceful restart
	// under load, seen by kcat).
	pctx, stop := graceAfter(ctx, StopGrace)
	defer stop()
	if err := r.Producer.WriteMessages(pctx, km...); err != nil {
		claim.Release()
		return 0, failedOn(SideKafka, err)
	}
	// Acknowledged by the broker: only now is the message published. A crash
	// here re-sends the batch after restart (at least once).
	if err := claim.Done(pctx); err != nil {
		return 0, failedOn(SideOutbox, err)
	}
	publishedTotal.Add(float64(len(ids)))
	r.mu.Lock()
	if outage := r.outage.End(); outage != "" {
		r.Log.Info("publishing again; draining the outbox", correlation.LogKey, outage, "after", string(r.failing))
	}
	r.lastErr, r.failing, r.lastOK = "", "", time.Now()
	r.published += int64(len(ids))
	r.mu.Unlock()
	return len(ids), nil
}

// StopGrace is how long a batch under way may take to be published and
// marked once the relay is told to stop.
const StopGrace = 5 * time.Second

// graceAfter is a context that ends grace after ctx does (or when stop is
// called), for work begun before the stop that should finish.
func graceAfter(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	octx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	after := context.AfterFunc(ctx, func() { time.AfterFunc(grace, cancel) })
	return octx, func() { after(); cancel() }
}

// brief shortens kafka-go's WriteErrors, one error per message of the
// batch (500 copies of "Message Size Too Large" in one log line), to a count
// and the first.
func brief(err error) string {
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil {
				return fmt.Sprintf("%d of %d messages not written; first: %v", we.Count(), len(we), e)
			}
		}
	}
	return err.Error()
}

func (r *Relay) render(m *store.Message) error {
	if r.Render == nil {
		return fmt.Errorf("no renderer for %q", m.Render)
	}
	return r.Render(m)
}

func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}
