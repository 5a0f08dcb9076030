package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/segmentio/kafka-go"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/kafkatest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/outbound"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

const outboundTopic = "perkeso.outbound.v1"

// requestBroker is a Kafka-protocol broker holding n outbound requests of
// partner p1 (keys over 50 cases, so all three partitions), counting the
// offset commits it is sent.
func requestBroker(t testing.TB, n int) (addr string, commits *atomic.Int64) {
	addr, commits = kafkatest.RefusingCommits(t, outboundTopic, 3, 0) // refusing none
	writeRequests(t, addr, 0, n)
	return addr, commits
}

// writeRequests writes the outbound requests from to from+n-1 of partner p1.
func writeRequests(t testing.TB, addr string, from, n int) {
	wr := &kafka.Writer{Addr: kafka.TCP(addr), Topic: outboundTopic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 1000, BatchTimeout: time.Millisecond}
	defer wr.Close()
	msgs := make([]kafka.Message, n)
	for j := range msgs {
		i := from + j
		msgs[j] = kafka.Message{Key: fmt.Appendf(nil, "case-%d", i%50),
			Value: fmt.Appendf(nil, `{"id":"req-%d","partner":"p1","messageType":"JSON","payload":{"n":%d}}`, i, i)}
	}
	if err := wr.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

func requestReader(addr string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, GroupID: "jambatan-outbound", Topic: outboundTopic,
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond, MinBytes: 1, MaxBytes: 16 << 20})
}

// requestConsumer is a consumer of rd's outbound requests into w's store,
// for partner p1 (whose endpoint is never called here), logging to log.
func (w *world) requestConsumer(rd *kafka.Reader, log *slog.Logger) *outbound.Consumer {
	return &outbound.Consumer{Reader: rd, Store: w.st, Log: log,
		Partners: partner.NewRegistry([]*partner.Partner{w.partner("https://partner.example/in", "json", partner.Endpoint{})})}
}

// consume runs c until stop is called, which returns Run's error.
//
// stop may be called more than once, so that a test can defer it for the
// paths that fail.
func consume(c *outbound.Consumer) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return sync.OnceValue(func() error { cancel(); return <-done })
}

// waitPending waits until n deliveries are pending.
func waitPending(t testing.TB, st *store.DB, n int) {
	t.Helper()
	gatewaytest.Until(t, 30*time.Second, 2*time.Millisecond, func() error {
		counts, err := st.DeliveryCounts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if counts[store.DeliveryPending] != int64(n) {
			return fmt.Errorf("%d of %d requests queued", counts[store.DeliveryPending], n)
		}
		return nil
	})
}

// TestConsumerCommitsByTheGroup: a burst of requests costs one offset
// commit per group of them, not one round trip to the broker per request;
// and every queued request's offset is committed by the time the consumer
// is idle, or stops, so none is read again by the next consumer.
func TestConsumerCommitsByTheGroup(t *testing.T) {
	for _, tc := range []struct {
		name        string
		requests    int
		linger      time.Duration
		stop        bool // stopped right after queueing, before any linger ends
		maxCommits  int64
		minCommits  int64
		description string
	}{
		{name: "ok/burst", requests: 300, maxCommits: 30, minCommits: 3,
			description: "300 requests, at most 100 a commit (one each: 300)"},
		{name: "ok/committed-on-stop", requests: 5, linger: time.Hour, stop: true, maxCommits: 1, minCommits: 1,
			description: "queued, then stopped: their offsets committed as it stops"},
		{name: "ok/committed-when-idle", requests: 5, maxCommits: 1, minCommits: 1,
			description: "a short burst, then nothing: committed once the linger ends, before the stop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, commits := requestBroker(t, tc.requests)
			w := newWorld(t)
			rd := requestReader(addr)
			c := w.requestConsumer(rd, slog.New(slog.DiscardHandler))
			c.CommitLinger = tc.linger
			stop := consume(c)
			waitPending(t, w.st, tc.requests)
			if !tc.stop {
				time.Sleep(200 * time.Millisecond) // idle: the linger ends
				if n := commits.Load(); n < tc.minCommits {
					t.Errorf("%d offset commits while idle, want at least %d: a consumer that stays up must not leave its offsets for its stop", n, tc.minCommits)
				}
			}
			if err := stop(); err != nil {
				t.Fatalf("Run: %v", err)
			}
			rd.Close()
			if n := commits.Load(); n < tc.minCommits || n > tc.maxCommits {
				t.Errorf("%d offset commits, want %d to %d (%s)", n, tc.minCommits, tc.maxCommits, tc.description)
			}
			// The next consumer of the group reads nothing again.
			next := requestReader(addr)
			defer next.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if m, err := next.FetchMessage(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("the next consumer read partition %d offset %d again (err %v): its offset was not committed", m.Partition, m.Offset, err)
			}
		})
	}
}

