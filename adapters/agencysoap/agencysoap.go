// Package agencysoap reads the NotifyInjury message of agency-soap/v1 (the
// case exchange between social-security institutions, Thailand's SSO first)
// and maps it to the canonical Perkeso record: Buddhist-Era dates, local
// times in the message's IANA zone, Thai PID check digits, THB daily wages,
// and TH_SSO body-part and injury codes through the ESAW crosswalk.
//
// Structure is checked against agency-soap-v1.xsd (schema/xsdlite); this
// package checks the content rules of §7 and reports the one whose element
// comes first in document order, with its Location path (§7, §8.1).
// CheckResponse applies the same rules to an agency's answer to a message
// Perkeso sent.
package agencysoap

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // C5: IANA names, whatever the host has installed

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
)

// Format is the format id.
const Format = "agency-soap/v1"

func init() { adapters.RegisterFormat(Format) }

// Fault detail codes decided here.
const (
	CodeSchema  = "client.schema.invalid"
	CodeContent = "client.content.invalid"
)

// NS is the exchange namespace.
const NS = "urn:xb-injury:exchange:v1"

// Problem is a fault to return: code, Location and a short English text.
type Problem struct {
	Code     string
	Location string
	Reason   string
}

// Header is the message header of any Body child.
type Header struct {
	MessageID, InReplyTo, CaseID, Sender, Receiver string
	SentAt                                         time.Time
	HasInReplyTo, HasCaseID                        bool
}

// ReadHeader reads xb:Header of a schema-valid Body child.
func ReadHeader(body *etree.Element) Header {
	h := child(body, "Header")
	var out Header
	out.MessageID = text(child(h, "MessageId"))
	if e := child(h, "InReplyTo"); e != nil {
		out.InReplyTo, out.HasInReplyTo = text(e), true
	}
	if e := child(h, "CaseId"); e != nil {
		out.CaseID, out.HasCaseID = text(e), true
	}
	out.Sender = text(child(h, "Sender"))
	out.Receiver = text(child(h, "Receiver"))
	out.SentAt, _ = time.Parse(time.RFC3339Nano, text(child(h, "SentAt")))
	return out
}

func child(el *etree.Element, local string) *etree.Element {
	if el == nil {
		return nil
	}
	for _, c := range el.ChildElements() {
		if c.Tag == local && c.NamespaceURI() == NS {
			return c
		}
	}
	return nil
}

func childrenOf(el *etree.Element, local string) []*etree.Element {
	var out []*etree.Element
	if el == nil {
		return nil
	}
	for _, c := range el.ChildElements() {
		if c.Tag == local && c.NamespaceURI() == NS {
			out = append(out, c)
		}
	}
	return out
}

func text(el *etree.Element) string {
	if el == nil {
		return ""
	}
	return el.Text()
}

// repeated are the elements with maxOccurs > 1, which carry [n] in a Location.
var repeated = map[string]bool{"ForeignId": true, "Injury": true, "SickLeave": true, "Item": true, "Month": true, "Document": true}

// Location is the §7 path of el from the Body child.
func Location(el *etree.Element) string {
	var steps []string
	for e := el; e != nil && e.NamespaceURI() == NS; e = e.Parent() {
		s := "xb:" + e.Tag
		if repeated[e.Tag] && e.Parent() != nil {
			n := 0
			for _, sib := range e.Parent().ChildElements() {
				if sib.Tag == e.Tag {
					n++
				}
				if sib == e {
					break
				}
			}
			s += "[" + strconv.Itoa(n) + "]"
		}
		steps = append([]string{s}, steps...)
		if e.Parent() == nil || e.Parent().NamespaceURI() != NS {
			break
		}
	}
	return "/" + strings.Join(steps, "/")
}

// Notice is a read NotifyInjury.
type Notice struct {
	Body   *etree.Element
	Header Header
	order  map[*etree.Element]int
	bad    map[*etree.Element]bool
	probs  []prob

	accident   mapping.Date
	accidentOK bool
	occurredAt time.Time
	hasTime    bool
	zone       string
	loc        *time.Location // Zone's, nil when it is not a zone
	birth      mapping.Date
	birthOK    bool
}

