package agencysoap

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
)

// Responses names the response element of each operation (§3).
var Responses = map[string]string{
	"NotifyInjury":       "InjuryAcknowledgement",
	"RequestInformation": "InformationReply",
	"NotifyDecision":     "Acknowledgement",
}

// maxDocument bounds a reply's Document, decoded (§6.3: at most 5 MiB).
const maxDocument = 5 << 20

// CheckResponse checks an agency's signed, non-fault answer to a request
// Perkeso sent: the right response element, the schema, its Sender and
// Receiver (§4), the response half of H1 (InReplyTo is the request's
// MessageId; CaseId as in §6, an assigned one prefixed with the Sender's
// institution id) and, for an
// InformationReply, C13 and C1 on its dates. It returns the first
// problem, or nil.
//
// A response that fails here is not a delivery: the gateway does not hand
// it to the back office as an answer.
func CheckResponse(req, resp *etree.Element) *Problem {
	want, ok := Responses[req.Tag]
	if !ok {
		return &Problem{Code: CodeSchema, Location: "/xb:" + req.Tag, Reason: "not a request of agency-soap/v1"}
	}
	if resp == nil || resp.Tag != want || resp.NamespaceURI() != NS {
		got := "nothing"
		if resp != nil {
			got = resp.Tag
		}
		return &Problem{Code: CodeSchema, Location: "/xb:" + want, Reason: "a " + req.Tag + " is answered with " + want + ", not " + got}
	}
	xs, err := schema.AgencySOAP()
	if err != nil {
		return &Problem{Code: CodeSchema, Location: "/xb:" + want, Reason: err.Error()}
	}
	if verr := xs.Validate(resp, "xb"); verr != nil {
		return &Problem{Code: CodeSchema, Location: verr.Path, Reason: verr.Reason}
	}
	rh, h := ReadHeader(req), ReadHeader(resp)
	hdr := child(resp, "Header")
	// §4: the answer comes from the institution asked, to the one asking.
	// (The signing certificate is the asked institution's: the client's
	// trust check.)
	switch {
	case h.Sender != rh.Receiver:
		return &Problem{Code: "client.sender.mismatch", Location: Location(hdr) + "/xb:Sender", Reason: "the response's Sender is not the institution the request went to"}
	case h.Receiver != rh.Sender:
		return &Problem{Code: "client.receiver.unknown", Location: Location(hdr) + "/xb:Receiver", Reason: "the response's Receiver is not the institution that sent the request"}
	}
	switch {
	case !h.HasInReplyTo || h.InReplyTo != rh.MessageID:
		return &Problem{Code: CodeContent, Location: Location(hdr) + "/xb:InReplyTo", Reason: "InReplyTo is not the request's MessageId"}
	case req.Tag == "NotifyInjury" && (!h.HasCaseID || h.CaseID == ""):
		return &Problem{Code: CodeContent, Location: Location(hdr) + "/xb:CaseId", Reason: "an InjuryAcknowledgement assigns the CaseId"}
	case req.Tag == "NotifyInjury" && !strings.HasPrefix(h.CaseID, h.Sender+":"):
		// §4: the receiver of the notification assigns the case id,
		// prefixed with its institution id; another prefix would name a
		// case of another institution (Perkeso's own among them).
		return &Problem{Code: CodeContent, Location: Location(hdr) + "/xb:CaseId", Reason: "the assigned CaseId is not prefixed with the Sender's institution id"}
	case req.Tag != "NotifyInjury" && h.CaseID != rh.CaseID:
		return &Problem{Code: CodeContent, Location: Location(hdr) + "/xb:CaseId", Reason: "the CaseId is not the request's"}
	}
	if want == "InformationReply" {
		return checkReply(req, resp)
	}
	return nil
}

// checkReply is C13: one reply item per requested item, same codes, same
// order, and each item's parts allowed by its code and outcome.
func checkReply(req, resp *etree.Element) *Problem {
	asked := childrenOf(child(req, "Request"), "Item")
	reply := child(resp, "Reply")
	items := childrenOf(reply, "Item")
	if len(items) != len(asked) {
		return &Problem{Code: CodeContent, Location: Location(reply), Reason: "the reply has a different number of items than the request"}
	}
	for i, it := range items {
		code := text(child(it, "Code"))
		if code != text(child(asked[i], "Code")) {
			return &Problem{Code: CodeContent, Location: Location(child(it, "Code")), Reason: "the item codes are not the request's, in its order"}
		}
		if m := child(it, "Month"); m != nil && code != "WAGES_6M" {
			return &Problem{Code: CodeContent, Location: Location(m), Reason: "Month only answers WAGES_6M"}
		}
		if s := child(it, "SickLeave"); s != nil && code != "SICK_LEAVE_PERIODS" {
			return &Problem{Code: CodeContent, Location: Location(s), Reason: "SickLeave only answers SICK_LEAVE_PERIODS"}
		}
		if p := replyDates(it); p != nil {
			return p
		}
		toFollow := text(child(it, "Outcome")) == "TO_FOLLOW"
		if e := child(it, "ExpectedBy"); (e != nil) != toFollow {
			loc := Location(it) + "/xb:ExpectedBy"
			if e != nil {
				loc = Location(e)
			}
			return &Problem{Code: CodeContent, Location: loc, Reason: "ExpectedBy is given if and only if the outcome is TO_FOLLOW"}
		}
		for _, d := range childrenOf(it, "Document") {
			if p := checkDocument(d); p != nil {
				return p
			}
		}
	}
	return nil
}

func checkDocument(d *etree.Element) *Problem {
	raw := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, d.Text())
	if base64.StdEncoding.DecodedLen(len(raw)) > maxDocument+3 {
		return &Problem{Code: CodeContent, Location: Location(d), Reason: "a Document is at most 5 MiB"}
	}
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(b) > maxDocument {
		return &Problem{Code: CodeContent, Location: Location(d), Reason: "a Document is base64 of at most 5 MiB"}
	}
	sum := sha256.Sum256(b)
	if want := d.SelectAttrValue("sha256", ""); hex.EncodeToString(sum[:]) != want {
		return &Problem{Code: CodeContent, Location: Location(d), Reason: "@sha256 is not the SHA-256 of the decoded Document"}
	}
	return nil
}

// replyDates is C1 for the dates of a reply item: each a real Gregorian
// date with a CE year of 1900-2100 after conversion (§5.2), a month's
// @period by its own @cal.
func replyDates(it *etree.Element) *Problem {
	bad := func(el *etree.Element, value, cal string) *Problem {
		if _, ok := mapping.CalDate(strings.TrimSpace(value), cal); ok {
			return nil
		}
		return &Problem{Code: CodeContent, Location: Location(el), Reason: "not a real date with a CE year of 1900-2100"}
	}
	for _, m := range childrenOf(it, "Month") {
		if p := bad(m, m.SelectAttrValue("period", "")+"-01", m.SelectAttrValue("cal", "")); p != nil {
			return p
		}
	}
	for _, sl := range childrenOf(it, "SickLeave") {
		for _, el := range []*etree.Element{child(sl, "From"), child(sl, "To")} {
			if p := bad(el, text(el), el.SelectAttrValue("cal", "")); p != nil {
				return p
			}
		}
	}
	if e := child(it, "ExpectedBy"); e != nil {
		return bad(e, text(e), e.SelectAttrValue("cal", ""))
	}
	return nil
}
