package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/broker"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/ingest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/kafkatest"
)

// TestBrokerRestartRiddenOut: a running ingest (not a catch-up run) goes on
// through its broker's absence: the records published before the broker
// stopped and after it came back (on the same port, with its data) are
// all ingested, once each, and Run has not returned. Earlier builds
// returned the first fetch or commit error, and the back office stopped
// ingesting until someone started it again. At the end every offset is
// committed: a new run of the group reads nothing. A broker back at once
// makes the first commit after it fail on the connection the reader had
// (most runs). kafka-go may then join the group again and read on from
// the last committed offset (that batch read twice, filed once), or read
// on where it was: its offsets are owed, and committed once a fetch finds
// nothing. The build before left them uncommitted, for every later run to
// read again, in 4 of 10 runs with -race. The lines of the failed fetches
// of a broker away 5 s and of the fetch that ends them share one id, and
// its failed fetches are paced by the pauses they log (kafka-go fails a
// fetch about every 600 ms on its own: 5 s away reach a pause longer).
func TestBrokerRestartRiddenOut(t *testing.T) {
	for _, tc := range []struct {
		name string
		away time.Duration
	}{
		{"ok/away 5 s", 5 * time.Second},
		{"ok/back at once", 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) { brokerRestart(t, tc.away) })
	}
}

func brokerRestart(t *testing.T, away time.Duration) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dataDir := t.TempDir()
	b, err := broker.Start(dataDir, port, topic)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t)
	sink := sqliteSink(t)
	produce(t, b.Addr, f.messages(t, 0, 50))
	c := consumer(b.Addr, "bo", sink, f, topic)
	defer c.Reader.Close()
	var logs gatewaytest.SyncBuffer
	c.Log = slog.New(slog.NewTextHandler(&logs, nil))
	var ingested atomic.Int64
	c.OnBatch = func(p ingest.Progress) { ingested.Store(p.Ingested) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { defer close(done); _, runErr = c.Run(ctx, false, 0) }()
	defer func() { cancel(); <-done }()
	wait := func(what string, n int64) {
		t.Helper()
		gatewaytest.Until(t, 60*time.Second, 50*time.Millisecond, func() error {
			if got := ingested.Load(); got < n {
				select {
				case <-done:
					t.Fatalf("Run returned (%v) before %s", runErr, what)
				default:
				}
				return fmt.Errorf("%s: %d ingested", what, got)
			}
			return nil
		})
	}
	wait("the first records", 50)
	b.Close()
	time.Sleep(away) // fetches and the group's heartbeats fail meanwhile
	select {
	case <-done:
		t.Fatalf("Run returned while the broker was away: %v", runErr)
	default:
	}
	b2, err := broker.Start(dataDir, port, topic)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	produce(t, b2.Addr, f.messages(t, 50, 50))
	wait("the records published after the restart", 100)
	if away >= time.Second {
		fetchLinesShareAnID(t, logs.String())
	}
	got, err := sink.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.Records != 100 || got.Quarantined != 0 {
		t.Fatalf("%+v, want the 100 records", got)
	}
	// Every offset is committed: a new run of the group reads nothing again.
	cancel()
	<-done
	c.Reader.Close() // leaves the group: the partition is the next run's alone
	again := consumer(b2.Addr, "bo", sink, f, topic)
	defer again.Reader.Close()
	p, err := again.Run(context.Background(), true, 2*time.Second)
	if err != nil || p.Consumed != 0 {
		t.Fatalf("the next run consumed %d (%v), want none: the first run left offsets uncommitted\n%s", p.Consumed, err, logs.String())
	}
}

