package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/perkeso/jambatan/adapters/insurerclaim"
	"github.com/perkeso/jambatan/adapters/sgemployer"
	"github.com/perkeso/jambatan/cmd/gateway/internal/devmode"
	"github.com/perkeso/jambatan/cmd/gateway/internal/loadgen"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
)

func runLoadTest(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("loadtest", stderr)
	dir := fs.String("dev", devmode.DefaultDir, "dev directory of a running \"gateway dev\" (loopback only)")
	partnerID := fs.String("partner", "", "JWS partner in dev.json: an employer sends notices, an insurer batches (default: the first employer)")
	conc := fs.Int("concurrency", 32, "concurrent keep-alive clients")
	dur := fs.Duration("duration", 0, "run this long (default 10s unless --requests)")
	reqs := fs.Int("requests", 0, "send this many documents instead of running for a duration")
	rate := fs.Float64("rate", 0, "at most this many requests per second (0: unlimited)")
	prefix := fs.String("prefix", "", "noticeId or batchId prefix (default: LT-<unix time>-<6 random hex>-)")
	template := fs.String("template", "", "notice or batch to vary, its ids replaced in each (default: the format's example)")
	if err := parse(fs, args); err != nil {
		return errUsage
	}
	if err := checkLoadFlags(*conc, *reqs, *dur, *rate); err != nil {
		return err
	}
	format := ""
	if *partnerID == "" {
		format = sgemployer.Format
	}
	d, p, err := jsonPartner(*dir, *partnerID, format)
	if err != nil {
		return err
	}
	var tmpl []byte
	if *template != "" {
		if tmpl, err = os.ReadFile(*template); err != nil {
			return err
		}
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
	w, err := workloadOf(p.Format, tmpl, *template, *prefix)
	if err != nil {
		return err
	}
	key, err := partnerkit.LoadSigningKey(p.SigningJWK)
	if err != nil {
		return err
	}
	tc, err := partnerkit.TLSConfig(d.CACert, p.ClientCert, p.ClientKey)
	if err != nil {
		return err
	}
	s, err := loadgen.LoadTest(ctx, loadgen.TestConfig{URL: d.GatewayURL, Route: w.route, TLS: tc, Key: key,
		Document: w.document, Created: w.created, RecordsPerRequest: w.records,
		PresignRate: loadgen.DefaultPresignRate / float64(w.records), // the same records per second
		Concurrency: *conc, Requests: *reqs, Duration: *dur, Rate: *rate,
		Gateway: loadgen.ProcessStats(d.MetricsURL),
		Progress: func(done, acc int64, el time.Duration) {
			fmt.Fprintf(stderr, "\r%s   ", loadgen.ProgressLine(done, acc, el))
		}})
	fmt.Fprintln(stderr)
	if err != nil {
		return err
	}
	if s.PoolExhausted {
		fmt.Fprintf(stderr, "loadtest: every pre-signed document was sent before %s; the run ended early (pool_exhausted)\n", *dur)
	}
	out, _ := json.MarshalIndent(s, "", "  ")
	fmt.Fprintf(stdout, "%s\n", out)
	return nil
}

// workload is what loadtest sends for a format: where, what answers a new
// document, how many records each holds, and the i-th document.
type workload struct {
	route    string
	created  int
	records  int
	document func(i int) []byte
}

// idMark stands for a document's id while its template is written out
// once; each document replaces it with its own. No id the formats allow
// holds '@', and a template holding idMark is refused rather than misread.
const idMark = "@ID@"

// workloadOf makes the workload of a format from tmpl (the format's example
// when nil; name is its file, for errors). An employer's notice gets
// noticeId prefix+i; an insurer's batch gets batchId prefix+i and its claim
// k claimNo prefix+i-k, so no claim version repeats either.
func workloadOf(format string, tmpl []byte, name, prefix string) (workload, error) {
	var w workload
	var mark func(doc map[string]any) error // puts idMark in place of the ids
	switch format {
	case sgemployer.Format:
		w = workload{route: "/v1/injury-notices", created: http.StatusAccepted, records: 1}
		if tmpl == nil {
			tmpl = sgemployer.Example()
		}
		mark = func(doc map[string]any) error {
			if _, ok := doc["noticeId"].(string); !ok {
				return errors.New("not a notice with a noticeId")
			}
			doc["noticeId"] = idMark
			return nil
		}
	case insurerclaim.Format:
		w = workload{route: "/v1/insurer-claims", created: http.StatusOK}
		if tmpl == nil {
			tmpl = insurerclaim.Example()
		}
		mark = func(doc map[string]any) error {
			claims, _ := doc["claims"].([]any)
			if _, ok := doc["batchId"].(string); !ok || len(claims) == 0 {
				return errors.New("not a batch with a batchId and claims")
			}
			doc["batchId"] = idMark
			for k, c := range claims {
				claim, _ := c.(map[string]any)
				if _, ok := claim["claimNo"].(string); !ok {
					return fmt.Errorf("claim %d has no claimNo", k)
				}
				claim["claimNo"] = idMark + "-" + strconv.Itoa(k)
			}
			w.records = len(claims)
			return nil
		}
	default:
		return w, fmt.Errorf("loadtest sends %s and %s, not %s", sgemployer.Format, insurerclaim.Format, format)
	}
	if name == "" {
		name = "(the format's example)"
	}
	if bytes.Contains(tmpl, []byte(idMark)) {
		return w, fmt.Errorf("--template %s: holds %q, which loadtest writes in place of its ids", name, idMark)
	}
	dec := json.NewDecoder(bytes.NewReader(tmpl))
	dec.UseNumber() // amounts and counts as written
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return w, fmt.Errorf("--template %s: %w", name, err)
	}
	if err := mark(doc); err != nil {
		return w, fmt.Errorf("--template %s: %w", name, err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return w, err
	}
	marked := bytes.TrimSpace(buf.Bytes())
	w.document = func(i int) []byte {
		return bytes.ReplaceAll(marked, []byte(idMark), []byte(prefix+strconv.Itoa(i)))
	}
	return w, nil
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
