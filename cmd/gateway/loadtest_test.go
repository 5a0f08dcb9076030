package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/perkeso/jambatan/adapters/sgemployer"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
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
			if tc.progress && !regexp.MustCompile(`loadtest: \d+ sent, \d+ accepted`).MatchString(stderr) {
				t.Fatalf("no progress line in %q", stderr)
			}
		})
	}
	t.Run("ok/interrupted", func(t *testing.T) {
		// Ctrl-C in a run: the summary of what was sent, said to be
		// interrupted, and exit status 0.
		cmd := exec.Command(gatewayBin, "loadtest", "--dev", dir, "--duration", "60s", "--rate", "100", "--concurrency", "2", "--prefix", "LT-INT-")
		var stdout bytes.Buffer
		stderr := &gatewaytest.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = &stdout, stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill() }() // when the wait for progress fails
		gatewaytest.Until(t, 30*time.Second, 50*time.Millisecond, func() error {
			if !strings.Contains(stderr.String(), " sent, ") {
				return fmt.Errorf("no progress: %s", stderr.String())
			}
			return nil
		})
		_ = cmd.Process.Signal(syscall.SIGINT)
		err := cmd.Wait()
		var s loadgen.Summary
		if err != nil || json.Unmarshal(stdout.Bytes(), &s) != nil || !s.Interrupted || s.Accepted == 0 || s.DurationS > 30 ||
			!strings.Contains(stderr.String(), "loadtest: interrupted after ") {
			t.Fatalf("%v %+v\n%s\n%s", err, s, stdout.String(), stderr.String())
		}
	})
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
		{"fail/too-long-for-soap", "demo-agency", "--duration 5m0s: at most 4m0s for agency-soap/v1"},
		{"fail/unknown-partner", "nobody", "nobody"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, stderr, err := gateway(t, "loadtest", "--dev", dir, "--partner", tc.partner, "--duration", "5m"); err == nil || !strings.Contains(stderr, tc.want) {
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

// TestLoadTestTemplate: --template varies the given notice, not example A
// (each notice sent is a record under the template's UEN); an insurer's
// run sends distinct batches, each claim a record of its own, and an
// agency's distinct NotifyInjury messages, each signed with WS-Security; a
// template of another format, or holding loadtest's id mark, is refused;
// an insurer's duration run signs as many claims a second as an
// employer's signs notices (see the end).
func TestLoadTestTemplate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, out, d := startDev(t, dir)
	defer stop(t, cmd, out)
	testdata := func(adapter, name string) string {
		return filepath.Join("..", "..", "adapters", adapter, "testdata", name)
	}
	marked := filepath.Join(t.TempDir(), "marked.json")
	if err := os.WriteFile(marked, bytes.Replace(sgemployer.Example(), []byte("TPE-2026-0042"), []byte("@ID@"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, partner, template string
		requests                int
		records                 string // source keys of the records made
		perRequest              int
		refused                 string
	}{
		{"ok/notice-template", "demo-employer", testdata("sgemployer", "example-b.in.json"), 12, "sg-employer-notice/v1|53412345B|LT-TPL-%", 1, ""},
		{"ok/insurer-batches", "demo-insurer", "", 10, "insurer-claim/v1|WIC017|LT-TPL-%", 3, ""},
		{"ok/insurer-template", "demo-insurer", testdata("insurerclaim", "example-batch.in.json"), 4, "insurer-claim/v1|WIC017|LT-TPL-%", 3, ""},
		{"ok/agency-notifications", "demo-agency", "", 10, "agency-soap/v1|TH:SSO|LT-TPL-%", 1, ""},
		{"ok/agency-template", "demo-agency", testdata("agencysoap", "example-10.1.request.xml"), 3, "agency-soap/v1|TH:SSO|LT-TPL-%", 1, ""},
		{"fail/notice-for-agency", "demo-agency", testdata("sgemployer", "example-a.in.json"), 1, "", 0, "example-a.in.json"},
		{"fail/answer-for-agency", "demo-agency", testdata("agencysoap", "example-10.2.response.xml"), 1, "", 0, "not a NotifyInjury"},
		{"fail/notice-for-insurer", "demo-insurer", testdata("sgemployer", "example-a.in.json"), 1, "", 0, "not a batch"},
		{"fail/batch-for-employer", "demo-employer", testdata("insurerclaim", "example-batch.in.json"), 1, "", 0, "not a notice"},
		{"fail/holds-id-mark", "demo-employer", marked, 1, "", 0, "@ID@"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"loadtest", "--dev", dir, "--partner", tc.partner, "--requests", strconv.Itoa(tc.requests), "--concurrency", "3", "--prefix", "LT-TPL-" + strings.ReplaceAll(tc.name, "/", "-") + "-"}
			if tc.template != "" {
				args = append(args, "--template", tc.template)
			}
			stdout, stderr, err := gateway(t, args...)
			if tc.refused != "" {
				if err == nil || !strings.Contains(stderr, tc.refused) {
					t.Fatalf("err %v, stderr %q; want %q", err, stderr, tc.refused)
				}
				return
			}
			var s loadgen.Summary
			if err != nil || json.Unmarshal([]byte(stdout), &s) != nil || s.Accepted != int64(tc.requests) || len(s.ErrorsByStatus) != 0 {
				t.Fatalf("%v %+v\n%s", err, s, stderr)
			}
			// (A run this short may see no tick of the gateway's CPU time: per
			// record is then 0 as per request is.)
			if tc.perRequest > 1 && (s.RecordsPerRequest != tc.perRequest || s.RecordsPerS <= s.ThroughputPerS ||
				s.GatewayCPUMicrosPerRecord != math.Round(s.GatewayCPUMicrosPerReq/float64(tc.perRequest))) {
				t.Fatalf("records: %+v", s)
			}
			st, err := store.OpenSQLite(d.Store)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var n int
			like := strings.Replace(tc.records, "LT-TPL-", "LT-TPL-"+strings.ReplaceAll(tc.name, "/", "-")+"-", 1)
			if err := st.DB().QueryRow(`SELECT count(*) FROM records WHERE source_key LIKE ?`, like).Scan(&n); err != nil || n != tc.requests*tc.perRequest {
				t.Fatalf("%d records %s (%v), want %d", n, like, err, tc.requests*tc.perRequest)
			}
		})
	}
	// A duration run signs for loadgen.DefaultPresignRate records a second,
	// not as many batches: the example batch holds 3 claims.
	_, stderr, err := gateway(t, "loadtest", "--dev", dir, "--partner", "demo-insurer", "--duration", "1s", "--concurrency", "3", "--prefix", "LT-TPL-pool-")
	if want := fmt.Sprintf(" of %d signed", int(loadgen.DefaultPresignRate/3)+3); err != nil || !strings.Contains(stderr, want) {
		t.Fatalf("%v: %q, want %q", err, stderr, want)
	}
}

// TestWorkloadFits: an agency's run must end before the timestamps signed
// at its start expire, by --duration, by --requests at --rate, or by the
// count of --requests; a notice's run has no such bound.
func TestWorkloadFits(t *testing.T) {
	soap := workload{maxDuration: soapMaxDuration, maxRequests: soapMaxRequests}
	for _, tc := range []struct {
		name     string
		w        workload
		dur      time.Duration
		requests int
		rate     float64
		want     string
	}{
		{"ok/soap-duration", soap, 4 * time.Minute, 0, 0, ""},
		{"ok/soap-requests", soap, 0, 100000, 0, ""},
		{"ok/soap-requests-paced", soap, 0, 1000, 5, ""},
		{"ok/soap-requests-paced-to-the-bound", soap, 0, 1200, 5, ""},
		{"ok/notices-long", workload{}, time.Hour, 0, 0, ""},
		{"ok/notices-many-slowly", workload{}, 0, 500000, 1, ""},
		{"fail/soap-duration", soap, 5 * time.Minute, 0, 0, "--duration 5m0s: at most 4m0s"},
		{"fail/soap-requests-paced", soap, 0, 1000, 2, "--requests 1000 at --rate 2: over 4m0s"},
		{"fail/soap-requests-paced-past-the-bound", soap, 0, 1201, 5, "--requests 1201 at --rate 5: over 4m0s"},
		{"fail/soap-requests", soap, 0, 100001, 0, "--requests 100001: at most 100000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.w.fits(tc.dur, tc.requests, tc.rate)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || err.Error() != tc.want) {
				t.Fatalf("%v, want %q", err, tc.want)
			}
		})
	}
}

// TestCheckLoadFlags: the values loadtest takes reach the ends of their
// ranges, and one step past them is refused (the command's own refusals,
// with their words, are in TestFlagsRefused).
func TestCheckLoadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		conc int
		reqs int
		dur  time.Duration
		rate float64
		ok   bool
	}{
		{"ok/one-connection", 1, 10, 0, 0, true},
		{"ok/most-connections", maxConcurrency, 0, time.Second, 0, true},
		{"ok/unlimited-rate", 32, 0, time.Second, 0, true},
		{"fail/no-connection", 0, 10, 0, 0, false},
		{"fail/one-connection-too-many", maxConcurrency + 1, 10, 0, 0, false},
		{"fail/requests-and-duration", 32, 10, time.Second, 0, false},
		{"fail/rate-infinite", 32, 10, 0, math.Inf(1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkLoadFlags(tc.conc, tc.reqs, tc.dur, tc.rate); (err == nil) != tc.ok {
				t.Fatalf("%v, want ok %v", err, tc.ok)
			}
		})
	}
}
