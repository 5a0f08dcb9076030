package outbound

import (
	"errors"
	"time"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/adapters/agencysoap"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

// ReplyEvent is the case-messages event of an agency's InformationReply
// to a RequestInformation Perkeso sent (d.Reply): the information the back
// office asked for, published as an agency's own case messages are, with
// the operation "InformationReply". When the event would outgrow what the
// broker accepts, the Documents' contents are left out (DocumentsOmitted;
// the attempt's log entry holds the whole answer).
func ReplyEvent(b *events.Builder, d *store.Delivery, at time.Time) (store.Message, error) {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(d.Reply); err != nil || doc.Root() == nil {
		return store.Message{}, errors.New("the reply is not XML")
	}
	h := agencysoap.ReadHeader(doc.Root())
	cm := events.CaseMessage{Operation: "InformationReply", CaseID: d.CaseID, Sender: h.Sender, MessageID: h.MessageID,
		ReceivedAt: at.UTC().Format(time.RFC3339), Body: string(d.Reply), RequestID: d.Key}
	m, err := b.CaseMessageMessage(d.PartnerID, at, cm)
	if err != nil || !errors.Is(b.Check(m, nil), events.ErrTooLarge) {
		return m, err
	}
	docs := doc.Root().FindElements("./Reply/Item/Document")
	if len(docs) == 0 {
		return store.Message{}, b.Check(m, nil)
	}
	for _, el := range docs {
		el.SetText("")
	}
	body, err := wssec.Canonical(doc.Root())
	if err != nil {
		return store.Message{}, err
	}
	cm.Body, cm.DocumentsOmitted = string(body), true
	if m, err = b.CaseMessageMessage(d.PartnerID, at, cm); err != nil {
		return m, err
	}
	return m, b.Check(m, nil)
}
