package outbound_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/beevik/etree"
	"github.com/google/uuid"

	"github.com/perkeso/jambatan/cmd/gateway/internal/demoagency"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

// agencyResponse builds the envelope of an agency's answer to req: the
// response element with a header as §6 asks, then fill adds the rest.
func agencyResponse(req *etree.Element, name string, fill func(resp, hdr *etree.Element)) *etree.Document {
	return demoagency.Response(req, name, "TH:SSO:CASE-"+uuid.NewString()[:8], fill)
}

// agencyServer is a stand-in agency over mutual TLS: it verifies each
// message's WS-Security signature (Perkeso's signing certificate), holds
// the sender to §8.3 (a MessageId sent again carries the same Body), tells
// seen of the message's operation and MessageId, and answers with
// answer(n, the Body's child) for the n-th message (from 1), signed as
// TH:SSO, or a server fault when answer gives nil.
func (w *world) agencyServer(t *testing.T, answer func(n int32, req *etree.Element) *etree.Document, seen func(op, messageID string)) *httptest.Server {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	agencyKey, _ := w.ca.IssueSigning("TH:SSO", rk)
	var n atomic.Int32
	var bodies sync.Map
	return w.server(t, func(rw http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		doc, err := wssec.Parse(raw, wssec.Limits{})
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		res, verr := (&wssec.Verifier{Trust: func(c *x509.Certificate) error {
			if !c.Equal(w.soapKey.Cert) {
				return io.EOF
			}
			return nil
		}}).Verify(doc)
		if verr != nil {
			http.Error(rw, "not verified", http.StatusBadRequest)
			return
		}
		mid := res.BodyChild.FindElement("./Header/MessageId").Text()
		c14n, _ := wssec.Canonical(res.BodyChild)
		if first, again := bodies.LoadOrStore(mid, string(c14n)); again && first != string(c14n) {
			t.Errorf("message %d sent the MessageId again with another Body:\n%s\n%s", n.Load()+1, first, c14n)
		}
		seen(res.BodyChild.Tag, mid)
		out, status := answer(n.Add(1), res.BodyChild), 200
		if out == nil {
			out, status = agencyFault(""), 500
		}
		_ = (&wssec.Signer{Cert: agencyKey.Cert, Key: agencyKey.Key}).Sign(out)
		b, _ := out.WriteToBytes()
		rw.Header().Set("Content-Type", "text/xml; charset=utf-8")
		rw.WriteHeader(status)
		_, _ = rw.Write(b)
	})
}

