package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/jwsin"

	// The formats the base configuration's partners send.
	_ "github.com/perkeso/jambatan/adapters/agencysoap"
	_ "github.com/perkeso/jambatan/adapters/insurerclaim"
	_ "github.com/perkeso/jambatan/adapters/sgemployer"
)

// publicJWKS is a JWKS of one fresh P-256 public key.
func publicJWKS(t *testing.T, kid string) json.RawMessage {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, err := jwk.Import(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyIDKey, kid)
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	b, _ := json.Marshal(set)
	return b
}

// withMember is the JWKS set with member name set to v in its first key.
func withMember(t *testing.T, set json.RawMessage, name string, v any) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(set, &m); err != nil {
		t.Fatal(err)
	}
	m["keys"].([]any)[0].(map[string]any)[name] = v
	return m
}

// base is a valid configuration with an employer, an insurer and an agency
// (with a delivery endpoint), as a generic map a case can change. Paths are
// relative to dir, where the agency's signing CA is written.
func base(t *testing.T, dir string) map[string]any {
	t.Helper()
	ca, err := certs.NewCA("config test CA")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "agency-ca.pem"), certs.CertPEM(ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	// A CRL of the agency's signing CA, and one of another CA.
	other, err := certs.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	for name, issuer := range map[string]*certs.CA{"agency-ca.crl": ca, "other-ca.crl": other} {
		crl, err := issuer.Revoke(1)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), crl, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// The client certificate the agency issued Perkeso for its endpoint,
	// and another key.
	for _, name := range []string{"perkeso-at-th-sso", "other"} {
		c, err := ca.IssueClient(name)
		if err == nil {
			err = certs.WriteFiles(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key"), c.Cert, c.Key)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	var m map[string]any
	cfg := `{
  "tls": {"cert_file": "pki/server.pem", "key_file": "pki/server.key", "client_ca_file": "pki/ca.pem"},
  "store": "gateway.db", "receipt_key_file": "pki/receipt.json",
  "partners": [
    {"id": "acme-hr", "kind": "employer", "country": "SG", "formats": ["sg-employer-notice/v1"],
     "tls_identity": {"subject_cn": "acme-hr"}, "jwks": ` + string(publicJWKS(t, "acme-1")) + `, "uens": ["201912345K"]},
    {"id": "lion-ins", "kind": "insurer", "country": "SG", "formats": ["insurer-claim/v1"],
     "tls_identity": {"subject_cn": "lion-ins"}, "jwks": ` + string(publicJWKS(t, "lion-1")) + `, "insurer_codes": ["LION01"]},
    {"id": "th-sso", "kind": "agency", "country": "TH", "formats": ["agency-soap/v1"], "tls_identity": {"subject_cn": "th-sso"},
     "institution": "TH:SSO", "signing_ca_file": "agency-ca.pem",
     "endpoint": {"url": "https://sso.example.th/exchange", "protocol": "soap", "ca_file": "agency-ca.pem", "base_backoff": "2s", "max_backoff": "1m"}}
  ]
}`
	if err := json.Unmarshal([]byte(cfg), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// clientCert sets the agency endpoint's client certificate and key files
// ("": absent).
func clientCert(m map[string]any, cert, key string) {
	ep := partnerAt(m, 2)["endpoint"].(map[string]any)
	ep["client_cert_file"], ep["client_key_file"] = cert, key
}

// operators sets an operator listener for ops-backoffice and ops-duty with
// roles.
func operators(m map[string]any, roles map[string]any) {
	m["operator"] = map[string]any{"listen": "127.0.0.1:9444", "client_ca_file": "agency-ca.pem",
		"allowed_cns": []any{"ops-backoffice", "ops-duty"}, "roles": roles}
}

// partnerAt is the i-th partner of a base configuration.
func partnerAt(m map[string]any, i int) map[string]any {
	return m["partners"].([]any)[i].(map[string]any)
}

// TestLoad: a valid configuration loads with its defaults and its paths
// resolved against its directory; each broken rule is refused with the
// field (and the partner) it is about, and nothing is loaded.
func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(m map[string]any)
		partner string // the Error's Partner
		field   string // the Error's Field; "" for a valid configuration, "-" for JSON that does not decode
	}{
		{"ok/valid", func(map[string]any) {}, "", ""},
		{"fail/unknown-field", func(m map[string]any) { m["listne"] = "127.0.0.1:1" }, "", "-"},
		{"fail/not-a-duration", func(m map[string]any) { m["limits"] = map[string]any{"read_timeout": "soon"} }, "", "-"},
		{"fail/no-store", func(m map[string]any) { delete(m, "store") }, "", "store"},
		{"fail/no-server-certificate", func(m map[string]any) { m["tls"].(map[string]any)["cert_file"] = "" }, "", "tls.cert_file"},
		{"fail/negative-body-limit", func(m map[string]any) { m["limits"] = map[string]any{"max_body_bytes": -1} }, "", "limits.max_body_bytes"},
		{"fail/negative-inflight-limit", func(m map[string]any) { m["limits"] = map[string]any{"max_inflight_bytes": -1} }, "", "limits.max_inflight_bytes"},
		{"fail/negative-connection-limit", func(m map[string]any) { m["limits"] = map[string]any{"max_connections": -1} }, "", "limits.max_connections"},
		{"fail/kafka-messages-too-small", func(m map[string]any) { m["kafka"] = map[string]any{"max_message_bytes": 1000} }, "", "kafka.max_message_bytes"},
		{"ok/kafka-compression", func(m map[string]any) { m["kafka"] = map[string]any{"compression": "zstd"} }, "", ""},
		{"fail/kafka-compression", func(m map[string]any) { m["kafka"] = map[string]any{"compression": "brotli"} }, "", "kafka.compression"},
		{"fail/kafka-compression-case", func(m map[string]any) { m["kafka"] = map[string]any{"compression": "LZ4"} }, "", "kafka.compression"},
		{"fail/kafka-tls-without-ca", func(m map[string]any) { m["kafka"] = map[string]any{"tls": map[string]any{}} }, "", "kafka.tls.ca_file"},
		{"fail/kafka-sasl-mechanism", func(m map[string]any) {
			m["kafka"] = map[string]any{"sasl": map[string]any{"mechanism": "PLAIN", "username": "u", "password_file": "p"}}
		}, "", "kafka.sasl.mechanism"},
		{"fail/operator-without-ca", func(m map[string]any) { m["operator"] = map[string]any{"listen": "127.0.0.1:9444"} }, "", "operator"},
		{"ok/operator-roles", func(m map[string]any) {
			operators(m, map[string]any{"ops-backoffice": []any{"send", "queue", "answers"}, "ops-duty": []any{"queue"}})
		}, "", ""},
		{"fail/operator-role-unknown", func(m map[string]any) {
			operators(m, map[string]any{"ops-backoffice": []any{"send"}, "ops-duty": []any{"retry"}})
		}, "", "operator.roles"},
		{"fail/operator-roles-of-a-name-not-allowed", func(m map[string]any) {
			operators(m, map[string]any{"ops-backoffice": []any{"send"}, "ops-duty": []any{"queue"}, "ops-dutty": []any{"queue"}})
		}, "", "operator.roles"},
		{"fail/operator-allowed-without-roles", func(m map[string]any) {
			operators(m, map[string]any{"ops-backoffice": []any{"send"}})
		}, "", "operator.roles"},
		{"fail/operator-with-no-role", func(m map[string]any) {
			operators(m, map[string]any{"ops-backoffice": []any{"send"}, "ops-duty": []any{}})
		}, "", "operator.roles"},
		{"fail/partner-id", func(m map[string]any) { partnerAt(m, 0)["id"] = "Acme HR" }, "Acme HR", "id"},
		{"fail/partner-without-id", func(m map[string]any) { delete(partnerAt(m, 1), "id") }, "partners[1]", "id"},
		{"fail/partner-twice", func(m map[string]any) { partnerAt(m, 1)["id"] = "acme-hr" }, "acme-hr", "id"},
		{"fail/partner-kind", func(m map[string]any) { partnerAt(m, 0)["kind"] = "broker" }, "acme-hr", "kind"},
		{"fail/partner-country", func(m map[string]any) { partnerAt(m, 0)["country"] = "SGP" }, "acme-hr", "country"},
		{"fail/partner-without-formats", func(m map[string]any) { partnerAt(m, 0)["formats"] = []any{} }, "acme-hr", "formats"},
		{"fail/partner-unknown-format", func(m map[string]any) { partnerAt(m, 0)["formats"] = []any{"sg-employer-notice/v2"} }, "acme-hr", "formats"},
		{"fail/partner-without-identity", func(m map[string]any) { partnerAt(m, 0)["tls_identity"] = map[string]any{} }, "acme-hr", "tls_identity"},
		{"fail/partner-fingerprint", func(m map[string]any) { partnerAt(m, 0)["tls_identity"] = map[string]any{"sha256": "abc"} }, "acme-hr", "tls_identity.sha256[0]"},
		{"ok/partner-fingerprints", func(m map[string]any) {
			partnerAt(m, 0)["tls_identity"] = map[string]any{"sha256": []any{strings.Repeat("a", 64), strings.Repeat("B", 64)}}
		}, "", ""},
		{"fail/partner-second-fingerprint", func(m map[string]any) {
			partnerAt(m, 0)["tls_identity"] = map[string]any{"sha256": []any{strings.Repeat("a", 64), "abc"}}
		}, "acme-hr", "tls_identity.sha256[1]"},
		{"ok/partner-fingerprint-empty", func(m map[string]any) {
			partnerAt(m, 0)["tls_identity"] = map[string]any{"subject_cn": "acme-hr", "sha256": ""}
		}, "", ""},
		{"fail/partner-fingerprint-type", func(m map[string]any) { partnerAt(m, 0)["tls_identity"] = map[string]any{"sha256": 7} }, "", "-"},
		{"fail/partner-without-keys", func(m map[string]any) { delete(partnerAt(m, 0), "jwks") }, "acme-hr", "jwks"},
		{"fail/partner-keys-twice", func(m map[string]any) { partnerAt(m, 0)["jwks_file"] = "acme.jwks" }, "acme-hr", "jwks"},
		{"fail/partner-missing-jwks-file", func(m map[string]any) {
			delete(partnerAt(m, 0), "jwks")
			partnerAt(m, 0)["jwks_file"] = "absent.jwks"
		}, "acme-hr", "jwks_file"},
		{"fail/partner-private-key", func(m map[string]any) {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			priv, _ := jwk.Import(k)
			_ = priv.Set(jwk.KeyIDKey, "leaked")
			set := jwk.NewSet()
			_ = set.AddKey(priv)
			partnerAt(m, 0)["jwks"] = set
		}, "acme-hr", "jwks"},
		{"fail/partner-key-for-encryption", func(m map[string]any) {
			partnerAt(m, 0)["jwks"] = withMember(t, publicJWKS(t, "acme-enc"), "use", "enc")
		}, "acme-hr", "jwks"},
		{"fail/partner-key-ops-without-verify", func(m map[string]any) {
			partnerAt(m, 0)["jwks"] = withMember(t, publicJWKS(t, "acme-ops"), "key_ops", []string{"encrypt", "wrapKey"})
		}, "acme-hr", "jwks"},
		{"fail/partner-uen", func(m map[string]any) { partnerAt(m, 0)["uens"] = []any{"12345"} }, "acme-hr", "uens"},
		{"fail/partner-agent-for-any-uen-as-employer-uen", func(m map[string]any) { partnerAt(m, 0)["uens"] = []any{"*"} }, "acme-hr", "uens"},
		{"fail/insurer-code", func(m map[string]any) { partnerAt(m, 1)["insurer_codes"] = []any{"lion"} }, "lion-ins", "insurer_codes"},
		{"fail/endpoint-not-https", func(m map[string]any) {
			partnerAt(m, 2)["endpoint"].(map[string]any)["url"] = "http://sso.example.th/exchange"
		}, "th-sso", "endpoint.url"},
		{"fail/endpoint-protocol", func(m map[string]any) { partnerAt(m, 2)["endpoint"].(map[string]any)["protocol"] = "rest" }, "th-sso", "endpoint.protocol"},
		{"fail/endpoint-soap-for-an-insurer", func(m map[string]any) {
			partnerAt(m, 1)["endpoint"] = map[string]any{"url": "https://lion.example.sg/in", "protocol": "soap"}
		}, "lion-ins", "endpoint.protocol"},
		{"fail/endpoint-negative-attempts", func(m map[string]any) {
			partnerAt(m, 2)["endpoint"].(map[string]any)["max_attempts"] = -1
		}, "th-sso", "endpoint.max_attempts"},
		{"ok/endpoint-max-response-bytes", func(m map[string]any) {
			partnerAt(m, 2)["endpoint"].(map[string]any)["max_response_bytes"] = 64 << 20
		}, "", ""},
		{"fail/endpoint-max-response-bytes-small", func(m map[string]any) {
			partnerAt(m, 2)["endpoint"].(map[string]any)["max_response_bytes"] = 1000
		}, "th-sso", "endpoint.max_response_bytes"},
		{"fail/endpoint-max-response-bytes-large", func(m map[string]any) {
			partnerAt(m, 2)["endpoint"].(map[string]any)["max_response_bytes"] = 1 << 30
		}, "th-sso", "endpoint.max_response_bytes"},
		{"ok/endpoint-max-response-bytes-least", func(m map[string]any) {
			partnerAt(m, 2)["endpoint"].(map[string]any)["max_response_bytes"] = MinResponseBytes
		}, "", ""},
		{"fail/endpoint-max-response-bytes-one-under", func(m map[string]any) {
			partnerAt(m, 2)["endpoint"].(map[string]any)["max_response_bytes"] = MinResponseBytes - 1
		}, "th-sso", "endpoint.max_response_bytes"},
		{"ok/endpoint-max-response-bytes-most", func(m map[string]any) {
			partnerAt(m, 2)["endpoint"].(map[string]any)["max_response_bytes"] = MaxResponseBytes
		}, "", ""},
		{"fail/endpoint-max-response-bytes-one-over", func(m map[string]any) {
			partnerAt(m, 2)["endpoint"].(map[string]any)["max_response_bytes"] = MaxResponseBytes + 1
		}, "th-sso", "endpoint.max_response_bytes"},
		{"ok/endpoint-max-backoff-equal-to-base", func(m map[string]any) {
			partnerAt(m, 2)["endpoint"].(map[string]any)["max_backoff"] = "2s"
		}, "", ""},
		{"ok/endpoint-without-ca", func(m map[string]any) {
			partnerAt(m, 1)["endpoint"] = map[string]any{"url": "https://lion.example.sg/in", "protocol": "json"} // the system's CAs
		}, "", ""},
		{"fail/endpoint-crl-without-ca", func(m map[string]any) {
			ep := partnerAt(m, 2)["endpoint"].(map[string]any)
			ep["crl_files"] = []any{"agency-ca.crl"}
			delete(ep, "ca_file")
		}, "th-sso", "endpoint.crl_files"},
		{"fail/zero-duration", func(m map[string]any) { m["limits"] = map[string]any{"read_timeout": "0s"} }, "", "-"},
		{"fail/endpoint-max-backoff-under-base", func(m map[string]any) {
			partnerAt(m, 2)["endpoint"].(map[string]any)["max_backoff"] = "1s"
		}, "th-sso", "endpoint.max_backoff"},
		{"fail/endpoint-base-backoff-over-default-max", func(m map[string]any) {
			ep := partnerAt(m, 2)["endpoint"].(map[string]any)
			ep["base_backoff"] = "10m"
			delete(ep, "max_backoff")
		}, "th-sso", "endpoint.max_backoff"},
		{"fail/endpoint-missing-ca", func(m map[string]any) { partnerAt(m, 2)["endpoint"].(map[string]any)["ca_file"] = "absent.pem" }, "th-sso", "endpoint.ca_file"},
		{"ok/endpoint-crl", func(m map[string]any) {
			partnerAt(m, 2)["endpoint"].(map[string]any)["crl_files"] = []any{"agency-ca.crl"}
		}, "", ""},
		{"fail/endpoint-crl-of-another-ca", func(m map[string]any) {
			partnerAt(m, 2)["endpoint"].(map[string]any)["crl_files"] = []any{"other-ca.crl"}
		}, "th-sso", "endpoint.crl_files"},
		{"fail/endpoint-crl-missing", func(m map[string]any) {
			partnerAt(m, 2)["endpoint"].(map[string]any)["crl_files"] = []any{"absent.crl"}
		}, "th-sso", "endpoint.crl_files"},
		{"fail/endpoint-crl-without-ca-file", func(m map[string]any) {
			ep := partnerAt(m, 2)["endpoint"].(map[string]any)
			delete(ep, "ca_file")
			ep["crl_files"] = []any{"agency-ca.crl"}
		}, "th-sso", "endpoint.crl_files"},
		{"ok/endpoint-client-certificate", func(m map[string]any) {
			clientCert(m, "perkeso-at-th-sso.pem", "perkeso-at-th-sso.key")
		}, "", ""},
		{"fail/endpoint-client-key-without-certificate", func(m map[string]any) { clientCert(m, "", "perkeso-at-th-sso.key") }, "th-sso", "endpoint.client_cert_file"},
		{"fail/endpoint-client-certificate-without-key", func(m map[string]any) { clientCert(m, "perkeso-at-th-sso.pem", "") }, "th-sso", "endpoint.client_key_file"},
		{"fail/endpoint-client-key-not-the-certificates", func(m map[string]any) {
			clientCert(m, "perkeso-at-th-sso.pem", "other.key")
		}, "th-sso", "endpoint.client_cert_file"},
		{"fail/endpoint-client-certificate-missing", func(m map[string]any) { clientCert(m, "absent.pem", "other.key") }, "th-sso", "endpoint.client_cert_file"},
		{"fail/agency-institution", func(m map[string]any) { partnerAt(m, 2)["institution"] = "SSO" }, "th-sso", "institution"},
		{"fail/agency-without-signing-ca", func(m map[string]any) { delete(partnerAt(m, 2), "signing_ca_file") }, "th-sso", "signing_ca_file"},
		{"fail/agency-pin", func(m map[string]any) { partnerAt(m, 2)["signing_cert_sha256"] = []any{"not-hex"} }, "th-sso", "signing_cert_sha256"},
		{"ok/agency-signing-crl", func(m map[string]any) { partnerAt(m, 2)["signing_crl_files"] = []any{"agency-ca.crl"} }, "", ""},
		{"fail/agency-signing-crl-of-another-ca", func(m map[string]any) { partnerAt(m, 2)["signing_crl_files"] = []any{"other-ca.crl"} }, "th-sso", "signing_crl_files"},
		{"fail/agency-signing-crl-missing", func(m map[string]any) { partnerAt(m, 2)["signing_crl_files"] = []any{"absent.crl"} }, "th-sso", "signing_crl_files"},
		{"fail/signing-ca-of-an-employer", func(m map[string]any) { partnerAt(m, 0)["signing_ca_file"] = "agency-ca.pem" }, "acme-hr", "kind"},
		{"fail/signing-crl-of-an-insurer", func(m map[string]any) { partnerAt(m, 1)["signing_crl_files"] = []any{"agency-ca.crl"} }, "lion-ins", "kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			m := base(t, dir)
			tc.change(m)
			b, _ := json.Marshal(m)
			path := filepath.Join(dir, "gateway.json")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				checkLoaded(t, c, dir)
				return
			}
			var ce *Error
			if c != nil || !errors.As(err, &ce) {
				t.Fatalf("loaded %v, error %v: want a *config.Error", c != nil, err)
			}
			undecoded := map[string]string{"fail/unknown-field": `unknown field "listne"`, "fail/not-a-duration": `"soon" is not a positive duration`,
				"fail/zero-duration":            `"0s" is not a positive duration`,
				"fail/partner-fingerprint-type": "tls_identity.sha256: must be a fingerprint"}
			if tc.field == "-" && (ce.Field != "" || !strings.Contains(ce.Msg, undecoded[tc.name])) {
				t.Fatalf("error %q, want one saying %s", err, undecoded[tc.name])
			}
			if tc.field != "-" && (ce.Field != tc.field || ce.Partner != tc.partner) {
				t.Fatalf("error %q names partner %q field %q, want partner %q field %q", err, ce.Partner, ce.Field, tc.partner, tc.field)
			}
			says := map[string]string{"fail/operator-role-unknown": `"ops-duty": unknown role "retry"`,
				"fail/operator-roles-of-a-name-not-allowed": `"ops-dutty" is not in allowed_cns`,
				"fail/operator-allowed-without-roles":       `"ops-duty" is in allowed_cns but has no roles`,
				"fail/operator-with-no-role":                `"ops-duty" has no role`}
			if want, ok := says[tc.name]; ok && !strings.Contains(ce.Msg, want) {
				t.Fatalf("error %q, want one saying %s", err, want)
			}
			if !strings.HasPrefix(err.Error(), "config "+path) {
				t.Fatalf("error %q does not name the file", err)
			}
		})
	}
}

// TestLoadStrictJSON: the file is read as strict JSON. encoding/json alone
// takes the last of a setting given twice and stops after the first value,
// and each of these passed serve --check with a part silently dropped.
func TestLoadStrictJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(b []byte) []byte
		want string // "" for a file that loads
	}{
		{"ok/as-written", func(b []byte) []byte { return b }, ""},
		{"ok/space-after", func(b []byte) []byte { return append(b, "\n\t \n"...) }, ""},
		{"fail/setting-twice", func(b []byte) []byte { return bytes.Replace(b, []byte("{"), []byte(`{"store":"other.db",`), 1) }, `duplicate member name "store"`},
		{"fail/partners-twice", func(b []byte) []byte { return bytes.Replace(b, []byte("{"), []byte(`{"partners":[],`), 1) }, `duplicate member name "partners"`},
		{"fail/second-object", func(b []byte) []byte { return append(b, "\n{}"...) }, "data after the document"},
		{"fail/missing-comma", func(b []byte) []byte { return bytes.Replace(b, []byte("{"), []byte("{\n  \"store\": \"x.db\"\n  "), 1) },
			`invalid character '"' at byte 23 (line 3, column 3)`},
		{"fail/setting-twice-where", func(b []byte) []byte {
			return bytes.Replace(b, []byte("{"), []byte("{\n\t\"store\": \"x.db\",\n\t\"store\":"), 1)
		},
			`duplicate member name "store" (line 3, column 2)`},
		{"fail/after-non-ascii", func(b []byte) []byte {
			return bytes.Replace(b, []byte("{"), []byte("{\"instance\": \"Pusat Perkéso\" ,,"), 1)
		},
			`invalid character ',' at byte 32 (line 1, column 31)`}, // é is two bytes, one column
		{"fail/byte-order-mark", func(b []byte) []byte { return append([]byte("\xEF\xBB\xBF"), b...) }, "byte-order mark"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b, _ := json.Marshal(base(t, dir))
			path := filepath.Join(dir, "gateway.json")
			if err := os.WriteFile(path, tc.edit(b), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want == "":
				checkLoaded(t, c, dir)
			case c != nil || err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "config "+path):
				t.Fatalf("loaded %v, error %v: want one naming the file and saying %s", c != nil, err, tc.want)
			}
		})
	}
}

