package soapsrv

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// TestStoreFault: a store failure is the retryable server.unavailable
// fault; after a commit timeout its reason does not claim that nothing was
// accepted.
func TestStoreFault(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		err        error
	}{
		{"fail/unavailable", "nothing was accepted", errors.New("connection refused")},
		{"fail/commit-timeout", "may or may not have been accepted", fmt.Errorf("%w (1s): context deadline exceeded", store.ErrCommitTimeout)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := storeFault(tc.err)
			if f.Code != "server.unavailable" || !f.Server || f.Retry == 0 || !strings.Contains(f.Reason, tc.want) {
				t.Fatalf("%+v, want a retryable server.unavailable saying %q", f, tc.want)
			}
		})
	}
}
