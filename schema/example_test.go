package schema_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/perkeso/jambatan/schema"
)

// Every canonical record is checked against the JSON Schema of
// perkeso-injury-notification/v1 before it is stored or published. A
// refusal says where and which keyword, never the value: a record holds
// names and identity numbers.
func ExampleValidateJSON() {
	record, err := os.ReadFile("../adapters/sgemployer/testdata/example-a.golden.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("example A:", schema.ValidateJSON(schema.CanonicalSchemaFile, record))

	record = bytes.Replace(record, []byte(`"sex": "M"`), []byte(`"sex": "male"`), 1)
	record = bytes.Replace(record, []byte(`"value": "900215015573"`), []byte(`"value": 900215015573`), 1)
	err = schema.ValidateJSON(schema.CanonicalSchemaFile, record)
	var se *schema.Error
	if errors.As(err, &se) {
		for _, f := range se.Failures {
			fmt.Println(f.Keyword, f.Pointer)
		}
	}
	fmt.Println("the error names the number:", bytes.Contains([]byte(err.Error()), []byte("900215015573")))
	// Output:
	// example A: <nil>
	// type /person/primaryId/value
	// enum /person/sex
	// the error names the number: false
}
