package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"syscall"
	"time"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/app"
	"github.com/perkeso/jambatan/cmd/gateway/internal/broker"
	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
	"github.com/perkeso/jambatan/cmd/gateway/internal/demoagency"
	"github.com/perkeso/jambatan/cmd/gateway/internal/devmode"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

func runServe(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	cfgPath := fs.String("config", "", "configuration file (required)")
	addr := fs.String("addr", "", "listen address, overriding the file's \"listen\"")
	storeFlag := fs.String("store", "", "store, overriding the file's \"store\": a SQLite path or a postgres:// DSN")
	check := fs.Bool("check", false, "read the configuration and every file it names, check the certificates and CRLs, and exit (before a start or a SIGHUP)")
	if err := parse(fs, args, 0); err != nil {
		return errUsage
	}
	if *cfgPath == "" {
		fmt.Fprintln(stderr, "gateway serve: --config is required")
		fs.Usage()
		return errUsage
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if *check {
		return checkConfig(cfg, stdout)
	}
	if *storeFlag != "" {
		cfg.StorePath = *storeFlag
	}
	// Every line names the instance: several may share a store, and one
	// log collector.
	log := serviceLog(stderr).With("instance", cfg.File.Instance)
	g, ln, ops, err := start(cfg, *addr, log)
	if err != nil {
		return err
	}
	log.Info("gateway listening", "addr", ln.Addr().String(), "partners", len(cfg.Partners.All()), "config", cfg.Path,
		"kafka", cfg.File.Kafka.Brokers)
	if g.OutboundConsumer != nil && cfg.RequestSigners == nil {
		log.Warn("outbound requests are taken unsigned (outbound.request_signers_file is not set): whoever may write to " +
			cfg.File.Outbound.Topic + " may have Perkeso sign a message to a partner")
	}
	stopHUP := reloadOnHUP(ctx, g)
	defer stopHUP()
	return g.Serve(ctx, ln, ops)
}

// checkConfig is serve --check: every check in name order, then the verdict.
func checkConfig(cfg *config.Config, stdout io.Writer) error {
	checks, err := app.CheckConfig(cfg, time.Now())
	for _, name := range slices.Sorted(maps.Keys(checks)) {
		c := checks[name]
		verdict := "ok  "
		if !c.OK {
			verdict = "FAIL"
		}
		fmt.Fprintf(stdout, "%s %-40s %s\n", verdict, name, c.Detail)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "configuration OK: %s, partners: %d\n", cfg.Path, len(cfg.Partners.All()))
	return nil
}

// startDevBroker starts the dev directory's embedded broker on port, or,
// when port is 0, on the port it last listened on (any free one when that
// is taken or none is recorded), and records the port it got.
func startDevBroker(l devmode.Layout, port int, topics events.Topics) (*broker.Embedded, error) {
	start := func(port int) (*broker.Embedded, error) {
		return broker.Start(l.KafkaDir, port, topics.Verified, topics.Rejected, topics.CaseMessages, topics.Outbound, topics.DeliveryStatus)
	}
	want := port
	if want == 0 {
		want = l.LastKafkaPort()
	}
	kafka, err := start(want)
	if err != nil && port == 0 && want != 0 {
		kafka, err = start(0) // the last port is taken
	}
	if err != nil {
		return nil, err
	}
	if err := l.SaveKafkaPort(kafka.Addr); err != nil {
		kafka.Close()
		return nil, err
	}
	return kafka, nil
}

func runDev(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("dev", stderr)
	dir := fs.String("dir", devmode.DefaultDir, "dev directory (created on first run, reused afterwards)")
	addr := fs.String("addr", devmode.DefaultAddr, "listen address (port 0 picks a free port)")
	kafkaPort := fs.Int("kafka-port", 0, "port of the embedded Kafka-protocol broker on 127.0.0.1 (0: the port of the last start, or any free port)")
	storeFlag := fs.String("store", "", "store instead of DIR/gateway.db: a SQLite path or a postgres:// DSN")
	withAgency := fs.Bool("with-demo-agency", false, "also start a demo TH:SSO endpoint on loopback and deliver demo-agency's outbound messages to it")
	if err := parse(fs, args, 0); err != nil {
		return errUsage
	}
	if *kafkaPort < 0 || *kafkaPort > 65535 {
		return fmt.Errorf("--kafka-port %d: must be 0 (the last start's, or any free port) to 65535", *kafkaPort)
	}
	unlock, err := devmode.Lock(*dir)
	if err != nil {
		return err
	}
	defer unlock()
	l, created, err := devmode.Ensure(*dir)
	if err != nil {
		return err
	}
	cfg, err := config.Load(l.Config)
	if err != nil {
		return err
	}
	if *storeFlag != "" {
		cfg.StorePath = *storeFlag
	}
	if cfg.File.Outbound.ClientCertFile == "" { // a dev directory from before outbound delivery
		cfg.File.Outbound.ClientCertFile, cfg.File.Outbound.ClientKeyFile = l.OutboundCert, l.OutboundKey
	}
	if cfg.File.Operator.Listen == "" {
		cfg.File.Operator = config.Operator{Listen: "127.0.0.1:0", ClientCAFile: l.CACert, AllowedCNs: []string{"operator"}}
	}
	topics := app.Topics(cfg.File.Kafka)
	topics.Outbound, topics.DeliveryStatus = cfg.File.Outbound.Topic, cfg.File.Outbound.StatusTopic
	kafka, err := startDevBroker(l, *kafkaPort, topics)
	if err != nil {
		return err
	}
	defer kafka.Close()
	cfg.File.Kafka.Brokers = []string{kafka.Addr}
	if cfg.File.OpsListen == "" {
		cfg.File.OpsListen = "127.0.0.1:0"
	}
	var demoURL string
	// One logger for the gateway, its reloads and the demo agency: the
	// reload's refusal went to the standard logger, in another format.
	log := terminalLog(stderr)
	if *withAgency {
		ag, err := startDemoAgency(l, cfg, log)
		if err != nil {
			return err
		}
		defer ag.Close()
		demoURL = ag.URL
	}
	g, ln, ops, err := start(cfg, *addr, log)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w: another process has the port (choose another with --addr, or --addr 127.0.0.1:0 for any free one)", err)
	}
	if err != nil {
		return err
	}
	d := l.Describe(ln.Addr().String())
	if store.IsPostgres(cfg.StorePath) {
		d.Store = "postgres" // the DSN may hold a password; dev.json does not repeat it
	} else {
		d.Store = cfg.StorePath
	}
	d.KafkaBootstrap, d.Topics, d.MetricsURL, d.DemoAgencyURL = kafka.Addr, topics, "http://"+ops.Addr().String()+"/metrics", demoURL
	if g.OperatorLn != nil {
		d.OperatorURL, d.OperatorCert, d.OperatorKey = "https://"+g.OperatorLn.Addr().String(), l.OperatorCert, l.OperatorKey
	}
	if cfg.RequestSigners != nil {
		d.BackOfficeKey = l.BackOfficeKey
	}
	stopHUP := reloadOnHUP(ctx, g)
	defer stopHUP()
	serveErr := make(chan error, 1)
	go func() { serveErr <- g.Serve(ctx, ln, ops) }()
	// dev.json is written once the listener accepts connections.
	if err := l.WriteDevJSON(d); err != nil {
		return err
	}
	defer os.Remove(l.DevJSON)
	printDevBanner(stdout, l, &d, created, *dir)
	err = <-serveErr
	fmt.Fprintln(stdout, "stopped")
	return err
}

