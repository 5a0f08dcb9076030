// Package adapters defines the contract between the gateway and the partner
// formats it accepts. Each format lives in its own package, registers itself
// by format id in init, and is enabled by a blank import in cmd/gateway.
//
// An adapter reads a partner's document, reports every problem it finds in
// the order the format's specification gives, names the party the sender must
// be authorised for, and maps a valid document to the canonical record.
package adapters

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
)

// Problem codes shared by the JSON formats (sg-employer-notice/v1 §2 item 9).
const (
	CodeSyntax        = "SYNTAX"
	CodeUnknownMember = "UNKNOWN_MEMBER"
	CodeMissing       = "MISSING"
	CodeType          = "TYPE"
	CodeFormat        = "FORMAT"
	CodeDate          = "DATE"
	CodeChecksum      = "CHECKSUM"
	CodeCode          = "CODE"
	CodeRange         = "RANGE"
	CodeConsistency   = "CONSISTENCY"
	CodeDuplicate     = "DUPLICATE"
	CodeSignature     = "SIGNATURE"
	CodeNotAuthorised = "NOT_AUTHORISED"
)

// Problem is one finding about a submitted document, located by JSON Pointer.
type Problem struct {
	Pointer string `json:"pointer"`
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}

// InvalidError is returned for a document that breaks its format's rules.
type InvalidError struct {
	Problems []Problem
}

func (e *InvalidError) Error() string {
	if len(e.Problems) == 0 {
		return "adapters: invalid document"
	}
	return fmt.Sprintf("adapters: invalid document: %d problem(s), first %s at %q", len(e.Problems), e.Problems[0].Code, e.Problems[0].Pointer)
}

// Subject is the party a sender must be authorised for, e.g. an employer UEN.
type Subject struct {
	Scheme  string // e.g. "SG_UEN"
	ID      string
	Pointer string // where the subject stands in the document
}

// Meta is what the gateway knows about a message beyond its content.
type Meta struct {
	ReceivedAt time.Time
	Rates      mapping.RateTable
}

// Document is a read partner document.
type Document interface {
	// Subject returns the party the sender must be authorised for; ok is
	// false when the document does not name a well-formed one.
	Subject() (s Subject, ok bool)
	// Problems lists every rule the document breaks, in specification order.
	Problems() []Problem
	// SourceKey is the idempotency key (canonical §2); valid documents only.
	SourceKey() string
	// MessageID is the sender's reference of the message (e.g. noticeId).
	MessageID() string
	// Canonical maps a valid document to the canonical record.
	Canonical(meta Meta) (*schema.Record, error)
}

// Adapter reads one partner format.
type Adapter interface {
	// Format is the format id, e.g. "sg-employer-notice/v1".
	Format() string
	// Read parses a payload. A payload that is not a readable document gives
	// *InvalidError with one SYNTAX problem; otherwise a Document whose
	// Problems may be non-empty.
	Read(payload []byte) (Document, error)
}

var (
	mu       sync.RWMutex
	registry = map[string]Adapter{}
)

// Register makes an adapter available by its format id. It panics on an empty
// or duplicate id: both are programming errors found at start-up.
func Register(a Adapter) {
	mu.Lock()
	defer mu.Unlock()
	id := a.Format()
	if id == "" {
		panic("adapters: Register with empty format id")
	}
	if _, dup := registry[id]; dup {
		panic("adapters: Register called twice for " + id)
	}
	registry[id] = a
}

// Lookup returns the adapter registered for a format id.
func Lookup(format string) (Adapter, bool) {
	mu.RLock()
	defer mu.RUnlock()
	a, ok := registry[format]
	return a, ok
}

var otherFormats = map[string]bool{}

// RegisterFormat makes a format id known that is read by its own transport
// rather than through Adapter (the SOAP exchange). It panics on a duplicate.
func RegisterFormat(id string) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[id]; dup || otherFormats[id] || id == "" {
		panic("adapters: RegisterFormat: empty or duplicate " + id)
	}
	otherFormats[id] = true
}

// Known reports whether a format id is registered either way.
func Known(format string) bool {
	mu.RLock()
	defer mu.RUnlock()
	_, ok := registry[format]
	return ok || otherFormats[format]
}

// Formats lists the registered format ids, sorted.
func Formats() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(registry)+len(otherFormats))
	for id := range registry {
		out = append(out, id)
	}
	for id := range otherFormats {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}
