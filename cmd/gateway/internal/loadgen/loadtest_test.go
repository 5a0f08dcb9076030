package loadgen

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
)

// TestPoolExhausted: a duration run that sends every pre-signed notice
// before its time is up stops and says so; one that does not, does not.
func TestPoolExhausted(t *testing.T) {
	target := accepting(t, 0)
	for _, tc := range []struct {
		name              string
		dur               time.Duration
		presignRate, rate float64
		exhausted         bool
		clients           int
	}{
		// 2/s for 10 s: 20 + 2 notices, sent in far less than 10 s.
		{"ok/exhausted", 10 * time.Second, 2, 0, true, 2},
		// Paced at 50/s for 0.4 s: 20 + 2 notices, about 20 of them sent.
		{"ok/paced", 400 * time.Millisecond, 0, 50, false, 2},
		// Paced at 2,000/s for 0.5 s, ticks under a millisecond apart:
		// about 1,000 sent (a ticker's pace sent 492-508 here: it drops
		// the ticks it cannot deliver in time).
		{"ok/paced-fast", 500 * time.Millisecond, 0, 2000, false, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := target
			cfg.Concurrency, cfg.Duration, cfg.PresignRate, cfg.Rate = tc.clients, tc.dur, tc.presignRate, tc.rate
			s, err := LoadTest(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if s.PoolExhausted != tc.exhausted || s.Accepted == 0 {
				t.Fatalf("pool_exhausted %v, want %v (%+v)", s.PoolExhausted, tc.exhausted, s)
			}
			if tc.exhausted && (s.Accepted != 22 || s.DurationS >= tc.dur.Seconds()) {
				t.Fatalf("exhausted run: %d accepted in %.1f s, want 22 in under %v", s.Accepted, s.DurationS, tc.dur)
			}
			if want := tc.rate * tc.dur.Seconds(); tc.rate > 0 && (float64(s.Accepted) < 0.9*want || float64(s.Accepted) > want+1) {
				t.Fatalf("paced at %.0f/s for %v: %d accepted, want about %.0f", tc.rate, tc.dur, s.Accepted, want)
			}
		})
	}
}

