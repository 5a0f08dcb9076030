package soapclient

import (
	"strings"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/retryafter"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

// fault is an unsigned SOAP 1.1 fault with the given FaultDetail children.
func fault(detail string) string {
	return `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xb="urn:xb-injury:exchange:v1"><soap:Body>` +
		`<soap:Fault><faultcode>soap:Server</faultcode><faultstring>busy</faultstring><detail><xb:FaultDetail>` + detail +
		`</xb:FaultDetail></detail></soap:Fault></soap:Body></soap:Envelope>`
}

// readFault parses raw as an agency's response and reads its Body's fault
// (nil when the Body holds something else or raw is not an envelope).
func readFault(raw []byte) *Fault {
	doc, err := wssec.Parse(raw, wssec.Limits{MaxBytes: 64 << 10})
	if err != nil {
		return nil
	}
	env, ferr := wssec.Inspect(doc)
	if ferr != nil || env.BodyChild.Tag != "Fault" {
		return nil
	}
	return parseFault(env.BodyChild)
}

func TestParseFault(t *testing.T) {
	for _, tc := range []struct {
		name, raw  string
		code       string
		retryAfter time.Duration
	}{
		{"ok/unavailable-with-wait", fault(`<xb:Code>server.unavailable</xb:Code><xb:RetryAfterSeconds>90</xb:RetryAfterSeconds>`), "server.unavailable", 90 * time.Second},
		{"ok/spaced", fault(`<xb:Code> server.internal </xb:Code><xb:RetryAfterSeconds> 5 </xb:RetryAfterSeconds>`), "server.internal", 5 * time.Second},
		{"ok/wait-beyond-a-day", fault(`<xb:Code>server.unavailable</xb:Code><xb:RetryAfterSeconds>99999999999999999999999</xb:RetryAfterSeconds>`), "server.unavailable", retryafter.Max},
		{"fail/no-wait", fault(`<xb:Code>client.content.invalid</xb:Code>`), "client.content.invalid", 0},
		{"fail/negative-wait", fault(`<xb:Code>server.unavailable</xb:Code><xb:RetryAfterSeconds>-5</xb:RetryAfterSeconds>`), "server.unavailable", 0},
		{"fail/wait-in-words", fault(`<xb:Code>server.unavailable</xb:Code><xb:RetryAfterSeconds>soon</xb:RetryAfterSeconds>`), "server.unavailable", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := readFault([]byte(tc.raw))
			if f == nil || f.Code != tc.code || f.RetryAfter != tc.retryAfter || f.FaultCode != "soap:Server" || f.Reason != "busy" {
				t.Fatalf("%+v, want code %s and a wait of %v", f, tc.code, tc.retryAfter)
			}
		})
	}
}

// FuzzParseFault: whatever an agency's fault holds, its wait is 0 to
// retryafter.Max and its texts are trimmed.
func FuzzParseFault(f *testing.F) {
	f.Add([]byte(fault(`<xb:Code>server.unavailable</xb:Code><xb:RetryAfterSeconds>90</xb:RetryAfterSeconds>`)))
	f.Add([]byte(fault(`<xb:Code>client.schema.invalid</xb:Code><xb:Location>/xb:NotifyInjury</xb:Location><xb:MessageId>urn:uuid:1</xb:MessageId>`)))
	f.Add([]byte(`<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><env:Fault><env:Code><env:Value>env:Receiver</env:Value></env:Code>` +
		`<env:Reason><env:Text>busy</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		flt := readFault(raw)
		if flt == nil {
			return
		}
		if flt.RetryAfter < 0 || flt.RetryAfter > retryafter.Max {
			t.Fatalf("wait %v", flt.RetryAfter)
		}
		for _, s := range []string{flt.FaultCode, flt.Reason, flt.Code, flt.Location, flt.MessageID} {
			if s != strings.TrimSpace(s) {
				t.Fatalf("untrimmed %q", s)
			}
		}
	})
}

// TestFaultError: a fault's text names its code, SOAP fault code and reason,
// and where it points only when it points somewhere (the deliverer keeps
// the text as the attempt's error).
func TestFaultError(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Fault
		want string
	}{
		{"ok/located", Fault{FaultCode: "soap:Client", Reason: "TH_PID check digit does not match", Code: "client.content.invalid", Location: "/xb:NotifyInjury/xb:Notification/xb:Person/xb:PersonalId"},
			"soap fault client.content.invalid (soap:Client): TH_PID check digit does not match at /xb:NotifyInjury/xb:Notification/xb:Person/xb:PersonalId"},
		{"ok/nowhere", Fault{FaultCode: "soap:Server", Reason: "busy", Code: "server.unavailable"}, "soap fault server.unavailable (soap:Server): busy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.f.Error(); got != tc.want {
				t.Fatalf("%q, want %q", got, tc.want)
			}
		})
	}
}
