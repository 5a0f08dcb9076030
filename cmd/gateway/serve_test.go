package main

import (
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/broker"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
)

func TestTuneProcs(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	runtime.SetDefaultGOMAXPROCS()
	t.Cleanup(runtime.SetDefaultGOMAXPROCS)
	cores := runtime.GOMAXPROCS(0)
	for _, tc := range []struct {
		name, env, store string
		want             int
	}{
		{"ok/sqlite has one more", "", "gateway.db", cores + 1},
		{"ok/sqlite again still one more", "", "gateway.db", cores + 1},
		{"ok/postgres has the cores", "", "postgres://jambatan@127.0.0.1/jambatan", cores},
		{"ok/GOMAXPROCS set wins", "7", "gateway.db", 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", tc.env)
			if tc.env != "" {
				runtime.GOMAXPROCS(7) // as the runtime read it at start
			}
			tuneProcs(tc.store)
			if got := runtime.GOMAXPROCS(0); got != tc.want {
				t.Errorf("GOMAXPROCS = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestServeWarnsUnsignedOutbound: a gateway that reads outbound requests
// from Kafka without outbound.request_signers_file warns at its start that
// whoever may write to the topic may have Perkeso sign a message to a
// partner. With the signers set, or without Kafka (no outbound consumer),
// it says nothing of the kind.
func TestServeWarnsUnsignedOutbound(t *testing.T) {
	l, _ := devLayout(t)
	kafka, err := broker.Start(t.TempDir(), 0, events.DefaultTopics.Outbound)
	if err != nil {
		t.Fatal(err)
	}
	defer kafka.Close()
	const warning = "outbound requests are taken unsigned"
	for i, tc := range []struct {
		name           string
		kafka, signers bool
	}{
		{"ok/kafka-without-signers-warns", true, false},
		{"ok/kafka-with-signers", true, true},
		{"ok/no-kafka-no-signers", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(filepath.Dir(l.Config), fmt.Sprintf("serve-%d.json", i))
			gatewaytest.EditConfig(t, l.Config, path, func(cfg map[string]any) {
				if tc.kafka {
					cfg["kafka"].(map[string]any)["brokers"] = []string{kafka.Addr}
				}
				if !tc.signers {
					delete(cfg["outbound"].(map[string]any), "request_signers_file")
				}
			})
			out := serveOnce(t, path)
			if warned := strings.Contains(out, warning); warned != (tc.kafka && !tc.signers) {
				t.Fatalf("warned %v:\n%s", warned, out)
			}
		})
	}
}

// serveOnce runs "gateway serve --config path" until it listens, stops it,
// and returns all it logged.
func serveOnce(t *testing.T, path string) string {
	t.Helper()
	cmd := exec.Command(gatewayBin, "serve", "--config", path, "--addr", "127.0.0.1:0")
	out := &gatewaytest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() }) // should the wait fail
	gatewaytest.Until(t, 30*time.Second, 50*time.Millisecond, func() error {
		if !strings.Contains(out.String(), `"msg":"gateway listening"`) {
			return fmt.Errorf("serve never listened:\n%s", out.String())
		}
		return nil
	})
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve: %v\n%s", err, out.String())
	}
	return out.String()
}

// TestTuneGC: the collector runs at GOGC=400 under a 160 MiB soft memory
// limit, unless the environment sets either, which then wins.
func TestTuneGC(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	for _, tc := range []struct {
		name, gogc, memlimit string
		percent              int
		limit                int64
	}{
		{"ok/defaults", "", "", 400, 160 << 20},
		{"ok/gogc-set-wins", "50", "", 50, 160 << 20},
		{"ok/gomemlimit-set-wins", "", "1GiB", 400, 1 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOGC", tc.gogc)
			t.Setenv("GOMEMLIMIT", tc.memlimit)
			// Go's defaults, or what the runtime read from the environment
			// at its start.
			percent, limit := 100, int64(math.MaxInt64)
			if tc.gogc != "" {
				percent = tc.percent
			}
			if tc.memlimit != "" {
				limit = tc.limit
			}
			debug.SetGCPercent(percent)
			debug.SetMemoryLimit(limit)
			tuneGC()
			if p, l := debug.SetGCPercent(100), debug.SetMemoryLimit(-1); p != tc.percent || l != tc.limit {
				t.Fatalf("GOGC %d, memory limit %d; want %d and %d", p, l, tc.percent, tc.limit)
			}
		})
	}
}
