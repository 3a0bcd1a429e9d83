package email

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/switchboard-hq/switchboard/store"
)

// The limit on mail to one address: no address receives more than MaxPerWindow mails
// from us in any RateWindow.
const (
	MaxPerWindow = 30
	RateWindow   = 10 * time.Minute
)

// Limiter caps the mail one address receives from us. It keeps no state of its own: it
// counts the outbox's rows to the address (any connector: replies and, as long as they
// go through the outbox, notification mail) that were sent or may have been (sent,
// unknown) in the last Window, plus those being sent right now on any node. A message is
// claimed (state sending) before its connector asks, so two nodes sending to one address
// at once each see the other's message: the limit holds across nodes, erring on the side
// of waiting.
type Limiter struct {
	Max    int
	Window time.Duration
	db     *store.DB
	now    func() time.Time
}

// NewLimiter returns the limiter of MaxPerWindow mails per RateWindow over db's outbox,
// reading time from now (the outbox's clock; nil: time.Now).
func NewLimiter(db *store.DB, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{Max: MaxPerWindow, Window: RateWindow, db: db, now: now}
}

// Wait returns 0 when one more mail may go to addr now, else how long until one may.
// self is the outbox row asking (not counted); 0 for none.
func (l *Limiter) Wait(ctx context.Context, addr string, self int64) (time.Duration, error) {
	now := l.now().UTC().Truncate(time.Microsecond)
	since := now.Add(-l.Window)
	rows, err := l.db.QueryContext(ctx, `SELECT state, updated_at FROM outbox
		WHERE lower(recipient) = lower($1) AND id <> $2
		AND (state = 'sending' OR (state IN ('sent', 'unknown') AND updated_at > $3))`, addr, self, since)
	if err != nil {
		return 0, fmt.Errorf("email: rate limit of %s: %w", addr, err)
	}
	defer rows.Close()
	var sent []time.Time
	inFlight := 0
	for rows.Next() {
		var state string
		var at time.Time
		if err := rows.Scan(&state, &at); err != nil {
			return 0, fmt.Errorf("email: rate limit of %s: %w", addr, err)
		}
		if state == "sending" {
			inFlight++
		} else {
			sent = append(sent, at)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("email: rate limit of %s: %w", addr, err)
	}
	over := len(sent) + inFlight - l.Max + 1 // how many must leave the window first
	if over <= 0 {
		return 0, nil
	}
	if over > len(sent) {
		// Messages in flight fill the budget: look again once they are done.
		return time.Minute, nil
	}
	slices.SortFunc(sent, func(a, b time.Time) int { return a.Compare(b) })
	wait := sent[over-1].Add(l.Window).Sub(now)
	return max(wait, time.Second), nil
}
