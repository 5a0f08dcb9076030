package config

import (
	"slices"
	"testing"
)

// TestRestartOnly: a reload names the changed settings it cannot apply, and
// only those: "ok/…" changes a reload applies, "fail/…" ones it does not.
func TestRestartOnly(t *testing.T) {
	running := File{
		Listen: ":8443", Store: "gateway.db", ReceiptKeyFile: "receipt.jwk.json",
		TLS:      TLS{CertFile: "server.pem", KeyFile: "server.key", ClientCAFile: "ca.pem"},
		Limits:   Limits{MaxConnections: 1024, MaxBodyBytes: 1 << 20},
		Kafka:    Kafka{Brokers: []string{"k1:9093"}},
		SOAP:     SOAP{Institution: "MY:PERKESO", SigningCertFile: "soap.pem", SigningKeyFile: "soap.key"},
		Outbound: Outbound{ClientCertFile: "out.pem", ClientKeyFile: "out.key", Topic: "perkeso.outbound.v1"},
		Partners: []PartnerConfig{{ID: "acme", Kind: "employer"}},
	}
	for _, tc := range []struct {
		name   string
		change func(f *File)
		want   []string
	}{
		{"ok/nothing", func(f *File) {}, nil},
		{"ok/tls", func(f *File) { f.TLS.CertFile, f.TLS.CRLFiles = "server-2027.pem", []string{"ca.crl"} }, nil},
		{"ok/partners", func(f *File) { f.Partners = append(f.Partners, PartnerConfig{ID: "ins", Kind: "insurer"}) }, nil},
		{"ok/identities", func(f *File) {
			f.ReceiptKeyFile, f.SOAP.SigningCertFile, f.Outbound.ClientKeyFile = "r2.jwk.json", "soap-2027.pem", "out-2027.key"
		}, nil},
		// Its keys are reloaded; added or removed, the reload says so itself.
		{"ok/request-signers", func(f *File) { f.Outbound.RequestSignersFile = "backoffice-2027.jwks.json" }, nil},
		{"ok/operators", func(f *File) { f.Operator.ClientCAFile, f.Operator.AllowedCNs = "ops-ca-2027.pem", []string{"ops-2"} }, nil},
		{"ok/operator-roles", func(f *File) { f.Operator.Roles = map[string][]string{"ops-2": {"queue"}} }, nil},
		{"ok/operator-crls", func(f *File) { f.Operator.CRLFiles = []string{"ops.crl"} }, nil},
		{"fail/operator-listener", func(f *File) { f.Operator.Listen = "127.0.0.1:9444" }, []string{"operator.listen"}},
		{"fail/limits", func(f *File) { f.Limits.MaxConnections = 2048 }, []string{"limits.max_connections"}},
		{"fail/limit-added", func(f *File) { f.Limits.ReadTimeout = Duration(5e9) }, []string{"limits.read_timeout"}},
		{"fail/brokers", func(f *File) { f.Kafka.Brokers = []string{"k1:9093", "k2:9093"} }, []string{"kafka.brokers"}},
		{"fail/kafka-tls-added", func(f *File) { f.Kafka.TLS = &KafkaTLS{} }, []string{"kafka.tls"}},
		{"fail/several", func(f *File) { f.Listen, f.Store, f.SOAP.Institution = ":9443", "other.db", "MY:X" },
			[]string{"listen", "soap.institution", "store"}},
		{"fail/beside-a-reloadable-one", func(f *File) { f.Outbound.Topic, f.Outbound.ClientCertFile = "t2", "o2.pem" },
			[]string{"outbound.topic"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := running
			next.Partners = slices.Clone(running.Partners)
			next.Kafka.Brokers = slices.Clone(running.Kafka.Brokers)
			tc.change(&next)
			if got := (&Config{asRead: tree(running)}).RestartOnly(&Config{asRead: tree(next)}); !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