type prob struct {
	el     *etree.Element
	reason string
}

func (n *Notice) add(el *etree.Element, reason string) {
	n.bad[el] = true
	n.probs = append(n.probs, prob{el: el, reason: reason})
}

// First returns the broken rule whose element comes first in document
// order, or nil.
func (n *Notice) First() *Problem {
	if len(n.probs) == 0 {
		return nil
	}
	best := n.probs[0]
	for _, p := range n.probs[1:] {
		if n.order[p.el] < n.order[best.el] {
			best = p
		}
	}
	return &Problem{Code: CodeContent, Location: Location(best.el), Reason: best.reason}
}

// ReadNotifyInjury checks the content rules of a schema-valid NotifyInjury.
func ReadNotifyInjury(body *etree.Element) *Notice {
	n := &Notice{Body: body, Header: ReadHeader(body), order: map[*etree.Element]int{}, bad: map[*etree.Element]bool{}}
	i := 0
	var walk func(e *etree.Element)
	walk = func(e *etree.Element) {
		n.order[e] = i
		i++
		for _, c := range e.ChildElements() {
			walk(c)
		}
	}
	walk(body)
	n.check()
	return n
}

func (n *Notice) date(el *etree.Element) (mapping.Date, bool) {
	if el == nil {
		return mapping.Date{}, false
	}
	d, ok := mapping.CalDate(strings.TrimSpace(el.Text()), el.SelectAttrValue("cal", ""))
	if !ok {
		n.add(el, "not a real date with a CE year of 1900-2100")
	}
	return d, ok
}

var (
	reMyKad    = regexp.MustCompile(`^[0-9]{12}$`)
	rePassport = regexp.MustCompile(`^[A-Z0-9]{5,20}$`)
	reSGNRIC   = regexp.MustCompile(`^[ST][0-9]{7}[A-Z]$`)
	reSGFIN    = regexp.MustCompile(`^[FGM][0-9]{7}[A-Z]$`)
	reBNIC     = regexp.MustCompile(`^[0-9]{2}-[0-9]{6}$`)
	reTHEmp    = regexp.MustCompile(`^[0-9]{10}$`)
	reUEN      = regexp.MustCompile(`^([0-9]{8}[A-Z]|(18|19|20)[0-9]{2}[0-9]{5}[A-Z]|[RST][0-9]{2}[A-Z]{2}[0-9]{4}[A-Z])$`)
)

var schemeCountry = map[string]string{"TH_PID": "TH", "MY_NRIC": "MY", "SG_NRIC": "SG", "SG_FIN": "SG", "BN_IC": "BN"}

func (n *Notice) check() {
	h := child(n.Body, "Header")
	// H1
	if n.Header.HasInReplyTo {
		n.add(child(h, "InReplyTo"), "a NotifyInjury has no InReplyTo")
	}
	if n.Header.HasCaseID {
		n.add(child(h, "CaseId"), "a NotifyInjury has no CaseId; the receiver assigns it")
	}
	nt := child(n.Body, "Notification")
	acc := child(nt, "Accident")
	// The accident's date, time and zone first: other rules read them.
	n.checkAccident(acc)
	n.checkPerson(nt, acc)
	n.checkEmployer(child(nt, "Employer"))
	n.checkCategory(acc)
	n.checkInjuries(nt)
	n.checkOutcome(child(nt, "Outcome"))
	n.checkLaterDates(nt)
}

