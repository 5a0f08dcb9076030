package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
	"github.com/perkeso/jambatan/cmd/gateway/internal/devmode"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// maxDocument bounds what the partner tools read from a file or stdin.
const maxDocument = 4 << 20

// readDoc reads the document named on the command line: a file, or stdin
// for "-". An empty document is refused: signing or sending nothing is
// always a mistake (a file name given where stdin was read, or an empty
// pipe), and it would otherwise come back only as the gateway's SYNTAX.
func readDoc(name string, stdin io.Reader) ([]byte, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	} else {
		name = "stdin"
	}
	b, err := io.ReadAll(io.LimitReader(r, maxDocument+1))
	switch {
	case err != nil:
		return nil, err
	case len(b) > maxDocument:
		return nil, fmt.Errorf("%s: document over %d bytes", name, maxDocument)
	case len(b) == 0:
		return nil, fmt.Errorf("%s: the document is empty", name)
	}
	return b, nil
}

func formOf(detached, unencoded bool, name string) (partnerkit.Form, error) {
	switch {
	case name == "compact" || (name == "" && !detached && !unencoded):
		return partnerkit.Compact, nil
	case name == "detached" || (name == "" && detached && !unencoded):
		return partnerkit.Detached, nil
	case name == "unencoded" || (name == "" && unencoded):
		return partnerkit.DetachedUnencoded, nil
	}
	return 0, fmt.Errorf("unknown form %q (compact, detached, unencoded)", name)
}

func runSign(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("sign", stderr)
	jwkPath := fs.String("jwk", "", "private signing JWK (required)")
	detached := fs.Bool("detached", false, "print a detached JWS for the X-JWS-Signature header")
	unencoded := fs.Bool("unencoded", false, `with --detached: unencoded payload ("b64": false, RFC 7797)`)
	if err := parse(fs, args, 1); err != nil {
		return errUsage
	}
	if *jwkPath == "" {
		fmt.Fprintln(stderr, "gateway sign: give --jwk and at most one document file (default or -: stdin)")
		return errUsage
	}
	key, err := partnerkit.LoadSigningKey(*jwkPath)
	if err != nil {
		return err
	}
	name := "-"
	if fs.NArg() == 1 {
		name = fs.Arg(0)
	}
	doc, err := readDoc(name, stdin)
	if err != nil {
		return err
	}
	form, _ := formOf(*detached, *unencoded, "")
	sig, err := partnerkit.Sign(doc, key, form)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, sig)
	return nil
}

// devRunning asks whether the dev gateway of dir runs when err is a
// connection its gateway or broker refused (devmode.AskRunning).
func devRunning(err error, dir string) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return devmode.AskRunning(err, dir)
	}
	return err
}

