package loadgen

import (
	"strings"
	"testing"
)

// TestCheckLoopback: the load generator sends only to this machine.
func TestCheckLoopback(t *testing.T) {
	for _, tc := range []struct{ name, url string }{
		{"ok/localhost", "https://localhost:8443"},
		{"ok/ipv4", "https://127.0.0.1:8443"},
		{"ok/ipv4-other-loopback", "https://127.3.2.1:8443"},
		{"ok/ipv6", "https://[::1]:8443"},
		{"fail/name", "https://gateway.perkeso.gov.my"},
		{"fail/private-address", "https://10.0.0.5:8443"},
		{"fail/unspecified", "https://0.0.0.0:8443"},
		{"fail/localhost-lookalike", "https://localhost.example.com"},
		{"fail/not-a-url", "https://[::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckLoopback(tc.url)
			if strings.HasPrefix(tc.name, "ok/") != (err == nil) {
				t.Fatalf("CheckLoopback(%q) = %v", tc.url, err)
			}
		})
	}
}
