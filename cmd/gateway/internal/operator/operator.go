// Package operator is the operator listener's API: for systems without
// Kafka, outbound requests can be posted here, and the delivery queue read
// and retried. It listens apart from the partner listener, with mutual TLS
// against the operators' own CA and an allow-list of certificate names.
package operator

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/outbound"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/problem"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// API serves the operator routes.
type API struct {
	Store    *store.DB
	Partners *partner.Registry
	Now      func() time.Time
}

// Routes of the operator listener.
var Routes = []struct{ Method, Path string }{
	{"POST", "/v1/outbound"},
	{"GET", "/v1/outbound"},
	{"POST", "/v1/outbound/{id}/retry"},
}

// Handler returns the operator API.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/outbound", a.post)
	mux.HandleFunc("GET /v1/outbound", a.list)
	mux.HandleFunc("POST /v1/outbound/{id}/retry", a.retry)
	return mux
}

func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func cid(r *http.Request) string { return r.Header.Get("X-Request-ID") }

// maxRequestBytes bounds an outbound request's body. (A longer body was
// once cut here and then failed as JSON; now it is refused as too large.)
const maxRequestBytes = 4 << 20

func (a *API) post(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
		problem.New(problem.TooLarge, "an outbound request is at most 4 MiB").WriteHTTP(w, cid(r))
		return
	}
	var req outbound.Request
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		problem.New(problem.BadRequest, "the body must be one outbound request (JSON)").WriteHTTP(w, cid(r))
		return
	}
	if err := req.Validate(a.Partners); err != nil {
		problem.New(problem.Invalid, err.Error()).WriteHTTP(w, cid(r))
		return
	}
	created, err := a.Store.Enqueue(r.Context(), &store.Delivery{Key: req.ID, PartnerID: req.Partner, MessageType: req.MessageType,
		CaseID: req.CaseID, Payload: req.Payload}, a.now())
	if err != nil {
		problem.Wrap(problem.Unavailable, "the store is unavailable; nothing was queued", err).WriteHTTP(w, cid(r))
		return
	}
	status := http.StatusAccepted
	if !created {
		status = http.StatusOK // the same id again: already queued
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"id": req.ID, "queued": created})
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	ds, err := a.Store.Deliveries(r.Context(), r.URL.Query().Get("state"), 1000)
	if err != nil {
		problem.Wrap(problem.Unavailable, "the store is unavailable", err).WriteHTTP(w, cid(r))
		return
	}
	type item struct {
		ID          int64  `json:"id"`
		Key         string `json:"key"`
		Partner     string `json:"partner"`
		MessageType string `json:"messageType"`
		State       string `json:"state"`
		Attempts    int    `json:"attempts"`
		NextAt      string `json:"nextAt"`
		LastError   string `json:"lastError,omitempty"`
	}
	out := []item{}
	for _, d := range ds {
		out = append(out, item{d.ID, d.Key, d.PartnerID, d.MessageType, d.State, d.Attempts, d.NextAt.UTC().Format(time.RFC3339), d.LastError})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (a *API) retry(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		problem.New(problem.BadRequest, "the delivery id is a number").WriteHTTP(w, cid(r))
		return
	}
	if err := a.Store.RetryDelivery(r.Context(), id, a.now()); err != nil {
		problem.New(problem.NotFound, "no undelivered delivery "+r.PathValue("id")).WriteHTTP(w, cid(r))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// TLSConfig requires an operator certificate from the operators' CA whose
// subject CN is in allowed.
func TLSConfig(cert tls.Certificate, operatorCAs *x509.CertPool, allowed []string) *tls.Config {
	names := map[string]bool{}
	for _, n := range allowed {
		names[n] = true
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: operatorCAs, VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !names[cs.PeerCertificates[0].Subject.CommonName] {
				return errors.New("not an operator certificate")
			}
			return nil
		}}
}
