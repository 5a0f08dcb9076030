package agencysoap

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
