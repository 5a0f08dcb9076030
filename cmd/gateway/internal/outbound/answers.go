package outbound

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/beevik/etree"

	"github.com/perkeso/jambatan/adapters/agencysoap"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/schema"
)

// InformationReply is the message type by which the back office gives the
// items of a case an agency may ask for. agency-soap/v1 has no message
// that carries a reply later (§6.3: InformationReply is the synchronous
// answer to a RequestInformation, and an item TO_FOLLOW is asked for
// again), so such a request is not sent: the gateway holds its items and
// answers the agency's next RequestInformation on the case with them.
const InformationReply = "InformationReply"

// ReplyPayload is an InformationReply request's payload: dates CE.
type ReplyPayload struct {
	Items []ReplyItem `json:"items"`
}

// ReplyItem is one item's answer (agency-soap/v1 §6.3).
type ReplyItem struct {
	Code    string `json:"code"`
	Outcome string `json:"outcome"` // PROVIDED, NOT_HELD or TO_FOLLOW
	Text    string `json:"text,omitempty"`
	Months  []struct {
		Period   string `json:"period"` // yyyy-MM
		Amount   string `json:"amount"`
		Currency string `json:"currency"`
	} `json:"months,omitempty"` // WAGES_6M
	SickLeave []struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"sickLeave,omitempty"` // SICK_LEAVE_PERIODS
	Documents []struct {
		MediaType string `json:"mediaType"`
		Content   string `json:"content"` // base64
	} `json:"documents,omitempty"`
	ExpectedBy string `json:"expectedBy,omitempty"` // TO_FOLLOW
}

// ReplyItems builds the xb:Item of each answer in an InformationReply
// payload, by code, each with its namespace declared so that it stands
// alone. The items must make a reply agency-soap/v1 accepts (schema, C1,
// C13): they are checked as the answer to a request for their codes, as
// the gateway checks an agency's reply.
func ReplyItems(institution, caseID string, payload []byte) (map[string][]byte, error) {
	var p ReplyPayload
	if err := json.Unmarshal(payload, &p); err != nil || len(p.Items) == 0 {
		return nil, errors.New("InformationReply payload needs items")
	}
	req := etree.NewElement("xb:RequestInformation")
	req.CreateAttr("xmlns:xb", agencysoap.NS)
	resp := etree.NewElement("xb:InformationReply")
	resp.CreateAttr("xmlns:xb", agencysoap.NS)
	const mid, perkeso = "urn:uuid:00000000-0000-4000-8000-000000000000", "MY:PERKESO"
	exchangeHeader(req, mid, "", caseID, institution, perkeso)
	exchangeHeader(resp, "urn:uuid:00000000-0000-4000-8000-000000000001", mid, caseID, perkeso, institution)
	asked, reply := req.CreateElement("xb:Request"), resp.CreateElement("xb:Reply")
	seen := map[string]bool{}
	for _, it := range p.Items {
		if seen[it.Code] {
			return nil, fmt.Errorf("InformationReply payload: item %q is given twice", it.Code)
		}
		seen[it.Code] = true
		asked.CreateElement("xb:Item").CreateElement("xb:Code").SetText(it.Code)
		replyItem(reply, it)
	}
	xs, err := schema.AgencySOAP()
	if err != nil {
		return nil, err
	}
	if verr := xs.Validate(req, "xb"); verr != nil {
		return nil, fmt.Errorf("InformationReply payload: %s at %s", verr.Reason, verr.Path)
	}
	if pr := agencysoap.CheckResponse(req, resp); pr != nil {
		return nil, fmt.Errorf("InformationReply payload breaks %s at %s: %s", pr.Code, pr.Location, pr.Reason)
	}
	out := map[string][]byte{}
	for i, el := range reply.ChildElements() {
		c := el.Copy()
		c.CreateAttr("xmlns:xb", agencysoap.NS)
		d := etree.NewDocument()
		d.SetRoot(c)
		b, err := d.WriteToBytes()
		if err != nil {
			return nil, err
		}
		out[p.Items[i].Code] = b
	}
	return out, nil
}

// exchangeHeader writes the xb:Header of a message of ReplyItems' check.
func exchangeHeader(el *etree.Element, mid, inReplyTo, caseID, sender, receiver string) {
	h := el.CreateElement("xb:Header")
	h.CreateElement("xb:MessageId").SetText(mid)
	if inReplyTo != "" {
		h.CreateElement("xb:InReplyTo").SetText(inReplyTo)
	}
	h.CreateElement("xb:CaseId").SetText(caseID)
	h.CreateElement("xb:Sender").SetText(sender)
	h.CreateElement("xb:Receiver").SetText(receiver)
	h.CreateElement("xb:SentAt").SetText("2026-01-01T00:00:00Z")
}

// replyItem writes it as an xb:Item of reply, its parts in the schema's order.
func replyItem(reply *etree.Element, it ReplyItem) {
	el := reply.CreateElement("xb:Item")
	el.CreateElement("xb:Code").SetText(it.Code)
	el.CreateElement("xb:Outcome").SetText(it.Outcome)
	if it.Text != "" {
		el.CreateElement("xb:Text").SetText(it.Text)
	}
	for _, m := range it.Months {
		e := el.CreateElement("xb:Month")
		e.CreateAttr("period", m.Period)
		e.CreateAttr("cal", "CE")
		e.CreateAttr("currency", m.Currency)
		e.SetText(m.Amount)
	}
	for _, sl := range it.SickLeave {
		e := el.CreateElement("xb:SickLeave")
		for _, d := range []struct{ name, v string }{{"xb:From", sl.From}, {"xb:To", sl.To}} {
			de := e.CreateElement(d.name)
			de.CreateAttr("cal", "CE")
			de.SetText(d.v)
		}
	}
	for _, doc := range it.Documents {
		e := el.CreateElement("xb:Document")
		e.CreateAttr("mediaType", doc.MediaType)
		if b, err := base64.StdEncoding.DecodeString(doc.Content); err == nil {
			sum := sha256.Sum256(b)
			e.CreateAttr("sha256", hex.EncodeToString(sum[:]))
		}
		e.SetText(doc.Content)
	}
	if it.ExpectedBy != "" {
		e := el.CreateElement("xb:ExpectedBy")
		e.CreateAttr("cal", "CE")
		e.SetText(it.ExpectedBy)
	}
}

// heldEntry builds the message-log entry of held answers, with their
// status event ("delivered", as the delivery is) when status is set.
func heldEntry(at time.Time, status StatusFunc) func(*store.Delivery) *store.Entry {
	return func(d *store.Delivery) *store.Entry {
		e := &store.Entry{CorrelationID: heldID(d), PartnerID: d.PartnerID, ReceivedAt: at, Route: "OUTBOUND " + d.MessageType,
			ContentType: "application/json", Body: d.Payload, Verification: "outbound", Outcome: "HELD", SourceKey: d.Key}
		if status != nil {
			if m, err := status(d, "delivered", d.Attempts, "", at); err == nil {
				e.Outbox = []store.Message{m}
			}
		}
		return e
	}
}

// heldID is the correlation id of held answers: their message-log entry's
// and every log line on them, a put-back's too.
func heldID(d *store.Delivery) string { return "outbound-" + d.Key }

// hold holds the answers of an InformationReply the deliverer claimed: one
// refused when it was queued (its case not yet shared, say) and taken back
// by an operator's retry. r is d as a request and verr its check again, as
// when it was queued: it is held, or dead-lettered again with the reason.
func (dl *Deliverer) hold(ctx context.Context, d *store.Delivery, r *Request, verr error) {
	if verr != nil {
		dl.finish(ctx, d, nil, 0, &Error{Msg: verr.Error()})
		return
	}
	switch err := dl.Store.HoldClaimed(ctx, d, r.institution, r.answers, dl.now(), heldEntry(dl.now(), dl.Status)); {
	case errors.Is(err, store.ErrCaseNotShared):
		dl.finish(ctx, d, nil, 0, &Error{Msg: err.Error()})
	case err != nil && ctx.Err() != nil: // cut short by the gateway's stopping
		dl.putBack(ctx, d, heldID(d), nil)
	case err != nil: // the store's failure: the claim's lease runs out, and the next claim tries again
		dl.Log.Error("holding answers failed; they will be tried again after the lease", "correlation_id", heldID(d), "delivery", d.ID, "err", err)
	default:
		dl.Log.Info("answers held", "correlation_id", heldID(d), "delivery", d.ID, "partner", d.PartnerID)
	}
}
