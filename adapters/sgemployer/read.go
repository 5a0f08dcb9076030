package sgemployer

import (
	"time"
	"unicode/utf8"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/mapping"
)

// notice holds the members of a read document. A member's ok flag is set only
// when it exists and passed its own checks, so cross-member rules (§5) know
// whether they may run.
type notice struct {
	noticeID, amendsID               field
	submittedAt                      dtField
	uen, employerName                field
	worker                           workerFields
	incidentType                     field
	occurredAt                       dtField
	locCountry, postalCode, address  field
	commutePresent                   bool
	direction, segment, mode, cross  field
	description, descriptionLang     field
	injuries                         []injury
	fatal                            bool
	fatalOK                          bool
	dateOfDeath                      dField
	dateOfDeathPresent               bool
	hospHours, mcDays, lightDutyDays int
	ame                              field
	insurerCode, policyNo            field
	insurerPresent                   bool

	problems []adapters.Problem
}

type field struct {
	v  string
	ok bool
}

type dtField struct {
	t  time.Time // Asia/Singapore
	ok bool
}

type dField struct {
	d  mapping.Date
	ok bool
}

type workerFields struct {
	name, idType, idNo            field
	myKad                         field
	myKadPresent                  bool
	myKadCandidates               []mapping.Date
	myKadBirth                    field // YYYY-MM-DD once R3 has passed
	passportPresent               bool
	passportNo, passportCountry   field
	dob                           dField
	sex, nationality, ssoc, title field
}

type injury struct {
	bodyPart, side, nature field
}

// singapore is Asia/Singapore, fixed at UTC+08:00 without daylight saving
// (§2 item 6). A fixed zone avoids depending on the host's tz database.
var singapore = time.FixedZone("Asia/Singapore", 8*60*60)

// SingaporeZone is the IANA name recorded in canonical records.
const SingaporeZone = "Asia/Singapore"

func read(root *jsondoc.Value) *notice {
	n := &notice{}
	c := &checker{}
	top := c.object(root, "")
	if top == nil {
		n.problems = c.problems
		return n
	}

	if s, p, ok := c.str(top, "", "format", true); ok && s != Format {
		c.add(p, adapters.CodeCode, "must be "+Format)
	}
	n.noticeID = c.noticeID(top, "noticeId", true)
	n.amendsID = c.noticeID(top, "amendsNoticeId", false)
	n.submittedAt = c.localDateTime(top, "", "submittedAt")

	if emp, p, ok := c.member(top, "", "employer", true); ok {
		if emp = c.object(emp, p); emp != nil {
			if s, sp, ok := c.str(emp, p, "uen", true); ok && c.match(s, sp, reUEN, adapters.CodeFormat, "a UEN (9 or 10 characters of one of the three UEN patterns)") {
				n.uen = field{s, true}
			}
			n.employerName = c.textMember(emp, p, "name", true, 1, 120)
			c.unknown(emp, p, "uen", "name")
		}
	}

	if rep, p, ok := c.member(top, "", "reporter", true); ok {
		if rep = c.object(rep, p); rep != nil {
			c.textMember(rep, p, "name", true, 1, 100)
			c.textMember(rep, p, "designation", false, 1, 60)
			if s, sp, ok := c.str(rep, p, "phone", true); ok {
				c.match(s, sp, rePhone, adapters.CodeFormat, "an E.164 number (+ and 8 to 15 digits)")
			}
			if s, sp, ok := c.str(rep, p, "email", false); ok {
				if utf8.RuneCountInString(s) > 254 {
					c.add(sp, adapters.CodeFormat, "must be at most 254 characters")
				} else {
					c.match(s, sp, reEmail, adapters.CodeFormat, "an e-mail address")
				}
			}
			c.unknown(rep, p, "name", "designation", "phone", "email")
		}
	}

	if w, p, ok := c.member(top, "", "worker", true); ok {
		if w = c.object(w, p); w != nil {
			n.worker = c.readWorker(w, p)
		}
	}

	if inc, p, ok := c.member(top, "", "incident", true); ok {
		if inc = c.object(inc, p); inc != nil {
			c.readIncident(n, inc, p)
		}
	}

	if out, p, ok := c.member(top, "", "outcome", true); ok {
		if out = c.object(out, p); out != nil {
			n.fatal, _, n.fatalOK = c.boolean(out, p, "fatal")
			_, present := out.Get("dateOfDeath")
			n.dateOfDeathPresent = present
			if present {
				n.dateOfDeath = c.localDate(out, p, "dateOfDeath")
			}
			n.hospHours, _, _ = c.integer(out, p, "hospitalisedHours", 0, 8784)
			n.mcDays, _, _ = c.integer(out, p, "mcDays", 0, 730)
			n.lightDutyDays, _, _ = c.integer(out, p, "lightDutyDays", 0, 730)
			c.unknown(out, p, "fatal", "dateOfDeath", "hospitalisedHours", "mcDays", "lightDutyDays")
		}
	}

	if s, p, ok := c.str(top, "", "ame", true); ok && c.match(s, p, reAME, adapters.CodeFormat, "a decimal with exactly 2 decimals") {
		if s == "0.00" {
			c.add(p, adapters.CodeRange, "must be greater than 0.00")
		} else {
			n.ame = field{s, true}
		}
	}

	if ins, p, ok := c.member(top, "", "insurer", false); ok {
		if ins = c.object(ins, p); ins != nil {
			n.insurerPresent = true
			if s, sp, ok := c.str(ins, p, "code", true); ok && c.match(s, sp, reInsurer, adapters.CodeFormat, "3 to 12 upper-case letters or digits") {
				n.insurerCode = field{s, true}
			}
			if s, sp, ok := c.str(ins, p, "policyNo", true); ok && c.match(s, sp, rePolicy, adapters.CodeFormat, "1 to 30 letters, digits, '/' or '-'") {
				n.policyNo = field{s, true}
			}
			c.unknown(ins, p, "code", "policyNo")
		}
	}

	c.unknown(top, "", "format", "noticeId", "amendsNoticeId", "submittedAt", "employer", "reporter", "worker", "incident", "outcome", "ame", "insurer")

	c.crossRules(n, top)
	n.problems = c.problems
	return n
}

