package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/perkeso/jambatan/cmd/gateway/internal/devmode"
	"github.com/perkeso/jambatan/cmd/gateway/internal/loadgen"
)

func runLoad(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("load", stderr)
	dir := fs.String("dev", devmode.DefaultDir, "dev directory of a running \"gateway dev\" (loopback only)")
	partnerID := fs.String("partner", "", "partner id in dev.json (default: the first)")
	n := fs.Int("n", 1000, "number of notices")
	start := fs.Int("start", 1, "first sequence number (noticeIds are PREFIX + sequence)")
	prefix := fs.String("prefix", "LOAD-", "noticeId prefix")
	conc := fs.Int("c", 8, "concurrent clients")
	template := fs.String("template", "", "notice to vary (default: the built-in example A)")
	receipts := fs.String("receipts", "", "write the accepted record ids here, one per line")
	if err := parse(fs, args); err != nil {
		return errUsage
	}
	switch {
	case *n < 1:
		return fmt.Errorf("-n %d: must be at least 1", *n)
	case *conc < 1 || *conc > maxConcurrency:
		return fmt.Errorf("-c %d: must be 1 to %d", *conc, maxConcurrency)
	case *start < 0:
		return fmt.Errorf("-start %d: must not be negative", *start)
	}
	d, key, c, err := jsonKit(*dir, *partnerID)
	if err != nil {
		return err
	}
	tmpl, tmplID := exampleNotice, exampleNoticeID
	if *template != "" {
		if tmpl, err = os.ReadFile(*template); err != nil {
			return err
		}
		var doc struct{ NoticeID string }
		if err := json.Unmarshal(tmpl, &doc); err != nil || doc.NoticeID == "" {
			return fmt.Errorf("%s: not a notice with a noticeId", *template)
		}
		tmplID = doc.NoticeID
	}
	if err := loadgen.CheckLoopback(d.GatewayURL); err != nil {
		return err
	}
	st, res := loadgen.Run(ctx, loadgen.Config{Client: c, Key: key, Template: tmpl, TemplateID: tmplID, Prefix: *prefix,
		Start: *start, N: *n, Concurrency: *conc, Progress: func(s loadgen.Stats) { fmt.Fprintf(stderr, "load: %s\n", s) }})
	if *receipts != "" {
		f, err := os.Create(*receipts)
		if err != nil {
			return err
		}
		for _, r := range res {
			if r.RecordID != "" {
				fmt.Fprintln(f, r.RecordID)
			}
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "load: %s\n", st)
	if st.Refused > 0 {
		return fmt.Errorf("%d notices refused", st.Refused)
	}
	return nil
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
