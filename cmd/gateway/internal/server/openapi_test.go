package server_test

import (
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/perkeso/jambatan/cmd/gateway/internal/problem"
	"github.com/perkeso/jambatan/cmd/gateway/internal/server"
	"github.com/perkeso/jambatan/schema"
)

// TestOpenAPICoversRoutes checks that every served route and method is in
// schema/openapi.yaml, and every documented one is served.
func TestOpenAPICoversRoutes(t *testing.T) {
	b, err := schema.Files().ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string `yaml:"openapi"`
		Paths   map[string]map[string]struct{ Responses map[string]any }
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi %q, want 3.1", doc.OpenAPI)
	}
	served := map[string]bool{}
	for _, r := range server.Routes {
		served[r.Method+" "+r.Path] = true
		ops, ok := doc.Paths[r.Path]
		if !ok {
			t.Errorf("route %s %s not in openapi.yaml", r.Method, r.Path)
			continue
		}
		if _, ok := ops[strings.ToLower(r.Method)]; !ok {
			t.Errorf("method %s of %s not in openapi.yaml", r.Method, r.Path)
		}
	}
	for path, ops := range doc.Paths {
		for m := range ops {
			if m == "parameters" {
				continue
			}
			if !served[strings.ToUpper(m)+" "+path] {
				t.Errorf("openapi.yaml documents %s %s, which is not served", m, path)
			}
		}
	}
	// Every status the submission route can answer is documented.
	post := doc.Paths["/v1/injury-notices"]["post"].Responses
	for _, k := range problem.AllKinds() {
		if k == problem.NotFound || k == problem.MethodNotAllowed {
			continue
		}
		if _, ok := post[strconv.Itoa(k.Status())]; !ok {
			t.Errorf("status %d (%s) not documented for POST /v1/injury-notices", k.Status(), k.TypeURI())
		}
	}
}
