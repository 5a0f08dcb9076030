package sgemployer

import _ "embed"

//go:embed testdata/example-a.in.json
var exampleA []byte

// Example returns the specification's example A (§8.1): a valid notice, for
// tools that need one (gateway loadtest varies its noticeId). The tests hold
// it to its golden canonical record, so it stays valid.
func Example() []byte { return append([]byte(nil), exampleA...) }
