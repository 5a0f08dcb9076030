package outbound_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/outbound"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// TestStopWhileHolding: an agency's answers an operator took back, cut
// short by the gateway's stopping while they are held, are held or put
// back due at once: never dead-lettered, never left leased, never a
// failure of the stopping as their last error.
func TestStopWhileHolding(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	reg := partner.NewRegistry([]*partner.Partner{w.agency()})
	c := &outbound.Consumer{Store: w.st, Partners: reg, Log: slog.New(slog.DiscardHandler)}
	var logs gatewaytest.SyncBuffer
	dl := &outbound.Deliverer{Store: w.st, Partners: reg, Poll: time.Millisecond, Log: slog.New(slog.NewJSONHandler(&logs, nil))}
	held := 0
	for i := range 100 {
		caseID, key := fmt.Sprintf("TH:SSO:C-%d", i), fmt.Sprintf("ans-%d", i)
		v := `{"id":"` + key + `","partner":"th-sso","messageType":"InformationReply","caseId":"` + caseID + `","payload":{"items":[{"code":"POLICE_REPORT","outcome":"NOT_HELD"}]}}`
		if err := c.Queue(ctx, kafka.Message{Topic: "perkeso.outbound.v1", Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
		w.registerCase(t, caseID, "TH:SSO") // shared now: the retry holds it
		d, err := w.st.DeliveryByKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.st.RetryDelivery(ctx, d.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		runThenStop(dl, func() { time.Sleep(time.Duration(i%20) * 100 * time.Microsecond) }) // 0 to 1.9 ms, in turn
		d, err = w.st.DeliveryByKey(ctx, key)
		switch {
		case err != nil:
			t.Fatal(err)
		case d.State == store.DeliveryDelivered:
			held++
		case d.State != store.DeliveryPending || strings.Contains(d.LastError, "context") || time.Until(d.NextAt) > time.Second:
			t.Fatalf("stop %d: state %s after %d attempts, due in %v, last error %q", i, d.State, d.Attempts, time.Until(d.NextAt).Round(time.Millisecond), d.LastError)
		default: // put back: held at the next start
			run(t, dl, func() bool { d, _ = w.st.DeliveryByKey(ctx, key); return d.State == store.DeliveryDelivered })
		}
	}
	// A put-back of held answers is logged under their correlation id,
	// as the rest of their lines are, not under a next attempt's.
	putBacks := 0
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, "delivery put back") {
			putBacks++
			if !strings.Contains(l, `"correlation_id":"outbound-ans-`) {
				t.Errorf("a put-back line under another id: %s", l)
			}
		}
	}
	t.Logf("%d of 100 held before the stop; %d put back", held, putBacks)
}

// TestRetriedAnswersHeld: an InformationReply refused for a case its agency
// did not share yet, taken back by an operator's retry once it does, is
// held (it was sent to the agency's endpoint, or found none, and died
// again); retried while the case is still unknown, it dies again, with the
// reason.
func TestRetriedAnswersHeld(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	ag := w.agency()
	reg := partner.NewRegistry([]*partner.Partner{ag})
	c := &outbound.Consumer{Store: w.st, Partners: reg, Log: slog.New(slog.DiscardHandler)}
	v := `{"id":"ans-1","partner":"th-sso","messageType":"InformationReply","caseId":"TH:SSO:C-7","payload":{"items":[{"code":"POLICE_REPORT","outcome":"NOT_HELD"}]}}`
	if err := c.Queue(ctx, kafka.Message{Topic: "perkeso.outbound.v1", Value: []byte(v)}); err != nil {
		t.Fatal(err)
	}
	dl := &outbound.Deliverer{Store: w.st, Partners: reg, Poll: 5 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}
	retry := func(want string) *store.Delivery {
		t.Helper()
		d, err := w.st.DeliveryByKey(ctx, "ans-1")
		if err != nil {
			t.Fatal(err)
		}
		if err := w.st.RetryDelivery(ctx, d.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		run(t, dl, func() bool { d, _ = w.st.DeliveryByKey(ctx, "ans-1"); return d.State == want })
		return d
	}
	if d := retry(store.DeliveryDead); !strings.Contains(d.LastError, `caseId "TH:SSO:C-7": the case is unknown`) {
		t.Fatalf("retried before the case is shared: %+v", d)
	}
	w.registerCase(t, "TH:SSO:C-7", "TH:SSO")
	retry(store.DeliveryDelivered)
	if got, err := w.st.CaseAnswers(ctx, "TH:SSO:C-7"); err != nil || len(got) != 1 || !strings.Contains(string(got["POLICE_REPORT"]), "NOT_HELD") {
		t.Fatalf("held answers %q, %v", got, err)
	}
}

// TestRetriedAnswersKeepTheLater: an answer refused before its case was
// shared, retried after a later answer for the same item was held, does
// not replace it: the back office's later answer stands (a retry of all
// an agency's dead letters, after an outage, would otherwise tell the
// agency again that the police report is to follow, once it was answered).
func TestRetriedAnswersKeepTheLater(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	ag := w.agency()
	reg := partner.NewRegistry([]*partner.Partner{ag})
	c := &outbound.Consumer{Store: w.st, Partners: reg, Log: slog.New(slog.DiscardHandler)}
	answer := func(id, item string) {
		t.Helper()
		v := `{"id":"` + id + `","partner":"th-sso","messageType":"InformationReply","caseId":"TH:SSO:C-8","payload":{"items":[` + item + `]}}`
		if err := c.Queue(ctx, kafka.Message{Topic: "perkeso.outbound.v1", Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	answer("ans-early", `{"code":"POLICE_REPORT","outcome":"TO_FOLLOW","expectedBy":"2026-04-01"}`) // refused: not shared yet
	if d, err := w.st.DeliveryByKey(ctx, "ans-early"); err != nil || d.State != store.DeliveryDead {
		t.Fatalf("the early answer: %+v %v, want a dead letter", d, err)
	}
	w.registerCase(t, "TH:SSO:C-8", "TH:SSO")
	answer("ans-later", `{"code":"POLICE_REPORT","outcome":"NOT_HELD"}`)
	if n, err := w.st.RetryDead(ctx, "th-sso", time.Now()); err != nil || n != 1 {
		t.Fatalf("retry: %d %v", n, err)
	}
	dl := &outbound.Deliverer{Store: w.st, Partners: reg, Poll: 5 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}
	run(t, dl, func() bool { d, _ := w.st.DeliveryByKey(ctx, "ans-early"); return d.State != store.DeliveryPending })
	if d, _ := w.st.DeliveryByKey(ctx, "ans-early"); d.State != store.DeliveryDelivered {
		t.Fatalf("the early answer retried: %+v", d)
	}
	if got, err := w.st.CaseAnswers(ctx, "TH:SSO:C-8"); err != nil || !strings.Contains(string(got["POLICE_REPORT"]), "NOT_HELD") {
		t.Fatalf("held answers %q, %v; want the later answer, NOT_HELD", got, err)
	}
	// The message log says which items the later answer holds.
	var verification string
	if err := w.st.DB().QueryRow(`SELECT verification FROM message_log WHERE source_key = 'ans-early' ORDER BY seq DESC LIMIT 1`).Scan(&verification); err != nil ||
		!strings.HasSuffix(verification, "; 1 of 1 items not held, a later answer holds them: POLICE_REPORT") {
		t.Fatalf("the retried answer's log entry: %q %v", verification, err)
	}
}

// registerCase registers caseID as shared with institution, as a
// NotifyInjury the agency acknowledged does (the queue must be empty).
func (w *world) registerCase(t *testing.T, caseID, institution string) {
	t.Helper()
	ctx := context.Background()
	w.enqueue(t, "ni-"+caseID, "NotifyInjury", `{}`)
	due, err := w.st.ClaimDue(ctx, time.Now(), time.Minute, 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("claim: %v %v", due, err)
	}
	due[0].CaseID, due[0].CaseWith = caseID, institution
	if err := w.st.RecordAttempt(ctx, due[0], store.Attempt{State: store.DeliveryDelivered}, &store.Entry{CorrelationID: "ni", PartnerID: "p1",
		ReceivedAt: time.Now(), Route: "OUTBOUND NotifyInjury", Body: []byte(`{}`), SourceKey: due[0].Key}); err != nil {
		t.Fatal(err)
	}
}

// TestAnotherInstitutionsCase: a message to an agency on a case registered
// as another institution's is refused when queued, and not sent when it
// was queued regardless (an operator's retry): it would carry one
// institution's case, its person's data among it, to another.
func TestAnotherInstitutionsCase(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.registerCase(t, "TH:SSO:C-9", "TH:SSO")
	var calls atomic.Int32
	srv := w.server(t, func(rw http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(rw, "no", http.StatusBadRequest)
	})
	bn := w.partner(srv.URL, "soap", partner.Endpoint{})
	bn.ID, bn.Kind, bn.Institution = "bn-spk", partner.KindAgency, "BN:SPK"
	th := w.partner(srv.URL, "soap", partner.Endpoint{})
	th.ID, th.Kind = "th-sso", partner.KindAgency
	reg := partner.NewRegistry([]*partner.Partner{bn, th})
	c := &outbound.Consumer{Store: w.st, Partners: reg, Log: slog.New(slog.DiscardHandler)}
	decision := `"messageType":"NotifyDecision","caseId":"TH:SSO:C-9","payload":{"subject":"WORK_RELATEDNESS","outcome":"ACCEPTED","decisionDate":"2026-03-20","legalBasis":"s. 24"}}`
	for _, tc := range []struct{ id, partner, state, lastErr string }{
		{"dec-bn", "bn-spk", store.DeliveryDead, `caseId "TH:SSO:C-9": the case is unknown, or not shared with the partner's institution: it is TH:SSO's`},
		{"dec-th", "th-sso", store.DeliveryPending, ""},
	} {
		if err := c.Queue(ctx, kafka.Message{Topic: "perkeso.outbound.v1", Value: []byte(`{"id":"` + tc.id + `","partner":"` + tc.partner + `",` + decision)}); err != nil {
			t.Fatal(err)
		}
		if d, err := w.st.DeliveryByKey(ctx, tc.id); err != nil || d.State != tc.state || d.LastError != tc.lastErr {
			t.Fatalf("%s: %+v %v", tc.id, d, err)
		}
	}
	// Queued regardless (straight into the store), it is not sent either.
	if _, err := w.st.Enqueue(ctx, &store.Delivery{Key: "dec-bn-2", PartnerID: "bn-spk", MessageType: "NotifyDecision", CaseID: "TH:SSO:C-9",
		Payload: []byte(`{"subject":"WORK_RELATEDNESS","outcome":"ACCEPTED","decisionDate":"2026-03-20","legalBasis":"s. 24"}`)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	dl := &outbound.Deliverer{Store: w.st, Partners: partner.NewRegistry([]*partner.Partner{bn}), Poll: 5 * time.Millisecond, Log: slog.New(slog.DiscardHandler),
		SenderFor: w.deliverer(bn).SenderFor}
	run(t, dl, func() bool { d, _ := w.st.DeliveryByKey(ctx, "dec-bn-2"); return d.State == store.DeliveryDead })
	if d, _ := w.st.DeliveryByKey(ctx, "dec-bn-2"); !strings.Contains(d.LastError, "it is TH:SSO's") || calls.Load() != 0 {
		t.Fatalf("sent to another institution: %+v, %d calls", d, calls.Load())
	}
}

// TestHeldAnswersStatus: held answers have their delivery-status event,
// "delivered", as a delivered message has, in the write that holds them.
func TestHeldAnswersStatus(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.registerCase(t, "TH:SSO:C-5", "TH:SSO")
	ag := w.agency()
	var states []string
	c := &outbound.Consumer{Store: w.st, Partners: partner.NewRegistry([]*partner.Partner{ag}), Log: slog.New(slog.DiscardHandler),
		Status: func(d *store.Delivery, state string, attempts int, errText string, at time.Time) (store.Message, error) {
			states = append(states, d.Key+" "+state)
			return store.Message{Topic: "status", Key: []byte(d.Key), Value: []byte(state)}, nil
		}}
	before, _ := w.st.OutboxBacklog(ctx)
	v := `{"id":"ans-5","partner":"th-sso","messageType":"InformationReply","caseId":"TH:SSO:C-5","payload":{"items":[{"code":"POLICE_REPORT","outcome":"NOT_HELD"}]}}`
	if err := c.Queue(ctx, kafka.Message{Topic: "perkeso.outbound.v1", Value: []byte(v)}); err != nil {
		t.Fatal(err)
	}
	if after, _ := w.st.OutboxBacklog(ctx); !slices.Equal(states, []string{"ans-5 delivered"}) || after != before+1 {
		t.Fatalf("status events %q, outbox %d then %d", states, before, after)
	}
}
