// Package adaptertest holds what every adapter's tests check in the same way:
// the rules canonical-record-v1 sets for every record, whichever format it
// came from, and golden files with -update.
//
// The record rules are computed here from the specification's text, not with
// the mapping code the adapters use (UUIDv5 from SHA-1, dates and money with
// the standard library), so that a fault shared by an adapter and package
// mapping still shows. The adapters run them on their examples and on every
// valid document their fuzz targets find.
package adaptertest

import (
	"crypto/sha1"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
)

// The format ids, as canonical-record-v1 §3.2 names them.
const (
	formatSG      = "sg-employer-notice/v1"
	formatInsurer = "insurer-claim/v1"
	formatAgency  = "agency-soap/v1"
)

// Source is what a test knows about the message a record was made from.
type Source struct {
	Format     string            // the partner format's id
	ReceivedAt time.Time         // adapters.Meta.ReceivedAt given to the adapter
	Rates      mapping.RateTable // the rate table given to the adapter
}

// CheckRecord reports, as test errors, every rule of the canonical record
// that rec breaks.
func CheckRecord(t testing.TB, rec *schema.Record, src Source) {
	t.Helper()
	for _, v := range Violations(rec, src) {
		t.Errorf("record %s: %s", rec.RecordID, v)
	}
}

// Violations lists the rules of canonical-record-v1 that rec breaks, each as
// a sentence naming the section.
func Violations(rec *schema.Record, src Source) []string {
	c := &checker{rec: rec, src: src}
	if err := schema.ValidateRecord(rec); err != nil {
		c.add("the canonical JSON Schema refuses it: %v", err)
	}
	c.identity()
	c.provenance()
	c.person()
	c.accident()
	c.injuries()
	c.outcome()
	c.money()
	c.deadlines()
	return c.found
}

type checker struct {
	rec   *schema.Record
	src   Source
	found []string
}

func (c *checker) add(format string, args ...any) {
	c.found = append(c.found, fmt.Sprintf(format, args...))
}

// identity: §2 (sourceKey, recordId, supersedes) and §3.1 (exchange).
func (c *checker) identity() {
	r := c.rec
	fields := map[string]int{formatSG: 3, formatInsurer: 4, formatAgency: 3}[c.src.Format]
	if parts := strings.Split(r.SourceKey, "|"); parts[0] != c.src.Format || len(parts) != fields {
		c.add("§2: sourceKey %q is not %s with %d fields", r.SourceKey, c.src.Format, fields)
	}
	if want := uuid5(r.SourceKey); r.RecordID != want {
		c.add("§2: recordId %s, want %s, the UUIDv5 of the sourceKey", r.RecordID, want)
	}
	if r.Supersedes == r.RecordID {
		c.add("§2: the record supersedes itself")
	}
	if (r.Exchange != nil) != (c.src.Format == formatAgency) {
		c.add("§3.1: exchange present %t for %s", r.Exchange != nil, c.src.Format)
	}
}

