package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/perkeso/jambatan/cmd/gateway/internal/app"
	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
	"github.com/perkeso/jambatan/cmd/gateway/internal/devmode"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/ingest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/kafkaclient"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/sqldialect"
)

// maxIngestBatch bounds --batch: a batch is held in memory and written in
// one database transaction.
const maxIngestBatch = 10000

func runIngest(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("ingest", stderr)
	dir := fs.String("dev", "", "dev directory of a running \"gateway dev\" (brokers, topics and JWKS from dev.json)")
	cfgPath := fs.String("config", "", "gateway configuration file (its kafka section: brokers, TLS, SASL, topics)")
	brokers := fs.String("brokers", "", "comma-separated bootstrap brokers (instead of --dev/--config)")
	topic := fs.String("topic", "", "verified topic (default from dev.json or the configuration)")
	caseTopic := fs.String("case-topic", "", "case-messages topic (default from dev.json or the configuration; \"\" for none)")
	statusTopic := fs.String("status-topic", "", "delivery-status topic (default from dev.json, or the configuration when it delivers outbound; \"\" for none)")
	rejectedTopic := fs.String("rejected-topic", "", "rejected topic (default from dev.json or the configuration; \"\" for none)")
	group := fs.String("group", "perkeso-backoffice", "consumer group id")
	jwksPath := fs.String("jwks", "", "gateway JWKS file, to verify the events' receipts")
	db := fs.String("db", "", "back-office database: SQLite path (default DIR/backoffice.db) or postgres:// DSN")
	until := fs.Bool("until-caught-up", false, "exit once the lag is 0 and nothing arrived for --idle")
	idle := fs.Duration("idle", 2*time.Second, "with --until-caught-up: quiet time before exiting")
	batch := fs.Int("batch", 500, "events per database transaction")
	requeue := fs.Bool("requeue-quarantine", false, "verify the quarantined events again with the JWKS as it is now, file those that pass, and exit (no Kafka)")
	if err := parse(fs, args, 0); err != nil {
		return errUsage
	}
	switch {
	case *batch < 1 || *batch > maxIngestBatch:
		return fmt.Errorf("--batch %d: must be 1 to %d", *batch, maxIngestBatch)
	case *idle <= 0:
		return fmt.Errorf("--idle %s: must be positive", *idle)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	kcfg, err := ingestSource(ingestFlags{dir: *dir, cfgPath: *cfgPath, brokers: *brokers, topic: topic, jwks: jwksPath, db: db,
		caseTopic: caseTopic, statusTopic: statusTopic, rejectedTopic: rejectedTopic, given: given})
	if err != nil {
		return err
	}
	if *topic == "" || *jwksPath == "" || *db == "" {
		fmt.Fprintln(stderr, "gateway ingest: --topic, --jwks and --db are required without --dev")
		return errUsage
	}
	// Each topic is read as one kind of event: one named twice would have
	// the others' events quarantined as that kind.
	topics := []string{*topic}
	for _, t := range []string{*caseTopic, *statusTopic, *rejectedTopic} {
		if slices.Contains(topics, t) {
			return fmt.Errorf("topic %s is named for two kinds of event (--topic, --case-topic, --status-topic, --rejected-topic)", t)
		}
		if t != "" {
			topics = append(topics, t)
		}
	}
	set, err := partnerkit.ReadJWKS(*jwksPath)
	if err != nil {
		return fmt.Errorf("gateway JWKS: %w", err)
	}
	if *requeue {
		return requeueQuarantine(ctx, *db, &ingest.Consumer{CaseTopic: *caseTopic, StatusTopic: *statusTopic, RejectedTopic: *rejectedTopic,
			JWKS: set, Batch: *batch}, stdout, stderr)
	}
	kc, err := kafkaclient.New(kcfg)
	if err != nil {
		return err
	}
	if missing, err := kc.MissingTopics(ctx, topics...); err != nil && *dir != "" {
		return fmt.Errorf("kafka: %w", devRunning(err, *dir))
	} else if err != nil {
		return fmt.Errorf("kafka: %w", err)
	} else if len(missing) > 0 {
		return fmt.Errorf("the cluster has no topic %s (a consumer group would read nothing until it has): create it, or name another with --topic, --case-topic, --status-topic or --rejected-topic (\"\" for none of the last three)",
			strings.Join(missing, ", "))
	}
	sink, err := ingest.OpenSink(*db)
	if err != nil {
		return err
	}
	defer sink.Close()
	reader := kc.GroupReader(*group, topics, 250*time.Millisecond)
	defer reader.Close()
	log, progress := ingestLog(*cfgPath != "" || *brokers != "", stderr)
	shown := newThrottled(time.Second, progress)
	defer shown.stop()
	c := &ingest.Consumer{Reader: reader, Sink: sink, CaseTopic: *caseTopic, StatusTopic: *statusTopic, RejectedTopic: *rejectedTopic, JWKS: set, Batch: *batch, Log: log,
		ReloadJWKS: func() (jwk.Set, error) { return partnerkit.ReadJWKS(*jwksPath) },
		OnBatch:    shown.update}
	log.Info("ingest started", "group", *group, "topics", topics, "brokers", kc.Brokers, "db", sqldialect.Redacted(*db))
	p, err := c.Run(ctx, *until, *idle)
	fmt.Fprintf(stdout, "ingest: %d consumed, %d ingested, %d quarantined, %d case messages, %d delivery statuses, %d rejections, lag %d, %.0f events/s\n",
		p.Consumed, p.Ingested, p.Quarantined, p.CaseMessages, p.Statuses, p.Rejections, p.Lag, p.Rate())
	return err
}

// requeueQuarantine is "gateway ingest --requeue-quarantine": c (its topics
// and JWKS set) verifies the quarantine of the database at db again.
func requeueQuarantine(ctx context.Context, db string, c *ingest.Consumer, stdout, stderr io.Writer) error {
	sink, err := ingest.OpenSink(db)
	if err != nil {
		return err
	}
	defer sink.Close()
	c.Sink, c.Log = sink, terminalLog(stderr)
	shown := newThrottled(time.Second, func(r ingest.RequeueReport) {
		fmt.Fprintf(stderr, "requeue: %d filed, %d still quarantined so far\n", r.Released, r.Still)
	})
	rep, err := c.Requeue(ctx, shown.update)
	shown.stop()
	fmt.Fprintf(stdout, "requeue: %d filed and taken out of the quarantine, %d still quarantined", rep.Released, rep.Still)
	if rep.WithoutBytes > 0 {
		fmt.Fprintf(stdout, ", %d quarantined by an earlier build without their bytes (reset the consumer group's offsets to read them again)", rep.WithoutBytes)
	}
	fmt.Fprintln(stdout)
	return err
}

// ingestFlags are where ingest finds the cluster, and the flags it fills
// in from there when they were not given.
type ingestFlags struct {
	dir, cfgPath, brokers                                  string
	topic, jwks, db, caseTopic, statusTopic, rejectedTopic *string
	given                                                  map[string]bool // the flags given, "" included
}

// ingestSource reads the cluster's settings from the configuration
// (--config), the brokers given (--brokers) or a dev gateway's dev.json,
// and fills in the topics, and from dev.json the JWKS and database, where
// the flags left them out. With --brokers only the topics given are read.
func ingestSource(f ingestFlags) (config.Kafka, error) {
	topics := func(t events.Topics) {
		if *f.topic == "" {
			*f.topic = t.Verified
		}
		if !f.given["case-topic"] {
			*f.caseTopic = t.CaseMessages
		}
		if !f.given["status-topic"] {
			*f.statusTopic = t.DeliveryStatus
		}
		if !f.given["rejected-topic"] {
			*f.rejectedTopic = t.Rejected
		}
	}
	switch {
	case f.cfgPath != "":
		cfg, err := config.Load(f.cfgPath)
		if err != nil {
			return config.Kafka{}, err
		}
		t := app.Topics(cfg.File.Kafka)
		if cfg.File.Outbound.ClientCertFile != "" { // it delivers, and publishes statuses
			t.DeliveryStatus = cfg.File.Outbound.StatusTopic
		}
		topics(t)
		return cfg.File.Kafka, nil
	case f.brokers != "":
		return config.Kafka{Brokers: strings.Split(f.brokers, ",")}, nil
	}
	dir := f.dir
	if dir == "" {
		dir = devmode.DefaultDir
	}
	d, err := devmode.ReadDevJSON(dir)
	if err != nil {
		return config.Kafka{}, err
	}
	topics(d.Topics)
	for _, fill := range []struct {
		flag *string
		v    string
	}{{f.jwks, d.GatewayJWKS},
		{f.db, filepath.Join(filepath.Dir(d.DevJSONPath()), "backoffice.db")}} {
		if *fill.flag == "" {
			*fill.flag = fill.v
		}
	}
	return config.Kafka{Brokers: []string{d.KafkaBootstrap}}, nil
}

// ingestLog is how ingest reports: against a cluster it runs as a service
// and logs JSON lines, progress included, as serve does; against a dev
// gateway it writes text for the terminal.
func ingestLog(service bool, stderr io.Writer) (*slog.Logger, func(ingest.Progress)) {
	if service {
		log := serviceLog(stderr)
		return log, func(p ingest.Progress) {
			log.Info("ingest progress", "consumed", p.Consumed, "ingested", p.Ingested, "quarantined", p.Quarantined,
				"case_messages", p.CaseMessages, "delivery_statuses", p.Statuses, "rejections", p.Rejections, "per_second", math.Round(p.Rate()), "lag", p.Lag)
		}
	}
	return terminalLog(stderr), func(p ingest.Progress) {
		fmt.Fprintf(stderr, "ingest: %d consumed (%d ingested, %d quarantined, %d case messages, %d delivery statuses, %d rejections), %.0f/s, lag %d\n",
			p.Consumed, p.Ingested, p.Quarantined, p.CaseMessages, p.Statuses, p.Rejections, p.Rate(), p.Lag)
	}
}
