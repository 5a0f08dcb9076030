// Package app assembles a running gateway from a loaded configuration: store,
// receipt key, pipeline, outbox relay, mutual-TLS listener and the ops
// listener. Both "gateway serve" and "gateway dev" run through it, so dev mode
// is the production server with generated inputs.
package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/segmentio/kafka-go"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
	"github.com/perkeso/jambatan/cmd/gateway/internal/connlimit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/correlation"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/intake"
	"github.com/perkeso/jambatan/cmd/gateway/internal/jwsin"
	"github.com/perkeso/jambatan/cmd/gateway/internal/kafkaclient"
	"github.com/perkeso/jambatan/cmd/gateway/internal/metrics"
	"github.com/perkeso/jambatan/cmd/gateway/internal/operator"
	"github.com/perkeso/jambatan/cmd/gateway/internal/outbound"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/relay"
	"github.com/perkeso/jambatan/cmd/gateway/internal/server"
	"github.com/perkeso/jambatan/cmd/gateway/internal/soapsrv"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
	"github.com/perkeso/jambatan/mapping"
)

// Gateway is an assembled, not yet listening gateway.
type Gateway struct {
	Config  *config.Config
	Store   *store.DB
	Server  *server.Server
	Relay   *relay.Relay // nil without Kafka brokers
	TLS     *tls.Config
	tlsHold *server.TLS
	Log     *slog.Logger
	Metrics *prometheus.Registry
	M       *metrics.Metrics
	// watch holds the certificates and CRLs /metrics and /readyz report on.
	watch atomic.Pointer[watched]
	// outboundCert is the client certificate of outbound deliveries, renewed
	// by a reload.
	outboundCert atomic.Pointer[tls.Certificate]
	Topics       events.Topics
	producer     interface{ Close() error }
	// Deliverer delivers outbound messages (nil without an outbound client certificate).
	Deliverer *outbound.Deliverer
	// Operator is the operator API's TLS config (nil when not configured).
	OperatorTLS *tls.Config
	// operatorAccess is who may use the operator listener (reloaded).
	operatorAccess *operator.Access
	// kafkaCerts are the Kafka TLS certificates the running Kafka clients
	// use, read at start (a renewal takes a restart; the expiry gauge says
	// so by going on showing these).
	kafkaCerts map[string]*x509.Certificate
	// OperatorLn is the operator listener, bound by the caller when configured.
	OperatorLn net.Listener
	// OutboundConsumer reads perkeso.outbound.v1 (nil without Kafka or a
	// deliverer), with the reader outboundReader makes once the topic exists.
	OutboundConsumer *outbound.Consumer
	outboundReader   func() *kafka.Reader
	outboundKafka    *kafkaclient.Client
}

// Topics returns the configured topic names with defaults filled in.
func Topics(k config.Kafka) events.Topics {
	t := events.DefaultTopics
	if k.Topics.Verified != "" {
		t.Verified = k.Topics.Verified
	}
	if k.Topics.Rejected != "" {
		t.Rejected = k.Topics.Rejected
	}
	if k.Topics.CaseMessages != "" {
		t.CaseMessages = k.Topics.CaseMessages
	}
	return t
}

