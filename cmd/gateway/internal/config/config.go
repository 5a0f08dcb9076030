// Package config reads the gateway's configuration file: listener, TLS,
// store, receipt key, limits and the partner registry. Relative paths are
// resolved against the file's directory. Every error names the file, the
// partner and the field, so an operator can fix it without reading code.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partner"
)

// File is the configuration file as written (JSON).
type File struct {
	Listen         string          `json:"listen"`
	Instance       string          `json:"instance"`
	TLS            TLS             `json:"tls"`
	Store          string          `json:"store"`
	ReceiptKeyFile string          `json:"receipt_key_file"`
	Limits         Limits          `json:"limits"`
	Kafka          Kafka           `json:"kafka"`
	OpsListen      string          `json:"ops_listen,omitempty"`
	SOAP           SOAP            `json:"soap"`
	Outbound       Outbound        `json:"outbound"`
	Operator       Operator        `json:"operator"`
	Partners       []PartnerConfig `json:"partners"`
}

// SOAP configures the agency exchange (agency-soap/v1).
type SOAP struct {
	Institution     string   `json:"institution,omitempty"` // default MY:PERKESO
	SigningCertFile string   `json:"signing_cert_file,omitempty"`
	SigningKeyFile  string   `json:"signing_key_file,omitempty"`
	TimestampSkew   Duration `json:"timestamp_skew,omitempty"`    // default 120s
	TimestampMaxTTL Duration `json:"timestamp_max_ttl,omitempty"` // default 300s
}

// Outbound configures delivery to partners.
type Outbound struct {
	ClientCertFile string `json:"client_cert_file,omitempty"` // the gateway's TLS client certificate towards partners
	ClientKeyFile  string `json:"client_key_file,omitempty"`
	Topic          string `json:"topic,omitempty"`        // default perkeso.outbound.v1
	StatusTopic    string `json:"status_topic,omitempty"` // default perkeso.delivery-status.v1
	// RequestSignersFile is the JWKS of the back office's public signing
	// keys: when set, a request on the outbound topic is taken only with a
	// detached JWS by one of them over its value (header "jws"), so that
	// writing to the topic is not enough to have Perkeso sign a message.
	RequestSignersFile string `json:"request_signers_file,omitempty"`
}

// Operator configures the operator listener (outbound requests without
// Kafka, the delivery queue): mutual TLS against the operators' CA.
type Operator struct {
	Listen       string   `json:"listen,omitempty"`
	ClientCAFile string   `json:"client_ca_file,omitempty"`
	AllowedCNs   []string `json:"allowed_cns,omitempty"`
	// CRLFiles are the operators' CAs' CRLs, one per file.
	CRLFiles []string `json:"crl_files,omitempty"`
	// Roles, when set, gives each name of AllowedCNs the parts of the API
	// it may use (OperatorRoles), and must name every one of them; absent,
	// every allowed name may use every route, as builds before it had. An
	// agency's answers hold medical reports, which an operator who retries
	// dead letters need not read.
	Roles map[string][]string `json:"roles,omitempty"`
}

// The parts of the operator API that operator.roles gives.
const (
	RoleSend    = "send"    // POST /v1/outbound: a message Perkeso signs
	RoleQueue   = "queue"   // the delivery list and retries
	RoleAnswers = "answers" // GET /v1/outbound/answer: what a partner answered, personal data among it
)

// OperatorRoles are the roles operator.roles may give.
var OperatorRoles = []string{RoleSend, RoleQueue, RoleAnswers}

// EndpointConfig is a partner's receiving endpoint and delivery policy.
type EndpointConfig struct {
	URL      string `json:"url"`
	Protocol string `json:"protocol"`          // json or soap
	CAFile   string `json:"ca_file,omitempty"` // CA of the endpoint's server certificate
	// CRLFiles are ca_file's CAs' CRLs, one per file: a server certificate
	// they revoke is refused.
	CRLFiles []string `json:"crl_files,omitempty"`
	// ClientCertFile and ClientKeyFile: the client certificate the gateway
	// presents to this endpoint, for a partner that issues its own (its
	// server trusts only its CA), instead of outbound.client_cert_file.
	ClientCertFile  string   `json:"client_cert_file,omitempty"`
	ClientKeyFile   string   `json:"client_key_file,omitempty"`
	Timeout         Duration `json:"timeout,omitempty"`
	MaxAttempts     int      `json:"max_attempts,omitempty"`
	BaseBackoff     Duration `json:"base_backoff,omitempty"`
	MaxBackoff      Duration `json:"max_backoff,omitempty"`
	Concurrency     int      `json:"concurrency,omitempty"`
	BreakerFailures int      `json:"breaker_failures,omitempty"`
	BreakerCooldown Duration `json:"breaker_cooldown,omitempty"`
	// MaxResponseBytes bounds what the gateway reads of an answer (absent:
	// 1 MiB JSON, 8 MiB SOAP).
	MaxResponseBytes int `json:"max_response_bytes,omitempty"`
}

