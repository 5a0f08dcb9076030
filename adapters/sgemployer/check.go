package sgemployer

import (
	"github.com/perkeso/jambatan/adapters/jsonrules"
	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema/ecmaregexp"
)

// checker is the member-by-member checker of this format.
type checker struct{ jsonrules.Checker }

// The specification's patterns, read as ECMA-262 reads them (the dialect of
// JSON Schema and of a partner's validator), so its \s holds Unicode spaces.
var (
	reNoticeID = ecmaregexp.MustCompile(`^[A-Za-z0-9._/-]+$`)
	reLocalDT  = ecmaregexp.MustCompile(`^[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}$`)
	reLocalD   = ecmaregexp.MustCompile(`^[0-9]{2}/[0-9]{2}/[0-9]{4}$`)
	reUEN      = ecmaregexp.MustCompile(`^([0-9]{8}[A-Z]|(18|19|20)[0-9]{2}[0-9]{5}[A-Z]|[RST][0-9]{2}[A-Z]{2}[0-9]{4}[A-Z])$`)
	rePhone    = ecmaregexp.MustCompile(`^\+[1-9][0-9]{7,14}$`)
	reEmail    = ecmaregexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
	reNRIC     = ecmaregexp.MustCompile(`^[ST][0-9]{7}[A-Z]$`)
	reFIN      = ecmaregexp.MustCompile(`^[FGM][0-9]{7}[A-Z]$`)
	reNRICAny  = ecmaregexp.MustCompile(`^[STFGM][0-9]{7}[A-Z]$`)
	reMyKad    = ecmaregexp.MustCompile(`^[0-9]{12}$`)
	rePassport = ecmaregexp.MustCompile(`^[A-Z0-9]{5,20}$`)
	reSSOC     = ecmaregexp.MustCompile(`^[0-9]{5}$`)
	reLang     = ecmaregexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$`)
	rePostSG   = ecmaregexp.MustCompile(`^[0-9]{6}$`)
	rePostMY   = ecmaregexp.MustCompile(`^[0-9]{5}$`)
	reAME      = ecmaregexp.MustCompile(`^(0|[1-9][0-9]{0,6})\.[0-9]{2}$`)
	reInsurer  = ecmaregexp.MustCompile(`^[A-Z0-9]{3,12}$`)
	rePolicy   = ecmaregexp.MustCompile(`^[A-Za-z0-9/-]{1,30}$`)
)

var (
	idTypes       = jsonrules.Set("NRIC", "FIN")
	sexes         = jsonrules.Set("M", "F")
	incidentTypes = jsonrules.Set("WORK_ACCIDENT", "COMMUTING_ACCIDENT", "OCCUPATIONAL_DISEASE", "DANGEROUS_OCCURRENCE_WITH_INJURY")
	directions    = jsonrules.Set("TO_WORK", "FROM_WORK")
	segments      = jsonrules.Set("MALAYSIA", "CHECKPOINT", "SINGAPORE")
	modes         = jsonrules.Set("MOTORCYCLE", "CAR", "BUS", "TRAIN", "BICYCLE", "WALKING", "OTHER")
	crossings     = jsonrules.Set("WOODLANDS", "TUAS", "RTS_LINK")
	sides         = jsonrules.Set("LEFT", "RIGHT", "BOTH")
	bodyParts     = func() map[string]bool {
		m := map[string]bool{}
		for k := range mapping.SGBodyPartESAW {
			m[k] = true
		}
		return m
	}()
	natures = func() map[string]bool {
		m := map[string]bool{}
		for k := range mapping.SGNatureESAW {
			m[k] = true
		}
		return m
	}()
)
