// Package sgemployer reads sg-employer-notice/v1, the Singapore employer's
// work-injury notice (WICA iReport shape), and maps it to the canonical
// Perkeso record. Every rule of the specification in
// shared/formats/sg-employer-notice-v1.md is checked here; the JSON Schema in
// schema/ describes the structure and is checked by the pipeline as well.
package sgemployer

import (
	"fmt"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
)

// Format is the format id this package reads.
const Format = "sg-employer-notice/v1"

// MaxPayloadBytes is the payload limit of §1.
const MaxPayloadBytes = 262144

func init() { adapters.Register(Adapter{}) }

// Adapter reads sg-employer-notice/v1.
type Adapter struct{}

var _ adapters.Adapter = Adapter{}

// Format implements adapters.Adapter.
func (Adapter) Format() string { return Format }

// Read implements adapters.Adapter.
func (Adapter) Read(payload []byte) (adapters.Document, error) {
	if len(payload) > MaxPayloadBytes {
		return nil, &adapters.InvalidError{Problems: []adapters.Problem{{Pointer: "", Code: adapters.CodeRange, Message: fmt.Sprintf("payload is over %d bytes", MaxPayloadBytes)}}}
	}
	root, err := jsondoc.Parse(payload, jsondoc.DefaultMaxDepth)
	if err != nil {
		return nil, &adapters.InvalidError{Problems: []adapters.Problem{{Pointer: "", Code: adapters.CodeSyntax, Message: jsondoc.Reason(err)}}}
	}
	if root.Kind != jsondoc.Object {
		return nil, &adapters.InvalidError{Problems: []adapters.Problem{{Pointer: "", Code: adapters.CodeSyntax, Message: "the payload must be one JSON object"}}}
	}
	return read(root), nil
}

var _ adapters.Document = (*notice)(nil)

func (n *notice) Subject() (adapters.Subject, bool) {
	return adapters.Subject{Scheme: "SG_UEN", ID: n.uen.v, Pointer: "/employer/uen"}, n.uen.ok
}

func (n *notice) Problems() []adapters.Problem { return n.problems }

// Tree is the parsed document, for schema validation without a second parse.
func (n *notice) Tree() *jsondoc.Value { return n.tree }

func (n *notice) MessageID() string { return n.noticeID.v }

func (n *notice) SourceKey() string { return sourceKey(n.uen.v, n.noticeID.v) }

func sourceKey(uen, noticeID string) string { return Format + "|" + uen + "|" + noticeID }

var categories = map[string]string{
	"WORK_ACCIDENT":                    "WORK",
	"COMMUTING_ACCIDENT":               "COMMUTING",
	"OCCUPATIONAL_DISEASE":             "OCCUPATIONAL_DISEASE",
	"DANGEROUS_OCCURRENCE_WITH_INJURY": "WORK",
}

var segmentsCanonical = map[string]string{"MALAYSIA": "HOME_SIDE", "CHECKPOINT": "BORDER_CROSSING", "SINGAPORE": "WORK_SIDE"}