// TestSOAPDelivery: a decision is re-sent after a server fault with the same
// MessageId and delivered on the acknowledgement; a signed answer that
// breaks agency-soap/v1 (H1, C13) is not a delivery and goes to dead letter
// at once, since sending again would only repeat it.
func TestSOAPDelivery(t *testing.T) {
	decision, _ := json.Marshal(map[string]any{"subject": "WORK_RELATEDNESS", "outcome": "ACCEPTED", "decisionDate": "2026-03-20", "legalBasis": "Act 4, s. 24"})
	request := `{"items":[{"code":"WAGES_6M"},{"code":"MEDICAL_REPORT"}]}`
	rec, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "adapters", "agencysoap", "testdata", "example-10.3.expect.json"))
	if err != nil {
		t.Fatal(err)
	}
	notification := `{"record":` + string(rec) + `}`
	receivedAt := func(resp, _ *etree.Element) {
		resp.CreateElement("xb:ReceivedAt").SetText(time.Now().UTC().Format("2006-01-02T15:04:05Z"))
	}
	// withDocuments answers the request's two items, the medical report
	// with two PDFs of 5 MiB each (agency-soap/v1 §6.3 allows five): an
	// answer of 13.4 MiB, over the default bound of 8 MiB.
	pdf := append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte{'x'}, 5<<20-9)...)
	pdfSum := sha256.Sum256(pdf)
	withDocuments := func(_ int32, req *etree.Element) *etree.Document {
		return agencyResponse(req, "InformationReply", func(resp, _ *etree.Element) {
			r := resp.CreateElement("xb:Reply")
			it := r.CreateElement("xb:Item")
			it.CreateElement("xb:Code").SetText("WAGES_6M")
			it.CreateElement("xb:Outcome").SetText("NOT_HELD")
			it = r.CreateElement("xb:Item")
			it.CreateElement("xb:Code").SetText("MEDICAL_REPORT")
			it.CreateElement("xb:Outcome").SetText("PROVIDED")
			for range 2 {
				doc := it.CreateElement("xb:Document")
				doc.CreateAttr("mediaType", "application/pdf")
				doc.CreateAttr("sha256", hex.EncodeToString(pdfSum[:]))
				doc.SetText(base64.StdEncoding.EncodeToString(pdf))
			}
		})
	}
	tests := []struct {
		name, typ, payload string
		// answer builds the n-th response (from 1) to req; nil: a server fault.
		answer   func(n int32, req *etree.Element) *etree.Document
		state    string
		attempts int
		lastErr  string
		// maxResponse is the endpoint's max_response_bytes (0: the default).
		maxResponse int
	}{
		{"ok/decision-after-a-fault", "NotifyDecision", string(decision), func(n int32, req *etree.Element) *etree.Document {
			if n == 1 {
				return nil
			}
			return agencyResponse(req, "Acknowledgement", receivedAt)
		}, store.DeliveryDelivered, 2, "", 0},
		{"ok/information-reply", "RequestInformation", request, func(_ int32, req *etree.Element) *etree.Document {
			return agencyResponse(req, "InformationReply", func(resp, _ *etree.Element) {
				r := resp.CreateElement("xb:Reply")
				for _, code := range []string{"WAGES_6M", "MEDICAL_REPORT"} {
					it := r.CreateElement("xb:Item")
					it.CreateElement("xb:Code").SetText(code)
					it.CreateElement("xb:Outcome").SetText("NOT_HELD")
				}
			})
		}, store.DeliveryDelivered, 1, "", 0},
		{"ok/information-reply-with-large-documents", "RequestInformation", request, withDocuments, store.DeliveryDelivered, 1, "", 16 << 20},
		{"fail/large-documents-over-the-default-bound", "RequestInformation", request, withDocuments, store.DeliveryDead, 1,
			"response over 8388608 bytes (the endpoint's max_response_bytes)", 0},
		{"ok/notify-injury", "NotifyInjury", notification, func(_ int32, req *etree.Element) *etree.Document {
			return agencyResponse(req, "InjuryAcknowledgement", receivedAt)
		}, store.DeliveryDelivered, 1, "", 0},
		{"fail/injury-acknowledgement-without-case-id", "NotifyInjury", notification, func(_ int32, req *etree.Element) *etree.Document {
			return agencyResponse(req, "InjuryAcknowledgement", func(resp, hdr *etree.Element) {
				hdr.RemoveChild(hdr.FindElement("./CaseId"))
				receivedAt(resp, hdr)
			})
		}, store.DeliveryDead, 1, "/xb:InjuryAcknowledgement/xb:Header/xb:CaseId", 0},
		{"fail/case-id-of-another-institution", "NotifyInjury", notification, func(_ int32, req *etree.Element) *etree.Document {
			return agencyResponse(req, "InjuryAcknowledgement", func(resp, hdr *etree.Element) {
				hdr.FindElement("./CaseId").SetText("MY:PERKESO:XB-2026-000731")
				receivedAt(resp, hdr)
			})
		}, store.DeliveryDead, 1, "/xb:InjuryAcknowledgement/xb:Header/xb:CaseId", 0},
		{"fail/reply-misses-an-item", "RequestInformation", request, func(_ int32, req *etree.Element) *etree.Document {
			return agencyResponse(req, "InformationReply", func(resp, _ *etree.Element) {
				it := resp.CreateElement("xb:Reply").CreateElement("xb:Item")
				it.CreateElement("xb:Code").SetText("WAGES_6M")
				it.CreateElement("xb:Outcome").SetText("NOT_HELD")
			})
		}, store.DeliveryDead, 1, "client.content.invalid at /xb:InformationReply/xb:Reply", 0},
		{"fail/acknowledges-another-message", "NotifyDecision", string(decision), func(_ int32, req *etree.Element) *etree.Document {
			return agencyResponse(req, "Acknowledgement", func(resp, hdr *etree.Element) {
				hdr.FindElement("./InReplyTo").SetText("urn:uuid:" + uuid.NewString())
				receivedAt(resp, hdr)
			})
		}, store.DeliveryDead, 1, "/xb:Acknowledgement/xb:Header/xb:InReplyTo", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			var ids sync.Map
			srv := w.agencyServer(t, tc.answer, func(op, messageID string) {
				if op != tc.typ {
					t.Errorf("the agency got a %s, want %s", op, tc.typ)
				}
				ids.Store(messageID, true)
			})
			ep := partner.Endpoint{MaxResponseBytes: tc.maxResponse}
			if tc.attempts > 1 {
				// The retry comes at least 1.1 s later: a SentAt of the
				// attempt's time (whole seconds) would differ.
				ep.BaseBackoff, ep.MaxBackoff = 2200*time.Millisecond, 3*time.Second
			}
			p := w.partner(srv.URL, "soap", ep)
			p.Kind = partner.KindAgency
			w.enqueue(t, "msg-1", tc.typ, tc.payload)
			run(t, w.deliverer(p), func() bool { return w.state(t).State == tc.state })
			count := 0
			ids.Range(func(_, _ any) bool { count++; return true })
			d := w.state(t)
			if d.Attempts != tc.attempts || count != 1 || !strings.Contains(d.LastError, tc.lastErr) {
				t.Fatalf("attempts %d, message ids %d, last error %q", d.Attempts, count, d.LastError)
			}
			// The agency's answer is found by the request id, whole (an
			// event may go without its documents).
			if answer, err := w.st.DeliveryAnswer(context.Background(), "msg-1"); tc.state == store.DeliveryDelivered &&
				(err != nil || !bytes.Contains(answer, []byte("xb:"+map[string]string{"NotifyDecision": "Acknowledgement", "RequestInformation": "InformationReply", "NotifyInjury": "InjuryAcknowledgement"}[tc.typ]))) {
				t.Fatalf("the answer of the delivered request: %.200q %v", answer, err)
			} else if tc.maxResponse > 0 && len(answer) < 13<<20 {
				t.Fatalf("the answer with documents: %d bytes", len(answer))
			}
			assigned := strings.HasPrefix(d.CaseID, "TH:SSO:CASE-")
			if assigned != (tc.typ == "NotifyInjury" && tc.state == store.DeliveryDelivered) {
				t.Fatalf("case id %q after %s", d.CaseID, tc.state)
			}
			// The case the agency assigned is shared with it: its own
			// messages on the case are known.
			if inst, err := w.st.CaseInstitution(context.Background(), d.CaseID); assigned && (err != nil || inst != "TH:SSO") {
				t.Fatalf("case %q registered with %q (%v), want TH:SSO", d.CaseID, inst, err)
			}
		})
	}
}