// TestLimitsAtTheirLeast: each limit's least value is taken as it is.
func TestLimitsAtTheirLeast(t *testing.T) {
	dir := t.TempDir()
	m := base(t, dir)
	m["limits"] = map[string]any{"max_body_bytes": 1, "max_inflight_bytes": 1, "max_connections": 1}
	m["kafka"] = map[string]any{"max_message_bytes": MinKafkaMaxMessageBytes}
	b, _ := json.Marshal(m)
	path := filepath.Join(dir, "gateway.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if l := c.File.Limits; l.MaxBodyBytes != 1 || l.MaxInflightBytes != 1 || l.MaxConnections != 1 || c.File.Kafka.MaxMessageBytes != MinKafkaMaxMessageBytes {
		t.Fatalf("limits %+v, kafka.max_message_bytes %d", l, c.File.Kafka.MaxMessageBytes)
	}
}

// checkLoaded: defaults filled in, paths resolved against dir, the
// registry built.
func checkLoaded(t *testing.T, c *Config, dir string) {
	t.Helper()
	if c.File.Listen != DefaultListen || c.File.Limits.MaxBodyBytes != DefaultMaxBodyBytes || c.File.Kafka.MaxMessageBytes != DefaultKafkaMaxMessageBytes ||
		c.File.Limits.MaxInflightBytes != DefaultMaxInflightBytes || c.File.Limits.MaxConnections != DefaultMaxConnections ||
		c.File.SOAP.Institution != "MY:PERKESO" || c.File.Outbound.Topic != "perkeso.outbound.v1" ||
		c.File.Outbound.StatusTopic != "perkeso.delivery-status.v1" || !strings.HasPrefix(c.File.Instance, "jambatan@") ||
		c.File.Limits.ReadHeaderTimeout != Duration(5*time.Second) || c.File.Limits.ReadTimeout != Duration(30*time.Second) ||
		c.File.Limits.WriteTimeout != Duration(30*time.Second) || c.File.Limits.IdleTimeout != Duration(120*time.Second) {
		t.Fatalf("defaults not filled in: %+v", c.File)
	}
	if c.CertFile != filepath.Join(dir, "pki", "server.pem") || c.StorePath != filepath.Join(dir, "gateway.db") {
		t.Fatalf("paths not resolved against the configuration's directory: %s %s", c.CertFile, c.StorePath)
	}
	if len(c.Partners.All()) != 3 {
		t.Fatalf("%d partners", len(c.Partners.All()))
	}
	ag, ok := c.Partners.ByID("th-sso")
	if !ok || ag.Institution != "TH:SSO" || ag.SigningCAs == nil || ag.Endpoint == nil || ag.Endpoint.RootCAs == nil {
		t.Fatalf("agency: %+v", ag)
	}
	if ag.Endpoint.MaxResponseBytes != c.File.Partners[2].Endpoint.MaxResponseBytes {
		t.Fatalf("endpoint max_response_bytes %d, configured %d", ag.Endpoint.MaxResponseBytes, c.File.Partners[2].Endpoint.MaxResponseBytes)
	}
	if want := c.File.Partners[2].Endpoint.ClientCertFile; want == "" && ag.Endpoint.ClientCert != nil ||
		want != "" && (ag.Endpoint.ClientCert == nil || ag.Endpoint.ClientCert.Leaf.Subject.CommonName != "perkeso-at-th-sso" || want != filepath.Join(dir, "perkeso-at-th-sso.pem")) {
		t.Fatalf("endpoint client certificate %v (file %q)", ag.Endpoint.ClientCert, want)
	}
	if files := c.File.Partners[2].SigningCRLFiles; len(ag.SigningCRLs) != len(files) || len(ag.SigningCRLFiles) != len(files) ||
		len(files) > 0 && ag.SigningCRLFiles[0] != filepath.Join(dir, "agency-ca.crl") {
		t.Fatalf("signing CRLs %d from %q, configured %q", len(ag.SigningCRLs), ag.SigningCRLFiles, files)
	}
}