// Canonical maps the notice per §7 of the specification.
func (n *notice) Canonical(meta adapters.Meta) (*schema.Record, error) {
	if len(n.problems) > 0 {
		return nil, &adapters.InvalidError{Problems: n.problems}
	}
	w := &n.worker
	key := n.SourceKey()
	r := &schema.Record{
		Schema:    schema.RecordSchemaID,
		RecordID:  schema.RecordID(key),
		SourceKey: key,
		Provenance: schema.Provenance{
			Format:           Format,
			Sender:           "SG-UEN:" + n.uen.v,
			SourceMessageID:  n.noticeID.v,
			ReceivedAt:       meta.ReceivedAt.UTC().Format("2006-01-02T15:04:05Z"),
			CrosswalkVersion: mapping.CrosswalkVersion,
			Unmapped:         []schema.Unmapped{},
		},
		OtherCover: []schema.OtherCover{},
	}
	if n.amendsID.ok {
		r.Supersedes = schema.RecordID(sourceKey(n.uen.v, n.amendsID.v))
	}

	// person
	p := &r.Person
	finScheme := "SG_FIN"
	if w.idType.v == "NRIC" {
		finScheme = "SG_NRIC"
	}
	sgID := schema.ID{Scheme: finScheme, Value: w.idNo.v, Country: "SG"}
	p.OtherIDs = []schema.ID{sgID}
	if w.myKad.ok {
		p.PrimaryID = schema.ID{Scheme: "MY_NRIC", Value: w.myKad.v, Country: "MY"}
		if w.passportNo.ok {
			p.OtherIDs = append(p.OtherIDs, schema.ID{Scheme: "PASSPORT", Value: w.passportNo.v, Country: w.passportCountry.v})
		}
	} else {
		p.PrimaryID = schema.ID{Scheme: "PASSPORT", Value: w.passportNo.v, Country: w.passportCountry.v}
	}
	p.Name = w.name.v
	switch {
	case w.dob.ok:
		p.DateOfBirth = w.dob.d.String()
	case w.myKadBirth.ok:
		p.DateOfBirth = w.myKadBirth.v
	}
	switch {
	case w.sex.ok:
		p.Sex = w.sex.v
	case w.myKad.ok:
		p.Sex = mapping.MyKadSex(w.myKad.v)
	}
	p.Nationality = w.nationality.v
	occ := &schema.Occupation{SourceScheme: "SSOC2020", SourceCode: w.ssoc.v, Text: w.title.v}
	if isco, ok := mapping.ISCO08ForSSOC(w.ssoc.v); ok {
		occ.ISCO08 = isco
	} else {
		r.Provenance.Unmapped = append(r.Provenance.Unmapped, schema.Unmapped{Pointer: "/worker/occupation/ssoc", Value: w.ssoc.v})
	}
	p.Occupation = occ

	r.Employer = schema.Employer{Country: "SG", IDScheme: "SG_UEN", ID: n.uen.v, Name: n.employerName.v}

	// accident
	occurred := mapping.DateOf(n.occurredAt.t)
	a := &r.Accident
	a.Category = categories[n.incidentType.v]
	a.SourceCategory = n.incidentType.v
	a.OccurredDate = occurred.String()
	a.OccurredAt = n.occurredAt.t.UTC().Format("2006-01-02T15:04:05Z")
	a.Zone = SingaporeZone
	if n.commutePresent {
		a.CommutingLeg = &schema.CommutingLeg{
			Direction: n.direction.v,
			Segment:   segmentsCanonical[n.segment.v],
			Mode:      n.mode.v,
			Crossing:  mapping.SGCrossingCode[n.cross.v],
		}
	}
	a.Location = schema.Location{Country: n.locCountry.v, PostalCode: n.postalCode.v, Address: n.address.v}
	lang := "und"
	if n.descriptionLang.ok {
		lang = n.descriptionLang.v
	}
	a.Narrative = &schema.Narrative{Text: n.description.v, Lang: lang}
	a.ExternalCauseICD10 = []string{}

	// injuries
	for i, inj := range n.injuries {
		part := mapping.SGBodyPartESAW[inj.bodyPart.v]
		nature := mapping.SGNatureESAW[inj.nature.v]
		r.Injuries = append(r.Injuries, schema.Injury{
			NatureESAW:   nature.Code,
			BodyPartESAW: part.Code,
			Side:         inj.side.v,
			Source:       schema.InjurySource{Scheme: "SG_WORDS", Nature: inj.nature.v, BodyPart: inj.bodyPart.v},
		})
		ptr := jsondoc.Index("/incident/injuries", i)
		if part.Approx != "" {
			r.Provenance.Warnings = append(r.Provenance.Warnings, schema.Warning{Pointer: ptr + "/bodyPart", Code: "APPROXIMATE", Message: part.Approx})
		}
		if nature.Approx != "" {
			r.Provenance.Warnings = append(r.Provenance.Warnings, schema.Warning{Pointer: ptr + "/nature", Code: "APPROXIMATE", Message: nature.Approx})
		}
	}

	// outcome
	hh, mc, ld := n.hospHours, n.mcDays, n.lightDutyDays
	r.Outcome = schema.Outcome{Fatal: n.fatal, HospitalisedHours: &hh, MCDays: &mc, LightDutyDays: &ld}
	if n.fatal {
		r.Outcome.DateOfDeath = n.dateOfDeath.d.String()
	}

	// wages
	rates := meta.Rates.OrExample()
	m, err := rates.ToMYR(n.ame.v, "SGD")
	if err != nil {
		return nil, err
	}
	r.Wages = []schema.Wage{{Basis: "MONTHLY_AVERAGE", Money: schema.Money{Amount: m.Amount, Currency: m.Currency, MYRAmount: m.MYRAmount, MYRRate: m.MYRRate}}}
	r.FX = &schema.FX{Table: rates.ID, Date: occurred.String()}

	if n.insurerPresent {
		r.OtherCover = append(r.OtherCover, schema.OtherCover{Kind: "WICA_POLICY", InsurerCode: n.insurerCode.v, PolicyNo: n.policyNo.v})
	}

	r.Deadlines = []schema.Deadline{{Code: mapping.DeadlinePerkesoClaimLimit, DueDate: mapping.PerkesoClaimLimit(occurred).String()}}
	if n.fatal {
		due := mapping.SGWICAFatalReportDue(occurred)
		met := !due.Before(mapping.DateOf(n.submittedAt.t))
		r.Deadlines = append(r.Deadlines, schema.Deadline{Code: mapping.DeadlineSGWICAFatalReport, DueDate: due.String(), Met: &met})
	}
	return r, nil
}
