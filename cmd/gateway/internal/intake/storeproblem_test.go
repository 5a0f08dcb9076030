package intake

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/perkeso/jambatan/cmd/gateway/internal/problem"
	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// TestStoreProblem: a store failure is a 503 that says nothing was
// accepted, except after a commit timeout, when the submission may have
// been committed and the partner is told to send it again unchanged.
func TestStoreProblem(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		err        error
	}{
		{"fail/unavailable", "nothing was accepted", errors.New("connection refused")},
		{"fail/commit-timeout", "may or may not have been accepted", fmt.Errorf("%w (1s): context deadline exceeded", store.ErrCommitTimeout)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := storeProblem(tc.err)
			if p.Kind != problem.Unavailable || !strings.Contains(p.Detail, tc.want) || !errors.Is(p.Cause, errStore) || !errors.Is(p.Cause, tc.err) {
				t.Fatalf("%+v, want Unavailable saying %q, caused by the store error", p, tc.want)
			}
		})
	}
}
