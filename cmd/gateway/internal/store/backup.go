package store

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/perkeso/jambatan/cmd/gateway/internal/sqldialect"
)

// ErrBackupPostgres is Backup's answer for a PostgreSQL store, which the
// database's own tools back up.
var ErrBackupPostgres = errors.New("a PostgreSQL store is backed up with pg_dump or the cluster's own backups")

// Backup writes a copy of a SQLite store to path while the gateway goes on
// writing: VACUUM INTO reads the store in one read transaction, so the copy
// is the store as of one commit (chain, records and outbox agreeing), and
// compacted. path must not exist yet.
func (s *DB) Backup(ctx context.Context, path string) error {
	if s.postgres {
		return ErrBackupPostgres
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: backup: %s exists; a backup goes to a new file", path)
	}
	// Created here, empty, so that the copy is its owner's alone (VACUUM
	// INTO writes into an empty file, and would create one readable by all).
	if err := sqldialect.CreateSQLite(path); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		os.Remove(path)
		return fmt.Errorf("store: backup: %w", err)
	}
	return nil
}
