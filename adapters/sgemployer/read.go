package sgemployer

import (
	"time"
	"unicode/utf8"

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/adapters/jsonrules"
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
	tree     *jsondoc.Value
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
	n := &notice{tree: root}
	c := &checker{jsonrules.Checker{Format: Format}}
	top := c.Object(root, "")
	if top == nil {
		n.problems = c.Problems
		return n
	}

	if s, p, ok := c.Str(top, "", "format", true); ok && s != Format {
		c.Add(p, adapters.CodeCode, "must be "+Format)
	}
	n.noticeID = c.noticeID(top, "noticeId", true)
	n.amendsID = c.noticeID(top, "amendsNoticeId", false)
	n.submittedAt = c.localDateTime(top, "", "submittedAt")

	if emp, p, ok := c.Member(top, "", "employer", true); ok {
		if emp = c.Object(emp, p); emp != nil {
			if s, sp, ok := c.Str(emp, p, "uen", true); ok && c.Match(s, sp, reUEN, adapters.CodeFormat, "a UEN (9 or 10 characters of one of the three UEN patterns)") {
				n.uen = field{s, true}
			}
			n.employerName = c.textMember(emp, p, "name", true, 1, 120)
			c.Unknown(emp, p, "uen", "name")
		}
	}

	if rep, p, ok := c.Member(top, "", "reporter", true); ok {
		if rep = c.Object(rep, p); rep != nil {
			c.textMember(rep, p, "name", true, 1, 100)
			c.textMember(rep, p, "designation", false, 1, 60)
			if s, sp, ok := c.Str(rep, p, "phone", true); ok {
				c.Match(s, sp, rePhone, adapters.CodeFormat, "an E.164 number (+ and 8 to 15 digits)")
			}
			if s, sp, ok := c.Str(rep, p, "email", false); ok {
				if utf8.RuneCountInString(s) > 254 {
					c.Add(sp, adapters.CodeFormat, "must be at most 254 characters")
				} else {
					c.Match(s, sp, reEmail, adapters.CodeFormat, "an e-mail address")
				}
			}
			c.Unknown(rep, p, "name", "designation", "phone", "email")
		}
	}

	if w, p, ok := c.Member(top, "", "worker", true); ok {
		if w = c.Object(w, p); w != nil {
			n.worker = c.readWorker(w, p)
		}
	}

	if inc, p, ok := c.Member(top, "", "incident", true); ok {
		if inc = c.Object(inc, p); inc != nil {
			c.readIncident(n, inc, p)
		}
	}

	if out, p, ok := c.Member(top, "", "outcome", true); ok {
		if out = c.Object(out, p); out != nil {
			n.fatal, _, n.fatalOK = c.Boolean(out, p, "fatal")
			_, present := out.Get("dateOfDeath")
			n.dateOfDeathPresent = present
			if present {
				n.dateOfDeath = c.localDate(out, p, "dateOfDeath")
			}
			n.hospHours, _, _ = c.Integer(out, p, "hospitalisedHours", 0, 8784)
			n.mcDays, _, _ = c.Integer(out, p, "mcDays", 0, 730)
			n.lightDutyDays, _, _ = c.Integer(out, p, "lightDutyDays", 0, 730)
			c.Unknown(out, p, "fatal", "dateOfDeath", "hospitalisedHours", "mcDays", "lightDutyDays")
		}
	}

	if s, p, ok := c.Str(top, "", "ame", true); ok && c.Match(s, p, reAME, adapters.CodeFormat, "a decimal with exactly 2 decimals") {
		if s == "0.00" {
			c.Add(p, adapters.CodeRange, "must be greater than 0.00")
		} else {
			n.ame = field{s, true}
		}
	}

	if ins, p, ok := c.Member(top, "", "insurer", false); ok {
		if ins = c.Object(ins, p); ins != nil {
			n.insurerPresent = true
			if s, sp, ok := c.Str(ins, p, "code", true); ok && c.Match(s, sp, reInsurer, adapters.CodeFormat, "3 to 12 upper-case letters or digits") {
				n.insurerCode = field{s, true}
			}
			if s, sp, ok := c.Str(ins, p, "policyNo", true); ok && c.Match(s, sp, rePolicy, adapters.CodeFormat, "1 to 30 letters, digits, '/' or '-'") {
				n.policyNo = field{s, true}
			}
			c.Unknown(ins, p, "code", "policyNo")
		}
	}

	c.Unknown(top, "", "format", "noticeId", "amendsNoticeId", "submittedAt", "employer", "reporter", "worker", "incident", "outcome", "ame", "insurer")

	c.crossRules(n, top)
	n.problems = c.Problems
	return n
}

