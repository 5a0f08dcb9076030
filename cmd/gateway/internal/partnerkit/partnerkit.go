// Package partnerkit is what a partner's engineer needs on their side:
// signing a document with their private JWK, posting it to the gateway over
// mutual TLS, and verifying the receipt that comes back. "gateway sign",
// "gateway submit" and "gateway receipt verify" are thin wrappers over it.
package partnerkit

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-resty/resty/v2"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/jwsin"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/retryafter"
)

// Kit is the files of a partner's onboarding kit, as "gateway certs kit"
// writes them and the partner tools read them: the client certificate and
// key, and a JSON partner's signing JWK and public JWKS, or an agency's
// WS-Security signing certificate and key.
type Kit struct {
	Dir, ClientCert, ClientKey, SigningJWK, PublicJWKS, SigningCert, SigningKey string
}

// KitIn is the kit in a directory.
func KitIn(dir string) Kit {
	j := func(name string) string { return filepath.Join(dir, name) }
	return Kit{Dir: dir, ClientCert: j("client.pem"), ClientKey: j("client.key"), SigningJWK: j("signing.jwk.json"),
		PublicJWKS: j("jwks.json"), SigningCert: j("ws-signing.pem"), SigningKey: j("ws-signing.key")}
}

// Form is how a document is signed for transport.
type Form int

// The agreed forms.
const (
	Compact           Form = iota // body = compact JWS (application/jose)
	Detached                      // body = document, X-JWS-Signature = detached JWS
	DetachedUnencoded             // as Detached, with "b64": false (RFC 7797)
)

// WriteSigningKey writes a new ES256 signing key with kid as a private JWK
// (privPath, the partner's alone) and its public half as the JWKS Perkeso
// registers (pubPath): a partner kit's signing.jwk.json and jwks.json, and
// the dev back office's pair.
func WriteSigningKey(privPath, pubPath, kid string) error {
	priv, err := receipt.NewES256Key(kid)
	if err != nil {
		return err
	}
	pub, err := jwk.PublicKeyOf(priv)
	if err != nil {
		return err
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		v    any
		mode os.FileMode
	}{{privPath, priv, 0o600}, {pubPath, set, 0o644}} {
		b, err := json.MarshalIndent(f.v, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(f.path, append(b, '\n'), f.mode); err != nil {
			return err
		}
	}
	return nil
}

// LoadSigningKey reads a private JWK; it must carry a kid and an alg.
func LoadSigningKey(path string) (jwk.Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := jwk.ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if kid, ok := k.KeyID(); !ok || kid == "" {
		return nil, fmt.Errorf("%s: the JWK has no kid", path)
	}
	return k, nil
}

func algOf(k jwk.Key) (jwa.SignatureAlgorithm, error) {
	if a, ok := k.Algorithm(); ok {
		if sa, ok := jwa.LookupSignatureAlgorithm(a.String()); ok {
			return sa, nil
		}
	}
	switch k.(type) {
	case jwk.ECDSAPrivateKey:
		return jwa.ES256(), nil
	case jwk.OKPPrivateKey:
		return jwa.EdDSA(), nil
	case jwk.RSAPrivateKey:
		return jwa.PS256(), nil
	}
	return jwa.SignatureAlgorithm{}, fmt.Errorf("cannot sign with a %T", k)
}

// Sign signs a document. For Compact it returns the JWS; for the detached
// forms the JWS with an empty payload part, to send in X-JWS-Signature.
func Sign(doc []byte, key jwk.Key, form Form) (string, error) {
	alg, err := algOf(key)
	if err != nil {
		return "", err
	}
	kid, _ := key.KeyID()
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, kid)
	_ = h.Set(jws.TypeKey, "JOSE")
	if form == DetachedUnencoded {
		_ = h.Set("b64", false)
		_ = h.Set(jws.CriticalKey, []string{"b64"})
	}
	opts := []jws.SignOption{jws.WithKey(alg, key, jws.WithProtectedHeaders(h))}
	payload := doc
	if form != Compact {
		opts = append(opts, jws.WithDetachedPayload(doc))
		payload = nil
	}
	out, err := jws.Sign(payload, opts...)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// Client posts to a gateway over mutual TLS.
type Client struct {
	BaseURL string
	// OnRetry, when set, hears of each request about to be sent again
	// (status 503; attempt counts the sends so far).
	OnRetry func(status, attempt int)
	r       *resty.Client
}

// Route is the path a document is posted to, by its "format" member: an
// insurer's batch to /v1/insurer-claims, anything else (an employer's notice,
// or what the gateway will refuse for its format) to /v1/injury-notices.
func Route(doc []byte) string {
	var d struct {
		Format string `json:"format"`
	}
	if json.Unmarshal(doc, &d) == nil && d.Format == "insurer-claim/v1" {
		return "/v1/insurer-claims"
	}
	return "/v1/injury-notices"
}

// TLSConfig is a partner's side of mutual TLS: trust caCert (the system's
// roots when it is ""), present the partner's certificate.
func TLSConfig(caCertFile, clientCertFile, clientKeyFile string) (*tls.Config, error) {
	var pool *x509.CertPool // nil: the system's roots
	if caCertFile != "" {
		caPEM, err := os.ReadFile(caCertFile)
		if err != nil {
			return nil, err
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("%s: no certificate", caCertFile)
		}
	}
	cert, err := certs.LoadKeyPair(clientCertFile, clientKeyFile)
	if err != nil {
		return nil, err
	}
	return certs.ClientConfig(pool, cert), nil
}

// NewClient builds a client that trusts caCert and presents the partner's certificate.
func NewClient(baseURL, caCertFile, clientCertFile, clientKeyFile string) (*Client, error) {
	tc, err := TLSConfig(caCertFile, clientCertFile, clientKeyFile)
	if err != nil {
		return nil, err
	}
	r := resty.New().
		SetBaseURL(strings.TrimSuffix(baseURL, "/")).
		SetTimeout(30 * time.Second).
		SetTLSClientConfig(tc).
		SetResponseBodyLimit(maxAnswerBytes).
		// A redirect is the answer: followed, a 307 or 308 would send the
		// notice again to wherever it points, plain HTTP included.
		SetRedirectPolicy(resty.RedirectPolicyFunc(func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse })).
		// A 503 (the gateway busy, or its message log unavailable) accepted
		// nothing: send again after the Retry-After the gateway gives, up to
		// Retries times. Nothing else is retried, not even a lost
		// connection, so a caller sees every other outcome as it was.
		SetRetryCount(Retries).
		SetRetryWaitTime(time.Second).
		SetRetryMaxWaitTime(10 * time.Second).
		AddRetryCondition(func(resp *resty.Response, err error) bool {
			return err == nil && resp.StatusCode() == http.StatusServiceUnavailable
		}).
		SetRetryAfter(retryAfter).
		SetLogger(Silent{})
	c := &Client{BaseURL: baseURL, r: r}
	r.AddRetryHook(func(resp *resty.Response, _ error) {
		// resty calls the hooks after the last send too, with no send to follow.
		if c.OnRetry != nil && resp != nil && resp.Request.Attempt <= Retries {
			c.OnRetry(resp.StatusCode(), resp.Request.Attempt)
		}
	})
	return c, nil
}

