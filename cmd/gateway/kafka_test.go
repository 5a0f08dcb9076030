package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/perkeso/jambatan/adapters/sgemployer"
	"github.com/perkeso/jambatan/certs"
	"github.com/perkeso/jambatan/cmd/gateway/internal/devmode"
	"github.com/perkeso/jambatan/cmd/gateway/internal/events"
	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/ingest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/kafkatest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/loadgen"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/receipt"
	"github.com/perkeso/jambatan/cmd/gateway/internal/soapclient"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
	"github.com/perkeso/jambatan/cmd/gateway/internal/wssec"
)

func kit(t *testing.T, d *devmode.DevJSON) loadgen.Config {
	t.Helper()
	p := d.Partners[0]
	key, err := partnerkit.LoadSigningKey(p.SigningJWK)
	if err != nil {
		t.Fatal(err)
	}
	c, err := partnerkit.NewClient(d.GatewayURL, d.CACert, p.ClientCert, p.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	return loadgen.Config{Client: c, Key: key, Template: exampleNotice, TemplateID: exampleNoticeID, Concurrency: 8}
}

// exampleNotice is example A of sg-employer-notice/v1 §8.1, whose noticeId
// is exampleNoticeID.
var exampleNotice = sgemployer.Example()

const exampleNoticeID = "TPE-2026-0042"

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("JAMBATAN_REQUIRE_INTEROP") != "" {
			t.Fatalf("%s is required (JAMBATAN_REQUIRE_INTEROP is set)", name)
		}
		t.Skipf("%s not installed", name)
	}
}

// kcatJSON consumes a whole topic with kcat, an independent Kafka client.
func kcatJSON(t *testing.T, bootstrap, topic string) []map[string]any {
	t.Helper()
	out, err := exec.Command("kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-J").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	var msgs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("kcat line: %v", err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// batchCodecs counts a topic's first n records by the compression codec of
// their record batch (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd), read with
// franz-go, which reports it (kafka-go and kcat do not).
func batchCodecs(t *testing.T, bootstrap, topic string, n int) map[uint8]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, seen := map[uint8]int{}, 0
	for seen < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", seen, n, topic)
		}
		for _, r := range fs.Records() {
			got[r.Attrs.CompressionType()]++
			seen++
		}
	}
	return got
}

func headers(m map[string]any) map[string]string {
	h := map[string]string{}
	arr, _ := m["headers"].([]any)
	for i := 0; i+1 < len(arr); i += 2 {
		h[arr[i].(string)], _ = arr[i+1].(string)
	}
	return h
}

