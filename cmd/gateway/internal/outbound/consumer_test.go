package outbound_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/kafkatest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/outbound"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
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
	if m, err := again.FetchMessage(ctx); err == nil {
		t.Fatalf("the group's next reader read %s again (partition %d, offset %d)", m.Value, m.Partition, m.Offset)
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
