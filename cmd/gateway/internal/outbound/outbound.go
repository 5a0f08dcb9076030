// Package outbound delivers Perkeso's messages to partners reliably: a
// durable queue in the store, exponential backoff with jitter, a maximum of
// attempts then the dead letter, a circuit breaker and a concurrency limit
// per partner, and status events. It survives restarts: everything it knows
// is in the store.
package outbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/perkeso/jambatan/cmd/gateway/internal/correlation"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// StatusTopic is the default topic of delivery status events.
const StatusTopic = "perkeso.delivery-status.v1"

// Error classifies a failed attempt.
type Error struct {
	Retry      bool          // worth trying again
	RetryAfter time.Duration // the partner's Retry-After, if any
	Status     int           // HTTP status, when there was one
	Msg        string
}

func (e *Error) Error() string { return e.Msg }

// Sender delivers one message to one partner.
type Sender interface {
	Send(ctx context.Context, d *store.Delivery) (response []byte, status int, err error)
}

// StatusFunc turns a delivery's status change into an outbox message (a
// delivery-status event).
type StatusFunc = func(d *store.Delivery, state string, attempts int, errText string, at time.Time) (store.Message, error)

// Deliverer works the queue.
type Deliverer struct {
	Store    *store.DB
	Partners *partner.Registry
	// SenderFor builds the sender of a partner (called once per partner).
	SenderFor func(p *partner.Partner) (Sender, error)
	// Status, when set, turns a status change into an outbox message.
	Status StatusFunc
	// Reply, when set, turns an agency's answer to a RequestInformation
	// (d.Reply) into an outbox message for the back office (ReplyEvent).
	Reply func(d *store.Delivery, at time.Time) (store.Message, error)
	Log   *slog.Logger
	Now   func() time.Time
	Poll  time.Duration // default 200ms

	mu       sync.Mutex
	senders  map[string]Sender
	breakers map[string]*breaker
	sems     map[string]chan struct{}
	wake     chan struct{} // a round is wanted now (Wake)
	wg       sync.WaitGroup
}

func (dl *Deliverer) now() time.Time {
	if dl.Now != nil {
		return dl.Now()
	}
	return time.Now()
}

func (dl *Deliverer) init() {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if dl.senders == nil {
		dl.senders, dl.breakers, dl.sems = map[string]Sender{}, map[string]*breaker{}, map[string]chan struct{}{}
		dl.wake = make(chan struct{}, 1)
	}
	if dl.Log == nil {
		dl.Log = slog.Default()
	}
}

// Run delivers until ctx is done, then waits for attempts in flight. A
// round runs every Poll, and as soon as an attempt ends (Wake): a partner
// at its concurrency limit takes its next delivery when one of its
// attempts ends, not at the next poll (at the default concurrency of 2,
// a round every 200 ms delivered 10 messages a second to a partner that
// answers at once).
func (dl *Deliverer) Run(ctx context.Context) error {
	dl.init()
	poll := dl.Poll
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	defer dl.wg.Wait()
	t := time.NewTimer(poll)
	defer t.Stop()
	// A spell of failing rounds (the store away) logs its first failure and
	// each change of error, not every round's (five a second), under one id
	// with the line of the round that succeeds again.
	var outage correlation.Outage
	failed, lastErr := 0, ""
	for {
		err := dl.Round(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			if failed++; err.Error() != lastErr {
				lastErr = err.Error()
				dl.Log.Warn("delivery round failed; trying again each round", correlation.LogKey, outage.ID(), "err", err)
			}
		default:
			if id := outage.End(); id != "" {
				dl.Log.Info("delivery rounds succeed again", correlation.LogKey, id, "failed_rounds", failed)
				failed, lastErr = 0, ""
			}
		}
		t.Reset(poll)
		select {
		case <-ctx.Done():
			return nil
		case <-dl.wake:
		case <-t.C:
		}
	}
}

// Wake asks Run for a round now (an attempt has ended, a delivery was
// queued); wakes while a round runs ask for one more, not one each.
func (dl *Deliverer) Wake() {
	dl.init()
	select {
	case dl.wake <- struct{}{}:
	default: // one is asked for already
	}
}

// unknownQuota is how many due deliveries a round claims of a partner
// not registered, or without an endpoint: none is sent (each is
// dead-lettered, or held as an answer), so none waits for a slot.
const unknownQuota = 64

