package intake_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/sgemployer"
	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/intake"
	"github.com/perkeso/jambatan/cmd/gateway/internal/jwsin"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
)

func exampleA(b *testing.B) []byte {
	d, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "adapters", "sgemployer", "testdata", "example-a.in.json"))
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkSubmit is the whole intake of one new notice: verify JWS ->
// read and validate -> JSON Schema -> map -> canonical schema -> receipt ->
// durable log entry (SQLite, WAL, synchronous=FULL).
func BenchmarkSubmit(b *testing.B) {
	env := gatewaytest.Start(b, gatewaytest.Options{})
	p := env.Partners["employer-a"]
	pipe := &intake.Pipeline{Store: env.Store, Receipts: env.Receipts, Rates: mapping.ExampleRates}
	doc := exampleA(b)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		d := bytes.Replace(doc, []byte("TPE-2026-0042"), []byte(fmt.Sprintf("B-%d-%d", time.Now().UnixNano(), i)), 1)
		s, err := partnerkit.Sign(d, p.SigningKey, partnerkit.Compact)
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = []byte(s)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, perr := pipe.Submit(ctx, intake.Submission{Partner: p.Partner, Format: sgemployer.Format, Route: "POST /v1/injury-notices",
			ContentType: "application/jose", Body: bodies[i], CorrelationID: "bench"})
		if perr != nil || res.Status != 202 {
			b.Fatalf("%v %+v", perr, res)
		}
	}
}

func BenchmarkStepVerifyJWS(b *testing.B) {
	ca, _ := certs.NewCA("bench")
	p := gatewaytest.NewPartner(b, ca, "bench", nil)
	s, _ := partnerkit.Sign(exampleA(b), p.SigningKey, partnerkit.Compact)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jwsin.Verify(jwsin.Message{Form: jwsin.FormCompact, JWS: s}, p.Keys); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStepReadValidate(b *testing.B) {
	doc := exampleA(b)
	b.ReportAllocs()
	for b.Loop() {
		d, err := sgemployer.Adapter{}.Read(doc)
		if err != nil || len(d.Problems()) != 0 {
			b.Fatal(err)
		}
	}
}

func BenchmarkStepJSONSchema(b *testing.B) {
	doc := exampleA(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := schema.ValidateJSON(schema.SGEmployerNoticeSchemaFile, doc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStepMap(b *testing.B) {
	d, _ := sgemployer.Adapter{}.Read(exampleA(b))
	meta := adapters.Meta{ReceivedAt: time.Now(), Rates: mapping.ExampleRates}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Canonical(meta); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStepCanonicalSchema(b *testing.B) {
	d, _ := sgemployer.Adapter{}.Read(exampleA(b))
	rec, _ := d.Canonical(adapters.Meta{ReceivedAt: time.Now(), Rates: mapping.ExampleRates})
	b.ReportAllocs()
	for b.Loop() {
		if err := schema.ValidateRecord(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStepReceipt(b *testing.B) {
	s := gatewaytest.NewSigner(b, "k")
	r := receipt.Receipt{Issuer: receipt.Issuer, Status: "ACCEPTED", RecordID: "b0867b30-be3c-5595-a939-c4d47c281950"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(r); err != nil {
			b.Fatal(err)
		}
	}
}
