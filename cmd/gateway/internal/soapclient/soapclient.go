// Package soapclient calls an agency-soap/v1 endpoint: one keep-alive HTTP
// client over mutual TLS with timeouts, WS-Security signing of every request,
// verification of every signed response, and SOAP Faults parsed whatever the
// HTTP status (SOAP 1.1 puts them in HTTP 500).
package soapclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/cmd/gateway/internal/retryafter"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

// Client calls one endpoint.
type Client struct {
	URL    string
	HTTP   *http.Client
	Signer *wssec.Signer
	// Verifier checks the responder's signature; its Trust decides the
	// responder's certificate.
	Verifier *wssec.Verifier
	// MaxResponse bounds the answer; 0: MaxResponseBytes.
	MaxResponse int
}

// MaxResponseBytes is the default bound of an agency's answer. The client
// reads one byte more, no further, so an endpoint cannot make the gateway
// hold more.
const MaxResponseBytes = 8 << 20

// ErrResponseTooLarge is Call's error for an answer over its bound.
// Sending again would not make it shorter.
var ErrResponseTooLarge = errors.New("response too large")

// Fault is a SOAP Fault received.
type Fault struct {
	FaultCode, Reason, Code, Location, MessageID string
	// RetryAfter is the detail's RetryAfterSeconds (server faults), at most
	// retryafter.Max; 0 when absent.
	RetryAfter time.Duration
}

func (f *Fault) Error() string {
	s := fmt.Sprintf("soap fault %s (%s): %s", f.Code, f.FaultCode, f.Reason)
	if f.Location != "" {
		s += " at " + f.Location
	}
	return s
}

// Response is a verified response.
type Response struct {
	Status int
	Body   *etree.Element // the Body child (nil for a fault)
	Fault  *Fault
	Raw    []byte
}

// Call signs doc (an envelope whose Body holds the request), posts it with
// the SOAPAction, and verifies the signed response.
func (c *Client) Call(ctx context.Context, action string, doc *etree.Document) (*Response, error) {
	if err := c.Signer.Sign(doc); err != nil {
		return nil, err
	}
	body, err := doc.WriteToBytes()
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", `"`+action+`"`)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	limit := c.MaxResponse
	if limit <= 0 {
		limit = MaxResponseBytes
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > limit {
		return &Response{Status: resp.StatusCode}, fmt.Errorf("soap: HTTP %d: response over %d bytes (the endpoint's max_response_bytes): %w", resp.StatusCode, limit, ErrResponseTooLarge)
	}
	out := &Response{Status: resp.StatusCode, Raw: raw}
	if !strings.Contains(resp.Header.Get("Content-Type"), "xml") {
		return out, fmt.Errorf("soap: HTTP %d without an XML envelope", resp.StatusCode)
	}
	rdoc, err := wssec.Parse(raw, wssec.Limits{MaxBytes: limit})
	if err != nil {
		return out, err
	}
	res, verr := c.Verifier.Verify(rdoc)
	if verr != nil {
		return out, fmt.Errorf("soap: the response signature is not accepted: %w", verr)
	}
	if res.BodyChild.Tag == "Fault" {
		out.Fault = parseFault(res.BodyChild)
		return out, nil
	}
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("soap: HTTP %d without a Fault", resp.StatusCode)
	}
	out.Body = res.BodyChild
	return out, nil
}

func parseFault(f *etree.Element) *Fault {
	out := &Fault{}
	text := func(path string) string {
		if e := f.FindElement(path); e != nil {
			return strings.TrimSpace(e.Text())
		}
		return ""
	}
	out.FaultCode = text("./faultcode")
	out.Reason = text("./faultstring")
	if out.FaultCode == "" { // SOAP 1.2
		out.FaultCode = text("./Code/Value")
		out.Reason = text("./Reason/Text")
	}
	out.Code = text(".//FaultDetail/Code")
	out.Location = text(".//FaultDetail/Location")
	out.MessageID = text(".//FaultDetail/MessageId")
	out.RetryAfter = retryafter.Seconds(text(".//FaultDetail/RetryAfterSeconds"))
	return out
}