// New opens the store, loads keys and certificates, and builds the server.
func New(cfg *config.Config, log *slog.Logger) (*Gateway, error) {
	f, err := loadFiles(cfg)
	if err != nil {
		return nil, err
	}
	if f.kafkaCerts, err = loadKafkaCerts(cfg.File.Kafka.TLS); err != nil {
		return nil, err
	}
	lt, ids, signer := f.lt, f.ids, f.signer
	st, err := store.OpenExclusive(cfg.StorePath)
	if err != nil {
		return nil, err
	}
	if n := st.LeasesFreed(); n > 0 {
		log.Warn("outbound deliveries in flight when the gateway last ended are due again: the partner may have had them, and gets each again with its idempotency key", "deliveries", n)
	}
	g := &Gateway{Config: cfg, Store: st, Log: log, Metrics: prometheus.NewRegistry(), Topics: Topics(cfg.File.Kafka), kafkaCerts: f.kafkaCerts}
	g.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	relay.Register(g.Metrics)
	store.Register(g.Metrics)
	g.M = metrics.New(g.Metrics)
	g.M.ExpectVerificationKinds(verificationKinds()...)
	watch := newWatched(cfg, f)

	pipe := &intake.Pipeline{Store: st, Receipts: signer, Rates: mapping.ExampleRates, Log: log, Metrics: g.M,
		Events: eventBuilder(cfg, g.Topics, signer)}
	if len(cfg.File.Kafka.Brokers) > 0 {
		kc, err := kafkaclient.New(cfg.File.Kafka)
		if err != nil {
			st.Close()
			return nil, err
		}
		w := kc.Writer(500)
		g.producer = w
		g.Relay = &relay.Relay{Outbox: st, Producer: w, Batch: 500, Log: log, Render: events.Render}
		pipe.Published = g.Relay.Wake
	} else {
		log.Warn("no kafka brokers configured: accepted notices wait in the outbox")
	}
	lim := cfg.File.Limits
	g.Server = &server.Server{
		Partners: cfg.Partners, Store: st, Receipts: signer, Log: log, Pipeline: pipe,
		Limits: server.Limits{MaxBodyBytes: lim.MaxBodyBytes, MaxInflightBytes: lim.MaxInflightBytes, ReadHeaderTimeout: time.Duration(lim.ReadHeaderTimeout),
			ReadTimeout: time.Duration(lim.ReadTimeout), WriteTimeout: time.Duration(lim.WriteTimeout), IdleTimeout: time.Duration(lim.IdleTimeout)},
	}
	g.Server.Metrics = g.M
	if sc := cfg.File.SOAP; ids.soap != nil {
		g.Server.SOAP = &soapsrv.Handler{Store: st, Receipts: signer, Events: pipe.Events, Signer: &wssec.Signer{Cert: ids.soap.cert, Key: ids.soap.key},
			Institution: sc.Institution, Skew: time.Duration(sc.TimestampSkew), MaxTTL: time.Duration(sc.TimestampMaxTTL),
			Rates: mapping.ExampleRates, MaxBytes: int(lim.MaxBodyBytes), Log: log, Published: pipe.Published, Metrics: g.M}
	}
	if ids.outbound != nil {
		if err := g.wireOutbound(ids.outbound, signer, pipe.Events); err != nil {
			st.Close()
			return nil, err
		}
	}
	g.tlsHold = server.NewTLS(lt.cert, lt.cas, lt.crls, cfg.Partners)
	if oc := cfg.File.Operator; oc.Listen != "" {
		g.operatorAccess = operator.NewAccess(f.operatorPool(), oc.AllowedCNs, oc.Roles, certs.NewRevocations(f.operatorCRLs))
		g.OperatorTLS = operator.TLSConfig(func() *tls.Certificate { return g.tlsHold.Certificate() }, g.operatorAccess)
	}
	g.watch.Store(watch)
	g.Server.TLS = g.tlsHold
	g.TLS = g.tlsHold.Config()
	return g, nil
}

// verificationKinds are the values of the verification failures' kind
// label, each series made at zero so that an alert on it sees one.
func verificationKinds() []string {
	var kinds []string
	for _, k := range jwsin.Kinds() {
		kinds = append(kinds, string(k))
	}
	for _, c := range wssec.Codes() {
		kinds = append(kinds, soapsrv.VerificationKind(c))
	}
	return append(kinds, outbound.VerificationKind)
}