// TestPresignLimit: a duration run signs no more than PresignLimit, however
// long it is and whatever its rate (an agency's messages expire), and ends
// when they are sent, saying so.
func TestPresignLimit(t *testing.T) {
	cfg := accepting(t, 0)
	cfg.Concurrency, cfg.Duration, cfg.PresignRate, cfg.PresignLimit = 2, 10*time.Second, 1000, 15
	s, err := LoadTest(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Accepted != 15 || !s.PoolExhausted || s.DurationS >= 10 {
		t.Fatalf("%d accepted in %.1f s (pool exhausted: %v), want the 15 signed, early", s.Accepted, s.DurationS, s.PoolExhausted)
	}
}

// TestSignProgress: signing that takes more than a second says how far it
// is, every second, in counts that only grow, and says when it is done.
func TestSignProgress(t *testing.T) {
	cfg := accepting(t, 0)
	sign := cfg.Sign
	cfg.Sign = func(doc []byte) ([]byte, error) {
		time.Sleep(25 * time.Millisecond) // 4 signers: 200 in about 1.25 s
		return sign(doc)
	}
	var mu sync.Mutex
	var heard [][2]int
	cfg.SignProgress = func(signed, total int) {
		mu.Lock()
		defer mu.Unlock()
		heard = append(heard, [2]int{signed, total})
	}
	cfg.Concurrency, cfg.Requests = 2, 200
	if _, err := LoadTest(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(heard) < 2 || heard[len(heard)-1] != [2]int{200, 200} || heard[0][0] <= 0 || heard[0][0] >= 200 {
		t.Fatalf("heard %v: want at least one count on the way and 200 of 200 last", heard)
	}
	for i := 1; i < len(heard); i++ {
		if heard[i][0] < heard[i-1][0] || heard[i][1] != 200 {
			t.Fatalf("heard %v", heard)
		}
	}
}

// TestAnswers: what each answer counts as, for notices (202 accepted, 200
// a duplicate), insurers' batches (200 processed, records counted by the
// batch's claims) and SOAP messages (200), and that each document goes to
// the route given with the headers given.
func TestAnswers(t *testing.T) {
	soap := http.Header{"Content-Type": {"text/xml; charset=utf-8"}, "Soapaction": {`"urn:x#Notify"`}}
	for _, tc := range []struct {
		name                   string
		route                  string
		header                 http.Header
		status, created        int
		records                int
		accepted, dups, errors int64
	}{
		{"ok/notices", "", nil, 202, 0, 0, 10, 0, 0},
		{"ok/notices-repeated", "", nil, 200, 0, 0, 0, 10, 0},
		{"ok/batches", "/v1/insurer-claims", nil, 200, 200, 3, 10, 0, 0},
		{"ok/soap", "/soap/v1/exchange", soap, 200, 200, 0, 10, 0, 0},
		{"fail/notice-refused", "", nil, 422, 0, 0, 0, 0, 10},
		{"fail/batch-answered-202", "/v1/insurer-claims", nil, 202, 200, 3, 0, 0, 10},
		{"fail/soap-fault", "/soap/v1/exchange", soap, 500, 200, 0, 0, 0, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var paths sync.Map
			cfg := answering(t, 0, tc.status, &paths)
			cfg.Route, cfg.Header, cfg.Created, cfg.RecordsPerRequest = tc.route, tc.header, tc.created, tc.records
			cfg.Concurrency, cfg.Requests = 2, 10
			var reads atomic.Int64 // the gateway's CPU: 1 s before the run, 1.3 s after it; 1 MiB, then 3
			cfg.Gateway = func() (Process, error) {
				if reads.Add(1) == 1 {
					return Process{CPUSeconds: 1, RSSBytes: 1 << 20}, nil
				}
				return Process{CPUSeconds: 1.3, RSSBytes: 3 << 20}, nil
			}
			s, err := LoadTest(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if s.Accepted != tc.accepted || s.Duplicates != tc.dups || s.ErrorsByStatus[strconv.Itoa(tc.status)] != tc.errors {
				t.Fatalf("accepted %d, duplicates %d, errors %v; want %d, %d, %d", s.Accepted, s.Duplicates, s.ErrorsByStatus, tc.accepted, tc.dups, tc.errors)
			}
			want := cmp.Or(tc.route, "/v1/injury-notices") + " " + cmp.Or(tc.header.Get("Content-Type"), "application/jose") + " " + tc.header.Get("SOAPAction")
			paths.Range(func(p, _ any) bool {
				if p != want {
					t.Errorf("posted to %v, want %s", p, want)
				}
				return true
			})
			if tc.records > 1 && tc.accepted > 0 && (s.RecordsPerRequest != tc.records || s.RecordsPerS != s.ThroughputPerS*float64(tc.records) ||
				s.GatewayCPUMicrosPerReq != 30000 || s.GatewayCPUMicrosPerRecord != 10000) {
				t.Fatalf("records: %d per request, %v/s at %v requests/s; gateway CPU %v µs per request, %v per record (want 30000, 10000)",
					s.RecordsPerRequest, s.RecordsPerS, s.ThroughputPerS, s.GatewayCPUMicrosPerReq, s.GatewayCPUMicrosPerRecord)
			}
			perReq := 0.0 // the gateway's 0.3 s over the requests it took
			if tc.accepted+tc.dups > 0 {
				perReq = 30000
			}
			if math.Abs(s.GatewayCPUSeconds-0.3) > 1e-9 || s.GatewayCPUMicrosPerReq != perReq || s.GatewayPeakRSSMB != 3 {
				t.Fatalf("gateway: %v CPU seconds, %v µs per request, peak %v MB; want 0.3, %v, 3", s.GatewayCPUSeconds, s.GatewayCPUMicrosPerReq, s.GatewayPeakRSSMB, perReq)
			}
			if tc.records <= 1 && (s.RecordsPerRequest != 0 || s.RecordsPerS != 0) {
				t.Fatalf("a notice run reports records: %+v", s)
			}
		})
	}
}

// accepting is the configuration of a run against a TLS server that
// answers every notice 202 after delay.
func accepting(t *testing.T, delay time.Duration) TestConfig {
	return answering(t, delay, http.StatusAccepted, nil)
}

// answering is the configuration of a run against a TLS server that
// answers every document status after delay, noting each path posted to
// with its Content-Type and SOAPAction in paths (when not nil).
func answering(t *testing.T, delay time.Duration, status int, paths *sync.Map) TestConfig {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if paths != nil {
			paths.Store(r.URL.Path+" "+r.Header.Get("Content-Type")+" "+r.Header.Get("SOAPAction"), true)
		}
		time.Sleep(delay)
		w.WriteHeader(status)
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.Import(priv)
	if err != nil {
		t.Fatal(err)
	}
	_ = key.Set(jwk.KeyIDKey, "k1")
	_ = key.Set(jwk.AlgorithmKey, jwa.ES256())
	return TestConfig{URL: srv.URL, TLS: &tls.Config{RootCAs: pool},
		Sign: func(doc []byte) ([]byte, error) {
			s, err := partnerkit.Sign(doc, key, partnerkit.Compact)
			return []byte(s), err
		},
		Document: func(i int) []byte { return []byte(`{"noticeId":"P-` + strconv.Itoa(i) + `"}`) }}
}

// TestSendLag: a paced run says how late it sent its requests, so a gateway
// slower than the rate shows even though latencies count from the send:
// one client against a server taking 10 ms a request, paced at 500/s, falls
// behind by most of the run; two clients paced at 100/s keep up. An
// unpaced run has no schedule to lag.
func TestSendLag(t *testing.T) {
	for _, tc := range []struct {
		name           string
		delay          time.Duration
		clients        int
		rate           float64
		minLag, maxLag float64 // ms, of the greatest lag
	}{
		{"ok/falls-behind", 10 * time.Millisecond, 1, 500, 150, 1000},
		{"ok/keeps-up", 0, 2, 100, 0, 50},
		{"ok/unpaced", 0, 2, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := accepting(t, tc.delay)
			cfg.Concurrency, cfg.Duration, cfg.Rate = tc.clients, 400*time.Millisecond, tc.rate
			s, err := LoadTest(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.rate == 0 {
				if s.SendLagMS != nil {
					t.Fatalf("an unpaced run reports send lag %v", s.SendLagMS)
				}
				return
			}
			if lag := s.SendLagMS["max"]; s.SendLagMS == nil || lag < tc.minLag || lag > tc.maxLag {
				t.Fatalf("greatest send lag %v ms (of %v), want %v to %v", lag, s.SendLagMS, tc.minLag, tc.maxLag)
			}
			latency := s.LatencyMS["max"]
			if tc.delay > 0 && latency > 100 {
				t.Fatalf("greatest latency %v ms: latencies should count from the send", latency)
			}
		})
	}
}

// TestRunFigures: a run of 12 requests that each take 200 ms, two at a
// time (1.2 s), reports its throughput over its own duration, latencies in
// milliseconds, tells its progress each second, and samples the gateway's
// memory during the run: a peak seen only by the first sample counts.
func TestRunFigures(t *testing.T) {
	cfg := accepting(t, 200*time.Millisecond)
	cfg.Concurrency, cfg.Requests = 2, 12
	var progress, reads atomic.Int64
	cfg.Progress = func(done, accepted int64, elapsed time.Duration) { progress.Add(1) }
	cfg.Gateway = func() (Process, error) {
		rss := float64(1 << 20)
		if reads.Add(1) == 2 { // the first sample, after the read before the run
			rss = 5 << 20
		}
		return Process{CPUSeconds: 1, RSSBytes: rss}, nil
	}
	s, err := LoadTest(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests != 12 || s.Accepted != 12 || s.DurationS < 1.2 || math.Abs(s.ThroughputPerS-12/s.DurationS) > 1e-9 {
		t.Fatalf("%d requests, %d accepted in %v s at %v/s; want 12, 12, at least 1.2 s, 12 over the duration", s.Requests, s.Accepted, s.DurationS, s.ThroughputPerS)
	}
	if p50 := s.LatencyMS["p50"]; p50 < 200 || p50 >= 2000 || s.LatencyMS["max"] < p50 {
		t.Fatalf("latencies %v ms; want p50 of 200 ms or a little more", s.LatencyMS)
	}
	if progress.Load() == 0 {
		t.Fatalf("a run of %v s told no progress", s.DurationS)
	}
	if s.GatewayPeakRSSMB != 5 || reads.Load() < 3 {
		t.Fatalf("peak RSS %v MB over %d reads, want the 5 sampled during the run", s.GatewayPeakRSSMB, reads.Load())
	}
}

// TestIntervals: a run of 1.2 s read in intervals of 300 ms gives each whole
// interval's answers per second (accepted or duplicate) and, the gateway
// here burning one core, about 1 s of its CPU per second of answers; the
// answers of the intervals are the run's, less those of its last part; a
// run without the gateway's figures gives rates alone.
func TestIntervals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		gateway bool
		status  int
	}{{"ok/with-gateway", true, http.StatusAccepted}, {"ok/without-gateway", false, http.StatusAccepted}, {"ok/duplicates", true, http.StatusOK}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := answering(t, 100*time.Millisecond, tc.status, nil)
			cfg.Concurrency, cfg.Requests, cfg.Interval = 2, 24, 300*time.Millisecond
			t0 := time.Now()
			if tc.gateway {
				cfg.Gateway = func() (Process, error) { return Process{CPUSeconds: time.Since(t0).Seconds()}, nil }
			}
			s, err := LoadTest(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Intervals) < 3 || len(s.Intervals) > int(s.DurationS/0.3) {
				t.Fatalf("%d intervals in %v s: %+v", len(s.Intervals), s.DurationS, s.Intervals)
			}
			answers, end := 0.0, 0.0
			for _, iv := range s.Intervals {
				if iv.EndS <= end || iv.EndS > s.DurationS+0.0005 || iv.PerS <= 0 { // end_s is rounded to the ms
					t.Fatalf("interval %+v after %v s of a %v s run", iv, end, s.DurationS)
				}
				answers += iv.PerS * (iv.EndS - end)
				end = iv.EndS
				core := iv.GatewayCPUMicrosPerReq * iv.PerS / 1e6 // CPU seconds per second
				// (within a fifth: a mark and its CPU reading are two reads, and a
				// busy machine may pause the ticker between them for some ms)
				if tc.gateway && math.Abs(core-1) > 0.2 || !tc.gateway && iv.GatewayCPUMicrosPerReq != 0 {
					t.Fatalf("interval %+v: the gateway's CPU comes to %.3f cores, want 1 (0 unread)", iv, core)
				}
			}
			// Answers come two at a time, every 100 ms: a last part shorter than
			// 60 ms (a fifth of the interval), left out, holds at most one pair.
			if answers < 21.5 || answers > 24.5 {
				t.Fatalf("the intervals' rates make %.1f answers of the run's 24: %+v", answers, s.Intervals)
			}
		})
	}
}