// quotas are how many due deliveries a round claims of each registered
// partner with an endpoint: as many as it may start, its free concurrency,
// one probe of a half-open breaker, none while its breaker is open. A
// delivery claimed and not started goes back (Reschedule) in a write.
func (dl *Deliverer) quotas(now time.Time) map[string]int {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	q := map[string]int{}
	for _, p := range dl.Partners.Receivers() {
		ep := p.Endpoint.WithDefaults()
		free := ep.Concurrency
		if sem := dl.sems[p.ID]; sem != nil && cap(sem) == ep.Concurrency {
			free -= len(sem)
		}
		if b := dl.breakers[p.ID]; b != nil && b.failures >= ep.BreakerFailures {
			if now.Before(b.openUntil) || b.probing {
				free = 0
			} else {
				free = min(free, 1)
			}
		}
		q[p.ID] = free
	}
	return q
}

// Round claims due deliveries and starts those their partner's breaker and
// concurrency limit allow.
func (dl *Deliverer) Round(ctx context.Context) error {
	dl.init()
	now := dl.now()
	quotas := dl.quotas(now)
	due, err := dl.Store.ClaimDueOf(ctx, now, dl.lease(), func(partnerID string) int {
		if q, ok := quotas[partnerID]; ok {
			return q
		}
		return unknownQuota
	})
	if err != nil {
		return err
	}
	// Those skipped for their partner's breaker or concurrency limit come
	// back later, all in one write; those the gateway's stopping leaves
	// unstarted, at once.
	var skipped []*store.Delivery
	var later []time.Time
	defer func() {
		if len(skipped) == 0 {
			return // most rounds: no write, and no timer for one
		}
		wctx, cancel := outliving(ctx)
		defer cancel()
		if err := dl.Store.Reschedule(wctx, skipped, later); err != nil {
			dl.Log.Warn("rescheduling skipped deliveries failed; their leases end them", "deliveries", len(skipped), "err", err)
		}
	}()
	for _, d := range due {
		if ctx.Err() != nil {
			skipped, later = append(skipped, d), append(later, now)
			continue
		}
		// Checked again as when it was queued: a request refused then is
		// a dead letter an operator may take back (its partner fixed by a
		// reload, its case shared since), and a reload may have changed
		// its partner since it was queued.
		r := requestOf(d)
		verr := r.Validate(dl.Partners)
		if d.MessageType == InformationReply { // a refused one an operator took back
			dl.hold(ctx, d, r, verr)
			continue
		}
		p, ok := dl.Partners.ByID(d.PartnerID)
		if !ok || p.Endpoint == nil {
			dl.finish(ctx, d, nil, 0, &Error{Msg: "partner " + d.PartnerID + " has no endpoint registered"})
			continue
		}
		if verr != nil {
			dl.finish(ctx, d, nil, 0, &Error{Msg: verr.Error()})
			continue
		}
		ep := p.Endpoint.WithDefaults()
		// Checked again when sent: a refused message an operator took
		// back, or one queued before its case was registered as another's.
		if ep.Protocol == "soap" && d.CaseID != "" && d.MessageType != "NotifyInjury" {
			if err := caseOf(ctx, dl.Store, d, p.Institution); err != nil {
				dl.finish(ctx, d, nil, 0, &Error{Retry: !errors.Is(err, store.ErrCaseNotShared), Msg: err.Error()})
				continue
			}
		}
		sem, retryAt, ok := dl.admit(p, ep, now)
		if !ok {
			skipped, later = append(skipped, d), append(later, retryAt)
			continue
		}
		dl.wg.Add(1)
		go func(d *store.Delivery, p *partner.Partner, ep partner.Endpoint) {
			defer dl.wg.Done()
			defer dl.Wake() // its slot is free: the partner's next may start
			defer func() { <-sem }()
			dl.attempt(ctx, d, p, ep)
		}(d, p, ep)
	}
	return nil
}

// lease is how long a claim holds a delivery: longer than any endpoint
// lets an attempt take, so that no second claim starts a second attempt
// beside one still under way (a fixed 30 s did, at a 60 s timeout).
func (dl *Deliverer) lease() time.Duration {
	l := 30 * time.Second
	for _, p := range dl.Partners.Receivers() {
		l = max(l, p.Endpoint.WithDefaults().Timeout+10*time.Second)
	}
	return l
}