func runSubmit(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("submit", stderr)
	dir := fs.String("dev", devmode.DefaultDir, "dev directory of a running \"gateway dev\"")
	partnerID := fs.String("partner", "", "partner id in dev.json (default: the first)")
	kitDir := fs.String("kit", "", "instead of --dev: a partner kit from \"gateway certs kit\" (client.pem, client.key, signing.jwk.json); needs --url")
	url := fs.String("url", "", "with --kit: the gateway, https://HOST[:PORT]")
	caFile := fs.String("ca", "", "with --kit: the CA certificates that issue the gateway's server certificate (default: the system's)")
	jwksFlag := fs.String("jwks", "", "with --kit: Perkeso's receipt keys, a file or an https URL (default: URL/.well-known/jwks.json)")
	formName := fs.String("form", "compact", "signature form: compact, detached or unencoded")
	if err := parse(fs, args, 1); err != nil {
		return errUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "gateway submit: give one document file (- for stdin)")
		return errUsage
	}
	if (*kitDir == "") != (*url == "") || *kitDir == "" && (*caFile != "" || *jwksFlag != "") {
		fmt.Fprintln(stderr, "gateway submit: --kit and --url go together (with --ca and --jwks if needed); without them, --dev names a running gateway dev")
		return errUsage
	}
	form, err := formOf(false, false, *formName)
	if err != nil {
		return err
	}
	var t submitTarget
	if *kitDir != "" {
		t, err = kitTarget(*kitDir, *url, *caFile, *jwksFlag)
	} else {
		t, err = devTarget(*dir, *partnerID)
	}
	if err != nil {
		return err
	}
	t.client.OnRetry = func(status, attempt int) {
		fmt.Fprintf(stderr, "gateway submit: HTTP %d, nothing accepted; sending again after the Retry-After (%d of %d)\n", status, attempt, partnerkit.Retries)
	}
	doc, err := readDoc(fs.Arg(0), stdin)
	if err != nil {
		return err
	}
	resp, err := t.client.Submit(partnerkit.Route(doc), doc, t.key, form)
	if err != nil && *kitDir == "" {
		return devRunning(err, *dir)
	} else if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "HTTP %d (correlation id %s)\n", resp.Status, resp.CorrelationID)
	stdout.Write(resp.Body)
	if resp.Status != 200 && resp.Status != 202 {
		return fmt.Errorf("refused with HTTP %d", resp.Status)
	}
	a, err := partnerkit.DecodeAccepted(resp.Body)
	if err != nil {
		return err
	}
	set, err := receiptKeys(t.client, t.jwks)
	if err != nil {
		return fmt.Errorf("reading the receipt keys: %w", err)
	}
	rc, err := receipt.Verify(a.Receipt, set)
	if err != nil {
		return fmt.Errorf("the receipt does not verify: %w", err)
	}
	if err := acknowledges(rc, a, doc); err != nil {
		return fmt.Errorf("the receipt does not acknowledge this document: %w", err)
	}
	fmt.Fprintf(stderr, "receipt verified against %s; it acknowledges this document (payloadSha256 %s)\n", t.jwks, rc.PayloadSHA256)
	return nil
}

// acknowledges checks that a receipt, its signature verified, is for the
// document sent: a signature alone would pass another submission's
// receipt. Its payloadSha256 must be the document's (the JWS payload in
// every form: the bytes signed), and its recordId the answer's.
func acknowledges(rc *receipt.Receipt, a *partnerkit.Accepted, doc []byte) error {
	if want := receipt.Digest(doc); rc.PayloadSHA256 != want {
		return fmt.Errorf("its payloadSha256 is %q, the document's SHA-256 %s", rc.PayloadSHA256, want)
	}
	if a.RecordID != "" && rc.RecordID != a.RecordID {
		return fmt.Errorf("its recordId is %q, the answer's %q", rc.RecordID, a.RecordID)
	}
	return nil
}

// receiptKeys reads Perkeso's receipt keys from a file, or from an https URL
// through c (a partner's mutual-TLS client: the gateway serves its JWKS on
// the partners' listener).
func receiptKeys(c *partnerkit.Client, jwks string) (jwk.Set, error) {
	if strings.HasPrefix(jwks, "https://") {
		return c.FetchJWKS(jwks)
	}
	return partnerkit.ReadJWKS(jwks)
}

// devClient is a mutual-TLS client of a running "gateway dev" with its first
// partner's kit.
func devClient(dir string) (*partnerkit.Client, error) {
	d, err := devmode.ReadDevJSON(dir)
	if err != nil {
		return nil, err
	}
	p := d.Partners[0]
	return partnerkit.NewClient(d.GatewayURL, d.CACert, p.ClientCert, p.ClientKey)
}

// submitTarget is where "gateway submit" sends, as whom, and where it finds
// the keys of the receipt it gets back.
type submitTarget struct {
	client *partnerkit.Client
	key    jwk.Key
	jwks   string // a file or an https URL
}

