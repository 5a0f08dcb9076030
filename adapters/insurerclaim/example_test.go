package insurerclaim_test

import (
	"bytes"
	"fmt"
	"time"

	"github.com/perkeso/jambatan/adapters/insurerclaim"
	"github.com/perkeso/jambatan/mapping"
)

// An insurer's batch is read whole; each claim carries its own problems,
// so one bad claim does not hold back the others (the gateway answers 200
// with a status for each). A valid claim maps to a canonical record.
func ExampleRead() {
	// The specification's example batch (§8), its third claim's NRIC
	// given a wrong check letter.
	payload := bytes.Replace(insurerclaim.Example(), []byte(`"S7723456Z"`), []byte(`"S7723456A"`), 1)
	b, err := insurerclaim.Read(payload)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("batch:", b.InsurerCode, b.BatchID, "problems:", len(b.Problems))
	for _, cl := range b.Claims {
		if len(cl.Problems) > 0 {
			fmt.Println("claim", cl.Index, cl.ClaimNo, "rejected:", cl.Problems[0].Code, cl.Problems[0].Pointer)
			continue
		}
		rec, err := b.Canonical(cl, time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC), mapping.ExampleRates)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("claim", cl.Index, cl.ClaimNo, "revision", cl.Revision, "->", b.SourceKey(cl), rec.Accident.Category)
	}
	// Output:
	// batch: WIC017 WIC017-20260310-01 problems: 0
	// claim 0 WC2600123 revision 2 -> insurer-claim/v1|WIC017|WC2600123|2 WORK
	// claim 1 WC2600188 revision 1 -> insurer-claim/v1|WIC017|WC2600188|1 OCCUPATIONAL_DISEASE
	// claim 2 WC2600201 rejected: CHECKSUM /claims/2/claimant/idNo
}