// tuneGC trades memory for CPU: the intake allocates per request and the
// machine has few cores, so the collector runs at a quarter of the default
// frequency, with a soft memory limit keeping the heap bounded. GOGC and
// GOMEMLIMIT, when set, win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(160 << 20)
	}
}

// tuneProcs gives the Go scheduler one processor more than there are
// cores when the store is SQLite. Its writer commits with fsync, a system
// call that keeps the writer's processor for as long as it lasts (0.4 ms
// on average under load, a quarter of the time): the runtime's monitor
// hands such a processor to waiting goroutines only when it sees the call
// lasting, and under load it looks rarely. In a 2 s execution trace at
// 5,835 notices/s it did so for 32 of the writer's 150,960 system calls,
// and for 39 % of the time one processor ran Go code while three or more
// goroutines waited. The extra processor runs them meanwhile. PostgreSQL's
// writer waits on the network, which gives its processor up at once.
// GOMAXPROCS, when set, wins. Setting the count stops the runtime from
// following a later change of the container's CPU limit.
func tuneProcs(storePath string) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	runtime.SetDefaultGOMAXPROCS() // the cores available, whatever an earlier start set
	if !store.IsPostgres(storePath) {
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
	}
}

// start assembles the gateway and binds its listeners.
func start(cfg *config.Config, addr string, log *slog.Logger) (*app.Gateway, net.Listener, net.Listener, error) {
	tuneGC()
	tuneProcs(cfg.StorePath)
	g, err := app.New(cfg, log)
	if err != nil {
		return nil, nil, nil, err
	}
	ln, err := g.Listen(addr)
	if err != nil {
		g.Store.Close()
		return nil, nil, nil, err
	}
	if g.OperatorTLS != nil {
		if g.OperatorLn, err = net.Listen("tcp", cfg.File.Operator.Listen); err != nil {
			ln.Close()
			g.Store.Close()
			return nil, nil, nil, fmt.Errorf("operator listener: %w", err)
		}
	}
	var ops net.Listener
	if cfg.File.OpsListen != "" {
		if ops, err = net.Listen("tcp", cfg.File.OpsListen); err != nil {
			ln.Close()
			g.Store.Close()
			return nil, nil, nil, fmt.Errorf("ops listener: %w", err)
		}
	}
	return g, ln, ops, nil
}

