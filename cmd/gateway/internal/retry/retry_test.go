package retry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
)

var lines = Lines{Failed: "write failed; trying again", Succeeded: "written after failures"}

// TestUntil: a try that works at once logs nothing; failures are each
// logged with the caller's attributes, the error and a pause that doubles
// to its bound, and the success after them says so, all under one id that
// the next spell does not share; a context that ends stops the tries and
// reports false.
func TestUntil(t *testing.T) {
	defer func(f, m time.Duration) { firstPause, maxPause = f, m }(firstPause, maxPause)
	firstPause, maxPause = time.Millisecond, 4*time.Millisecond
	failing := func(n int) (try func() error, calls *int) {
		calls = new(int)
		return func() error {
			if *calls++; *calls <= n {
				return fmt.Errorf("store away (%d)", *calls)
			}
			return nil
		}, calls
	}
	failed := regexp.MustCompile(`level=ERROR msg="write failed; trying again" correlation_id=([0-9a-f]{32}) offset=7 err="store away \((\d)\)" pause=(\S+)`)
	succeeded := regexp.MustCompile(`level=INFO msg="written after failures" correlation_id=([0-9a-f]{32}) offset=7`)
	for _, tc := range []struct {
		name   string
		fails  int
		pauses []string // logged after each failure
	}{
		{"ok/at-once", 0, nil},
		{"ok/after-one-failure", 1, []string{"1ms"}},
		{"ok/pauses-double-to-their-bound", 5, []string{"1ms", "2ms", "4ms", "4ms", "4ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logged gatewaytest.SyncBuffer
			log := slog.New(slog.NewTextHandler(&logged, nil))
			try, calls := failing(tc.fails)
			if !Until(context.Background(), log, lines, try, "offset", 7) || *calls != tc.fails+1 {
				t.Fatalf("%d calls, want %d and true", *calls, tc.fails+1)
			}
			out := logged.String()
			fails, ok := failed.FindAllStringSubmatch(out, -1), succeeded.FindAllStringSubmatch(out, -1)
			if len(fails) != tc.fails || strings.Count(out, "\n") != len(fails)+len(ok) {
				t.Fatalf("want %d failure lines and nothing else:\n%s", tc.fails, out)
			}
			if tc.fails == 0 {
				if len(ok) != 0 {
					t.Fatalf("a success at once logged:\n%s", out)
				}
				return
			}
			if len(ok) != 1 || ok[0][1] != fails[0][1] {
				t.Fatalf("want one success line under the failures' id:\n%s", out)
			}
			for i, f := range fails {
				if f[1] != fails[0][1] || f[2] != fmt.Sprint(i+1) || f[3] != tc.pauses[i] {
					t.Fatalf("failure %d: id %s, try %s, pause %s; want the spell's id, try %d, pause %s:\n%s", i+1, f[1], f[2], f[3], i+1, tc.pauses[i], out)
				}
			}
		})
	}
	t.Run("ok/each-spell-its-own-id", func(t *testing.T) {
		var logged gatewaytest.SyncBuffer
		log := slog.New(slog.NewTextHandler(&logged, nil))
		for range 2 {
			try, _ := failing(1)
			if !Until(context.Background(), log, lines, try, "offset", 7) {
				t.Fatal("not done")
			}
		}
		fails := failed.FindAllStringSubmatch(logged.String(), -1)
		if len(fails) != 2 || fails[0][1] == fails[1][1] {
			t.Fatalf("want two spells under ids of their own:\n%s", logged.String())
		}
	})
	t.Run("fail/context-ends-in-a-pause", func(t *testing.T) {
		firstPause, maxPause = time.Hour, time.Hour
		defer func() { firstPause, maxPause = time.Millisecond, 4*time.Millisecond }()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		calls := 0
		if Until(ctx, slog.New(slog.DiscardHandler), lines, func() error { calls++; return errors.New("away") }) || calls != 1 {
			t.Fatalf("%d calls and true, want 1 and false", calls)
		}
	})
	t.Run("fail/context-ended-by-the-try", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var logged gatewaytest.SyncBuffer
		calls := 0
		try := func() error { calls++; cancel(); return errors.New("canceled") }
		if Until(ctx, slog.New(slog.NewTextHandler(&logged, nil)), lines, try) || calls != 1 || logged.String() != "" {
			t.Fatalf("%d calls and true, or a line logged, want 1, false and none:\n%s", calls, logged.String())
		}
	})
}

// TestPauses: the pauses every loop that tries again shares start at
// 100 ms and double to 5 s, so a store or broker back within seconds is
// met again soon and one away for long is not asked more than every 5 s;
// a success starts the next spell at 100 ms again.
func TestPauses(t *testing.T) {
	var p Pauses
	if p.Last() != 0 {
		t.Fatalf("a new spell's last pause is %s, want none", p.Last())
	}
	var got []time.Duration
	for range 8 {
		got = append(got, p.Next())
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) || p.Last() != 5*time.Second {
		t.Fatalf("pauses %v (last %s), want %v", got, p.Last(), want)
	}
	p.Reset()
	if p.Last() != 0 || p.Next() != 100*time.Millisecond {
		t.Fatalf("after a success: last %s, next not 100ms", p.Last())
	}
}
