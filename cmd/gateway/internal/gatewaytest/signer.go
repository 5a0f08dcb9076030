package gatewaytest

import (
	"path/filepath"
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
)

// NewSigner is a receipt signer with a new ES256 key of kid, made and
// loaded as the gateway does from its key file; a failure fails the test.
func NewSigner(t testing.TB, kid string) *receipt.Signer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "receipt.jwk.json")
	must(t, receipt.GenerateKeyFile(path, kid))
	s, err := receipt.LoadSigner(path)
	must(t, err)
	return s
}
