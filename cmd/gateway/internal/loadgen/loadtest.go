package loadgen

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// TestConfig describes a load test: distinct documents, pre-signed, sent by
// Concurrency keep-alive clients, for Requests or Duration, at most Rate per
// second (0: as fast as the gateway answers).
type TestConfig struct {
	URL string // gateway base URL (loopback only)
	// Route is the path each document is posted to (default
	// "/v1/injury-notices").
	Route string
	// Header is sent with each document besides Host and Content-Length
	// (default: Content-Type application/jose, for a compact JWS).
	Header http.Header
	TLS    *tls.Config
	// Document returns the i-th document; each must be new to the gateway
	// (its own noticeId, batchId and claim numbers, or MessageId). Sign
	// signs it for sending; both are called before the clock starts, from
	// several goroutines at once.
	Document func(i int) []byte
	Sign     func(doc []byte) ([]byte, error)
	// Created is the status answering a document new to the gateway:
	// 202 for a notice (the default), 200 for an insurer's batch. A notice
	// answered 200 is a duplicate; a batch's repeat is answered 200 too,
	// and counts as created.
	Created int
	// RecordsPerRequest is how many records each document holds (an
	// insurer's batch: its claims), for the summary's records per second
	// and CPU per record; 0 or 1 for a notice.
	RecordsPerRequest int
	Concurrency       int
	Requests          int
	Duration          time.Duration
	Rate              float64
	Progress          func(done, accepted int64, elapsed time.Duration)
	// SignProgress, when set, hears every second how many of the
	// documents are signed, and once more when all are: an agency's
	// messages, an RSA signature each, take a minute to sign for a long
	// run, which would otherwise pass in silence.
	SignProgress func(signed, total int)
	// PresignRate sizes the pool of a Duration run without Rate: enough
	// notices for the duration at this many per second (default
	// DefaultPresignRate, at most MaxPresign).
	PresignRate float64
	// PresignLimit, when positive, bounds that pool below MaxPresign: an
	// agency's messages, whose timestamps expire, are signed no more than
	// the run can send in time.
	PresignLimit int
	// SilenceLimit is how long the run goes on while every request fails
	// before any answer (default DefaultSilenceLimit): past it, the
	// gateway is taken to be gone and the run ends, saying so in
	// Summary.Unreachable.
	SilenceLimit time.Duration
	// Gateway, when set, reads the gateway process's CPU seconds and
	// resident memory (ProcessStats), so the summary can give its CPU cost
	// per notice — the figure that decides throughput on a machine the load
	// generator shares — and its peak memory.
	Gateway func() (Process, error)
	// Interval is the length of the parts of the run the summary gives
	// one by one (default DefaultInterval): a run's rate falls from its
	// first seconds as the store grows, which its average hides.
	Interval time.Duration
}

// DefaultInterval is the length of a summary's intervals.
const DefaultInterval = 5 * time.Second

// Process is what the gateway's metrics say of its process.
type Process struct {
	CPUSeconds float64 // process_cpu_seconds_total
	RSSBytes   float64 // process_resident_memory_bytes
}