// TestKcatEndToEnd: N signed notices through dev mode become N records on
// the verified topic, read by kcat with their CloudEvents headers; refused
// submissions are on the rejected topic, without the document's text.
func TestKcatEndToEnd(t *testing.T) {
	needTool(t, "kcat")
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, out, d := startDev(t, dir)
	defer stop(t, cmd, out)
	cfg := kit(t, d)
	cfg.Prefix, cfg.Start, cfg.N = "KCAT-", 1, 25
	st, res := loadgen.Run(context.Background(), cfg)
	if st.Accepted != 25 {
		t.Fatalf("load: %s", st)
	}
	bad := bytes.Replace(exampleNotice, []byte(`"G5123456T"`), []byte(`"G5123456X"`), 1)
	for i := 0; i < 3; i++ {
		if r, err := cfg.Client.Submit("/v1/injury-notices", bytes.Replace(bad, []byte(exampleNoticeID), []byte("BAD-"+string(rune('A'+i))), 1), cfg.Key, partnerkit.Compact); err != nil || r.Status != 422 {
			t.Fatalf("bad notice: %v %+v", err, r)
		}
	}
	waitBacklog(t, d)

	want := map[string]bool{}
	for _, r := range res {
		want[r.RecordID] = true
	}
	msgs := kcatJSON(t, d.KafkaBootstrap, d.Topics.Verified)
	if len(msgs) != 25 {
		t.Fatalf("%d records on %s, want 25", len(msgs), d.Topics.Verified)
	}
	for _, m := range msgs {
		h := headers(m)
		key, _ := m["key"].(string)
		if !want[key] || h["ce_id"] != key || h["ce_specversion"] != "1.0" || h["ce_type"] != "my.perkeso.injury-notice.verified.v1" ||
			h["ce_subject"] != "demo-employer" || h["content-type"] != "application/json" || h["ce_source"] == "" || h["ce_time"] == "" {
			t.Fatalf("record %v", m)
		}
		var env struct {
			Record               json.RawMessage
			Receipt, Attestation string
			JWS                  struct{ Protected, Payload, Signature string }
		}
		var rec struct {
			RecordID string `json:"recordId"`
		}
		if err := json.Unmarshal([]byte(m["payload"].(string)), &env); err != nil || json.Unmarshal(env.Record, &rec) != nil ||
			rec.RecordID != key || env.Receipt == "" || env.Attestation != "" || env.JWS.Signature == "" {
			t.Fatalf("envelope %v: %v", m["payload"], err)
		}
		// The receipt names the record's bytes as they stand in the event:
		// it is the gateway's signed statement over the record.
		var named struct {
			RecordID     string `json:"recordId"`
			RecordSHA256 string `json:"recordSha256"`
		}
		parts := strings.Split(env.Receipt, ".")
		pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
		sum := sha256.Sum256(env.Record)
		if err := json.Unmarshal(pb, &named); err != nil || named.RecordID != key || named.RecordSHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("receipt payload %s does not name record %s (sha256 %x)", pb, key, sum)
		}
	}
	// Dev mode's gateway.json has the relay compress with gzip: the records
	// kcat read came in gzip batches.
	if got := batchCodecs(t, d.KafkaBootstrap, d.Topics.Verified, 25); !maps.Equal(got, map[uint8]int{1: 25}) {
		t.Fatalf("records by their batch's codec %v, want all 25 gzip (1)", got)
	}
	// Metrics and readiness on the ops listener.
	ops := strings.TrimSuffix(d.MetricsURL, "/metrics")
	resp, err := http.Get(d.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, want := range []string{`jambatan_requests_total{outcome="202",partner="demo-employer",route="POST /v1/injury-notices"} 25`,
		`jambatan_requests_total{outcome="422",partner="demo-employer",route="POST /v1/injury-notices"} 3`,
		`jambatan_intake_seconds_bucket{route="POST /v1/injury-notices"`, `jambatan_outbox_backlog 0`, `jambatan_outbox_oldest_age_seconds 0`,
		`jambatan_certificate_expiry_seconds{certificate="server"}`, `jambatan_certificate_expiry_seconds{certificate="partner:demo-employer"}`,
		`jambatan_certificate_expiry_seconds{certificate="signing-ca:demo-agency:0"}`, `jambatan_deliveries{state="dead"} 0`} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	resp, err = http.Get(ops + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(rb), `"store":{"ok":true}`) || !strings.Contains(string(rb), `"kafka":{"ok":true`) {
		t.Fatalf("/readyz %d %s", resp.StatusCode, rb)
	}
	rej := kcatJSON(t, d.KafkaBootstrap, d.Topics.Rejected)
	if len(rej) != 3 {
		t.Fatalf("%d records on %s, want 3", len(rej), d.Topics.Rejected)
	}
	jwks, err := partnerkit.ReadJWKS(d.GatewayJWKS)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rej {
		p := m["payload"].(string)
		if !strings.Contains(p, `"code":"CHECKSUM"`) || strings.Contains(p, "Hafiz") || strings.Contains(p, "forklift") || headers(m)["ce_type"] != "my.perkeso.injury-notice.rejected.v1" {
			t.Fatalf("rejected record %s", p)
		}
		if r, err := events.VerifyRejected([]byte(p), jwks); err != nil || r.Partner != "demo-employer" {
			t.Fatalf("rejected record %s: %v", p, err)
		}
	}
	// The back office files the three refusals beside the records.
	if o, e, err := gateway(t, "ingest", "--dev", dir, "--until-caught-up", "--idle", "1s"); err != nil || !strings.Contains(o, "0 quarantined") ||
		!strings.Contains(o, " 3 rejections") {
		t.Fatalf("ingest: %v\n%s\n%s", err, o, e)
	}
	bo, err := ingest.OpenSink(filepath.Join(dir, "backoffice.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer bo.Close()
	var n int
	if err := bo.DB().QueryRow(`SELECT count(*) FROM backoffice_rejections WHERE partner = 'demo-employer' AND problems LIKE '%"code":"CHECKSUM"%'`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("%d rejections filed (%v), want 3", n, err)
	}
}

func waitBacklog(t *testing.T, d *devmode.DevJSON) {
	t.Helper()
	url := strings.TrimSuffix(d.MetricsURL, "/metrics") + "/healthz"
	gatewaytest.Until(t, 120*time.Second, 100*time.Millisecond, func() error {
		resp, err := http.Get(url)
		if err != nil {
			return fmt.Errorf("outbox never drained: %v", err)
		}
		defer resp.Body.Close()
		var h struct{ Outbox struct{ Backlog int64 } }
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || h.Outbox.Backlog != 0 {
			return fmt.Errorf("outbox never drained: backlog %d (%v)", h.Outbox.Backlog, err)
		}
		return nil
	})
}

// TestKill9LosesNothing kills the gateway (and its embedded broker) with
// SIGKILL in the middle of a load of 10,000 notices, restarts it, lets the
// clients retry what got no answer, and checks that the set of record ids
// on the topic equals the set of receipts issued, and that the back-office
// table holds each exactly once.
func TestKill9LosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	const n = 10000
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, _, d := startDev(t, dir)
	cfg := kit(t, d)
	cfg.Prefix, cfg.Start, cfg.N = "K9-", 1, n
	killed := make(chan struct{})
	cfg.Progress = func(s loadgen.Stats) {
		if s.Accepted >= 2500 {
			select {
			case <-killed:
			default:
				_ = cmd.Process.Kill() // SIGKILL: no shutdown of gateway or broker
				close(killed)
			}
		}
	}
	_, first := loadgen.Run(context.Background(), cfg)
	select {
	case <-killed:
	default:
		t.Fatal("the load finished before the kill; raise n")
	}
	_, _ = cmd.Process.Wait()
	answered := map[int]string{}
	for _, r := range first {
		if r.Status == 202 || r.Status == 200 {
			answered[r.Seq] = r.RecordID
		}
	}
	t.Logf("before the kill: %d answered of %d", len(answered), n)

	os.Remove(filepath.Join(dir, "dev.json")) // left behind by SIGKILL
	cmd, out, d := startDev(t, dir)
	defer stop(t, cmd, out)
	cfg = kit(t, d)
	cfg.Prefix, cfg.Concurrency = "K9-", 8
	// Clients retry every notice that got no answer.
	for seq := 1; seq <= n; seq++ {
		if _, ok := answered[seq]; ok {
			continue
		}
		cfg.Start, cfg.N = seq, 1
		for end := seq; end <= n; end++ {
			if _, ok := answered[end]; ok {
				break
			}
			cfg.N = end - seq + 1
		}
		st, res := loadgen.Run(context.Background(), cfg)
		if st.Errors > 0 || st.Refused > 0 {
			t.Fatalf("retry: %s", st)
		}
		for _, r := range res {
			answered[r.Seq] = r.RecordID
		}
		seq += cfg.N - 1
	}
	if len(answered) != n {
		t.Fatalf("%d of %d notices have receipts", len(answered), n)
	}
	waitBacklog(t, d)

	// Receipts issued = records committed in the store.
	st, err := store.OpenSQLite(d.Store)
	if err != nil {
		t.Fatal(err)
	}
	issued := map[string]bool{}
	rows, err := st.DB().Query(`SELECT record_id FROM records`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		_ = rows.Scan(&id)
		issued[id] = true
	}
	rows.Close()
	st.Close()
	for _, id := range answered {
		if !issued[id] {
			t.Fatalf("client holds a receipt for %s, which the store does not", id)
		}
	}
	onTopic := map[string]bool{}
	msgs := kafkatest.ReadAll(t, d.KafkaBootstrap, d.Topics.Verified, len(issued), 120*time.Second)
	for _, m := range msgs {
		onTopic[string(m.Key)] = true
	}
	if len(onTopic) != len(issued) || len(issued) != n {
		t.Fatalf("%d distinct records on the topic (%d messages), %d receipts issued, want %d", len(onTopic), len(msgs), len(issued), n)
	}
	for id := range issued {
		if !onTopic[id] {
			t.Fatalf("accepted record %s is not on the topic", id)
		}
	}
	t.Logf("%d messages on the topic for %d records (%d re-sent after the crash)", len(msgs), n, len(msgs)-n)

	stdout, stderr, err := gateway(t, "ingest", "--dev", dir, "--until-caught-up")
	if err != nil || !strings.Contains(stdout, "0 quarantined") {
		t.Fatalf("ingest: %v\n%s\n%s", err, stdout, stderr)
	}
	bo, err := ingest.OpenSink(filepath.Join(dir, "backoffice.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer bo.Close()
	var rowsN, distinct int
	_ = bo.DB().QueryRow(`SELECT count(*), count(DISTINCT record_id) FROM backoffice_records`).Scan(&rowsN, &distinct)
	if rowsN != n || distinct != n {
		t.Fatalf("back office holds %d rows (%d distinct), want %d", rowsN, distinct, n)
	}
}

// TestSOAPThroughDevMode: the demo agency (TH:SSO) of dev.json sends the
// spec's NotifyInjury and then a RequestInformation on the case it got; the
// record reaches the verified topic with the signed envelope, the request
// the case-messages topic (read by kcat).
func TestSOAPThroughDevMode(t *testing.T) {
	needTool(t, "kcat")
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, out, d := startDev(t, dir)
	defer stop(t, cmd, out)
	c := demoAgencyClient(t, d)
	raw, err := os.ReadFile(filepath.Join("..", "..", "adapters", "agencysoap", "testdata", "example-10.1.request.xml"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	s = s[:strings.Index(s, "<soap:Header>")] + s[strings.Index(s, "</soap:Header>")+len("</soap:Header>"):]
	doc := etree.NewDocument()
	if err := doc.ReadFromString(s); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Call(context.Background(), "urn:xb-injury:exchange:v1#NotifyInjury", doc)
	if err != nil || resp.Fault != nil {
		t.Fatalf("NotifyInjury: %v %+v", err, resp)
	}
	caseID := resp.Body.FindElement("./Header/CaseId").Text()
	ri := `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xb="urn:xb-injury:exchange:v1"><soap:Body><xb:RequestInformation><xb:Header><xb:MessageId>urn:uuid:dev-ri-1</xb:MessageId><xb:CaseId>` + caseID +
		`</xb:CaseId><xb:Sender>TH:SSO</xb:Sender><xb:Receiver>MY:PERKESO</xb:Receiver><xb:SentAt>2026-03-10T02:00:00Z</xb:SentAt></xb:Header><xb:Request><xb:Item><xb:Code>WAGES_6M</xb:Code></xb:Item></xb:Request></xb:RequestInformation></soap:Body></soap:Envelope>`
	doc = etree.NewDocument()
	if err := doc.ReadFromString(ri); err != nil {
		t.Fatal(err)
	}
	if resp, err := c.Call(context.Background(), "urn:xb-injury:exchange:v1#RequestInformation", doc); err != nil || resp.Fault != nil {
		t.Fatalf("RequestInformation: %v %+v", err, resp)
	}
	waitBacklog(t, d)
	ver := kcatJSON(t, d.KafkaBootstrap, d.Topics.Verified)
	if len(ver) != 1 || ver[0]["key"] != "b91d27ba-49ff-55db-a189-f17540653051" || !strings.Contains(ver[0]["payload"].(string), `"soap":"`) {
		t.Fatalf("verified topic: %v", ver)
	}
	cm := kcatJSON(t, d.KafkaBootstrap, d.Topics.CaseMessages)
	if len(cm) != 1 || cm[0]["key"] != caseID || headers(cm[0])["ce_type"] != "my.perkeso.case-message.received.v1" ||
		!strings.Contains(cm[0]["payload"].(string), `"operation":"RequestInformation"`) {
		t.Fatalf("case-messages topic: %v", cm)
	}
	verifyCaseMessage(t, d, cm[0]["payload"].(string))
	// "gateway receipt verify" shows a case message's receipt as signed.
	var ev struct{ Receipt string }
	if err := json.Unmarshal([]byte(cm[0]["payload"].(string)), &ev); err != nil {
		t.Fatal(err)
	}
	if o, e, err := gateway(t, "receipt", "verify", "--jwks", d.GatewayJWKS, ev.Receipt); err != nil ||
		!strings.Contains(o, `"bodySha256"`) || !strings.Contains(o, `"operation": "RequestInformation"`) {
		t.Fatalf("receipt verify of a case message's receipt: %v\n%s\n%s", err, o, e)
	}
	// The back office ingests both: the notice's record and the request,
	// filed by the agency's message id as the receipt states it.
	if o, e, err := gateway(t, "ingest", "--dev", dir, "--until-caught-up", "--idle", "1s"); err != nil ||
		!strings.Contains(o, "1 ingested, 0 quarantined, 1 case messages") {
		t.Fatalf("ingest: %v\n%s\n%s", err, o, e)
	}
	bo, err := ingest.OpenSink(filepath.Join(dir, "backoffice.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer bo.Close()
	var op, rowCase, body string
	if err := bo.DB().QueryRow(`SELECT operation, case_id, body FROM backoffice_case_messages WHERE sender = 'TH:SSO' AND message_id = 'urn:uuid:dev-ri-1'`).
		Scan(&op, &rowCase, &body); err != nil || op != "RequestInformation" || rowCase != caseID || !strings.Contains(body, "<xb:Code>WAGES_6M</xb:Code>") {
		t.Fatalf("case message row %s %s %q: %v", op, rowCase, body, err)
	}
	// A topic the cluster lacks is named at once (a group on it would
	// read nothing, from either topic).
	if o, e, err := gateway(t, "ingest", "--dev", dir, "--case-topic", "perkeso.case-messages.v0", "--until-caught-up"); err == nil ||
		!strings.Contains(e, "the cluster has no topic perkeso.case-messages.v0") {
		t.Fatalf("ingest from a topic that does not exist: %v\n%s\n%s", err, o, e)
	}
}

// verifyCaseMessage checks a case-messages event as a back office does:
// its receipt by the gateway's JWKS, stating the event and its body's hash.
func verifyCaseMessage(t *testing.T, d *devmode.DevJSON, value string) {
	t.Helper()
	set, err := partnerkit.ReadJWKS(d.GatewayJWKS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.VerifyCaseMessage([]byte(value), set); err != nil {
		t.Fatalf("case message %.200s: %v", value, err)
	}
}

// demoAgencyClient is the SOAP client of dev.json's demo agency (TH:SSO):
// its TLS and signing kits, trusting Perkeso's signing certificate only.
func demoAgencyClient(t *testing.T, d *devmode.DevJSON) *soapclient.Client {
	t.Helper()
	p, err := d.Partner("demo-agency")
	if err != nil || p.Kind != "agency" || p.Institution != "TH:SSO" || p.SOAPURL != d.GatewayURL+"/soap/v1/exchange" {
		t.Fatalf("dev.json agency: %+v %v", p, err)
	}
	ca, _ := certs.LoadPool(d.CACert)
	tlsCert, err := tls.LoadX509KeyPair(p.ClientCert, p.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := certs.LoadCertificates(p.SigningCert)
	sk, err := certs.LoadKey(p.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	return &soapclient.Client{URL: p.SOAPURL, HTTP: certs.HTTPClient(ca, nil, tlsCert, 10*time.Second, 8),
		Signer:   &wssec.Signer{Cert: sc[0], Key: sk},
		Verifier: &wssec.Verifier{Trust: wssec.TrustInstitution(ca, "MY:PERKESO")}}
}

// TestOutboundRoundTrip: the back office writes two outbound requests to
// perkeso.outbound.v1 with kcat; the NotifyDecision reaches the demo agency
// (signed, verified, acknowledged) and its status "delivered" is on the
// delivery-status topic; the request for an unknown partner is dead-lettered,
// listed by "gateway outbound list --state dead" and queued again by retry.
func TestOutboundRoundTrip(t *testing.T) {
	needTool(t, "kcat")
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, out, d := startDev(t, dir, "--with-demo-agency")
	defer stop(t, cmd, out)
	if d.DemoAgencyURL == "" || d.Topics.Outbound != "perkeso.outbound.v1" {
		t.Fatalf("dev.json: %+v", d)
	}
	if d.BackOfficeKey == "" {
		t.Fatal("dev.json names no back-office signing key: the dev configuration takes unsigned requests")
	}
	dec := `{"id":"dec-001","partner":"demo-agency","messageType":"NotifyDecision","caseId":"MY:PERKESO:XB-2026-000731","payload":{"subject":"WORK_RELATEDNESS","outcome":"ACCEPTED","decisionDate":"2026-03-20","legalBasis":"Employees' Social Security Act 1969, s. 24"}}`
	// produce writes one request as the back office does, a file one record,
	// signed as the README says (gateway sign --detached, the "jws" header)
	// unless unsigned; z is the batch's compression.
	produce := func(request, z string, signed bool) {
		t.Helper()
		file := filepath.Join(t.TempDir(), "request.json")
		if err := os.WriteFile(file, []byte(request), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"-b", d.KafkaBootstrap, "-P", "-t", d.Topics.Outbound, "-z", z}
		if signed {
			sig, e, err := gateway(t, "sign", "--jwk", d.BackOfficeKey, "--detached", file)
			if err != nil {
				t.Fatalf("gateway sign: %v %s", err, e)
			}
			args = append(args, "-H", "jws="+strings.TrimSpace(sig))
		}
		if o, err := exec.Command("kcat", append(args, file)...).CombinedOutput(); err != nil {
			t.Fatalf("kcat -P: %v %s", err, o)
		}
	}
	produce(dec, "none", true)
	produce(`{"id":"bad-001","partner":"nobody","messageType":"NotifyDecision","caseId":"MY:PERKESO:XB-1","payload":{}}`, "none", true)
	produce(strings.Replace(dec, "dec-001", "forged-001", 1), "none", false) // not the back office's: no delivery
	// A back office's producer may compress its batches with any codec Kafka
	// knows; each is read.
	codecs := []string{"gzip", "snappy", "lz4", "zstd"}
	for _, z := range codecs {
		produce(strings.Replace(dec, "dec-001", "dec-"+z, 1), z, true)
	}
	gatewaytest.Until(t, 60*time.Second, 200*time.Millisecond, func() error {
		o, _, _ := gateway(t, "outbound", "list", "--dev", dir)
		if strings.Count(o, "delivered") != 1+len(codecs) || !strings.Contains(o, "dead") {
			return fmt.Errorf("deliveries never settled:\n%s\n%s", o, out.String())
		}
		return nil
	})
	waitBacklog(t, d)
	st := kcatJSON(t, d.KafkaBootstrap, d.Topics.DeliveryStatus)
	jwks, err := partnerkit.ReadJWKS(d.GatewayJWKS)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, m := range st {
		// Each status, the refused request's included, verifies as the
		// back office checks one: the gateway's receipt states it.
		v, err := events.VerifyDeliveryStatus([]byte(m["payload"].(string)), jwks)
		if err != nil {
			t.Fatalf("delivery status %v: %v", m["payload"], err)
		}
		states[v.Key] = v.State
	}
	if states["dec-001"] != "delivered" || states["bad-001"] != "dead-lettered" {
		t.Fatalf("delivery-status topic: %v", st)
	}
	if o, _, _ := gateway(t, "outbound", "list", "--dev", dir); states["forged-001"] != "" || strings.Contains(o, "forged-001") ||
		!strings.Contains(out.String(), "outbound record refused: not signed by the back office") {
		t.Fatalf("the unsigned request: status %q; deliveries:\n%s", states["forged-001"], o)
	}
	if resp, err := http.Get(d.MetricsURL); err != nil {
		t.Fatal(err)
	} else {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if !strings.Contains(string(b), `jambatan_verification_failures_total{kind="outbound-request"} 1`) {
			t.Fatalf("the unsigned request is not counted in jambatan_verification_failures_total")
		}
	}
	for _, z := range codecs {
		if states["dec-"+z] != "delivered" {
			t.Errorf("the request sent with %s compression: %q", z, states["dec-"+z])
		}
	}
	// The back office files each delivery at its latest status.
	if o, e, err := gateway(t, "ingest", "--dev", dir, "--until-caught-up", "--idle", "1s"); err != nil ||
		!strings.Contains(o, fmt.Sprintf("0 quarantined, 0 case messages, %d delivery statuses", len(st))) {
		t.Fatalf("ingest: %v\n%s\n%s", err, o, e)
	}
	bo, err := ingest.OpenSink(filepath.Join(dir, "backoffice.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer bo.Close()
	for key, want := range states {
		var state string
		if err := bo.DB().QueryRow(`SELECT state FROM backoffice_deliveries WHERE delivery_key = ?`, key).Scan(&state); err != nil || state != want {
			t.Errorf("back office has %s %q (%v), want %q", key, state, err, want)
		}
	}
	if o, e, err := gateway(t, "outbound", "list", "--dev", dir, "--limit", "1"); err != nil || strings.Count(o, "\n") != 2 || !strings.Contains(e, "1 deliveries, newest first; older ones: --before ") {
		t.Fatalf("a page of one: %v\n%s%s", err, o, e)
	}
	dead, _, err := gateway(t, "outbound", "list", "--dev", dir, "--state", "dead")
	if err != nil || !strings.Contains(dead, "nobody") {
		t.Fatalf("dead letters: %v %s", err, dead)
	}
	id := strings.Fields(strings.Split(strings.TrimSpace(dead), "\n")[1])[0]
	if o, _, err := gateway(t, "outbound", "retry", "--dev", dir, "--partner", "nobody"); err != nil || !strings.Contains(o, "1 dead letters of nobody queued again") {
		t.Fatalf("retry --partner: %v %s", err, o)
	}
	if o, _, err := gateway(t, "outbound", "retry", "--dev", dir, id); err != nil || !strings.Contains(o, "queued again") {
		t.Fatalf("retry: %v %s", err, o)
	}
	// What the partner answered to a delivered request, as logged.
	if o, _, err := gateway(t, "outbound", "answer", "--dev", dir, "dec-"+codecs[0]); err != nil || o == "" {
		t.Fatalf("answer: %v %q", err, o)
	}
	if _, e, err := gateway(t, "outbound", "answer", "--dev", dir, "never-sent"); err == nil || !strings.Contains(e, `no answer of a delivery "never-sent"`) {
		t.Fatalf("answer of a request never sent: %v %s", err, e)
	}

	// Without Kafka: the operator listener takes the request (operator certificate from dev.json).
	ca, _ := certs.LoadPool(d.CACert)
	opCert, err := tls.LoadX509KeyPair(d.OperatorCert, d.OperatorKey)
	if err != nil || d.OperatorURL == "" {
		t.Fatalf("operator kit: %v %+v", err, d)
	}
	oc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca, Certificates: []tls.Certificate{opCert}}}}
	body := `{"id":"ri-001","partner":"demo-agency","messageType":"RequestInformation","caseId":"MY:PERKESO:XB-2026-000731","payload":{"items":[{"code":"WAGES_6M"}]}}`
	resp, err := oc.Post(d.OperatorURL+"/v1/outbound", "application/json", strings.NewReader(body))
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("operator post: %v %v", err, resp)
	}
	resp.Body.Close()
	gatewaytest.Until(t, 60*time.Second, 200*time.Millisecond, func() error {
		o, _, _ := gateway(t, "outbound", "list", "--dev", dir, "--state", "delivered")
		if !strings.Contains(o, "RequestInformation") {
			return fmt.Errorf("operator request never delivered:\n%s", o)
		}
		return nil
	})
	// The agency's answer to that request reaches the back office on the
	// case-messages topic (it stayed in the gateway's store before).
	waitBacklog(t, d)
	var replies []string
	for _, m := range kcatJSON(t, d.KafkaBootstrap, d.Topics.CaseMessages) {
		if p := m["payload"].(string); strings.Contains(p, `"operation":"InformationReply"`) && m["key"] == "MY:PERKESO:XB-2026-000731" &&
			strings.Contains(p, `"sender":"TH:SSO"`) && strings.Contains(p, "NOT_HELD") && strings.Contains(p, `"requestId":"ri-001"`) {
			replies = append(replies, p)
		}
	}
	if len(replies) != 1 {
		t.Fatalf("the agency's InformationReply on the case-messages topic: %q", replies)
	}
	verifyCaseMessage(t, d, replies[0])

	// A notification to the agency: its acknowledgement assigns the case,
	// which the list shows, and the agency's own decision on that case is
	// taken (it was client.case.unknown: only cases Perkeso assigned were known).
	rec, err := os.ReadFile(filepath.Join("..", "..", "adapters", "agencysoap", "testdata", "example-10.3.expect.json"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err = oc.Post(d.OperatorURL+"/v1/outbound", "application/json", strings.NewReader(`{"id":"ni-001","partner":"demo-agency","messageType":"NotifyInjury","payload":{"record":`+string(rec)+`}}`))
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("operator post: %v %v", err, resp)
	}
	resp.Body.Close()
	var caseID string
	gatewaytest.Until(t, 60*time.Second, 200*time.Millisecond, func() error {
		resp, err := oc.Get(d.OperatorURL + "/v1/outbound?state=delivered")
		if err != nil {
			t.Fatal(err)
		}
		var list []struct{ Key, CaseID string }
		_ = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		for _, it := range list {
			if it.Key == "ni-001" && it.CaseID != "" {
				caseID = it.CaseID
				return nil
			}
		}
		return fmt.Errorf("notification never delivered: %+v", list)
	})
	if o, _, _ := gateway(t, "outbound", "list", "--dev", dir, "--state", "delivered"); !strings.HasPrefix(caseID, "TH:SSO:") || !strings.Contains(o, caseID) {
		t.Fatalf("case %q of the notification, list:\n%s", caseID, o)
	}
	nd := `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xb="urn:xb-injury:exchange:v1"><soap:Body><xb:NotifyDecision><xb:Header><xb:MessageId>urn:uuid:dev-nd-1</xb:MessageId><xb:CaseId>` + caseID +
		`</xb:CaseId><xb:Sender>TH:SSO</xb:Sender><xb:Receiver>MY:PERKESO</xb:Receiver><xb:SentAt>2026-03-20T02:00:00Z</xb:SentAt></xb:Header><xb:Decision><xb:Subject>WORK_RELATEDNESS</xb:Subject><xb:Outcome>ACCEPTED</xb:Outcome>` +
		`<xb:DecisionDate cal="BE">2569-03-20</xb:DecisionDate><xb:LegalBasis>Workmen's Compensation Act B.E. 2537</xb:LegalBasis></xb:Decision></xb:NotifyDecision></soap:Body></soap:Envelope>`
	doc := etree.NewDocument()
	if err := doc.ReadFromString(nd); err != nil {
		t.Fatal(err)
	}
	if r, err := demoAgencyClient(t, d).Call(context.Background(), "urn:xb-injury:exchange:v1#NotifyDecision", doc); err != nil || r.Fault != nil || r.Body.Tag != "Acknowledgement" {
		t.Fatalf("the agency's decision on its case: %v %+v", err, r)
	}
	// The back office's answers on that case, held: 202, and "delivered" on
	// the delivery-status topic as for a message sent.
	resp, err = oc.Post(d.OperatorURL+"/v1/outbound", "application/json", strings.NewReader(`{"id":"ans-001","partner":"demo-agency","messageType":"InformationReply","caseId":"`+caseID+`","payload":{"items":[{"code":"POLICE_REPORT","outcome":"NOT_HELD"}]}}`))
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("operator post of answers: %v %v", err, resp)
	}
	resp.Body.Close()
	waitBacklog(t, d)
	held := false
	for _, m := range kcatJSON(t, d.KafkaBootstrap, d.Topics.DeliveryStatus) {
		held = held || m["key"] == "ans-001" && strings.Contains(m["payload"].(string), `"state":"delivered"`)
	}
	if !held {
		t.Fatal("no delivery-status event for the held answers")
	}
}

// TestLargeInsurerBatchThroughDevMode sends one insurer batch of 500 claims
// (the spec's maximum) through dev mode: every claim reaches the verified
// topic and the back office. Each claim's event carries the batch's JWS
// without its payload, so events stay small whatever the batch's size;
// embedding the batch made 500 events of 700 KB that the broker refused,
// which stopped all publishing.
func TestLargeInsurerBatchThroughDevMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, out, d := startDev(t, dir)
	defer stop(t, cmd, out)
	var batch map[string]any
	in, err := os.ReadFile("../../adapters/insurerclaim/testdata/example-batch.in.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(in, &batch); err != nil {
		t.Fatal(err)
	}
	c0, _ := json.Marshal(batch["claims"].([]any)[0])
	var claims []any
	for i := range 500 {
		var c map[string]any
		if err := json.Unmarshal(c0, &c); err != nil {
			t.Fatal(err)
		}
		c["claimNo"] = fmt.Sprintf("WC26LARGE%04d", i)
		claims = append(claims, c)
	}
	batch["claims"], batch["batchId"] = claims, "WIC017-LARGE-0001"
	doc, _ := json.Marshal(batch)
	file := filepath.Join(t.TempDir(), "batch.json")
	if err := os.WriteFile(file, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := gateway(t, "submit", "--dev", dir, "--partner", "demo-insurer", file)
	if err != nil || !strings.Contains(stdout, `"status":"PROCESSED"`) || strings.Count(stdout, `"status":"ACCEPTED"`) != 500 {
		t.Fatalf("submit: %v\n%.500s\n%s", err, stdout, stderr)
	}
	waitBacklog(t, d)

	lay, err := devmode.LayoutOf(dir)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := jwk.ReadFile(lay.GatewayJWKS)
	if err != nil {
		t.Fatal(err)
	}
	msgs := kafkatest.ReadAll(t, d.KafkaBootstrap, d.Topics.Verified, 500, 60*time.Second)
	if len(msgs) != 500 {
		t.Fatalf("%d records on the verified topic, want 500", len(msgs))
	}
	for _, m := range msgs {
		var env struct {
			Record               json.RawMessage
			Receipt, Attestation string
			JWS                  map[string]string
		}
		if err := json.Unmarshal(m.Value, &env); err != nil || env.Attestation != "" || env.Receipt == "" {
			t.Fatalf("envelope %.300s: %v", m.Value, err)
		}
		rc, err := receipt.Verify(env.Receipt, jwks)
		if err != nil || rc.RecordSHA256 != receipt.Digest(env.Record) || rc.BatchID != "WIC017-LARGE-0001" || string(m.Key) != rc.RecordID {
			t.Fatalf("claim receipt %+v: %v", rc, err)
		}
		if _, has := env.JWS["payload"]; has || env.JWS["protected"] == "" || env.JWS["signature"] == "" {
			t.Fatalf("jws %v: want the batch's protected header and signature, no payload", env.JWS)
		}
		if len(m.Value) > 8<<10 { // with the batch receipt (every claim's status) it was 83 KB
			t.Fatalf("event of %d bytes", len(m.Value))
		}
	}
	// ingest as a service, pointed at the cluster rather than a dev
	// gateway: the same records, and a log of JSON lines only.
	stdout, stderr, err = gateway(t, "ingest", "--brokers", d.KafkaBootstrap, "--topic", d.Topics.Verified, "--jwks", d.GatewayJWKS,
		"--db", filepath.Join(t.TempDir(), "backoffice.db"), "--until-caught-up")
	if err != nil || !strings.Contains(stdout, "500 ingested, 0 quarantined") {
		t.Fatalf("ingest: %v\n%s\n%s", err, stdout, stderr)
	}
	assertJSONLog(t, "ingest", stderr)
	if !strings.Contains(stderr, `"msg":"ingest started"`) {
		t.Fatalf("ingest's log: %s", stderr)
	}
}

// TestDevKeepsBrokerPort: "gateway dev" restarted on its directory listens
// for Kafka where it did before, so a dev ingest left running reads what
// the restarted gateway publishes; when another process holds that port,
// it takes any free one and records it.
func TestDevKeepsBrokerPort(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "dev")
	cmd, out, first := startDev(t, dir)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	running := exec.CommandContext(ctx, gatewayBin, "ingest", "--dev", dir)
	ingestOut := &gatewaytest.SyncBuffer{}
	running.Stdout, running.Stderr = ingestOut, ingestOut
	running.Cancel = func() error { return running.Process.Signal(os.Interrupt) } // a clean stop, leaving its group
	if err := running.Start(); err != nil {
		t.Fatal(err)
	}
	stopIngest := sync.OnceFunc(func() { cancel(); _ = running.Wait() })
	defer stopIngest()
	ingested := func(n int) {
		t.Helper()
		want := fmt.Sprintf("(%d ingested,", n)
		gatewaytest.Until(t, 90*time.Second, 100*time.Millisecond, func() error {
			if !strings.Contains(ingestOut.String(), want) {
				return fmt.Errorf("the running ingest never reported %q:\n%s", want, ingestOut)
			}
			return nil
		})
	}
	if _, e, err := gateway(t, "submit", "--dev", dir, example("example-a.in.json")); err != nil {
		t.Fatalf("submit: %v\n%s", err, e)
	}
	ingested(1)
	stop(t, cmd, out)

	cmd, out, again := startDev(t, dir)
	if again.KafkaBootstrap != first.KafkaBootstrap {
		t.Fatalf("broker at %s after the restart, %s before", again.KafkaBootstrap, first.KafkaBootstrap)
	}
	if _, e, err := gateway(t, "submit", "--dev", dir, example("example-b.in.json")); err != nil {
		t.Fatalf("submit: %v\n%s", err, e)
	}
	ingested(2)  // the same ingest, not restarted
	stopIngest() // leaving its group while the broker is there: the next ingest need not wait out its session
	stop(t, cmd, out)

	held, err := net.Listen("tcp", first.KafkaBootstrap)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	cmd, out, moved := startDev(t, dir)
	defer stop(t, cmd, out)
	if moved.KafkaBootstrap == first.KafkaBootstrap {
		t.Fatalf("broker at %s, which another listener holds", moved.KafkaBootstrap)
	}
	l, _ := devmode.LayoutOf(dir)
	if _, port, _ := net.SplitHostPort(moved.KafkaBootstrap); strconv.Itoa(l.LastKafkaPort()) != port {
		t.Fatalf("recorded port %d, the broker's is %s", l.LastKafkaPort(), port)
	}
	if _, e, err := gateway(t, "submit", "--dev", dir, example("example-c.in.json")); err != nil {
		t.Fatalf("submit on the new port: %v\n%s", err, e)
	}
	// Example C, and B again if the first ingest's last offset commit had
	// not reached the restarted broker (logged; the upsert absorbs it).
	// The idle bound also covers joining the group on a busy machine.
	if o, e, err := gateway(t, "ingest", "--dev", dir, "--until-caught-up", "--idle", "5s"); err != nil || !strings.Contains(o, " 0 quarantined") {
		t.Fatalf("ingest on the new port: %v\n%s\n%s\nthe first ingest:\n%s", err, o, e, ingestOut)
	}
	bo, err := ingest.OpenSink(filepath.Join(dir, "backoffice.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer bo.Close()
	var rows int
	if err := bo.DB().QueryRow(`SELECT count(*) FROM backoffice_records`).Scan(&rows); err != nil || rows != 3 {
		t.Fatalf("back office holds %d records (%v), want examples A, B and C", rows, err)
	}
}

// TestStopDrainsOutbox: a gateway stopped under load publishes what its
// last requests left in the outbox before it exits, once each: the outbox
// is empty after the stop, and the topic holds one event per accepted
// notice. Its relay used to stop with the signal, leaving the events of
// the requests still finishing to the next start, and cutting short the
// batch under way, which the next start published again.
func TestStopDrainsOutbox(t *testing.T) {
	_, dir := devLayout(t)
	cmd, out, d := startDev(t, dir)
	load := exec.Command(gatewayBin, "loadtest", "--dev", dir, "--concurrency", "32", "--duration", "20s")
	var loadOut bytes.Buffer
	load.Stdout = &loadOut
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = load.Process.Kill(); _, _ = load.Process.Wait() })
	waitAccepted(t, d, 500)
	stop(t, cmd, out) // under load

	st, err := store.OpenSQLite(d.Store)
	if err != nil {
		t.Fatal(err)
	}
	backlog, err := st.OutboxBacklog(context.Background())
	var accepted int
	_ = st.DB().QueryRow(`SELECT COUNT(*) FROM records`).Scan(&accepted)
	st.Close()
	if err != nil || backlog != 0 {
		t.Fatalf("outbox backlog %d (%v) after the stop, want 0:\n%s", backlog, err, out)
	}
	// The events, read back from the broker's files by a gateway started again.
	_, _, d = startDev(t, dir)
	msgs := kafkatest.ReadAll(t, d.KafkaBootstrap, d.Topics.Verified, accepted, 60*time.Second)
	keys := map[string]bool{}
	for _, m := range msgs {
		if keys[string(m.Key)] {
			t.Fatalf("record %s published twice", m.Key)
		}
		keys[string(m.Key)] = true
	}
	if len(keys) != accepted {
		t.Fatalf("%d events for %d accepted notices", len(keys), accepted)
	}
}

// waitAccepted waits until the running dev gateway's store holds n
// records, reading it read-only.
func waitAccepted(t *testing.T, d *devmode.DevJSON, n int) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+d.Store+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	gatewaytest.Until(t, 60*time.Second, 20*time.Millisecond, func() error {
		var got int
		if err := db.QueryRow(`SELECT COUNT(*) FROM records`).Scan(&got); err != nil || got < n {
			return fmt.Errorf("%d of %d notices accepted (%v)", got, n, err)
		}
		return nil
	})
}