// Kafka is the cluster the outbox relay publishes to.
type Kafka struct {
	Brokers []string   `json:"brokers"`
	Topics  KafkaTopic `json:"topics"`
	TLS     *KafkaTLS  `json:"tls,omitempty"`
	SASL    *KafkaSASL `json:"sasl,omitempty"`
	// MaxMessageBytes is the cluster's message.max.bytes (or the topics'
	// max.message.bytes), default Kafka's 1 MiB: the relay's record
	// batches stay within it, and the intake refuses a submission whose
	// event would not fit, since one the broker refused would stop the
	// relay for every event behind it.
	MaxMessageBytes int `json:"max_message_bytes,omitempty"`
	// Compression is the codec of the record batches the gateway produces:
	// none (the default, as Kafka's producers), gzip, snappy, lz4 or zstd.
	// Consumers decompress whatever a batch names, so it can change at any
	// restart. The events are JSON, alike within a batch: gzip takes a
	// tenth of their bytes on the brokers' disks and network (README).
	// MaxMessageBytes still bounds a batch before compression.
	Compression string `json:"compression,omitempty"`
}

// KafkaCompressions are the codecs kafka.compression may name.
var KafkaCompressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// DefaultKafkaMaxMessageBytes is Kafka's default message.max.bytes (less
// its 12 bytes of framing), which the embedded broker shares.
const DefaultKafkaMaxMessageBytes = 1 << 20

// MinKafkaMaxMessageBytes: below this even ordinary events would not fit.
const MinKafkaMaxMessageBytes = 64 << 10

// KafkaTopic names the topics (defaults in package events).
type KafkaTopic struct {
	Verified     string `json:"verified,omitempty"`
	Rejected     string `json:"rejected,omitempty"`
	CaseMessages string `json:"case_messages,omitempty"`
}

// KafkaTLS enables TLS to the brokers, with a client certificate if given.
type KafkaTLS struct {
	CAFile   string `json:"ca_file"`
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
}

// KafkaSASL enables SASL/SCRAM authentication.
type KafkaSASL struct {
	Mechanism    string `json:"mechanism"` // SCRAM-SHA-256 or SCRAM-SHA-512
	Username     string `json:"username"`
	PasswordFile string `json:"password_file"`
}

// TLS names the server certificate and the CA that issues partner client certificates.
type TLS struct {
	CertFile     string `json:"cert_file"`
	KeyFile      string `json:"key_file"`
	ClientCAFile string `json:"client_ca_file"`
	// CRLFiles are certificate revocation lists (PEM or DER) of the client
	// CAs; a revoked client certificate is refused in the handshake.
	CRLFiles []string `json:"crl_files,omitempty"`
}

// Limits bound what one request may cost.
type Limits struct {
	MaxBodyBytes      int64    `json:"max_body_bytes,omitempty"`
	MaxInflightBytes  int64    `json:"max_inflight_bytes,omitempty"`
	MaxConnections    int      `json:"max_connections,omitempty"` // on the partner listener; see connlimit
	ReadHeaderTimeout Duration `json:"read_header_timeout,omitempty"`
	ReadTimeout       Duration `json:"read_timeout,omitempty"`
	WriteTimeout      Duration `json:"write_timeout,omitempty"`
	IdleTimeout       Duration `json:"idle_timeout,omitempty"`
}