// Summary is the JSON the load test prints.
type Summary struct {
	Requests        int64              `json:"requests"`
	Accepted        int64              `json:"accepted"`
	Duplicates      int64              `json:"duplicates"`
	ErrorsByStatus  map[string]int64   `json:"errors_by_status"`
	ThroughputPerS  float64            `json:"throughput_per_s"`
	LatencyMS       map[string]float64 `json:"latency_ms"`
	DurationS       float64            `json:"duration_s"`
	Concurrency     int                `json:"concurrency"`
	ClientCPUSecond float64            `json:"client_cpu_seconds"`
	PresignSeconds  float64            `json:"presign_seconds"`
	// The gateway process's CPU during the run (with Gateway): in dev
	// mode that process also runs the relay and the embedded broker.
	GatewayCPUSeconds      float64 `json:"gateway_cpu_seconds,omitempty"`
	GatewayCPUMicrosPerReq float64 `json:"gateway_cpu_us_per_notice,omitempty"`
	// The highest resident memory among samples taken every half second
	// during the run (a peak between samples can be missed).
	GatewayPeakRSSMB float64 `json:"gateway_peak_rss_mb,omitempty"`
	// RecordsPerRequest, RecordsPerS and GatewayCPUMicrosPerRecord: a
	// run of documents holding several records each (insurers' batches).
	RecordsPerRequest         int     `json:"records_per_request,omitempty"`
	RecordsPerS               float64 `json:"records_per_s,omitempty"`
	GatewayCPUMicrosPerRecord float64 `json:"gateway_cpu_us_per_record,omitempty"`
	// PoolExhausted: a Duration run ended early because every pre-signed
	// notice had been sent.
	PoolExhausted bool `json:"pool_exhausted,omitempty"`
	// SendLagMS (a Rate run): how late the requests were sent behind their
	// schedule, p50, p99 and max in ms. Latencies are counted from the
	// send, so a gateway slower than the rate shows here, not there.
	SendLagMS map[string]float64 `json:"send_lag_ms,omitempty"`
	// Unreachable: the run ended early because the gateway answered
	// nothing for SilenceLimit while every request failed; it says for
	// how long and the last request's error.
	Unreachable string `json:"unreachable,omitempty"`
	// Intervals: the run in parts of TestConfig.Interval, in turn, and
	// its last, shorter part when that lasted a fifth of one or more
	// (a 12 s run's 10-12 s; an interrupted run's last seconds).
	Intervals []Interval `json:"intervals,omitempty"`
	// Interrupted: the run was stopped (its context canceled: Ctrl-C)
	// before its duration or its requests were done; the summary is of
	// what was sent until then.
	Interrupted bool `json:"interrupted,omitempty"`
}

// MarshalJSON writes the summary with its rates to a tenth of a request a
// second and its seconds to the millisecond, as its intervals and
// latencies are: a float's last digits ("throughput_per_s":
// 1618.3946328706868) are noise to whoever reads the summary.
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary // without this method
	p := plain(s)
	tenth := func(v float64) float64 { return math.Round(v*10) / 10 }
	milli := func(v float64) float64 { return math.Round(v*1000) / 1000 }
	p.ThroughputPerS, p.RecordsPerS = tenth(p.ThroughputPerS), tenth(p.RecordsPerS)
	p.DurationS, p.ClientCPUSecond, p.PresignSeconds, p.GatewayCPUSeconds = milli(p.DurationS), milli(p.ClientCPUSecond), milli(p.PresignSeconds), milli(p.GatewayCPUSeconds)
	return json.Marshal(p)
}

// Interval is one part of a run: its answers per second (accepted and
// duplicate, as ThroughputPerS) and, with Gateway, the gateway's CPU per
// answer within it.
type Interval struct {
	EndS                   float64 `json:"end_s"` // from the run's start
	PerS                   float64 `json:"per_s"`
	GatewayCPUMicrosPerReq float64 `json:"gateway_cpu_us_per_notice,omitempty"`
}

// mark is the state of a run at the end of an interval.
type mark struct {
	at       time.Duration // from the start
	answered int64
	cpu      float64 // the gateway's CPU seconds; -1 when unread
}

// intervals are the parts between consecutive marks, the first from the
// start (answered 0, the gateway's CPU cpu0), and then the part to the
// run's end when it lasted minTail or more: a shorter one's rate is of too
// few answers to read.
func intervals(marks []mark, cpu0 float64, end mark, minTail time.Duration) []Interval {
	var out []Interval
	prev := mark{cpu: cpu0}
	var lastAt time.Duration
	if len(marks) > 0 {
		lastAt = marks[len(marks)-1].at
	}
	if end.at-lastAt >= minTail {
		marks = append(marks, end)
	}
	for _, m := range marks {
		n, secs := m.answered-prev.answered, (m.at - prev.at).Seconds()
		iv := Interval{EndS: math.Round(m.at.Seconds()*1000) / 1000, PerS: math.Round(float64(n)/secs*10) / 10}
		if n > 0 && m.cpu >= 0 && prev.cpu >= 0 {
			iv.GatewayCPUMicrosPerReq = math.Round((m.cpu - prev.cpu) / float64(n) * 1e6)
		}
		out, prev = append(out, iv), m
	}
	return out
}

