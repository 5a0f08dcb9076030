package outbound_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/outbound"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/soapclient"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

// TestOversizedResponseDeadLetters: a partner answering with more than
// 1 MiB is not read further, not retried, and the delivery waits for an
// operator with the reason.
func TestOversizedResponseDeadLetters(t *testing.T) {
	for _, tc := range []struct {
		protocol, typ, payload, contentType string
		limit                               int
	}{
		{"json", "JSON", `{}`, "application/json", 1 << 20},
		{"soap", "RequestInformation", `{"items":[{"code":"WAGES_6M"}]}`, "text/xml; charset=utf-8", soapclient.MaxResponseBytes},
	} {
		t.Run("fail/"+tc.protocol, func(t *testing.T) {
			w := newWorld(t)
			var n atomic.Int32
			srv := w.server(t, func(rw http.ResponseWriter, r *http.Request) {
				n.Add(1)
				rw.Header().Set("Content-Type", tc.contentType)
				_, _ = rw.Write(bytes.Repeat([]byte(" "), tc.limit+1))
			})
			w.enqueue(t, "req-big", tc.typ, tc.payload)
			run(t, w.deliverer(w.partner(srv.URL, tc.protocol, partner.Endpoint{})), func() bool { return w.state(t).State == store.DeliveryDead })
			if d := w.state(t); d.Attempts != 1 || n.Load() != 1 || !strings.Contains(d.LastError, fmt.Sprintf("response over %d bytes", tc.limit)) {
				t.Fatalf("attempts %d, requests %d, error %q", d.Attempts, n.Load(), d.LastError)
			}
		})
	}
}

// TestPartnerReceipt: a JSON partner's answer may carry a receipt; the
// delivery counts only if it verifies with the partner's registered keys.
// A receipt by another key, one naming its own key in the header (jwk), and
// unsigned or HMAC receipts are refused, and the delivery is dead-lettered
// (sending again would bring the same answer).
func TestPartnerReceipt(t *testing.T) {
	registered, _ := receipt.NewES256Key("partner-2026-1")
	stranger, _ := receipt.NewES256Key("partner-2026-1") // the same kid, another key
	sign := func(key jwk.Key, extra func(h jws.Headers)) string {
		h := jws.NewHeaders()
		kid, _ := key.KeyID()
		_ = h.Set(jws.KeyIDKey, kid)
		if extra != nil {
			extra(h)
		}
		b, err := jws.Sign([]byte(`{"received":"req-r"}`), jws.WithKey(jwa.ES256(), key, jws.WithProtectedHeaders(h)))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	strangerPub, _ := jwk.PublicKeyOf(stranger)
	hmacKey, _ := jwk.Import([]byte("the partner's public key, misused as an HMAC secret"))
	_ = hmacKey.Set(jwk.KeyIDKey, "partner-2026-1")
	hs256, _ := jws.Sign([]byte(`{"received":"req-r"}`), jws.WithKey(jwa.HS256(), hmacKey))
	for _, tc := range []struct {
		name, receipt string
		want          string // the delivery's state
	}{
		{"ok/registered-key", sign(registered, nil), store.DeliveryDelivered},
		{"fail/another-key", sign(stranger, nil), store.DeliveryDead},
		{"fail/key-in-header", sign(stranger, func(h jws.Headers) { _ = h.Set(jws.JWKKey, strangerPub) }), store.DeliveryDead},
		{"fail/hs256", string(hs256), store.DeliveryDead},
		{"fail/unsigned", "eyJhbGciOiJub25lIiwia2lkIjoicGFydG5lci0yMDI2LTEifQ.eyJyZWNlaXZlZCI6InJlcS1yIn0.", store.DeliveryDead},
		{"fail/not-a-jws", "receipt", store.DeliveryDead},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			srv := w.server(t, func(rw http.ResponseWriter, r *http.Request) {
				_ = json.NewEncoder(rw).Encode(map[string]string{"status": "RECEIVED", "receipt": tc.receipt})
			})
			p := w.partner(srv.URL, "json", partner.Endpoint{})
			pub, _ := jwk.PublicKeyOf(registered)
			_ = p.Keys.AddKey(pub)
			w.enqueue(t, "req-r", "JSON", `{}`)
			run(t, w.deliverer(p), func() bool { s := w.state(t).State; return s == store.DeliveryDelivered || s == store.DeliveryDead })
			if d := w.state(t); d.State != tc.want || (tc.want == store.DeliveryDead && !strings.Contains(d.LastError, "receipt does not verify")) {
				t.Fatalf("%s (%s), want %s", d.State, d.LastError, tc.want)
			}
		})
	}
}

