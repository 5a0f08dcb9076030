// Package config reads the gateway's configuration file: listener, TLS,
// store, receipt key, limits and the partner registry. Relative paths are
// resolved against the file's directory. Every error names the file, the
// partner and the field, so an operator can fix it without reading code.
package config

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
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

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/jwsin"
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

// loadPartners reads each partner's registration, its files resolved here
// once, like the others, so that what reads c.File (the expiry gauges,
// certs list) takes them as they are.
func (c *Config) loadPartners(rel func(string) string) (*partner.Registry, error) {
	ps := make([]*partner.Partner, 0, len(c.File.Partners))
	seen := map[string]bool{}
	for i := range c.File.Partners {
		pc := &c.File.Partners[i]
		pc.JWKSFile, pc.SigningCAFile = rel(pc.JWKSFile), rel(pc.SigningCAFile)
		for j, f := range pc.SigningCRLFiles {
			pc.SigningCRLFiles[j] = rel(f)
		}
		if e := pc.Endpoint; e != nil {
			e.CAFile, e.ClientCertFile, e.ClientKeyFile = rel(e.CAFile), rel(e.ClientCertFile), rel(e.ClientKeyFile)
			for j, f := range e.CRLFiles {
				e.CRLFiles[j] = rel(f)
			}
		}
		p, err := loadPartner(c.Path, i, *pc)
		if err != nil {
			return nil, err
		}
		if seen[p.ID] {
			return nil, &Error{File: c.Path, Partner: p.ID, Field: "id", Msg: "is declared twice"}
		}
		seen[p.ID] = true
		ps = append(ps, p)
	}
	return partner.NewRegistry(ps), nil
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

// loadPartner checks the i-th partner of the configuration file abs (its
// file paths resolved) and builds its registry entry: identity, keys, what
// it may submit for, and its delivery endpoint.
func loadPartner(abs string, i int, pc PartnerConfig) (*partner.Partner, error) {
	who := pc.ID
	if who == "" {
		who = fmt.Sprintf("partners[%d]", i)
	}
	var fail failFunc = func(field, format string, args ...any) error {
		return &Error{File: abs, Partner: who, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if !ValidPartnerID(pc.ID) {
		return nil, fail("id", "must be 1-64 of a-z 0-9 . _ -, starting with a letter or digit")
	}
	switch pc.Kind {
	case partner.KindEmployer, partner.KindInsurer, partner.KindAgency:
	default:
		return nil, fail("kind", "must be employer, insurer or agency, not %q", pc.Kind)
	}
	if !reCountry.MatchString(pc.Country) {
		return nil, fail("country", "must be an ISO 3166-1 alpha-2 code")
	}
	if len(pc.Formats) == 0 {
		return nil, fail("formats", "must list at least one format")
	}
	for _, fm := range pc.Formats {
		if !adapters.Known(fm) {
			return nil, fail("formats", "unknown format %q (this build reads %v)", fm, adapters.Formats())
		}
	}
	id := pc.TLSIdentity
	if id.SubjectCN == "" && id.DNSSAN == "" && len(id.SHA256) == 0 {
		return nil, fail("tls_identity", "must set subject_cn, dns_san or sha256")
	}
	for i, f := range id.SHA256 {
		if !reSHA256.MatchString(f) {
			return nil, fail(fmt.Sprintf("tls_identity.sha256[%d]", i), "must be 64 hex digits")
		}
	}
	keys, err := partnerKeys(pc, fail)
	if err != nil {
		return nil, err
	}
	p := &partner.Partner{ID: pc.ID, Kind: pc.Kind, Country: pc.Country, Formats: pc.Formats,
		Identity: partner.Identity{SubjectCN: id.SubjectCN, DNSSAN: id.DNSSAN, SHA256: id.SHA256},
		Keys:     keys, UENs: map[string]bool{}}
	if err := scope(p, pc, fail); err != nil {
		return nil, err
	}
	if e := pc.Endpoint; e != nil {
		ep, err := loadEndpoint(e, pc.Kind, fail)
		if err != nil {
			return nil, err
		}
		p.Endpoint = ep
	}
	switch {
	case pc.Kind == partner.KindAgency:
		if err := agencySigning(p, pc, fail); err != nil {
			return nil, err
		}
	case pc.Institution != "" || pc.SigningCAFile != "" || len(pc.SigningCertSHA256) > 0 || len(pc.SigningCRLFiles) > 0:
		// Set on another kind they would be ignored, a revocation with them.
		return nil, fail("kind", "only an agency has institution, signing_ca_file, signing_cert_sha256 and signing_crl_files")
	}
	return p, nil
}

// failFunc reports a problem with one field of a partner's registration.
type failFunc func(field, format string, args ...any) error

// partnerKeys reads a partner's public JWS keys, given in the file or in
// a file of their own; an agency, which signs with X.509, may have none.
func partnerKeys(pc PartnerConfig, fail failFunc) (jwk.Set, error) {
	switch {
	case pc.JWKSFile != "" && len(pc.JWKS) > 0:
		return nil, fail("jwks", "set jwks or jwks_file, not both")
	case pc.JWKSFile != "":
		kb, err := os.ReadFile(pc.JWKSFile)
		if err != nil {
			return nil, fail("jwks_file", "%v", err)
		}
		keys, err := ParsePublicJWKS(kb)
		if err != nil {
			return nil, fail("jwks_file", "%v", err)
		}
		return keys, nil
	case len(pc.JWKS) > 0:
		keys, err := ParsePublicJWKS(pc.JWKS)
		if err != nil {
			return nil, fail("jwks", "%v", err)
		}
		return keys, nil
	case pc.Kind != partner.KindAgency:
		return nil, fail("jwks", "is required (or jwks_file)")
	}
	return jwk.NewSet(), nil // agencies sign with X.509 (WS-Security), not JWS
}

// scope sets what a partner may report for: its UENs (and, as an agent,
// others' or "*" for any), and its insurer codes ("*" for any).
func scope(p *partner.Partner, pc PartnerConfig, fail failFunc) error {
	for _, l := range []struct {
		field string
		uens  []string
	}{{"uens", pc.UENs}, {"agent_for_uens", pc.AgentForUENs}} {
		for _, u := range l.uens {
			switch {
			case u == "*" && l.field == "agent_for_uens":
				p.AnyUEN = true
			case reUEN.MatchString(u):
				p.UENs[u] = true
			default:
				return fail(l.field, "%q is not a UEN", u)
			}
		}
	}
	p.InsurerCodes = map[string]bool{}
	for _, code := range pc.InsurerCodes {
		switch {
		case code == "*":
			p.AnyInsurer = true
		case reInsurerCode.MatchString(code):
			p.InsurerCodes[code] = true
		default:
			return fail("insurer_codes", "%q is not an insurer code", code)
		}
	}
	return nil
}

// agencySigning sets an agency's institution and what its WS-Security
// signatures must chain to (its signing CA file) or be pinned to.
func agencySigning(p *partner.Partner, pc PartnerConfig, fail failFunc) error {
	if !reInstitution.MatchString(pc.Institution) {
		return fail("institution", "an agency needs an institution id such as TH:SSO")
	}
	if pc.SigningCAFile == "" {
		return fail("signing_ca_file", "an agency needs the CA of its WS-Security signing certificates")
	}
	cas, err := certs.LoadCertificates(pc.SigningCAFile)
	if err != nil {
		return fail("signing_ca_file", "%v", err)
	}
	p.Institution, p.SigningCAs, p.SigningCACerts = pc.Institution, x509.NewCertPool(), cas
	for _, c := range cas {
		p.SigningCAs.AddCert(c)
	}
	p.SigningPins = map[string]bool{}
	for _, f := range pc.SigningCertSHA256 {
		if !reSHA256.MatchString(f) {
			return fail("signing_cert_sha256", "%q is not 64 hex digits", f)
		}
		p.SigningPins[strings.ToLower(f)] = true
	}
	if p.SigningCRLs, err = certs.LoadCRLs(pc.SigningCRLFiles, cas); err != nil {
		return fail("signing_crl_files", "%v", err)
	}
	p.SigningCRLFiles, p.SigningRevoked = pc.SigningCRLFiles, certs.NewRevocations(p.SigningCRLs)
	return nil
}

// MinResponseBytes and MaxResponseBytes bound an endpoint's
// max_response_bytes: an answer is read whole into memory (and a SOAP
// one parsed and canonicalised, a few times its size), once for each
// attempt under way.
const (
	MinResponseBytes = 64 << 10
	MaxResponseBytes = 256 << 20
)

// loadEndpoint checks a partner's delivery endpoint and policy; fail
// locates an error in the partner's entry.
func loadEndpoint(e *EndpointConfig, kind string, fail failFunc) (*partner.Endpoint, error) {
	if !strings.HasPrefix(e.URL, "https://") {
		return nil, fail("endpoint.url", "must be an https URL")
	}
	if e.Protocol != "json" && e.Protocol != "soap" {
		return nil, fail("endpoint.protocol", "must be json or soap")
	}
	if e.Protocol == "soap" && kind != partner.KindAgency {
		return nil, fail("endpoint.protocol", "soap is for agencies")
	}
	for _, n := range []struct {
		field string
		v     int
	}{{"max_attempts", e.MaxAttempts}, {"concurrency", e.Concurrency}, {"breaker_failures", e.BreakerFailures}} {
		if n.v < 0 {
			return nil, fail("endpoint."+n.field, "must be positive (or absent for the default)")
		}
	}
	if e.MaxResponseBytes != 0 && (e.MaxResponseBytes < MinResponseBytes || e.MaxResponseBytes > MaxResponseBytes) {
		return nil, fail("endpoint.max_response_bytes", "must be %d to %d (or absent for the default)", MinResponseBytes, MaxResponseBytes)
	}
	ep := partner.Endpoint{URL: e.URL, Protocol: e.Protocol, Timeout: time.Duration(e.Timeout), MaxAttempts: e.MaxAttempts,
		BaseBackoff: time.Duration(e.BaseBackoff), MaxBackoff: time.Duration(e.MaxBackoff), Concurrency: e.Concurrency,
		BreakerFailures: e.BreakerFailures, BreakerCooldown: time.Duration(e.BreakerCooldown), MaxResponseBytes: e.MaxResponseBytes}
	// Compared as they will apply, defaults filled in: a base_backoff over
	// the default max_backoff would be cut to it without a word.
	if eff := ep.WithDefaults(); eff.MaxBackoff < eff.BaseBackoff {
		return nil, fail("endpoint.max_backoff", "%s must not be shorter than base_backoff %s (absent: the default)", eff.MaxBackoff, eff.BaseBackoff)
	}
	if e.CAFile != "" {
		cas, err := certs.LoadCertificates(e.CAFile)
		if err != nil {
			return nil, fail("endpoint.ca_file", "%v", err)
		}
		ep.RootCAs, ep.CACerts = x509.NewCertPool(), cas
		for _, c := range cas {
			ep.RootCAs.AddCert(c)
		}
	}
	if len(e.CRLFiles) > 0 && e.CAFile == "" {
		return nil, fail("endpoint.crl_files", "needs ca_file: a CRL is taken from a CA named there")
	}
	var err error
	if ep.CRLs, err = certs.LoadCRLs(e.CRLFiles, ep.CACerts); err != nil {
		return nil, fail("endpoint.crl_files", "%v", err)
	}
	ep.CRLFiles, ep.Revoked = e.CRLFiles, certs.NewRevocations(ep.CRLs)
	switch {
	case e.ClientCertFile == "" && e.ClientKeyFile == "":
	case e.ClientCertFile == "":
		return nil, fail("endpoint.client_cert_file", "required with client_key_file")
	case e.ClientKeyFile == "":
		return nil, fail("endpoint.client_key_file", "required with client_cert_file")
	default:
		c, err := certs.LoadKeyPair(e.ClientCertFile, e.ClientKeyFile)
		if err != nil {
			return nil, fail("endpoint.client_cert_file", "%v", err)
		}
		ep.ClientCert = &c
	}
	return &ep, nil
}

// ParsePublicJWKS reads a partner's JWKS: public keys only, each with a
// unique kid, of a type the intake accepts (EC P-256/P-384, Ed25519, RSA of
// at least 2048 bits).
func ParsePublicJWKS(b []byte) (jwk.Set, error) {
	// A key with a member given twice (two "x", two "kid") is two keys to
	// two readers; jwk.Parse takes the last without a word.
	if _, err := jsondoc.Parse(b, 0); err != nil {
		return nil, errors.New("not a JWKS: " + jsondoc.Reason(err))
	}
	set, err := jwk.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("not a JWKS: %w", err)
	}
	if set.Len() == 0 {
		return nil, errors.New("JWKS has no keys")
	}
	kids := map[string]bool{}
	for i := range set.Len() {
		k, _ := set.Key(i)
		kid, ok := k.KeyID()
		if !ok || kid == "" {
			return nil, fmt.Errorf("key %d has no kid", i)
		}
		if kids[kid] {
			return nil, fmt.Errorf("kid %q appears twice", kid)
		}
		kids[kid] = true
		if _, err := jwk.PublicRawKeyOf(k); err != nil {
			return nil, fmt.Errorf("key %q: %w", kid, err)
		}
		if isPrivate(k) {
			return nil, fmt.Errorf("key %q is a private key; register only public keys", kid)
		}
		if !jwsin.ForSignatures(k) {
			return nil, fmt.Errorf("key %q is not for verifying signatures (its use or key_ops says otherwise)", kid)
		}
		var raw any
		if err := jwk.Export(k, &raw); err != nil {
			return nil, fmt.Errorf("key %q: %w", kid, err)
		}
		switch rk := raw.(type) {
		case *rsa.PublicKey:
			if rk.N.BitLen() < 2048 {
				return nil, fmt.Errorf("key %q: RSA key of %d bits; at least 2048 required", kid, rk.N.BitLen())
			}
		case *ecdsa.PublicKey:
			if n := rk.Curve.Params().Name; n != "P-256" && n != "P-384" {
				return nil, fmt.Errorf("key %q: curve %s not accepted", kid, n)
			}
		case ed25519.PublicKey:
		default:
			return nil, fmt.Errorf("key %q: key type %T not accepted", kid, raw)
		}
	}
	return set, nil
}

func isPrivate(k jwk.Key) bool {
	switch k.(type) {
	case jwk.RSAPrivateKey, jwk.ECDSAPrivateKey, jwk.OKPPrivateKey, jwk.SymmetricKey:
		return true
	}
	return false
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
