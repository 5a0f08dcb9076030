// Package insurerclaim reads insurer-claim/v1, a foreign work-injury
// insurer's batch of up to 500 claim notifications, and maps each accepted
// claim to the canonical Perkeso record. Batch-level problems reject the
// batch; otherwise each claim is judged on its own (§1).
package insurerclaim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	_ "time/tzdata" // tz names whatever the host has installed

	"github.com/perkeso/jambatan/adapters"
	"github.com/perkeso/jambatan/adapters/jsondoc"
	"github.com/perkeso/jambatan/adapters/jsonrules"
	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
	"github.com/perkeso/jambatan/schema/ecmaregexp"
)

// Format is the format id.
const Format = "insurer-claim/v1"

// MaxPayloadBytes is the payload limit of §1.
const MaxPayloadBytes = 4194304

// MaxValues bounds the JSON values of a batch (objects, arrays, strings,
// numbers, literals). A claim holds at most about 60 (30 members, 10
// diagnoses, 3 further identifiers; the example's hold 33-37), so 500 stay
// near 30,000; a 4 MiB payload of small unknown members holds 420,000,
// and its parse tree took about 100 MB.
// Past the bound the batch is refused (413, RANGE at "").
const MaxValues = 100_000

func init() { adapters.RegisterFormat(Format) }