// devTarget is a partner of a running "gateway dev".
func devTarget(dir, partnerID string) (submitTarget, error) {
	d, key, c, err := jsonKit(dir, partnerID)
	if err != nil {
		return submitTarget{}, err
	}
	return submitTarget{client: c, key: key, jwks: d.JWKSURL}, nil
}

// kitTarget is a partner's kit (as "gateway certs kit" writes it) against a
// gateway anywhere: how a partner's engineer tries their registration.
func kitTarget(dir, url, caFile, jwks string) (submitTarget, error) {
	if !strings.HasPrefix(url, "https://") {
		return submitTarget{}, fmt.Errorf("--url %s: must be https://", url)
	}
	kit := partnerkit.KitIn(dir)
	key, err := partnerkit.LoadSigningKey(kit.SigningJWK)
	if err != nil {
		return submitTarget{}, err
	}
	c, err := partnerkit.NewClient(url, caFile, kit.ClientCert, kit.ClientKey)
	if err != nil {
		return submitTarget{}, err
	}
	if jwks == "" {
		jwks = strings.TrimSuffix(url, "/") + "/.well-known/jwks.json"
	}
	return submitTarget{client: c, key: key, jwks: jwks}, nil
}

func runReceipt(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	const usage = "usage: gateway receipt verify --jwks URL|FILE [--kit DIR [--ca FILE] | --dev DIR] RECEIPT|-"
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	fs := newFlags("receipt verify", stderr)
	jwksFlag := fs.String("jwks", "", "Perkeso's JWKS: a file, or an https URL (fetched over mutual TLS with --kit, or a dev kit)")
	kitDir := fs.String("kit", "", "a partner kit (client.pem, client.key) to fetch an https JWKS with")
	caFile := fs.String("ca", "", "with --kit: the CA certificates that issue the gateway's server certificate (default: the system's)")
	dir := fs.String("dev", devmode.DefaultDir, "without --kit: dev directory whose first partner kit fetches an https JWKS")
	if err := parse(fs, args[1:], 1); err != nil {
		return errUsage
	}
	if *jwksFlag == "" || fs.NArg() != 1 || *caFile != "" && *kitDir == "" {
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	rc := fs.Arg(0)
	if rc == "-" {
		b, err := readDoc("-", stdin)
		if err != nil {
			return err
		}
		rc = string(b)
	}
	var c *partnerkit.Client
	if strings.HasPrefix(*jwksFlag, "https://") {
		var err error
		if *kitDir != "" {
			kit := partnerkit.KitIn(*kitDir)
			c, err = partnerkit.NewClient(*jwksFlag, *caFile, kit.ClientCert, kit.ClientKey)
		} else {
			c, err = devClient(*dir)
		}
		if err != nil {
			return err
		}
	}
	set, err := receiptKeys(c, *jwksFlag)
	if err != nil {
		return err
	}
	// The payload as signed, whatever the receipt's kind: a batch's results
	// and a case message's statement have members a notice's lacks.
	payload, err := receipt.VerifyPayload(rc, set)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, payload, "", "  "); err != nil {
		return fmt.Errorf("receipt payload: %w", err)
	}
	fmt.Fprintf(stdout, "%s\n", out.Bytes())
	fmt.Fprintln(stderr, "receipt verified")
	return nil
}

