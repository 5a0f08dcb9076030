package agencysoap

import (
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

// TestTypesOnly checks that the committed generated file holds no SOAP
// client: gowsdl is a generator here, and its runtime must not be linked
// into the gateway.
func TestTypesOnly(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "exchange.gen.go", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range f.Imports {
		if strings.Contains(imp.Path.Value, "gowsdl") {
			t.Errorf("exchange.gen.go imports %s; run go generate ./schema/...", imp.Path.Value)
		}
	}
}
