package schema

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestValidateJSONConcurrent: ValidateJSON's pooled trees are one
// caller's at a time. Goroutines validating valid and invalid documents
// of different sizes side by side each get their own document's verdict
// (and the race detector sees no shared tree).
func TestValidateJSONConcurrent(t *testing.T) {
	doc := exampleNotice(t)
	bad := bytes.Replace(doc, []byte(`"idNo": "G5123456T"`), []byte(`"idNo": 5123456`), 1)
	small := []byte(`{"noticeId":"x"}`) // valid JSON, far from a notice
	if bytes.Equal(bad, doc) {
		t.Fatal("example has no idNo")
	}
	cases := []struct {
		name string
		doc  []byte
		ok   bool
	}{{"ok/example", doc, true}, {"fail/idNo-a-number", bad, false}, {"fail/small", small, false}}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				c := cases[(g+i)%len(cases)]
				if err := ValidateJSON(SGEmployerNoticeSchemaFile, c.doc); (err == nil) != c.ok {
					t.Errorf("%s: %v", c.name, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// exampleNotice is the employer format's example A.
func exampleNotice(t *testing.T) []byte {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "adapters", "sgemployer", "testdata", "example-a.in.json"))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}
