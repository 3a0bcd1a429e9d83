package store

import (
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Errors that callers branch on. Driver errors are mapped to these so that no package
// above store needs to know which engine it runs on, and both engines answer alike.
var (
	// ErrNotFound: the row asked for does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a unique constraint refused the write (a duplicate).
	ErrConflict = errors.New("store: conflict")
	// ErrForeignKey: a referenced row does not exist.
	ErrForeignKey = errors.New("store: referenced row missing")

	errRetry = errors.New("store: transaction must be retried")
)

// mapErr wraps driver errors so that errors.Is works with the sentinels above, keeping the
// driver's text for logs.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505":
			return fmt.Errorf("%w: %w", ErrConflict, err)
		case "23503":
			return fmt.Errorf("%w: %w", ErrForeignKey, err)
		case "40001", "40P01":
			return fmt.Errorf("%w: %w", errRetry, err)
		}
		return err
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		switch liteErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: %w", ErrForeignKey, err)
		}
	}
	return err
}

// Err maps an error from a Scan (such as sql.ErrNoRows) to the store's sentinels.
func Err(err error) error { return mapErr(err) }