// TestConsumerGoesOnAfterIdle: a consumer that went idle, and committed,
// queues what comes after. (A consumer that returned from Run once its idle
// commit succeeded outlived every other test: they all stop it idle.)
func TestConsumerGoesOnAfterIdle(t *testing.T) {
	addr, commits := requestBroker(t, 5)
	w := newWorld(t)
	rd := requestReader(addr)
	defer rd.Close()
	c := w.requestConsumer(rd, slog.New(slog.DiscardHandler))
	stop := consume(c)
	waitPending(t, w.st, 5)
	gatewaytest.Until(t, 10*time.Second, 5*time.Millisecond, func() error {
		if commits.Load() == 0 { // idle: the first five committed
			return errors.New("the first five were never committed")
		}
		return nil
	})
	writeRequests(t, addr, 5, 5)
	waitPending(t, w.st, 10)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestConsumerQueueRetried: a request the store refuses for a while is
// queued once it takes it, the consumer still running, and every request
// after it too. The lines of its failures and the one of its queueing at
// last share one correlation id of their own.
func TestConsumerQueueRetried(t *testing.T) {
	addr, _ := requestBroker(t, 5)
	w := newWorld(t)
	if _, err := w.st.DB().Exec(`ALTER TABLE deliveries RENAME TO deliveries_away`); err != nil {
		t.Fatal(err)
	}
	rd := requestReader(addr)
	defer rd.Close()
	var logged gatewaytest.SyncBuffer
	c := w.requestConsumer(rd, slog.New(slog.NewTextHandler(&logged, nil)))
	stop := consume(c)
	gatewaytest.Until(t, 20*time.Second, 10*time.Millisecond, func() error {
		if strings.Count(logged.String(), "not queued; trying again") < 2 {
			return fmt.Errorf("no two failures logged:\n%s", logged.String())
		}
		return nil
	})
	if _, err := w.st.DB().Exec(`ALTER TABLE deliveries_away RENAME TO deliveries`); err != nil {
		t.Fatal(err)
	}
	waitPending(t, w.st, 5)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	out := logged.String()
	ids := regexp.MustCompile(`msg="outbound request (?:not queued; trying again|queued after failures)" correlation_id=([0-9a-f]{32})`).FindAllStringSubmatch(out, -1)
	if len(ids) < 3 || !strings.Contains(out, `msg="outbound request queued after failures" correlation_id=`+ids[0][1]) {
		t.Fatalf("the failures' and the queueing's lines: ids %q, want one for all, the queueing's among them:\n%s", ids, out)
	}
	for _, id := range ids {
		if id[1] != ids[0][1] {
			t.Fatalf("the failures' and the queueing's lines: ids %q, want one for all:\n%s", ids, out)
		}
	}
}

// TestConsumerServeRestarts: a Run the reader ends with an error (here a
// closed reader's) is started again after the pause, the restarts logged
// under one correlation id, or each under its own once the Runs before
// them count as steady; a stopping consumer does not wait out the pause
// (an hour here).
func TestConsumerServeRestarts(t *testing.T) {
	addr, _ := requestBroker(t, 1)
	w := newWorld(t)
	for _, tc := range []struct {
		name     string
		pause    time.Duration
		restarts int           // lines to wait for before stopping
		steady   time.Duration // a failure after a Run longer than this starts a new id
		distinct bool          // each restart line under an id of its own, else all under one
	}{
		{"ok/restarts-share-an-id", 10 * time.Millisecond, 3, time.Minute, false},
		{"ok/stop-cuts-the-pause", time.Hour, 1, time.Minute, false},
		{"ok/a-failure-after-a-steady-run-starts-an-id", 10 * time.Millisecond, 3, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer outbound.SetSteadyRun(tc.steady)()
			rd := requestReader(addr)
			_ = rd.Close()
			var logged gatewaytest.SyncBuffer
			c := w.requestConsumer(rd, slog.New(slog.NewTextHandler(&logged, nil)))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { c.Serve(ctx, tc.pause); close(done) }()
			restart := regexp.MustCompile(`msg="outbound consumer stopped; restarting" correlation_id=([0-9a-f]{32}) `)
			gatewaytest.Until(t, 20*time.Second, 5*time.Millisecond, func() error {
				if out := logged.String(); len(restart.FindAllString(out, -1)) < tc.restarts {
					return fmt.Errorf("fewer than %d restarts logged:\n%s", tc.restarts, out)
				}
				return nil
			})
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("Serve still running 30 s after its context ended (pause %v)", tc.pause)
			}
			lines := restart.FindAllStringSubmatch(logged.String(), -1)
			ids := map[string]bool{}
			for _, l := range lines {
				ids[l[1]] = true
			}
			want := 1
			if tc.distinct {
				want = len(lines)
			}
			if len(ids) != want {
				t.Fatalf("%d restart lines under %d ids, want %d:\n%s", len(lines), len(ids), want, logged.String())
			}
		})
	}
}

