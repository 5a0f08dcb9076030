package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/perkeso/jambatan/adapters/sgemployer"
	"github.com/perkeso/jambatan/cmd/gateway/internal/devmode"
	"github.com/perkeso/jambatan/cmd/gateway/internal/loadgen"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
)

func runLoadTest(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("loadtest", stderr)
	dir := fs.String("dev", devmode.DefaultDir, "dev directory of a running \"gateway dev\" (loopback only)")
	partnerID := fs.String("partner", "", "partner in dev.json: an employer sends notices, an insurer batches, an agency NotifyInjury messages (default: the first employer)")
	conc := fs.Int("concurrency", 32, "concurrent keep-alive clients")
	dur := fs.Duration("duration", 0, "run this long (default 10s unless --requests)")
	reqs := fs.Int("requests", 0, "send this many documents instead of running for a duration")
	rate := fs.Float64("rate", 0, "at most this many requests per second (0: unlimited)")
	prefix := fs.String("prefix", "", "noticeId, batchId or MessageId prefix (default: LT-<unix time>-<6 random hex>-)")
	template := fs.String("template", "", "notice, batch or NotifyInjury envelope to vary, its ids replaced in each (default: the format's example)")
	if err := parse(fs, args, 0); err != nil {
		return errUsage
	}
	if err := checkLoadFlags(*conc, *reqs, *dur, *rate); err != nil {
		return err
	}
	var tmpl []byte
	if *template != "" {
		var err error
		if tmpl, err = os.ReadFile(*template); err != nil {
			return err
		}
	}
	format := ""
	if *partnerID == "" {
		format = sgemployer.Format
	}
	d, p, err := loadPartner(*dir, *partnerID, format)
	if err != nil {
		return err
	}
	if *prefix == "" {
		// Distinct across runs, even two started in the same second (a
		// notice sent again would be a DUPLICATE, not a new notice), and
		// short enough for noticeId's 32 characters and claimNo's 30 with
		// a 6-digit index.
		var r [3]byte
		_, _ = rand.Read(r[:])
		*prefix = fmt.Sprintf("LT-%d-%s-", time.Now().Unix(), hex.EncodeToString(r[:]))
	}
	w, err := workloadOf(p, tmpl, *template, *prefix)
	if err != nil {
		return err
	}
	if err := w.fits(*dur, *reqs, *rate); err != nil {
		return fmt.Errorf("%w for %s (its messages' timestamps are signed before the run, and expire)", err, p.Format)
	}
	tc, err := partnerkit.TLSConfig(d.CACert, p.ClientCert, p.ClientKey)
	if err != nil {
		return err
	}
	s, err := loadgen.LoadTest(ctx, loadgen.TestConfig{URL: d.GatewayURL, Route: w.route, Header: w.header, TLS: tc,
		Document: w.document, Sign: w.sign, Created: w.created, RecordsPerRequest: w.records, PresignRate: w.presignRate, PresignLimit: w.maxRequests,
		Concurrency: *conc, Requests: *reqs, Duration: *dur, Rate: *rate,
		Gateway: loadgen.ProcessStats(d.MetricsURL),
		Progress: func(done, acc int64, el time.Duration) {
			fmt.Fprintf(stderr, "\r%s   ", loadgen.ProgressLine(done, acc, el))
		},
		SignProgress: func(signed, total int) {
			fmt.Fprintf(stderr, "\rloadtest: %d of %d signed   ", signed, total)
			if signed == total {
				fmt.Fprintln(stderr)
			}
		}})
	fmt.Fprintln(stderr)
	if err != nil {
		return err
	}
	if s.PoolExhausted {
		fmt.Fprintf(stderr, "loadtest: every pre-signed document was sent before %s; the run ended early (pool_exhausted)\n", *dur)
	}
	if s.Interrupted {
		fmt.Fprintf(stderr, "loadtest: interrupted after %.1fs; the summary is of what was sent until then (interrupted)\n", s.DurationS)
	}
	out, _ := json.MarshalIndent(s, "", "  ")
	fmt.Fprintf(stdout, "%s\n", out)
	if s.Unreachable != "" {
		return fmt.Errorf("the run ended early (unreachable): %s", s.Unreachable)
	}
	return nil
}

// maxConcurrency bounds --concurrency: each client is a TLS connection held
// open for the whole run.
const maxConcurrency = 4096

// checkLoadFlags refuses values the run could only misread: a negative or
// zero count, or both a duration and a request count.
func checkLoadFlags(conc, reqs int, dur time.Duration, rate float64) error {
	switch {
	case conc < 1 || conc > maxConcurrency:
		return fmt.Errorf("--concurrency %d: must be 1 to %d", conc, maxConcurrency)
	case reqs < 0:
		return fmt.Errorf("--requests %d: must be positive", reqs)
	case dur < 0:
		return fmt.Errorf("--duration %s: must be positive", dur)
	case reqs > 0 && dur > 0:
		return errors.New("--duration and --requests: give one or the other")
	case rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0):
		return fmt.Errorf("--rate %v: must be a positive number of requests per second (or 0: unlimited)", rate)
	}
	return nil
}