// PartnerConfig declares one partner.
type PartnerConfig struct {
	ID           string          `json:"id"`
	Kind         string          `json:"kind"`
	Country      string          `json:"country"`
	Formats      []string        `json:"formats"`
	TLSIdentity  TLSIdentity     `json:"tls_identity"`
	JWKSFile     string          `json:"jwks_file,omitempty"`
	JWKS         json.RawMessage `json:"jwks,omitempty"`
	UENs         []string        `json:"uens,omitempty"`
	AgentForUENs []string        `json:"agent_for_uens,omitempty"`
	// Insurers: the insurer codes they send for ("*": any, dev mode).
	InsurerCodes []string `json:"insurer_codes,omitempty"`
	// Agencies: institution id, the CA of their WS-Security signing
	// certificates, and optionally the certificates' SHA-256 fingerprints.
	Institution       string          `json:"institution,omitempty"`
	Endpoint          *EndpointConfig `json:"endpoint,omitempty"`
	SigningCAFile     string          `json:"signing_ca_file,omitempty"`
	SigningCertSHA256 []string        `json:"signing_cert_sha256,omitempty"`
	// SigningCRLFiles are the signing CAs' CRLs, one per file.
	SigningCRLFiles []string `json:"signing_crl_files,omitempty"`
}

// TLSIdentity binds a client certificate to the partner.
type TLSIdentity struct {
	SubjectCN string       `json:"subject_cn,omitempty"`
	DNSSAN    string       `json:"dns_san,omitempty"`
	SHA256    Fingerprints `json:"sha256,omitempty"`
}

// Fingerprints are certificate fingerprints, written as one string or a list
// of them: a partner renewing a pinned certificate is registered with both
// until it has switched, so that neither side waits on the other.
type Fingerprints []string

// UnmarshalJSON reads one fingerprint or a list.
func (f *Fingerprints) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*f = nil
		if one != "" { // "" is no pin, as it always was
			*f = Fingerprints{one}
		}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("tls_identity.sha256: must be a fingerprint (64 hex digits) or a list of them")
	}
	*f = list
	return nil
}