// agencyFault is an agency's server.unavailable fault (unsigned), with
// RetryAfterSeconds when retryAfter is not empty.
func agencyFault(retryAfter string) *etree.Document {
	out := etree.NewDocument()
	env := out.CreateElement("soap:Envelope")
	env.CreateAttr("xmlns:soap", wssec.NSSoap11)
	f := env.CreateElement("soap:Body").CreateElement("soap:Fault")
	f.CreateElement("faultcode").SetText("soap:Server")
	f.CreateElement("faultstring").SetText("busy")
	d := f.CreateElement("detail").CreateElement("xb:FaultDetail")
	d.CreateAttr("xmlns:xb", "urn:xb-injury:exchange:v1")
	d.CreateElement("xb:Code").SetText("server.unavailable")
	if retryAfter != "" {
		d.CreateElement("xb:RetryAfterSeconds").SetText(retryAfter)
	}
	return out
}

// TestRetryAfterBounded: the wait a partner asks for (a JSON partner's
// Retry-After, an agency fault's RetryAfterSeconds) sets the next attempt,
// up to the endpoint's max_backoff; a wait of any length, even one that
// would overflow a duration, parks the delivery for max_backoff at most.
func TestRetryAfterBounded(t *testing.T) {
	for _, tc := range []struct {
		name, protocol, retryAfter string
		maxBackoff, want           time.Duration
	}{
		{"ok/json-retry-after", "json", "120", 10 * time.Minute, 120 * time.Second},
		{"ok/json-retry-after-past-max-backoff", "json", "86400", 3 * time.Minute, 3 * time.Minute},
		{"ok/json-retry-after-overflowing", "json", "99999999999999999999", 3 * time.Minute, 3 * time.Minute},
		{"ok/soap-retry-after-seconds", "soap", "90", 10 * time.Minute, 90 * time.Second},
		{"ok/soap-retry-after-past-max-backoff", "soap", "31536000", 3 * time.Minute, 3 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			agencyKey, _ := w.ca.IssueSigning("TH:SSO", nil)
			srv := w.server(t, func(rw http.ResponseWriter, r *http.Request) {
				if tc.protocol == "json" {
					rw.Header().Set("Retry-After", tc.retryAfter)
					http.Error(rw, "busy", http.StatusServiceUnavailable)
					return
				}
				out := agencyFault(tc.retryAfter)
				_ = (&wssec.Signer{Cert: agencyKey.Cert, Key: agencyKey.Key}).Sign(out)
				b, _ := out.WriteToBytes()
				rw.Header().Set("Content-Type", "text/xml; charset=utf-8")
				rw.WriteHeader(http.StatusInternalServerError)
				_, _ = rw.Write(b)
			})
			p := w.partner(srv.URL, tc.protocol, partner.Endpoint{MaxBackoff: tc.maxBackoff})
			typ, payload := "JSON", `{}`
			if tc.protocol == "soap" {
				p.Kind = partner.KindAgency
				typ, payload = "RequestInformation", `{"items":[{"code":"WAGES_6M"}]}`
			}
			w.enqueue(t, "busy-1", typ, payload)
			before := time.Now()
			run(t, w.deliverer(p), func() bool { return w.state(t).Attempts == 1 })
			after := time.Now()
			d := w.state(t)
			if d.State != store.DeliveryPending || d.NextAt.Before(before.Add(tc.want)) || d.NextAt.After(after.Add(tc.want)) {
				t.Fatalf("%s, next attempt in %v, want %s in %v", d.State, d.NextAt.Sub(after).Round(time.Second), store.DeliveryPending, tc.want)
			}
		})
	}
}

