package gatewaytest

import (
	"encoding/json"
	"os"
	"testing"
)

// EditConfig writes to the configuration file "to" that of "from" (the same
// path or one beside it, whose relative paths it keeps) as edit leaves it,
// the file read as JSON: a test's configuration differs from the one it
// starts from by what edit says.
func EditConfig(t testing.TB, from, to string, edit func(cfg map[string]any)) {
	t.Helper()
	raw, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	if raw, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}
