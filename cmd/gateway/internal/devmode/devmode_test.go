package devmode

import (
	"os"
	"strings"
	"testing"
)

// TestLastKafkaPort: the port SaveKafkaPort recorded, and 0 (any free
// port) for a file that is missing or holds no port.
func TestLastKafkaPort(t *testing.T) {
	l, err := LayoutOf(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if got := l.LastKafkaPort(); got != 0 {
		t.Fatalf("fail/missing: %d, want 0", got)
	}
	if err := l.SaveKafkaPort("127.0.0.1:40123"); err != nil {
		t.Fatal(err)
	}
	if got := l.LastKafkaPort(); got != 40123 {
		t.Fatalf("ok/saved: %d, want 40123", got)
	}
	if err := l.SaveKafkaPort("127.0.0.1"); err == nil || !strings.Contains(err.Error(), "missing port") {
		t.Fatalf("fail/no-port: %v", err)
	}
	for _, tc := range []struct{ name, file string }{
		{"fail/empty", ""}, {"fail/text", "kafka\n"}, {"fail/zero", "0\n"}, {"fail/negative", "-1\n"},
		{"fail/past-65535", "65536\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(l.KafkaPort, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			if got := l.LastKafkaPort(); got != 0 {
				t.Fatalf("%q: %d, want 0", tc.file, got)
			}
		})
	}
	for _, tc := range []struct {
		name, file string
		want       int
	}{{"ok/edge-1", "1\n", 1}, {"ok/edge-65535", "65535", 65535}, {"ok/spaces", " 9092 \n", 9092}} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(l.KafkaPort, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			if got := l.LastKafkaPort(); got != tc.want {
				t.Fatalf("%q: %d, want %d", tc.file, got, tc.want)
			}
		})
	}
}
