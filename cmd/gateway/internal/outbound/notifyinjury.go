package outbound

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/schema"
)

// NotifyInjuryPayload is the outbound payload of a NotifyInjury to an
// agency: a canonical record and Perkeso's own file number.
type NotifyInjuryPayload struct {
	Record        schema.Record `json:"record"`
	SenderCaseRef string        `json:"senderCaseRef,omitempty"`
}

var agencySchemes = map[string]bool{"TH_PID": true, "MY_NRIC": true, "SG_NRIC": true, "SG_FIN": true, "BN_IC": true, "PASSPORT": true}
var agencyEmployerSchemes = map[string]bool{"TH_SSO_EMPLOYER": true, "MY_PERKESO_EMPLOYER": true, "SG_UEN": true, "BN_ROC": true, "OTHER": true}

func ce(el *etree.Element, name, date string) {
	e := el.CreateElement("xb:" + name)
	e.CreateAttr("cal", "CE")
	e.SetText(date)
}

// notifyInjury maps a canonical record to the Notification of agency-soap/v1
// §6.1 (the reverse of §9), in CE dates and ESAW codes. What the exchange
// requires but the record lacks (birth date, sex, narrative, a wage) makes
// the message undeliverable rather than invented.
func notifyInjury(op *etree.Element, payload []byte) error {
	var p NotifyInjuryPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return fmt.Errorf("NotifyInjury payload: %w", err)
	}
	r := &p.Record
	if r.Person.DateOfBirth == "" || r.Person.Sex == "" || r.Person.Nationality == "" || r.Accident.Narrative == nil || len(r.Wages) == 0 || len(r.Injuries) == 0 {
		return errors.New("the record lacks what NotifyInjury requires (birth date, sex, nationality, narrative, a wage, an injury)")
	}
	if err := fits(r); err != nil {
		return err
	}
	n := op.CreateElement("xb:Notification")
	ref := p.SenderCaseRef
	if ref == "" {
		ref = r.RecordID[:min(len(r.RecordID), 40)]
	}
	n.CreateElement("xb:SenderCaseRef").SetText(ref)
	notifyPerson(n, r)
	notifyEmployer(n, r)
	notifyAccident(n, r)
	notifyInjuries(n, r)
	notifyOutcome(n, r)
	w := r.Wages[0]
	we := n.CreateElement("xb:Wage")
	we.CreateAttr("basis", w.Basis)
	we.CreateAttr("currency", w.Currency)
	we.SetText(w.Amount)
	return nil
}

// fits refuses a record that holds more than a Notification carries (agency
// XSD: 10 injuries, 5 identifiers, 10 sick-leave periods, 9,999 hours in
// hospital): cutting it would tell the agency less than the record says,
// with nothing to show it.
func fits(r *schema.Record) error {
	h := r.Outcome.HospitalisedHours
	switch {
	case len(r.Injuries) > 10:
		return fmt.Errorf("the record has %d injuries; a NotifyInjury carries at most 10", len(r.Injuries))
	case 1+len(r.Person.OtherIDs) > 5:
		return fmt.Errorf("the record has %d identifiers; a NotifyInjury carries at most 5", 1+len(r.Person.OtherIDs))
	case len(r.Outcome.MCPeriods) > 10:
		return fmt.Errorf("the record has %d medical-leave periods; a NotifyInjury carries at most 10", len(r.Outcome.MCPeriods))
	case h != nil && *h > 9999:
		return fmt.Errorf("the record has %d hours in hospital; a NotifyInjury carries at most 9999", *h)
	}
	return nil
}

// notifyPerson writes the Person: the identifiers of the agency's
// schemes, the first as PersonalId; name, CE birth date, sex, nationality,
// and the ISCO-08 occupation when the record has one.
func notifyPerson(n *etree.Element, r *schema.Record) {
	per := n.CreateElement("xb:Person")
	ids := append([]schema.ID{r.Person.PrimaryID}, r.Person.OtherIDs...)
	for i, id := range ids {
		if !agencySchemes[id.Scheme] {
			continue
		}
		name := "xb:ForeignId"
		if i == 0 {
			name = "xb:PersonalId"
		}
		e := per.CreateElement(name)
		e.CreateAttr("scheme", id.Scheme)
		e.CreateAttr("country", id.Country)
		e.SetText(id.Value)
	}
	per.CreateElement("xb:Name").SetText(r.Person.Name)
	ce(per, "BirthDate", r.Person.DateOfBirth)
	per.CreateElement("xb:Sex").SetText(r.Person.Sex)
	per.CreateElement("xb:Nationality").SetText(r.Person.Nationality)
	if o := r.Person.Occupation; o != nil && o.ISCO08 != "" {
		e := per.CreateElement("xb:Occupation")
		e.CreateAttr("isco08", o.ISCO08)
		text := o.Text
		if text == "" {
			text = "ISCO-08 " + o.ISCO08
		}
		e.SetText(text)
	}
}

