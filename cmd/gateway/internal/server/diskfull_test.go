package server_test

import (
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/gatewaytest"
	"github.com/perkeso/jambatan/cmd/gateway/internal/partnerkit"
	"github.com/perkeso/jambatan/cmd/gateway/internal/problem"
	"github.com/perkeso/jambatan/cmd/gateway/internal/server"
)

// TestDiskFull: with the disk full, a notice is refused with 503 saying
// nothing was accepted, and an agency message with the retryable fault
// server.unavailable; neither gets a receipt. Once there is room again, the
// same notice sent again is accepted (202, not a duplicate: nothing of the
// first attempt was kept), and so is the agency message. A request refused
// unread is still refused on a full disk, and the operator's log says its
// message-log row could not be written (and says nothing of the kind with
// room on the disk).
func TestDiskFull(t *testing.T) {
	var logged gatewaytest.SyncBuffer
	env := gatewaytest.Start(t, gatewaytest.Options{Log: slog.New(slog.NewTextHandler(&logged, nil))})
	a := env.Partners["employer-a"]
	c := env.Client(&a.TLS)
	notice := []byte(sign(t, example(t, "example-a.in.json"), a.SigningKey, partnerkit.Compact))

	// A request refused unread (a query) is logged in the message log; with
	// room on the disk that write says nothing in the operator's log.
	unread := postJOSE(t, c, env.Server.URL+"/v1/injury-notices?dryRun=true", notice)
	assertProblem(t, unread, problem.BadRequest, `[]`)
	if strings.Contains(logged.String(), "message log write failed") {
		t.Fatalf("a refusal logged with room on the disk reported a failed write:\n%s", logged.String())
	}

	var r, soap, unreadFull response
	gatewaytest.FullDisk(t, func() {
		r = post(t, c, env.Server.URL, "application/jose", notice, nil)
		soap = postSOAPAnswer(t, env, "agency-th", nil)
		unreadFull = postJOSE(t, c, env.Server.URL+"/v1/injury-notices?dryRun=true", notice)
	})
	// On a full disk the partner still gets its refusal, and the operator
	// learns that the message log lacks it.
	assertProblem(t, unreadFull, problem.BadRequest, `[]`)
	failed := `msg="message log write failed" correlation_id=` + unreadFull.header.Get(server.CorrelationHeader) + ` err=`
	if !strings.Contains(logged.String(), failed) {
		t.Fatalf("no %q line for the refusal on a full disk:\n%s", failed, logged.String())
	}
	soapStatus, soapRaw := soap.status, soap.body
	assertProblem(t, r, problem.Unavailable, "")
	if !strings.Contains(string(r.body), "nothing was accepted") || strings.Contains(string(r.body), "receipt") {
		t.Fatalf("refusal on a full disk: %s", r.body)
	}
	if soapStatus != http.StatusInternalServerError {
		t.Fatalf("SOAP HTTP %d: %.300s", soapStatus, soapRaw)
	}
	assertFault(t, soapRaw, "server.unavailable")
	// The operator's log says why, as it does for a notice.
	for _, line := range []string{`msg="submission refused"`, `msg="agency request refused"`} {
		if !strings.Contains(logged.String(), line) || !regexp.MustCompile(regexp.QuoteMeta(line)+`[^\n]* cause="[^"]*disk I/O error`).MatchString(logged.String()) {
			t.Fatalf("no %s line with its cause (%d bytes logged):\n%s", line, len(logged.String()), logged.String())
		}
	}
	// When to try again, in the detail (§8.1) and in HTTP's own header.
	if !strings.Contains(string(soapRaw), "<xb:RetryAfterSeconds>5</xb:RetryAfterSeconds>") || soap.header.Get("Retry-After") != "5" {
		t.Fatalf("server.unavailable without its wait (Retry-After %q): %.600s", soap.header.Get("Retry-After"), soapRaw)
	}

	if r = post(t, c, env.Server.URL, "application/jose", notice, nil); r.status != http.StatusAccepted {
		t.Fatalf("sent again with room on the disk: %d %s", r.status, r.body)
	}
	if status, raw := postSOAP(t, env, "agency-th"); status != http.StatusOK {
		t.Fatalf("SOAP again with room on the disk: HTTP %d: %.300s", status, raw)
	}
}
