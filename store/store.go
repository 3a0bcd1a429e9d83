// Package store opens Switchboard's system of record, SQLite or PostgreSQL, applies the
// embedded migrations, and runs transactions whose side effects (publishing events) happen
// only after commit.
//
// Every domain package owns its tables' SQL; store knows nothing about them. SQL written
// against store uses $N placeholders, RETURNING and ON CONFLICT, which both engines accept.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver
)

// Dialect names the database engine behind a DB.
type Dialect string

// The engines Switchboard runs on.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is an open database. Reads go to a pool of readers; writes and transactions go to
// the writer pool. On SQLite the writer pool holds exactly one connection, so writers queue
// in Go instead of failing with "database is locked"; on PostgreSQL both are one pool.
type DB struct {
	dialect Dialect
	w       *sql.DB
	r       *sql.DB
	log     *slog.Logger
}

// Querier is what both a DB and a Tx offer for running statements.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var (
	_ Querier = (*DB)(nil)
	_ Querier = (*Tx)(nil)
)

// Open connects to the database named by rawURL: "sqlite:PATH" (the folder is created) or
// "postgres://…" / "postgresql://…". It does not migrate; call Migrate.
func Open(ctx context.Context, rawURL string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dialect, dsn, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	db := &DB{dialect: dialect, log: log}
	switch dialect {
	case SQLite:
		// One writer connection: SQLite has one write lock per file, and queueing writers
		// in database/sql is both faster and safer than letting them spin on busy_timeout.
		// _txlock=immediate makes BEGIN take the write lock up front; a deferred transaction
		// that upgrades later bypasses busy_timeout when another process holds the lock.
		if db.w, err = sql.Open("sqlite", dsn+"&_txlock=immediate"); err != nil {
			return nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		db.w.SetMaxOpenConns(1)
		db.w.SetConnMaxIdleTime(0)
		if db.r, err = sql.Open("sqlite", dsn+"&_pragma=query_only(1)"); err != nil {
			db.w.Close()
			return nil, fmt.Errorf("store: open sqlite: %w", err)
		}
		db.r.SetMaxOpenConns(8)
	case Postgres:
		if db.w, err = sql.Open("pgx", dsn); err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		db.w.SetMaxOpenConns(20)
		db.w.SetMaxIdleConns(10)
		db.w.SetConnMaxIdleTime(5 * time.Minute)
		db.r = db.w
	}
	if err := db.Ping(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// parseURL turns DATABASE_URL into a driver name and DSN, with a clear error for bad values.
func parseURL(rawURL string) (Dialect, string, error) {
	switch {
	case strings.HasPrefix(rawURL, "sqlite:"):
		path := strings.TrimPrefix(rawURL, "sqlite:")
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return "", "", errors.New("store: sqlite URL needs a path, as in sqlite:./data/switchboard.db")
		}
		if strings.Contains(path, "?") {
			return "", "", errors.New("store: sqlite URL takes no options")
		}
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return "", "", fmt.Errorf("store: create database folder: %w", err)
			}
		}
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "foreign_keys(1)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_time_format", "sqlite")
		return SQLite, "file:" + path + "?" + q.Encode(), nil
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		u, err := url.Parse(rawURL)
		if err != nil {
			return "", "", fmt.Errorf("store: bad postgres URL: %w", err)
		}
		if u.Host == "" {
			return "", "", errors.New("store: postgres URL needs a host")
		}
		return Postgres, rawURL, nil
	default:
		return "", "", errors.New("store: URL must start with sqlite: or postgres://")
	}
}

// Dialect reports the engine.
func (db *DB) Dialect() Dialect { return db.dialect }

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.w.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// Close closes both pools.
func (db *DB) Close() error {
	err := db.w.Close()
	if db.r != db.w {
		err = errors.Join(err, db.r.Close())
	}
	return err
}

// ExecContext runs one write statement outside a transaction.
func (db *DB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := db.w.ExecContext(ctx, query, args...)
	return res, mapErr(err)
}