// A Duration run pre-signs enough notices for DefaultPresignRate per
// second, above the target of 6,000, and at most MaxPresign (about 2.7 KB
// each in the load generator's memory; 1.4 GB at the cap).
const (
	DefaultPresignRate = 8000
	MaxPresign         = 500000
)

// A request that fails before any answer (the gateway refused the
// connection, reset it, or did not answer in time) holds its client back
// for transportPause: a gateway that died would otherwise be sent the whole
// pool, tens of thousands of requests a second failing at once. After
// DefaultSilenceLimit with no answer at all, the run ends.
const (
	transportPause      = 100 * time.Millisecond
	DefaultSilenceLimit = 5 * time.Second
)

// rssSampleEvery is how often the gateway's memory is sampled.
const rssSampleEvery = 500 * time.Millisecond

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// withDefaults fills in the concurrency and duration a run leaves out and
// returns how many notices to sign: Requests, or for a Duration run enough
// for the duration at a generous rate (or at Rate).
func (cfg TestConfig) withDefaults() (TestConfig, int) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 32
	}
	if cfg.Route == "" {
		cfg.Route = "/v1/injury-notices"
	}
	if cfg.Header == nil {
		cfg.Header = http.Header{"Content-Type": {"application/jose"}}
	}
	if cfg.Created == 0 {
		cfg.Created = http.StatusAccepted
	}
	if cfg.SilenceLimit <= 0 {
		cfg.SilenceLimit = DefaultSilenceLimit
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Requests > 0 {
		return cfg, cfg.Requests
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	rate := cfg.PresignRate
	if rate <= 0 {
		rate = DefaultPresignRate
	}
	if cfg.Rate > 0 {
		rate = cfg.Rate
	}
	limit := MaxPresign
	if cfg.PresignLimit > 0 {
		limit = min(limit, cfg.PresignLimit)
	}
	return cfg, min(limit, int(rate*cfg.Duration.Seconds())+cfg.Concurrency)
}

// LoadTest runs the test and returns its summary.
func LoadTest(ctx context.Context, cfg TestConfig) (*Summary, error) {
	if err := CheckLoopback(cfg.URL); err != nil {
		return nil, err
	}
	cfg, n := cfg.withDefaults()
	t0 := time.Now()
	bodies, err := presign(ctx, cfg, n)
	if err != nil {
		return nil, err
	}
	presigned := time.Since(t0)

	conns := make([]*leanConn, cfg.Concurrency)
	for w := range conns {
		c, err := newLeanConn(cfg.URL, cfg.Route, cfg.TLS, 30*time.Second)
		if err != nil {
			return nil, err
		}
		conns[w] = c
	}
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	tl := &tally{created: strconv.Itoa(cfg.Created), errs: map[string]int64{}, lat: make([]time.Duration, 0, n)}
	runCtx := ctx
	if cfg.Requests <= 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	runCtx, giveUp := context.WithCancelCause(runCtx)
	defer giveUp(nil)
	// The gateway's figures, read at the start, by the RSS sampler, at each
	// interval's mark and at the end; none when the first read failed.
	var gw0 Process
	gwErr := error(nil)
	if cfg.Gateway != nil {
		gw0, gwErr = cfg.Gateway()
	}
	readGateway := func() (Process, bool) {
		if cfg.Gateway == nil || gwErr != nil {
			return Process{}, false
		}
		p, err := cfg.Gateway()
		return p, err == nil
	}
	peakRSS := gw0.RSSBytes
	cpu0 := cpuSeconds()
	start := time.Now()
	tl.heard(start)
	stop := make(chan struct{})
	var sampled, reported <-chan struct{} // closed when the sampler and the progress line have stopped
	if cfg.Gateway != nil && gwErr == nil {
		sampled = every(rssSampleEvery, stop, func() {
			if p, ok := readGateway(); ok {
				peakRSS = max(peakRSS, p.RSSBytes)
			}
		})
	}
	if cfg.Progress != nil {
		reported = every(time.Second, stop, func() {
			cfg.Progress(tl.done.Load(), tl.accepted.Load(), time.Since(start))
		})
	}
	// markAt is the run's state at, with the gateway's figures read then.
	markAt := func(at time.Duration) (m mark, gw Process, read bool) {
		m = mark{at: at, answered: tl.answered(), cpu: -1}
		if gw, read = readGateway(); read {
			m.cpu = gw.CPUSeconds
		}
		return m, gw, read
	}
	var marks []mark // written by the ticker below alone, read once it has stopped
	marked := every(cfg.Interval, stop, func() {
		m, _, _ := markAt(time.Since(start))
		marks = append(marks, m)
	})
	r := &run{cfg: cfg, bodies: bodies, header: headerLines(cfg.Header), tl: tl, start: start, giveUp: giveUp}
	var wg sync.WaitGroup
	for _, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.send(runCtx, conn)
		}()
	}
	wg.Wait()
	close(stop)
	elapsed := time.Since(start)
	for _, c := range []<-chan struct{}{sampled, reported, marked} {
		if c != nil {
			<-c
		}
	}
	end, gw1, gw1Read := markAt(elapsed)
	s := tl.summary(elapsed)
	s.Intervals = intervals(marks, gw0.CPUSeconds, end, cfg.Interval/5) // without the gateway's figures, each mark's CPU is unread
	s.Concurrency, s.ClientCPUSecond, s.PresignSeconds, s.PoolExhausted = cfg.Concurrency, cpuSeconds()-cpu0, presigned.Seconds(), r.exhausted.Load()
	if q, ok := context.Cause(runCtx).(*silence); ok {
		s.Unreachable = q.Error()
	}
	// Stopped by ctx when the run's cause is ctx's (a signal's, say): its
	// own deadline and the silence are causes of their own, and a run that
	// sent all its requests is not interrupted by a stop that comes after.
	s.Interrupted = ctx.Err() != nil && context.Cause(runCtx) == context.Cause(ctx) && (cfg.Requests <= 0 || s.Requests < int64(cfg.Requests))
	if gw1Read {
		s.addGateway(gw0, gw1, peakRSS)
	}
	if k := cfg.RecordsPerRequest; k > 1 {
		s.RecordsPerRequest, s.RecordsPerS = k, s.ThroughputPerS*float64(k)
		s.GatewayCPUMicrosPerRecord = math.Round(s.GatewayCPUMicrosPerReq / float64(k))
	}
	return s, nil
}