func (c *checker) noticeID(obj *jsondoc.Value, name string, required bool) field {
	s, p, ok := c.Str(obj, "", name, required)
	if !ok {
		return field{}
	}
	if l := utf8.RuneCountInString(s); l < 1 || l > 32 {
		c.Add(p, adapters.CodeRange, "must be 1 to 32 characters")
		return field{}
	}
	if !c.Match(s, p, reNoticeID, adapters.CodeFormat, "only A-Z a-z 0-9 . _ / -") {
		return field{}
	}
	return field{s, true}
}

func (c *checker) textMember(obj *jsondoc.Value, ptr, name string, required bool, min, max int) field {
	s, p, ok := c.Str(obj, ptr, name, required)
	if ok && c.Text(s, p, min, max) {
		return field{s, true}
	}
	return field{}
}

func (c *checker) localDateTime(obj *jsondoc.Value, ptr, name string) dtField {
	s, p, ok := c.Str(obj, ptr, name, true)
	if !ok || !c.Match(s, p, reLocalDT, adapters.CodeFormat, "dd/MM/yyyy HH:mm") {
		return dtField{}
	}
	t, err := time.ParseInLocation("02/01/2006 15:04", s, singapore)
	if err != nil {
		c.Add(p, adapters.CodeDate, "is not a real date and time")
		return dtField{}
	}
	return dtField{t, true}
}

func (c *checker) localDate(obj *jsondoc.Value, ptr, name string) dField {
	s, p, ok := c.Str(obj, ptr, name, true)
	if !ok || !c.Match(s, p, reLocalD, adapters.CodeFormat, "dd/MM/yyyy") {
		return dField{}
	}
	t, err := time.Parse("02/01/2006", s)
	if err != nil {
		c.Add(p, adapters.CodeDate, "is not a real date")
		return dField{}
	}
	return dField{mapping.DateOf(t), true}
}

func (c *checker) readWorker(w *jsondoc.Value, p string) workerFields {
	var wf workerFields
	wf.name = c.textMember(w, p, "name", true, 1, 100)
	if s, sp, ok := c.Str(w, p, "idType", true); ok && c.OneOf(s, sp, idTypes) {
		wf.idType = field{s, true}
	}
	if s, sp, ok := c.Str(w, p, "idNo", true); ok {
		re, what := reNRICAny, "an NRIC or FIN (letter, 7 digits, letter)"
		if wf.idType.ok && wf.idType.v == "NRIC" {
			re, what = reNRIC, "an NRIC (S or T, 7 digits, letter)"
		} else if wf.idType.ok {
			re, what = reFIN, "a FIN (F, G or M, 7 digits, letter)"
		}
		if c.Match(s, sp, re, adapters.CodeFormat, what) {
			if mapping.ValidNRIC(s) {
				wf.idNo = field{s, true}
			} else {
				c.Add(sp, adapters.CodeChecksum, "check letter does not match")
			}
		}
	}
	if s, sp, ok := c.Str(w, p, "myKadNo", false); ok {
		wf.myKadPresent = true
		switch {
		case !reMyKad.MatchString(s):
			c.Add(sp, adapters.CodeFormat, "must be 12 digits without hyphens")
		case !mapping.MyKadPlaceOfBirthValid(s[6:8]):
			c.Add(sp, adapters.CodeCode, "place-of-birth code was never issued")
		default:
			wf.myKadCandidates = mapping.MyKadBirthCandidates(s[:6])
			if len(wf.myKadCandidates) == 0 {
				c.Add(sp, adapters.CodeDate, "first six digits are not a real date")
			} else {
				wf.myKad = field{s, true}
			}
		}
	} else if _, present := w.Get("myKadNo"); present {
		wf.myKadPresent = true
	}
	if pp, pptr, ok := c.Member(w, p, "passport", false); ok {
		wf.passportPresent = true
		if pp = c.Object(pp, pptr); pp != nil {
			if s, sp, ok := c.Str(pp, pptr, "number", true); ok && c.Match(s, sp, rePassport, adapters.CodeFormat, "5 to 20 upper-case letters or digits") {
				wf.passportNo = field{s, true}
			}
			if s, sp, ok := c.Str(pp, pptr, "country", true); ok && c.Country(s, sp) {
				wf.passportCountry = field{s, true}
			}
			c.Unknown(pp, pptr, "number", "country")
		}
	} else if _, present := w.Get("passport"); present {
		wf.passportPresent = true
	}
	if _, present := w.Get("dateOfBirth"); present {
		wf.dob = c.localDate(w, p, "dateOfBirth")
	}
	if s, sp, ok := c.Str(w, p, "sex", false); ok && c.OneOf(s, sp, sexes) {
		wf.sex = field{s, true}
	}
	if s, sp, ok := c.Str(w, p, "nationality", true); ok && c.Country(s, sp) {
		wf.nationality = field{s, true}
	}
	if occ, op, ok := c.Member(w, p, "occupation", true); ok {
		if occ = c.Object(occ, op); occ != nil {
			if s, sp, ok := c.Str(occ, op, "ssoc", true); ok && c.Match(s, sp, reSSOC, adapters.CodeFormat, "5 digits") {
				wf.ssoc = field{s, true}
			}
			wf.title = c.textMember(occ, op, "title", false, 1, 100)
			c.Unknown(occ, op, "ssoc", "title")
		}
	}
	c.Unknown(w, p, "name", "idType", "idNo", "myKadNo", "passport", "dateOfBirth", "sex", "nationality", "occupation")
	return wf
}

