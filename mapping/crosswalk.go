package mapping

// Target is where a crosswalk maps a source code. Approx is set when the
// mapping merges distinct source codes or is a documented crosswalk decision,
// so adapters can record it as a provenance warning.
type Target struct {
	Code   string
	Approx string // non-empty: why the mapping is approximate
}

// SGBodyPartESAW maps the Singapore body-part words (sg-employer-notice/v1
// §4.4) to ESAW part-of-body codes (canonical §6.1).
var SGBodyPartESAW = map[string]Target{
	"HEAD":       {Code: "10"},
	"FACE":       {Code: "12"},
	"EYE":        {Code: "13"},
	"NECK":       {Code: "21"},
	"BACK":       {Code: "31"},
	"CHEST":      {Code: "42"},
	"ABDOMEN":    {Code: "43"},
	"SHOULDER":   {Code: "51"},
	"ARM":        {Code: "52"},
	"WRIST":      {Code: "55"},
	"HAND":       {Code: "53"},
	"FINGER":     {Code: "54"},
	"LEG":        {Code: "62"},
	"KNEE":       {Code: "62", Approx: "KNEE and LEG share ESAW 62 (leg, including knee)"},
	"ANKLE":      {Code: "63"},
	"FOOT":       {Code: "64"},
	"TOE":        {Code: "65"},
	"WHOLE BODY": {Code: "71"},
}

// SGNatureESAW maps the Singapore nature-of-injury words (§4.5) to ESAW
// type-of-injury codes (canonical §6.2).
var SGNatureESAW = map[string]Target{
	"ABRASION":          {Code: "011", Approx: "ABRASION and BRUISE share ESAW 011 (superficial injuries)"},
	"BRUISE":            {Code: "011", Approx: "ABRASION and BRUISE share ESAW 011 (superficial injuries)"},
	"CUT":               {Code: "012"},
	"FRACTURE":          {Code: "020"},
	"DISLOCATION":       {Code: "031"},
	"SPRAIN":            {Code: "032"},
	"AMPUTATION":        {Code: "040"},
	"CONCUSSION":        {Code: "051"},
	"BURN":              {Code: "061"},
	"CHEMICAL BURN":     {Code: "062"},
	"POISONING":         {Code: "071"},
	"HEAT STROKE":       {Code: "101"},
	"ELECTRIC SHOCK":    {Code: "112", Approx: "ELECTRIC SHOCK mapped to ESAW 112 (traumatic shocks) by crosswalk decision"},
	"MULTIPLE INJURIES": {Code: "120"},
}

// SSOCToISCO08 is the SSOC 2020 -> ISCO-08 crosswalk (canonical §6.5). An
// empty target means the SSOC code spans several ISCO-08 unit groups.
var SSOCToISCO08 = map[string]string{
	"51201": "5120",
	"71261": "7126",
	"72120": "7212",
	"74110": "7411",
	"83321": "8332",
	"83441": "8344",
	"91131": "9112",
	"93100": "",
	"93201": "9321",
}

// ISCO08ForSSOC returns the ISCO-08 unit group for an SSOC 2020 code and
// whether the crosswalk has one.
func ISCO08ForSSOC(ssoc string) (string, bool) {
	t, ok := SSOCToISCO08[ssoc]
	return t, ok && t != ""
}

// SGCrossingCode maps sg-employer-notice/v1 crossings to canonical §6.7 codes.
var SGCrossingCode = map[string]string{
	"WOODLANDS": "WOODLANDS_CAUSEWAY",
	"TUAS":      "TUAS_SECOND_LINK",
	"RTS_LINK":  "RTS_LINK",
}