// checkAccident reads the accident's date, time and zone (C5 for the zone)
// and checks it is not after SentAt (C6).
func (n *Notice) checkAccident(acc *etree.Element) {
	dateEl := child(acc, "Date")
	n.accident, n.accidentOK = n.date(dateEl)
	zoneEl := child(acc, "Zone")
	n.zone = text(zoneEl)
	loc, err := time.LoadLocation(n.zone)
	if err != nil || n.zone == "Local" {
		n.add(zoneEl, "not an IANA time zone name")
		loc = nil
	}
	n.loc = loc
	t := child(acc, "Time")
	if t != nil && n.accidentOK && loc != nil {
		hm, _ := time.Parse("15:04", text(t))
		if n.occurredAt, n.hasTime = mapping.LocalInstant(n.accident, hm.Hour(), hm.Minute(), loc); !n.hasTime {
			n.add(t, "not a real time on the accident date in its zone: the clocks skip it")
		}
	}
	// C6, which reads Time when it is given: not after a Time the clocks skip.
	if n.accidentOK && loc != nil && !n.Header.SentAt.IsZero() && (t == nil || n.hasTime) {
		if n.hasTime && n.occurredAt.After(n.Header.SentAt) {
			n.add(dateEl, "the accident is after SentAt")
		} else if !n.hasTime && n.sentDate().Before(n.accident) {
			n.add(dateEl, "the accident date is after the date of SentAt")
		}
	}
}

// checkPerson checks the person's identifiers (C2, C3), birth date (C1,
// C4) and the notification's countries (C5).
func (n *Notice) checkPerson(nt, acc *etree.Element) {
	person := child(nt, "Person")
	ids := append(childrenOf(person, "PersonalId"), childrenOf(person, "ForeignId")...)
	schemes := map[string]bool{}
	primary := false
	dup := false
	birthEl := child(person, "BirthDate")
	n.birth, n.birthOK = n.date(birthEl)
	for _, id := range ids {
		sc, v, ctry := id.SelectAttrValue("scheme", ""), strings.TrimSpace(id.Text()), id.SelectAttrValue("country", "")
		if schemes[sc] {
			dup = true
		}
		schemes[sc] = true
		if sc == "MY_NRIC" || sc == "PASSPORT" {
			primary = true
		}
		if want, ok := schemeCountry[sc]; ok && ctry != want {
			n.add(id, fmt.Sprintf("@country must be %s for %s", want, sc))
			continue
		}
		if !mapping.CountryAssigned(ctry) {
			n.add(id, "@country is not an assigned ISO 3166-1 code")
			continue
		}
		if r := n.checkID(sc, v, person); r != "" {
			n.add(id, r)
		}
	}
	if !primary || dup {
		n.add(person, "the person needs a MY_NRIC or PASSPORT identifier, and no scheme twice")
	}
	if n.birthOK && n.accidentOK && !mapping.InAgeWindow(n.birth, n.accident) {
		n.add(birthEl, "age on the accident date must be 15-99")
	}
	for _, c := range []*etree.Element{child(person, "Nationality"), child(child(nt, "Employer"), "Country"), child(acc, "Country")} {
		if c != nil && !mapping.CountryAssigned(text(c)) {
			n.add(c, "not an assigned ISO 3166-1 alpha-2 code")
		}
	}
}

// checkEmployer checks the employer's registration id (C11).
func (n *Notice) checkEmployer(emp *etree.Element) {
	if reg := child(emp, "RegistrationId"); reg != nil {
		switch reg.SelectAttrValue("scheme", "") {
		case "TH_SSO_EMPLOYER":
			if !reTHEmp.MatchString(text(reg)) {
				n.add(reg, "a TH_SSO_EMPLOYER registration id is 10 digits")
			}
		case "SG_UEN":
			if !reUEN.MatchString(text(reg)) {
				n.add(reg, "not a UEN")
			}
		}
	}
}

// checkCategory checks that a CommutingLeg comes with Category COMMUTING
// and only with it (C7).
func (n *Notice) checkCategory(acc *etree.Element) {
	cat := text(child(acc, "Category"))
	if leg := child(acc, "CommutingLeg"); leg != nil && cat != "COMMUTING" {
		n.add(leg, "CommutingLeg only with Category COMMUTING")
	} else if leg == nil && cat == "COMMUTING" {
		n.add(child(acc, "Category"), "Category COMMUTING needs a CommutingLeg")
	}
}

