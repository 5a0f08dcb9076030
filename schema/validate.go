package schema

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/schema/ecmaregexp"
	"github.com/perkeso/jambatan/schema/xsdlite"
)

//go:embed *.schema.json openapi.yaml agency-soap-v1.xsd agency-soap-v1.wsdl
var files embed.FS

// Files exposes the embedded schema documents (for serving and tests).
func Files() embed.FS { return files }

// File names of the embedded JSON Schemas.
const (
	CanonicalSchemaFile        = "perkeso-injury-notification-v1.schema.json"
	SGEmployerNoticeSchemaFile = "sg-employer-notice-v1.schema.json"
)

var (
	compileOnce sync.Once
	compiled    map[string]*jsonschema.Schema
	quicks      map[string]*quick // nil for a schema quick cannot take
	compileErr  error
)

func compileAll() {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	c.UseRegexpEngine(ecmaEngine)
	compiled, quicks = map[string]*jsonschema.Schema{}, map[string]*quick{}
	names := []string{CanonicalSchemaFile, SGEmployerNoticeSchemaFile}
	for _, n := range names {
		b, err := files.ReadFile(n)
		if err != nil {
			compileErr = err
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			compileErr = fmt.Errorf("schema %s: %w", n, err)
			return
		}
		if err := c.AddResource(n, doc); err != nil {
			compileErr = fmt.Errorf("schema %s: %w", n, err)
			return
		}
	}
	for _, n := range names {
		s, err := c.Compile(n)
		if err != nil {
			compileErr = fmt.Errorf("schema %s: %w", n, err)
			return
		}
		compiled[n] = s
		if q, err := compileQuick(s); err == nil {
			quicks[n] = q
		}
	}
}

// ecmaEngine compiles a schema's patterns as ECMA-262 reads them, the
// dialect JSON Schema names, so the gateway's verdicts are a partner's
// validator's (ajv's; TestAjvAgreesWithSchema holds them together).
func ecmaEngine(pattern string) (jsonschema.Regexp, error) {
	re, err := ecmaregexp.Compile(pattern)
	if err != nil {
		return nil, err
	}
	return re, nil
}

var (
	agencyOnce sync.Once
	agency     *xsdlite.Schema
	agencyErr  error
)

// AgencySOAP returns the agency-soap/v1 XML Schema (agency-soap-v1.xsd).
func AgencySOAP() (*xsdlite.Schema, error) {
	agencyOnce.Do(func() {
		b, err := files.ReadFile("agency-soap-v1.xsd")
		if err != nil {
			agencyErr = err
			return
		}
		agency, agencyErr = xsdlite.Load(b)
	})
	return agency, agencyErr
}

// Validator returns the compiled JSON Schema of an embedded file.
func Validator(name string) (*jsonschema.Schema, error) {
	compileOnce.Do(compileAll)
	if compileErr != nil {
		return nil, compileErr
	}
	s, ok := compiled[name]
	if !ok {
		return nil, fmt.Errorf("schema: no schema %q", name)
	}
	return s, nil
}

// ValidateJSON validates a JSON document against an embedded schema. The
// document is read by jsondoc (strict: no duplicate names, no BOM, bounded
// depth), about six times faster than through encoding/json's Decoder; it
// runs on every accepted record. The tree is dropped on return (the
// verdict never holds a value, see ValidateTree), so it is read with
// jsondoc.ParseThen, into reused blocks.
func ValidateJSON(name string, doc []byte) error {
	return jsondoc.ParseThen(doc, jsondoc.DefaultMaxDepth, func(v *jsondoc.Value) error { return ValidateTree(name, v) })
}

// ValidateTree validates a document jsondoc has read against an embedded
// schema: a valid one is passed by the schema's quick form, an invalid one
// (or one whose schema quick cannot take) is validated by the library, whose
// verdict is returned as an *Error: where and which keyword, never a value.
func ValidateTree(name string, v *jsondoc.Value) error {
	s, err := Validator(name)
	if err != nil {
		return err
	}
	if q := quicks[name]; q != nil && q.valid(v) {
		return nil
	}
	return redact(s.Validate(v.Any()))
}

// ValidateRecord validates a canonical record against its schema.
func ValidateRecord(r *Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return ValidateJSON(CanonicalSchemaFile, b)
}