// addGateway adds the gateway's CPU between its readings before and after
// the run, per answered request, and its peak memory.
func (s *Summary) addGateway(before, after Process, peakRSS float64) {
	s.GatewayCPUSeconds = after.CPUSeconds - before.CPUSeconds
	if n := s.Accepted + s.Duplicates; n > 0 {
		s.GatewayCPUMicrosPerReq = math.Round(s.GatewayCPUSeconds / float64(n) * 1e6)
	}
	s.GatewayPeakRSSMB = math.Round(max(peakRSS, after.RSSBytes) / (1 << 20))
}

// run is a load test under way: its clients share the pool of signed
// documents and the tally.
type run struct {
	cfg       TestConfig
	bodies    [][]byte
	header    []byte
	tl        *tally
	start     time.Time
	giveUp    context.CancelCauseFunc
	sent      atomic.Int64 // documents taken from the pool
	exhausted atomic.Bool  // a Duration run took the last one before its time was up
}

// send is one client: it sends the pool's next document, paced when the
// run has a Rate, until the run ends, the pool is spent or the gateway
// has been silent for SilenceLimit.
func (r *run) send(ctx context.Context, conn *leanConn) {
	for ctx.Err() == nil {
		i := r.sent.Add(1) - 1
		if i >= int64(len(r.bodies)) {
			if r.cfg.Requests <= 0 && ctx.Err() == nil {
				r.exhausted.Store(true)
			}
			return
		}
		if r.cfg.Rate > 0 {
			due := r.start.Add(time.Duration(float64(i) / r.cfg.Rate * float64(time.Second)))
			if !waitUntil(ctx, due) {
				return
			}
			r.tl.sentLate(time.Since(due))
		}
		t := time.Now()
		code, err := conn.post(ctx, r.header, r.bodies[i])
		d := time.Since(t)
		if err != nil && ctx.Err() != nil {
			return // the run ended while dialling: not counted
		}
		if err == nil {
			r.tl.heard(t.Add(d))
			r.tl.record(strconv.Itoa(code), d)
			continue
		}
		r.tl.record("transport", d)
		if time.Since(r.tl.lastHeard()) > r.cfg.SilenceLimit {
			r.giveUp(&silence{limit: r.cfg.SilenceLimit, last: err})
			return
		}
		if !waitUntil(ctx, time.Now().Add(transportPause)) {
			return
		}
	}
}

