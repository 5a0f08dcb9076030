package relay_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/perkeso/jambatan/cmd/gateway/internal/broker"
	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/kafkaclient"
	"github.com/perkeso/jambatan/cmd/gateway/internal/kafkatest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/relay"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

const topic = "t.verified"

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// enqueue logs n entries, each with one outbox message; keys cycle over
// `keys` case keys so that several messages share a key.
func enqueue(t testing.TB, st *store.DB, from, n, keys int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		key := "case-" + strconv.Itoa(i%keys)
		e := &store.Entry{CorrelationID: "c", PartnerID: "p", ReceivedAt: time.Now(), Status: 202, Outcome: store.OutcomeAccepted,
			Outbox: []store.Message{{Topic: topic, Key: []byte(key), Value: []byte(strconv.Itoa(i)), Headers: []store.Header{{Key: "ce_id", Value: strconv.Itoa(i)}}}}}
		if err := st.Log(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
}

func newRelay(t testing.TB, st *store.DB, addr string) (*relay.Relay, *kafka.Writer) {
	kc, err := kafkaclient.New(config.Kafka{Brokers: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	w := kc.Writer(200)
	w.MaxAttempts = 1
	w.WriteTimeout = 2 * time.Second
	w.Transport.(*kafka.Transport).DialTimeout = time.Second
	return &relay.Relay{Outbox: st, Producer: w, Batch: 200, Poll: 20 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, w
}

// checkOrder asserts every value 0..n-1 arrived and that, per key, first
// deliveries come in increasing order (duplicates allowed: at least once).
func checkOrder(t testing.TB, msgs []kafka.Message, n int) {
	t.Helper()
	seen := map[int]bool{}
	last := map[string]int{}
	for _, m := range msgs {
		v, _ := strconv.Atoi(string(m.Value))
		if seen[v] {
			continue
		}
		seen[v] = true
		k := string(m.Key)
		if prev, ok := last[k]; ok && v < prev {
			t.Fatalf("key %s: %d first delivered after %d", k, v, prev)
		}
		last[k] = v
	}
	for i := 0; i < n; i++ {
		if !seen[i] {
			t.Fatalf("message %d lost (%d messages read)", i, len(msgs))
		}
	}
}

// brokerAndStore starts an embedded broker and opens a SQLite store, both
// closed when the test ends.
func brokerAndStore(t *testing.T) (*broker.Embedded, *store.DB) {
	b := kafkatest.Broker(t, "", topic)
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return b, st
}

func TestRelayPublishes(t *testing.T) {
	b, st := brokerAndStore(t)
	enqueue(t, st, 0, 1000, 37)
	r, w := newRelay(t, st, b.Addr)
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	msgs := kafkatest.ReadAll(t, b.Addr, topic, 1000, 30*time.Second)
	cancel()
	<-done
	if len(msgs) != 1000 {
		t.Fatalf("%d messages on the topic, want 1000", len(msgs))
	}
	checkOrder(t, msgs, 1000)
	// Same key, same partition: per-key order is partition order.
	part := map[string]int{}
	for _, m := range msgs {
		if p, ok := part[string(m.Key)]; ok && p != m.Partition {
			t.Fatalf("key %s on partitions %d and %d", m.Key, p, m.Partition)
		}
		part[string(m.Key)] = m.Partition
		if kafkatest.Header(m, "ce_id") != string(m.Value) {
			t.Fatalf("ce_id header %q for %s", kafkatest.Header(m, "ce_id"), m.Value)
		}
	}
	if n, _ := st.OutboxBacklog(context.Background()); n != 0 {
		t.Fatalf("backlog %d after publishing", n)
	}
}

// producerCalls counts a producer's calls, and the messages of each.
type producerCalls struct {
	relay.Producer
	mu    sync.Mutex
	sizes []int
}

func (p *producerCalls) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	p.mu.Lock()
	p.sizes = append(p.sizes, len(msgs))
	p.mu.Unlock()
	return p.Producer.WriteMessages(ctx, msgs...)
}

func (p *producerCalls) calls() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sizes)
}

// TestRelayLingers: under load the relay waits Linger after a wake-up, so
// commits a few milliseconds apart are published in a few produce calls,
// not one each; after a quiet spell the first message is published at once.
func TestRelayLingers(t *testing.T) {
	b, st := brokerAndStore(t)
	r, w := newRelay(t, st, b.Addr)
	defer w.Close()
	calls := &producerCalls{Producer: w}
	r.Producer, r.Linger, r.Poll = calls, time.Second, time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	start := time.Now()
	enqueue(t, st, 0, 1, 1)
	r.Wake()
	waitFor(t, "the first message", func() bool { return len(calls.calls()) == 1 })
	if d := time.Since(start); d > r.Linger {
		t.Errorf("the first message after a quiet spell took %v, longer than the linger", d)
	}
	for i := 1; i <= 20; i++ { // 20 commits, 5 ms apart: within a linger or two, even on a slow disk
		enqueue(t, st, i, 1, 1)
		r.Wake()
		time.Sleep(5 * time.Millisecond)
	}
	waitFor(t, "all messages", func() bool {
		n := 0
		for _, c := range calls.calls() {
			n += c
		}
		return n == 21
	})
	if c := calls.calls(); len(c) > 4 {
		t.Fatalf("21 messages in %d produce calls %v, want at most 4", len(c), c)
	}
	msgs := kafkatest.ReadAll(t, b.Addr, topic, 21, 30*time.Second)
	checkOrder(t, msgs, 21)
}

// TestBrokerOutage stops the broker mid-stream: intake goes on (the outbox
// grows, the status says so), and when the broker returns on the same port
// with its data the backlog drains with nothing lost and per-key order kept.
func TestBrokerOutage(t *testing.T) {
	port := freePort(t)
	dataDir := t.TempDir()
	b, err := broker.Start(dataDir, port, topic)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := store.OpenSQLite(filepath.Join(t.TempDir(), "g.db"))
	defer st.Close()
	r, w := newRelay(t, st, b.Addr)
	defer w.Close()
	calls := &producerCalls{Producer: w}
	r.Producer = calls
	logged, stop := runLogged(r)
	defer stop()
	ctx := context.Background()

	enqueue(t, st, 0, 500, 11)
	waitFor(t, "first half published", func() bool { n, _ := st.OutboxBacklog(ctx); return n == 0 })
	b.Close()

	enqueue(t, st, 500, 500, 11) // intake keeps accepting while the broker is away
	waitFor(t, "relay to notice the outage", func() bool { return r.Status(ctx).LastError != "" })
	// Three failed produce calls at least, so that a warning repeated on
	// each retry (or given on the second only) is seen.
	failed := len(calls.calls())
	waitFor(t, "relay to retry twice more", func() bool { return len(calls.calls()) >= failed+2 })
	if s := r.Status(ctx); s.Backlog != 500 {
		t.Fatalf("backlog during outage %d, want 500", s.Backlog)
	}

	b2, err := broker.Start(dataDir, port, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	r.Wake()
	waitFor(t, "backlog drained", func() bool { n, _ := st.OutboxBacklog(ctx); return n == 0 })
	msgs := kafkatest.ReadAll(t, b2.Addr, topic, 1000, 30*time.Second)
	checkOrder(t, msgs, 1000)
	if r.Status(ctx).LastError != "" {
		t.Fatalf("status still reports an error: %+v", r.Status(ctx))
	}
	// One warning when the outage starts, one line when it ends, whatever
	// the retries and batches between.
	out := logged.String()
	if strings.Count(out, "cannot publish to kafka") != 1 || strings.Count(out, "publishing again") != 1 || strings.Contains(out, "outbox cannot") {
		t.Fatalf("the outage logged:\n%s", out)
	}
}

// TestStoreOutage: a relay that cannot read its outbox (here the table
// taken away under it, as from a store that is down) says so, and not that
// Kafka is away, as it did: its warning, its status and the errors
// metric name the outbox, and Kafka's count does not move. It tries again
// after growing pauses. With the outbox back it publishes what waited, and
// says so once.
func TestStoreOutage(t *testing.T) {
	b, st := brokerAndStore(t)
	reg := prometheus.NewRegistry()
	relay.Register(reg)
	before := relayErrors(t, reg)
	r, w := newRelay(t, st, b.Addr)
	defer w.Close()
	logged, stop := runLogged(r)
	defer stop()
	ctx := context.Background()

	enqueue(t, st, 0, 100, 7)
	waitFor(t, "the first 100 published", func() bool { n, _ := st.OutboxBacklog(ctx); return n == 0 })
	if _, err := st.DB().Exec(`ALTER TABLE outbox RENAME TO outbox_away`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the relay to notice", func() bool { return r.Status(ctx).Failing != "" })
	s := r.Status(ctx)
	during := relayErrors(t, reg)
	if s.Failing != relay.SideOutbox || !strings.Contains(s.LastError, "no such table") {
		t.Fatalf("status %+v: want the outbox failing", s)
	}
	if during["outbox"] <= before["outbox"] || during["kafka"] != before["kafka"] || during["render"] != before["render"] {
		t.Fatalf("relay errors %v, then %v: want only the outbox's counted", before, during)
	}
	// A second more of the outage: the relay tries again after 100, 200,
	// 400 ms, … (retry.Pauses), a few times, not over and over at once.
	time.Sleep(time.Second)
	if n := relayErrors(t, reg)["outbox"] - before["outbox"]; n < 3 || n > 6 {
		t.Fatalf("%v failed rounds in the outage's first second, want 4 or so: 100, 200, 400 ms apart", n)
	}
	if _, err := st.DB().Exec(`ALTER TABLE outbox_away RENAME TO outbox`); err != nil {
		t.Fatal(err)
	}
	enqueue(t, st, 100, 100, 7)
	r.Wake()
	waitFor(t, "the second 100 published", func() bool { n, _ := st.OutboxBacklog(ctx); return n == 0 })
	checkOrder(t, kafkatest.ReadAll(t, b.Addr, topic, 200, 30*time.Second), 200)
	if s := r.Status(ctx); s.LastError != "" || s.Failing != "" {
		t.Fatalf("status still reports an error: %+v", s)
	}
	out := logged.String()
	if strings.Count(out, "cannot read or mark the outbox") != 1 || strings.Contains(out, "cannot publish to kafka") ||
		strings.Count(out, "publishing again") != 1 {
		t.Fatalf("the outage logged:\n%s", out)
	}
}

// TestOutageIDs: the lines of one outage, its warning and its end, share a
// correlation id of the outage's; the next outage has another.
func TestOutageIDs(t *testing.T) {
	b, st := brokerAndStore(t)
	r, w := newRelay(t, st, b.Addr)
	defer w.Close()
	logged, stop := runLogged(r)
	defer stop()
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if _, err := st.DB().Exec(`ALTER TABLE outbox RENAME TO outbox_away`); err != nil {
			t.Fatal(err)
		}
		r.Wake()
		waitFor(t, "the relay to notice", func() bool { return r.Status(ctx).Failing != "" })
		if _, err := st.DB().Exec(`ALTER TABLE outbox_away RENAME TO outbox`); err != nil {
			t.Fatal(err)
		}
		enqueue(t, st, 10*i, 10, 7)
		r.Wake()
		waitFor(t, "the outbox published", func() bool { n, _ := st.OutboxBacklog(ctx); return n == 0 && r.Status(ctx).Failing == "" })
	}
	out := logged.String()
	ids := regexp.MustCompile(`correlation_id=([0-9a-f]{32})`).FindAllStringSubmatch(out, -1)
	if len(ids) != 4 || ids[0][1] != ids[1][1] || ids[2][1] != ids[3][1] || ids[1][1] == ids[2][1] {
		t.Fatalf("two outages' lines' ids %q:\n%s", ids, out)
	}
}

// runLogged runs r, its log lines kept in the buffer returned, until stop.
func runLogged(r *relay.Relay) (logged *gatewaytest.SyncBuffer, stop func()) {
	logged = &gatewaytest.SyncBuffer{}
	r.Log = slog.New(slog.NewTextHandler(logged, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	return logged, func() { cancel(); <-done }
}

// relayErrors reads jambatan_relay_errors_total, by side, from reg.
func relayErrors(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	sides := gatewaytest.Series(t, reg, "jambatan_relay_errors_total", "side")
	if len(sides) != 3 {
		t.Fatalf("relay errors by side %v: want kafka, outbox and render from the start", sides)
	}
	return sides
}

// TestRelayDefaults: a relay without a batch size claims 500 messages at a
// time.
func TestRelayDefaults(t *testing.T) {
	b, st := brokerAndStore(t)
	enqueue(t, st, 0, 501, 7)
	r, w := newRelay(t, st, b.Addr)
	defer w.Close()
	r.Batch = 0
	calls := &producerCalls{Producer: w}
	r.Producer = calls
	for _, want := range []int{500, 1, 0} {
		if n, err := r.Once(context.Background()); err != nil || n != want {
			t.Fatalf("Once = %d, %v; want %d", n, err, want)
		}
	}
	if got := calls.calls(); !slices.Equal(got, []int{500, 1}) {
		t.Fatalf("produce calls of %v messages", got)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	gatewaytest.Until(t, 60*time.Second, 20*time.Millisecond, func() error {
		if !cond() {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		return nil
	})
}

// BenchmarkRelay measures records/s from the outbox to the broker
// (acks=all, batches of 500, kfake with fsync).
func BenchmarkRelay(b *testing.B) {
	br := kafkatest.Broker(b, b.TempDir(), topic)
	st, _ := store.OpenSQLite(filepath.Join(b.TempDir(), "g.db"))
	defer st.Close()
	const n = 5000
	r, w := newRelay(b, st, br.Addr)
	w.BatchSize, r.Batch = 500, 500
	defer w.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		enqueue(b, st, i*n, n, 1000)
		b.StartTimer()
		for {
			k, err := r.Once(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if k == 0 {
				break
			}
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkDrain100k measures the time to drain a 100,000-message backlog.
func BenchmarkDrain100k(b *testing.B) {
	br := kafkatest.Broker(b, b.TempDir(), topic)
	st, _ := store.OpenSQLite(filepath.Join(b.TempDir(), "g.db"))
	defer st.Close()
	r, w := newRelay(b, st, br.Addr)
	w.BatchSize, r.Batch = 500, 500
	defer w.Close()
	const n = 100000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		tx, _ := st.DB().Begin()
		for j := 0; j < n; j++ {
			if _, err := tx.Exec(`INSERT INTO outbox (topic, msg_key, headers, value, created_at) VALUES (?,?,?,?,?)`,
				topic, []byte("case-"+strconv.Itoa(j%5000)), `[{"k":"ce_id","v":"x"}]`, make([]byte, 2048), time.Now().Format(time.RFC3339Nano)); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for {
			k, err := r.Once(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			if k == 0 {
				break
			}
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/100k")
}

// TestRelayRenders: a message held by reference is published with the
// value Render builds from its log entry; without a renderer the relay
// publishes nothing and keeps the message.
func TestRelayRenders(t *testing.T) {
	b, st := brokerAndStore(t)
	ctx := context.Background()
	e := &store.Entry{CorrelationID: "c", PartnerID: "p", ReceivedAt: time.Now(), Status: 202, Outcome: store.OutcomeAccepted,
		Body: []byte("the notice"), Outbox: []store.Message{{Topic: topic, Key: []byte("k"), Render: "upper"}}}
	if err := st.Log(ctx, e); err != nil {
		t.Fatal(err)
	}
	r, w := newRelay(t, st, b.Addr)
	defer w.Close()
	if n, err := r.Once(ctx); err == nil || n != 0 {
		t.Fatalf("without a renderer: published %d, err %v", n, err)
	}
	if n, _ := st.OutboxBacklog(ctx); n != 1 {
		t.Fatalf("backlog %d, want the message kept", n)
	}
	r.Render = func(m *store.Message) error {
		m.Value = []byte(strings.ToUpper(string(m.Logged.Body)))
		return nil
	}
	if n, err := r.Once(ctx); err != nil || n != 1 {
		t.Fatalf("published %d, err %v", n, err)
	}
	msgs := kafkatest.ReadAll(t, b.Addr, topic, 1, 10*time.Second)
	if len(msgs) != 1 || string(msgs[0].Value) != "THE NOTICE" {
		t.Fatalf("topic holds %+v", msgs)
	}
}

// TestRelayRefusedBatch: a record batch larger than the broker's limit
// (here with the writer's batch bound raised past it, as it once was) is
// refused as a whole; nothing is published or dropped, and the relay's
// status gives one short line, not one error per message.
func TestRelayRefusedBatch(t *testing.T) {
	b, st := brokerAndStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range 3 {
		e := &store.Entry{CorrelationID: "c", PartnerID: "p", ReceivedAt: time.Now(), Status: 202, Outcome: store.OutcomeAccepted,
			Outbox: []store.Message{{Topic: topic, Key: []byte("one-case"), Value: []byte(strings.Repeat(strconv.Itoa(i), 600<<10))}}}
		if err := st.Log(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	r, w := newRelay(t, st, b.Addr)
	defer w.Close()
	w.BatchBytes = 64 << 20
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	var s relay.Status
	gatewaytest.Until(t, 10*time.Second, 20*time.Millisecond, func() error {
		if s = r.Status(ctx); s.LastError == "" {
			return fmt.Errorf("no error in the relay's status %+v", s)
		}
		return nil
	})
	cancel()
	<-done
	if !strings.HasPrefix(s.LastError, "3 of 3 messages not written; first: ") || len(s.LastError) > 400 {
		t.Fatalf("last error %q", s.LastError)
	}
	if s.Backlog != 3 || s.Published != 0 {
		t.Fatalf("status %+v: want the 3 messages kept, none published", s)
	}
}

// TestStopFinishesBatch: a batch whose produce is at the broker when the
// gateway stops is finished, acknowledged and taken out of the outbox,
// within StopGrace: the next start does not publish it again. Cut short,
// it stayed in the outbox while the broker had it, and a graceful restart
// under load published about 45 events twice.
func TestStopFinishesBatch(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	held, release := make(chan struct{}), make(chan struct{})
	var first sync.Once
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		first.Do(func() {
			close(held)
			c.SleepControl(func() { <-release })
		})
		return nil, nil, false // handled as usual
	})
	addr := c.ListenAddrs()[0]
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	enqueue(t, st, 0, 100, 7)
	r, w := newRelay(t, st, addr)
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	<-held // the batch is at the broker
	cancel()
	select {
	case <-done: // the stop cut the batch short
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	<-done
	if n, _ := st.OutboxBacklog(context.Background()); n != 0 {
		t.Fatalf("%d messages left in the outbox by the stop, published again at the next start", n)
	}
	if msgs := kafkatest.ReadAll(t, addr, topic, 100, 10*time.Second); len(msgs) != 100 {
		t.Fatalf("%d messages on the topic, want 100", len(msgs))
	}
}

// TestDrain: what the outbox holds when the gateway stops is published
// then, all of it; with the broker away, Drain stops at the first failure
// and leaves the outbox as it was, for the next start.
func TestDrain(t *testing.T) {
	t.Run("ok/published", func(t *testing.T) {
		b, st := brokerAndStore(t)
		enqueue(t, st, 0, 1000, 37)
		r, w := newRelay(t, st, b.Addr)
		defer w.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if n, err := r.Drain(ctx); n != 1000 || err != nil {
			t.Fatalf("drained %d (%v), want 1000", n, err)
		}
		if n, _ := st.OutboxBacklog(context.Background()); n != 0 {
			t.Fatalf("backlog %d after the drain", n)
		}
		msgs := kafkatest.ReadAll(t, b.Addr, topic, 1000, 30*time.Second)
		if len(msgs) != 1000 {
			t.Fatalf("%d messages on the topic, want 1000", len(msgs))
		}
		checkOrder(t, msgs, 1000)
	})
	t.Run("fail/broker away", func(t *testing.T) {
		b, st := brokerAndStore(t)
		enqueue(t, st, 0, 10, 3)
		r, w := newRelay(t, st, b.Addr)
		defer w.Close()
		b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if n, err := r.Drain(ctx); n != 0 || err == nil {
			t.Fatalf("drained %d (%v), want none and the produce's error", n, err)
		}
		if n, _ := st.OutboxBacklog(context.Background()); n != 10 {
			t.Fatalf("backlog %d, want the 10 kept for the next start", n)
		}
	})
}
