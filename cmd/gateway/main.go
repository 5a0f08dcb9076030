// Command gateway is Jambatan, Perkeso's cross-border employment-injury data
// gateway: one binary whose subcommands run the server (dev, serve), the back
// office's side (ingest), operate it (outbound, certs, store backup, log
// verify, loadtest) and help a partner's engineer (sign, submit, soap,
// receipt verify). Run "gateway help" for the list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"

	_ "github.com/perkeso/jambatan/adapters/sgemployer" // sg-employer-notice/v1
	"github.com/perkeso/jambatan/cmd/gateway/internal/correlation"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

var commands = []command{
	{"dev", "run the gateway on embedded defaults (generates a dev PKI, config and demo partners)", runDev},
	{"serve", "run the gateway from a configuration file (production)", runServe},
	{"ingest", "back office: consume verified notices, case messages, delivery statuses and rejections, verify receipts, upsert into SQLite or PostgreSQL", runIngest},
	{"outbound", "outbound list|retry|answer: the delivery queue to partners (dead letters, retries, answers)", runOutbound},
	{"loadtest", "load test: pre-signed distinct notices, batches or SOAP messages over mTLS, progress, JSON summary (throughput, latency, CPU)", runLoadTest},
	{"certs", "certs kit|rotate-receipt-key|list: partner onboarding kits, receipt key rotation, expiries", runCerts},
	{"sign", "sign a partner document with a private JWK (compact or detached JWS)", runSign},
	{"submit", "sign and submit a document over mutual TLS with a partner kit (--kit, --url) or a dev one, verify the receipt", runSubmit},
	{"soap", "sign an envelope with an agency kit (--kit, --url) or a dev one, call the SOAP exchange, verify the signed response", runSOAP},
	{"receipt", "receipt verify: verify a Perkeso receipt against a JWKS", runReceipt},
	{"log", "log verify: recompute the message log's hash chain", runLog},
	{"store", "store backup: a consistent copy of a SQLite store while the gateway runs, checked", runStore},
}

// errUsage marks an error already explained by a usage message.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" && len(args) == 1 {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	name, help := args[0], args[0] == "help"
	if help {
		name = args[1] // "gateway help CMD" is "gateway CMD -h"
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		fmt.Fprintf(stderr, "gateway: unknown command %q\n\n", name)
		usage(stderr)
		return 2
	}
	c := commands[i]
	if help {
		c.run(ctx, []string{"-h"}, stdin, stdout, stderr)
		return 0
	}
	err := c.run(ctx, args[1:], stdin, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		return 2
	default:
		fmt.Fprintf(stderr, "gateway %s: %v\n", c.name, err)
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: gateway <command> [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun \"gateway help <command>\" (or \"gateway <command> -h\") for a command's flags.")
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("gateway "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses flags that may stand before or after the positional arguments
// ("submit FILE --form detached" as well as "submit --form detached FILE"),
// and refuses more than most positional arguments. A word a command does not
// take is a slip, never something to pass over: "certs rotate-receipt-key
// prod.json" (without --config) would otherwise rotate the dev directory's
// key.
func parse(fs *flag.FlagSet, args []string, most int) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) > most {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), positional[most])
		fs.Usage()
		return errUsage
	}
	return fs.Parse(append([]string{"--"}, positional...))
}

// serviceLog and terminalLog are the two ways the commands log, each line
// with a correlation id: JSON lines for a service (serve, ingest against a
// cluster), text for a person at a terminal (dev, ingest against a dev
// gateway, requeue).
func serviceLog(w io.Writer) *slog.Logger {
	return slog.New(correlation.NewHandler(slog.NewJSONHandler(w, nil)))
}

func terminalLog(w io.Writer) *slog.Logger {
	return slog.New(correlation.NewHandler(slog.NewTextHandler(w, nil)))
}