// waitUntil waits until t, or returns false if ctx ends first. A paced run
// sends request i at start + i/Rate, or at once if that is past: a ticker
// drops the ticks its receivers miss, and on this machine its sub-
// millisecond ticks came late enough that --rate 3000 sent about 1,400
// requests a second (TestPoolExhausted ok/paced-fast). A request due when
// the run is over is not sent.
func waitUntil(ctx context.Context, t time.Time) bool {
	if end, ok := ctx.Deadline(); ok && !t.Before(end) {
		return false
	}
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// silence ends a run whose gateway answered nothing for limit.
type silence struct {
	limit time.Duration
	last  error // the last request's
}

func (s *silence) Error() string {
	return fmt.Sprintf("no answer from the gateway for %s; the last request: %v", s.limit, s.last)
}

// tally counts a run's answers as the workers record them.
type tally struct {
	created        string       // the status of a new document ("202", or a batch's "200")
	done, accepted atomic.Int64 // read by the progress line while the run goes on
	lastAnswer     atomic.Int64 // when the latest answer came (Unix ns), of any status
	mu             sync.Mutex
	dups           int64
	errs           map[string]int64 // by status, or "transport"
	lat            []time.Duration  // of answered notices (202 and 200)
	lag            []time.Duration  // a paced run's sends behind their schedule
}

// heard notes an answer at at; the run's start counts as one. Workers
// racing may store one a moment older than another's: nothing next to a
// silence limit of seconds.
func (t *tally) heard(at time.Time) { t.lastAnswer.Store(at.UnixNano()) }

func (t *tally) lastHeard() time.Time { return time.Unix(0, t.lastAnswer.Load()) }

// answered is how many requests were answered accepted or duplicate so far.
func (t *tally) answered() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.accepted.Load() + t.dups
}

func (t *tally) sentLate(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lag = append(t.lag, d)
}

func (t *tally) record(status string, d time.Duration) {
	t.done.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch status {
	case t.created:
		t.accepted.Add(1)
		t.lat = append(t.lat, d)
	case "200": // a notice already accepted
		t.dups++
		t.lat = append(t.lat, d)
	default:
		t.errs[status]++
	}
}

