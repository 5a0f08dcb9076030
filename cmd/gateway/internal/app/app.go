// Package app assembles a running gateway from a loaded configuration: store,
// receipt key, pipeline, mutual-TLS listener. Both "gateway serve" and
// "gateway dev" run through it, so dev mode is the production server with
// generated inputs.
package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
	"github.com/perkeso/jambatan/cmd/gateway/internal/intake"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/server"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/mapping"
)

// Gateway is an assembled, not yet listening gateway.
type Gateway struct {
	Config *config.Config
	Store  *store.SQLite
	Server *server.Server
	TLS    *tls.Config
	Log    *slog.Logger
}

// New opens the store, loads keys and certificates, and builds the server.
func New(cfg *config.Config, log *slog.Logger) (*Gateway, error) {
	cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls certificate: %w", err)
	}
	pool, err := certs.LoadPool(cfg.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	signer, err := receipt.LoadSigner(cfg.ReceiptKeyFile)
	if err != nil {
		return nil, fmt.Errorf("receipt key: %w", err)
	}
	st, err := store.OpenSQLite(cfg.StorePath)
	if err != nil {
		return nil, err
	}
	lim := cfg.File.Limits
	srv := &server.Server{
		Partners: cfg.Partners,
		Store:    st,
		Receipts: signer,
		Log:      log,
		Pipeline: &intake.Pipeline{Store: st, Receipts: signer, Rates: mapping.ExampleRates, Log: log},
		Limits: server.Limits{MaxBodyBytes: lim.MaxBodyBytes, ReadHeaderTimeout: dur(lim.ReadHeaderTimeout), ReadTimeout: dur(lim.ReadTimeout),
			WriteTimeout: dur(lim.WriteTimeout), IdleTimeout: dur(lim.IdleTimeout)},
	}
	return &Gateway{Config: cfg, Store: st, Server: srv, TLS: server.TLSConfig(cert, pool, cfg.Partners), Log: log}, nil
}

// Listen binds the configured address (or addr when not empty).
func (g *Gateway) Listen(addr string) (net.Listener, error) {
	if addr == "" {
		addr = g.Config.File.Listen
	}
	return net.Listen("tcp", addr)
}

// Serve serves on ln until ctx is done, then closes the store.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	defer g.Store.Close()
	hs := g.Server.HTTPServer(g.TLS)
	return server.Serve(ctx, hs, ln)
}

func dur(d config.Duration) time.Duration { return time.Duration(d) }
