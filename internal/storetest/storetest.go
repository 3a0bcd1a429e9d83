// Package storetest gives tests a fresh, migrated database on each engine Switchboard
// supports, so one suite runs against SQLite and PostgreSQL alike.
//
// PostgreSQL isolation is a schema per test: each test gets its own search_path, so tests
// in parallel packages never see each other's rows, and nothing is left behind.
// SWITCHBOARD_TEST_POSTGRES names the server (default: the local trust-auth "test"
// database). When it does not answer, tests skip, unless CI=true, when they fail: CI must
// never pass by skipping.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx driver for the admin connection

	"github.com/switchboard-hq/switchboard/store"
)

// DefaultPostgres is used when SWITCHBOARD_TEST_POSTGRES is unset.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresURL is the server tests use.
func PostgresURL() string {
	if u := os.Getenv("SWITCHBOARD_TEST_POSTGRES"); u != "" {
		return u
	}
	return DefaultPostgres
}

// Engines lists the engines a suite runs on.
var Engines = []store.Dialect{store.SQLite, store.Postgres}

// Each runs fn once per engine as a subtest, each with a fresh migrated database.
func Each(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	for _, d := range Engines {
		t.Run(string(d), func(t *testing.T) {
			fn(t, Open(t, d))
		})
	}
}

// Open returns a fresh migrated database of the given engine, closed when the test ends.
func Open(t testing.TB, d store.Dialect) *store.DB {
	t.Helper()
	dbURL := URL(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatalf("open %s: %v", d, err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s: %v", d, err)
	}
	return db
}

// URL returns a DATABASE_URL for a fresh, empty database of the given engine: a file in the
// test's temporary folder, or a new PostgreSQL schema that is dropped when the test ends.
// Tests that start real processes pass it to them.
func URL(t testing.TB, d store.Dialect) string {
	t.Helper()
	if d == store.SQLite {
		return "sqlite:" + filepath.Join(t.TempDir(), "switchboard.db")
	}
	base := PostgresURL()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	t.Cleanup(func() { admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		Unavailable(t, "PostgreSQL at "+base, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("postgres: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("postgres: drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("SWITCHBOARD_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Unavailable skips the test when a server it needs is missing, or fails it under CI=true.
func Unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is unavailable and CI=true, so this is a failure, not a skip: %v", what, err)
	}
	t.Skipf("%s is unavailable (run the README's test command to start it): %v", what, err)
}
