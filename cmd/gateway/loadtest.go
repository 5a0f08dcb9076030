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

	"github.com/perkeso/jambatan/cmd/gateway/internal/devmode"
	"github.com/perkeso/jambatan/cmd/gateway/internal/loadgen"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
)

// noticeFormat is what loadtest sends: the example notice, each with its own noticeId.
const noticeFormat = "sg-employer-notice/v1"

func runLoadTest(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("loadtest", stderr)
	dir := fs.String("dev", devmode.DefaultDir, "dev directory of a running \"gateway dev\" (loopback only)")
	partnerID := fs.String("partner", "", "sg-employer-notice/v1 partner in dev.json (default: the first)")
	conc := fs.Int("concurrency", 32, "concurrent keep-alive clients")
	dur := fs.Duration("duration", 0, "run this long (default 10s unless --requests)")
	reqs := fs.Int("requests", 0, "send this many notices instead of running for a duration")
	rate := fs.Float64("rate", 0, "at most this many requests per second (0: unlimited)")
	prefix := fs.String("prefix", "", "noticeId prefix (default: LT-<unix time>-<6 random hex>-)")
	template := fs.String("template", "", "notice to vary, its noticeId replaced in each (default: example A of the format)")
	if err := parse(fs, args); err != nil {
		return errUsage
	}
	if err := checkLoadFlags(*conc, *reqs, *dur, *rate); err != nil {
		return err
	}
	tmpl, tmplID, err := loadTemplate(*template)
	if err != nil {
		return err
	}
	d, p, err := jsonPartner(*dir, *partnerID, noticeFormat)
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
	if *prefix == "" {
		// Distinct across runs, even two started in the same second (a
		// notice sent again would be a DUPLICATE, not a new notice), and
		// short enough for noticeId's 32 characters with a 6-digit index.
		var r [3]byte
		_, _ = rand.Read(r[:])
		*prefix = fmt.Sprintf("LT-%d-%s-", time.Now().Unix(), hex.EncodeToString(r[:]))
	}
	s, err := loadgen.LoadTest(ctx, loadgen.TestConfig{URL: d.GatewayURL, TLS: tc,
		Key: key, Template: tmpl, TemplateID: tmplID, Prefix: *prefix, Concurrency: *conc, Requests: *reqs, Duration: *dur, Rate: *rate,
		Gateway: loadgen.ProcessStats(d.MetricsURL),
		Progress: func(done, acc int64, el time.Duration) {
			fmt.Fprintf(stderr, "\r%s   ", loadgen.ProgressLine(done, acc, el))
		}})
	fmt.Fprintln(stderr)
	if err != nil {
		return err
	}
	if s.PoolExhausted {
		fmt.Fprintf(stderr, "loadtest: every pre-signed notice was sent before %s; the run ended early (pool_exhausted)\n", *dur)
	}
	out, _ := json.MarshalIndent(s, "", "  ")
	fmt.Fprintf(stdout, "%s\n", out)
	return nil
}

// loadTemplate reads the notice a load test varies: path's, or example A
// when path is empty. Its noticeId is what each notice replaces.
func loadTemplate(path string) (tmpl []byte, noticeID string, err error) {
	if path == "" {
		return exampleNotice, exampleNoticeID, nil
	}
	if tmpl, err = os.ReadFile(path); err != nil {
		return nil, "", err
	}
	var doc struct {
		NoticeID string `json:"noticeId"`
	}
	if err := json.Unmarshal(tmpl, &doc); err != nil || doc.NoticeID == "" {
		return nil, "", fmt.Errorf("--template %s: not a notice with a noticeId", path)
	}
	return tmpl, doc.NoticeID, nil
}

// exampleNotice is example A of sg-employer-notice/v1 §8.1.
var exampleNotice = []byte(`{"format":"sg-employer-notice/v1","noticeId":"TPE-2026-0042","submittedAt":"03/03/2026 16:20",
"employer":{"uen":"201912345K","name":"Tuas Precision Engineering Pte. Ltd."},
"reporter":{"name":"Tan Mei Ling","designation":"HR Executive","phone":"+6562345678","email":"meiling.tan@tuasprecision.example.sg"},
"worker":{"name":"Muhammad Hafiz bin Abdullah","idType":"FIN","idNo":"G5123456T","myKadNo":"900215015573","dateOfBirth":"15/02/1990","sex":"M","nationality":"MY","occupation":{"ssoc":"83441","title":"Forklift Driver"}},
"incident":{"type":"WORK_ACCIDENT","occurredAt":"03/03/2026 07:45","location":{"country":"SG","postalCode":"638421","address":"12 Tuas South Street 5, Warehouse B"},
"description":"While reversing the forklift in Warehouse B, the worker's left hand was caught between the mast and the pallet racking.","descriptionLang":"en",
"injuries":[{"bodyPart":"HAND","side":"LEFT","nature":"FRACTURE"},{"bodyPart":"FINGER","side":"LEFT","nature":"CUT"}]},
"outcome":{"fatal":false,"hospitalisedHours":30,"mcDays":21,"lightDutyDays":14},"ame":"2450.00","insurer":{"code":"WIC017","policyNo":"WIC/26/0045127"}}`)

const exampleNoticeID = "TPE-2026-0042"

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