// TestConsumerServeRunningAgain: a Run without restarts says nothing once
// steady. A refused heartbeat ends the reader's group generation, and three
// refused joins (its MaxAttempts) then fail the Run; the Run Serve starts
// after the pause reads on, and once it has lasted the steady minute (100 ms
// here) a line says the consumer runs again, under the restart's id, with
// the restarts the spell took. Without it, a spell's last line was its last
// restart's warning. A second spell has an id and a count of its own.
func TestConsumerServeRunningAgain(t *testing.T) {
	defer outbound.SetSteadyRun(100 * time.Millisecond)()
	var refuse kafkatest.GroupRefusals // none until the spells below
	addr := kafkatest.RefusingGroup(t, outboundTopic, 3, &refuse)
	writeRequests(t, addr, 0, 5)
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, GroupID: "jambatan-outbound", Topic: outboundTopic,
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond, MaxAttempts: 3,
		JoinGroupBackoff: 10 * time.Millisecond, HeartbeatInterval: 50 * time.Millisecond,
		RebalanceTimeout: time.Second}) // the broker waits this long for an ended generation's member to join again
	t.Cleanup(func() { rd.Close() })
	w := newWorld(t)
	var logged gatewaytest.SyncBuffer
	c := w.requestConsumer(rd, slog.New(slog.NewTextHandler(&logged, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Serve(ctx, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	waitPending(t, w.st, 5)
	again := regexp.MustCompile(`msg="outbound consumer running again" correlation_id=([0-9a-f]{32}) restarts=(\d+)`)
	waitAgain := func(n int) {
		t.Helper()
		gatewaytest.Until(t, 20*time.Second, 5*time.Millisecond, func() error {
			if got := len(again.FindAllString(logged.String(), -1)); got < n {
				return fmt.Errorf("%d lines say the consumer runs again, want %d:\n%s", got, n, logged.String())
			}
			return nil
		})
	}
	time.Sleep(300 * time.Millisecond) // three steady minutes
	if out := logged.String(); out != "" {
		t.Fatalf("ok/steady-without-restarts: logged\n%s", out)
	}
	for spell := 1; spell <= 2; spell++ {
		refuse.Joins.Store(3)
		refuse.Heartbeats.Store(1)
		waitAgain(spell)
	}
	out := logged.String()
	restarts := regexp.MustCompile(`msg="outbound consumer stopped; restarting" correlation_id=([0-9a-f]{32}) `).FindAllStringSubmatch(out, -1)
	ran := again.FindAllStringSubmatch(out, -1)
	if len(restarts) != 2 || len(ran) != 2 || restarts[0][1] == restarts[1][1] {
		t.Fatalf("want two spells of one restart each, under ids of their own:\n%s", out)
	}
	for i := range 2 {
		if ran[i][1] != restarts[i][1] || ran[i][2] != "1" {
			t.Fatalf("spell %d: want its restart's id and restarts=1:\n%s", i+1, out)
		}
	}
	writeRequests(t, addr, 5, 5)
	waitPending(t, w.st, 10)
}

// TestDeliveryRoundsOutage: rounds that fail while the store is away (five
// a second at the default poll) log the first failure, not each round's,
// and the round that succeeds again says how many failed, under the same
// id; the queued delivery is made then. A second, shorter spell logs its
// own first failure under an id of its own, and counts its own rounds.
func TestDeliveryRoundsOutage(t *testing.T) {
	w := newWorld(t)
	srv := w.server(t, func(rw http.ResponseWriter, r *http.Request) { _, _ = rw.Write([]byte(`{}`)) })
	p := w.partner(srv.URL, "json", partner.Endpoint{})
	dl := w.deliverer(p) // a round every 5 ms
	var logged gatewaytest.SyncBuffer
	dl.Log = slog.New(slog.NewTextHandler(&logged, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = dl.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for i, away := range []time.Duration{200 * time.Millisecond, 50 * time.Millisecond} {
		if _, err := w.st.DB().Exec(`ALTER TABLE deliveries RENAME TO deliveries_away`); err != nil {
			t.Fatal(err)
		}
		time.Sleep(away) // some 40 rounds, then 10
		if _, err := w.st.DB().Exec(`ALTER TABLE deliveries_away RENAME TO deliveries`); err != nil {
			t.Fatal(err)
		}
		w.enqueue(t, fmt.Sprintf("req-%d", i), "JSON", `{}`)
		gatewaytest.Until(t, 10*time.Second, 5*time.Millisecond, func() error {
			c, err := w.st.DeliveryCounts(context.Background())
			if err != nil || c[store.DeliveryDelivered] != int64(i+1) || strings.Count(logged.String(), "succeed again") != i+1 {
				return fmt.Errorf("not delivered after the store came back: %v %v\n%s", c, err, logged.String())
			}
			return nil
		})
	}
	out := logged.String()
	failed := regexp.MustCompile(`msg="delivery round failed; trying again each round" correlation_id=([0-9a-f]{32})`).FindAllStringSubmatch(out, -1)
	again := regexp.MustCompile(`msg="delivery rounds succeed again" correlation_id=([0-9a-f]{32}) failed_rounds=(\d+)`).FindAllStringSubmatch(out, -1)
	if len(failed) != 2 || len(again) != 2 || again[0][1] != failed[0][1] || again[1][1] != failed[1][1] || failed[0][1] == failed[1][1] {
		t.Fatalf("want each spell's one failure line and the line of its end under an id of its own:\n%s", out)
	}
	first, _ := strconv.Atoi(again[0][2])
	second, _ := strconv.Atoi(again[1][2])
	if first < 5 || second < 1 || second >= first {
		t.Fatalf("failed rounds counted %d in 200 ms and %d in 50 ms of rounds every 5 ms:\n%s", first, second, out)
	}
}

// TestQueuedIsSentAtOnce: a request the consumer queues is attempted at
// once, not at the deliverer's next poll (an hour away here; 200 ms by
// default, which every request waited for until then).
func TestQueuedIsSentAtOnce(t *testing.T) {
	w := newWorld(t)
	srv := w.server(t, func(rw http.ResponseWriter, r *http.Request) { _, _ = rw.Write([]byte(`{}`)) })
	p := w.partner(srv.URL, "json", partner.Endpoint{})
	dl := w.deliverer(p)
	dl.Poll = time.Hour
	c := &outbound.Consumer{Store: w.st, Partners: partner.NewRegistry([]*partner.Partner{p}), Log: slog.New(slog.DiscardHandler), Queued: dl.Wake}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = dl.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(100 * time.Millisecond) // the deliverer's first round, with nothing queued, is over
	if err := c.Queue(ctx, kafka.Message{Topic: outboundTopic, Value: []byte(`{"id":"now-1","partner":"p1","messageType":"JSON","payload":{}}`)}); err != nil {
		t.Fatal(err)
	}
	gatewaytest.Until(t, 10*time.Second, 5*time.Millisecond, func() error {
		c, err := w.st.DeliveryCounts(context.Background())
		if err != nil || c[store.DeliveryDelivered] != 1 {
			return fmt.Errorf("the request was not sent: %v %v", c, err)
		}
		return nil
	})
}

// BenchmarkConsumer: the time per request to queue a burst of b.N
// requests from the broker into the store (SQLite), their offsets
// committed.
func BenchmarkConsumer(b *testing.B) {
	addr, _ := requestBroker(b, b.N)
	w := newWorld(b)
	rd := requestReader(addr)
	b.Cleanup(func() { rd.Close() })
	c := w.requestConsumer(rd, slog.New(slog.DiscardHandler))
	b.ResetTimer()
	stop := consume(c)
	waitPending(b, w.st, b.N)
	b.StopTimer()
	if err := stop(); err != nil {
		b.Fatal(err)
	}
}

// nothingLeft checks that a new reader of the group finds nothing to read:
// every offset was committed.
func nothingLeft(t *testing.T, addr string) {
	t.Helper()
	again := requestReader(addr)
	defer again.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if m, err := again.FetchMessage(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the group's next reader: %v, read %s again (partition %d, offset %d)", err, m.Value, m.Partition, m.Offset)
	}
}

// TestConsumerRidesOutRefusedCommits: a commit the broker refuses (here
// twice: kafka-go tries each three times) does not stop Run: it owes
// those offsets and commits them once the broker takes commits again,
// with no record following; a later reader of the group finds nothing to
// read. Earlier builds stopped Run on the first refusal (the gateway
// started it again a second later, reading nothing meanwhile), and before
// that left the offsets uncommitted while the queue stayed idle.
func TestConsumerRidesOutRefusedCommits(t *testing.T) {
	addr, committed := kafkatest.RefusingCommits(t, outboundTopic, 3, 6)
	writeRequests(t, addr, 0, 5)
	w := newWorld(t)
	rd := requestReader(addr)
	var logged gatewaytest.SyncBuffer
	cons := w.requestConsumer(rd, slog.New(slog.NewTextHandler(&logged, nil)))

	stop := consume(cons)
	waitPending(t, w.st, 5)
	defer stop() // when the wait fails
	gatewaytest.Until(t, 20*time.Second, 5*time.Millisecond, func() error {
		if committed.Load() == 0 {
			return fmt.Errorf("the refused offsets were never committed:\n%s", logged.String())
		}
		return nil
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v, want it to ride the refusals out", err)
	}
	rd.Close()
	if out := logged.String(); strings.Count(out, "outbound offsets not committed") != 1 || strings.Count(out, "outbound offsets committed again") != 1 {
		t.Fatalf("the refusals logged:\n%s", out)
	}

	nothingLeft(t, addr)
}

// TestConsumerCarriesOwedOffsets: a Run stopped while the broker still
// refuses its commits (its last try as it returns refused too) leaves the
// offsets it owes to the next Run on the consumer, which commits them:
// the reader reads on where it was, so nothing else would, and every
// restart would read those requests again.
func TestConsumerCarriesOwedOffsets(t *testing.T) {
	addr, committed := kafkatest.RefusingCommits(t, outboundTopic, 3, 12) // Run's first commit, perhaps a second and a third, and its last as it returns
	writeRequests(t, addr, 0, 5)
	w := newWorld(t)
	rd := requestReader(addr)
	defer rd.Close()
	var logged gatewaytest.SyncBuffer
	cons := w.requestConsumer(rd, slog.New(slog.NewTextHandler(&logged, nil)))

	stop := consume(cons)
	defer stop() // when the wait fails
	gatewaytest.Until(t, 20*time.Second, time.Millisecond, func() error {
		if !strings.Contains(logged.String(), "outbound offsets not committed") {
			return fmt.Errorf("no commit refused:\n%s", logged.String())
		}
		return nil
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := committed.Load(); n != 0 {
		t.Fatalf("%d commits taken while the broker refused them", n)
	}
	stop = consume(cons) // as the gateway runs it again
	defer stop()         // when the wait fails
	gatewaytest.Until(t, 20*time.Second, 5*time.Millisecond, func() error {
		if committed.Load() == 0 {
			return errors.New("the owed offsets were never committed by the next Run")
		}
		return nil
	})
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	nothingLeft(t, addr)
}

// TestConsumerQueue: a request from perkeso.outbound.v1 is queued; one that
// cannot be delivered is a dead letter at once; one that reuses a queued
// id with content that cannot be delivered leaves the queued delivery as it
// was (it used to dead-letter it).
func TestConsumerQueue(t *testing.T) {
	w := newWorld(t)
	p := w.partner("https://partner.example/in", "json", partner.Endpoint{})
	var logged strings.Builder
	c := &outbound.Consumer{Store: w.st, Partners: partner.NewRegistry([]*partner.Partner{p}), Log: slog.New(slog.NewTextHandler(&logged, nil))}
	queue := func(value string) {
		t.Helper()
		logged.Reset()
		if err := c.Queue(context.Background(), kafka.Message{Topic: "perkeso.outbound.v1", Value: []byte(value)}); err != nil {
			t.Fatal(err)
		}
	}
	byKey := func() map[string]*store.Delivery {
		ds, err := w.st.DeliveriesOf(context.Background(), "", "", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]*store.Delivery{}
		for _, d := range ds {
			m[d.Key] = d
		}
		return m
	}
	queue(`{"id":"req-ok","partner":"p1","messageType":"JSON","payload":{"n":1}}`)
	queue(`{"id":"req-nobody","partner":"nobody","messageType":"JSON","payload":{"n":2}}`)
	queue(`{"id":"req-ok","partner":"p1","messageType":"NotifyDecision","payload":{"n":3}}`)
	queue(`{"id":"req-ok","partner":"p1","messageType":"JSON","payload":{ "n": 1 }}`) // a repeat, spaced otherwise
	if logged.Len() != 0 {
		t.Fatalf("a repeat logged %s", logged.String())
	}
	queue(`{"id":"req-ok","partner":"p1","messageType":"JSON","payload":{"n":4}}`) // deliverable, but the id is taken
	if !strings.Contains(logged.String(), "level=WARN") || !strings.Contains(logged.String(), "queued already with another partner, type, case or payload") ||
		!strings.Contains(logged.String(), "correlation_id=outbound-req-ok") {
		t.Fatalf("a reused id with other content logged %q", logged.String())
	}
	ds := byKey()
	if d, err := w.st.DeliveryByKey(context.Background(), "req-ok"); err != nil || d.State != store.DeliveryPending || string(d.Payload) != `{"n":1}` || d.Attempts != 0 {
		t.Fatalf("the queued request: %+v %v", d, err)
	}
	if d := ds["req-nobody"]; d == nil || d.State != store.DeliveryDead || !strings.Contains(d.LastError, `unknown partner "nobody"`) {
		t.Fatalf("the refused request: %+v", d)
	}
	if len(ds) != 2 {
		t.Fatalf("%d deliveries, want 2", len(ds))
	}

	// Fields too long to repeat in every status event: a request with a
	// long id is kept under its record's place, one naming a long partner
	// with the name cut, each reason bounded.
	long := strings.Repeat("é", 60_000)
	queue(`{"id":"` + strings.Repeat("x", outbound.MaxField+1) + `","partner":"p1","messageType":"JSON","payload":{}}`)
	queue(`{"id":"req-long-partner","partner":"` + long + `","messageType":"JSON","payload":{}}`)
	ds = byKey()
	if d := ds["kafka:perkeso.outbound.v1:0:0"]; d == nil || d.State != store.DeliveryDead || d.LastError != "id is over 256 bytes" {
		t.Fatalf("the request with a long id: %+v", d)
	}
	d := ds["req-long-partner"]
	if d == nil || d.State != store.DeliveryDead || len(d.PartnerID) > outbound.MaxField || !utf8.ValidString(d.PartnerID) ||
		len(d.LastError) > 1100 || !strings.HasSuffix(d.LastError, fmt.Sprintf("(cut: %d bytes in all)", len(`unknown partner ""`)+len(long))) {
		t.Fatalf("the request naming a long partner: partner %d bytes, last error %d bytes: %.80q…%q", len(d.PartnerID), len(d.LastError), d.LastError, d.LastError[max(0, len(d.LastError)-40):])
	}
	// An id of exactly the bound is its own: the dead letter is kept under it.
	edge := strings.Repeat("y", outbound.MaxField)
	queue(`{"id":"` + edge + `","partner":"nobody","messageType":"JSON","payload":{}}`)
	if d := byKey()[edge]; d == nil || d.State != store.DeliveryDead || !strings.Contains(d.LastError, `unknown partner "nobody"`) {
		t.Fatalf("the refused request with an id of %d bytes: %+v", outbound.MaxField, d)
	}

	// A request that is not strict JSON is a dead letter under its id,
	// not a delivery of what encoding/json made of it (the last partner).
	queue(`{"id":"req-twice","partner":"nobody","partner":"p1","messageType":"JSON","payload":{}}`)
	if d := byKey()["req-twice"]; d == nil || d.State != store.DeliveryDead || !strings.Contains(d.LastError, `duplicate member name "partner"`) {
		t.Fatalf("the request naming two partners: %+v", d)
	}
}

// failingQueue is the store, but for the first failures writes of the
// delivery key, which fail as a full disk would.
type failingQueue struct {
	outbound.DeliveryQueue
	key      string
	failures atomic.Int32
}

func (q *failingQueue) Enqueue(ctx context.Context, d *store.Delivery, at time.Time) (bool, error) {
	if d.Key == q.key && q.failures.Add(-1) >= 0 {
		return false, errors.New("database or disk is full")
	}
	return q.DeliveryQueue.Enqueue(ctx, d, at)
}

// TestRepeats: a request whose id is queued is a repeat when it asks for
// the same delivery, whatever its JSON spacing; a NotifyInjury also once
// the agency assigned its case.
func TestRepeats(t *testing.T) {
	queued := &store.Delivery{PartnerID: "th-sso", MessageType: "NotifyDecision", CaseID: "MY:PERKESO:XB-1", Payload: []byte(`{"outcome":"ACCEPTED"}`)}
	notified := &store.Delivery{PartnerID: "th-sso", MessageType: "NotifyInjury", CaseID: "TH:SSO:C-77", Payload: []byte(`{"record":{}}`)}
	for _, tc := range []struct {
		name   string
		r      outbound.Request
		d      *store.Delivery
		repeat bool
	}{
		{"ok/same", outbound.Request{Partner: "th-sso", MessageType: "NotifyDecision", CaseID: "MY:PERKESO:XB-1", Payload: []byte(`{"outcome":"ACCEPTED"}`)}, queued, true},
		{"ok/spaced-otherwise", outbound.Request{Partner: "th-sso", MessageType: "NotifyDecision", CaseID: "MY:PERKESO:XB-1", Payload: []byte(`{ "outcome" : "ACCEPTED" }`)}, queued, true},
		{"ok/notification-its-case-assigned", outbound.Request{Partner: "th-sso", MessageType: "NotifyInjury", Payload: []byte(`{"record":{}}`)}, notified, true},
		{"fail/other-payload", outbound.Request{Partner: "th-sso", MessageType: "NotifyDecision", CaseID: "MY:PERKESO:XB-1", Payload: []byte(`{"outcome":"REJECTED"}`)}, queued, false},
		{"fail/other-case", outbound.Request{Partner: "th-sso", MessageType: "NotifyDecision", CaseID: "MY:PERKESO:XB-2", Payload: []byte(`{"outcome":"ACCEPTED"}`)}, queued, false},
		{"fail/no-case", outbound.Request{Partner: "th-sso", MessageType: "NotifyDecision", Payload: []byte(`{"outcome":"ACCEPTED"}`)}, queued, false},
		{"fail/other-type", outbound.Request{Partner: "th-sso", MessageType: "RequestInformation", CaseID: "MY:PERKESO:XB-1", Payload: []byte(`{"outcome":"ACCEPTED"}`)}, queued, false},
		{"fail/other-partner", outbound.Request{Partner: "bn-spk", MessageType: "NotifyDecision", CaseID: "MY:PERKESO:XB-1", Payload: []byte(`{"outcome":"ACCEPTED"}`)}, queued, false},
		{"fail/notification-other-record", outbound.Request{Partner: "th-sso", MessageType: "NotifyInjury", Payload: []byte(`{"record":{"a":1}}`)}, notified, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.Repeats(tc.d); got != tc.repeat {
				t.Fatalf("Repeats = %v, want %v", got, tc.repeat)
			}
		})
	}
}

// TestConsumerRetriesWhatTheStoreRefused: a request the store cannot take
// for a while is queued once it can, not skipped: the reader has moved
// past it, and the next record's commit would have committed it as done.
// The consumer runs against the embedded Kafka-protocol broker, restarted
// on an error as the gateway restarts it.
func TestConsumerRetriesWhatTheStoreRefused(t *testing.T) {
	const topic = "perkeso.outbound.v1"
	b := kafkatest.Broker(t, "", topic)
	wr := &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll}
	for i := 1; i <= 3; i++ { // one key: one partition, in this order
		v := fmt.Sprintf(`{"id":"req-%d","partner":"p1","messageType":"JSON","payload":{"n":%d}}`, i, i)
		if err := wr.WriteMessages(context.Background(), kafka.Message{Key: []byte("case-1"), Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	wr.Close()

	w := newWorld(t)
	q := &failingQueue{DeliveryQueue: w.st, key: "req-2"}
	q.failures.Store(2)
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Addr}, GroupID: "jambatan-outbound", Topic: topic,
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	t.Cleanup(func() { rd.Close() })
	c := &outbound.Consumer{Reader: rd, Store: q, Log: slog.New(slog.DiscardHandler),
		Partners: partner.NewRegistry([]*partner.Partner{w.partner("https://partner.example/in", "json", partner.Endpoint{})})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := c.Run(ctx); err != nil {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	defer func() { cancel(); <-done }()
	gatewaytest.Until(t, 20*time.Second, 20*time.Millisecond, func() error {
		ds, err := w.st.DeliveriesOf(context.Background(), "", store.DeliveryPending, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 3 {
			return fmt.Errorf("%d of 3 requests queued (the store refused req-2 twice, then took it)", len(ds))
		}
		return nil
	})
	if n := q.failures.Load(); n >= 0 {
		t.Fatalf("req-2 was refused %d times, not 2", 2-n)
	}
}

// TestConsumerRefusesAnswers: an InformationReply on a case its agency
// does not share, or for a partner that is not an agency, is dead-lettered
// with the reason, not retried as if the store had failed.
func TestConsumerRefusesAnswers(t *testing.T) {
	w := newWorld(t)
	ag := w.agency()
	ins := w.partner("https://partner.example/in", "json", partner.Endpoint{})
	c := &outbound.Consumer{Store: w.st, Partners: partner.NewRegistry([]*partner.Partner{ag, ins}), Log: slog.New(slog.DiscardHandler)}
	items := `{"items":[{"code":"POLICE_REPORT","outcome":"NOT_HELD"}]}`
	for i, tc := range []struct{ partner, want string }{
		{"th-sso", `caseId "TH:SSO:C-404": the case is unknown, or not shared with the partner's institution`},
		{"p1", `an InformationReply is held for an agency, and partner "p1" is not one`},
	} {
		v := fmt.Sprintf(`{"id":"ans-%d","partner":%q,"messageType":"InformationReply","caseId":"TH:SSO:C-404","payload":%s}`, i, tc.partner, items)
		if err := c.Queue(context.Background(), kafka.Message{Topic: "perkeso.outbound.v1", Value: []byte(v)}); err != nil {
			t.Fatalf("%s: %v", tc.partner, err)
		}
		d, err := w.st.DeliveryByKey(context.Background(), fmt.Sprintf("ans-%d", i))
		if err != nil || d.State != store.DeliveryDead || d.LastError != tc.want {
			t.Fatalf("%s: %+v %v", tc.partner, d, err)
		}
	}
}

// loggingQueue is the store, noting the message-log entries the consumer
// writes without a delivery.
type loggingQueue struct {
	outbound.DeliveryQueue
	mu     sync.Mutex
	logged []*store.Entry
}

func (q *loggingQueue) Log(ctx context.Context, e *store.Entry) error {
	q.mu.Lock()
	q.logged = append(q.logged, e)
	q.mu.Unlock()
	return q.DeliveryQueue.Log(ctx, e)
}

func (q *loggingQueue) entries() []*store.Entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.logged)
}

// TestRequestSignatures: with the back office's keys configured, a record
// on the outbound topic becomes a delivery only with exactly one detached
// JWS by one of them over its value. Any other is logged as refused, and no
// delivery is made of it, not even a dead letter an operator's retry would
// send with Perkeso's signature.
func TestRequestSignatures(t *testing.T) {
	const topic = "perkeso.outbound.v1"
	b := kafkatest.Broker(t, "", topic)
	backOffice, _ := receipt.NewES256Key("bo-2026-1")
	stranger, _ := receipt.NewES256Key("bo-2026-1") // the same kid, another key
	pub, _ := jwk.PublicKeyOf(backOffice)
	keys := jwk.NewSet()
	_ = keys.AddKey(pub)
	detached := func(key jwk.Key, value string, extra func(jws.Headers)) string {
		h := jws.NewHeaders()
		kid, _ := key.KeyID()
		_ = h.Set(jws.KeyIDKey, kid)
		if extra != nil {
			extra(h)
		}
		c, err := jws.Sign([]byte(value), jws.WithKey(jwa.ES256(), key, jws.WithProtectedHeaders(h)))
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(string(c), ".")
		return parts[0] + ".." + parts[2]
	}
	request := func(id string) string {
		return fmt.Sprintf(`{"id":%q,"partner":"p1","messageType":"JSON","payload":{"n":1}}`, id)
	}
	strangerPub, _ := jwk.PublicKeyOf(stranger)
	cases := []struct {
		name    string
		value   string
		headers []string // values of the "jws" headers
		reason  string   // "" when the request is queued
	}{
		{"ok/signed", request("req-ok"), []string{detached(backOffice, request("req-ok"), nil)}, ""},
		{"fail/unsigned", request("req-unsigned"), nil, "none"},
		{"fail/another-key", request("req-stranger"), []string{detached(stranger, request("req-stranger"), nil)}, "signature"},
		{"fail/value-altered", request("req-altered"), []string{detached(backOffice, request("req-other"), nil)}, "signature"},
		{"fail/two-signatures", request("req-two"), []string{detached(backOffice, request("req-two"), nil), detached(backOffice, request("req-two"), nil)}, "exactly one"},
		{"fail/key-in-header", request("req-jwk"), []string{detached(stranger, request("req-jwk"), func(h jws.Headers) { _ = h.Set(jws.JWKKey, strangerPub) })}, "signature"}, // the key it names is never used
	}
	wr := &kafka.Writer{Addr: kafka.TCP(b.Addr), Topic: topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll}
	for _, tc := range cases {
		m := kafka.Message{Key: []byte("case-1"), Value: []byte(tc.value)}
		for _, h := range tc.headers {
			m.Headers = append(m.Headers, kafka.Header{Key: outbound.RequestSignatureHeader, Value: []byte(h)})
		}
		if err := wr.WriteMessages(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	// A signed request without its id, twice under another ce_id: the id
	// would be the unsigned header's, and each copy a delivery.
	idless := `{"partner":"p1","messageType":"JSON","payload":{"n":2}}`
	for _, ceID := range []string{"copy-1", "copy-2"} {
		if err := wr.WriteMessages(context.Background(), kafka.Message{Key: []byte("case-1"), Value: []byte(idless), Headers: []kafka.Header{
			{Key: outbound.RequestSignatureHeader, Value: []byte(detached(backOffice, idless, nil))}, {Key: "ce_id", Value: []byte(ceID)}}}); err != nil {
			t.Fatal(err)
		}
	}
	wr.Close()

	w := newWorld(t)
	q := &loggingQueue{DeliveryQueue: w.st}
	rd := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{b.Addr}, GroupID: "jambatan-outbound", Topic: topic,
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	t.Cleanup(func() { rd.Close() })
	var refused atomic.Int32
	c := &outbound.Consumer{Reader: rd, Store: q, Log: slog.New(slog.DiscardHandler), RequestKeys: keys, Refused: func() { refused.Add(1) },
		Partners: partner.NewRegistry([]*partner.Partner{w.partner("https://partner.example/in", "json", partner.Endpoint{})})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var ds []*store.Delivery
	gatewaytest.Until(t, 20*time.Second, 20*time.Millisecond, func() error {
		var err error
		if ds, err = w.st.DeliveriesOf(context.Background(), "", "", 0, 10); err != nil {
			t.Fatal(err)
		}
		if len(ds) < 3 {
			return fmt.Errorf("%d of 3 requests queued", len(ds))
		}
		return nil
	})
	slices.Reverse(ds) // oldest first
	if len(ds) != 3 || ds[0].Key != "req-ok" || ds[0].State != store.DeliveryPending {
		t.Fatalf("deliveries %v, want req-ok pending and the copies dead", ds)
	}
	for _, d := range ds[1:] {
		if d.State != store.DeliveryDead || !strings.Contains(d.LastError, "id is required in a signed request") || !d.NoRetry {
			t.Errorf("the id-less copy %s: %s %q (no retry %v), want a dead letter for its unsigned id, refused for good", d.Key, d.State, d.LastError, d.NoRetry)
		}
	}
	// An operator's retry of the partner's dead letters (after an outage,
	// say) does not send the copies: each would be a second delivery.
	if n, err := w.st.RetryDead(context.Background(), "p1", time.Now()); n != 0 || err != nil {
		t.Errorf("%d copies queued again by a retry (%v), want none", n, err)
	}
	logged := q.entries()
	if n := refused.Load(); n != int32(len(cases)-1) {
		t.Errorf("%d refusals counted, want %d", n, len(cases)-1)
	}
	for i, tc := range cases[1:] {
		t.Run(tc.name, func(t *testing.T) {
			if i >= len(logged) {
				t.Fatalf("not logged (%d entries)", len(logged))
			}
			e := logged[i]
			if e.Outcome != outbound.OutcomeRefused || string(e.Body) != tc.value || !strings.Contains(e.Verification, "request signature") ||
				!strings.Contains(e.Verification, tc.reason) {
				t.Fatalf("logged %s %q %q", e.Outcome, e.Verification, e.Body)
			}
		})
	}
}

// FuzzVerifyRequest: VerifyRequest reads whatever a record's value and
// "jws" headers hold without panicking, and takes only a value the back
// office's key signed, with that signature.
func FuzzVerifyRequest(f *testing.F) {
	key, _ := receipt.NewES256Key("bo-2026-1")
	pub, _ := jwk.PublicKeyOf(key)
	keys := jwk.NewSet()
	_ = keys.AddKey(pub)
	signed := map[string]string{} // value → the back office's signature
	for _, v := range []string{`{"id":"dec-001","partner":"th-sso","messageType":"NotifyDecision","payload":{}}`, "{\"id\":\"é\\u2028\"}\n"} {
		c, err := jws.Sign([]byte(v), jws.WithKey(jwa.ES256(), key, jws.WithProtectedHeaders(func() jws.Headers {
			h := jws.NewHeaders()
			_ = h.Set(jws.KeyIDKey, "bo-2026-1")
			return h
		}())))
		if err != nil {
			f.Fatal(err)
		}
		parts := strings.Split(string(c), ".")
		signed[v] = parts[0] + ".." + parts[2]
		f.Add([]byte(v), signed[v], "")
	}
	f.Fuzz(func(t *testing.T, value []byte, sig, second string) {
		m := kafka.Message{Value: value, Headers: []kafka.Header{{Key: outbound.RequestSignatureHeader, Value: []byte(sig)}}}
		if second != "" {
			m.Headers = append(m.Headers, kafka.Header{Key: outbound.RequestSignatureHeader, Value: []byte(second)})
		}
		if outbound.VerifyRequest(m, keys) != nil {
			return
		}
		// Another signature of a signed value would do (ECDSA gives many);
		// another value, or a second header, would not.
		if _, ok := signed[string(value)]; !ok || second != "" {
			t.Fatalf("took %q with %q", value, sig)
		}
	})
}
