// Package server is the gateway's HTTPS listener: mutual TLS that resolves
// the partner from its client certificate, the HTTP routes, correlation ids
// and limits. The work of a route is done by the intake pipeline.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/insurerclaim"
	"github.com/perkeso/jambatan/adapters/sgemployer"
	"github.com/perkeso/jambatan/cmd/gateway/internal/budget"
	"github.com/perkeso/jambatan/cmd/gateway/internal/correlation"
	"github.com/perkeso/jambatan/cmd/gateway/internal/intake"
	"github.com/perkeso/jambatan/cmd/gateway/internal/jwsin"
	"github.com/perkeso/jambatan/cmd/gateway/internal/metrics"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/problem"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/soapsrv"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/schema"
)

// CorrelationHeader carries the correlation id on every response.
const CorrelationHeader = correlation.Header

// DetachedSignatureHeader carries a detached JWS over an application/json body.
const DetachedSignatureHeader = "X-JWS-Signature"

// Limits bound one request.
type Limits struct {
	MaxBodyBytes int64
	// MaxInflightBytes bounds the body bytes of all requests being served
	// (budget.Budget); 0 is unbounded.
	MaxInflightBytes  int64
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
}

// Server serves the gateway's routes.
type Server struct {
	Partners *partner.Registry
	Pipeline *intake.Pipeline
	Store    *store.DB
	Receipts *receipt.Signer
	Limits   Limits
	Log      *slog.Logger
	// SOAP serves the agency exchange; nil answers it with a server fault.
	SOAP *soapsrv.Handler
	// Metrics, when set, counts requests by route, partner and outcome.
	Metrics *metrics.Metrics
	// TLS, when set, is the listener's TLS holder. Each request's client
	// certificate is checked again against its current CRLs and partners:
	// a kept-alive connection opened before a reload would otherwise go on
	// serving a certificate the reload revoked, for as long as its client
	// kept it busy.
	TLS *TLS

	budget *budget.Budget // Limits.MaxInflightBytes, made by Handler
}

// reqInfo carries what the route learns (the partner) back to the
// middleware that records the request.
type reqInfo struct{ partner string }

type infoKey struct{}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Routes lists every served route, method and pattern; the OpenAPI test
// checks each is documented.
var Routes = []problem.Route{
	{Method: "POST", Path: "/v1/injury-notices"},
	{Method: "GET", Path: "/v1/injury-notices/{recordId}"},
	{Method: "GET", Path: "/.well-known/jwks.json"},
	{Method: "GET", Path: "/healthz"},
	{Method: "POST", Path: "/v1/insurer-claims"},
	{Method: "POST", Path: "/soap/v1/exchange"},
	{Method: "GET", Path: "/soap/v1/exchange"},
	{Method: "GET", Path: "/soap/v1/agency-soap-v1.xsd"},
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler {
	s.budget = budget.New(s.Limits.MaxInflightBytes, s.Metrics.InFlight())
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/injury-notices", s.withPartner(s.postNotice))
	mux.HandleFunc("GET /v1/injury-notices/{recordId}", s.withPartner(s.getNotice))
	mux.HandleFunc("GET /.well-known/jwks.json", s.jwks)
	mux.HandleFunc("GET /healthz", s.health)
	mux.HandleFunc("POST /v1/insurer-claims", s.withPartner(s.postClaims))
	mux.HandleFunc("POST "+soapsrv.Route, s.withPartner(s.soap))
	mux.HandleFunc("GET "+soapsrv.Route, s.withPartner(s.wsdl))
	mux.HandleFunc("GET /soap/v1/agency-soap-v1.xsd", s.withPartner(s.xsd))
	return s.correlate(mux)
}

// CorrelationID returns the request's correlation id.
func CorrelationID(r *http.Request) string { return correlation.From(r.Context()) }

// correlate gives every request a correlation id (never taken from the
// client) and renders unknown routes as problems.
func (s *Server) correlate(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, id := correlation.Start(w, r)
		info := &reqInfo{}
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
		_, pattern := mux.Handler(r)
		if s.Metrics != nil {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w}
			w = sw
			defer func() {
				route := pattern
				if route == "" {
					route = "unknown"
				}
				s.Metrics.Requests.WithLabelValues(route, info.partner, strconv.Itoa(sw.status)).Inc()
				s.Metrics.Latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
			}()
		}
		if pattern == "" {
			problem.Unrouted(r.Method, r.URL.Path, Routes).WriteHTTP(w, id)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// withPartner resolves the partner from the verified client certificate.
// The TLS handshake already refused unknown certificates; this is the
// second lock on the same door.
func (s *Server) withPartner(h func(http.ResponseWriter, *http.Request, *partner.Partner)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			problem.New(problem.Signature, "a client certificate is required").WriteHTTP(w, CorrelationID(r))
			return
		}
		leaf := r.TLS.PeerCertificates[0]
		p, err := s.partnerOf(r.TLS)
		if err != nil {
			// The connection predates a reload that refused its certificate.
			w.Header().Set("Connection", "close")
			problem.New(problem.NotAuthorised, err.Error()).WriteHTTP(w, CorrelationID(r))
			return
		}
		if info, _ := r.Context().Value(infoKey{}).(*reqInfo); info != nil {
			info.partner = p.ID
		}
		// Partner client certificates are known only when they are used.
		s.Metrics.ObservePartnerCert(p.ID, leaf, time.Now())
		h(w, r, p)
	}
}