// TestForeignErrorTextBounded: an agency's fault whose reason runs to
// megabytes is dead-lettered with the reason cut to a bound, in the queue
// and in the delivery-status event, which would otherwise outgrow Kafka's
// message size and stop the relay for every event behind it.
func TestForeignErrorTextBounded(t *testing.T) {
	w := newWorld(t)
	agencyKey, _ := w.ca.IssueSigning("TH:SSO", nil)
	reason := strings.Repeat("ข", 1<<20) // 3 MiB of Thai
	srv := w.server(t, func(rw http.ResponseWriter, r *http.Request) {
		out := agencyFault("")
		out.FindElement("//faultcode").SetText("soap:Client")
		out.FindElement("//faultstring").SetText(reason)
		out.FindElement("//Code").SetText("client.schema.invalid")
		_ = (&wssec.Signer{Cert: agencyKey.Cert, Key: agencyKey.Key}).Sign(out)
		b, _ := out.WriteToBytes()
		rw.Header().Set("Content-Type", "text/xml; charset=utf-8")
		rw.WriteHeader(http.StatusInternalServerError)
		_, _ = rw.Write(b)
	})
	p := w.partner(srv.URL, "soap", partner.Endpoint{})
	p.Kind = partner.KindAgency
	dl := w.deliverer(p)
	var evented atomic.Value
	dl.Status = func(d *store.Delivery, state string, attempts int, errText string, at time.Time) (store.Message, error) {
		evented.Store(errText)
		return store.Message{Topic: "perkeso.delivery-status.v1", Key: []byte(d.Key), Value: []byte(`{}`)}, nil
	}
	w.enqueue(t, "req-long-fault", "RequestInformation", `{"items":[{"code":"WAGES_6M"}]}`)
	run(t, dl, func() bool { return w.state(t).State == store.DeliveryDead })
	d := w.state(t)
	ev, _ := evented.Load().(string)
	for where, text := range map[string]string{"last_error": d.LastError, "status event": ev} {
		if len(text) > 1100 || !utf8.ValidString(text) || !strings.Contains(text, "client.schema.invalid") || !strings.Contains(text, "bytes in all)") {
			t.Errorf("%s: %d bytes, %.60q…", where, len(text), text)
		}
	}
}