// Duration is a time.Duration written as "30s".
type Duration time.Duration

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`must be a duration string such as "30s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return fmt.Errorf("%q is not a positive duration", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Defaults.
const (
	DefaultListen       = "127.0.0.1:8443"
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxInflightBytes: one of the largest insurer batches (6 MiB)
	// and hundreds of notices (3-5 KB each) at once; see budget.
	DefaultMaxInflightBytes = 8 << 20
	// DefaultMaxConnections: a connection or two for each of hundreds of
	// partners, at 37-70 KB each when idle (see connlimit).
	DefaultMaxConnections = 1024
)

// Config is a loaded, checked configuration.
type Config struct {
	Path           string
	File           File
	Partners       *partner.Registry
	CertFile       string
	KeyFile        string
	ClientCAFile   string
	StorePath      string
	ReceiptKeyFile string
	// RequestSigners are the keys of outbound.request_signers_file (nil
	// when it is not set).
	RequestSigners jwk.Set
	// asRead is File as Load read it (defaults set, paths resolved), in
	// encoding/json's generic form: what a reload compares with
	// (RestartOnly), whatever a command then set in File for its run
	// (gateway dev's broker address and ops listener).
	asRead map[string]any
}

// Error is a configuration error located in the file.
type Error struct {
	File    string
	Partner string // partner id, or "partners[i]" when it has none
	Field   string
	Msg     string
}

func (e *Error) Error() string {
	s := "config " + e.File
	if e.Partner != "" {
		s += ": partner " + e.Partner
	}
	if e.Field != "" {
		s += ": field " + e.Field
	}
	return s + ": " + e.Msg
}

var (
	reID          = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	reCountry     = regexp.MustCompile(`^[A-Z]{2}$`)
	reSHA256      = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	reInsurerCode = regexp.MustCompile(`^[A-Z0-9]{3,12}$`)
	reInstitution = regexp.MustCompile(`^[A-Z]{2}:[A-Z0-9_]{2,20}$`)
	reUEN         = regexp.MustCompile(`^([0-9]{8}[A-Z]|(18|19|20)[0-9]{2}[0-9]{5}[A-Z]|[RST][0-9]{2}[A-Z]{2}[0-9]{4}[A-Z])$`)
)

// ValidPartnerID reports whether id is a partner id the configuration
// accepts: 1-64 of a-z 0-9 . _ -, starting with a letter or digit.
func ValidPartnerID(id string) bool { return reID.MatchString(id) }

// ValidInstitution reports whether id is an agency-soap/v1 institution id
// (TH:SSO).
func ValidInstitution(id string) bool { return reInstitution.MatchString(id) }

// Load reads and checks a configuration file.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(abs)
	if err != nil {
		return nil, &Error{File: abs, Msg: err.Error()}
	}
	// Read strictly first: encoding/json takes the last of a setting given
	// twice and stops after the first value, so a "partners" list or a
	// limit written twice, or a second object pasted after the first,
	// passed serve --check with one of them silently dropped.
	if _, err := jsondoc.Parse(b, 0); err != nil {
		return nil, &Error{File: abs, Msg: jsondoc.Reason(err) + lineOf(b, err)}
	}
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, &Error{File: abs, Msg: err.Error()}
	}
	c := &Config{Path: abs, File: f}
	rel := relativeTo(filepath.Dir(abs))
	for _, step := range []func() *Error{c.File.setDefaults, func() *Error { return c.resolve(rel) }} {
		if e := step(); e != nil {
			e.File = abs
			return nil, e
		}
	}
	c.asRead = tree(c.File)
	if c.Partners, err = c.loadPartners(rel); err != nil {
		return nil, err
	}
	if f := c.File.Outbound.RequestSignersFile; f != "" {
		kb, err := os.ReadFile(f)
		if err == nil {
			c.RequestSigners, err = ParsePublicJWKS(kb)
		}
		if err != nil {
			return nil, &Error{File: abs, Field: "outbound.request_signers_file", Msg: err.Error()}
		}
	}
	return c, nil
}

// lineOf says where in b a syntax error was found, as an editor counts
// (" (line 3, column 3)"), or nothing when the error is the whole file's.
func lineOf(b []byte, err error) string {
	var se *jsondoc.SyntaxError
	if !errors.As(err, &se) || se.Offset < 1 || se.Offset > len(b)+1 {
		return ""
	}
	before := b[:se.Offset-1]
	line := bytes.Count(before, []byte("\n")) + 1
	column := utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
	return fmt.Sprintf(" (line %d, column %d)", line, column)
}

// setDefaults fills in what the file leaves out and refuses a limit that
// cannot be meant.
func (f *File) setDefaults() *Error {
	if f.Listen == "" {
		f.Listen = DefaultListen
	}
	if f.Instance == "" {
		h, _ := os.Hostname()
		f.Instance = "jambatan@" + h
	}
	for _, e := range []*Error{ // in the file's order, the first one out of bounds
		bound("limits.max_body_bytes", &f.Limits.MaxBodyBytes, DefaultMaxBodyBytes, 1),
		bound("kafka.max_message_bytes", &f.Kafka.MaxMessageBytes, DefaultKafkaMaxMessageBytes, MinKafkaMaxMessageBytes),
		bound("limits.max_inflight_bytes", &f.Limits.MaxInflightBytes, DefaultMaxInflightBytes, 1),
		bound("limits.max_connections", &f.Limits.MaxConnections, DefaultMaxConnections, 1),
	} {
		if e != nil {
			return e
		}
	}
	for _, d := range []struct {
		v   *Duration
		def time.Duration
	}{{&f.Limits.ReadHeaderTimeout, 5 * time.Second}, {&f.Limits.ReadTimeout, 30 * time.Second}, {&f.Limits.WriteTimeout, 30 * time.Second}, {&f.Limits.IdleTimeout, 120 * time.Second}} {
		if *d.v == 0 {
			*d.v = Duration(d.def)
		}
	}
	if f.SOAP.Institution == "" {
		f.SOAP.Institution = "MY:PERKESO"
	}
	if f.Outbound.Topic == "" {
		f.Outbound.Topic = "perkeso.outbound.v1"
	}
	if f.Outbound.StatusTopic == "" {
		f.Outbound.StatusTopic = "perkeso.delivery-status.v1"
	}
	return nil
}

// bound sets *v to def when the file leaves it out (0) and refuses a value
// under least.
func bound[T int | int64](field string, v *T, def, least T) *Error {
	if *v == 0 {
		*v = def
	}
	if *v >= least {
		return nil
	}
	if least == 1 {
		return &Error{Field: field, Msg: "must be positive"}
	}
	return &Error{Field: field, Msg: fmt.Sprintf("must be at least %d", least)}
}

// resolve checks what is required and what goes together, and resolves
// every file the configuration names against its directory (rel).
func (c *Config) resolve(rel func(string) string) *Error {
	f := &c.File
	for _, r := range []struct{ field, v string }{{"tls.cert_file", f.TLS.CertFile}, {"tls.key_file", f.TLS.KeyFile},
		{"tls.client_ca_file", f.TLS.ClientCAFile}, {"receipt_key_file", f.ReceiptKeyFile}, {"store", f.Store}} {
		if r.v == "" { // reported in the file's order, the first missing one
			return &Error{Field: r.field, Msg: "is required"}
		}
	}
	c.CertFile, c.KeyFile, c.ClientCAFile = rel(f.TLS.CertFile), rel(f.TLS.KeyFile), rel(f.TLS.ClientCAFile)
	for i := range f.TLS.CRLFiles {
		f.TLS.CRLFiles[i] = rel(f.TLS.CRLFiles[i])
	}
	c.StorePath, c.ReceiptKeyFile = f.Store, rel(f.ReceiptKeyFile)
	if !strings.HasPrefix(f.Store, "postgres://") && !strings.HasPrefix(f.Store, "postgresql://") {
		c.StorePath = rel(f.Store)
	}
	f.SOAP.SigningCertFile, f.SOAP.SigningKeyFile = rel(f.SOAP.SigningCertFile), rel(f.SOAP.SigningKeyFile)
	f.Outbound.ClientCertFile, f.Outbound.ClientKeyFile = rel(f.Outbound.ClientCertFile), rel(f.Outbound.ClientKeyFile)
	f.Outbound.RequestSignersFile = rel(f.Outbound.RequestSignersFile)
	f.Operator.ClientCAFile = rel(f.Operator.ClientCAFile)
	for i := range f.Operator.CRLFiles {
		f.Operator.CRLFiles[i] = rel(f.Operator.CRLFiles[i])
	}
	if f.Operator.Listen != "" && (f.Operator.ClientCAFile == "" || len(f.Operator.AllowedCNs) == 0) {
		return &Error{Field: "operator", Msg: "client_ca_file and allowed_cns are required with listen"}
	}
	if err := checkRoles(f.Operator); err != nil {
		return err
	}
	if c := f.Kafka.Compression; c != "" && !slices.Contains(KafkaCompressions, c) {
		return &Error{Field: "kafka.compression", Msg: fmt.Sprintf("%q is none of %s", c, strings.Join(KafkaCompressions, ", "))}
	}
	if k := f.Kafka.TLS; k != nil {
		if k.CAFile == "" {
			return &Error{Field: "kafka.tls.ca_file", Msg: "is required with kafka.tls"}
		}
		if (k.CertFile == "") != (k.KeyFile == "") {
			return &Error{Field: "kafka.tls.cert_file", Msg: "cert_file and key_file go together"}
		}
		k.CAFile, k.CertFile, k.KeyFile = rel(k.CAFile), rel(k.CertFile), rel(k.KeyFile)
	}
	if sa := f.Kafka.SASL; sa != nil {
		if sa.Mechanism != "SCRAM-SHA-256" && sa.Mechanism != "SCRAM-SHA-512" {
			return &Error{Field: "kafka.sasl.mechanism", Msg: "must be SCRAM-SHA-256 or SCRAM-SHA-512"}
		}
		if sa.Username == "" || sa.PasswordFile == "" {
			return &Error{Field: "kafka.sasl", Msg: "username and password_file are required"}
		}
		sa.PasswordFile = rel(sa.PasswordFile)
	}
	return nil
}

// relativeTo resolves the configuration's relative paths against its
// directory, so a configuration reads the same from any working directory.
func relativeTo(dir string) func(string) string {
	return func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
}

// checkRoles holds operator.roles to operator.allowed_cns: a name given
// roles but not allowed is a typo, and an allowed name without roles would
// pass the handshake to be refused on every route.
func checkRoles(o Operator) *Error {
	if o.Roles == nil {
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(o.Roles)) {
		roles := o.Roles[name]
		if !slices.Contains(o.AllowedCNs, name) {
			return &Error{Field: "operator.roles", Msg: fmt.Sprintf("%q is not in allowed_cns", name)}
		}
		if len(roles) == 0 {
			return &Error{Field: "operator.roles", Msg: fmt.Sprintf("%q has no role: take it out of allowed_cns instead", name)}
		}
		for _, r := range roles {
			if !slices.Contains(OperatorRoles, r) {
				return &Error{Field: "operator.roles", Msg: fmt.Sprintf("%q: unknown role %q (one of %s)", name, r, strings.Join(OperatorRoles, ", "))}
			}
		}
	}
	for _, name := range o.AllowedCNs {
		if _, ok := o.Roles[name]; !ok {
			return &Error{Field: "operator.roles", Msg: fmt.Sprintf("%q is in allowed_cns but has no roles", name)}
		}
	}
	return nil
}