// TestRequestSigners: outbound.request_signers_file, relative to the
// configuration, gives the back office's public keys; a file that is
// missing or holds a private key is refused at load, naming the setting.
func TestRequestSigners(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	priv, _ := jwk.Import(k)
	_ = priv.Set(jwk.KeyIDKey, "bo-leaked")
	private := jwk.NewSet()
	_ = private.AddKey(priv)
	privateJSON, _ := json.Marshal(private)
	for _, tc := range []struct {
		name string
		file []byte // written as bo.jwks; nil: none
		keys int    // keys loaded; -1: refused
	}{
		{"ok/public-keys", publicJWKS(t, "bo-2026-1"), 1},
		{"fail/missing", nil, -1},
		{"fail/private-key", privateJSON, -1},
		{"fail/not-a-jwks", []byte(`{"keys":"none"}`), -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			m := base(t, dir)
			m["outbound"] = map[string]any{"request_signers_file": "bo.jwks"}
			if tc.file != nil {
				if err := os.WriteFile(filepath.Join(dir, "bo.jwks"), tc.file, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, _ := json.Marshal(m)
			path := filepath.Join(dir, "gateway.json")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			var ce *Error
			switch {
			case tc.keys >= 0 && (err != nil || c.RequestSigners == nil || c.RequestSigners.Len() != tc.keys):
				t.Fatalf("loaded %v: %v", c, err)
			case tc.keys < 0 && (!errors.As(err, &ce) || ce.Field != "outbound.request_signers_file"):
				t.Fatalf("error %v, want one naming outbound.request_signers_file", err)
			}
		})
	}
	// Without the setting, requests are taken unsigned (RequestSigners nil).
	dir := t.TempDir()
	b, _ := json.Marshal(base(t, dir))
	path := filepath.Join(dir, "gateway.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err := Load(path); err != nil || c.RequestSigners != nil {
		t.Fatalf("without the setting: %v %v", c.RequestSigners, err)
	}
}

// TestParsePublicJWKS: a partner's registered keys are public keys of the
// kinds its algorithms allow (RSA of 2048 bits or more, P-256 or P-384,
// Ed25519), each with a kid of its own.
func TestParsePublicJWKS(t *testing.T) {
	set := func(t *testing.T, raws map[string]any) []byte {
		t.Helper()
		s := jwk.NewSet()
		for kid, raw := range raws {
			k, err := jwk.Import(raw)
			if err != nil {
				t.Fatal(err)
			}
			if kid != "" {
				_ = k.Set(jwk.KeyIDKey, kid)
			}
			_ = s.AddKey(k)
		}
		b, _ := json.Marshal(s)
		return b
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	two := set(t, map[string]any{"k-1": &p256.PublicKey})
	var twice map[string][]any
	if err := json.Unmarshal(two, &twice); err != nil {
		t.Fatal(err)
	}
	twice["keys"] = append(twice["keys"], twice["keys"][0])
	twiceJSON, _ := json.Marshal(twice)
	for _, tc := range []struct {
		name   string
		jwks   []byte
		refuse string // what the refusal says; "" to accept
	}{
		{"ok/p256-p384-rsa2048-ed25519", set(t, map[string]any{"a": &p256.PublicKey, "b": &p384.PublicKey, "c": &rsa2048.PublicKey, "d": edPub}), ""},
		{"fail/p521", set(t, map[string]any{"a": &p521.PublicKey}), "curve P-521 not accepted"},
		{"fail/rsa-1024", []byte(`{"keys":[{"kty":"RSA","kid":"a","e":"AQAB","n":"` + base64.RawURLEncoding.EncodeToString(rsa1024.N.Bytes()) + `"}]}`), "1024 bits"},
		{"fail/symmetric", set(t, map[string]any{"a": []byte("0123456789abcdef0123456789abcdef")}), "private key"}, // an HMAC secret
		{"fail/no-kid", set(t, map[string]any{"": &p256.PublicKey}), "has no kid"},
		{"fail/kid-twice", twiceJSON, `kid "k-1" appears twice`},
		{"fail/no-keys", []byte(`{"keys":[]}`), "no keys"},
		{"fail/member-twice", bytes.Replace(two, []byte(`"kid":`), []byte(`"kid":"k-0","kid":`), 1), `not a JWKS: duplicate member name "kid"`}, // jwk.Parse took the last
		{"fail/second-set", append(slices.Clone(two), two...), "not a JWKS: data after the document"},
		{"fail/private", set(t, map[string]any{"a": p256}), "private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := ParsePublicJWKS(tc.jwks)
			if tc.refuse == "" {
				if err != nil || keys.Len() != 4 {
					t.Fatalf("ParsePublicJWKS = %v, %v", keys, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.refuse) {
				t.Fatalf("ParsePublicJWKS: %v, want a refusal saying %q", err, tc.refuse)
			}
		})
	}
}

// FuzzParsePublicJWKS: a partner's JWKS, registered at onboarding, is
// foreign input. Whatever the bytes, parsing ends without a panic, and a
// set it accepts is strict JSON of public signature keys, each with its own
// kid.
func FuzzParsePublicJWKS(f *testing.F) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	s := jwk.NewSet()
	for kid, raw := range map[string]any{"ec-1": &p256.PublicKey, "ed-1": edPub} {
		k, _ := jwk.Import(raw)
		_ = k.Set(jwk.KeyIDKey, kid)
		_ = s.AddKey(k)
	}
	seed, _ := json.Marshal(s)
	f.Add(seed)
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`))
	f.Add(bytes.Replace(seed, []byte(`"kid":`), []byte(`"kid":"x","kid":`), 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		set, err := ParsePublicJWKS(b)
		if err != nil {
			return
		}
		if _, err := jsondoc.Parse(b, 0); err != nil {
			t.Fatalf("accepted a JWKS that is not strict JSON: %v", err)
		}
		kids := map[string]bool{}
		for i := range set.Len() {
			k, _ := set.Key(i)
			kid, _ := k.KeyID()
			if kid == "" || kids[kid] || isPrivate(k) || !jwsin.ForSignatures(k) {
				t.Fatalf("accepted key %d (kid %q): empty, repeated, private or not for signatures", i, kid)
			}
			kids[kid] = true
		}
	})
}
