package main

import (
	"runtime"
	"testing"
)

func TestTuneProcs(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	runtime.SetDefaultGOMAXPROCS()
	t.Cleanup(runtime.SetDefaultGOMAXPROCS)
	cores := runtime.GOMAXPROCS(0)
	for _, tc := range []struct {
		name, env, store string
		want             int
	}{
		{"ok/sqlite has one more", "", "gateway.db", cores + 1},
		{"ok/sqlite again still one more", "", "gateway.db", cores + 1},
		{"ok/postgres has the cores", "", "postgres://jambatan@127.0.0.1/jambatan", cores},
		{"ok/GOMAXPROCS set wins", "7", "gateway.db", 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", tc.env)
			if tc.env != "" {
				runtime.GOMAXPROCS(7) // as the runtime read it at start
			}
			tuneProcs(tc.store)
			if got := runtime.GOMAXPROCS(0); got != tc.want {
				t.Errorf("GOMAXPROCS = %d, want %d", got, tc.want)
			}
		})
	}
}