func (c *checker) noticeID(obj *jsondoc.Value, name string, required bool) field {
	s, p, ok := c.str(obj, "", name, required)
	if !ok {
		return field{}
	}
	if l := utf8.RuneCountInString(s); l < 1 || l > 32 {
		c.add(p, adapters.CodeRange, "must be 1 to 32 characters")
		return field{}
	}
	if !c.match(s, p, reNoticeID, adapters.CodeFormat, "only A-Z a-z 0-9 . _ / -") {
		return field{}
	}
	return field{s, true}
}

func (c *checker) textMember(obj *jsondoc.Value, ptr, name string, required bool, min, max int) field {
	s, p, ok := c.str(obj, ptr, name, required)
	if ok && c.text(s, p, min, max) {
		return field{s, true}
	}
	return field{}
}

func (c *checker) localDateTime(obj *jsondoc.Value, ptr, name string) dtField {
	s, p, ok := c.str(obj, ptr, name, true)
	if !ok || !c.match(s, p, reLocalDT, adapters.CodeFormat, "dd/MM/yyyy HH:mm") {
		return dtField{}
	}
	t, err := time.ParseInLocation("02/01/2006 15:04", s, singapore)
	if err != nil {
		c.add(p, adapters.CodeDate, "is not a real date and time")
		return dtField{}
	}
	return dtField{t, true}
}

func (c *checker) localDate(obj *jsondoc.Value, ptr, name string) dField {
	s, p, ok := c.str(obj, ptr, name, true)
	if !ok || !c.match(s, p, reLocalD, adapters.CodeFormat, "dd/MM/yyyy") {
		return dField{}
	}
	t, err := time.Parse("02/01/2006", s)
	if err != nil {
		c.add(p, adapters.CodeDate, "is not a real date")
		return dField{}
	}
	return dField{mapping.DateOf(t), true}
}

