package app

import (
	"context"
	"errors"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
	"github.com/perkeso/jambatan/cmd/gateway/internal/correlation"
)

// Reload re-reads the configuration file and swaps in its partner registry,
// server certificate (both listeners'), client CAs, CRLs, receipt key, SOAP
// signing certificate, outbound client certificate, the back office's
// request keys and who may use the operator listener. Open connections
// stay open; new handshakes use the new material, and requests are checked
// against the new registry, CRLs and operators. A configuration with an
// error changes nothing. The reload's log lines, its refusal too, share a
// correlation id of their own.
func (g *Gateway) Reload() error {
	ctx := correlation.With(context.Background(), correlation.New())
	err := g.reload(ctx)
	if err != nil {
		g.Log.ErrorContext(ctx, "reload refused; the running configuration stays", "err", err)
	}
	return err
}

func (g *Gateway) reload(ctx context.Context) error {
	cfg, err := config.Load(g.Config.Path)
	if err != nil {
		return err
	}
	f, err := loadFiles(cfg)
	if err != nil {
		return err
	}
	lt, ids, signer := f.lt, f.ids, f.signer
	if err := g.canRenew(ids); err != nil {
		return err
	}
	g.Config.Partners.Replace(cfg.Partners)
	g.tlsHold.Set(lt.cert, lt.cas, lt.crls)
	g.Server.Receipts.Replace(signer)
	if ids.soap != nil {
		g.Server.SOAP.Signer.Replace(ids.soap.cert, ids.soap.key)
	}
	if ids.outbound != nil {
		g.outboundCert.Store(ids.outbound)
	}
	if g.Deliverer != nil {
		g.Deliverer.ResetSenders()
	}
	if g.operatorAccess != nil && f.operatorCAs != nil {
		g.operatorAccess.Set(f.operatorPool(), cfg.File.Operator.AllowedCNs, cfg.File.Operator.Roles, certs.NewRevocations(f.operatorCRLs))
	}
	if c := g.OutboundConsumer; c != nil && !c.ReplaceRequestKeys(cfg.RequestSigners) {
		g.Log.WarnContext(ctx, "configuration reloaded, but outbound.request_signers_file was added or removed: requiring the back office's signatures, or no longer, takes a restart; until then the running keys stay (or none)")
	}
	f.kafkaCerts = g.kafkaCerts // the Kafka clients' own, until a restart: their files are not read
	g.watch.Store(newWatched(cfg, f))
	g.Log.InfoContext(ctx, "configuration reloaded", "partners", len(cfg.Partners.All()), "crls", len(lt.crls))
	// Compared with the file the gateway started with, which is what those
	// settings still come from.
	if restart := g.Config.RestartOnly(cfg); len(restart) > 0 {
		g.Log.WarnContext(ctx, "configuration reloaded, but changed settings take a restart; until then the running values stay", "settings", restart)
	}
	return nil
}

// canRenew refuses a reload that would switch the SOAP endpoint or outbound
// delivery on or off: the gateway builds those once, when it starts, so
// that takes a restart. Renewing their certificates does not.
func (g *Gateway) canRenew(ids *identities) error {
	if (ids.soap != nil) != (g.Server.SOAP != nil) {
		return errors.New("soap.signing_cert_file was added or removed: that takes a restart")
	}
	if (ids.outbound != nil) != (g.Deliverer != nil) {
		return errors.New("outbound.client_cert_file was added or removed: that takes a restart")
	}
	return nil
}