// fetchLinesShareAnID fails t unless the log out holds failed fetches and
// the fetch that ended them, all under one correlation id of their own,
// each failure with the pause after it: 100 ms, doubling to 5 s, and the
// next fetch's line no sooner than that pause.
func fetchLinesShareAnID(t *testing.T, out string) {
	t.Helper()
	lines := regexp.MustCompile(`time=(\S+) level=\S+ msg="reading from Kafka ([^"]*)" correlation_id=([0-9a-f]{32})(?:.* pause=(\S+))?\n`).FindAllStringSubmatch(out, -1)
	if len(lines) < 2 || lines[0][2] != "failed; trying again" || lines[len(lines)-1][2] != "again" {
		t.Fatalf("fetches failed while the broker was away, then one read again: lines %q\n%s", lines, out)
	}
	pauses := []string{"100ms", "200ms", "400ms", "800ms", "1.6s", "3.2s", "5s"}
	for i, l := range lines {
		if l[3] != lines[0][3] {
			t.Fatalf("one outage's fetch lines under ids %q, want one:\n%s", lines, out)
		}
		if i == len(lines)-1 {
			break
		}
		if l[4] != pauses[min(i, len(pauses)-1)] {
			t.Fatalf("failed fetch %d paused %q, want %s:\n%s", i+1, l[4], pauses[min(i, len(pauses)-1)], out)
		}
		// The log's times are to the millisecond.
		pause, _ := time.ParseDuration(l[4])
		at, err1 := time.Parse(time.RFC3339Nano, l[1])
		next, err2 := time.Parse(time.RFC3339Nano, lines[i+1][1])
		if err := errors.Join(err1, err2); err != nil || next.Sub(at) < pause-time.Millisecond {
			t.Fatalf("failed fetch %d logged a pause of %s, the next fetch's line %s later (%v):\n%s", i+1, pause, next.Sub(at), err, out)
		}
	}
}

// TestOwedCommit: offsets whose commit the broker refused (kafka-go tries
// three times) are owed, and committed once a fetch finds nothing more,
// or at the next such fetch when that commit is refused too: the group's
// next run reads nothing. The build before committed only with a later
// batch, so an idle topic left them for every later run to read.
func TestOwedCommit(t *testing.T) {
	addr, committed := kafkatest.RefusingCommits(t, topic, 1, 6) // the batch's CommitMessages and the first owed one
	f := newFixture(t)
	sink := sqliteSink(t)
	produce(t, addr, f.messages(t, 0, 10))

	first := consumer(addr, "bo", sink, f, topic)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _, _ = first.Run(ctx, false, 0) }()
	stop := sync.OnceFunc(func() { cancel(); <-done })
	defer stop() // when the wait fails
	gatewaytest.Until(t, 30*time.Second, 5*time.Millisecond, func() error {
		if committed.Load() == 0 {
			return errors.New("the refused offsets were never committed")
		}
		return nil
	})
	stop()
	first.Reader.Close()

	again := consumer(addr, "bo", sink, f, topic)
	defer again.Reader.Close()
	p, err := again.Run(context.Background(), true, 2*time.Second)
	if err != nil || p.Consumed != 0 {
		t.Fatalf("the next run consumed %d (%v), want none", p.Consumed, err)
	}
}

// TestStopWhileCommitting: a run stopped while its offsets' commit waits
// for the broker returns without an error and without warning that the
// commit failed (it did not: the run ended); the offsets are owed, and
// committed as the run ends: the group's next run reads only what the
// first did not (none, when the first fetch held all ten).
func TestStopWhileCommitting(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, committed := kafkatest.RefusingCommitsAfter(t, topic, 1, 1, cancel) // the run's first commit, refused as the run stops
	f := newFixture(t)
	sink := sqliteSink(t)
	produce(t, addr, f.messages(t, 0, 10))

	first := consumer(addr, "bo", sink, f, topic)
	var logs gatewaytest.SyncBuffer
	first.Log = slog.New(slog.NewTextHandler(&logs, nil))
	p, err := first.Run(ctx, false, 0)
	first.Reader.Close()
	if err != nil || p.Ingested == 0 || committed.Load() == 0 || strings.Contains(logs.String(), "committing offsets failed") ||
		strings.Contains(logs.String(), "not committed") {
		t.Fatalf("Run: %v, %d ingested, %d commits taken; log:\n%s", err, p.Ingested, committed.Load(), logs.String())
	}

	again := consumer(addr, "bo", sink, f, topic)
	defer again.Reader.Close()
	next, err := again.Run(context.Background(), true, 2*time.Second)
	if err != nil || next.Consumed != 10-p.Consumed {
		t.Fatalf("the next run consumed %d (%v), want the %d the first did not", next.Consumed, err, 10-p.Consumed)
	}
}
