package soapsrv

import (
	"path/filepath"
	"testing"

	"github.com/perkeso/jambatan/adapters/adaptertest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

// TestFaultElement: each kind of fault as the gateway renders it, in SOAP
// 1.1 (agency-soap/v1 §8.2's form: faultcode soap:Client or soap:Server,
// FaultDetail with Code, Location and MessageId when known,
// RetryAfterSeconds on server faults only) and in SOAP 1.2 (the dotted code
// as the Subcode). A MustUnderstand fault keeps SOAP's own code and names
// client.schema.invalid in its detail. Golden files under testdata/faults;
// go test -update rewrites them.
func TestFaultElement(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Fault
	}{
		{"ok/client-content", Fault{Code: "client.content.invalid", Reason: "TH_PID check digit does not match",
			Location: "/xb:NotifyInjury/xb:Notification/xb:Person/xb:PersonalId", MessageID: "urn:uuid:c81e2f44-09ab-4d6e-9f3a-5b7c1d0e2a96"}},
		{"ok/client-no-message-id", Fault{Code: "client.schema.invalid", Reason: "not well-formed XML"}},
		{"ok/client-retry-ignored", Fault{Code: "client.duplicate", Reason: "MessageId already received", Retry: 30}},
		{"ok/server-unavailable", Fault{Code: "server.unavailable", Reason: "try again later", Server: true, Retry: 30}},
		{"ok/server-internal", Fault{Code: "server.internal", Reason: "unexpected failure", Server: true}},
		{"ok/must-understand", Fault{Code: "mustUnderstand", Reason: "header block x:Routing not understood"}},
	} {
		for _, v := range []struct{ name, ns string }{{"soap11", wssec.NSSoap11}, {"soap12", wssec.NSSoap12}} {
			t.Run(tc.name+"/"+v.name, func(t *testing.T) {
				doc := envelope(v.ns, faultElement(v.ns, &tc.f))
				doc.Indent(2)
				b, err := doc.WriteToBytes()
				if err != nil {
					t.Fatal(err)
				}
				adaptertest.Golden(t, filepath.Join("testdata", "faults", filepath.Base(tc.name)+"."+v.name+".xml"), b)
			})
		}
	}
}