// summary is the run's counts, rate and latencies, once it is over.
func (t *tally) summary(elapsed time.Duration) *Summary {
	slices.Sort(t.lat)
	accepted := t.accepted.Load()
	s := &Summary{Requests: t.done.Load(), Accepted: accepted, Duplicates: t.dups, ErrorsByStatus: t.errs,
		ThroughputPerS: float64(accepted+t.dups) / elapsed.Seconds(), DurationS: elapsed.Seconds(),
		LatencyMS: map[string]float64{"p50": percentile(t.lat, 0.50), "p90": percentile(t.lat, 0.90), "p99": percentile(t.lat, 0.99), "max": percentile(t.lat, 1)}}
	if len(t.lag) > 0 {
		slices.Sort(t.lag)
		s.SendLagMS = map[string]float64{"p50": percentile(t.lag, 0.50), "p99": percentile(t.lag, 0.99), "max": percentile(t.lag, 1)}
	}
	return s
}

// percentile is the p-th of sorted durations, in ms.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[min(len(sorted)-1, int(float64(len(sorted))*p))].Microseconds()) / 1000
}

// presign signs n distinct documents (cfg.Document(i)) before the clock
// starts, on four goroutines, telling cfg.SignProgress how far it is. It
// stops at the first error, or when ctx is done.
func presign(ctx context.Context, cfg TestConfig, n int) ([][]byte, error) {
	bodies := make([][]byte, n)
	var wg sync.WaitGroup
	var (
		mu      sync.Mutex
		signErr error // the first; read once the workers are done
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		signErr = cmp.Or(signErr, err)
	}
	var signed atomic.Int64
	if cfg.SignProgress != nil {
		stop := make(chan struct{})
		reported := every(time.Second, stop, func() { cfg.SignProgress(int(signed.Load()), n) })
		defer func() {
			close(stop)
			<-reported
			if signErr == nil {
				cfg.SignProgress(n, n)
			}
		}()
	}
	const workers = 4
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if ctx.Err() != nil { // stopped while signing: an agency's minute of it, say
					fail(fmt.Errorf("interrupted while signing: %w", ctx.Err()))
					return
				}
				b, err := cfg.Sign(cfg.Document(i))
				if err != nil {
					fail(err)
					return
				}
				bodies[i] = b
				signed.Add(1)
			}
		}(w)
	}
	wg.Wait()
	if signErr != nil {
		return nil, fmt.Errorf("%w (%d of %d signed)", signErr, signed.Load(), n)
	}
	return bodies, nil
}

// every calls f every d until stop is closed; the channel it returns is
// closed once it has stopped.
func every(d time.Duration, stop <-chan struct{}, f func()) <-chan struct{} {
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tk := time.NewTicker(d)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				f()
			}
		}
	}()
	return stopped
}

// ProcessStats reads process_cpu_seconds_total and
// process_resident_memory_bytes from a Prometheus endpoint (the gateway's
// operator listener, /metrics).
func ProcessStats(metricsURL string) func() (Process, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	return func() (Process, error) {
		var p Process
		resp, err := c.Get(metricsURL)
		if err != nil {
			return p, err
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := 0
		for sc.Scan() && found < 2 {
			for _, m := range []struct {
				name string
				dst  *float64
			}{{"process_cpu_seconds_total ", &p.CPUSeconds}, {"process_resident_memory_bytes ", &p.RSSBytes}} {
				if v, ok := strings.CutPrefix(sc.Text(), m.name); ok {
					if *m.dst, err = strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil {
						return p, fmt.Errorf("loadgen: %s: %s: %w", metricsURL, m.name, err)
					}
					found++
				}
			}
		}
		if found < 2 {
			return p, fmt.Errorf("loadgen: %s lacks process_cpu_seconds_total or process_resident_memory_bytes", metricsURL)
		}
		return p, nil
	}
}

// String is the progress line.
func ProgressLine(done, accepted int64, elapsed time.Duration) string {
	return fmt.Sprintf("loadtest: %d sent, %d accepted, %.0f/s, %s", done, accepted, float64(accepted)/elapsed.Seconds(), elapsed.Round(time.Second))
}
