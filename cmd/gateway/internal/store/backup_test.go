package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/perkeso/jambatan/cmd/gateway/internal/store"
)

// TestBackup: a backup taken while accepts go on is the store as of one
// commit: its chain is intact, every record in it has its log entry, and
// it holds at least what was accepted before it began. A backup refuses a
// file that exists; a PostgreSQL store refuses to back itself up.
func TestBackup(t *testing.T) {
	backends(t, func(t *testing.T, target string) {
		ctx := context.Background()
		s := open(t, target)
		dir := t.TempDir()
		if store.IsPostgres(target) {
			if err := s.Backup(ctx, filepath.Join(dir, "b.db"), nil); !errors.Is(err, store.ErrBackupPostgres) {
				t.Fatalf("fail/postgres: %v", err)
			}
			return
		}
		for i := range 200 {
			if _, err := s.Accept(ctx, entry(fmt.Sprint("before-", i), "aa"), onExisting); err != nil {
				t.Fatal(err)
			}
		}
		stop := make(chan struct{})
		wg := acceptUntil(s, 4, "during-", stop, func(_ string, _ store.AcceptResult, err error) bool {
			if err != nil {
				t.Error(err)
			}
			return err == nil
		})
		path := filepath.Join(dir, "backup.db")
		var heard [][2]int64
		err := s.Backup(ctx, path, func(copied, of int64) { heard = append(heard, [2]int64{copied, of}) })
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatalf("ok/while-writing: %v", err)
		}
		b := open(t, path)
		rep, err := b.Verify(ctx, nil)
		if err != nil || rep.BrokenSeq != 0 || rep.Entries < 200 {
			t.Fatalf("ok/while-writing: the copy's chain %+v, %v", rep, err)
		}
		var records, orphans int64
		if err := b.DB().QueryRow(`SELECT count(*), count(*) FILTER (WHERE seq NOT IN (SELECT seq FROM message_log)) FROM records`).Scan(&records, &orphans); err != nil || records != rep.Entries || orphans != 0 {
			t.Fatalf("ok/while-writing: %d records (%d without their entry) for %d entries, %v", records, orphans, rep.Entries, err)
		}
		// The last progress is the copy complete: its file's size, of
		// about the store's pages in use (the copy is compacted, and the
		// store went on growing after it began).
		size := fileSize(t, path)
		if len(heard) == 0 || heard[len(heard)-1][0] != size || heard[len(heard)-1][1] < size/2 || heard[len(heard)-1][1] > 2*size {
			t.Fatalf("ok/progress: heard %v, want the last at %d bytes copied of about as many", heard, size)
		}
		t.Logf("backup of %d entries while accepts went on; progress %v", rep.Entries, heard)
		if err := s.Backup(ctx, path, nil); err == nil || !strings.Contains(err.Error(), "exists; a backup goes to a new file") {
			t.Fatalf("fail/file-exists: a backup over a file: %v", err)
		}
	})
}

// TestFilesPrivate: a SQLite store the gateway creates, its -wal and -shm
// files, and a backup of it are readable by their owner alone (they hold
// names, identity numbers and medical text); SQLite made them readable by
// all.
func TestFilesPrivate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "gateway.db")
	s := open(t, path)
	if _, err := s.Accept(ctx, entry("private-1", "aa"), onExisting); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "backup.db")
	if err := s.Backup(ctx, backup, nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal", path + "-shm", backup} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v, want none for group and others", filepath.Base(f), fi.Mode().Perm())
		}
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestBackupTakesItsNameWhole: while the copy is made, nothing is at the
// backup's path (a copy interrupted there, by a kill or a crash, passed
// for a backup: VACUUM INTO's partial file, its journal rolling it back,
// opened as an empty store with an intact chain);
// once done, the path holds the whole copy and nothing else is left in
// its directory. A file someone put at the path while the copy was made is
// kept and the backup refused (the rename would have replaced it). A copy
// that fails leaves nothing either.
func TestBackupTakesItsNameWhole(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "s.db"))
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 250 {
				e := entry(fmt.Sprint("big-", w, "-", i), "aa")
				e.Body = bytes.Repeat([]byte{'x'}, 4096)
				if _, err := s.Accept(ctx, e, onExisting); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	defer func(d time.Duration) { store.BackupProgressEvery = d }(store.BackupProgressEvery)
	store.BackupProgressEvery = time.Millisecond

	dir := t.TempDir()
	path := filepath.Join(dir, "backup.db")
	type heard struct {
		copied int64
		there  bool // path existed when progress was told
	}
	var calls []heard
	if err := s.Backup(ctx, path, func(copied, _ int64) {
		_, err := os.Stat(path)
		calls = append(calls, heard{copied, err == nil})
	}); err != nil {
		t.Fatal(err)
	}
	if len(calls) < 2 {
		t.Fatalf("progress heard %d times: no copy under way was seen (a larger store is needed)", len(calls))
	}
	for _, c := range calls[:len(calls)-1] {
		if c.there {
			t.Fatalf("fail/named-early: %s existed while the copy was at %d bytes (%v)", path, c.copied, calls)
		}
	}
	if last := calls[len(calls)-1]; !last.there || last.copied != fileSize(t, path) {
		t.Fatalf("ok/whole: the last progress %+v, the file %d bytes", last, fileSize(t, path))
	}
	if names := dirNames(t, dir); len(names) != 1 || names[0] != "backup.db" {
		t.Fatalf("ok/nothing-left: %v", names)
	}

	// A file put at the path while the copy is made is kept, not replaced
	// by the copy's rename.
	meanwhile := t.TempDir()
	taken := filepath.Join(meanwhile, "backup.db")
	err := s.Backup(ctx, taken, func(int64, int64) {
		if _, err := os.Stat(taken); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(taken, []byte("someone else's\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	})
	if b, _ := os.ReadFile(taken); err == nil || !strings.Contains(err.Error(), "exists; a backup goes to a new file") || string(b) != "someone else's\n" {
		t.Fatalf("fail/named-meanwhile: %v, the file holds %q", err, b)
	}
	if names := dirNames(t, meanwhile); len(names) != 1 {
		t.Fatalf("fail/named-meanwhile: left %v", names)
	}

	failed := t.TempDir()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Backup(cancelled, filepath.Join(failed, "backup.db"), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("fail/cancelled: %v, want the backup stopped by its context", err)
	}
	if names := dirNames(t, failed); len(names) != 0 {
		t.Fatalf("fail/cancelled: left %v", names)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}
