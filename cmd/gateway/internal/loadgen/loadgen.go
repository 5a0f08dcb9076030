// Package loadgen is the project's own load generator: it submits many
// distinct signed notices (a template with a unique noticeId each) over
// mutual TLS with several concurrent clients, and reports counts, the rate
// and latency percentiles. It targets loopback gateways only.
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
)

// Config describes one run.
type Config struct {
	Client      *partnerkit.Client
	Key         jwk.Key
	Template    []byte // a valid notice containing TemplateID as its noticeId
	TemplateID  string
	Prefix      string // noticeIds are Prefix + sequence number
	Start, N    int    // sequence numbers Start .. Start+N-1
	Concurrency int
	Progress    func(Stats)
}

// Result of one submission that got an answer.
type Result struct {
	Seq      int
	Status   int
	RecordID string
}

// Stats summarises a run.
type Stats struct {
	Sent, Accepted, Duplicate, Refused, Errors int64
	Elapsed                                    time.Duration
	P50, P99, Max                              time.Duration
}

// Rate is accepted notices per second.
func (s Stats) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Accepted+s.Duplicate) / s.Elapsed.Seconds()
}

func (s Stats) String() string {
	return fmt.Sprintf("%d sent: %d accepted, %d duplicate, %d refused, %d errors in %s (%.0f/s; p50 %s, p99 %s, max %s)",
		s.Sent, s.Accepted, s.Duplicate, s.Refused, s.Errors, s.Elapsed.Round(time.Millisecond), s.Rate(),
		s.P50.Round(time.Microsecond), s.P99.Round(time.Microsecond), s.Max.Round(time.Microsecond))
}

// CheckLoopback refuses targets that are not on this machine.
func CheckLoopback(gatewayURL string) error {
	u, err := url.Parse(gatewayURL)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("load generator targets loopback only, not %q", host)
}

// Run submits the notices; it stops early when ctx is done. Results lists
// every submission that received an HTTP answer.
func Run(ctx context.Context, cfg Config) (Stats, []Result) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if err := CheckLoopback(cfg.Client.BaseURL); err != nil {
		return Stats{Errors: 1}, nil
	}
	var st Stats
	var mu sync.Mutex
	var results []Result
	var lat []time.Duration
	next := int64(cfg.Start - 1)
	start := time.Now()
	var wg sync.WaitGroup
	stopProgress := make(chan struct{})
	if cfg.Progress != nil {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
					return
				case <-t.C:
					mu.Lock()
					s := st
					mu.Unlock()
					s.Elapsed = time.Since(start)
					cfg.Progress(s)
				}
			}
		}()
	}
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				seq := int(atomic.AddInt64(&next, 1))
				if seq >= cfg.Start+cfg.N {
					return
				}
				id := fmt.Sprintf("%s%d", cfg.Prefix, seq)
				doc := bytes.Replace(cfg.Template, []byte(`"`+cfg.TemplateID+`"`), []byte(`"`+id+`"`), 1)
				t0 := time.Now()
				resp, err := cfg.Client.Submit("/v1/injury-notices", doc, cfg.Key, partnerkit.Compact)
				d := time.Since(t0)
				mu.Lock()
				st.Sent++
				switch {
				case err != nil:
					st.Errors++
				case resp.Status == 202 || resp.Status == 200:
					var a partnerkit.Accepted
					_ = json.Unmarshal(resp.Body, &a)
					if resp.Status == 202 {
						st.Accepted++
					} else {
						st.Duplicate++
					}
					results = append(results, Result{Seq: seq, Status: resp.Status, RecordID: a.RecordID})
					lat = append(lat, d)
				default:
					st.Refused++
					results = append(results, Result{Seq: seq, Status: resp.Status})
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stopProgress)
	st.Elapsed = time.Since(start)
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		st.P50, st.P99, st.Max = lat[n/2], lat[min(n-1, n*99/100)], lat[n-1]
	}
	return st, results
}