// partnerOf is the partner a connection's client certificate names,
// checked again against the listener's current client CAs and CRLs when the
// server has its TLS holder.
func (s *Server) partnerOf(cs *tls.ConnectionState) (*partner.Partner, error) {
	if s.TLS != nil {
		return s.TLS.CheckConnection(cs, time.Now())
	}
	if p, ok := s.Partners.ByCertificate(cs.PeerCertificates[0]); ok {
		return p, nil
	}
	return nil, errors.New("unknown partner certificate")
}

func (s *Server) postNotice(w http.ResponseWriter, r *http.Request, p *partner.Partner) {
	id := CorrelationID(r)
	sub, release, ok := s.submission(w, r, p, sgemployer.Format, s.Limits.MaxBodyBytes)
	if !ok {
		return
	}
	defer release()
	res, perr := s.Pipeline.Submit(r.Context(), sub)
	if perr != nil {
		perr.WriteHTTP(w, id)
		return
	}
	if res.Status == http.StatusAccepted {
		w.Header().Set("Location", "/v1/injury-notices/"+res.RecordID)
	}
	writeJSON(w, res.Status, res)
}

// batchBodyLimit is the request body limit of the insurer route: the 4 MiB
// payload limit of insurer-claim/v1 as a base64url JWS, with headroom.
const batchBodyLimit = 6 << 20

