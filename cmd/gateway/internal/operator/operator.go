// Package operator is the operator listener's API: for systems without
// Kafka, outbound requests can be posted here, and the delivery queue read
// and retried. It listens apart from the partner listener, with mutual TLS
// against the operators' own CA and an allow-list of certificate names.
package operator

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/config"
	"github.com/perkeso/jambatan/cmd/gateway/internal/correlation"
	"github.com/perkeso/jambatan/cmd/gateway/internal/outbound"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/problem"
	"github.com/perkeso/jambatan/cmd/gateway/internal/sqldialect"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// API serves the operator routes.
type API struct {
	Store    *store.DB
	Partners *partner.Registry
	// Log receives one line per request: its correlation id, the
	// operator's certificate name, the route and the status (never a
	// payload, which may name a person).
	Log *slog.Logger
	Now func() time.Time
	// Status, when set, gives held answers their delivery-status event,
	// as the deliverer gives deliveries theirs.
	Status outbound.StatusFunc
	// Queued, when set, hears of deliveries queued or put back for a retry
	// (the deliverer's Wake: they are attempted now, not at its next poll).
	Queued func()
	// Access, when set, is checked on every request too, so that an
	// operator a reload removed is refused on a connection it holds open.
	Access *Access
}

// queued tells Queued, if set.
func (a *API) queued() {
	if a.Queued != nil {
		a.Queued()
	}
}

// route is one route of the operator listener, the role
// (config.OperatorRoles) an operator needs for it when operator.roles is
// set, and the query parameters it reads (checkQuery).
type route struct {
	problem.Route
	role    string
	params  []string
	handler func(*API, http.ResponseWriter, *http.Request)
}

var routes = []route{
	{problem.Route{Method: "POST", Path: "/v1/outbound"}, config.RoleSend, nil, (*API).post},
	{problem.Route{Method: "GET", Path: "/v1/outbound"}, config.RoleQueue, []string{"partner", "state", "before", "limit"}, (*API).list},
	{problem.Route{Method: "POST", Path: "/v1/outbound/{id}/retry"}, config.RoleQueue, nil, (*API).retry},
	{problem.Route{Method: "POST", Path: "/v1/outbound/retry"}, config.RoleQueue, []string{"partner"}, (*API).retryPartner},
	{problem.Route{Method: "GET", Path: "/v1/outbound/answer"}, config.RoleAnswers, []string{"id"}, (*API).deliveryAnswer},
}

// checkQuery refuses a query its route cannot read whole: a malformed
// escape, a parameter the route does not take (a misspelt filter,
// ?stat=dead, would list every delivery; a retry's ?partner= misspelt would
// be refused only by luck), one given twice (which would count?), or a
// value the store cannot search for (a NUL or invalid UTF-8: PostgreSQL
// refuses the query, which was a 503). Names are checked in order, so the
// answer is the same for the same query.
func checkQuery(raw string, params []string) *problem.Error {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return problem.New(problem.BadRequest, "the query is malformed (an escape that is not %XX, or a ;)")
	}
	for _, name := range slices.Sorted(maps.Keys(q)) {
		vs := q[name]
		switch {
		case !slices.Contains(params, name) && len(params) == 0:
			return problem.New(problem.BadRequest, "query parameter "+quoteShort(name)+": this route takes none")
		case !slices.Contains(params, name):
			return problem.New(problem.BadRequest, "query parameter "+quoteShort(name)+" is not one of this route's: "+strings.Join(params, ", "))
		case len(vs) > 1:
			return problem.New(problem.BadRequest, "query parameter "+name+" is given "+strconv.Itoa(len(vs))+" times; give it once")
		case sqldialect.Text(vs[0]) != vs[0]:
			return problem.New(problem.BadRequest, "query parameter "+name+" must be UTF-8 text without NUL")
		}
	}
	return nil
}

// quoteShort quotes a name the operator sent, cut to 64 bytes: a problem
// names what was refused but does not echo a whole query back.
func quoteShort(s string) string {
	if len(s) > 64 {
		s = strings.ToValidUTF8(s[:64], "") + "…"
	}
	return strconv.Quote(s)
}

// Routes of the operator listener.
var Routes = func() []problem.Route {
	rs := make([]problem.Route, len(routes))
	for i, rt := range routes {
		rs[i] = rt.Route
	}
	return rs
}()

