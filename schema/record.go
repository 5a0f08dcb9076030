// Package schema holds the canonical Perkeso record (perkeso-injury-notification/v1)
// as Go types, and the JSON Schemas, WSDL and OpenAPI documents that describe
// what the gateway accepts and produces. The schema files are embedded so the
// binary validates with exactly the documents in this directory.
package schema

import (
	"github.com/google/uuid"
)

// RecordSchemaID is the value of Record.Schema.
const RecordSchemaID = "perkeso-injury-notification/v1"

// RecordNamespace is the UUID v5 namespace of canonical record ids (canonical §2).
var RecordNamespace = uuid.MustParse("c0a8f3e2-5b1d-4e6f-9a27-3d4c5b6a7e81")

// RecordID returns the deterministic record id of a source key.
func RecordID(sourceKey string) string {
	return uuid.NewSHA1(RecordNamespace, []byte(sourceKey)).String()
}

// Record is one canonical injury notification. Field order follows the
// specification so that serialized records read like its examples.
type Record struct {
	Schema     string       `json:"schema"`
	RecordID   string       `json:"recordId"`
	SourceKey  string       `json:"sourceKey"`
	Supersedes string       `json:"supersedes,omitempty"`
	Provenance Provenance   `json:"provenance"`
	Person     Person       `json:"person"`
	Employer   Employer     `json:"employer"`
	Accident   Accident     `json:"accident"`
	Injuries   []Injury     `json:"injuries"`
	Outcome    Outcome      `json:"outcome"`
	Wages      []Wage       `json:"wages"`
	OtherCover []OtherCover `json:"otherCover"`
	FX         *FX          `json:"fx,omitempty"`
	Deadlines  []Deadline   `json:"deadlines"`
	Exchange   *Exchange    `json:"exchange,omitempty"`
}

// Provenance says where a record comes from. Warnings is this gateway's
// extension: approximate mappings, omitted when there are none.
type Provenance struct {
	Format           string     `json:"format"`
	Sender           string     `json:"sender"`
	SourceMessageID  string     `json:"sourceMessageId"`
	ReceivedAt       string     `json:"receivedAt"`
	CrosswalkVersion string     `json:"crosswalkVersion"`
	Unmapped         []Unmapped `json:"unmapped"`
	Warnings         []Warning  `json:"warnings,omitempty"`
}

// Unmapped is a source code that the crosswalks do not map.
type Unmapped struct {
	Pointer string `json:"pointer"`
	Value   string `json:"value"`
}