func (c *checker) readIncident(n *notice, inc *jsondoc.Value, p string) {
	if s, sp, ok := c.Str(inc, p, "type", true); ok && c.OneOf(s, sp, incidentTypes) {
		n.incidentType = field{s, true}
	}
	n.occurredAt = c.localDateTime(inc, p, "occurredAt")

	if loc, lp, ok := c.Member(inc, p, "location", true); ok {
		if loc = c.Object(loc, lp); loc != nil {
			if s, sp, ok := c.Str(loc, lp, "country", true); ok && c.Country(s, sp) {
				n.locCountry = field{s, true}
			}
			if s, sp, ok := c.Str(loc, lp, "postalCode", false); ok {
				// The pattern depends on the country; for a country other than SG
				// and MY the code is not allowed at all (R10, in crossRules).
				switch {
				case !n.locCountry.ok:
				case n.locCountry.v == "SG":
					if c.Match(s, sp, rePostSG, adapters.CodeFormat, "6 digits for SG") {
						n.postalCode = field{s, true}
					}
				case n.locCountry.v == "MY":
					if c.Match(s, sp, rePostMY, adapters.CodeFormat, "5 digits for MY") {
						n.postalCode = field{s, true}
					}
				default:
					n.postalCode = field{s, true}
				}
			}
			n.address = c.textMember(loc, lp, "address", false, 1, 200)
			c.Unknown(loc, lp, "country", "postalCode", "address")
		}
	}

	if cm, cp, ok := c.Member(inc, p, "commute", false); ok {
		if cm = c.Object(cm, cp); cm != nil {
			n.commutePresent = true
			if s, sp, ok := c.Str(cm, cp, "direction", true); ok && c.OneOf(s, sp, directions) {
				n.direction = field{s, true}
			}
			if s, sp, ok := c.Str(cm, cp, "segment", true); ok && c.OneOf(s, sp, segments) {
				n.segment = field{s, true}
			}
			if s, sp, ok := c.Str(cm, cp, "mode", true); ok && c.OneOf(s, sp, modes) {
				n.mode = field{s, true}
			}
			if s, sp, ok := c.Str(cm, cp, "crossing", false); ok && c.OneOf(s, sp, crossings) {
				n.cross = field{s, true}
			}
			c.Unknown(cm, cp, "direction", "segment", "mode", "crossing")
		}
	} else if _, present := inc.Get("commute"); present {
		n.commutePresent = true
	}

	if s, sp, ok := c.Str(inc, p, "description", true); ok && c.Text(s, sp, 1, 4000) {
		if hasControl(s) {
			c.Add(sp, adapters.CodeFormat, "must not contain control characters")
		} else {
			n.description = field{s, true}
		}
	}
	if s, sp, ok := c.Str(inc, p, "descriptionLang", false); ok && c.Match(s, sp, reLang, adapters.CodeFormat, "a BCP 47 language tag") {
		n.descriptionLang = field{s, true}
	}

	if arr, ap, ok := c.Member(inc, p, "injuries", true); ok {
		switch {
		case arr.Kind != jsondoc.Array:
			c.Add(ap, adapters.CodeType, "must be an array, not "+arr.Kind.String())
		case len(arr.Items) < 1 || len(arr.Items) > 10:
			c.Add(ap, adapters.CodeRange, "must have 1 to 10 items")
		default:
			for i, it := range arr.Items {
				ip := jsondoc.Index(ap, i)
				var inj injury
				if it.Kind == jsondoc.Null {
					c.Add(ip, adapters.CodeType, "null is not allowed")
				} else if it = c.Object(it, ip); it != nil {
					if s, sp, ok := c.Str(it, ip, "bodyPart", true); ok && c.OneOf(s, sp, bodyParts) {
						inj.bodyPart = field{s, true}
					}
					if s, sp, ok := c.Str(it, ip, "side", false); ok && c.OneOf(s, sp, sides) {
						inj.side = field{s, true}
					}
					if s, sp, ok := c.Str(it, ip, "nature", true); ok && c.OneOf(s, sp, natures) {
						inj.nature = field{s, true}
					}
					c.Unknown(it, ip, "bodyPart", "side", "nature")
				}
				n.injuries = append(n.injuries, inj)
			}
		}
	}
	c.Unknown(inc, p, "type", "occurredAt", "location", "commute", "description", "descriptionLang", "injuries")
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
		c.Add("/amendsNoticeId", adapters.CodeConsistency, "must differ from noticeId")
	}
	// R2
	if _, workerPresent := top.Get("worker"); workerPresent && !w.myKadPresent && !w.passportPresent {
		if wv, _ := top.Get("worker"); wv.Kind == jsondoc.Object {
			c.Add("/worker/myKadNo", adapters.CodeMissing, "at least one of myKadNo and passport is required")
		}
	}
	var accident mapping.Date
	if n.occurredAt.ok {
		accident = mapping.DateOf(n.occurredAt.t)
	}
	// R3: MyKad age window, then agreement with dateOfBirth.
	if w.myKad.ok && n.occurredAt.ok {
		if d, ok := mapping.MyKadBirthDate(w.myKadCandidates, accident); !ok {
			c.Add("/worker/myKadNo", adapters.CodeConsistency, "no reading of the birth date gives an age of 15 to 99 on the accident date")
		} else if w.dob.ok && w.dob.d != d {
			c.Add("/worker/myKadNo", adapters.CodeConsistency, "birth date in the MyKad number differs from dateOfBirth")
		} else {
			w.myKadBirth = field{d.String(), true}
		}
	}
	// R3a
	if w.dob.ok && n.occurredAt.ok && !mapping.InAgeWindow(w.dob.d, accident) {
		c.Add("/worker/dateOfBirth", adapters.CodeConsistency, "age on the accident date must be 15 to 99")
	}
	// R4
	if w.sex.ok && w.myKad.ok && mapping.MyKadSex(w.myKad.v) != w.sex.v {
		c.Add("/worker/sex", adapters.CodeConsistency, "does not agree with the last digit of the MyKad number")
	}
	// R5
	if n.occurredAt.ok && n.submittedAt.ok && n.occurredAt.t.After(n.submittedAt.t) {
		c.Add("/incident/occurredAt", adapters.CodeConsistency, "must not be after submittedAt")
	}
	// R6
	if n.incidentType.ok {
		commuting := n.incidentType.v == "COMMUTING_ACCIDENT"
		if commuting && !n.commutePresent {
			c.Add("/incident/commute", adapters.CodeMissing, "required for a COMMUTING_ACCIDENT")
		} else if !commuting && n.commutePresent {
			c.Add("/incident/commute", adapters.CodeConsistency, "only allowed for a COMMUTING_ACCIDENT")
		}
	}
	// R7
	if n.segment.ok && n.locCountry.ok {
		ctry := n.locCountry.v
		bad := (n.segment.v == "MALAYSIA" && ctry != "MY") ||
			(n.segment.v == "SINGAPORE" && ctry != "SG") ||
			(n.segment.v == "CHECKPOINT" && ctry != "SG" && ctry != "MY")
		if bad {
			c.Add("/incident/commute/segment", adapters.CodeConsistency, "does not agree with incident.location.country")
		}
	}
	// R8
	if n.fatalOK {
		if n.fatal && !n.dateOfDeathPresent {
			c.Add("/outcome/dateOfDeath", adapters.CodeMissing, "required when fatal is true")
		} else if !n.fatal && n.dateOfDeathPresent {
			c.Add("/outcome/dateOfDeath", adapters.CodeConsistency, "only allowed when fatal is true")
		}
	}
	// R9
	if n.fatalOK && n.fatal && n.dateOfDeath.ok && n.occurredAt.ok && n.submittedAt.ok {
		d := n.dateOfDeath.d
		if d.Before(accident) || mapping.DateOf(n.submittedAt.t).Before(d) {
			c.Add("/outcome/dateOfDeath", adapters.CodeConsistency, "must be between the accident date and the submission date")
		}
	}
	// R10
	if n.postalCode.ok && n.locCountry.ok && n.locCountry.v != "SG" && n.locCountry.v != "MY" {
		n.postalCode.ok = false
		c.Add("/incident/location/postalCode", adapters.CodeConsistency, "postal codes are only allowed for SG and MY")
	}
}