// Handler returns the operator API. Every answer carries a correlation id
// of the gateway's own (X-Correlation-ID, and a problem's instance).
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	byPattern := map[string]route{}
	for _, rt := range routes {
		pattern := rt.Method + " " + rt.Path
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { rt.handler(a, w, r) })
		byPattern[pattern] = rt
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, _ = correlation.Start(w, r)
		if a.Access != nil && (r.TLS == nil || !a.Access.Allows(r.TLS.PeerCertificates)) {
			w.Header().Set("Connection", "close")
			a.refuse(w, r, problem.New(problem.NotAuthorised, "this certificate is not an operator's (any more)"))
			return
		}
		_, pattern := mux.Handler(r)
		if pattern == "" {
			a.refuse(w, r, problem.Unrouted(r.Method, r.URL.Path, Routes))
			return
		}
		rt := byPattern[pattern]
		if a.Access != nil && !a.Access.Permits(r.TLS.PeerCertificates[0].Subject.CommonName, rt.role) {
			a.refuse(w, r, problem.New(problem.NotAuthorised, "this operator is not given the role "+strconv.Quote(rt.role)+" (operator.roles)"))
			return
		}
		if perr := checkQuery(r.URL.RawQuery, rt.params); perr != nil {
			a.refuse(w, r, perr)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// answer logs the request and writes a successful answer: v as JSON, or
// no body when v is nil. (The line is logged first, so that it is written
// when the operator has the answer.)
func (a *API) answer(w http.ResponseWriter, r *http.Request, status int, v any, attrs ...any) {
	a.log(r, status, slog.LevelInfo, attrs...)
	if v != nil {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

// refuse logs the request and writes the problem.
// storeProblem is the answer when the store failed a write: nothing was
// done (what: "queued", "changed"), or, when the store cannot say whether
// the write committed (a PostgreSQL commit timed out or lost its
// connection), that it may have been, and what to do then.
func storeProblem(err error, what, then string) *problem.Error {
	if store.OutcomeUnknown(err) {
		return problem.Wrap(problem.Unavailable, "the store did not confirm the write, so it may or may not have been "+what+": "+then, err)
	}
	return problem.Wrap(problem.Unavailable, "the store is unavailable; nothing was "+what, err)
}

func (a *API) refuse(w http.ResponseWriter, r *http.Request, perr *problem.Error) {
	attrs := []any{"problem", perr.Kind.TypeURI()}
	if perr.Cause != nil {
		attrs = append(attrs, "err", perr.Cause.Error())
	}
	a.log(r, perr.Kind.Status(), slog.LevelWarn, attrs...)
	perr.WriteHTTP(w, correlation.From(r.Context()))
}

func (a *API) log(r *http.Request, status int, level slog.Level, attrs ...any) {
	if a.Log == nil {
		return
	}
	operator := ""
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		operator = r.TLS.PeerCertificates[0].Subject.CommonName
	}
	a.Log.Log(r.Context(), level, "operator request", append([]any{"correlation_id", correlation.From(r.Context()),
		"operator", operator, "method", r.Method, "path", r.URL.Path, "status", status}, attrs...)...)
}

// maxRequestBytes bounds an outbound request's body. (A longer body was
// once cut here and then failed as JSON; now it is refused as too large.)
const maxRequestBytes = 4 << 20

func (a *API) post(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		a.refuse(w, r, problem.New(problem.TooLarge, "an outbound request is at most 4 MiB"))
		return
	}
	if err != nil {
		a.refuse(w, r, problem.New(problem.BadRequest, "the body could not be read"))
		return
	}
	req, err := outbound.ParseRequest(body)
	if err != nil {
		a.refuse(w, r, problem.New(problem.BadRequest, "the body must be one outbound request: "+err.Error()))
		return
	}
	if err := req.Validate(a.Partners); err != nil {
		a.refuse(w, r, problem.New(problem.Invalid, err.Error()))
		return
	}
	created, err := outbound.Queue(r.Context(), a.Store, &req, a.now(), a.Status)
	switch {
	case errors.Is(err, store.ErrCaseNotShared):
		a.refuse(w, r, problem.New(problem.Invalid, err.Error()))
		return
	case errors.Is(err, outbound.ErrIDReused):
		a.refuse(w, r, problem.New(problem.Conflict, "id "+strconv.Quote(req.ID)+": "+err.Error()+"; nothing was queued: give this request an id of its own"))
		return
	case err != nil:
		a.refuse(w, r, storeProblem(err, "queued", "send it again unchanged (it is queued once)"))
		return
	}
	status := http.StatusAccepted
	if !created {
		status = http.StatusOK // the same request again: queued already
	} else {
		a.queued()
	}
	a.answer(w, r, status, map[string]any{"id": req.ID, "queued": created},
		"delivery_key", req.ID, "partner", req.Partner, "message_type", req.MessageType, "queued", created)
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	if state != "" && !slices.Contains(store.DeliveryStates, state) {
		a.refuse(w, r, problem.New(problem.BadRequest, "state is one of "+strings.Join(store.DeliveryStates, ", ")+", or absent for all"))
		return
	}
	limit, before := 1000, int64(0)
	if v := r.URL.Query().Get("limit"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 1 && n <= 1000 {
			limit = n
		} else {
			a.refuse(w, r, problem.New(problem.BadRequest, "limit is 1 to 1000"))
			return
		}
	}
	if v := r.URL.Query().Get("before"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			before = n
		} else {
			a.refuse(w, r, problem.New(problem.BadRequest, "before is a delivery id"))
			return
		}
	}
	partnerID := r.URL.Query().Get("partner")
	ds, err := a.Store.DeliveriesOf(r.Context(), partnerID, state, before, limit)
	if err != nil {
		a.refuse(w, r, problem.Wrap(problem.Unavailable, "the store is unavailable", err))
		return
	}
	type item struct {
		ID          int64  `json:"id"`
		Key         string `json:"key"`
		Partner     string `json:"partner"`
		MessageType string `json:"messageType"`
		CaseID      string `json:"caseId,omitempty"` // a delivered NotifyInjury: the case its agency assigned
		State       string `json:"state"`
		Attempts    int    `json:"attempts"`
		NextAt      string `json:"nextAt"`
		LastError   string `json:"lastError,omitempty"`
		NoRetry     bool   `json:"noRetry,omitempty"`  // refused for good when queued: a retry is refused
		WaitsFor    int64  `json:"waitsFor,omitempty"` // pending behind this earlier delivery on its case
	}
	out := []item{}
	for _, d := range ds {
		out = append(out, item{d.ID, d.Key, d.PartnerID, d.MessageType, d.CaseID, d.State, d.Attempts, d.NextAt.UTC().Format(time.RFC3339), d.LastError, d.NoRetry, d.WaitsFor})
	}
	if len(ds) == limit { // a full page: the next one is older (RFC 8288)
		q := url.Values{"before": {strconv.FormatInt(ds[len(ds)-1].ID, 10)}, "limit": {strconv.Itoa(limit)}}
		if partnerID != "" {
			q.Set("partner", partnerID)
		}
		if state != "" {
			q.Set("state", state)
		}
		w.Header().Set("Link", "</v1/outbound?"+q.Encode()+`>; rel="next"`)
	}
	a.answer(w, r, http.StatusOK, out, "deliveries", len(out))
}