// Warning records a lossy or approximate mapping.
type Warning struct {
	Pointer string `json:"pointer"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Person is the injured person.
type Person struct {
	PrimaryID   ID          `json:"primaryId"`
	OtherIDs    []ID        `json:"otherIds"`
	Name        string      `json:"name"`
	DateOfBirth string      `json:"dateOfBirth,omitempty"`
	Sex         string      `json:"sex,omitempty"`
	Nationality string      `json:"nationality,omitempty"`
	Occupation  *Occupation `json:"occupation,omitempty"`
}

// ID is an identifier of a person.
type ID struct {
	Scheme  string `json:"scheme"`
	Value   string `json:"value"`
	Country string `json:"country"`
}

// Occupation of the injured person.
type Occupation struct {
	ISCO08       string `json:"isco08,omitempty"`
	SourceScheme string `json:"sourceScheme"`
	SourceCode   string `json:"sourceCode"`
	Text         string `json:"text,omitempty"`
}

// Employer at the time of the accident.
type Employer struct {
	Country  string `json:"country"`
	IDScheme string `json:"idScheme"`
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
}

// Accident describes what happened, where and when.
type Accident struct {
	Category           string        `json:"category"`
	SourceCategory     string        `json:"sourceCategory"`
	OccurredDate       string        `json:"occurredDate"`
	OccurredAt         string        `json:"occurredAt,omitempty"`
	Zone               string        `json:"zone"`
	CommutingLeg       *CommutingLeg `json:"commutingLeg,omitempty"`
	Location           Location      `json:"location"`
	Narrative          *Narrative    `json:"narrative,omitempty"`
	ExternalCauseICD10 []string      `json:"externalCauseIcd10"`
}

// CommutingLeg is the journey of a commuting accident.
type CommutingLeg struct {
	Direction string `json:"direction"`
	Segment   string `json:"segment"`
	Mode      string `json:"mode"`
	Crossing  string `json:"crossing,omitempty"`
}

// Location of the accident.
type Location struct {
	Country    string `json:"country"`
	PostalCode string `json:"postalCode,omitempty"`
	Address    string `json:"address,omitempty"`
}

// Narrative is the description as received.
type Narrative struct {
	Text string `json:"text"`
	Lang string `json:"lang"`
}

// Injury in ESAW codes with the source's own coding.
type Injury struct {
	NatureESAW   string       `json:"natureEsaw"`
	BodyPartESAW string       `json:"bodyPartEsaw"`
	Side         string       `json:"side,omitempty"`
	ICD10        string       `json:"icd10,omitempty"`
	Source       InjurySource `json:"source"`
}

// InjurySource is the source's coding of an injury.
type InjurySource struct {
	Scheme   string `json:"scheme"`
	Nature   string `json:"nature,omitempty"`
	BodyPart string `json:"bodyPart,omitempty"`
	Code     string `json:"code,omitempty"`
}

// Outcome is the consequences of the injury.
type Outcome struct {
	Fatal             bool       `json:"fatal"`
	DateOfDeath       string     `json:"dateOfDeath,omitempty"`
	HospitalisedHours *int       `json:"hospitalisedHours,omitempty"`
	MCDays            *int       `json:"mcDays,omitempty"`
	MCPeriods         []MCPeriod `json:"mcPeriods,omitempty"`
	LightDutyDays     *int       `json:"lightDutyDays,omitempty"`
}

// MCPeriod is a certified medical-leave period.
type MCPeriod struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Money is an amount with its MYR equivalent (canonical §4).
type Money struct {
	Amount    string `json:"amount"`
	Currency  string `json:"currency"`
	MYRAmount string `json:"myrAmount"`
	MYRRate   string `json:"myrRate"`
}

// Wage is Money on a basis.
type Wage struct {
	Basis string `json:"basis"`
	Money
}

// OtherCover is foreign cover of the same injury.
type OtherCover struct {
	Kind                   string `json:"kind"`
	InsurerCode            string `json:"insurerCode,omitempty"`
	Institution            string `json:"institution,omitempty"`
	PolicyNo               string `json:"policyNo,omitempty"`
	ClaimNo                string `json:"claimNo,omitempty"`
	ClaimRevision          *int   `json:"claimRevision,omitempty"`
	Status                 string `json:"status,omitempty"`
	StatusDate             string `json:"statusDate,omitempty"`
	MedicalExpenses        *Money `json:"medicalExpenses,omitempty"`
	WageLoss               *Money `json:"wageLoss,omitempty"`
	PermanentIncapacityPct *int   `json:"permanentIncapacityPct,omitempty"`
}

// FX names the rate table and date used.
type FX struct {
	Table string `json:"table"`
	Date  string `json:"date"`
}

// Deadline following from the facts (canonical §5).
type Deadline struct {
	Code    string `json:"code"`
	DueDate string `json:"dueDate"`
	Met     *bool  `json:"met,omitempty"`
}

// Exchange identifies an agency case exchange.
type Exchange struct {
	Institution   string `json:"institution"`
	SenderCaseRef string `json:"senderCaseRef"`
	CaseID        string `json:"caseId"`
}

// SplitPrimary picks the primary identifier among ids, in their order: the
// first MY_NRIC, else the first PASSPORT (canonical §3.3; agency §9, insurer
// §7); the others keep their order. ok is false when there is neither.
func SplitPrimary(ids []ID) (primary ID, others []ID, ok bool) {
	pi := -1
	for _, want := range []string{"MY_NRIC", "PASSPORT"} {
		for i, id := range ids {
			if id.Scheme == want {
				pi = i
				break
			}
		}
		if pi >= 0 {
			break
		}
	}
	if pi < 0 {
		return ID{}, nil, false
	}
	others = []ID{}
	for i, id := range ids {
		if i != pi {
			others = append(others, id)
		}
	}
	return ids[pi], others, true
}