// QueryContext runs a read on the reader pool.
func (db *DB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := db.r.QueryContext(ctx, query, args...)
	return rows, mapErr(err)
}

// QueryRowContext runs a one-row read on the reader pool. Scan errors are not mapped; use
// store.NotFound or errors.Is(err, sql.ErrNoRows).
func (db *DB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return db.r.QueryRowContext(ctx, query, args...)
}

// Tx is a write transaction. Statements on it see its own writes.
type Tx struct {
	tx          *sql.Tx
	dialect     Dialect
	afterCommit []func()
}

// ExecContext runs a statement in the transaction.
func (tx *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := tx.tx.ExecContext(ctx, query, args...)
	return res, mapErr(err)
}

// QueryContext runs a query in the transaction.
func (tx *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := tx.tx.QueryContext(ctx, query, args...)
	return rows, mapErr(err)
}

// QueryRowContext runs a one-row query in the transaction.
func (tx *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return tx.tx.QueryRowContext(ctx, query, args...)
}

// Dialect reports the engine.
func (tx *Tx) Dialect() Dialect { return tx.dialect }

// AfterCommit registers f to run once the transaction has committed, in registration
// order. It never runs when the transaction rolls back. This is how events are published
// only after the change that caused them is durable.
func (tx *Tx) AfterCommit(f func()) { tx.afterCommit = append(tx.afterCommit, f) }

// maxAttempts bounds retries of a transaction that PostgreSQL aborted for a serialization
// failure or a deadlock; both are safe to retry because nothing was committed.
const maxAttempts = 5

// InTx runs fn in a write transaction and commits when fn returns nil. fn may run more
// than once (PostgreSQL serialization failures and deadlocks are retried), so it must not
// have effects outside tx other than through AfterCommit.
func (db *DB) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		err = db.inTxOnce(ctx, fn)
		if !errors.Is(err, errRetry) {
			return err
		}
		db.log.Debug("store: retrying transaction", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt*attempt) * 5 * time.Millisecond):
		}
	}
	return err
}

// InSnapshot runs fn in a read-only transaction: every statement fn runs sees the
// database as of one moment, so a response assembled from several queries (an issue and
// its comments) never pairs rows from before and after a concurrent commit. On
// PostgreSQL it is REPEATABLE READ; on SQLite a read transaction on the reader pool,
// whose WAL snapshot is taken at its first read and held to the end. Writes through q
// fail.
func (db *DB) InSnapshot(ctx context.Context, fn func(q Querier) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if db.dialect == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := db.r.BeginTx(ctx, opts)
	if err != nil && db.dialect == SQLite {
		// The driver may refuse TxOptions it has no pragma for; the reader pool is
		// read-only anyway, and a deferred transaction is already a snapshot.
		tx, err = db.r.BeginTx(ctx, nil)
	}
	if err != nil {
		return fmt.Errorf("store: begin snapshot: %w", mapErr(err))
	}
	// Nothing to commit: ending a read-only transaction either way releases its snapshot.
	defer func() { _ = tx.Rollback() }()
	return fn(snapshot{tx})
}

// snapshot maps driver errors alike on both engines, as the DB's own methods do.
type snapshot struct{ tx *sql.Tx }

func (s snapshot) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := s.tx.ExecContext(ctx, query, args...)
	return res, mapErr(err)
}

func (s snapshot) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := s.tx.QueryContext(ctx, query, args...)
	return rows, mapErr(err)
}

func (s snapshot) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return s.tx.QueryRowContext(ctx, query, args...)
}

func (db *DB) inTxOnce(ctx context.Context, fn func(tx *Tx) error) (err error) {
	sqlTx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", mapErr(err))
	}
	tx := &Tx{tx: sqlTx, dialect: db.dialect}
	defer func() {
		if err != nil {
			_ = sqlTx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", mapErr(err))
	}
	for _, f := range tx.afterCommit {
		f()
	}
	return nil
}
