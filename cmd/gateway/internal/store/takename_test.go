package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTakeName: a finished backup takes its name in one step (a hard link),
// and a file already at the name is kept and the backup refused; where a
// link is refused for another reason (a file system without hard links;
// here a directory, which Linux will not link) it is renamed instead,
// after a look for the name.
func TestTakeName(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dir      bool   // tmp a directory: the link refused, EPERM
		taken    bool   // something at path already
		refusal  string // "" for ok
		tmpAfter bool   // tmp still there (a link's first name, or a refusal)
	}{
		{"ok/linked", false, false, "", true},
		{"ok/renamed-where-no-link", true, false, "", false},
		{"fail/name-taken", false, true, "exists; a backup goes to a new file", true},
		{"fail/name-taken-where-no-link", true, true, "exists; a backup goes to a new file", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tmp, path := filepath.Join(dir, ".b.db.partial"), filepath.Join(dir, "b.db")
			var err error
			if tc.dir {
				err = os.Mkdir(tmp, 0o700)
			} else {
				err = os.WriteFile(tmp, []byte("the copy\n"), 0o600)
			}
			if err == nil && tc.taken {
				err = os.WriteFile(path, []byte("someone else's\n"), 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			err = takeName(tmp, path)
			if (err == nil) != (tc.refusal == "") || err != nil && !strings.Contains(err.Error(), tc.refusal) {
				t.Fatalf("takeName = %v, want refusal %q", err, tc.refusal)
			}
			fi, serr := os.Stat(path)
			switch {
			case serr != nil:
				t.Fatalf("nothing at the name: %v", serr)
			case tc.taken:
				if b, _ := os.ReadFile(path); string(b) != "someone else's\n" {
					t.Fatalf("the file at the name was replaced: %q", b)
				}
			case fi.IsDir() != tc.dir:
				t.Fatalf("the name holds %v, not the copy", fi.Mode())
			case !tc.dir:
				if b, _ := os.ReadFile(path); string(b) != "the copy\n" {
					t.Fatalf("the name holds %q, not the copy", b)
				}
			}
			if _, err := os.Stat(tmp); (err == nil) != tc.tmpAfter {
				t.Fatalf("the copy's first name: %v, want it there %v", err, tc.tmpAfter)
			}
		})
	}
}