// ResetSenders drops the cached senders (after a reload, which may bring a
// new registry or client certificate) and closes their idle kept-alive
// connections, which would otherwise stay open, unused, until they time
// out. An attempt under way finishes on its connection.
func (dl *Deliverer) ResetSenders() {
	dl.mu.Lock()
	old := dl.senders
	dl.senders = map[string]Sender{}
	dl.mu.Unlock()
	for _, s := range old {
		if c, ok := s.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	}
}

func (dl *Deliverer) sender(p *partner.Partner) (Sender, error) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if s, ok := dl.senders[p.ID]; ok {
		return s, nil
	}
	s, err := dl.SenderFor(p)
	if err == nil {
		dl.senders[p.ID] = s
	}
	return s, err
}

func (dl *Deliverer) attempt(ctx context.Context, d *store.Delivery, p *partner.Partner, ep partner.Endpoint) {
	s, err := dl.sender(p)
	if err != nil {
		// Nothing reached the partner, so the breaker learns nothing, but
		// if this was its half-open probe, the next delivery may probe.
		dl.unprobe(p)
		dl.finish(ctx, d, nil, 0, &Error{Msg: err.Error()})
		return
	}
	actx, cancel := context.WithTimeout(ctx, ep.Timeout)
	resp, status, err := s.Send(actx, d)
	cancel()
	var oe *Error
	if err != nil && !errors.As(err, &oe) {
		oe = &Error{Retry: true, Msg: err.Error()}
	}
	if err != nil && ctx.Err() != nil {
		dl.unprobe(p) // cut short by the stopping: it says nothing of the partner
		dl.cutShort(ctx, d, oe)
		return
	}
	// A refused message (4xx, client fault) is the message's fault, not
	// the partner's: it does not count against the breaker.
	dl.mu.Lock()
	dl.breakers[p.ID].result(err == nil || !oe.Retry, dl.now(), ep)
	dl.mu.Unlock()
	dl.finishWith(ctx, d, resp, status, oe, ep)
}

// OutcomeInterrupted is the message-log outcome of an attempt the
// gateway's stopping cut short.
const OutcomeInterrupted = "INTERRUPTED"

// cutShort puts back an attempt the gateway's stopping cut short while it
// was sending, as putBack does, and logs it: the partner may have had the
// message, and has it again, with the same idempotency key, at the next
// start. It does not count towards max_attempts.
func (dl *Deliverer) cutShort(ctx context.Context, d *store.Delivery, oe *Error) {
	id := attemptID(d)
	e := &store.Entry{CorrelationID: id, PartnerID: d.PartnerID, ReceivedAt: dl.now(), Route: "OUTBOUND " + d.MessageType,
		ContentType: "application/json", Body: d.Payload, Outcome: OutcomeInterrupted, SourceKey: d.Key}
	e.Verification = "outbound: cut short as the gateway stopped; sent again at its next start: " + errorText(oe.Msg)
	dl.putBack(ctx, d, id, e)
}

// unprobe lets p's next delivery be the probe of its half-open breaker,
// when an attempt that may have been the probe tells it nothing.
func (dl *Deliverer) unprobe(p *partner.Partner) {
	dl.mu.Lock()
	dl.breakers[p.ID].probing = false
	dl.mu.Unlock()
}

// putBack makes claimed d due at once, its attempts and last error as
// they were: the gateway is stopping, and will take it up again when it
// starts. id is the correlation id of the caller's other lines on d (an
// attempt's, or held answers'); e, when not nil, is logged with it.
func (dl *Deliverer) putBack(ctx context.Context, d *store.Delivery, id string, e *store.Entry) {
	wctx, cancel := outliving(ctx)
	defer cancel()
	var err error
	if e != nil {
		err = dl.Store.PutBack(wctx, d, dl.now(), e)
	} else {
		err = dl.Store.Reschedule(wctx, []*store.Delivery{d}, []time.Time{dl.now()})
	}
	if err != nil {
		dl.Log.Warn("putting back a delivery as the gateway stops failed; its lease ends it", "correlation_id", id, "delivery", d.ID, "partner", d.PartnerID, "err", err)
		return
	}
	dl.Log.Info("delivery put back: the gateway is stopping; it is taken up again when it starts", "correlation_id", id, "delivery", d.ID, "partner", d.PartnerID, "type", d.MessageType)
}

// attemptID is the correlation id of d's next attempt: its message-log
// entry's and its log lines'.
func attemptID(d *store.Delivery) string {
	return fmt.Sprintf("delivery-%d-%d", d.ID, d.Attempts+1)
}