// uuid5 is RFC 9562 §5.5 over the canonical namespace (§2).
func uuid5(name string) string {
	ns := []byte{0xc0, 0xa8, 0xf3, 0xe2, 0x5b, 0x1d, 0x4e, 0x6f, 0x9a, 0x27, 0x3d, 0x4c, 0x5b, 0x6a, 0x7e, 0x81}
	h := sha1.Sum(append(ns, name...))
	u := h[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// provenance: §3.2.
func (c *checker) provenance() {
	p := c.rec.Provenance
	if p.Format != c.src.Format {
		c.add("§3.2: provenance.format %q, want %q", p.Format, c.src.Format)
	}
	if want := c.src.ReceivedAt.UTC().Format("2006-01-02T15:04:05Z"); p.ReceivedAt != want {
		c.add("§3.2: provenance.receivedAt %q, want %q", p.ReceivedAt, want)
	}
	if p.CrosswalkVersion != "2026.1" {
		c.add("§3.2: crosswalkVersion %q", p.CrosswalkVersion)
	}
	key := strings.Split(c.rec.SourceKey, "|")
	if len(key) < 3 {
		return
	}
	sender := map[string]string{formatSG: "SG-UEN:" + key[1], formatInsurer: "INSURER:" + key[1], formatAgency: key[1]}[c.src.Format]
	if p.Sender != sender {
		c.add("§3.2: provenance.sender %q, want %q (from the sourceKey)", p.Sender, sender)
	}
	if c.src.Format != formatInsurer && p.SourceMessageID != key[2] {
		c.add("§3.2: sourceMessageId %q, want %q (from the sourceKey)", p.SourceMessageID, key[2])
	}
}

// idCountry is the country each identifier scheme implies (§3.3, Id).
var idCountry = map[string]string{"MY_NRIC": "MY", "SG_NRIC": "SG", "SG_FIN": "SG", "TH_PID": "TH", "BN_IC": "BN"}

// person: §3.3, and what every format requires of the person it maps: the
// first MY_NRIC, else the first passport, is the primary id; an age of 15–99
// on the accident date (sg-employer-notice §4.3, insurer-claim R10,
// agency-soap C4); a MyKad's birth date and sex agree with those given
// (sg-employer-notice §4.3, insurer-claim §4; not agency-soap).
func (c *checker) person() {
	p := c.rec.Person
	ids := append([]schema.ID{p.PrimaryID}, p.OtherIDs...)
	seen := map[string]bool{}
	for _, id := range ids {
		if want, ok := idCountry[id.Scheme]; ok && id.Country != want {
			c.add("§3.3: %s identifier with country %q, want %q", id.Scheme, id.Country, want)
		}
		if seen[id.Scheme] {
			c.add("§3.3: scheme %s twice among the identifiers", id.Scheme)
		}
		seen[id.Scheme] = true
	}
	if p.PrimaryID.Scheme == "PASSPORT" && seen["MY_NRIC"] {
		c.add("§3.3: a passport is the primary id although a MyKad number is among the identifiers")
	}
	occurred, okOcc := parseDate(c.rec.Accident.OccurredDate)
	if dob, ok := parseDate(p.DateOfBirth); ok && okOcc {
		if age := completedYears(dob, occurred); age < 15 || age > 99 {
			c.add("person.dateOfBirth %s gives an age of %d on %s", p.DateOfBirth, age, c.rec.Accident.OccurredDate)
		}
	}
	if c.src.Format == formatAgency {
		return
	}
	for _, id := range ids {
		if id.Scheme != "MY_NRIC" || len(id.Value) != 12 {
			continue
		}
		if p.DateOfBirth != "" && len(p.DateOfBirth) == 10 && id.Value[:6] != p.DateOfBirth[2:4]+p.DateOfBirth[5:7]+p.DateOfBirth[8:10] {
			c.add("the MyKad number's birth date differs from person.dateOfBirth %s", p.DateOfBirth)
		}
		sex := "F"
		if (id.Value[11]-'0')%2 == 1 {
			sex = "M"
		}
		if p.Sex != "" && p.Sex != sex || p.Sex == "" && id == p.PrimaryID {
			c.add("person.sex %q, the MyKad's last digit gives %s", p.Sex, sex)
		}
	}
}

// accident: §3.5.
func (c *checker) accident() {
	a := c.rec.Accident
	loc, err := time.LoadLocation(a.Zone)
	if err != nil || a.Zone == "" || a.Zone == "Local" {
		c.add("§3.5: zone %q is not an IANA name", a.Zone)
		return
	}
	if c.src.Format == formatSG && a.Zone == "Asia/Singapore" {
		// sg-employer-notice/v1 §2 item 6 defines its Asia/Singapore as
		// UTC+08:00 for every date; the tz database's was another offset
		// before 1982 (+07:30, earlier +07:20, +09:00 and local mean time),
		// so a notice of an incident then is read as its source defines it.
		loc = time.FixedZone(a.Zone, 8*60*60)
	}
	if a.OccurredAt != "" {
		at, err := time.Parse(time.RFC3339, a.OccurredAt)
		if err == nil && at.In(loc).Format(time.DateOnly) != a.OccurredDate {
			c.add("§3.5: occurredAt %s is %s in %s, but occurredDate is %s", a.OccurredAt, at.In(loc).Format(time.DateOnly), a.Zone, a.OccurredDate)
		}
	}
	if a.CommutingLeg != nil && a.Category != "COMMUTING" {
		c.add("§3.5: a commutingLeg with category %s", a.Category)
	}
	for _, code := range a.ExternalCauseICD10 {
		if !chapterXX(code) {
			c.add("§3.5: externalCauseIcd10 holds %s, not of chapter XX", code)
		}
	}
}

func chapterXX(icd10 string) bool { return icd10 != "" && strings.ContainsRune("VWXY", rune(icd10[0])) }

// The ESAW code lists of §6.6.
var (
	esawNature = strings.Fields(`000 010 011 012 019 020 021 022 029 030 031 032 039 040 050 051 052 059
		060 061 062 063 069 070 071 072 079 080 081 082 089 090 091 092 099 100 101 102 103 109 110 111 112 119 120 999`)
	esawPart = strings.Fields(`00 10 11 12 13 14 15 18 19 20 21 29 30 31 39 40 41 42 43 48 49 50 51 52 53 54 55 58 59
		60 61 62 63 64 65 68 69 70 71 78 99`)
)

// injuries: §3.6 and §6.
func (c *checker) injuries() {
	for i, inj := range c.rec.Injuries {
		if !contains(esawNature, inj.NatureESAW) || !contains(esawPart, inj.BodyPartESAW) {
			c.add("§6.6: injuries[%d] ESAW %s/%s not in the code lists", i, inj.NatureESAW, inj.BodyPartESAW)
		}
		if chapterXX(inj.ICD10) {
			c.add("§6.4: injuries[%d] is the external cause %s", i, inj.ICD10)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// outcome: §3.7.
func (c *checker) outcome() {
	o := c.rec.Outcome
	if (o.DateOfDeath != "") != o.Fatal {
		c.add("§3.7: fatal %t with dateOfDeath %q (every format gives the date if and only if fatal)", o.Fatal, o.DateOfDeath)
	}
	if o.DateOfDeath != "" && o.DateOfDeath < c.rec.Accident.OccurredDate {
		c.add("§3.7: dateOfDeath %s before the accident on %s", o.DateOfDeath, c.rec.Accident.OccurredDate)
	}
	if o.MCPeriods == nil {
		return
	}
	days := 0
	for _, p := range o.MCPeriods {
		from, ok1 := parseDate(p.From)
		to, ok2 := parseDate(p.To)
		if !ok1 || !ok2 || to.Before(from) {
			c.add("§3.7: mcPeriod %s–%s", p.From, p.To)
			return
		}
		days += int(to.Sub(from).Hours()/24) + 1
	}
	if o.MCDays == nil || *o.MCDays != days {
		c.add("§3.7: mcDays %v, the periods hold %d days", o.MCDays, days)
	}
}

// money: §3.8, §4 and fx of §3.1.
func (c *checker) money() {
	var all []*schema.Money
	for i := range c.rec.Wages {
		all = append(all, &c.rec.Wages[i].Money)
	}
	for _, oc := range c.rec.OtherCover {
		for _, m := range []*schema.Money{oc.MedicalExpenses, oc.WageLoss} {
			if m != nil {
				all = append(all, m)
			}
		}
	}
	for _, m := range all {
		c.checkMoney(m)
	}
	switch fx := c.rec.FX; {
	case fx == nil && len(all) > 0:
		c.add("§3.1: money without fx")
	case fx != nil && len(all) == 0:
		c.add("§3.1: fx without money")
	case fx != nil && (fx.Table != c.src.Rates.ID || fx.Date != c.rec.Accident.OccurredDate):
		c.add("§4: fx %s on %s, want %s on the accident date %s", fx.Table, fx.Date, c.src.Rates.ID, c.rec.Accident.OccurredDate)
	}
}

// checkMoney: myrAmount = amount × myrRate, exactly, rounded to 2 decimals half
// away from zero; the rate as the table writes it; the amount with its
// currency's minor-unit digits.
func (c *checker) checkMoney(m *schema.Money) {
	rate, ok := c.src.Rates.Rates[m.Currency]
	if !ok || m.MYRRate != rate {
		c.add("§4: %s at rate %q, the table has %q", m.Currency, m.MYRRate, rate)
		return
	}
	if i := strings.IndexByte(m.Amount, '.'); i < 0 || len(m.Amount)-i-1 != c.src.Rates.Minor[m.Currency] {
		c.add("§1: %s amount %q without %d decimals", m.Currency, m.Amount, c.src.Rates.Minor[m.Currency])
	}
	a, ok1 := new(big.Rat).SetString(m.Amount)
	r, ok2 := new(big.Rat).SetString(rate)
	if !ok1 || !ok2 {
		c.add("§4: amount %q or rate %q is not a decimal", m.Amount, rate)
		return
	}
	hundredths := new(big.Rat).Mul(new(big.Rat).Mul(a, r), big.NewRat(100, 1))
	q, rem := new(big.Int).QuoRem(hundredths.Num(), hundredths.Denom(), new(big.Int))
	if twice := new(big.Int).Mul(new(big.Int).Abs(rem), big.NewInt(2)); twice.Cmp(hundredths.Denom()) >= 0 {
		q.Add(q, big.NewInt(int64(hundredths.Sign())))
	}
	neg, abs := "", new(big.Int).Abs(q)
	if q.Sign() < 0 {
		neg = "-"
	}
	s := fmt.Sprintf("%03d", abs)
	if want := neg + s[:len(s)-2] + "." + s[len(s)-2:]; m.MYRAmount != want {
		c.add("§4: %s %s at %s is MYR %s, the record says %s", m.Currency, m.Amount, rate, want, m.MYRAmount)
	}
}

// deadlines: §5.
func (c *checker) deadlines() {
	d := c.rec.Deadlines
	occurred, ok := parseDate(c.rec.Accident.OccurredDate)
	if !ok {
		return
	}
	if len(d) == 0 || d[0].Code != "PERKESO_CLAIM_LIMIT" {
		c.add("§5: PERKESO_CLAIM_LIMIT is not the first deadline")
		return
	}
	y, m, day := occurred.Date()
	limit := time.Date(y+1, m, day, 0, 0, 0, 0, time.UTC)
	if limit.Month() != m { // 29 February: the last day of that month
		limit = time.Date(y+1, m+1, 0, 0, 0, 0, 0, time.UTC)
	}
	if want := limit.Format(time.DateOnly); d[0].DueDate != want || d[0].Met != nil {
		c.add("§5: PERKESO_CLAIM_LIMIT %s, want %s", d[0].DueDate, want)
	}
	order := []string{"PERKESO_CLAIM_LIMIT", "SG_WICA_FATAL_REPORT", "DECISION_REQUESTED_BY"}
	last, fatalReport := 0, false
	for _, dl := range d[1:] {
		i := indexOf(order, dl.Code)
		if i <= last {
			c.add("§5: deadline %s out of order or repeated", dl.Code)
		}
		last = i
		switch dl.Code {
		case "SG_WICA_FATAL_REPORT":
			fatalReport = true
			if want := occurred.AddDate(0, 0, 10).Format(time.DateOnly); dl.DueDate != want || dl.Met == nil {
				c.add("§5: SG_WICA_FATAL_REPORT %s (met %v), want %s and met", dl.DueDate, dl.Met, want)
			}
		case "DECISION_REQUESTED_BY":
			if c.src.Format != formatAgency || dl.Met != nil || dl.DueDate < c.rec.Accident.OccurredDate {
				c.add("§5: DECISION_REQUESTED_BY %s in a record of %s (agency-soap/v1 only, not before the accident)", dl.DueDate, c.src.Format)
			}
		}
	}
	if want := c.src.Format == formatSG && c.rec.Outcome.Fatal; fatalReport != want {
		c.add("§5: SG_WICA_FATAL_REPORT present %t, want %t", fatalReport, want)
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func parseDate(s string) (time.Time, bool) {
	t, err := time.Parse(time.DateOnly, s)
	return t, err == nil
}

// completedYears is an age in completed years on a day.
func completedYears(born, on time.Time) int {
	age := on.Year() - born.Year()
	if on.Month() < born.Month() || on.Month() == born.Month() && on.Day() < born.Day() {
		age--
	}
	return age
}
