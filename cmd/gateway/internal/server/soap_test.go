package server_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/adapters/adaptertest"
	"github.com/perkeso/jambatan/adapters/agencysoap"
	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/outbound"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
	"github.com/perkeso/jambatan/cmd/gateway/internal/soapclient"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
)

func soapExample(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "adapters", "agencysoap", "testdata", "example-10.1.request.xml"))
	if err != nil {
		t.Fatal(err)
	}
	// The example's header holds placeholders: the client signs afresh.
	s := string(b)
	i, j := strings.Index(s, "<soap:Header>"), strings.Index(s, "</soap:Header>")
	return s[:i] + s[j+len("</soap:Header>"):]
}

func unsigned(t testing.TB, xml string) *etree.Document {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromString(xml); err != nil {
		t.Fatal(err)
	}
	return d
}

// agencyClient is TH:SSO's side: its mTLS certificate and signing key, and
// trust in the gateway's signing certificate (MY:PERKESO under the test CA).
func agencyClient(t testing.TB, env *gatewaytest.Env, id string) *soapclient.Client {
	p := env.Partners[id]
	roots := x509.NewCertPool()
	roots.AddCert(env.CA.Cert)
	signing := p.WSSigning
	if signing == nil {
		signing = env.Partners["agency-th"].WSSigning
	}
	return &soapclient.Client{
		URL:      env.Server.URL + "/soap/v1/exchange",
		HTTP:     certs.HTTPClient(roots, nil, p.TLS, 10*time.Second, 8),
		Signer:   &wssec.Signer{Cert: signing.Cert, Key: signing.Key},
		Verifier: &wssec.Verifier{Trust: wssec.TrustInstitution(roots, "MY:PERKESO")},
	}
}