// TestInterrupted: a run whose context is canceled ends there and says so,
// its summary of what was sent until then, its intervals to its end; a
// run that ends by its duration or requests is not interrupted. Canceled
// while it signs, it stops signing and says how far it got.
func TestInterrupted(t *testing.T) {
	for _, tc := range []struct {
		name        string
		duration    time.Duration
		requests    int
		cancelAfter time.Duration // 0: never
		want        bool
		wantErr     string
	}{
		{"ok/duration-cut", 10 * time.Second, 0, 700 * time.Millisecond, true, ""},
		{"ok/requests-cut", 0, 1000, 700 * time.Millisecond, true, ""},
		{"ok/duration-ends", 500 * time.Millisecond, 0, 0, false, ""},
		{"ok/requests-end", 0, 8, 0, false, ""},
		{"fail/while-signing", 0, 200000, 100 * time.Millisecond, false, "interrupted while signing: context canceled ("},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := accepting(t, 50*time.Millisecond)
			cfg.Concurrency, cfg.Duration, cfg.Requests, cfg.Interval = 2, tc.duration, tc.requests, 200*time.Millisecond
			cfg.PresignRate = 100 // a duration run's pool signed in a moment
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancelAfter > 0 {
				time.AfterFunc(tc.cancelAfter, cancel)
			}
			began := time.Now()
			s, err := LoadTest(ctx, cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "(200000 of") || time.Since(began) > 2*time.Second {
					t.Fatalf("err %v after %v; want %q, signing stopped at once", err, time.Since(began), tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Interrupted != tc.want || s.Accepted == 0 || s.Requests != s.Accepted {
				t.Fatalf("interrupted %v after %v s, %d of %d accepted; want interrupted %v", s.Interrupted, s.DurationS, s.Accepted, s.Requests, tc.want)
			}
			// Its parts to its end: the last mark (every 200 ms) then the part
			// after it, unless that lasted under 40 ms (a fifth of the interval).
			if tc.want && (s.DurationS > 2 || len(s.Intervals) < 2 || s.Intervals[len(s.Intervals)-1].EndS < s.DurationS-0.0405) {
				t.Fatalf("a run stopped at %v: %v s, intervals %+v", tc.cancelAfter, s.DurationS, s.Intervals)
			}
		})
	}
}

