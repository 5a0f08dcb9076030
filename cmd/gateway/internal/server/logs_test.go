package server_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
)

// TestLogsCarryNoPersonalData seeds names, identity numbers and medical text
// through accepted and refused submissions (JSON and SOAP) and checks that
// none of them reaches the logs, while correlation ids and record ids do.
func TestLogsCarryNoPersonalData(t *testing.T) {
	var buf gatewaytest.SyncBuffer
	env := gatewaytest.Start(t, gatewaytest.Options{Log: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	a := env.Partners["employer-a"]
	c := env.Client(&a.TLS)
	doc := example(t, "example-a.in.json")
	r := post(t, c, env.Server.URL, "application/jose", []byte(sign(t, doc, a.SigningKey, partnerkit.Compact)), nil)
	bad := bytes.Replace(doc, []byte(`"G5123456T"`), []byte(`"G5123456X"`), 1)
	bad = bytes.Replace(bad, []byte("TPE-2026-0042"), []byte("TPE-2026-0043"), 1)
	post(t, c, env.Server.URL, "application/jose", []byte(sign(t, bad, a.SigningKey, partnerkit.Compact)), nil)
	post(t, c, env.Server.URL, "application/json", doc, map[string]string{"X-JWS-Signature": "broken..sig"})
	ag := agencyClient(t, env, "agency-th")
	_, _ = ag.Call(t.Context(), "urn:xb-injury:exchange:v1#NotifyInjury", unsigned(t, soapExample(t)))
	logs := buf.String()
	for _, secret := range []string{"Muhammad Hafiz", "G5123456", "900215015573", "forklift", "Tan Mei Ling", "+6562345678",
		"Ahmad Zaki", "6900100123458", "910716025347", "ขณะขับรถยก", "SSO-SKA-2569-000317"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs contain %q", secret)
		}
	}
	if !strings.Contains(logs, r.header.Get("X-Correlation-ID")) || !strings.Contains(logs, "b0867b30-be3c-5595-a939-c4d47c281950") {
		t.Fatalf("correlation and record ids missing from the logs:\n%s", logs)
	}
}
