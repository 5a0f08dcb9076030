package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

const outboundUsage = `usage: gateway outbound list [--partner P] [--state pending|delivered|dead] [--before ID] [--limit N]
       gateway outbound retry (ID | --partner P)
       gateway outbound answer REQUEST-ID
  each with the store: --dev DIR | --config FILE | --store PATH|DSN`

// runOutbound is "gateway outbound list|retry|answer": the operator's view
// of the delivery queue. Each subcommand takes only its own flags.
func runOutbound(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "list":
			return runOutboundList(ctx, args[1:], stdout, stderr)
		case "retry":
			return runOutboundRetry(ctx, args[1:], stdout, stderr)
		case "answer":
			return runOutboundAnswer(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintln(stderr, outboundUsage)
	return errUsage
}

// runOutboundList is "gateway outbound list": deliveries newest first, a
// page at a time.
func runOutboundList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("outbound list", stderr)
	state := fs.String("state", "", "only deliveries in this state")
	before := fs.Int64("before", 0, "only deliveries with an id below this (the next page)")
	limit := fs.Int("limit", 100, "at most this many, newest first (1 to 10000)")
	partnerID := fs.String("partner", "", "only this partner's deliveries")
	open := storeFlags(fs, "store: SQLite file or postgres:// DSN")
	if err := parse(fs, args, 0); err != nil {
		return errUsage
	}
	switch {
	case *state != "" && !slices.Contains(store.DeliveryStates, *state):
		return fmt.Errorf("--state %q: one of %s", *state, strings.Join(store.DeliveryStates, ", "))
	case *limit < 1 || *limit > 10000:
		return fmt.Errorf("--limit %d: must be 1 to 10000", *limit)
	case *before < 0:
		return fmt.Errorf("--before %d: must be a delivery id", *before)
	}
	st, err := open()
	if err != nil {
		return err
	}
	defer st.Close()
	ds, err := st.DeliveriesOf(ctx, *partnerID, *state, *before, *limit)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-6s %-10s %-14s %-20s %-26s %-8s %-25s %s\n", "ID", "STATE", "PARTNER", "TYPE", "CASE", "ATTEMPTS", "NEXT/LAST", "ERROR")
	for _, d := range ds {
		lastErr := d.LastError
		if d.NoRetry {
			lastErr = "[refused for good: no retry] " + lastErr
		}
		if d.WaitsFor != 0 {
			lastErr = fmt.Sprintf("[waits for delivery %d on its case] %s", d.WaitsFor, lastErr)
		}
		fmt.Fprintf(stdout, "%-6d %-10s %-14s %-20s %-26s %-8d %-25s %s\n", d.ID, d.State, d.PartnerID, d.MessageType, orDash(d.CaseID), d.Attempts, d.NextAt.UTC().Format(time.RFC3339), lastErr)
	}
	fmt.Fprintf(stderr, "%d deliveries, newest first", len(ds))
	if len(ds) == *limit {
		fmt.Fprintf(stderr, "; older ones: --before %d", ds[len(ds)-1].ID)
	}
	fmt.Fprintln(stderr)
	return nil
}

// runOutboundRetry is "gateway outbound retry": one delivery queued again
// (a dead letter, or a pending one now rather than at its retry's time),
// or every dead letter of a partner once what failed is fixed.
func runOutboundRetry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("outbound retry", stderr)
	partnerID := fs.String("partner", "", "every dead letter of this partner, instead of one ID")
	open := storeFlags(fs, "store: SQLite file or postgres:// DSN")
	if err := parse(fs, args, 1); err != nil {
		return errUsage
	}
	if (*partnerID == "") == (fs.NArg() == 0) { // an ID or a partner: one of them
		fmt.Fprintln(stderr, outboundUsage)
		return errUsage
	}
	var id int64
	if *partnerID == "" {
		n, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil {
			return fmt.Errorf("delivery id %q is not a number", fs.Arg(0))
		}
		id = n
	}
	st, err := open()
	if err != nil {
		return err
	}
	defer st.Close()
	if *partnerID == "" {
		if err := st.RetryDelivery(ctx, id, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "delivery %d queued again\n", id)
		return nil
	}
	n, err := st.RetryDead(ctx, *partnerID, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d dead letters of %s queued again\n", n, *partnerID)
	if left, err := st.DeadForGood(ctx, *partnerID); err != nil {
		return err
	} else if left > 0 {
		fmt.Fprintf(stdout, "%d refused for good when queued are left dead (a retry would send other than was asked; see outbound list --state dead)\n", left)
	}
	return nil
}

// runOutboundAnswer is "gateway outbound answer REQUEST-ID": what the
// partner answered to a delivered request, as logged (an agency's signed
// InformationReply whole, its documents too, which its event may omit).
func runOutboundAnswer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("outbound answer", stderr)
	open := storeFlags(fs, "store: SQLite file or postgres:// DSN")
	if err := parse(fs, args, 1); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, outboundUsage)
		return errUsage
	}
	st, err := open()
	if err != nil {
		return err
	}
	defer st.Close()
	answer, err := st.DeliveryAnswer(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	_, err = stdout.Write(answer)
	return err
}

// orDash is s, or "-" for a column left empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