// printDevBanner tells what a dev gateway serves, where its files are, and
// what to try first.
func printDevBanner(stdout io.Writer, l devmode.Layout, d *devmode.DevJSON, created bool, dir string) {
	state := "reusing"
	if created {
		state = "created"
	}
	fmt.Fprintf(stdout, "Jambatan dev gateway (%s %s)\n", state, l.Dir)
	fmt.Fprintf(stdout, "  gateway   %s\n  jwks      %s\n  ca cert   %s\n  config    %s\n  store     %s\n  kafka     %s (embedded; topics %s, %s)\n  metrics   %s\n  dev.json  %s\n",
		d.GatewayURL, d.JWKSURL, d.CACert, d.Config, d.Store, d.KafkaBootstrap, d.Topics.Verified, d.Topics.Rejected, d.MetricsURL, l.DevJSON)
	for _, p := range d.Partners {
		fmt.Fprintf(stdout, "  partner   %s (%s, %s): kit in %s\n", p.ID, p.Kind, p.Format, l.Kit(p.ID).Dir)
	}
	if d.BackOfficeKey != "" {
		fmt.Fprintf(stdout, "  outbound  requests on %s are taken signed by the back office: gateway sign --jwk %s --detached REQUEST.json, in the record's \"jws\" header\n",
			d.Topics.Outbound, d.BackOfficeKey)
	}
	fmt.Fprintf(stdout, "Try: go run ./cmd/gateway submit --dev %s --partner %s NOTICE.json\n     go run ./cmd/gateway soap --dev %s ENVELOPE.xml\nCtrl-C stops.\n", dir, d.Partners[0].ID, dir)
}

// startDemoAgency starts the stand-in TH:SSO endpoint and points
// demo-agency's outbound deliveries at it.
func startDemoAgency(l devmode.Layout, cfg *config.Config, log *slog.Logger) (*demoagency.Agency, error) {
	serverCert, err := certs.LoadKeyPair(l.ServerCert, l.ServerKey)
	if err != nil {
		return nil, err
	}
	pool, err := certs.LoadPool(l.CACert)
	if err != nil {
		return nil, err
	}
	kit := l.Kit("demo-agency")
	sc, err := certs.LoadCertificates(kit.SigningCert)
	if err != nil {
		return nil, err
	}
	sk, err := certs.LoadKey(kit.SigningKey)
	if err != nil {
		return nil, err
	}
	perkeso, err := certs.LoadCertificates(l.SOAPCert)
	if err != nil {
		return nil, err
	}
	ag, err := demoagency.Start(serverCert, pool, &wssec.Signer{Cert: sc[0], Key: sk}, perkeso[0], log)
	if err != nil {
		return nil, err
	}
	if p, ok := cfg.Partners.ByID("demo-agency"); ok {
		p.Endpoint = &partner.Endpoint{URL: ag.URL, Protocol: "soap", RootCAs: pool, BaseBackoff: 500 * time.Millisecond, MaxBackoff: 10 * time.Second}
	}
	return ag, nil
}

// reloadOnHUP reloads the configuration on SIGHUP until ctx is done (the
// gateway logs each reload, a refusal too).
func reloadOnHUP(ctx context.Context, g *app.Gateway) func() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				_ = g.Reload()
			}
		}
	}()
	return func() { signal.Stop(ch) }
}
