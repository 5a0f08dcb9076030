package agencysoap

import (
	"strings"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/mapping"
)

// CheckCaseMessage checks the content rules of a schema-valid
// RequestInformation or NotifyDecision beyond its header (H1 needs the
// case store): C1, every CalDate a real date with a CE year of 1900-2100
// (ReplyBy, DecisionDate, AppealBy), and C13, PermanentIncapacityPct only
// with the subject PERMANENT_DISABLEMENT. It returns the broken rule whose
// element comes first in document order, or nil.
func CheckCaseMessage(body *etree.Element) *Problem {
	var walk func(e *etree.Element) *Problem
	walk = func(e *etree.Element) *Problem {
		for _, c := range e.ChildElements() {
			if p := checkCaseElement(body, c); p != nil {
				return p
			}
			if p := walk(c); p != nil {
				return p
			}
		}
		return nil
	}
	return walk(body)
}

// checkCaseElement is the rule, if any, that el breaks.
func checkCaseElement(body, el *etree.Element) *Problem {
	if el.NamespaceURI() != NS {
		return nil
	}
	if cal := el.SelectAttr("cal"); cal != nil {
		if _, ok := mapping.CalDate(strings.TrimSpace(el.Text()), cal.Value); !ok {
			return &Problem{Code: CodeContent, Location: Location(el), Reason: "not a real date with a CE year of 1900-2100"}
		}
	}
	if el.Tag == "PermanentIncapacityPct" && text(child(child(body, "Decision"), "Subject")) != "PERMANENT_DISABLEMENT" {
		return &Problem{Code: CodeContent, Location: Location(el), Reason: "PermanentIncapacityPct only with the subject PERMANENT_DISABLEMENT"}
	}
	return nil
}