func TestSOAPNotifyInjury(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{EventLimit: events.MaxValueBytes})
	c := agencyClient(t, env, "agency-th")
	ctx := context.Background()
	ex := soapExample(t)
	resp, err := c.Call(ctx, "urn:xb-injury:exchange:v1#NotifyInjury", unsigned(t, ex))
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	if resp.Fault != nil || resp.Body.Tag != "InjuryAcknowledgement" {
		t.Fatalf("response %+v\n%s", resp.Fault, resp.Raw)
	}
	caseID := resp.Body.FindElement("./Header/CaseId").Text()
	if !strings.HasPrefix(caseID, "MY:PERKESO:XB-") || resp.Body.FindElement("./Header/InReplyTo").Text() != "urn:uuid:5f0c6b1e-8d2a-4c3b-9e7f-1a2b3c4d5e6f" {
		t.Fatalf("acknowledgement %s", resp.Raw)
	}
	if n := count(t, env, `SELECT count(*) FROM records WHERE record_id = 'b91d27ba-49ff-55db-a189-f17540653051'`); n != 1 {
		t.Fatalf("record not accepted (%d)", n)
	}
	// The record as logged keeps every rule of the canonical record.
	var canonical []byte
	var at string
	if err := env.Store.DB().QueryRow(`SELECT canonical, received_at FROM message_log WHERE record_id = 'b91d27ba-49ff-55db-a189-f17540653051'`).Scan(&canonical, &at); err != nil {
		t.Fatal(err)
	}
	var rec schema.Record
	if err := json.Unmarshal(canonical, &rec); err != nil {
		t.Fatal(err)
	}
	receivedAt, _ := time.Parse(time.RFC3339Nano, at)
	adaptertest.CheckRecord(t, &rec, adaptertest.Source{Format: agencysoap.Format, ReceivedAt: receivedAt, Rates: mapping.ExampleRates})

	// The same message again: the same acknowledgement (same case id), freshly signed.
	again, err := c.Call(ctx, "urn:xb-injury:exchange:v1#NotifyInjury", unsigned(t, ex))
	if err != nil || again.Fault != nil || again.Body.FindElement("./Header/CaseId").Text() != caseID {
		t.Fatalf("duplicate: %v %s", err, again.Raw)
	}
	// The same message as another stack writes it: a namespace the Body
	// does not use declared on the Envelope, attributes in another order,
	// other whitespace inside a tag. The Body child is the same after
	// exclusive canonicalization (§8.3): the first acknowledgement again,
	// not client.duplicate.
	rewritten := strings.Replace(ex, `<soap:Envelope xmlns:soap=`, `<soap:Envelope xmlns:extra="urn:extra" xmlns:soap=`, 1)
	rewritten = strings.Replace(rewritten, `<xb:PersonalId scheme="TH_PID" country="TH">`, `<xb:PersonalId  country="TH"
	  scheme="TH_PID" >`, 1)
	if rewritten == ex {
		t.Fatal("example layout changed")
	}
	again, err = c.Call(ctx, "urn:xb-injury:exchange:v1#NotifyInjury", unsigned(t, rewritten))
	if err != nil || again.Fault != nil || again.Body.FindElement("./Header/CaseId").Text() != caseID {
		t.Fatalf("duplicate, written otherwise: %v %s", err, again.Raw)
	}
	// Same MessageId, different Body: client.duplicate.
	changed, err := c.Call(ctx, "urn:xb-injury:exchange:v1#NotifyInjury", unsigned(t, strings.Replace(ex, "<xb:HospitalisedHours>26", "<xb:HospitalisedHours>27", 1)))
	if err != nil || changed.Fault == nil || changed.Fault.Code != "client.duplicate" || changed.Status != 500 {
		t.Fatalf("changed duplicate: %v %+v", err, changed)
	}

	// A request for information on that case, and a decision.
	ri := `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xb="urn:xb-injury:exchange:v1"><soap:Body><xb:RequestInformation><xb:Header><xb:MessageId>urn:uuid:ri-1</xb:MessageId><xb:CaseId>` + caseID +
		`</xb:CaseId><xb:Sender>TH:SSO</xb:Sender><xb:Receiver>MY:PERKESO</xb:Receiver><xb:SentAt>2026-03-10T02:00:00Z</xb:SentAt></xb:Header><xb:Request><xb:Item><xb:Code>WAGES_6M</xb:Code></xb:Item><xb:Item><xb:Code>MEDICAL_REPORT</xb:Code></xb:Item></xb:Request></xb:RequestInformation></soap:Body></soap:Envelope>`
	riDoc := unsigned(t, ri)
	rr, err := c.Call(ctx, "urn:xb-injury:exchange:v1#RequestInformation", riDoc)
	if err != nil || rr.Fault != nil || rr.Body.Tag != "InformationReply" || len(rr.Body.FindElements("./Reply/Item")) != 2 {
		t.Fatalf("request information: %v %s", err, rr.Raw)
	}
	if p := agencysoap.CheckResponse(riDoc.FindElement("//Body/*"), rr.Body); p != nil { // what we answer, we would accept
		t.Fatalf("our InformationReply breaks %s at %s: %s", p.Code, p.Location, p.Reason)
	}
	for _, it := range rr.Body.FindElements("./Reply/Item") {
		if it.FindElement("./Outcome").Text() != "TO_FOLLOW" {
			t.Fatalf("nothing is held yet, but: %s", rr.Raw)
		}
	}
	// The back office holds the wages (an InformationReply request); the
	// agency's next request gets them, and the report is still to follow.
	reg := partner.NewRegistry([]*partner.Partner{env.Partners["agency-th"].Partner})
	held := &outbound.Request{ID: "answers-1", Partner: "agency-th", MessageType: outbound.InformationReply, CaseID: caseID,
		Payload: []byte(`{"items":[{"code":"WAGES_6M","outcome":"PROVIDED","months":[{"period":"2026-02","amount":"3200.00","currency":"MYR"}]}]}`)}
	if err := held.Validate(reg); err != nil {
		t.Fatal(err)
	}
	if queued, err := outbound.Queue(ctx, env.Store, held, time.Now(), nil); err != nil || !queued {
		t.Fatalf("holding answers: %v %v", queued, err)
	}
	ri3Doc := unsigned(t, strings.Replace(ri, "ri-1", "ri-3", 1))
	rr, err = c.Call(ctx, "urn:xb-injury:exchange:v1#RequestInformation", ri3Doc)
	if err != nil || rr.Fault != nil {
		t.Fatalf("request information again: %v %s", err, rr.Raw)
	}
	items := rr.Body.FindElements("./Reply/Item")
	if len(items) != 2 || items[0].FindElement("./Outcome").Text() != "PROVIDED" || items[0].FindElement("./Month").Text() != "3200.00" ||
		items[1].FindElement("./Outcome").Text() != "TO_FOLLOW" || items[0].NamespaceURI() != items[1].NamespaceURI() || items[0].Space != items[1].Space {
		t.Fatalf("reply with the held wages: %s", rr.Raw)
	}
	if p := agencysoap.CheckResponse(ri3Doc.FindElement("//Body/*"), rr.Body); p != nil {
		t.Fatalf("our InformationReply with held items breaks %s at %s: %s", p.Code, p.Location, p.Reason)
	}
	// Answers for a case the agency does not share are refused.
	other := *held
	other.ID, other.CaseID = "answers-2", "MY:PERKESO:XB-0000-NOPE"
	if err := other.Validate(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := outbound.Queue(ctx, env.Store, &other, time.Now(), nil); !errors.Is(err, store.ErrCaseNotShared) {
		t.Fatalf("answers on an unknown case: %v", err)
	}
	unknown := strings.Replace(strings.Replace(ri, caseID, "MY:PERKESO:XB-0000-NOPE", 1), "ri-1", "ri-2", 1)
	ru, err := c.Call(ctx, "urn:xb-injury:exchange:v1#RequestInformation", unsigned(t, unknown))
	if err != nil || ru.Fault == nil || ru.Fault.Code != "client.case.unknown" {
		t.Fatalf("unknown case: %v %s", err, ru.Raw)
	}
	// Another agency asking on TH:SSO's case is told the same (§8.1 order
	// 10: not shared with this Sender), and learns nothing of it.
	bnAsks := strings.NewReplacer("ri-1", "bn-ri-1", "<xb:Sender>TH:SSO</xb:Sender>", "<xb:Sender>BN:SPK</xb:Sender>").Replace(ri)
	rb, err := agencyClient(t, env, "agency-bn").Call(ctx, "urn:xb-injury:exchange:v1#RequestInformation", unsigned(t, bnAsks))
	if err != nil || rb.Fault == nil || rb.Fault.Code != "client.case.unknown" || rb.Fault.Location != "/xb:RequestInformation/xb:Header/xb:CaseId" {
		t.Fatalf("another agency's request on the case: %v %s", err, rb.Raw)
	}

	// A decision on the case; then decisions that break the content rules
	// (§7 C1 and C13) are refused with the element, and not logged as
	// accepted.
	nd := `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xb="urn:xb-injury:exchange:v1"><soap:Body><xb:NotifyDecision><xb:Header><xb:MessageId>urn:uuid:nd-1</xb:MessageId><xb:CaseId>` + caseID +
		`</xb:CaseId><xb:Sender>TH:SSO</xb:Sender><xb:Receiver>MY:PERKESO</xb:Receiver><xb:SentAt>2026-03-20T02:00:00Z</xb:SentAt></xb:Header><xb:Decision><xb:Subject>PERMANENT_DISABLEMENT</xb:Subject><xb:Outcome>PARTIAL</xb:Outcome>` +
		`<xb:DecisionDate cal="BE">2569-03-20</xb:DecisionDate><xb:LegalBasis>Workmen's Compensation Act B.E. 2537</xb:LegalBasis><xb:PermanentIncapacityPct>30</xb:PermanentIncapacityPct></xb:Decision></xb:NotifyDecision></soap:Body></soap:Envelope>`
	for _, tc := range []struct{ name, from, to, code, loc string }{
		{"ok/decision", "", "", "", ""},
		{"fail/decision-date-not-a-date", `cal="BE">2569-03-20`, `cal="BE">2568-02-29`, agencysoap.CodeContent, "/xb:NotifyDecision/xb:Decision/xb:DecisionDate"},
		{"fail/pct-on-other-subject", `PERMANENT_DISABLEMENT`, `CASH_BENEFITS`, agencysoap.CodeContent, "/xb:NotifyDecision/xb:Decision/xb:PermanentIncapacityPct"},
	} {
		doc := strings.Replace(strings.Replace(nd, tc.from, tc.to, 1), "nd-1", strings.ReplaceAll(tc.name, "/", "."), 1)
		r, err := c.Call(ctx, "urn:xb-injury:exchange:v1#NotifyDecision", unsigned(t, doc))
		switch {
		case err != nil:
			t.Fatalf("%s: %v", tc.name, err)
		case tc.code == "" && (r.Fault != nil || r.Body.Tag != "Acknowledgement"):
			t.Fatalf("%s: %s", tc.name, r.Raw)
		case tc.code != "" && (r.Fault == nil || r.Fault.Code != tc.code || r.Fault.Location != tc.loc):
			t.Fatalf("%s: want %s at %s, got %s", tc.name, tc.code, tc.loc, r.Raw)
		}
	}
	if n := count(t, env, `SELECT count(*) FROM soap_exchanges WHERE operation = 'NotifyDecision'`); n != 1 {
		t.Fatalf("%d decisions taken, want 1", n)
	}
	// Each case message taken (the request, the reply, the decision) has its
	// event in the outbox, keyed by its case.
	var taken, published int
	if err := env.Store.DB().QueryRow(`SELECT (SELECT count(*) FROM soap_exchanges WHERE operation <> 'NotifyInjury'),
		(SELECT count(*) FROM outbox WHERE topic = 'perkeso.case-messages.v1' AND CAST(msg_key AS TEXT) = ?)`, caseID).Scan(&taken, &published); err != nil {
		t.Fatal(err)
	}
	if taken != 3 || published != taken {
		t.Fatalf("%d case messages taken, %d events for the case; want 3 of each", taken, published)
	}
}