// notifyEmployer writes the Employer, its registration scheme OTHER when
// the agency does not list the record's.
func notifyEmployer(n *etree.Element, r *schema.Record) {
	emp := n.CreateElement("xb:Employer")
	reg := emp.CreateElement("xb:RegistrationId")
	scheme := r.Employer.IDScheme
	if !agencyEmployerSchemes[scheme] {
		scheme = "OTHER"
	}
	reg.CreateAttr("scheme", scheme)
	reg.SetText(r.Employer.ID)
	name := r.Employer.Name
	if name == "" {
		name = r.Employer.ID
	}
	emp.CreateElement("xb:Name").SetText(name)
	emp.CreateElement("xb:Country").SetText(r.Employer.Country)
}

// notifyAccident writes the Accident: category, CE date, the local time in
// its zone when known, place, commuting leg and narrative.
func notifyAccident(n *etree.Element, r *schema.Record) {
	acc := n.CreateElement("xb:Accident")
	acc.CreateElement("xb:Category").SetText(r.Accident.Category)
	ce(acc, "Date", r.Accident.OccurredDate)
	if r.Accident.OccurredAt != "" {
		t, err := time.Parse(time.RFC3339, r.Accident.OccurredAt)
		loc, lerr := time.LoadLocation(r.Accident.Zone)
		if err == nil && lerr == nil {
			acc.CreateElement("xb:Time").SetText(t.In(loc).Format("15:04"))
		}
	}
	acc.CreateElement("xb:Zone").SetText(r.Accident.Zone)
	acc.CreateElement("xb:Country").SetText(r.Accident.Location.Country)
	if r.Accident.Location.Address != "" {
		acc.CreateElement("xb:Place").SetText(r.Accident.Location.Address)
	}
	if l := r.Accident.CommutingLeg; l != nil {
		leg := acc.CreateElement("xb:CommutingLeg")
		leg.CreateElement("xb:Direction").SetText(l.Direction)
		leg.CreateElement("xb:Segment").SetText(l.Segment)
		leg.CreateElement("xb:Mode").SetText(l.Mode)
		if l.Crossing != "" {
			leg.CreateElement("xb:Crossing").SetText(l.Crossing)
		}
	}
	nar := acc.CreateElement("xb:Narrative")
	nar.CreateAttr("lang", r.Accident.Narrative.Lang)
	nar.SetText(r.Accident.Narrative.Text)
}

// notifyInjuries writes the Injury elements in ESAW codes.
func notifyInjuries(n *etree.Element, r *schema.Record) {
	for _, inj := range r.Injuries {
		e := n.CreateElement("xb:Injury")
		bp := e.CreateElement("xb:BodyPart")
		bp.CreateAttr("list", "ESAW")
		bp.SetText(inj.BodyPartESAW)
		na := e.CreateElement("xb:Nature")
		na.CreateAttr("list", "ESAW")
		na.SetText(inj.NatureESAW)
		if inj.Side != "" {
			e.CreateElement("xb:Side").SetText(inj.Side)
		}
	}
}

// notifyOutcome writes the Outcome: fatal, date of death, hours in
// hospital, sick-leave periods.
func notifyOutcome(n *etree.Element, r *schema.Record) {
	out := n.CreateElement("xb:Outcome")
	out.CreateElement("xb:Fatal").SetText(strconv.FormatBool(r.Outcome.Fatal))
	if r.Outcome.DateOfDeath != "" {
		ce(out, "DateOfDeath", r.Outcome.DateOfDeath)
	}
	if h := r.Outcome.HospitalisedHours; h != nil {
		out.CreateElement("xb:HospitalisedHours").SetText(strconv.Itoa(*h))
	}
	for _, p := range r.Outcome.MCPeriods {
		sl := out.CreateElement("xb:SickLeave")
		ce(sl, "From", p.From)
		ce(sl, "To", p.To)
	}
}