// TestResetSendersClosesIdle: a reset (a reload) closes the cached
// senders' idle connections to partners; an answer that is not a delivery
// leaves the SOAP connection kept alive as much as a delivered one does.
func TestResetSendersClosesIdle(t *testing.T) {
	for _, tc := range []struct{ protocol, typ, payload string }{
		{"json", "JSON", `{}`},
		{"soap", "RequestInformation", `{"items":[{"code":"WAGES_6M"}]}`},
	} {
		t.Run("ok/"+tc.protocol, func(t *testing.T) {
			w := newWorld(t)
			var opened, closed atomic.Int32
			srv := w.server(t, func(rw http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				_, _ = rw.Write([]byte(`{}`)) // for SOAP, not an envelope: a failed attempt on a kept-alive connection
			}, func(s *httptest.Server) {
				s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
					switch st {
					case http.StateNew:
						opened.Add(1)
					case http.StateClosed:
						closed.Add(1)
					}
				}
			})
			p := w.partner(srv.URL, tc.protocol, partner.Endpoint{MaxAttempts: 1})
			p.Kind = partner.KindAgency
			dl := w.deliverer(p)
			w.enqueue(t, "k1", tc.typ, tc.payload)
			run(t, dl, func() bool { return w.state(t).Attempts == 1 })
			if opened.Load() != 1 || closed.Load() != 0 {
				t.Fatalf("after an attempt: %d opened, %d closed", opened.Load(), closed.Load())
			}
			dl.ResetSenders()
			gatewaytest.Until(t, 5*time.Second, 5*time.Millisecond, func() error {
				if closed.Load() != 1 {
					return errors.New("the idle connection is still open after the reset")
				}
				return nil
			})
		})
	}
}

// TestWeakPartnerTLSRefused: both senders hold a partner's server to the
// gateway's TLS policy (certs.ClientConfig). A server offering only AES-CBC
// with SHA-1, or only TLS 1.1, is refused in the handshake and never sees
// the request; the same server with an AEAD suite gets it.
func TestWeakPartnerTLSRefused(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name     string
		suite    uint16 // the server's only TLS 1.2 suite
		max      uint16
		received bool
	}{
		{"ok/tls12-aes-gcm", tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.VersionTLS12, true},
		{"fail/tls12-aes-cbc-sha1", tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.VersionTLS12, false},
		{"fail/tls11", tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.VersionTLS11, false},
	} {
		for _, protocol := range []string{"json", "soap"} {
			t.Run(tc.name+"/"+protocol, func(t *testing.T) {
				var n atomic.Int32
				srv := w.server(t, func(http.ResponseWriter, *http.Request) { n.Add(1) }, func(s *httptest.Server) {
					s.TLS.CipherSuites, s.TLS.MinVersion, s.TLS.MaxVersion = []uint16{tc.suite}, tls.VersionTLS10, tc.max
					s.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
				})
				p := w.partner(srv.URL, protocol, partner.Endpoint{})
				d := &store.Delivery{Key: "k-" + tc.name, PartnerID: "p1", MessageType: "JSON", Payload: []byte(`{}`)}
				send := outbound.NewJSONSender(p, w.client, w.signer).Send
				if protocol == "soap" {
					d.MessageType, d.CaseID, d.Payload = "RequestInformation", "MY:PERKESO:XB-2026-ABC", []byte(`{"items":[{"code":"WAGES_6M"}]}`)
					send = outbound.NewSOAPSender(p, w.client, &wssec.Signer{Cert: w.soapKey.Cert, Key: w.soapKey.Key}, "MY:PERKESO").Send
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, _, err := send(ctx, d)
				if got := n.Load() == 1; got != tc.received {
					t.Fatalf("server received the request: %v, want %v (send: %v)", got, tc.received, err)
				}
				if !tc.received && (err == nil || !strings.Contains(err.Error(), "tls")) {
					t.Fatalf("send: %v, want a TLS handshake error", err)
				}
			})
		}
	}
}