func (c *checker) readWorker(w *jsondoc.Value, p string) workerFields {
	var wf workerFields
	wf.name = c.textMember(w, p, "name", true, 1, 100)
	if s, sp, ok := c.str(w, p, "idType", true); ok && c.oneOf(s, sp, idTypes) {
		wf.idType = field{s, true}
	}
	if s, sp, ok := c.str(w, p, "idNo", true); ok {
		re, what := reNRICAny, "an NRIC or FIN (letter, 7 digits, letter)"
		if wf.idType.ok && wf.idType.v == "NRIC" {
			re, what = reNRIC, "an NRIC (S or T, 7 digits, letter)"
		} else if wf.idType.ok {
			re, what = reFIN, "a FIN (F, G or M, 7 digits, letter)"
		}
		if c.match(s, sp, re, adapters.CodeFormat, what) {
			if mapping.ValidNRIC(s) {
				wf.idNo = field{s, true}
			} else {
				c.add(sp, adapters.CodeChecksum, "check letter does not match")
			}
		}
	}
	if s, sp, ok := c.str(w, p, "myKadNo", false); ok {
		wf.myKadPresent = true
		switch {
		case !reMyKad.MatchString(s):
			c.add(sp, adapters.CodeFormat, "must be 12 digits without hyphens")
		case !mapping.MyKadPlaceOfBirthValid(s[6:8]):
			c.add(sp, adapters.CodeCode, "place-of-birth code was never issued")
		default:
			wf.myKadCandidates = mapping.MyKadBirthCandidates(s[:6])
			if len(wf.myKadCandidates) == 0 {
				c.add(sp, adapters.CodeDate, "first six digits are not a real date")
			} else {
				wf.myKad = field{s, true}
			}
		}
	} else if _, present := w.Get("myKadNo"); present {
		wf.myKadPresent = true
	}
	if pp, pptr, ok := c.member(w, p, "passport", false); ok {
		wf.passportPresent = true
		if pp = c.object(pp, pptr); pp != nil {
			if s, sp, ok := c.str(pp, pptr, "number", true); ok && c.match(s, sp, rePassport, adapters.CodeFormat, "5 to 20 upper-case letters or digits") {
				wf.passportNo = field{s, true}
			}
			if s, sp, ok := c.str(pp, pptr, "country", true); ok && c.country(s, sp) {
				wf.passportCountry = field{s, true}
			}
			c.unknown(pp, pptr, "number", "country")
		}
	} else if _, present := w.Get("passport"); present {
		wf.passportPresent = true
	}
	if _, present := w.Get("dateOfBirth"); present {
		wf.dob = c.localDate(w, p, "dateOfBirth")
	}
	if s, sp, ok := c.str(w, p, "sex", false); ok && c.oneOf(s, sp, sexes) {
		wf.sex = field{s, true}
	}
	if s, sp, ok := c.str(w, p, "nationality", true); ok && c.country(s, sp) {
		wf.nationality = field{s, true}
	}
	if occ, op, ok := c.member(w, p, "occupation", true); ok {
		if occ = c.object(occ, op); occ != nil {
			if s, sp, ok := c.str(occ, op, "ssoc", true); ok && c.match(s, sp, reSSOC, adapters.CodeFormat, "5 digits") {
				wf.ssoc = field{s, true}
			}
			wf.title = c.textMember(occ, op, "title", false, 1, 100)
			c.unknown(occ, op, "ssoc", "title")
		}
	}
	c.unknown(w, p, "name", "idType", "idNo", "myKadNo", "passport", "dateOfBirth", "sex", "nationality", "occupation")
	return wf
}

