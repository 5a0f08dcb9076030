package wssec

import "fmt"

// Fault detail codes of agency-soap/v1 §8.1 that this layer decides.
const (
	CodeSchema         = "client.schema.invalid"
	CodeMissing        = "client.security.missing"
	CodeTimestamp      = "client.timestamp.invalid"
	CodeUntrusted      = "client.certificate.untrusted"
	CodeSignature      = "client.signature.invalid"
	CodeMustUnderstand = "mustUnderstand" // rendered as the SOAP MustUnderstand fault
)

// Codes lists the fault codes a refusal of this layer carries.
func Codes() []string {
	return []string{CodeSchema, CodeMissing, CodeTimestamp, CodeUntrusted, CodeSignature, CodeMustUnderstand}
}

// Error is a refusal with its fault code; Reason is safe to send.
type Error struct {
	Code   string
	Reason string
}

func (e *Error) Error() string { return "wssec: " + e.Code + ": " + e.Reason }

func fail(code, format string, args ...any) *Error {
	return &Error{Code: code, Reason: fmt.Sprintf(format, args...)}
}