// TestIntervalsOf: each interval's rate is its own answers over its own
// length, and its CPU its own; an interval without answers has no CPU per
// answer, and an unread CPU at either end gives none. The part from the
// last mark to the run's end is given when it is long enough.
func TestIntervalsOf(t *testing.T) {
	marks := []mark{
		{at: 2 * time.Second, answered: 100, cpu: 10.5},
		{at: 4 * time.Second, answered: 300, cpu: 10.6},
		{at: 5 * time.Second, answered: 300, cpu: 10.7},
		{at: 7 * time.Second, answered: 310, cpu: -1},
		{at: 9 * time.Second, answered: 330, cpu: 11},
	}
	want := []Interval{{2, 50, 5000}, {4, 100, 500}, {5, 0, 0}, {7, 5, 0}, {9, 10, 0}}
	for _, tc := range []struct {
		name string
		end  mark
		want []Interval
	}{
		{"ok/last-part-too-short", mark{at: 9900 * time.Millisecond, answered: 340, cpu: 11.01}, want},
		{"ok/last-part", mark{at: 11 * time.Second, answered: 350, cpu: 11.02}, append(want, Interval{11, 10, 1000})},
		{"ok/last-part-cpu-unread", mark{at: 11 * time.Second, answered: 350, cpu: -1}, append(want, Interval{11, 10, 0})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := intervals(marks, 10, tc.end, time.Second); !slices.Equal(got, tc.want) {
				t.Fatalf("intervals %+v, want %+v", got, tc.want)
			}
		})
	}
	if got := intervals(nil, 0, mark{at: 900 * time.Millisecond, answered: 9}, time.Second); got != nil {
		t.Fatalf("a run shorter than the shortest part: %+v", got)
	}
	if got := intervals(nil, 0, mark{at: 3 * time.Second, answered: 30, cpu: 0.03}, time.Second); !slices.Equal(got, []Interval{{3, 10, 1000}}) {
		t.Fatalf("a run shorter than its interval, longer than the shortest part: %+v", got)
	}
	// A gateway whose CPU read 0 at the start (a fresh process) was read.
	if got := intervals([]mark{{at: time.Second, answered: 10, cpu: 0.01}}, 0, mark{at: time.Second}, time.Second); len(got) != 1 || got[0].GatewayCPUMicrosPerReq != 1000 {
		t.Fatalf("from a CPU of 0: %+v", got)
	}
}

