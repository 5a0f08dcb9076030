package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// ErrBackupPostgres is Backup's answer for a PostgreSQL store, which the
// database's own tools back up.
var ErrBackupPostgres = errors.New("a PostgreSQL store is backed up with pg_dump or the cluster's own backups")

// BackupProgressEvery is how often Backup reports the copy's progress (a
// variable for the tests, which watch a copy under way).
var BackupProgressEvery = time.Second

// Backup writes a copy of a SQLite store to path while the gateway goes on
// writing: VACUUM INTO reads the store in one read transaction, so the copy
// is the store as of one commit (chain, records and outbox agreeing), and
// compacted. path must not exist yet.
//
// The copy is made under a hidden name beside path (".NAME.partial-…")
// and takes path only once it is whole and synced to disk, its directory
// entry too. VACUUM INTO writes its file in place, under a rollback
// journal: a backup killed mid-copy left a 248 MB file and its -journal
// under the backup's name, which then opened as an empty store ("0
// entries, hash chain intact": the journal rolled the file back) or,
// copied without its journal, as "file is not a database". An
// interrupted run now leaves only the hidden file.
//
// progress, if not nil, hears the bytes copied so far and about how many
// the copy will take (the store's pages in use), every
// BackupProgressEvery and once more when the copy is complete: a store of
// many gigabytes copies for minutes, and VACUUM INTO says nothing until it
// ends, so the copy's file is what is watched.
//
// Its errors begin "backup: ", not "store: backup: ": the command that
// runs it is "gateway store", whose errors read "gateway store: …".
func (s *DB) Backup(ctx context.Context, path string, progress func(copied, of int64)) error {
	if s.postgres {
		return ErrBackupPostgres
	}
	if err := free(path); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	// Created here, empty and its owner's alone (VACUUM INTO writes into
	// an empty file, and would create one readable by all).
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	tmp := f.Name()
	f.Close()
	defer os.Remove(tmp) // gone once renamed; once linked, its second name
	if progress == nil {
		progress = func(int64, int64) {}
	}
	var of int64
	if err := s.db.QueryRowContext(ctx, qPagesInUse).Scan(&of); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	done, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(BackupProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				progress(fileSize(tmp), of)
			}
		}
	}()
	_, err = s.db.ExecContext(ctx, `VACUUM INTO ?`, tmp)
	close(done)
	<-watched
	if err == nil {
		err = syncFile(tmp)
	}
	if err == nil {
		err = takeName(tmp, path)
	}
	if err == nil {
		if err = syncFile(filepath.Dir(path)); err != nil {
			os.Remove(path) // its name may not outlive a crash
		}
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	progress(fileSize(path), of)
	return nil
}

// takeName gives the finished copy at tmp the name path, which must not
// exist: a hard link does so in one step, refused if path exists by then
// (a file put there during the copy is kept). Where the file system has no
// hard links (FAT, some SMB shares) the copy is renamed after a look for
// the name, which leaves a window between the two in which such a file
// would be replaced. tmp is left to the caller to remove.
func takeName(tmp, path string) error {
	err := os.Link(tmp, path)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		return errExists(path)
	}
	if err := free(path); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// free is nil when nothing is at path, the refusal of a backup to it
// otherwise.
func free(path string) error {
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return errExists(path)
	}
	return nil
}

func errExists(path string) error {
	return fmt.Errorf("%s exists; a backup goes to a new file", path)
}

// syncFile flushes a file, or a directory's entries, to disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// qPagesInUse is the bytes of a SQLite store's pages in use: about the
// size of its compacted copy.
const qPagesInUse = `SELECT (page_count - freelist_count) * page_size FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()`

// fileSize is path's size, or 0 if it cannot be read.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