func runLog(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprintln(stderr, "usage: gateway log verify [--anchor SEQ:HASH] (--config FILE | --dev DIR | --store PATH|DSN)")
		return errUsage
	}
	fs := newFlags("log verify", stderr)
	open := storeFlags(fs, "store: SQLite file or postgres:// DSN")
	anchorFlag := fs.String("anchor", "", "SEQ:HASH of an entry as an earlier verify (or the gateway's \"message log head\" line) gave it: the log must still hold it")
	if err := parse(fs, args[1:], 0); err != nil {
		return errUsage
	}
	anchor, err := parseAnchor(*anchorFlag)
	if err != nil {
		return err
	}
	s, err := open()
	if err != nil {
		return err
	}
	defer s.Close()
	rep, err := verifyChain(ctx, s, stderr)
	if err != nil {
		return err
	}
	if rep.BrokenSeq != 0 {
		fmt.Fprintf(stdout, "BROKEN at entry %d: %s (%d entries read)\n", rep.BrokenSeq, rep.Reason, rep.Entries)
		return fmt.Errorf("hash chain broken at entry %d", rep.BrokenSeq)
	}
	if err := anchor.check(ctx, s, rep, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "OK: %d entries, hash chain intact", rep.Entries)
	if anchor.seq != 0 {
		fmt.Fprintf(stdout, ", anchor %d found", anchor.seq)
	}
	if rep.Entries > 0 {
		fmt.Fprintf(stdout, "; head %d:%s", rep.Entries, rep.Head)
	}
	fmt.Fprintln(stdout)
	return nil
}

// anchor is an entry of the message log as an earlier verify, or the
// gateway's "message log head" line, gave it: "SEQ:HASH".
type anchor struct {
	seq  int64 // 0: none
	hash string
}

func parseAnchor(v string) (anchor, error) {
	if v == "" {
		return anchor{}, nil
	}
	seq, hash, ok := strings.Cut(v, ":")
	n, err := strconv.ParseInt(seq, 10, 64)
	if !ok || err != nil || n < 1 || len(hash) != 64 {
		return anchor{}, fmt.Errorf("--anchor %q: want SEQ:HASH, an entry number and its 64 hex digits", v)
	}
	return anchor{n, strings.ToLower(hash)}, nil
}

// check is nil when the log still holds a's entry with a's hash. An intact
// chain can still have lost its newest entries; an entry kept from
// before, found unchanged, vouches for every entry up to it.
func (a anchor) check(ctx context.Context, s *store.DB, rep store.ChainReport, stdout io.Writer) error {
	if a.seq == 0 {
		return nil
	}
	h, err := s.HashAt(ctx, a.seq)
	switch {
	case errors.Is(err, store.ErrNotFound):
		fmt.Fprintf(stdout, "BROKEN: the log ends at entry %d, before the anchor %d: entries were deleted\n", rep.Entries, a.seq)
		return fmt.Errorf("anchored entry %d is missing", a.seq)
	case err != nil:
		return err
	case h != a.hash:
		fmt.Fprintf(stdout, "BROKEN: entry %d has another hash than the anchor: the log was rewritten up to it\n", a.seq)
		return fmt.Errorf("anchored entry %d differs", a.seq)
	}
	return nil
}