// TestWithDefaults: a run that leaves out its concurrency, route, headers,
// expected status and length gets 32 clients posting compact JWS notices
// for 10 s, expecting 202.
func TestWithDefaults(t *testing.T) {
	for _, in := range []TestConfig{{}, {Concurrency: -1, Duration: -time.Second, SilenceLimit: -time.Second, Interval: -time.Second}} {
		cfg, n := in.withDefaults()
		if cfg.Concurrency != 32 || cfg.Route != "/v1/injury-notices" || cfg.Header.Get("Content-Type") != "application/jose" ||
			cfg.Created != 202 || cfg.Duration != 10*time.Second || cfg.SilenceLimit != DefaultSilenceLimit || cfg.Interval != DefaultInterval || n <= 0 {
			t.Fatalf("defaults of %+v: %+v, %d notices", in, cfg, n)
		}
	}
	if cfg, n := (TestConfig{Requests: 7, Concurrency: 3}).withDefaults(); n != 7 || cfg.Concurrency != 3 {
		t.Fatalf("a run of 7 requests at 3: %+v, %d notices", cfg, n)
	}
}

// TestGatewayGone: a run whose gateway stops answering ends once nothing
// has answered for SilenceLimit, says so with the last request's error, and
// does not spend its pool on requests refused at once meanwhile. A gateway
// slower than the limit but answering is not gone.
func TestGatewayGone(t *testing.T) {
	for _, tc := range []struct {
		name     string
		closeAt  int64         // the server stops after this many answers (0: never)
		delay    time.Duration // before each answer
		down     bool          // nothing listens from the start
		accepted int64         // at least
	}{
		{"ok/slow-answers", 0, 500 * time.Millisecond, false, 2},
		{"fail/gateway-gone", 40, 0, false, 40},
		{"fail/never-there", 0, 0, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var answered atomic.Int64
			var srv *httptest.Server
			srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				time.Sleep(tc.delay)
				if answered.Add(1) == tc.closeAt {
					go srv.Close()
				}
				w.WriteHeader(http.StatusAccepted)
			}))
			srv.StartTLS()
			t.Cleanup(srv.Close)
			if tc.down {
				srv.Close()
			}
			pool := x509.NewCertPool()
			pool.AddCert(srv.Certificate())
			cfg := accepting(t, 0)
			cfg.URL, cfg.TLS = srv.URL, &tls.Config{RootCAs: pool}
			cfg.Concurrency, cfg.Duration, cfg.PresignRate, cfg.SilenceLimit = 4, time.Minute, 200, 300*time.Millisecond
			if tc.delay > 0 {
				cfg.Concurrency, cfg.Duration = 2, 1200*time.Millisecond
			}
			s, err := LoadTest(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if s.Accepted < tc.accepted {
				t.Fatalf("%d accepted, want at least %d (%+v)", s.Accepted, tc.accepted, s)
			}
			gone := tc.closeAt > 0 || tc.down
			if !gone {
				if s.Unreachable != "" || s.ErrorsByStatus["transport"] != 0 {
					t.Fatalf("a slow gateway taken for gone: %q, %v", s.Unreachable, s.ErrorsByStatus)
				}
				return
			}
			// 4 clients for about 0.3 s, a request each 0.1 s: about 16.
			if !strings.Contains(s.Unreachable, "no answer from the gateway for 300ms") || !strings.Contains(s.Unreachable, "connection refused") ||
				s.PoolExhausted || s.DurationS > 30 || s.ErrorsByStatus["transport"] > 100 {
				t.Fatalf("unreachable %q after %.1f s, %v errors, pool exhausted %v", s.Unreachable, s.DurationS, s.ErrorsByStatus, s.PoolExhausted)
			}
		})
	}
}