// checkInjuries checks each injury's codes against their lists (C8).
func (n *Notice) checkInjuries(nt *etree.Element) {
	for _, inj := range childrenOf(nt, "Injury") {
		for _, kind := range []string{"BodyPart", "Nature"} {
			c := child(inj, kind)
			code, list := text(c), c.SelectAttrValue("list", "")
			ok := false
			switch {
			case list == "TH_SSO" && kind == "BodyPart":
				_, ok = mapping.THSSOBodyPartESAW[code]
			case list == "TH_SSO":
				_, ok = mapping.THSSONatureESAW[code]
			case list == "ESAW" && kind == "BodyPart":
				ok = mapping.ESAWBodyPart[code]
			case list == "ESAW":
				ok = mapping.ESAWNature[code]
			}
			if !ok {
				n.add(c, fmt.Sprintf("code %s is not a %s code of list %s", code, strings.ToLower(kind), list))
			}
		}
	}
}

// checkOutcome checks the date of death (C9) and the sick-leave periods
// (C10).
func (n *Notice) checkOutcome(out *etree.Element) {
	fatal := text(child(out, "Fatal")) == "true"
	if dd := child(out, "DateOfDeath"); dd != nil {
		if d, ok := n.date(dd); ok {
			if !fatal {
				n.add(dd, "DateOfDeath only when Fatal is true")
			} else if n.accidentOK && (d.Before(n.accident) || (!n.Header.SentAt.IsZero() && n.sentDate().Before(d))) {
				n.add(dd, "DateOfDeath must be between the accident date and the date of SentAt")
			}
		}
	} else if fatal {
		n.add(child(out, "Fatal"), "Fatal true needs a DateOfDeath")
	}
	var periods [][2]mapping.Date
	for _, sl := range childrenOf(out, "SickLeave") {
		from, ok1 := n.date(child(sl, "From"))
		to, ok2 := n.date(child(sl, "To"))
		if !ok1 || !ok2 {
			continue
		}
		switch {
		case to.Before(from):
			n.add(sl, "From is after To")
		case n.accidentOK && from.Before(n.accident):
			n.add(sl, "sick leave starts before the accident")
		default:
			for _, p := range periods {
				if !to.Before(p[0]) && !p[1].Before(from) {
					n.add(sl, "sick-leave periods overlap")
					break
				}
			}
			periods = append(periods, [2]mapping.Date{from, to})
		}
	}
}

// sentDate is the date of SentAt in the accident's zone, as C6 reads it
// (in UTC when the zone is not one): a local date, such as a date of death,
// compares with the local date it was sent on. (In UTC, a death on 4 March
// reported at 03:00 that day in Bangkok was "after the date of SentAt".)
func (n *Notice) sentDate() mapping.Date {
	if n.loc != nil {
		return mapping.DateOf(n.Header.SentAt.In(n.loc))
	}
	return mapping.DateOf(n.Header.SentAt)
}

// checkLaterDates checks the local claim's status date and
// DecisionRequestedBy against the accident date (C12).
func (n *Notice) checkLaterDates(nt *etree.Element) {
	for _, el := range []*etree.Element{child(child(nt, "LocalClaim"), "StatusDate"), child(nt, "DecisionRequestedBy")} {
		if el == nil {
			continue
		}
		if d, ok := n.date(el); ok && n.accidentOK && d.Before(n.accident) {
			n.add(el, "before the accident date")
		}
	}
}