// Silent is a resty.Logger that writes nothing. resty's own logger writes
// failures to stderr in a format of its own: a partner tool that could not
// connect printed "WARN RESTY …" and "ERROR RESTY …" before its own error,
// the same failure three times. The caller returns every error and reports
// it once, in its own words (a tool's error line, the deliverer's JSON log
// line for an attempt).
type Silent struct{}

func (Silent) Errorf(string, ...any) {}
func (Silent) Warnf(string, ...any)  {}
func (Silent) Debugf(string, ...any) {}

// maxAnswerBytes bounds what the partner tools read: an answer of the
// gateway (a receipt, at most 100 problems), a JWKS.
const maxAnswerBytes = 1 << 20

// Retries is how many times a request answered 503 is sent again.
const Retries = 3

// retryAfter is the gateway's Retry-After (whole seconds, what it sends);
// none leaves the wait to the client's backoff.
func retryAfter(_ *resty.Client, resp *resty.Response) (time.Duration, error) {
	return max(0, retryafter.Parse(resp.Header().Get("Retry-After"))), nil
}

// Response is the gateway's answer.
type Response struct {
	Status        int
	ContentType   string
	CorrelationID string
	Body          []byte
}

// Submit signs doc with key in the given form and posts it to path.
func (c *Client) Submit(path string, doc []byte, key jwk.Key, form Form) (*Response, error) {
	sig, err := Sign(doc, key, form)
	if err != nil {
		return nil, err
	}
	req := c.r.R()
	if form == Compact {
		req.SetHeader("Content-Type", "application/jose").SetBody([]byte(sig))
	} else {
		req.SetHeader("Content-Type", "application/json").SetHeader("X-JWS-Signature", sig).SetBody(doc)
	}
	return do(req, http.MethodPost, path)
}

// Raw posts a body with the given headers as they are (for tests and tooling).
func (c *Client) Raw(method, path string, headers map[string]string, body []byte) (*Response, error) {
	req := c.r.R().SetHeaders(headers)
	if body != nil {
		req.SetBody(body)
	}
	return do(req, method, path)
}

func do(req *resty.Request, method, path string) (*Response, error) {
	resp, err := req.Execute(method, path)
	if err != nil {
		return nil, err
	}
	return &Response{Status: resp.StatusCode(), ContentType: resp.Header().Get("Content-Type"),
		CorrelationID: resp.Header().Get("X-Correlation-ID"), Body: resp.Body()}, nil
}

// FetchJWKS reads a JWKS from a file or an https URL (with the client's TLS).
func (c *Client) FetchJWKS(url string) (jwk.Set, error) {
	resp, err := c.r.R().Get(url)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode() != 200 {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status())
	}
	return jwk.Parse(resp.Body())
}

// ReadJWKS reads a JWKS file.
func ReadJWKS(path string) (jwk.Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxAnswerBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxAnswerBytes {
		return nil, fmt.Errorf("%s: a JWKS over %d bytes", path, maxAnswerBytes)
	}
	return jwk.Parse(b)
}

// Accepted is the success body of a submission.
type Accepted struct {
	Status   string `json:"status"`
	RecordID string `json:"recordId"`
	Receipt  string `json:"receipt"`
}

// DecodeAccepted reads a 200/202 body.
func DecodeAccepted(b []byte) (*Accepted, error) {
	var a Accepted
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// VerifyWith verifies a compact JWS with a key chosen by kid from set
// only, under the rules the gateway applies to what partners send it
// (jwsin): one signature, an algorithm from the allowlist that fits the
// key, no key taken from the header.
func VerifyWith(compact string, set jwk.Set) ([]byte, error) {
	v, err := jwsin.Verify(jwsin.Message{Form: jwsin.FormCompact, JWS: compact}, set)
	if err != nil {
		return nil, err
	}
	return v.Payload, nil
}