var (
	reInsurer = ecmaregexp.MustCompile(`^[A-Z0-9]{3,12}$`)
	reBatchID = ecmaregexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	reInstant = ecmaregexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$`)
	reClaimNo = ecmaregexp.MustCompile(`^[A-Za-z0-9/-]+$`)
	rePolicy  = ecmaregexp.MustCompile(`^[A-Za-z0-9/-]{1,30}$`)
	reDate8   = ecmaregexp.MustCompile(`^[0-9]{8}$`)
	reTime4   = ecmaregexp.MustCompile(`^[0-9]{4}$`)
	reICD     = ecmaregexp.MustCompile(`^[A-Z][0-9]{2}(\.[0-9A-Z]{1,2})?$`)
	reUEN     = ecmaregexp.MustCompile(`^([0-9]{8}[A-Z]|(18|19|20)[0-9]{2}[0-9]{5}[A-Z]|[RST][0-9]{2}[A-Z]{2}[0-9]{4}[A-Z])$`)
	reRegID   = ecmaregexp.MustCompile(`^[A-Za-z0-9./-]{1,40}$`)
	reMyKad   = ecmaregexp.MustCompile(`^[0-9]{12}$`)
	reSGNRIC  = ecmaregexp.MustCompile(`^[ST][0-9]{7}[A-Z]$`)
	reSGFIN   = ecmaregexp.MustCompile(`^[FGM][0-9]{7}[A-Z]$`)
	reTHPID   = ecmaregexp.MustCompile(`^[0-9]{13}$`)
	reBNIC    = ecmaregexp.MustCompile(`^[0-9]{2}-[0-9]{6}$`)
	rePass    = ecmaregexp.MustCompile(`^[A-Z0-9]{5,20}$`)

	lossTypes  = jsonrules.Set("WORK_ACCIDENT", "COMMUTING_ACCIDENT", "OCCUPATIONAL_DISEASE")
	statuses   = jsonrules.Set("OPEN", "ADMITTED", "DENIED", "SETTLED")
	currencies = jsonrules.Set("MYR", "SGD", "BND", "THB", "IDR")
	idTypes    = jsonrules.Set("MY_NRIC", "SG_NRIC", "SG_FIN", "TH_PID", "BN_IC", "PASSPORT")
	sexes      = jsonrules.Set("M", "F")
	idCountry  = map[string]string{"MY_NRIC": "MY", "SG_NRIC": "SG", "SG_FIN": "SG", "TH_PID": "TH", "BN_IC": "BN"}
)

// Batch is a read batch.
type Batch struct {
	InsurerCode string
	InsurerOK   bool
	BatchID     string
	GeneratedAt time.Time
	TZ          string
	loc         *time.Location
	// Problems are batch-level: any of them rejects the whole batch.
	Problems []adapters.Problem
	Claims   []*Claim
}

// Claim is one claim of a batch.
type Claim struct {
	Index    int
	ClaimNo  string
	Revision int
	Problems []adapters.Problem
	// Hash identifies the claim's member values, whatever their order and
	// white space (§6); set only for a claim without problems.
	Hash string

	v *jsondoc.Value
}

// Read parses and checks a batch. A payload that is not one readable JSON
// object gives *adapters.InvalidError with one SYNTAX (or RANGE) problem.
func Read(payload []byte) (*Batch, error) {
	if len(payload) > MaxPayloadBytes {
		return nil, &adapters.InvalidError{Problems: []adapters.Problem{{Pointer: "", Code: adapters.CodeRange, Message: "payload over 4194304 bytes"}}}
	}
	root, err := jsondoc.ParseBounded(payload, jsondoc.DefaultMaxDepth, MaxValues)
	if errors.Is(err, jsondoc.ErrTooManyValues) {
		return nil, &adapters.InvalidError{Problems: []adapters.Problem{{Pointer: "", Code: adapters.CodeRange, Message: fmt.Sprintf("more than %d JSON values", MaxValues)}}}
	}
	if err != nil || root.Kind != jsondoc.Object {
		msg := "the payload must be one JSON object"
		if err != nil {
			msg = jsondoc.Reason(err)
		}
		return nil, &adapters.InvalidError{Problems: []adapters.Problem{{Pointer: "", Code: adapters.CodeSyntax, Message: msg}}}
	}
	b := &Batch{}
	c := &jsonrules.Checker{Format: Format}
	if s, p, ok := c.Str(root, "", "format", true); ok && s != Format {
		c.Add(p, adapters.CodeCode, "must be "+Format)
	}
	if s, p, ok := c.Str(root, "", "insurerCode", true); ok && c.Match(s, p, reInsurer, adapters.CodeFormat, "3 to 12 upper-case letters or digits") {
		b.InsurerCode, b.InsurerOK = s, true
	}
	if s, p, ok := c.Str(root, "", "batchId", true); ok {
		if n := len([]rune(s)); n < 1 || n > 64 {
			c.Add(p, adapters.CodeRange, "must be 1 to 64 characters")
		} else if c.Match(s, p, reBatchID, adapters.CodeFormat, "only A-Z a-z 0-9 . _ -") {
			b.BatchID = s
		}
	}
	if s, p, ok := c.Str(root, "", "generatedAt", true); ok && c.Match(s, p, reInstant, adapters.CodeFormat, "an RFC 3339 date-time with an offset") {
		if t, err := time.Parse(time.RFC3339Nano, s); err != nil {
			c.Add(p, adapters.CodeDate, "not a real date and time")
		} else {
			b.GeneratedAt = t
		}
	}
	if s, p, ok := c.Str(root, "", "tz", true); ok {
		if loc, err := time.LoadLocation(s); err != nil || s == "Local" || s == "" {
			c.Add(p, adapters.CodeCode, "not a zone of the IANA tz database")
		} else {
			b.TZ, b.loc = s, loc
		}
	}
	var items []*jsondoc.Value
	if arr, p, ok := c.Member(root, "", "claims", true); ok {
		switch {
		case arr.Kind != jsondoc.Array:
			c.Add(p, adapters.CodeType, "must be an array")
		case len(arr.Items) < 1 || len(arr.Items) > 500:
			c.Add(p, adapters.CodeRange, "must have 1 to 500 claims")
		default:
			items = arr.Items
		}
	}
	c.Unknown(root, "", "format", "insurerCode", "batchId", "generatedAt", "tz", "claims")
	// Claims are read even when the batch has problems, for R1.
	seen := map[string]int{}
	for i, it := range items {
		cl := b.readClaim(i, it)
		b.Claims = append(b.Claims, cl)
		if cl.ClaimNo != "" {
			if _, dup := seen[cl.ClaimNo]; dup { // R1
				c.Add(fmt.Sprintf("/claims/%d/claimNo", i), adapters.CodeConsistency, "claimNo appears more than once in the batch")
			}
			seen[cl.ClaimNo] = i
		}
	}
	b.Problems = c.Problems
	return b, nil
}

func date8(c *jsonrules.Checker, obj *jsondoc.Value, ptr, name string, required bool) (mapping.Date, bool) {
	s, p, ok := c.Str(obj, ptr, name, required)
	if !ok || !c.Match(s, p, reDate8, adapters.CodeFormat, "yyyyMMdd") {
		return mapping.Date{}, false
	}
	y, _ := strconv.Atoi(s[:4])
	m, _ := strconv.Atoi(s[4:6])
	d, _ := strconv.Atoi(s[6:])
	dt, real := mapping.NewDate(y, time.Month(m), d)
	if !real {
		c.Add(p, adapters.CodeDate, "not a real date")
	}
	return dt, real
}

type ident struct {
	typ, no, country string
	ptr              string // pointer of the identifier object ("" for the main one: the claimant)
	ok               bool
}

// readClaim reads the i-th claim: its members in document order, then the
// rules across them (§5). Each step adds its problems to the claim's
// checker in that order, which the claim's problem list keeps.
func (b *Batch) readClaim(i int, v *jsondoc.Value) *Claim {
	cl := &Claim{Index: i, v: v}
	ptr := jsondoc.Index("/claims", i)
	c := &jsonrules.Checker{Format: Format, Root: ptr}
	if v.Kind != jsondoc.Object {
		c.Add(ptr, adapters.CodeType, "must be an object")
		cl.Problems = c.Problems
		return cl
	}
	r := &claimReader{b: b, c: c, v: v, ptr: ptr}
	r.readHeader(cl)
	emp := r.readEmployer()
	cla := r.readClaimant()
	loss := r.readLoss()
	c.Unknown(v, ptr, "claimNo", "revision", "policyNo", "lossType", "employer", "claimant", "lossDate", "lossTime", "lossCountry",
		"lossDescription", "icd10", "medicalExpenses", "wageLoss", "permanentIncapacityPct", "dateOfDeath", "status", "statusDate")
	r.checkMyKad(cla)
	r.checkAcross(emp, cla, loss)
	cl.Problems = c.Problems
	if len(cl.Problems) == 0 {
		cl.Hash = valueHash(v) // only a valid claim is compared with earlier versions
	}
	return cl
}

// claimReader reads one claim object v at ptr into c's problems.
type claimReader struct {
	b   *Batch
	c   *jsonrules.Checker
	v   *jsondoc.Value
	ptr string
}

// employerFacts is what the cross-member rules need of the employer.
type employerFacts struct {
	present          bool
	uen, regID       string // "?" when present but not a string
	country          string
	uenOK, countryOK bool
}

// claimantFacts is what the cross-member rules need of the claimant.
type claimantFacts struct {
	present bool
	ptr     string
	ids     []ident // the main identifier, then altIds
	dob     mapping.Date
	dobOK   bool
	sex     string
	sexOK   bool
}

// lossFacts is what the cross-member rules need of the loss and the
// claim's dates.
type lossFacts struct {
	date              mapping.Date
	dateOK            bool
	at                time.Time // with lossTime, in the batch's zone
	hasTime           bool      // at holds lossTime, which passed its checks
	timeGiven         bool      // lossTime is present, whether it passed or not
	icds              []string
	icdOK             bool
	death, status     mapping.Date
	deathOK, statusOK bool
}

// readHeader reads the claim's identity: claimNo, revision, policyNo, lossType.
func (r *claimReader) readHeader(cl *Claim) {
	c, v, ptr := r.c, r.v, r.ptr
	if s, p, ok := c.Str(v, ptr, "claimNo", true); ok {
		if n := len([]rune(s)); n < 1 || n > 30 {
			c.Add(p, adapters.CodeRange, "must be 1 to 30 characters")
		} else if c.Match(s, p, reClaimNo, adapters.CodeFormat, "only A-Z a-z 0-9 / -") {
			cl.ClaimNo = s
		}
	}
	if n, _, ok := c.Integer(v, ptr, "revision", 1, 9999); ok {
		cl.Revision = n
	}
	if s, p, ok := c.Str(v, ptr, "policyNo", true); ok {
		c.Match(s, p, rePolicy, adapters.CodeFormat, "1 to 30 letters, digits, / or -")
	}
	if s, p, ok := c.Str(v, ptr, "lossType", true); ok {
		c.OneOf(s, p, lossTypes)
	}
}

// readEmployer reads the employer object.
func (r *claimReader) readEmployer() employerFacts {
	c, v, ptr := r.c, r.v, r.ptr
	var e employerFacts
	if emp, p, ok := c.Member(v, ptr, "employer", true); ok {
		if emp = c.Object(emp, p); emp != nil {
			e.present = true
			if s, sp, ok := c.Str(emp, p, "uen", false); ok {
				e.uen, e.uenOK = s, c.Match(s, sp, reUEN, adapters.CodeFormat, "a UEN")
			} else if _, present := emp.Get("uen"); present {
				e.uen = "?"
			}
			if s, sp, ok := c.Str(emp, p, "registrationId", false); ok {
				e.regID = s
				c.Match(s, sp, reRegID, adapters.CodeFormat, "1 to 40 of A-Z a-z 0-9 . / -")
			} else if _, present := emp.Get("registrationId"); present {
				e.regID = "?"
			}
			if s, sp, ok := c.Str(emp, p, "country", true); ok && c.Country(s, sp) {
				e.country, e.countryOK = s, true
			}
			if s, sp, ok := c.Str(emp, p, "name", true); ok {
				c.Text(s, sp, 1, 120)
			}
			c.Unknown(emp, p, "uen", "registrationId", "country", "name")
		}
	}
	return e
}

// readClaimant reads the claimant object with its identifiers.
func (r *claimReader) readClaimant() claimantFacts {
	c, v, ptr := r.c, r.v, r.ptr
	f := claimantFacts{ptr: ptr + "/claimant"}
	cp := f.ptr
	if cla, _, ok := c.Member(v, ptr, "claimant", true); ok {
		if cla = c.Object(cla, cp); cla != nil {
			f.present = true
			main := readID(c, cla, cp)
			f.ids = append(f.ids, main)
			if alts, ap, ok := c.Member(cla, cp, "altIds", false); ok {
				switch {
				case alts.Kind != jsondoc.Array:
					c.Add(ap, adapters.CodeType, "must be an array")
				case len(alts.Items) < 1 || len(alts.Items) > 3:
					c.Add(ap, adapters.CodeRange, "must have 1 to 3 items")
				default:
					for k, a := range alts.Items {
						ip := jsondoc.Index(ap, k)
						if a = c.Object(a, ip); a != nil {
							id := readID(c, a, ip)
							c.Unknown(a, ip, "idType", "idNo", "idCountry")
							f.ids = append(f.ids, id)
						}
					}
				}
			}
			if s, sp, ok := c.Str(cla, cp, "name", true); ok {
				c.Text(s, sp, 1, 100)
			}
			f.dob, f.dobOK = date8(c, cla, cp, "dob", true)
			if s, sp, ok := c.Str(cla, cp, "sex", false); ok && c.OneOf(s, sp, sexes) {
				f.sex, f.sexOK = s, true
			}
			c.Unknown(cla, cp, "idType", "idNo", "idCountry", "altIds", "name", "dob", "sex")
		}
	}
	return f
}

// readLoss reads the loss, its diagnoses and amounts, and the claim's
// status.
func (r *claimReader) readLoss() lossFacts {
	c, v, ptr := r.c, r.v, r.ptr
	var f lossFacts
	f.date, f.dateOK = date8(c, v, ptr, "lossDate", true)
	_, f.timeGiven = v.Get("lossTime")
	if s, p, ok := c.Str(v, ptr, "lossTime", false); ok && c.Match(s, p, reTime4, adapters.CodeFormat, "HHmm") {
		h, _ := strconv.Atoi(s[:2])
		m, _ := strconv.Atoi(s[2:])
		if h > 23 || m > 59 {
			c.Add(p, adapters.CodeDate, "not a real time")
		} else if f.dateOK && r.b.loc != nil {
			if f.at, f.hasTime = mapping.LocalInstant(f.date, h, m, r.b.loc); !f.hasTime {
				c.Add(p, adapters.CodeDate, "not a real time on lossDate in tz: the clocks skip it")
			}
		}
	}
	if s, p, ok := c.Str(v, ptr, "lossCountry", true); ok {
		c.Country(s, p)
	}
	if s, p, ok := c.Str(v, ptr, "lossDescription", false); ok {
		c.Text(s, p, 1, 2000)
	}
	if arr, p, ok := c.Member(v, ptr, "icd10", true); ok {
		switch {
		case arr.Kind != jsondoc.Array:
			c.Add(p, adapters.CodeType, "must be an array")
		case len(arr.Items) < 1 || len(arr.Items) > 10:
			c.Add(p, adapters.CodeRange, "must have 1 to 10 codes")
		default:
			f.icdOK = true
			for k, it := range arr.Items {
				ip := jsondoc.Index(p, k)
				if it.Kind != jsondoc.String {
					c.Add(ip, adapters.CodeType, "must be a string")
					f.icdOK = false
					continue
				}
				if !c.Match(it.Str, ip, reICD, adapters.CodeFormat, "an ICD-10 code such as S62.3") {
					f.icdOK = false
					continue
				}
				f.icds = append(f.icds, it.Str)
			}
		}
	}
	for _, name := range []string{"medicalExpenses", "wageLoss"} {
		if m, p, ok := c.Member(v, ptr, name, true); ok {
			if m = c.Object(m, p); m != nil {
				c.Integer(m, p, "amountMinor", 0, 999999999999)
				if s, sp, ok := c.Str(m, p, "currency", true); ok {
					c.OneOf(s, sp, currencies)
				}
				c.Unknown(m, p, "amountMinor", "currency")
			}
		}
	}
	if _, present := v.Get("permanentIncapacityPct"); present {
		c.Integer(v, ptr, "permanentIncapacityPct", 0, 100)
	}
	if _, present := v.Get("dateOfDeath"); present {
		f.death, f.deathOK = date8(c, v, ptr, "dateOfDeath", true)
	}
	if s, p, ok := c.Str(v, ptr, "status", true); ok {
		c.OneOf(s, p, statuses)
	}
	f.status, f.statusOK = date8(c, v, ptr, "statusDate", true)
	return f
}

// checkMyKad checks a MY_NRIC identifier against dob and sex (§4).
func (r *claimReader) checkMyKad(cla claimantFacts) {
	c := r.c
	// Identifier checks that read dob and sex (§4 MY_NRIC).
	for _, id := range cla.ids {
		if id.ok && id.typ == "MY_NRIC" {
			p := id.ptr + "/idNo"
			if cla.dobOK && fmt.Sprintf("%02d%02d%02d", cla.dob.Year%100, int(cla.dob.Month), cla.dob.Day) != id.no[:6] {
				c.Add(p, adapters.CodeConsistency, "the MyKad date differs from dob")
			}
			if cla.sexOK && mapping.MyKadSex(id.no) != cla.sex {
				c.Add(cla.ptr+"/sex", adapters.CodeConsistency, "does not agree with the MyKad last digit")
			}
		}
	}
}

// checkAcross applies the rules across members (§5 R2-R10).
func (r *claimReader) checkAcross(emp employerFacts, cla claimantFacts, loss lossFacts) {
	c, ptr := r.c, r.ptr
	genDate := mapping.Date{}
	genOK := !r.b.GeneratedAt.IsZero() && r.b.loc != nil
	if genOK {
		genDate = mapping.DateOf(r.b.GeneratedAt.In(r.b.loc))
	}
	// R2 reads lossTime when it is given, so a lossTime that failed its own
	// checks leaves R2 unevaluated (§2 item 10 of the employer format).
	if loss.dateOK && genOK && (loss.hasTime || !loss.timeGiven) { // R2
		if (loss.hasTime && loss.at.After(r.b.GeneratedAt)) || (!loss.hasTime && genDate.Before(loss.date)) {
			c.Add(ptr+"/lossDate", adapters.CodeConsistency, "the loss is after generatedAt")
		}
	}
	if loss.statusOK && loss.dateOK && genOK && (loss.status.Before(loss.date) || genDate.Before(loss.status)) { // R3
		c.Add(ptr+"/statusDate", adapters.CodeConsistency, "must be between lossDate and the date of generatedAt")
	}
	if loss.deathOK && loss.dateOK && genOK && (loss.death.Before(loss.date) || genDate.Before(loss.death)) { // R4
		c.Add(ptr+"/dateOfDeath", adapters.CodeConsistency, "must be between lossDate and the date of generatedAt")
	}
	if cla.present { // R5, R7
		primary := false
		types := map[string]bool{}
		for _, id := range cla.ids {
			if id.typ == "MY_NRIC" || id.typ == "PASSPORT" {
				primary = true
			}
			if id.typ != "" && types[id.typ] {
				c.Add(id.ptr+"/idType", adapters.CodeConsistency, "idType appears twice")
			}
			types[id.typ] = true
		}
		if !primary {
			c.Add(cla.ptr, adapters.CodeMissing, "needs a MY_NRIC or PASSPORT identifier")
		}
	}
	if emp.present { // R8
		ep := ptr + "/employer"
		switch {
		case emp.uen == "" && emp.regID == "":
			c.Add(ep+"/uen", adapters.CodeMissing, "one of uen and registrationId is required")
		case emp.uen != "" && emp.regID != "":
			c.Add(ep+"/registrationId", adapters.CodeConsistency, "only one of uen and registrationId")
		case emp.uenOK && emp.countryOK && emp.country != "SG":
			c.Add(ep+"/country", adapters.CodeConsistency, "a uen needs country SG")
		}
	}
	if loss.icdOK { // R9
		seen := map[string]bool{}
		nonXX := false
		for k, code := range loss.icds {
			if seen[code] {
				c.Add(jsondoc.Index(ptr+"/icd10", k), adapters.CodeConsistency, "repeated code")
			}
			seen[code] = true
			if !mapping.ExternalCause(code) {
				nonXX = true
			}
		}
		if !nonXX {
			c.Add(ptr+"/icd10", adapters.CodeConsistency, "at least one code outside chapter XX")
		}
	}
	if cla.dobOK && loss.dateOK && !mapping.InAgeWindow(cla.dob, loss.date) { // R10
		c.Add(cla.ptr+"/dob", adapters.CodeConsistency, "age on lossDate must be 15-99")
	}
}

// readID reads {idType, idNo, idCountry} at ptr, the pointer its
// problems (R7's among them) name.
func readID(c *jsonrules.Checker, obj *jsondoc.Value, ptr string) ident {
	id := ident{ptr: ptr}
	typOK := false
	if s, p, ok := c.Str(obj, ptr, "idType", true); ok && c.OneOf(s, p, idTypes) {
		id.typ, typOK = s, true
	}
	s, p, ok := c.Str(obj, ptr, "idNo", true)
	if ok && typOK {
		id.no = s
		id.ok = checkIDNo(c, id.typ, s, p)
	}
	ctry, cp, hasCountry := c.Str(obj, ptr, "idCountry", false)
	if typOK { // R6
		if id.typ == "PASSPORT" {
			if !hasCountry {
				if _, present := obj.Get("idCountry"); !present {
					c.Add(cp, adapters.CodeMissing, "idCountry is required for a passport")
				}
			} else if c.Country(ctry, cp) {
				id.country = ctry
			}
		} else {
			if _, present := obj.Get("idCountry"); present {
				c.Add(cp, adapters.CodeConsistency, "idCountry only for a passport")
			}
			id.country = idCountry[id.typ]
		}
	}
	return id
}

func checkIDNo(c *jsonrules.Checker, typ, s, p string) bool {
	switch typ {
	case "MY_NRIC":
		if !c.Match(s, p, reMyKad, adapters.CodeFormat, "12 digits") {
			return false
		}
		if !mapping.MyKadPlaceOfBirthValid(s[6:8]) {
			c.Add(p, adapters.CodeCode, "place-of-birth code never issued")
			return false
		}
		if len(mapping.MyKadBirthCandidates(s[:6])) == 0 {
			c.Add(p, adapters.CodeDate, "first six digits are not a real date")
			return false
		}
	case "SG_NRIC", "SG_FIN":
		re := reSGNRIC
		if typ == "SG_FIN" {
			re = reSGFIN
		}
		if !c.Match(s, p, re, adapters.CodeFormat, "letter, 7 digits, letter") {
			return false
		}
		if !mapping.ValidNRIC(s) {
			c.Add(p, adapters.CodeChecksum, "check letter does not match")
			return false
		}
	case "TH_PID":
		if !c.Match(s, p, reTHPID, adapters.CodeFormat, "13 digits") {
			return false
		}
		if !mapping.ValidThaiPID(s) {
			c.Add(p, adapters.CodeChecksum, "check digit does not match")
			return false
		}
	case "BN_IC":
		return c.Match(s, p, reBNIC, adapters.CodeFormat, "NN-NNNNNN")
	case "PASSPORT":
		return c.Match(s, p, rePass, adapters.CodeFormat, "5 to 20 upper-case letters or digits")
	}
	return true
}

// valueHash hashes a claim's member values independently of member order
// and white space.
func valueHash(v *jsondoc.Value) string {
	var walk func(v *jsondoc.Value) any
	walk = func(v *jsondoc.Value) any {
		switch v.Kind {
		case jsondoc.Object:
			m := map[string]any{}
			for _, mem := range v.Members {
				m[mem.Name] = walk(mem.Value)
			}
			return m
		case jsondoc.Array:
			a := make([]any, len(v.Items))
			for i, it := range v.Items {
				a[i] = walk(it)
			}
			return a
		case jsondoc.Number:
			return json.Number(v.Str)
		case jsondoc.String:
			return v.Str
		case jsondoc.Bool:
			return v.Bool
		}
		return nil
	}
	b, _ := json.Marshal(walk(v)) // maps marshal with sorted keys
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// SourceKey of a claim version (canonical §2).
func (b *Batch) SourceKey(cl *Claim) string {
	return fmt.Sprintf("%s|%s|%s|%d", Format, b.InsurerCode, cl.ClaimNo, cl.Revision)
}

func str(v *jsondoc.Value, name string) string {
	m, _ := v.Get(name)
	if m == nil {
		return ""
	}
	return m.Str
}

func d8(s string) mapping.Date {
	y, _ := strconv.Atoi(s[:4])
	m, _ := strconv.Atoi(s[4:6])
	d, _ := strconv.Atoi(s[6:])
	return mapping.Date{Year: y, Month: time.Month(m), Day: d}
}

// Canonical maps a claim without problems (§7).
func (b *Batch) Canonical(cl *Claim, receivedAt time.Time, rates mapping.RateTable) (*schema.Record, error) {
	if len(cl.Problems) > 0 || len(b.Problems) > 0 {
		return nil, errors.New("insurerclaim: claim has problems")
	}
	rates = rates.OrExample()
	v := cl.v
	key := b.SourceKey(cl)
	r := &schema.Record{Schema: schema.RecordSchemaID, RecordID: schema.RecordID(key), SourceKey: key,
		Provenance: schema.Provenance{Format: Format, Sender: "INSURER:" + b.InsurerCode, SourceMessageID: b.BatchID,
			ReceivedAt: receivedAt.UTC().Format("2006-01-02T15:04:05Z"), CrosswalkVersion: mapping.CrosswalkVersion, Unmapped: []schema.Unmapped{}},
		Wages: []schema.Wage{}}
	if cl.Revision > 1 {
		r.Supersedes = schema.RecordID(fmt.Sprintf("%s|%s|%s|%d", Format, b.InsurerCode, cl.ClaimNo, cl.Revision-1))
	}
	cla, _ := v.Get("claimant")
	var ids []schema.ID
	add := func(o *jsondoc.Value) {
		t := str(o, "idType")
		ctry := idCountry[t]
		if t == "PASSPORT" {
			ctry = str(o, "idCountry")
		}
		ids = append(ids, schema.ID{Scheme: t, Value: str(o, "idNo"), Country: ctry})
	}
	add(cla)
	if alts, ok := cla.Get("altIds"); ok {
		for _, a := range alts.Items {
			add(a)
		}
	}
	primary, others, ok := schema.SplitPrimary(ids)
	if !ok {
		return nil, errors.New("no MY_NRIC or PASSPORT identifier")
	}
	r.Person.PrimaryID, r.Person.OtherIDs = primary, others
	r.Person.Name = str(cla, "name")
	r.Person.DateOfBirth = d8(str(cla, "dob")).String()
	r.Person.Sex = str(cla, "sex")
	if r.Person.Sex == "" && r.Person.PrimaryID.Scheme == "MY_NRIC" {
		r.Person.Sex = mapping.MyKadSex(r.Person.PrimaryID.Value)
	}
	emp, _ := v.Get("employer")
	if u := str(emp, "uen"); u != "" {
		r.Employer = schema.Employer{Country: str(emp, "country"), IDScheme: "SG_UEN", ID: u, Name: str(emp, "name")}
	} else {
		r.Employer = schema.Employer{Country: str(emp, "country"), IDScheme: "FOREIGN_REGISTRATION", ID: str(emp, "registrationId"), Name: str(emp, "name")}
	}
	loss := d8(str(v, "lossDate"))
	a := &r.Accident
	a.SourceCategory = str(v, "lossType")
	a.Category = map[string]string{"WORK_ACCIDENT": "WORK", "COMMUTING_ACCIDENT": "COMMUTING", "OCCUPATIONAL_DISEASE": "OCCUPATIONAL_DISEASE"}[a.SourceCategory]
	a.OccurredDate = loss.String()
	if t := str(v, "lossTime"); t != "" {
		h, _ := strconv.Atoi(t[:2])
		m, _ := strconv.Atoi(t[2:])
		at, _ := mapping.LocalInstant(loss, h, m, b.loc) // readLoss refused a time the clocks skip
		a.OccurredAt = at.UTC().Format("2006-01-02T15:04:05Z")
	}
	a.Zone = b.TZ
	a.Location = schema.Location{Country: str(v, "lossCountry")}
	if d := str(v, "lossDescription"); d != "" {
		a.Narrative = &schema.Narrative{Text: d, Lang: "und"}
	}
	a.ExternalCauseICD10 = []string{}
	icds, _ := v.Get("icd10")
	for k, it := range icds.Items {
		code := it.Str
		if mapping.ExternalCause(code) {
			a.ExternalCauseICD10 = append(a.ExternalCauseICD10, code)
			continue
		}
		nat, part := "000", "00"
		if t, ok := mapping.ICD10ESAW[code[:3]]; ok {
			nat, part = t[0], t[1]
		} else {
			r.Provenance.Unmapped = append(r.Provenance.Unmapped, schema.Unmapped{Pointer: fmt.Sprintf("/claims/%d/icd10/%d", cl.Index, k), Value: code})
		}
		r.Injuries = append(r.Injuries, schema.Injury{NatureESAW: nat, BodyPartESAW: part, ICD10: code, Source: schema.InjurySource{Scheme: "ICD10", Code: code}})
	}
	r.Outcome = schema.Outcome{Fatal: str(v, "dateOfDeath") != ""}
	if r.Outcome.Fatal {
		r.Outcome.DateOfDeath = d8(str(v, "dateOfDeath")).String()
	}
	money := func(name string) (*schema.Money, error) {
		m, _ := v.Get(name)
		amt, _ := m.Get("amountMinor")
		minor, _ := strconv.ParseInt(amt.Str, 10, 64)
		cur := str(m, "currency")
		mm, err := rates.ToMYR(rates.MinorToMajor(minor, cur), cur)
		if err != nil {
			return nil, err
		}
		return &schema.Money{Amount: mm.Amount, Currency: mm.Currency, MYRAmount: mm.MYRAmount, MYRRate: mm.MYRRate}, nil
	}
	med, err := money("medicalExpenses")
	if err != nil {
		return nil, err
	}
	wl, err := money("wageLoss")
	if err != nil {
		return nil, err
	}
	rev := cl.Revision
	oc := schema.OtherCover{Kind: "INSURER_CLAIM", InsurerCode: b.InsurerCode, PolicyNo: str(v, "policyNo"), ClaimNo: cl.ClaimNo,
		ClaimRevision: &rev, Status: str(v, "status"), StatusDate: d8(str(v, "statusDate")).String(), MedicalExpenses: med, WageLoss: wl}
	if pct, ok := v.Get("permanentIncapacityPct"); ok {
		n, _ := strconv.Atoi(pct.Str)
		oc.PermanentIncapacityPct = &n
	}
	r.OtherCover = []schema.OtherCover{oc}
	r.FX = &schema.FX{Table: rates.ID, Date: loss.String()}
	r.Deadlines = []schema.Deadline{{Code: mapping.DeadlinePerkesoClaimLimit, DueDate: mapping.PerkesoClaimLimit(loss).String()}}
	return r, nil
}
