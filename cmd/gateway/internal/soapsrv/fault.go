package soapsrv

import (
	"strconv"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

// Fault is a refusal rendered as a SOAP Fault with the spec's dotted code.
type Fault struct {
	Code      string // e.g. client.signature.invalid, or "mustUnderstand"
	Reason    string
	Location  string
	MessageID string
	Server    bool // soap:Server (else soap:Client)
	Retry     int  // RetryAfterSeconds for server faults
	// Cause is what failed inside the gateway, for its log line only
	// (never sent): a server fault's reason is written for the agency.
	Cause error
}

func (f *Fault) Error() string { return f.Code + ": " + f.Reason }

func faultFrom(e *wssec.Error) *Fault { return &Fault{Code: e.Code, Reason: e.Reason} }

// envelope builds the (unsigned) response envelope around a Body child.
func envelope(soapNS string, child *etree.Element) *etree.Document {
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	env := doc.CreateElement("soap:Envelope")
	env.CreateAttr("xmlns:soap", soapNS)
	env.CreateElement("soap:Header")
	body := env.CreateElement("soap:Body")
	body.AddChild(child)
	return doc
}

// faultElement renders a Fault for SOAP 1.1 or 1.2.
func faultElement(soapNS string, f *Fault) *etree.Element {
	// SOAP's own MustUnderstand fault has no dotted code of the
	// specification's; the nearest is client.schema.invalid (§8.1, order 1).
	dotted := f.Code
	if f.Code == "mustUnderstand" {
		dotted = "client.schema.invalid"
	}
	detail := etree.NewElement("xb:FaultDetail")
	detail.CreateAttr("xmlns:xb", nsXB)
	detail.CreateElement("xb:Code").SetText(dotted)
	if f.Location != "" {
		detail.CreateElement("xb:Location").SetText(f.Location)
	}
	if f.MessageID != "" {
		detail.CreateElement("xb:MessageId").SetText(f.MessageID)
	}
	if f.Server && f.Retry > 0 {
		detail.CreateElement("xb:RetryAfterSeconds").SetText(strconv.Itoa(f.Retry))
	}
	fe := etree.NewElement("soap:Fault")
	if soapNS == wssec.NSSoap12 {
		code := fe.CreateElement("soap:Code")
		v := "soap:Sender"
		switch {
		case f.Code == "mustUnderstand":
			v = "soap:MustUnderstand"
		case f.Server:
			v = "soap:Receiver"
		}
		code.CreateElement("soap:Value").SetText(v)
		sub := code.CreateElement("soap:Subcode").CreateElement("soap:Value")
		sub.CreateAttr("xmlns:xb", nsXB)
		sub.SetText("xb:" + dotted)
		r := fe.CreateElement("soap:Reason").CreateElement("soap:Text")
		r.CreateAttr("xml:lang", "en")
		r.SetText(f.Reason)
		fe.CreateElement("soap:Detail").AddChild(detail)
		return fe
	}
	fc := "soap:Client"
	switch {
	case f.Code == "mustUnderstand":
		fc = "soap:MustUnderstand"
	case f.Server:
		fc = "soap:Server"
	}
	fe.CreateElement("faultcode").SetText(fc)
	fs := fe.CreateElement("faultstring")
	fs.CreateAttr("xml:lang", "en")
	fs.SetText(f.Reason)
	fe.CreateElement("detail").AddChild(detail)
	return fe
}