func (c *checker) readIncident(n *notice, inc *jsondoc.Value, p string) {
	if s, sp, ok := c.str(inc, p, "type", true); ok && c.oneOf(s, sp, incidentTypes) {
		n.incidentType = field{s, true}
	}
	n.occurredAt = c.localDateTime(inc, p, "occurredAt")

	if loc, lp, ok := c.member(inc, p, "location", true); ok {
		if loc = c.object(loc, lp); loc != nil {
			if s, sp, ok := c.str(loc, lp, "country", true); ok && c.country(s, sp) {
				n.locCountry = field{s, true}
			}
			if s, sp, ok := c.str(loc, lp, "postalCode", false); ok {
				// The pattern depends on the country; for a country other than SG
				// and MY the code is not allowed at all (R10, in crossRules).
				switch {
				case !n.locCountry.ok:
				case n.locCountry.v == "SG":
					if c.match(s, sp, rePostSG, adapters.CodeFormat, "6 digits for SG") {
						n.postalCode = field{s, true}
					}
				case n.locCountry.v == "MY":
					if c.match(s, sp, rePostMY, adapters.CodeFormat, "5 digits for MY") {
						n.postalCode = field{s, true}
					}
				default:
					n.postalCode = field{s, true}
				}
			}
			n.address = c.textMember(loc, lp, "address", false, 1, 200)
			c.unknown(loc, lp, "country", "postalCode", "address")
		}
	}

	if cm, cp, ok := c.member(inc, p, "commute", false); ok {
		if cm = c.object(cm, cp); cm != nil {
			n.commutePresent = true
			if s, sp, ok := c.str(cm, cp, "direction", true); ok && c.oneOf(s, sp, directions) {
				n.direction = field{s, true}
			}
			if s, sp, ok := c.str(cm, cp, "segment", true); ok && c.oneOf(s, sp, segments) {
				n.segment = field{s, true}
			}
			if s, sp, ok := c.str(cm, cp, "mode", true); ok && c.oneOf(s, sp, modes) {
				n.mode = field{s, true}
			}
			if s, sp, ok := c.str(cm, cp, "crossing", false); ok && c.oneOf(s, sp, crossings) {
				n.cross = field{s, true}
			}
			c.unknown(cm, cp, "direction", "segment", "mode", "crossing")
		}
	} else if _, present := inc.Get("commute"); present {
		n.commutePresent = true
	}

	if s, sp, ok := c.str(inc, p, "description", true); ok && c.text(s, sp, 1, 4000) {
		if hasControl(s) {
			c.add(sp, adapters.CodeFormat, "must not contain control characters")
		} else {
			n.description = field{s, true}
		}
	}
	if s, sp, ok := c.str(inc, p, "descriptionLang", false); ok && c.match(s, sp, reLang, adapters.CodeFormat, "a BCP 47 language tag") {
		n.descriptionLang = field{s, true}
	}

	if arr, ap, ok := c.member(inc, p, "injuries", true); ok {
		switch {
		case arr.Kind != jsondoc.Array:
			c.add(ap, adapters.CodeType, "must be an array, not "+arr.Kind.String())
		case len(arr.Items) < 1 || len(arr.Items) > 10:
			c.add(ap, adapters.CodeRange, "must have 1 to 10 items")
		default:
			for i, it := range arr.Items {
				ip := jsondoc.Index(ap, i)
				var inj injury
				if it.Kind == jsondoc.Null {
					c.add(ip, adapters.CodeType, "null is not allowed")
				} else if it = c.object(it, ip); it != nil {
					if s, sp, ok := c.str(it, ip, "bodyPart", true); ok && c.oneOf(s, sp, bodyParts) {
						inj.bodyPart = field{s, true}
					}
					if s, sp, ok := c.str(it, ip, "side", false); ok && c.oneOf(s, sp, sides) {
						inj.side = field{s, true}
					}
					if s, sp, ok := c.str(it, ip, "nature", true); ok && c.oneOf(s, sp, natures) {
						inj.nature = field{s, true}
					}
					c.unknown(it, ip, "bodyPart", "side", "nature")
				}
				n.injuries = append(n.injuries, inj)
			}
		}
	}
	c.unknown(inc, p, "type", "occurredAt", "location", "commute", "description", "descriptionLang", "injuries")
}

func hasControl(s string) bool {
	for _, r := range s {
		if (r <= 0x08) || r == 0x0B || r == 0x0C || (r >= 0x0E && r <= 0x1F) || r == 0x7F {
			return true
		}
	}
	return false
}