// TestSOAPConcurrentCopies: two copies of one NotifyInjury that both find
// no earlier exchange, since neither is logged yet (the store's writer is
// held until both wait for it), are logged in one group: one is accepted
// and opens the case, the other is a duplicate and is answered with the
// first's acknowledgement (agency-soap/v1 §8.3), not with the one its own
// handling had built (another MessageId).
func TestSOAPConcurrentCopies(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	c := agencyClient(t, env, "agency-th")
	ex := soapExample(t)
	release := env.Store.HoldWriter()
	type answer struct {
		resp *soapclient.Response
		err  error
	}
	answers := make(chan answer, 2)
	for range 2 {
		go func() {
			resp, err := c.Call(context.Background(), "urn:xb-injury:exchange:v1#NotifyInjury", unsigned(t, ex))
			answers <- answer{resp, err}
		}()
	}
	defer release() // when the wait fails
	gatewaytest.Until(t, 10*time.Second, time.Millisecond, func() error {
		if n := env.Store.Queued(); n < 2 {
			return fmt.Errorf("%d copies reached the store's queue, want 2", n)
		}
		return nil
	})
	release()
	var acks []string
	for range 2 {
		a := <-answers
		if a.err != nil || a.resp.Fault != nil || a.resp.Body.Tag != "InjuryAcknowledgement" {
			t.Fatalf("copy: %v %s", a.err, a.resp.Raw)
		}
		acks = append(acks, a.resp.Body.FindElement("./Header/MessageId").Text())
	}
	if acks[0] != acks[1] {
		t.Fatalf("the copies were answered with acknowledgements %q and %q, want the first's twice", acks[0], acks[1])
	}
	for q, want := range map[string]int{
		`SELECT count(*) FROM message_log WHERE outcome = 'ACCEPTED'`:  1,
		`SELECT count(*) FROM message_log WHERE outcome = 'DUPLICATE'`: 1,
		`SELECT count(*) FROM soap_exchanges`:                          1,
		`SELECT count(*) FROM soap_cases`:                              1,
	} {
		if n := count(t, env, q); n != want {
			t.Errorf("%s: %d, want %d", q, n, want)
		}
	}
}