// wireOutbound makes the outbound deliverer, which sends with the
// gateway's outbound client certificate cert (or an endpoint's own), and,
// with brokers configured, the consumer of the back office's requests.
func (g *Gateway) wireOutbound(cert *tls.Certificate, signer *receipt.Signer, builder *events.Builder) error {
	cfg, st, log := g.Config, g.Store, g.Log
	oc := cfg.File.Outbound
	g.outboundCert.Store(cert)
	var soapSigner *wssec.Signer
	if g.Server.SOAP != nil {
		soapSigner = g.Server.SOAP.Signer
	}
	g.Deliverer = &outbound.Deliverer{Store: st, Partners: cfg.Partners, Log: log,
		// Senders are built on first use and again after a reload
		// (ResetSenders), each time with the client certificate then current:
		// the endpoint's own, or the gateway's outbound one.
		SenderFor: func(p *partner.Partner) (outbound.Sender, error) {
			clientCert := *g.outboundCert.Load()
			if c := p.Endpoint.ClientCert; c != nil {
				clientCert = *c
			}
			if p.Endpoint.Protocol == "soap" {
				if soapSigner == nil {
					return nil, errors.New("soap delivery needs the soap signing certificate")
				}
				return outbound.NewSOAPSender(p, clientCert, soapSigner, cfg.File.SOAP.Institution), nil
			}
			return outbound.NewJSONSender(p, clientCert, signer), nil
		},
		Status: func(d *store.Delivery, state string, attempts int, errText string, at time.Time) (store.Message, error) {
			return builder.DeliveryStatusMessage(oc.StatusTopic, events.DeliveryStatus{DeliveryID: d.ID, Key: d.Key, Partner: d.PartnerID,
				MessageType: d.MessageType, CaseID: d.CaseID, State: state, Attempts: attempts, Error: errText, At: at.UTC().Format(time.RFC3339)}, at)
		},
		Reply: func(d *store.Delivery, at time.Time) (store.Message, error) {
			return outbound.ReplyEvent(builder, d, at)
		}}
	if len(cfg.File.Kafka.Brokers) > 0 {
		kc, err := kafkaclient.New(cfg.File.Kafka)
		if err != nil {
			return err
		}
		g.OutboundConsumer = &outbound.Consumer{Store: st, Partners: cfg.Partners, Log: log, Status: g.Deliverer.Status, RequestKeys: cfg.RequestSigners,
			Refused: func() { g.M.VerificationFailed(outbound.VerificationKind) }, Queued: g.Deliverer.Wake}
		g.outboundKafka = kc
		g.outboundReader = func() *kafka.Reader {
			return kc.GroupReader("jambatan-outbound", []string{oc.Topic}, 500*time.Millisecond)
		}
	}
	return nil
}

// Listen binds the configured address (or addr when not empty).
func (g *Gateway) Listen(addr string) (net.Listener, error) {
	if addr == "" {
		addr = g.Config.File.Listen
	}
	return net.Listen("tcp", addr)
}

// HeadEvery is how often the gateway logs the message log's head.
const HeadEvery = time.Hour

// logHeads logs the message log's head at start and every HeadEvery until
// ctx is done (Serve logs it once more at the end).
func (g *Gateway) logHeads(ctx context.Context) {
	t := time.NewTicker(HeadEvery)
	defer t.Stop()
	for {
		g.logHead(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// logHead logs the last entry's sequence number and hash. A hash chain
// cannot show its newest entries deleted; these lines, kept where the
// logs go, are anchors for "gateway log verify --anchor SEQ:HASH".
func (g *Gateway) logHead(ctx context.Context) {
	seq, hash, err := g.Store.Head(ctx)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			g.Log.Warn("message log head unread", "err", err)
		}
	case seq > 0:
		g.Log.Info("message log head", "seq", seq, "anchor", fmt.Sprintf("%d:%s", seq, hash))
	}
}

// eventBuilder shapes the gateway's events, bounded by what the cluster
// accepts (kafka.max_message_bytes), so the intake refuses a submission
// whose event the broker would refuse; case messages carry receipts by
// signer.
func eventBuilder(cfg *config.Config, topics events.Topics, signer *receipt.Signer) *events.Builder {
	return &events.Builder{Topics: topics, Source: "urn:my:perkeso:jambatan:" + cfg.File.Instance, Receipts: signer,
		MaxValue: cfg.File.Kafka.MaxMessageBytes - events.RecordOverhead}
}

// drain publishes what the outbox holds once nothing more comes in, for
// up to relay.StopGrace: the events of the last requests reach Kafka now,
// not at the next start. With the broker away it gives up at the first
// failure; what is left waits in the outbox.
func (g *Gateway) drain() {
	if g.Relay == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), relay.StopGrace)
	defer cancel()
	n, err := g.Relay.Drain(ctx)
	left, lerr := g.Store.OutboxBacklog(context.Background())
	switch {
	case err != nil || lerr != nil || left > 0:
		// A store that is away fails both: said, not passed over.
		attrs := []any{"published", n, "err", errors.Join(err, lerr)}
		if lerr == nil {
			attrs = append(attrs, "left", left)
		}
		g.Log.Warn("outbox not drained as the gateway stops; published at the next start", attrs...)
	case n > 0:
		g.Log.Info("outbox drained as the gateway stops", "published", n)
	}
}