func (s *Server) postClaims(w http.ResponseWriter, r *http.Request, p *partner.Partner) {
	id := CorrelationID(r)
	sub, release, ok := s.submission(w, r, p, insurerclaim.Format, max(s.Limits.MaxBodyBytes, batchBodyLimit))
	if !ok {
		return
	}
	defer release()
	res, perr := s.Pipeline.SubmitBatch(r.Context(), sub)
	if perr != nil {
		perr.WriteHTTP(w, id)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	problem.WriteWhole(w, http.StatusOK, res)
}

// submission reads a signed JSON submission's body within limit, once the
// in-flight budget has room for it (release gives the room back); a body it
// cannot take or read is refused (503, 413 or 400), logged and answered here.
func (s *Server) submission(w http.ResponseWriter, r *http.Request, p *partner.Partner, format string, limit int64) (sub intake.Submission, release func(), ok bool) {
	id := CorrelationID(r)
	if perr := s.refusedUnread(r); perr != nil {
		s.logRefusal(r, p, perr, format)
		perr.WriteHTTP(w, id)
		return intake.Submission{}, nil, false
	}
	release, ok = s.budget.Reserve(r, limit, p.ID)
	if !ok {
		perr := problem.New(problem.Unavailable, busy)
		s.logRefusal(r, p, perr, format)
		shed(w)
		perr.WriteHTTP(w, id)
		return intake.Submission{}, nil, false
	}
	body, err := readBody(http.MaxBytesReader(w, r.Body, limit), r.ContentLength, limit)
	if err != nil {
		release()
		var mbe *http.MaxBytesError
		perr := problem.New(problem.BadRequest, "the request body could not be read")
		if errors.As(err, &mbe) {
			perr = problem.New(problem.TooLarge, "the request body is over the limit",
				adapters.Problem{Pointer: "", Code: adapters.CodeRange, Message: "body over the limit"})
		}
		s.logRefusal(r, p, perr, format)
		perr.WriteHTTP(w, id)
		return intake.Submission{}, nil, false
	}
	return intake.Submission{Partner: p, Format: format, Route: r.Method + " " + r.URL.Path, ContentType: r.Header.Get("Content-Type"),
		Body: body, DetachedJWS: r.Header.Get(DetachedSignatureHeader), CorrelationID: id}, release, true
}

// readBody reads a body of the length declared, when it is within limit,
// into one slice of that length; io.ReadAll grew its buffer from 512 bytes,
// allocating twice a notice's size. An undeclared (chunked) body, or one
// declared over the limit, is read until the limit refuses it.
func readBody(body io.Reader, declared, limit int64) ([]byte, error) {
	if declared <= 0 || declared > limit {
		return io.ReadAll(body)
	}
	b := make([]byte, declared)
	if _, err := io.ReadFull(body, b); err != nil {
		return nil, err
	}
	return b, nil
}

// refusedUnread refuses, before the body is read, a submission whose
// headers the gateway could only misread: a header it reads once sent
// twice, or a content coding; or one with a query, which no submission
// route reads (a partner's ?dryRun=true or ?test=1 would otherwise be a
// real notice, accepted, stored and published). A SOAP caller gets its
// Detail in a fault.
func (s *Server) refusedUnread(r *http.Request) *problem.Error {
	switch h := repeated(r); {
	case r.URL.RawQuery != "":
		return problem.New(problem.BadRequest, noQuery)
	case h == DetachedSignatureHeader:
		const reason = "exactly one X-JWS-Signature header: each is a signature"
		s.Metrics.VerificationFailed(string(jwsin.KindMultiple))
		return problem.New(problem.Signature, reason, adapters.Problem{Pointer: "", Code: adapters.CodeSignature, Message: reason})
	case h != "":
		return problem.New(problem.BadRequest, "send one "+h+" header")
	case coded(r):
		return problem.New(problem.UnsupportedMediaType, uncoded)
	}
	return nil
}

// singletons are the request headers the gateway reads once. Sent twice,
// the one it read and the one the sender or an intermediary meant could
// differ (two media types, two signatures), so a second is refused.
var singletons = []string{"Content-Type", DetachedSignatureHeader, "SOAPAction"}

// repeated is the first of singletons that r carries more than once, or "".
func repeated(r *http.Request) string {
	for _, h := range singletons {
		if len(r.Header.Values(h)) > 1 {
			return h
		}
	}
	return ""
}

// coded reports whether r's body has a content coding other than identity
// (Content-Encoding). The gateway takes a body as it is: a gzip body would
// be read as the document, and a signature checked over bytes the sender
// did not sign, so it is refused, unread, with a clear reason.
func coded(r *http.Request) bool {
	for _, v := range r.Header.Values("Content-Encoding") {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return true
			}
		}
	}
	return false
}

// noQuery is the reason a submission with a query is refused.
const noQuery = "a submission takes no query parameters, and there is no test or dry-run mode: nothing was accepted (try a document on a dev gateway)"

// uncoded is the reason a coded body is refused.
const uncoded = "a Content-Encoding other than identity is not accepted: send the body uncompressed"

// shed marks the answer to a request refused unread: retry in a second,
// and on a new connection, since this one still carries the unread body
// (closing it spares the server reading the body only to drop it).
func shed(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	w.Header().Set("Connection", "close")
}

// busy is the detail of a request refused because the in-flight budget
// (limits.max_inflight_bytes) is spent, or the partner's half of it: nothing
// was read or accepted.
const busy = "the gateway is serving as many request bytes as it may, in all or for this partner; nothing was accepted, retry in a second"

// logRefusal logs a request refused before the pipeline (body unreadable or
// over the limit): the body is not kept, as it was not read whole.
func (s *Server) logRefusal(r *http.Request, p *partner.Partner, perr *problem.Error, format string) {
	e := &store.Entry{CorrelationID: CorrelationID(r), PartnerID: p.ID, ReceivedAt: time.Now().UTC(), Route: r.Method + " " + r.URL.Path,
		ContentType: r.Header.Get("Content-Type"), Signature: r.Header.Get(DetachedSignatureHeader), Verification: "not checked",
		Status: perr.Kind.Status(), Outcome: store.OutcomeRejected, ProblemType: perr.Kind.TypeURI()}
	err := s.Pipeline.AddRejected(e, format, perr)
	if err == nil {
		err = s.Store.Log(r.Context(), e)
	}
	if err != nil {
		s.Log.Error("message log write failed", "correlation_id", e.CorrelationID, "err", err)
	}
	s.Log.Warn("submission refused", "correlation_id", e.CorrelationID, "partner", p.ID, "status", e.Status, "problem", e.ProblemType)
}

var reUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func (s *Server) getNotice(w http.ResponseWriter, r *http.Request, p *partner.Partner) {
	id := CorrelationID(r)
	rid := r.PathValue("recordId")
	if !reUUID.MatchString(rid) {
		problem.New(problem.BadRequest, "recordId must be a lower-case UUID").WriteHTTP(w, id)
		return
	}
	rec, err := s.Store.RecordByID(r.Context(), rid)
	if errors.Is(err, store.ErrNotFound) || (err == nil && rec.PartnerID != p.ID) {
		// Another partner's record is indistinguishable from no record.
		problem.New(problem.NotFound, "no record "+rid+" from this partner").WriteHTTP(w, id)
		return
	}
	if err != nil {
		s.Log.Error("record lookup failed", "correlation_id", id, "err", err)
		problem.New(problem.Unavailable, "the message log is unavailable").WriteHTTP(w, id)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": store.OutcomeAccepted, "recordId": rec.RecordID,
		"receipt": rec.Receipt, "acceptedAt": rec.AcceptedAt.UTC().Format(time.RFC3339)})
}

func (s *Server) soap(w http.ResponseWriter, r *http.Request, p *partner.Partner) {
	if s.SOAP == nil {
		problem.New(problem.Unavailable, "the agency exchange is not configured on this gateway").WriteHTTP(w, CorrelationID(r))
		return
	}
	if perr := s.refusedUnread(r); perr != nil {
		s.SOAP.Refuse(w, r, p, CorrelationID(r), perr.Detail)
		return
	}
	release, ok := s.budget.Reserve(r, s.SOAP.BodyLimit(), p.ID)
	if !ok {
		shed(w)
		s.SOAP.Busy(w, r, p, CorrelationID(r), busy)
		return
	}
	defer release()
	s.SOAP.Serve(w, r, p, CorrelationID(r))
}

// wsdl serves the WSDL at ?wsdl (its schemaLocation names the XSD route).
func (s *Server) wsdl(w http.ResponseWriter, r *http.Request, _ *partner.Partner) {
	if _, ok := r.URL.Query()["wsdl"]; !ok {
		problem.New(problem.BadRequest, "GET "+soapsrv.Route+"?wsdl serves the WSDL; the exchange itself is POST").WriteHTTP(w, CorrelationID(r))
		return
	}
	serveFile(w, "agency-soap-v1.wsdl")
}

func (s *Server) xsd(w http.ResponseWriter, r *http.Request, _ *partner.Partner) {
	serveFile(w, "agency-soap-v1.xsd")
}

func serveFile(w http.ResponseWriter, name string) {
	b, err := schema.Files().ReadFile(name)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = w.Write(b)
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_ = json.NewEncoder(w).Encode(s.Receipts.JWKS())
}

// health answers a partner's liveness check: the gateway is up and its
// message log answers. Nothing more: the detail (volumes, the outbox, the
// relay's last error, which can name internal hosts) is the operators',
// on the ops listener.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if _, err := s.Store.Entries(r.Context()); err != nil {
		problem.Wrap(problem.Unavailable, "message log unavailable", err).WriteHTTP(w, CorrelationID(r))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	b, _ := json.Marshal(v)
	problem.WriteWhole(w, status, append(b, '\n'))
}

// HTTPServer builds the net/http server with the limits applied.
func (s *Server) HTTPServer(tlsConf *tls.Config) *http.Server {
	var failures *prometheus.CounterVec
	if s.Metrics != nil {
		failures = s.Metrics.HandshakeFailures
	}
	return &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: s.Limits.ReadHeaderTimeout,
		ReadTimeout:       s.Limits.ReadTimeout,
		WriteTimeout:      s.Limits.WriteTimeout,
		IdleTimeout:       s.Limits.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          ErrorLog(s.Log, "partner", failures),
	}
}

// StopGrace is how long a stop waits for the requests in progress.
const StopGrace = 10 * time.Second

// ErrCutAtStop is Serve's answer when requests were still in progress
// once StopGrace was over (a client sending its body slowly, within the
// read timeout): their connections are closed, as a crash would, and
// their senders send again (a notice accepted meanwhile is then a
// DUPLICATE with its first receipt). It is not a failure of the stop.
var ErrCutAtStop = fmt.Errorf("requests still in progress after the stop's %s grace; their connections were closed", StopGrace)

// Serve serves TLS on ln until ctx is done, then shuts down gracefully.
func Serve(ctx context.Context, hs *http.Server, ln net.Listener) error {
	return serveFor(ctx, hs, ln, StopGrace)
}

func serveFor(ctx context.Context, hs *http.Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(tls.NewListener(ln, hs.TLSConfig)) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		if err := hs.Shutdown(sctx); !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		// Shutdown leaves them open: the store closes next.
		_ = hs.Close()
		return ErrCutAtStop
	}
}