func TestSOAPFaults(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	ex := soapExample(t)
	exampleID := regexp.MustCompile(`<xb:MessageId>([^<]+)</xb:MessageId>`).FindStringSubmatch(ex)[1]
	signedBy := func(id string) []byte {
		c := agencyClient(t, env, id)
		d := unsigned(t, ex)
		if err := c.Signer.Sign(d); err != nil {
			t.Fatal(err)
		}
		b, _ := d.WriteToBytes()
		return b
	}
	good := signedBy("agency-th")
	other := env.Partners["employer-a"] // a registered partner, but not an agency
	otherSigner, _ := env.CA.IssueSigning("XX:OTHER", nil)
	// A signing certificate of the agency's that its CA's CRL lists.
	revokedSigner, _ := env.CA.IssueSigning("TH:SSO", nil)
	crl, err := env.CA.RevocationList(2, revokedSigner.Cert)
	if err != nil {
		t.Fatal(err)
	}
	env.Partners["agency-th"].Partner.SigningRevoked = certs.NewRevocations([]*x509.RevocationList{crl})

	tests := []struct {
		name, partner, action string
		body                  []byte
		code                  string
	}{
		{"fail/unsigned", "agency-th", "NotifyInjury", []byte(ex), "client.security.missing"},
		{"fail/tampered", "agency-th", "NotifyInjury", bytes.Replace(good, []byte("Ahmad Zaki"), []byte("Ahmad Zakk"), 1), "client.signature.invalid"},
		{"fail/wrong-action", "agency-th", "NotifyDecision", good, "client.schema.invalid"},
		{"fail/not-an-agency", "employer-a", "NotifyInjury", good, "client.certificate.untrusted"},
		{"fail/dtd", "agency-th", "NotifyInjury", append([]byte(`<!DOCTYPE x [<!ENTITY a "b">]>`), good[bytes.Index(good, []byte("<soap:Envelope")):]...), "client.schema.invalid"},
		{"fail/deep", "agency-th", "NotifyInjury", []byte(strings.Repeat("<a>", 10000) + strings.Repeat("</a>", 10000)), "client.schema.invalid"},
		{"fail/oversize", "agency-th", "NotifyInjury", []byte("<a>" + strings.Repeat("x", 1<<20) + "</a>"), "client.schema.invalid"},
		{"fail/other-institution-certificate", "agency-th", "NotifyInjury", func() []byte {
			d := unsigned(t, ex)
			_ = (&wssec.Signer{Cert: otherSigner.Cert, Key: otherSigner.Key}).Sign(d)
			b, _ := d.WriteToBytes()
			return b
		}(), "client.certificate.untrusted"},
		{"fail/revoked-signing-certificate", "agency-th", "NotifyInjury", func() []byte {
			d := unsigned(t, ex)
			_ = (&wssec.Signer{Cert: revokedSigner.Cert, Key: revokedSigner.Key}).Sign(d)
			b, _ := d.WriteToBytes()
			return b
		}(), "client.certificate.untrusted"},
		{"fail/content", "agency-th", "NotifyInjury", func() []byte {
			d := unsigned(t, strings.Replace(ex, "6900100123458", "6900100123457", 1))
			_ = agencyClient(t, env, "agency-th").Signer.Sign(d)
			b, _ := d.WriteToBytes()
			return b
		}(), "client.content.invalid"},
		{"fail/sender-mismatch", "agency-th", "NotifyInjury", func() []byte {
			d := unsigned(t, strings.Replace(ex, "<xb:Sender>TH:SSO</xb:Sender>", "<xb:Sender>TH:OTHER</xb:Sender>", 1))
			_ = agencyClient(t, env, "agency-th").Signer.Sign(d)
			b, _ := d.WriteToBytes()
			return b
		}(), "client.sender.mismatch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := env.Partners[tc.partner]
			if tc.partner == "employer-a" {
				p = other
			}
			cl := env.Client(&p.TLS)
			req, _ := http.NewRequest("POST", env.Server.URL+"/soap/v1/exchange", bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", "text/xml; charset=utf-8")
			req.Header.Set("SOAPAction", `"urn:xb-injury:exchange:v1#`+tc.action+`"`)
			r := send(t, cl, req)
			raw := r.body
			if r.status != 500 {
				t.Fatalf("HTTP %d\n%s", r.status, raw)
			}
			d, err := wssec.Parse(raw, wssec.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			// Faults are signed too.
			if _, verr := (&wssec.Verifier{}).Verify(d); verr != nil {
				t.Fatalf("fault not signed: %v", verr)
			}
			if code := d.FindElement("//FaultDetail/Code"); code == nil || code.Text() != tc.code {
				t.Fatalf("fault %s, want %s", raw, tc.code)
			}
			// The request's MessageId, once it could be read: every fault
			// after the envelope's checks (§8.1 order 1) names it; a
			// caller that is no agency is refused unread.
			wantID := exampleID
			if tc.code == "client.schema.invalid" || tc.partner != "agency-th" {
				wantID = ""
			}
			if id := d.FindElement("//FaultDetail/MessageId"); (id == nil && wantID != "") || (id != nil && id.Text() != wantID) {
				t.Fatalf("fault %s, want MessageId %q", raw, wantID)
			}
			if n := count(t, env, `SELECT count(*) FROM records`); n != 0 {
				t.Fatalf("%d records accepted", n)
			}
			// The message log keeps the refusal as one, with its code.
			var outcome, problemType string
			var status int
			if err := env.Store.DB().QueryRow(`SELECT outcome, status, problem_type FROM message_log ORDER BY seq DESC LIMIT 1`).Scan(&outcome, &status, &problemType); err != nil ||
				outcome != store.OutcomeRejected || status != 500 || problemType != "urn:my:perkeso:jambatan:soap-fault:"+tc.code {
				t.Fatalf("message log: %s, %d, %s (%v); want REJECTED, 500, the fault's code", outcome, status, problemType, err)
			}
		})
	}
	t.Run("ok/wsdl", func(t *testing.T) {
		resp, err := env.Client(&env.Partners["agency-th"].TLS).Get(env.Server.URL + "/soap/v1/exchange?wsdl")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(b, []byte("wsdl:definitions")) {
			t.Fatalf("wsdl: %d %s", resp.StatusCode, b[:min(200, len(b))])
		}
	})
}

// TestSOAP12: a SOAP 1.2 request is answered in SOAP 1.2, with or without
// the optional action parameter (the Body child names the operation), and a
// Sender fault is HTTP 400 (SOAP 1.2 part 2 §7.5.2.2).
func TestSOAP12(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	ex12 := strings.Replace(soapExample(t), `xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"`, `xmlns:soap="`+wssec.NSSoap12+`"`, 1)
	sign := func(xml string) []byte {
		d := unsigned(t, xml)
		if err := agencyClient(t, env, "agency-th").Signer.Sign(d); err != nil {
			t.Fatal(err)
		}
		b, _ := d.WriteToBytes()
		return b
	}
	for _, tc := range []struct {
		name, contentType, xml string
		status                 int
		body                   string // the answer's Body child, or its fault's code
	}{
		{"ok/with-action", `application/soap+xml; charset=utf-8; action="urn:xb-injury:exchange:v1#NotifyInjury"`, ex12, 200, "InjuryAcknowledgement"},
		{"ok/without-action", "application/soap+xml; charset=utf-8", strings.Replace(ex12, "5f0c6b1e-8d2a", "5f0c6b1e-8d2b", 1), 200, "InjuryAcknowledgement"},
		{"fail/action-of-another-operation", `application/soap+xml; action="urn:xb-injury:exchange:v1#NotifyDecision"`, ex12, 400, "client.schema.invalid"},
		{"fail/soap-1.1-envelope", `application/soap+xml; action="urn:xb-injury:exchange:v1#NotifyInjury"`, soapExample(t), 400, "client.schema.invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", env.Server.URL+"/soap/v1/exchange", bytes.NewReader(sign(tc.xml)))
			req.Header.Set("Content-Type", tc.contentType)
			answer := send(t, env.Client(&env.Partners["agency-th"].TLS), req)
			raw := answer.body
			if answer.status != tc.status || !strings.HasPrefix(answer.header.Get("Content-Type"), "application/soap+xml") {
				t.Fatalf("HTTP %d %s\n%s", answer.status, answer.header.Get("Content-Type"), raw)
			}
			d, err := wssec.Parse(raw, wssec.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			r, verr := (&wssec.Verifier{}).Verify(d)
			if verr != nil || r.SOAP != wssec.NSSoap12 {
				t.Fatalf("answer: %v %s", verr, raw)
			}
			got := r.BodyChild.Tag
			if code := d.FindElement("//FaultDetail/Code"); code != nil {
				got = code.Text()
			}
			if got != tc.body {
				t.Fatalf("answer %s, want %s\n%s", got, tc.body, raw)
			}
		})
	}
}