func (a *API) retry(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		a.refuse(w, r, problem.New(problem.BadRequest, "the delivery id is a number"))
		return
	}
	switch err := a.Store.RetryDelivery(r.Context(), id, a.now()); {
	case errors.Is(err, store.ErrNotFound):
		a.refuse(w, r, problem.New(problem.NotFound, "no undelivered delivery "+r.PathValue("id")))
	case errors.Is(err, store.ErrNoRetry):
		a.refuse(w, r, problem.New(problem.Invalid, err.Error()))
	case err != nil:
		a.refuse(w, r, storeProblem(err, "changed", "see the delivery's state (gateway outbound list) before asking again"))
	default:
		a.queued()
		a.answer(w, r, http.StatusNoContent, nil, "delivery_id", id)
	}
}

// retryPartner puts every dead letter of the partner named by ?partner=
// back in the queue: a partner fixed after hours down has many.
func (a *API) retryPartner(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query().Get("partner")
	if p == "" {
		a.refuse(w, r, problem.New(problem.BadRequest, "partner is required: whose dead letters to queue again"))
		return
	}
	n, err := a.Store.RetryDead(r.Context(), p, a.now())
	if err != nil {
		a.refuse(w, r, storeProblem(err, "changed", "see the delivery's state (gateway outbound list) before asking again"))
		return
	}
	if n > 0 {
		a.queued()
	}
	left, err := a.Store.DeadForGood(r.Context(), p)
	if err != nil {
		a.refuse(w, r, problem.Wrap(problem.Unavailable, fmt.Sprintf("%d dead letters were queued again; the store is unavailable to count those refused for good", n), err))
		return
	}
	a.answer(w, r, http.StatusOK, map[string]any{"partner": p, "queued": n, "refusedForGood": left}, "partner", p, "queued", n, "refused_for_good", left)
}