// TestConnectionsKeptAlive: a partner is sent its deliveries over about as
// many connections as its concurrency, each kept for the next attempt (with
// fewer kept alive than attempts in flight, 400 deliveries at concurrency
// 8 made 155 connections, a TLS handshake each; at 16, 257).
func TestConnectionsKeptAlive(t *testing.T) {
	for _, concurrency := range []int{2, 8, 16} {
		t.Run(fmt.Sprintf("ok/concurrency-%d", concurrency), func(t *testing.T) {
			w := newWorld(t)
			var conns atomic.Int32
			srv := w.server(t, func(rw http.ResponseWriter, r *http.Request) {
				time.Sleep(time.Millisecond)
				_, _ = rw.Write([]byte(`{}`))
			}, func(s *httptest.Server) {
				s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
					if st == http.StateNew {
						conns.Add(1)
					}
				}
			})
			dl := w.deliverer(w.partner(srv.URL, "json", partner.Endpoint{Concurrency: concurrency}))
			for i := range 200 {
				w.enqueue(t, fmt.Sprint("k", i), "JSON", `{}`)
			}
			run(t, dl, func() bool {
				c, err := w.st.DeliveryCounts(context.Background())
				return err == nil && c[store.DeliveryDelivered] == 200
			})
			// A connection goes back to the idle pool just after its attempt
			// ends, so now and then the next attempt has dialled already.
			if n := conns.Load(); n > int32(concurrency+concurrency/2) {
				t.Fatalf("200 deliveries at concurrency %d made %d connections", concurrency, n)
			}
		})
	}
}

// TestNoPartnerCookies: a cookie a partner sets is not sent back with the
// next delivery (resty's default client kept a cookie jar).
func TestNoPartnerCookies(t *testing.T) {
	w := newWorld(t)
	var sentBack atomic.Int32
	srv := w.server(t, func(rw http.ResponseWriter, r *http.Request) {
		if len(r.Cookies()) > 0 {
			sentBack.Add(1)
		}
		http.SetCookie(rw, &http.Cookie{Name: "session", Value: "partner-side", Path: "/"})
		_, _ = rw.Write([]byte(`{}`))
	})
	dl := w.deliverer(w.partner(srv.URL, "json", partner.Endpoint{Concurrency: 1}))
	for i := range 3 {
		w.enqueue(t, fmt.Sprint("k", i), "JSON", `{}`)
	}
	run(t, dl, func() bool {
		c, err := w.st.DeliveryCounts(context.Background())
		return err == nil && c[store.DeliveryDelivered] == 3
	})
	if n := sentBack.Load(); n != 0 {
		t.Fatalf("%d of 3 deliveries sent the partner's cookie back", n)
	}
}

// TestRedirectsNotFollowed: a partner endpoint that answers with a
// redirect is not followed, with the message or without it (a 307 or 308
// sends the body again, and to a plain-HTTP address it would go in the
// clear, without mutual TLS): the delivery is a dead letter naming the
// status, for an operator to fix the endpoint's URL.
func TestRedirectsNotFollowed(t *testing.T) {
	for _, protocol := range []string{"json", "soap"} {
		for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
			t.Run(fmt.Sprintf("fail/%s-%d", protocol, status), func(t *testing.T) {
				w := newWorld(t)
				var elsewhere atomic.Int32
				plain := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
				defer plain.Close()
				var n atomic.Int32
				srv := w.server(t, func(rw http.ResponseWriter, r *http.Request) {
					n.Add(1)
					http.Redirect(rw, r, plain.URL+"/in", status)
				})
				typ, payload := "JSON", `{"n":1}`
				if protocol == "soap" {
					typ, payload = "RequestInformation", `{"items":[{"code":"WAGES_6M"}]}`
				}
				w.enqueue(t, "req-redirected", typ, payload)
				run(t, w.deliverer(w.partner(srv.URL, protocol, partner.Endpoint{})), func() bool {
					d := w.state(t)
					return d.State == store.DeliveryDead || d.Attempts >= 2
				})
				d := w.state(t)
				if d.State != store.DeliveryDead || n.Load() != 1 || elsewhere.Load() != 0 || !strings.Contains(d.LastError, fmt.Sprintf("HTTP %d", status)) {
					t.Fatalf("state %s after %d attempts, %d requests to the endpoint and %d to where it pointed: %s",
						d.State, d.Attempts, n.Load(), elsewhere.Load(), d.LastError)
				}
			})
		}
	}
}