// checkID checks an identifier against its scheme (C2).
func (n *Notice) checkID(scheme, v string, person *etree.Element) string {
	switch scheme {
	case "TH_PID":
		if !mapping.ValidThaiPID(v) {
			return "TH_PID check digit does not match"
		}
	case "MY_NRIC":
		if !reMyKad.MatchString(v) {
			return "MY_NRIC is twelve digits without hyphens"
		}
		if !mapping.MyKadPlaceOfBirthValid(v[6:8]) {
			return "MY_NRIC place-of-birth code was never issued"
		}
		if n.birthOK && fmt.Sprintf("%02d%02d%02d", n.birth.Year%100, int(n.birth.Month), n.birth.Day) != v[:6] {
			return "MY_NRIC date does not match BirthDate"
		}
		if sex := text(child(person, "Sex")); sex != "" && mapping.MyKadSex(v) != sex {
			return "MY_NRIC last digit does not match Sex"
		}
	case "PASSPORT":
		if !rePassport.MatchString(v) {
			return "PASSPORT is 5-20 upper-case letters or digits"
		}
	case "SG_NRIC":
		if !reSGNRIC.MatchString(v) || !mapping.ValidNRIC(v) {
			return "SG_NRIC check letter does not match"
		}
	case "SG_FIN":
		if !reSGFIN.MatchString(v) || !mapping.ValidNRIC(v) {
			return "SG_FIN check letter does not match"
		}
	case "BN_IC":
		if !reBNIC.MatchString(v) {
			return "BN_IC is NN-NNNNNN"
		}
	}
	return ""
}

// SourceKey is the idempotency key (canonical §2).
func (n *Notice) SourceKey() string {
	return Format + "|" + n.Header.Sender + "|" + n.Header.MessageID
}