func runStore(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	const usage = "usage: gateway store backup --to FILE (--config FILE | --dev DIR | --store PATH)"
	if len(args) == 0 || args[0] != "backup" {
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	fs := newFlags("store backup", stderr)
	to := fs.String("to", "", "the backup: a new SQLite file")
	open := storeFlags(fs, "store: SQLite file")
	if err := parse(fs, args[1:], 0); err != nil {
		return errUsage
	}
	if *to == "" {
		fmt.Fprintln(stderr, usage)
		return errUsage
	}
	s, err := open()
	if err != nil {
		return err
	}
	defer s.Close()
	start := time.Now()
	fmt.Fprintf(stderr, "backing up to %s (the gateway may go on running)\n", *to)
	if err := s.Backup(ctx, *to, func(copied, of int64) {
		fmt.Fprintf(stderr, "  %.1f MB of about %.1f MB copied\n", float64(copied)/1e6, float64(of)/1e6)
	}); err != nil {
		return err
	}
	took := time.Since(start)
	// The copy is checked as log verify would check the store.
	b, err := store.Open(*to)
	if err != nil {
		return fmt.Errorf("the backup does not open: %w", err)
	}
	defer b.Close()
	rep, err := verifyChain(ctx, b, stderr)
	if err != nil {
		return err
	}
	if rep.BrokenSeq != 0 {
		return fmt.Errorf("the backup's hash chain is broken at entry %d: %s", rep.BrokenSeq, rep.Reason)
	}
	size := int64(0)
	if fi, err := os.Stat(*to); err == nil {
		size = fi.Size()
	}
	fmt.Fprintf(stdout, "backup: %s, %d entries, hash chain intact, %.1f MB, copied in %.1f s\n", *to, rep.Entries, float64(size)/1e6, took.Seconds())
	return nil
}

// jsonPartner finds a JSON partner in dev.json: id, or the first partner
// that signs with JWS (and sends format, when given) when id is empty.
func jsonPartner(dir, id, format string) (*devmode.DevJSON, *devmode.DevJSONPartner, error) {
	d, err := devmode.ReadDevJSON(dir)
	if err != nil {
		return nil, nil, err
	}
	if id == "" {
		for _, p := range d.Partners {
			if p.SigningJWK != "" && (format == "" || p.Format == format) {
				id = p.ID
				break
			}
		}
	}
	p, err := d.Partner(id)
	if err != nil {
		return nil, nil, err
	}
	if p.SigningJWK == "" {
		return nil, nil, fmt.Errorf("partner %s signs with WS-Security, not JWS; use gateway soap", id)
	}
	if format != "" && p.Format != format {
		return nil, nil, fmt.Errorf("partner %s sends %s, not %s", id, p.Format, format)
	}
	return d, p, nil
}

// jsonKit loads a JSON partner's kit from dev.json (see jsonPartner): its
// signing key and an mTLS client to the gateway.
func jsonKit(dir, id string) (*devmode.DevJSON, jwk.Key, *partnerkit.Client, error) {
	d, p, err := jsonPartner(dir, id, "")
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := partnerkit.LoadSigningKey(p.SigningJWK)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := partnerkit.NewClient(d.GatewayURL, d.CACert, p.ClientCert, p.ClientKey)
	if err != nil {
		return nil, nil, nil, err
	}
	return d, key, c, nil
}

// openStore opens the store an operator command names (by --store,
// --config or --dev). A SQLite file must exist: opening one creates it, and
// a mistyped path would otherwise read as an empty store.
func openStore(target, cfgPath, dir string) (*store.DB, error) {
	t, err := storeTarget(target, cfgPath, dir)
	if err != nil {
		return nil, err
	}
	if !store.IsPostgres(t) {
		if _, err := os.Stat(t); err != nil {
			return nil, err
		}
	}
	return store.Open(t)
}

// storeFlags adds to fs the three ways an operator command names a store
// (--store, --config, --dev; storeHelp describes --store) and returns what
// opens the one named, once fs is parsed.
func storeFlags(fs *flag.FlagSet, storeHelp string) (open func() (*store.DB, error)) {
	cfgPath := fs.String("config", "", "configuration file naming the store")
	dir := fs.String("dev", "", "dev directory")
	target := fs.String("store", "", storeHelp)
	return func() (*store.DB, error) { return openStore(*target, *cfgPath, *dir) }
}

// verifyChain checks s's hash chain, a progress line on stderr every
// 10,000 entries (log verify, and store backup's check of its copy).
func verifyChain(ctx context.Context, s *store.DB, stderr io.Writer) (store.ChainReport, error) {
	return s.Verify(ctx, func(n int64) { fmt.Fprintf(stderr, "  %d entries checked\n", n) })
}

// storeTarget resolves which store a command reads: --store as given, the
// store of --config, or that of the dev directory (default ./.gateway-dev).
func storeTarget(target, cfgPath, dir string) (string, error) {
	switch {
	case target != "":
		return target, nil
	case cfgPath != "":
		cfg, err := config.Load(cfgPath)
		if err != nil {
			return "", err
		}
		return cfg.StorePath, nil
	}
	if dir == "" {
		dir = devmode.DefaultDir
	}
	l, err := devmode.LayoutOf(dir)
	if err != nil {
		return "", err
	}
	return l.Store, nil
}