// BenchmarkSOAPNotifyInjury is one agency notification end to end over mTLS:
// parse, verify WS-Security (RSA-2048 signer), schema, content rules, map,
// durable log with outbox, and the signed acknowledgement. Envelopes are
// signed before the timer starts.
func BenchmarkSOAPNotifyInjury(b *testing.B) {
	env := gatewaytest.Start(b, gatewaytest.Options{})
	c := agencyClient(b, env, "agency-th")
	ex := soapExample(b)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		d := unsigned(b, strings.Replace(ex, "5f0c6b1e-8d2a-4c3b-9e7f-1a2b3c4d5e6f", fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i), 1))
		if err := c.Signer.Sign(d); err != nil {
			b.Fatal(err)
		}
		bodies[i], _ = d.WriteToBytes()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req, _ := http.NewRequest("POST", c.URL, bytes.NewReader(bodies[i]))
		req.Header.Set("Content-Type", "text/xml; charset=utf-8")
		req.Header.Set("SOAPAction", `"urn:xb-injury:exchange:v1#NotifyInjury"`)
		resp, err := c.HTTP.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("HTTP %d: %s", resp.StatusCode, raw)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "messages/s")
}

// postSOAP sends the signed NotifyInjury example as the agency and returns
// the HTTP status and body.
func postSOAP(t *testing.T, env *gatewaytest.Env, agency string) (int, []byte) {
	t.Helper()
	return postSOAPWith(t, env, agency, nil)
}