// crossRules evaluates §5 R1-R10, each only when every member it reads exists
// and passed its own checks.
func (c *checker) crossRules(n *notice, top *jsondoc.Value) {
	w := &n.worker
	// R1
	if n.amendsID.ok && n.noticeID.ok && n.amendsID.v == n.noticeID.v {
		c.add("/amendsNoticeId", adapters.CodeConsistency, "must differ from noticeId")
	}
	// R2
	if _, workerPresent := top.Get("worker"); workerPresent && !w.myKadPresent && !w.passportPresent {
		if wv, _ := top.Get("worker"); wv.Kind == jsondoc.Object {
			c.add("/worker/myKadNo", adapters.CodeMissing, "at least one of myKadNo and passport is required")
		}
	}
	var accident mapping.Date
	if n.occurredAt.ok {
		accident = mapping.DateOf(n.occurredAt.t)
	}
	// R3: MyKad age window, then agreement with dateOfBirth.
	if w.myKad.ok && n.occurredAt.ok {
		if d, ok := mapping.MyKadBirthDate(w.myKadCandidates, accident); !ok {
			c.add("/worker/myKadNo", adapters.CodeConsistency, "no reading of the birth date gives an age of 15 to 99 on the accident date")
		} else if w.dob.ok && w.dob.d != d {
			c.add("/worker/myKadNo", adapters.CodeConsistency, "birth date in the MyKad number differs from dateOfBirth")
		} else {
			w.myKadBirth = field{d.String(), true}
		}
	}
	// R3a
	if w.dob.ok && n.occurredAt.ok && !mapping.InAgeWindow(w.dob.d, accident) {
		c.add("/worker/dateOfBirth", adapters.CodeConsistency, "age on the accident date must be 15 to 99")
	}
	// R4
	if w.sex.ok && w.myKad.ok && mapping.MyKadSex(w.myKad.v) != w.sex.v {
		c.add("/worker/sex", adapters.CodeConsistency, "does not agree with the last digit of the MyKad number")
	}
	// R5
	if n.occurredAt.ok && n.submittedAt.ok && n.occurredAt.t.After(n.submittedAt.t) {
		c.add("/incident/occurredAt", adapters.CodeConsistency, "must not be after submittedAt")
	}
	// R6
	if n.incidentType.ok {
		commuting := n.incidentType.v == "COMMUTING_ACCIDENT"
		if commuting && !n.commutePresent {
			c.add("/incident/commute", adapters.CodeMissing, "required for a COMMUTING_ACCIDENT")
		} else if !commuting && n.commutePresent {
			c.add("/incident/commute", adapters.CodeConsistency, "only allowed for a COMMUTING_ACCIDENT")
		}
	}
	// R7
	if n.segment.ok && n.locCountry.ok {
		ctry := n.locCountry.v
		bad := (n.segment.v == "MALAYSIA" && ctry != "MY") ||
			(n.segment.v == "SINGAPORE" && ctry != "SG") ||
			(n.segment.v == "CHECKPOINT" && ctry != "SG" && ctry != "MY")
		if bad {
			c.add("/incident/commute/segment", adapters.CodeConsistency, "does not agree with incident.location.country")
		}
	}
	// R8
	if n.fatalOK {
		if n.fatal && !n.dateOfDeathPresent {
			c.add("/outcome/dateOfDeath", adapters.CodeMissing, "required when fatal is true")
		} else if !n.fatal && n.dateOfDeathPresent {
			c.add("/outcome/dateOfDeath", adapters.CodeConsistency, "only allowed when fatal is true")
		}
	}
	// R9
	if n.fatalOK && n.fatal && n.dateOfDeath.ok && n.occurredAt.ok && n.submittedAt.ok {
		d := n.dateOfDeath.d
		if d.Before(accident) || mapping.DateOf(n.submittedAt.t).Before(d) {
			c.add("/outcome/dateOfDeath", adapters.CodeConsistency, "must be between the accident date and the submission date")
		}
	}
	// R10
	if n.postalCode.ok && n.locCountry.ok && n.locCountry.v != "SG" && n.locCountry.v != "MY" {
		n.postalCode.ok = false
		c.add("/incident/location/postalCode", adapters.CodeConsistency, "postal codes are only allowed for SG and MY")
	}
}
