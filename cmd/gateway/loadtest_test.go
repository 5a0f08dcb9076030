package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/loadgen"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// TestLoadTestSummary runs "gateway loadtest" against "gateway dev" and
// checks its JSON summary: counts, latency order, client and gateway CPU,
// the gateway's peak memory, and the rate limit.
func TestLoadTestSummary(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, out, _ := startDev(t, dir)
	defer stop(t, cmd, out)
	for _, tc := range []struct {
		name     string
		args     []string
		min, max int64 // accepted notices
		progress bool
	}{
		{"ok/requests", []string{"--requests", "300", "--concurrency", "8", "--prefix", "LT-REQ-"}, 300, 300, false},
		{"ok/rate", []string{"--duration", "2s", "--rate", "50", "--concurrency", "4", "--prefix", "LT-RATE-"}, 40, 105, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := gateway(t, append([]string{"loadtest", "--dev", dir}, tc.args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr)
			}
			var s loadgen.Summary
			if err := json.Unmarshal([]byte(stdout), &s); err != nil {
				t.Fatalf("summary %q: %v", stdout, err)
			}
			if s.Accepted < tc.min || s.Accepted > tc.max || s.Requests != s.Accepted || len(s.ErrorsByStatus) != 0 || s.Duplicates != 0 {
				t.Fatalf("counts: %+v", s)
			}
			l := s.LatencyMS
			if s.ThroughputPerS <= 0 || !(0 < l["p50"] && l["p50"] <= l["p90"] && l["p90"] <= l["p99"] && l["p99"] <= l["max"]) {
				t.Fatalf("throughput and latency: %+v", s)
			}
			if s.ClientCPUSecond <= 0 || s.GatewayCPUSeconds <= 0 || s.GatewayCPUMicrosPerReq <= 0 {
				t.Fatalf("CPU: %+v", s)
			}
			if s.GatewayPeakRSSMB < 10 || s.GatewayPeakRSSMB > 1000 {
				t.Fatalf("gateway peak RSS %v MB", s.GatewayPeakRSSMB)
			}
			if tc.progress && !strings.Contains(stderr, "loadtest: ") {
				t.Fatalf("no progress line in %q", stderr)
			}
		})
	}
	t.Run("ok/default-prefix-twice", func(t *testing.T) {
		// Two runs without --prefix, one right after the other (often in
		// the same second): the second sends new notices, not repeats.
		for run := 0; run < 2; run++ {
			stdout, stderr, err := gateway(t, "loadtest", "--dev", dir, "--requests", "20", "--concurrency", "2")
			var s loadgen.Summary
			if err != nil || json.Unmarshal([]byte(stdout), &s) != nil || s.Accepted != 20 || s.Duplicates != 0 {
				t.Fatalf("run %d: %v %+v\n%s", run, err, s, stderr)
			}
		}
	})
	for _, tc := range []struct{ name, partner, want string }{
		{"fail/soap-partner", "demo-agency", "signs with WS-Security"},
		{"fail/insurer", "demo-insurer", "sends insurer-claim/v1"},
		{"fail/unknown-partner", "nobody", "nobody"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, stderr, err := gateway(t, "loadtest", "--dev", dir, "--partner", tc.partner, "--requests", "1"); err == nil || !strings.Contains(stderr, tc.want) {
				t.Fatalf("err %v, stderr %q; want %q", err, stderr, tc.want)
			}
		})
	}
	t.Run("fail/no-dev-directory", func(t *testing.T) {
		if _, stderr, err := gateway(t, "loadtest", "--dev", filepath.Join(t.TempDir(), "none"), "--requests", "1"); err == nil || !strings.Contains(stderr, "dev.json") {
			t.Fatalf("err %v, stderr %q", err, stderr)
		}
	})
}

// TestLoadTestTemplate: --template varies the given notice, not example A:
// each notice sent is a record under the template's UEN.
func TestLoadTestTemplate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, out, d := startDev(t, dir)
	defer stop(t, cmd, out)
	tmpl := filepath.Join("..", "..", "adapters", "sgemployer", "testdata", "example-b.in.json") // UEN 53412345B
	stdout, stderr, err := gateway(t, "loadtest", "--dev", dir, "--requests", "12", "--concurrency", "3", "--prefix", "LT-TPL-", "--template", tmpl)
	var s loadgen.Summary
	if err != nil || json.Unmarshal([]byte(stdout), &s) != nil || s.Accepted != 12 {
		t.Fatalf("%v %+v\n%s", err, s, stderr)
	}
	st, err := store.OpenSQLite(d.Store)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var n int
	if err := st.DB().QueryRow(`SELECT count(*) FROM records WHERE source_key LIKE 'sg-employer-notice/v1|53412345B|LT-TPL-%'`).Scan(&n); err != nil || n != 12 {
		t.Fatalf("%d records under the template's UEN (%v), want 12", n, err)
	}
}