// deliveryAnswer writes what the partner answered to the delivery whose
// request id ?id= names: for an agency's InformationReply whose event went
// without its documents (documentsOmitted), the whole signed answer.
func (a *API) deliveryAnswer(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("id")
	if key == "" {
		a.refuse(w, r, problem.New(problem.BadRequest, "id is required: the request id of a delivered delivery"))
		return
	}
	answer, err := a.Store.DeliveryAnswer(r.Context(), key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a.refuse(w, r, problem.New(problem.NotFound, "no answer of a delivered request with that id (held answers have none)"))
		return
	case err != nil:
		a.refuse(w, r, problem.Wrap(problem.Unavailable, "the store is unavailable", err))
		return
	}
	a.log(r, http.StatusOK, slog.LevelInfo, "key", key, "bytes", len(answer))
	ct := "application/json"
	if bytes.HasPrefix(bytes.TrimSpace(answer), []byte("<")) {
		ct = "text/xml; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(answer)
}

// Access is who may use the operator listener: the operators' CA and the
// subject CNs allowed. A reload replaces it (Set), for the next handshakes
// and for every request after it, on connections already open too: an
// operator removed from allowed_cns is refused at once (it took a
// restart).
type Access struct {
	cur atomic.Pointer[access]
}

type access struct {
	cas     *x509.CertPool
	names   map[string]bool
	roles   map[string][]string // nil: every name may use every route
	revoked certs.Revocations
}

// NewAccess is the access of the operators' CA, the names allowed, their
// roles (operator.roles; nil for every route to every name) and what the
// CAs' CRLs revoke.
func NewAccess(operatorCAs *x509.CertPool, allowed []string, roles map[string][]string, revoked certs.Revocations) *Access {
	a := &Access{}
	a.Set(operatorCAs, allowed, roles, revoked)
	return a
}

// Set replaces the CA, the names, their roles and the revocations.
func (a *Access) Set(operatorCAs *x509.CertPool, allowed []string, roles map[string][]string, revoked certs.Revocations) {
	names := map[string]bool{}
	for _, n := range allowed {
		names[n] = true
	}
	a.cur.Store(&access{cas: operatorCAs, names: names, roles: roles, revoked: revoked})
}

// Permits reports whether the operator named may use the routes of role
// (Allows decides whether it is an operator at all).
func (a *Access) Permits(name, role string) bool {
	cur := a.cur.Load()
	return cur.roles == nil || slices.Contains(cur.roles[name], role)
}

// Allows reports whether the client certificate chain, as a handshake
// verified it, belongs to an operator now: its leaf names one allowed, and
// it chains to the operators' CA as it is now, through no certificate the
// CAs' CRLs list (operator.crl_files: an operator's certificate that was
// lost is revoked without renaming the operator).
func (a *Access) Allows(chain []*x509.Certificate) bool {
	cur := a.cur.Load()
	if len(chain) == 0 || !cur.names[chain[0].Subject.CommonName] {
		return false
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	chains, err := chain[0].Verify(x509.VerifyOptions{Roots: cur.cas, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil && cur.revoked.Spares(chains)
}

// TLSConfig requires an operator certificate from the operators' CA whose
// subject CN is allowed (access, as it is at each handshake), over the
// partner listener's protocol versions and suites (with Go's defaults it
// also accepted ECDHE with AES-CBC and SHA-1 in TLS 1.2:
// TestOpenSSLAgreesOnTLSPolicy). Each handshake presents cert(), the
// server certificate as a reload last renewed it (the listener kept the
// one it started with, which expired in the end).
func TLSConfig(cert func() *tls.Certificate, access *Access) *tls.Config {
	now := func() *tls.Config {
		return &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: certs.Suites(), Certificates: []tls.Certificate{*cert()},
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: access.cur.Load().cas, VerifyConnection: func(cs tls.ConnectionState) error {
				if !access.Allows(cs.PeerCertificates) {
					return errors.New("not an operator certificate")
				}
				return nil
			}}
	}
	// Every handshake, with a server name or without (an operator may dial
	// an address), takes the certificate and the access as they are now.
	c := now()
	c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return now(), nil }
	return c
}
