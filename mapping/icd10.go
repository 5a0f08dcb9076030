package mapping

// ICD10ESAW is the ICD-10 category -> ESAW crosswalk for insurer claims
// (canonical §6.4): {nature, part}.
var ICD10ESAW = map[string][2]string{
	"S00": {"011", "10"}, "S01": {"012", "10"}, "S02": {"020", "10"}, "S06": {"051", "11"},
	"S22": {"020", "41"}, "S52": {"020", "52"}, "S60": {"011", "53"}, "S61": {"012", "53"},
	"S62": {"020", "53"}, "S63": {"030", "53"}, "S68": {"040", "53"}, "S80": {"011", "62"},
	"S82": {"020", "62"}, "S83": {"030", "62"}, "S92": {"020", "64"}, "S93": {"030", "63"},
	"T07": {"120", "78"}, "T67": {"101", "71"},
}

// ExternalCause reports whether an ICD-10 code is in chapter XX (V, W, X, Y).
func ExternalCause(code string) bool {
	return code != "" && (code[0] == 'V' || code[0] == 'W' || code[0] == 'X' || code[0] == 'Y')
}
