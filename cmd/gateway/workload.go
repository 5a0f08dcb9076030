package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/adapters/agencysoap"
	"github.com/perkeso/jambatan/adapters/insurerclaim"
	"github.com/perkeso/jambatan/adapters/sgemployer"
	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/devmode"
	"github.com/perkeso/jambatan/cmd/gateway/internal/loadgen"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

// workload is what loadtest sends as a partner: where and with which
// headers, what answers a new document, how many records each holds, the
// i-th document and how it is signed.
type workload struct {
	route       string
	header      http.Header
	created     int
	records     int
	presignRate float64       // documents a second a duration run signs for
	maxDuration time.Duration // the longest run its documents stay valid for (0: any)
	maxRequests int           // the most a run may sign, of --requests or for a duration (0: any)
	document    func(i int) []byte
	sign        func(doc []byte) ([]byte, error)
}

// fits refuses a run its documents would not outlive: one longer than
// maxDuration, by --duration or by --requests at --rate, or of more than
// maxRequests.
func (w workload) fits(dur time.Duration, requests int, rate float64) error {
	switch {
	case w.maxDuration > 0 && dur > w.maxDuration:
		return fmt.Errorf("--duration %s: at most %s", dur, w.maxDuration)
	case w.maxDuration > 0 && requests > 0 && rate > 0 && float64(requests)/rate > w.maxDuration.Seconds():
		return fmt.Errorf("--requests %d at --rate %v: over %s", requests, rate, w.maxDuration)
	case w.maxRequests > 0 && requests > w.maxRequests:
		return fmt.Errorf("--requests %d: at most %d", requests, w.maxRequests)
	}
	return nil
}

// loadPartner finds the partner loadtest sends as: id, or the first JWS
// partner sending format when id is empty.
func loadPartner(dir, id, format string) (*devmode.DevJSON, *devmode.DevJSONPartner, error) {
	if id == "" {
		return jsonPartner(dir, "", format)
	}
	d, err := devmode.ReadDevJSON(dir)
	if err != nil {
		return nil, nil, err
	}
	p, err := d.Partner(id)
	return d, p, err
}

// idMark stands for a document's id while its template is written out
// once; each document replaces it with its own. No id the formats allow
// holds '@', and a template holding idMark is refused rather than misread.
const idMark = "@ID@"

// workloadOf makes partner p's workload from tmpl (its format's example when
// nil; name is the template's file, for errors), each document's id made of
// prefix and its index.
func workloadOf(p *devmode.DevJSONPartner, tmpl []byte, name, prefix string) (workload, error) {
	if name == "" {
		name = "(the format's example)"
	}
	if bytes.Contains(tmpl, []byte(idMark)) {
		return workload{}, fmt.Errorf("--template %s: holds %q, which loadtest writes in place of its ids", name, idMark)
	}
	var w workload
	var marked []byte
	var err error
	switch p.Format {
	case sgemployer.Format, insurerclaim.Format:
		w, marked, err = jsonWorkload(p, tmpl)
	case agencysoap.Format:
		w, marked, err = soapWorkload(p, tmpl)
	default:
		return w, fmt.Errorf("partner %s sends %s, which loadtest does not", p.ID, p.Format)
	}
	if err != nil {
		return w, fmt.Errorf("--template %s: %w", name, err)
	}
	w.document = func(i int) []byte {
		return bytes.ReplaceAll(marked, []byte(idMark), []byte(prefix+strconv.Itoa(i)))
	}
	return w, nil
}

