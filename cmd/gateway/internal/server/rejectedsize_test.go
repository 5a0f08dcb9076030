package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

// TestRejectedEventBounded: the rejected-topic event of a refused insurer
// batch names every problem's place, but a batch of members with names
// running to megabytes does not make it larger than a broker accepts,
// which would stop the relay for every event behind it.
func TestRejectedEventBounded(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{EventLimit: events.MaxValueBytes})
	var m map[string]any
	if err := json.Unmarshal(insurerBatch(t), &m); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		m[strings.Repeat(string(rune('a'+i%26)), 30_000)+string(rune('A'+i/26))] = 1 // 100 unknown members, 3 MB of names
	}
	doc, _ := json.Marshal(m)
	r := postClaims(t, env, "insurer-wic", doc, nil)
	if r.status != 422 {
		t.Fatalf("status %d: %.300s", r.status, r.body)
	}
	n := count(t, env, `SELECT count(*) FROM outbox WHERE topic = 'perkeso.injury-notices.rejected.v1'`)
	size := count(t, env, `SELECT coalesce(max(length(value)), 0) FROM outbox WHERE topic = 'perkeso.injury-notices.rejected.v1'`)
	if n != 1 || size > events.MaxValueBytes {
		t.Fatalf("%d rejected events, the largest %d bytes (at most %d)", n, size, events.MaxValueBytes)
	}
}

// TestSOAPLongElementNameBounded: an agency message with an element whose
// name runs to 500 KB is a schema fault whose place, in the rejected event
// and the log line, is cut to its longest ancestor within the bound.
func TestSOAPLongElementNameBounded(t *testing.T) {
	var logged bytes.Buffer
	env := gatewaytest.Start(t, gatewaytest.Options{EventLimit: events.MaxValueBytes, Log: slog.New(slog.NewJSONHandler(&logged, nil))})
	c := agencyClient(t, env, "agency-th")
	d := unsigned(t, soapExample(t))
	d.FindElement("//Notification").CreateElement("xb:" + strings.Repeat("N", 500_000))
	resp, err := c.Call(context.Background(), "urn:xb-injury:exchange:v1#NotifyInjury", d)
	if err != nil || resp.Fault == nil || resp.Fault.Code != wssec.CodeSchema {
		t.Fatalf("want a %s fault: %v %+v", wssec.CodeSchema, err, resp)
	}
	if size := count(t, env, `SELECT coalesce(max(length(value)), 0) FROM outbox WHERE topic = 'perkeso.injury-notices.rejected.v1'`); size == 0 || size > 2048 {
		t.Fatalf("the rejected event is %d bytes", size)
	}
	for _, line := range strings.Split(strings.TrimSpace(logged.String()), "\n") {
		if len(line) > 2048 {
			t.Fatalf("a log line of %d bytes: %.200s…", len(line), line)
		}
	}
}
