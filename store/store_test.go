package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

func TestMigrateIsIdempotent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		n, err := db.Migrate(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("second migrate applied %d migrations; want 0", n)
		}
	})
}

func TestConcurrentWritersNeverSeeLocked(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		const writers = 50
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Read then write in one transaction: the shape that fails with
				// "database is locked" when a deferred transaction upgrades.
				errs <- db.InTx(ctx, func(tx *store.Tx) error {
					var n int
					if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM teams`).Scan(&n); err != nil {
						return err
					}
					_, err := tx.ExecContext(ctx,
						`INSERT INTO teams (name, handle, created_at) VALUES ($1, $2, $3)`,
						fmt.Sprint("team ", i), fmt.Sprint("team-", i), time.Now().UTC())
					return err
				})
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM teams`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != writers {
			t.Errorf("got %d rows; want %d", n, writers)
		}
	})
}

func TestErrorsMapAlikeOnBothEngines(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		insert := func() error {
			_, err := db.ExecContext(ctx,
				`INSERT INTO teams (name, handle, created_at) VALUES ('a', 'dup', $1)`, time.Now().UTC())
			return err
		}
		if err := insert(); err != nil {
			t.Fatal(err)
		}
		if err := insert(); !errors.Is(err, store.ErrConflict) {
			t.Errorf("duplicate insert: got %v; want ErrConflict", err)
		}
		_, err := db.ExecContext(ctx, `INSERT INTO team_members (team_id, user_id) VALUES (999, 999)`)
		if !errors.Is(err, store.ErrForeignKey) {
			t.Errorf("dangling reference: got %v; want ErrForeignKey", err)
		}
		var id int64
		err = store.Err(db.QueryRowContext(ctx, `SELECT id FROM teams WHERE handle = 'none'`).Scan(&id))
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing row: got %v; want ErrNotFound", err)
		}
	})
}

func TestAfterCommitRunsOnlyOnCommit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		var ran []string
		_ = db.InTx(ctx, func(tx *store.Tx) error {
			tx.AfterCommit(func() { ran = append(ran, "rolled back") })
			return errors.New("abort")
		})
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			tx.AfterCommit(func() { ran = append(ran, "first") })
			tx.AfterCommit(func() { ran = append(ran, "second") })
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ran) != "[first second]" {
			t.Errorf("after-commit hooks ran %v; want [first second]", ran)
		}
	})
}

func TestRoundTripsTimeAndBytes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Date(2026, 11, 21, 4, 5, 6, 123456000, time.UTC)
		if _, err := db.ExecContext(ctx, `INSERT INTO users (email, email_norm, name, handle, role, password_hash, created_at)
			VALUES ('A@x.io', 'a@x.io', 'A', 'a', 'agent', 'h', $1)`, now); err != nil {
			t.Fatal(err)
		}
		var got time.Time
		var disabled bool
		if err := db.QueryRowContext(ctx, `SELECT created_at, disabled FROM users`).Scan(&got, &disabled); err != nil {
			t.Fatal(err)
		}
		if !got.Equal(now) || disabled {
			t.Errorf("got %v %v; want %v false", got, disabled, now)
		}
	})
}

func TestOpenRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "mysql://x", "sqlite:", "postgres://"} {
		if _, err := store.Open(context.Background(), u, nil); err == nil {
			t.Errorf("Open(%q) succeeded; want an error", u)
		}
	}
}

func TestSnapshotSeesOneMoment(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		count := func(q store.Querier) int {
			t.Helper()
			var n int
			if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM topics`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		insert := func(name string) {
			t.Helper()
			if err := db.InTx(ctx, func(tx *store.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO topics (name, seq) VALUES ($1, 0)`, name)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		insert("snapshot:before")
		err := db.InSnapshot(ctx, func(q store.Querier) error {
			first := count(q)
			insert("snapshot:during") // commits while the snapshot is open
			if got := count(q); got != first {
				t.Errorf("inside the snapshot the count went from %d to %d", first, got)
			}
			if _, err := q.ExecContext(ctx, `INSERT INTO topics (name, seq) VALUES ('snapshot:write', 0)`); err == nil {
				t.Error("a write through a snapshot succeeded")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM topics WHERE name LIKE 'snapshot:%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Errorf("after the snapshot, %d snapshot topics; want 2 (before, during; never the refused write)", n)
		}
	})
}