// outliving is ctx for a write that outlives the deliverer's stopping,
// bounded by recordTimeout: a delivery made as the gateway began to stop
// is recorded, and a claim it cut short is put back, not left to its
// lease.
func outliving(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
}

// recordTimeout bounds each write outliving makes for.
const recordTimeout = 10 * time.Second

func (dl *Deliverer) finish(ctx context.Context, d *store.Delivery, resp []byte, status int, oe *Error) {
	dl.finishWith(ctx, d, resp, status, oe, partner.Endpoint{}.WithDefaults())
}

// maxErrorText bounds the text of a failed attempt wherever it goes: the
// delivery's last_error, the message log, the delivery-status event and
// the log line. It can quote the partner (an agency's fault reason, a kid
// in its receipt), up to the size of its answer, and an event over Kafka's
// message size would stop the relay for every event behind it.
const maxErrorText = 1024

// errorText is s, cut to maxErrorText bytes with a note of its full length.
func errorText(s string) string {
	if len(s) <= maxErrorText {
		return s
	}
	return fmt.Sprintf("%s… (cut: %d bytes in all)", clip(s, maxErrorText), len(s))
}

// clip is s cut to at most n bytes, at a character's start.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func (dl *Deliverer) finishWith(ctx context.Context, d *store.Delivery, resp []byte, status int, oe *Error, ep partner.Endpoint) {
	if oe != nil && ctx.Err() != nil {
		// A failure while the gateway stops is the stopping's (a case
		// lookup cut short, say), not the partner's nor the message's:
		// recorded, it would count towards max_attempts and hide the last
		// real error behind "context canceled" (as it did). Nothing was
		// sent (a send cut short is cutShort's). A refusal that happens to
		// end as the gateway stops is checked again when it starts.
		dl.putBack(ctx, d, attemptID(d), nil)
		return
	}
	if oe != nil {
		oe.Msg = errorText(oe.Msg)
	}
	now := dl.now()
	attempts := d.Attempts + 1
	var a store.Attempt
	state := "delivered"
	switch {
	case oe == nil:
		a.State = store.DeliveryDelivered
	case !oe.Retry || attempts >= ep.MaxAttempts:
		a.State, a.Error, state = store.DeliveryDead, oe.Msg, "dead-lettered"
	default:
		a.State, a.Error, state = store.DeliveryPending, oe.Msg, "retrying"
		// The partner's Retry-After (or an agency's RetryAfterSeconds) is
		// honoured up to max_backoff, which bounds every wait: a partner
		// cannot park its queue for longer than the operator allows.
		wait := Backoff(attempts, ep)
		if oe.RetryAfter > wait {
			wait = min(oe.RetryAfter, ep.MaxBackoff)
		}
		a.NextAt = now.Add(wait)
	}
	e := &store.Entry{CorrelationID: attemptID(d), PartnerID: d.PartnerID, ReceivedAt: now,
		Route: "OUTBOUND " + d.MessageType, ContentType: "application/json", Body: d.Payload, Verification: "outbound",
		Status: status, Outcome: map[string]string{"delivered": "DELIVERED", "retrying": "RETRYING", "dead-lettered": "DEAD_LETTERED"}[state],
		SourceKey: d.Key, Receipt: string(resp)}
	if oe != nil {
		e.Verification = "outbound: " + oe.Msg
	}
	if dl.Status != nil {
		if m, err := dl.Status(d, state, attempts, a.Error, now); err == nil {
			e.Outbox = []store.Message{m}
		}
	}
	if oe == nil && len(d.Reply) > 0 && dl.Reply != nil {
		if m, err := dl.Reply(d, now); err == nil {
			e.Outbox = append(e.Outbox, m)
		} else {
			dl.Log.Error("the agency's reply cannot be published; it is in the message log", "correlation_id", e.CorrelationID, "delivery", d.ID, "err", err)
		}
	}
	wctx, cancel := outliving(ctx)
	defer cancel()
	if err := dl.Store.RecordAttempt(wctx, d, a, e); err != nil {
		dl.Log.Error("recording a delivery attempt failed; it will be retried after its lease", "correlation_id", e.CorrelationID, "delivery", d.ID, "err", err)
		return
	}
	dl.Log.Info("delivery attempt", "correlation_id", e.CorrelationID, "delivery", d.ID, "partner", d.PartnerID, "type", d.MessageType, "state", state, "attempts", attempts, "status", status)
}
