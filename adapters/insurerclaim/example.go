package insurerclaim

import _ "embed"

//go:embed testdata/example-batch.in.json
var exampleBatch []byte

// Example returns the specification's example batch (§8): three valid
// claims, for tools that need a batch (gateway loadtest varies its batchId
// and claim numbers). The tests hold it to its golden answer, so it stays
// valid.
func Example() []byte { return append([]byte(nil), exampleBatch...) }