// TestSOAPHTTPStatus: an agency's answer that is not a SOAP envelope is
// tried again when its status says the agency is busy or failing (429,
// 503), and is a dead letter at once when it would only repeat (404, 403),
// as a JSON partner's is.
func TestSOAPHTTPStatus(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		retry  bool
	}{
		{"ok/retried-503", http.StatusServiceUnavailable, true},
		{"ok/retried-500", http.StatusInternalServerError, true}, // a proxy's, not a Fault
		{"ok/retried-429", http.StatusTooManyRequests, true},
		{"ok/retried-200-not-an-envelope", http.StatusOK, true}, // an agency that could not sign its answer as it should
		{"fail/dead-404", http.StatusNotFound, false},
		{"fail/dead-403", http.StatusForbidden, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			var n atomic.Int32
			srv := w.server(t, func(rw http.ResponseWriter, r *http.Request) {
				n.Add(1)
				rw.Header().Set("Content-Type", "text/html")
				rw.WriteHeader(tc.status)
				_, _ = rw.Write([]byte("<html>not here</html>"))
			})
			w.enqueue(t, "req-status", "RequestInformation", `{"items":[{"code":"WAGES_6M"}]}`)
			run(t, w.deliverer(w.partner(srv.URL, "soap", partner.Endpoint{})), func() bool {
				d := w.state(t)
				return d.State == store.DeliveryDead || d.Attempts >= 2
			})
			d := w.state(t)
			if tc.retry != (d.Attempts >= 2) || !tc.retry && (d.State != store.DeliveryDead || n.Load() != 1) {
				t.Fatalf("state %s after %d attempts (%d requests): %s", d.State, d.Attempts, n.Load(), d.LastError)
			}
			if want := fmt.Sprintf("HTTP %d", tc.status); !strings.Contains(d.LastError, want) {
				t.Fatalf("last error %q, want it to name %s", d.LastError, want)
			}
		})
	}
}

// TestSOAPCaseOrder: the agency reads a case's messages in the order the
// back office wrote them: a NotifyDecision queued after a
// RequestInformation on the case waits while the request is retried after
// the agency's server.unavailable, and goes once the request is answered.
func TestSOAPCaseOrder(t *testing.T) {
	w := newWorld(t)
	var mu sync.Mutex
	var ops []string
	faulted := false
	srv := w.agencyServer(t, func(_ int32, req *etree.Element) *etree.Document {
		switch req.Tag {
		case "RequestInformation":
			mu.Lock()
			defer mu.Unlock()
			if !faulted {
				faulted = true
				return nil
			}
			return agencyResponse(req, "InformationReply", func(resp, _ *etree.Element) {
				it := resp.CreateElement("xb:Reply").CreateElement("xb:Item")
				it.CreateElement("xb:Code").SetText("WAGES_6M")
				it.CreateElement("xb:Outcome").SetText("NOT_HELD")
			})
		default:
			return agencyResponse(req, "Acknowledgement", func(resp, _ *etree.Element) {
				resp.CreateElement("xb:ReceivedAt").SetText(time.Now().UTC().Format("2006-01-02T15:04:05Z"))
			})
		}
	}, func(op, _ string) {
		mu.Lock()
		defer mu.Unlock()
		ops = append(ops, op)
	})
	p := w.partner(srv.URL, "soap", partner.Endpoint{Concurrency: 2})
	p.Kind = partner.KindAgency
	decision, _ := json.Marshal(map[string]any{"subject": "WORK_RELATEDNESS", "outcome": "ACCEPTED", "decisionDate": "2026-03-20", "legalBasis": "Act 4, s. 24"})
	w.enqueue(t, "request-1", "RequestInformation", `{"items":[{"code":"WAGES_6M"}]}`)
	w.enqueue(t, "decision-1", "NotifyDecision", string(decision))
	run(t, w.deliverer(p), func() bool {
		ds, err := w.st.DeliveriesOf(context.Background(), "", store.DeliveryDelivered, 0, 10)
		return err == nil && len(ds) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"RequestInformation", "RequestInformation", "NotifyDecision"}; !slices.Equal(ops, want) {
		t.Fatalf("the agency read %v, want %v", ops, want)
	}
}
