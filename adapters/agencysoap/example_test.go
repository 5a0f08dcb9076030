package agencysoap_test

import (
	"bytes"
	"fmt"
	"time"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/adapters/agencysoap"
	"github.com/perkeso/jambatan/mapping"
	"github.com/perkeso/jambatan/schema"
)

// notifyInjury is the Body child of an envelope, checked against
// agency-soap-v1.xsd as the SOAP route checks it once the WS-Security
// signature has verified.
func notifyInjury(envelope []byte) (*etree.Element, error) {
	d := etree.NewDocument()
	if err := d.ReadFromBytes(envelope); err != nil {
		return nil, err
	}
	body := d.FindElement("//Body")
	if body == nil || len(body.ChildElements()) != 1 {
		return nil, fmt.Errorf("no Body child")
	}
	xs, err := schema.AgencySOAP()
	if err != nil {
		return nil, err
	}
	el := body.ChildElements()[0]
	if verr := xs.Validate(el, "xb"); verr != nil {
		return nil, verr
	}
	return el, nil
}

// An agency's NotifyInjury is checked against the content rules of
// agency-soap/v1 §7 and mapped to the canonical record: its Buddhist-Era
// dates become Gregorian, its local time is read in the message's zone,
// and its TH_SSO codes go through the ESAW crosswalk. The case id is the
// one Perkeso assigns to the new case.
func Example() {
	el, err := notifyInjury(agencysoap.Example()) // the specification's §10.1
	if err != nil {
		fmt.Println(err)
		return
	}
	n := agencysoap.ReadNotifyInjury(el)
	fmt.Println("problem:", n.First())
	fmt.Println("sender:", n.Header.Sender, "message:", n.Header.MessageID)

	rec, err := n.Canonical(time.Date(2026, 3, 4, 2, 40, 12, 0, time.UTC), "MY:PERKESO:XB-2026-000731", mapping.ExampleRates)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("record:", rec.RecordID)
	fmt.Println("born:", rec.Person.DateOfBirth)
	fmt.Println("accident:", rec.Accident.OccurredDate, rec.Accident.OccurredAt, rec.Accident.Zone)
	for _, in := range rec.Injuries {
		fmt.Println("injury:", in.Source.Scheme, in.Source.BodyPart, in.Source.Nature, "-> ESAW", in.BodyPartESAW, in.NatureESAW, in.Side)
	}
	fmt.Println("case:", rec.Exchange.Institution, rec.Exchange.SenderCaseRef, "->", rec.Exchange.CaseID)
	// Output:
	// problem: <nil>
	// sender: TH:SSO message: urn:uuid:5f0c6b1e-8d2a-4c3b-9e7f-1a2b3c4d5e6f
	// record: b91d27ba-49ff-55db-a189-f17540653051
	// born: 1991-07-16
	// accident: 2026-03-02 2026-03-02T01:40:00Z Asia/Bangkok
	// injury: TH_SSO 142 203 -> ESAW 53 020 LEFT
	// case: TH:SSO SSO-SKA-2569-000317 -> MY:PERKESO:XB-2026-000731
}

// A message that breaks a content rule is answered with one SOAP Fault:
// the rule whose element comes first in the document, located by its path
// (§8.1). Here the Thai PID's check digit is wrong and the sick leave ends
// before it starts; the PID comes first.
func Example_problem() {
	msg := bytes.Replace(agencysoap.Example(), []byte(">6900100123458<"), []byte(">6900100123459<"), 1)
	msg = bytes.Replace(msg, []byte(`<xb:To cal="BE">2569-03-22</xb:To>`), []byte(`<xb:To cal="BE">2569-03-01</xb:To>`), 1)
	el, err := notifyInjury(msg)
	if err != nil {
		fmt.Println(err)
		return
	}
	p := agencysoap.ReadNotifyInjury(el).First()
	fmt.Println(p.Code)
	fmt.Println(p.Location)
	fmt.Println(p.Reason)
	// Output:
	// client.content.invalid
	// /xb:NotifyInjury/xb:Notification/xb:Person/xb:PersonalId
	// TH_PID check digit does not match
}