// jsonWorkload is an employer's or an insurer's, signed by its JWK in
// compact form. An employer's notice gets noticeId prefix+i; an insurer's
// batch gets batchId prefix+i and its claim k claimNo prefix+i-k, so no
// claim version repeats either. It returns the template with idMark in
// place of the ids, written out once (members in Go's order, values as
// written).
func jsonWorkload(p *devmode.DevJSONPartner, tmpl []byte) (workload, []byte, error) {
	var w workload
	var mark func(doc map[string]any) error // puts idMark in place of the ids
	switch p.Format {
	case sgemployer.Format:
		w = workload{route: "/v1/injury-notices", created: http.StatusAccepted, records: 1}
		if tmpl == nil {
			tmpl = sgemployer.Example()
		}
		mark = func(doc map[string]any) error {
			if _, ok := doc["noticeId"].(string); !ok {
				return errors.New("not a notice with a noticeId")
			}
			doc["noticeId"] = idMark
			return nil
		}
	default: // insurerclaim.Format
		w = workload{route: "/v1/insurer-claims", created: http.StatusOK}
		if tmpl == nil {
			tmpl = insurerclaim.Example()
		}
		mark = func(doc map[string]any) error {
			claims, _ := doc["claims"].([]any)
			if _, ok := doc["batchId"].(string); !ok || len(claims) == 0 {
				return errors.New("not a batch with a batchId and claims")
			}
			doc["batchId"] = idMark
			for k, c := range claims {
				claim, _ := c.(map[string]any)
				if _, ok := claim["claimNo"].(string); !ok {
					return fmt.Errorf("claim %d has no claimNo", k)
				}
				claim["claimNo"] = idMark + "-" + strconv.Itoa(k)
			}
			w.records = len(claims)
			return nil
		}
	}
	dec := json.NewDecoder(bytes.NewReader(tmpl))
	dec.UseNumber() // amounts and counts as written
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return w, nil, err
	}
	if err := mark(doc); err != nil {
		return w, nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return w, nil, err
	}
	key, err := partnerkit.LoadSigningKey(p.SigningJWK)
	if err != nil {
		return w, nil, err
	}
	w.presignRate = loadgen.DefaultPresignRate / float64(w.records) // the same records a second
	w.sign = func(doc []byte) ([]byte, error) {
		s, err := partnerkit.Sign(doc, key, partnerkit.Compact)
		return []byte(s), err
	}
	return w, bytes.TrimSpace(buf.Bytes()), nil
}

// soapWorkload is an agency's: NotifyInjury envelopes, each with MessageId
// prefix+i, signed with WS-Security by the agency's signing certificate as
// "gateway soap" signs them. Their timestamps are signed before the run and
// expire with wssec's default TTL, so a duration run is bounded below it.
func soapWorkload(p *devmode.DevJSONPartner, tmpl []byte) (workload, []byte, error) {
	w := workload{header: http.Header{"Content-Type": {"text/xml; charset=utf-8"}, "Soapaction": {`"` + agencysoap.NS + `#NotifyInjury"`}},
		created: http.StatusOK, records: 1, presignRate: soapPresignRate, maxDuration: soapMaxDuration, maxRequests: soapMaxRequests}
	u, err := url.Parse(p.SOAPURL)
	if err != nil {
		return w, nil, err
	}
	w.route = u.Path
	if tmpl == nil {
		tmpl = agencysoap.Example()
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(tmpl); err != nil {
		return w, nil, err
	}
	if h := doc.FindElement("/Envelope/Header"); h != nil {
		h.Parent().RemoveChild(h) // each message is signed afresh
	}
	id := doc.FindElement("/Envelope/Body/NotifyInjury/Header/MessageId")
	if id == nil {
		return w, nil, errors.New("not a NotifyInjury envelope with a MessageId")
	}
	id.SetText(idMark)
	marked, err := doc.WriteToBytes()
	if err != nil {
		return w, nil, err
	}
	cert, err := certs.LoadCertificates(p.SigningCert)
	if err != nil {
		return w, nil, err
	}
	key, err := certs.LoadKey(p.SigningKey)
	if err != nil {
		return w, nil, err
	}
	signer := &wssec.Signer{Cert: cert[0], Key: key}
	w.sign = func(b []byte) ([]byte, error) {
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(b); err != nil {
			return nil, err
		}
		if err := signer.Sign(doc); err != nil {
			return nil, err
		}
		return doc.WriteToBytes()
	}
	return w, marked, nil
}

// A SOAP duration run signs enough messages for soapPresignRate a second
// (an RSA signature each, far slower to make than a notice's), and runs at
// most soapMaxDuration: its messages' timestamps expire 5 minutes after
// they are signed. A run signs at most soapMaxRequests (a longer duration
// run ends when they are sent, pool_exhausted): here 24,000 took
// 14.7-14.9 s to sign, so 100,000 take about a minute, and the gateway
// answered 740-777 a second, about two minutes more. Unbounded, a 4-minute
// run signed for 2,000 a second would spend 5 minutes signing, and its
// first messages would be out of date before it began.
const (
	soapPresignRate = 2000
	soapMaxDuration = 4 * time.Minute
	soapMaxRequests = 100000
)
