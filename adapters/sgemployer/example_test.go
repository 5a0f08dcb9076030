package sgemployer_test

import (
	"bytes"
	"fmt"
	"time"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/sgemployer"
	"github.com/perkeso/jambatan/mapping"
)

// An employer's notice is read, checked against every rule of
// sg-employer-notice/v1, and mapped to the canonical record. The gateway
// does this after the notice's JWS has verified.
func Example() {
	a, _ := adapters.Lookup(sgemployer.Format)
	doc, err := a.Read(sgemployer.Example()) // the specification's example A (§8.1)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("problems:", len(doc.Problems()))
	subject, _ := doc.Subject()
	fmt.Println("subject:", subject.Scheme, subject.ID)
	fmt.Println("source key:", doc.SourceKey())

	rec, err := doc.Canonical(adapters.Meta{
		ReceivedAt: time.Date(2026, 3, 3, 8, 20, 7, 0, time.UTC),
		Rates:      mapping.ExampleRates,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("record:", rec.RecordID)
	fmt.Println("accident:", rec.Accident.Category, rec.Accident.OccurredDate, rec.Accident.Zone)
	for _, d := range rec.Deadlines {
		fmt.Println("deadline:", d.Code, d.DueDate)
	}
	// Output:
	// problems: 0
	// subject: SG_UEN 201912345K
	// source key: sg-employer-notice/v1|201912345K|TPE-2026-0042
	// record: b0867b30-be3c-5595-a939-c4d47c281950
	// accident: WORK 2026-03-03 Asia/Singapore
	// deadline: PERKESO_CLAIM_LIMIT 2027-03-03
}

// A notice that breaks the format's rules is read all the same: its
// problems, in the specification's order and located by JSON Pointer, are
// what the gateway's 422 answer lists.
func Example_problems() {
	notice := bytes.Replace(sgemployer.Example(), []byte(`"noticeId": "TPE-2026-0042"`), []byte(`"noticeId": "TPE 2026"`), 1)
	notice = bytes.Replace(notice, []byte(`"designation"`), []byte(`"designatoin"`), 1)
	notice = bytes.Replace(notice, []byte(`"sex": "M"`), []byte(`"sex": "F"`), 1)

	a, _ := adapters.Lookup(sgemployer.Format)
	doc, err := a.Read(notice)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range doc.Problems() {
		fmt.Println(p.Code, p.Pointer)
	}
	// Output:
	// FORMAT /noticeId
	// UNKNOWN_MEMBER /reporter/designatoin
	// CONSISTENCY /worker/sex
}