// Canonical maps a NotifyInjury without broken rules (§9). caseID is the
// case id this receiver assigned.
func (n *Notice) Canonical(receivedAt time.Time, caseID string, rates mapping.RateTable) (*schema.Record, error) {
	if p := n.First(); p != nil {
		return nil, fmt.Errorf("agencysoap: %s at %s", p.Reason, p.Location)
	}
	rates = rates.OrExample()
	nt := child(n.Body, "Notification")
	person := child(nt, "Person")
	key := n.SourceKey()
	r := &schema.Record{
		Schema: schema.RecordSchemaID, RecordID: schema.RecordID(key), SourceKey: key,
		Provenance: schema.Provenance{Format: Format, Sender: n.Header.Sender, SourceMessageID: n.Header.MessageID,
			ReceivedAt: receivedAt.UTC().Format("2006-01-02T15:04:05Z"), CrosswalkVersion: mapping.CrosswalkVersion, Unmapped: []schema.Unmapped{}},
		OtherCover: []schema.OtherCover{},
		Exchange:   &schema.Exchange{Institution: n.Header.Sender, SenderCaseRef: text(child(nt, "SenderCaseRef")), CaseID: caseID},
	}
	// person
	var ids []schema.ID
	for _, id := range append(childrenOf(person, "PersonalId"), childrenOf(person, "ForeignId")...) {
		ids = append(ids, schema.ID{Scheme: id.SelectAttrValue("scheme", ""), Value: strings.TrimSpace(id.Text()), Country: id.SelectAttrValue("country", "")})
	}
	primary, others, ok := schema.SplitPrimary(ids)
	if !ok {
		return nil, errors.New("no MY_NRIC or PASSPORT identifier")
	}
	r.Person.PrimaryID, r.Person.OtherIDs = primary, others
	r.Person.Name = text(child(person, "Name"))
	r.Person.DateOfBirth = n.birth.String()
	r.Person.Sex = text(child(person, "Sex"))
	r.Person.Nationality = text(child(person, "Nationality"))
	if occ := child(person, "Occupation"); occ != nil {
		isco := occ.SelectAttrValue("isco08", "")
		r.Person.Occupation = &schema.Occupation{ISCO08: isco, SourceScheme: "ISCO08", SourceCode: isco, Text: occ.Text()}
	}
	emp := child(nt, "Employer")
	reg := child(emp, "RegistrationId")
	r.Employer = schema.Employer{Country: text(child(emp, "Country")), IDScheme: reg.SelectAttrValue("scheme", ""), ID: text(reg), Name: text(child(emp, "Name"))}

	acc := child(nt, "Accident")
	a := &r.Accident
	a.Category = text(child(acc, "Category"))
	a.SourceCategory = a.Category
	a.OccurredDate = n.accident.String()
	if n.hasTime {
		a.OccurredAt = n.occurredAt.UTC().Format("2006-01-02T15:04:05Z")
	}
	a.Zone = n.zone
	if leg := child(acc, "CommutingLeg"); leg != nil {
		a.CommutingLeg = &schema.CommutingLeg{Direction: text(child(leg, "Direction")), Segment: text(child(leg, "Segment")),
			Mode: text(child(leg, "Mode")), Crossing: text(child(leg, "Crossing"))}
	}
	a.Location = schema.Location{Country: text(child(acc, "Country")), Address: text(child(acc, "Place"))}
	nar := child(acc, "Narrative")
	a.Narrative = &schema.Narrative{Text: nar.Text(), Lang: nar.SelectAttrValue("lang", "")}
	a.ExternalCauseICD10 = []string{}

	for _, inj := range childrenOf(nt, "Injury") {
		bp, na := child(inj, "BodyPart"), child(inj, "Nature")
		list := bp.SelectAttrValue("list", "")
		bpc, nac := text(bp), text(na)
		if list == "TH_SSO" {
			bpc = mapping.THSSOBodyPartESAW[bpc]
		}
		if na.SelectAttrValue("list", "") == "TH_SSO" {
			nac = mapping.THSSONatureESAW[nac]
		}
		r.Injuries = append(r.Injuries, schema.Injury{NatureESAW: nac, BodyPartESAW: bpc, Side: text(child(inj, "Side")),
			Source: schema.InjurySource{Scheme: list, Nature: text(na), BodyPart: text(bp)}})
	}

	out := child(nt, "Outcome")
	r.Outcome.Fatal = text(child(out, "Fatal")) == "true"
	if dd := child(out, "DateOfDeath"); dd != nil {
		d, _ := mapping.CalDate(text(dd), dd.SelectAttrValue("cal", ""))
		r.Outcome.DateOfDeath = d.String()
	}
	if hh := child(out, "HospitalisedHours"); hh != nil {
		v, _ := strconv.Atoi(text(hh))
		r.Outcome.HospitalisedHours = &v
	}
	if sls := childrenOf(out, "SickLeave"); len(sls) > 0 {
		total := 0
		for _, sl := range sls {
			f, t := child(sl, "From"), child(sl, "To")
			fd, _ := mapping.CalDate(text(f), f.SelectAttrValue("cal", ""))
			td, _ := mapping.CalDate(text(t), t.SelectAttrValue("cal", ""))
			r.Outcome.MCPeriods = append(r.Outcome.MCPeriods, schema.MCPeriod{From: fd.String(), To: td.String()})
			total += int(td.Time().Sub(fd.Time()).Hours()/24) + 1
		}
		r.Outcome.MCDays = &total
	}

	w := child(nt, "Wage")
	m, err := rates.ToMYR(text(w), w.SelectAttrValue("currency", ""))
	if err != nil {
		return nil, err
	}
	r.Wages = []schema.Wage{{Basis: w.SelectAttrValue("basis", ""), Money: schema.Money{Amount: m.Amount, Currency: m.Currency, MYRAmount: m.MYRAmount, MYRRate: m.MYRRate}}}
	r.FX = &schema.FX{Table: rates.ID, Date: n.accident.String()}

	if lc := child(nt, "LocalClaim"); lc != nil {
		sd := child(lc, "StatusDate")
		d, _ := mapping.CalDate(text(sd), sd.SelectAttrValue("cal", ""))
		r.OtherCover = append(r.OtherCover, schema.OtherCover{Kind: "FOREIGN_AGENCY_CLAIM", Institution: n.Header.Sender,
			ClaimNo: text(child(lc, "ClaimRef")), Status: text(child(lc, "Status")), StatusDate: d.String()})
	}
	r.Deadlines = []schema.Deadline{{Code: mapping.DeadlinePerkesoClaimLimit, DueDate: mapping.PerkesoClaimLimit(n.accident).String()}}
	if drb := child(nt, "DecisionRequestedBy"); drb != nil {
		d, _ := mapping.CalDate(text(drb), drb.SelectAttrValue("cal", ""))
		r.Deadlines = append(r.Deadlines, schema.Deadline{Code: "DECISION_REQUESTED_BY", DueDate: d.String()})
	}
	return r, nil
}
