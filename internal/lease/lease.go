// Package lease gives singleton jobs (SLA timers, auto-close, mail intake) a database
// lease, so that among N nodes sharing one database exactly one runs each job at a time.
//
// A lease is a row of the leases table: (name, holder, expires_at). A node takes a free or
// expired lease, or renews its own, with one conditional upsert; it holds the lease while
// expires_at is in the future and must renew before then. A node that dies simply stops
// renewing, and another takes over once the lease expires. Release gives it up at once
// (on shutdown), so a successor need not wait for the expiry.
//
// Times come from the caller (a node's clock, a test's fake clock). Clocks of different
// nodes should agree to well within the TTL; the TTL is the margin for skew and pauses.
// A lease is not a fence: work done under it must itself be safe to repeat (conditional
// updates), because a holder that stalls past its expiry can overlap with its successor.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/switchboard-hq/switchboard/store"
)

// Lease is one node's handle on a named lease.
type Lease struct {
	db     *store.DB
	name   string
	holder string
	ttl    time.Duration
}

// DefaultTTL is how long a lease lasts without renewal when New is given no TTL.
const DefaultTTL = 30 * time.Second

// New returns holder's handle on the lease called name. An empty holder gets NewHolder();
// a ttl <= 0 gets DefaultTTL. Nothing is written until Acquire.
func New(db *store.DB, name, holder string, ttl time.Duration) *Lease {
	if holder == "" {
		holder = NewHolder()
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Lease{db: db, name: name, holder: holder, ttl: ttl}
}

// NewHolder returns a name for this process that no other node shares: host, pid and a
// random suffix (a restarted process is a new holder).
func NewHolder() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "node"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Name is the lease's name.
func (l *Lease) Name() string { return l.name }

// Holder is who this handle acquires as.
func (l *Lease) Holder() string { return l.holder }

// TTL is how long an acquisition lasts.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Acquire takes the lease when it is free or expired at now, or renews it when this holder
// has it; either way it then lasts until now + TTL. It reports whether this holder holds the
// lease. One statement decides, so two nodes racing cannot both win: on PostgreSQL the
// upsert locks the row and re-checks the condition on the latest version; SQLite
// serializes writers.
func (l *Lease) Acquire(ctx context.Context, now time.Time) (bool, error) {
	now = now.UTC().Truncate(time.Microsecond)
	var holder string
	err := l.writeRow(ctx, `INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at <= $4
		RETURNING holder`, &holder, l.name, l.holder, now.Add(l.ttl), now)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil // held by another, not expired: the update's condition was false
	}
	if err != nil {
		return false, fmt.Errorf("lease: acquire %s: %w", l.name, err)
	}
	return holder == l.holder, nil
}

// writeRow runs a one-row write statement and scans its RETURNING. It goes through a
// transaction because DB.QueryRowContext reads from the reader pool, which on SQLite is
// read-only.
func (l *Lease) writeRow(ctx context.Context, query string, dst any, args ...any) error {
	return l.db.InTx(ctx, func(tx *store.Tx) error {
		return store.Err(tx.QueryRowContext(ctx, query, args...).Scan(dst))
	})
}

// Release gives the lease up if this holder has it, so another node can take it at once.
// Releasing a lease one does not hold is not an error.
func (l *Lease) Release(ctx context.Context) error {
	if _, err := l.db.ExecContext(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, l.name, l.holder); err != nil {
		return fmt.Errorf("lease: release %s: %w", l.name, err)
	}
	return nil
}

// Holds reports whether this holder has the lease at now, in q (a transaction that wants
// to check it is still the leader before a write, or the database).
func (l *Lease) Holds(ctx context.Context, q store.Querier, now time.Time) (bool, error) {
	holder, expires, err := Current(ctx, q, l.name)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return holder == l.holder && expires.After(now), nil
}

// Current reads who holds the lease called name and until when. It answers
// store.ErrNotFound when nobody has taken it (or it was released); an expired lease is
// still returned, with its past expiry.
func Current(ctx context.Context, q store.Querier, name string) (holder string, expires time.Time, err error) {
	err = q.QueryRowContext(ctx, `SELECT holder, expires_at FROM leases WHERE name = $1`, name).Scan(&holder, &expires)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("lease: read %s: %w", name, store.Err(err))
	}
	return holder, expires, nil
}
