package agencysoap

import "encoding/xml"

// The thin layer over what gowsdl v0.5.0 gets wrong; the generated file is
// never edited by hand.
//
//   - xs:positiveInteger has no Go type in gowsdl's mapping: PositiveInteger.
//   - Required elements come out with omitempty and as pointers, enumerations
//     as plain strings: Validate (validate.go) enforces what the XSD requires
//     and the closed lists, and the exported constants below name the
//     enumeration values.

// PositiveInteger is xs:positiveInteger.
type PositiveInteger uint64

// SOAP actions of the three operations (agency-soap/v1 §2).
const (
	ActionNotifyInjury       = "urn:xb-injury:exchange:v1#NotifyInjury"
	ActionRequestInformation = "urn:xb-injury:exchange:v1#RequestInformation"
	ActionNotifyDecision     = "urn:xb-injury:exchange:v1#NotifyDecision"
	Namespace                = "urn:xb-injury:exchange:v1"
)

// gowsdl v0.5.0 generates a single pointer for an element whose maxOccurs
// is a number greater than one (Notification/Injury, Outcome/SickLeave,
// Person/ForeignId, Request/Item, Reply/Item, ...): a second occurrence would
// be lost in decoding. The gateway therefore reads requests as trees
// (adapters/agencysoap) and uses these corrected types where it writes a
// repeated element.

// InformationReplyMsg is xb:InformationReply with a repeatable Reply/Item.
type InformationReplyMsg struct {
	XMLName xml.Name       `xml:"urn:xb-injury:exchange:v1 InformationReply"`
	Header  *MessageHeader `xml:"Header"`
	Reply   *ReplyItems    `xml:"Reply"`
}

// ReplyItems is xb:Reply with its 1..10 items.
type ReplyItems struct {
	Item []*ReplyItem `xml:"Item"`
}
