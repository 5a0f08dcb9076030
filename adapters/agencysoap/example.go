package agencysoap

import _ "embed"

//go:embed testdata/example-10.1.request.xml
var exampleNotify []byte

// Example returns the specification's example NotifyInjury envelope
// (§10.1), its WS-Security header a placeholder for the sender's own: a
// valid notification once signed, for tools that need one (gateway loadtest
// varies its MessageId). The tests hold its Body to its golden canonical
// record, so it stays valid.
func Example() []byte { return append([]byte(nil), exampleNotify...) }
