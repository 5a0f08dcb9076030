package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/kafkatest"

	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
)

// TestRequeueQuarantineWithoutKafka: "gateway ingest --requeue-quarantine"
// works on the back office's database alone, the cluster unreachable.
func TestRequeueQuarantineWithoutKafka(t *testing.T) {
	l, _ := devLayout(t)
	db := filepath.Join(t.TempDir(), "backoffice.db")
	// --batch at either end of its range is taken (past them refused: TestFlagsRefused).
	for _, batch := range []string{"500", "1", "10000"} {
		out, stderr, err := gateway(t, "ingest", "--brokers", "127.0.0.1:9", "--topic", "t.verified", "--jwks", l.GatewayJWKS, "--db", db, "--requeue-quarantine", "--batch", batch)
		if err != nil || !strings.Contains(out, "requeue: 0 filed and taken out of the quarantine, 0 still quarantined") {
			t.Fatalf("--batch %s: %v\n%s%s", batch, err, out, stderr)
		}
	}
}

// TestIngestConfig: "gateway ingest --config" takes the cluster and the
// topics from the gateway's configuration (the delivery statuses' too, the
// gateway delivering outbound) and logs as a service does, in JSON lines.
func TestIngestConfig(t *testing.T) {
	l, _ := devLayout(t)
	topics := events.DefaultTopics
	const statuses = "perkeso.delivery-status.test" // not the default, so that it is seen to come from the file
	kafka := kafkatest.Broker(t, t.TempDir(), topics.Verified, topics.Rejected, topics.CaseMessages, statuses)
	cfg := filepath.Join(filepath.Dir(l.Config), "ingest.json")
	gatewaytest.EditConfig(t, l.Config, cfg, func(c map[string]any) {
		c["kafka"].(map[string]any)["brokers"] = []string{kafka.Addr}
		c["outbound"].(map[string]any)["status_topic"] = statuses
	})
	db := filepath.Join(t.TempDir(), "backoffice.db")
	out, stderr, err := gateway(t, "ingest", "--config", cfg, "--jwks", l.GatewayJWKS, "--db", db, "--until-caught-up", "--idle", "1s")
	if err != nil || !strings.Contains(out, "0 ingested, 0 quarantined") || stderr == "" {
		t.Fatalf("ingest --config: %v\n%s\n%s", err, out, stderr)
	}
	assertJSONLog(t, "ingest", stderr)
	// The statuses' topic is the file's: named again for rejections, refused.
	if _, stderr, err := gateway(t, "ingest", "--config", cfg, "--jwks", l.GatewayJWKS, "--db", db, "--rejected-topic", statuses, "--until-caught-up", "--idle", "1s"); err == nil ||
		!strings.Contains(stderr, "topic "+statuses+" is named for two kinds of event") {
		t.Fatalf("the statuses' topic named twice: %v\n%s", err, stderr)
	}
}

// assertJSONLog fails the test unless every line cmd logged is a JSON
// record with a level, a message and a correlation id, as a service logs.
func assertJSONLog(t *testing.T, cmd, logged string) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(logged), "\n") {
		var l struct {
			Level, Msg string
			ID         string `json:"correlation_id"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil || l.Level == "" || l.Msg == "" || l.ID == "" {
			t.Fatalf("%s's log holds %q, not a JSON line with a correlation id (%v)", cmd, line, err)
		}
	}
}