// postSOAPWith is postSOAP with more request headers (added: a header may
// repeat).
func postSOAPWith(t *testing.T, env *gatewaytest.Env, agency string, hdr http.Header) (int, []byte) {
	t.Helper()
	r := postSOAPAnswer(t, env, agency, hdr)
	return r.status, r.body
}

// postSOAPAnswer is postSOAPWith returning the whole answer, its headers
// too.
func postSOAPAnswer(t *testing.T, env *gatewaytest.Env, agency string, hdr http.Header) response {
	t.Helper()
	return postSOAPTo(t, env, agency, "/soap/v1/exchange", hdr)
}

// postSOAPTo is postSOAPAnswer to the path (and query) target.
func postSOAPTo(t *testing.T, env *gatewaytest.Env, agency, target string, hdr http.Header) response {
	t.Helper()
	d := unsigned(t, soapExample(t))
	if err := agencyClient(t, env, agency).Signer.Sign(d); err != nil {
		t.Fatal(err)
	}
	body, _ := d.WriteToBytes()
	req, _ := http.NewRequest("POST", env.Server.URL+target, bytes.NewReader(body))
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", `"urn:xb-injury:exchange:v1#NotifyInjury"`)
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	return send(t, env.Client(&env.Partners[agency].TLS), req)
}

// assertFault checks that raw is a SOAP fault with the sub-code code.
func assertFault(t *testing.T, raw []byte, code string) {
	t.Helper()
	f, err := wssec.Parse(raw, wssec.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if c := f.FindElement("//FaultDetail/Code"); c == nil || c.Text() != code {
		t.Fatalf("fault %s, want %s", raw, code)
	}
}