// TestShortOutage: a gateway that drops every connection unanswered for a
// while shorter than SilenceLimit, then answers again, does not end the
// run: the requests dropped are counted as transport errors, and those
// after the outage are accepted.
func TestShortOutage(t *testing.T) {
	var seen atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if n := seen.Add(1); n > 20 && n <= 40 { // about half a second of the run, at 4 clients pausing 0.1 s
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	cfg := accepting(t, 0)
	cfg.URL, cfg.TLS = srv.URL, &tls.Config{RootCAs: pool}
	cfg.Concurrency, cfg.Requests, cfg.SilenceLimit = 4, 200, 3*time.Second
	s, err := LoadTest(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Unreachable != "" || s.ErrorsByStatus["transport"] == 0 || s.Accepted+s.ErrorsByStatus["transport"] != 200 || s.Accepted <= 20 {
		t.Fatalf("unreachable %q, %d accepted, errors %v; want the run through its 200", s.Unreachable, s.Accepted, s.ErrorsByStatus)
	}
}

// TestSummaryJSON: the printed summary gives rates to a tenth and seconds to
// the millisecond, as its intervals and latencies; the summary itself keeps
// its figures whole.
func TestSummaryJSON(t *testing.T) {
	s := Summary{ThroughputPerS: 1618.3946328706868, RecordsPerS: 4855.18389861206, DurationS: 3.000504266,
		ClientCPUSecond: 0.215845, PresignSeconds: 0.208584484, GatewayCPUSeconds: 3.9799999999999995}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"throughput_per_s":1618.4`, `"records_per_s":4855.2`, `"duration_s":3.001`,
		`"client_cpu_seconds":0.216`, `"presign_seconds":0.209`, `"gateway_cpu_seconds":3.98`} {
		if !regexp.MustCompile(regexp.QuoteMeta(want) + `[,}]`).Match(b) {
			t.Fatalf("the summary lacks %s:\n%s", want, b)
		}
	}
	if s.ThroughputPerS != 1618.3946328706868 || s.GatewayCPUSeconds != 3.9799999999999995 {
		t.Fatalf("the summary's own figures changed: %+v", s)
	}
}