// ServeOperator serves the operator API on ln (mutual TLS) until ctx is done.
func (g *Gateway) ServeOperator(ctx context.Context, ln net.Listener) error {
	api := &operator.API{Store: g.Store, Partners: g.Config.Partners, Log: g.Log, Access: g.operatorAccess}
	if g.Deliverer != nil {
		api.Status, api.Queued = g.Deliverer.Status, g.Deliverer.Wake
	}
	hs := &http.Server{Handler: api.Handler(), TLSConfig: g.OperatorTLS, ErrorLog: server.ErrorLog(g.Log, "operator", g.M.HandshakeFailures),
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	return server.Serve(ctx, hs, connlimit.New(ln, MaxAdminConnections, nil, nil))
}

// MaxAdminConnections bounds the connections the ops and operator listeners
// each hold open. They serve a monitoring system and a few operators, on a
// management network, so a handful suffice; without a bound, a client there
// could hold the gateway's memory as limits.max_connections keeps partners
// from doing on theirs.
const MaxAdminConnections = 64

// Serve serves on ln (and the ops listener, if given) and runs the relay
// until ctx is done, then stops them and closes the store. The relay runs
// until the partner listener has finished its last requests and the
// deliverer has recorded its last attempts, and then publishes what they
// left in the outbox (drain).
func (g *Gateway) Serve(ctx context.Context, ln, ops net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRelay()
	relayDone := make(chan struct{})
	if g.Relay != nil {
		go func() { defer close(relayDone); _ = g.Relay.Run(relayCtx) }()
	} else {
		close(relayDone)
	}
	var wg sync.WaitGroup
	if g.Deliverer != nil {
		wg.Add(1)
		go func() { defer wg.Done(); _ = g.Deliverer.Run(ctx) }()
	}
	if g.OperatorLn != nil && g.OperatorTLS != nil {
		wg.Add(1)
		go func() { defer wg.Done(); _ = g.ServeOperator(ctx, g.OperatorLn) }()
	}
	if g.OutboundConsumer != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A group started on a topic the cluster lacks would never read
			// it, even once created: the reader starts once it is there.
			// The line saying so and the one saying reading starts share an
			// id of their own.
			topic := g.Config.File.Outbound.Topic
			var missing correlation.Outage
			if g.outboundKafka.WaitForTopics(ctx, 10*time.Second, func(_ []string, err error) {
				g.Log.Error("outbound requests are not read: the cluster has no topic "+topic+", or could not be asked; reading starts once it has",
					correlation.LogKey, missing.ID(), "err", err)
			}, topic) != nil {
				return
			}
			if id := missing.End(); id != "" {
				g.Log.Info("the cluster has topic "+topic+"; reading outbound requests", correlation.LogKey, id)
			}
			g.OutboundConsumer.Reader = g.outboundReader()
			defer g.OutboundConsumer.Reader.Close()
			g.OutboundConsumer.Serve(ctx, time.Second)
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); g.logHeads(ctx) }()
	var opsSrv *http.Server
	if ops != nil {
		// Bounded like the other listeners (net/http/pprof extends the write
		// deadline by the duration of a CPU profile it is asked for).
		opsSrv = &http.Server{Handler: g.OpsHandler(), ErrorLog: server.ErrorLog(g.Log, "ops", nil), ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
		go func() { _ = opsSrv.Serve(connlimit.New(ops, MaxAdminConnections, nil, nil)) }()
	}
	hs := g.Server.HTTPServer(g.TLS)
	ln = connlimit.New(ln, g.Config.File.Limits.MaxConnections, g.M.Connections, g.M.ConnectionWaits)
	err := server.Serve(ctx, hs, ln)
	if errors.Is(err, server.ErrCutAtStop) {
		g.Log.Warn("stopping: " + err.Error())
		err = nil
	}
	cancel()
	if opsSrv != nil {
		_ = opsSrv.Close()
	}
	wg.Wait() // the deliverer's last status events are in the outbox too
	stopRelay()
	<-relayDone
	g.drain()
	g.logHead(context.WithoutCancel(ctx)) // the last word on the log, after the last write
	if g.producer != nil {
		_ = g.producer.Close()
	}
	if cerr := g.Store.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
