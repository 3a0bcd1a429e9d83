package email_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/channels/email"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/outbox"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

// TestLimiterCountsTheOutbox: 30 mails to one address in 10 minutes, counted from the
// outbox's rows (any case of the address, in flight or sent, on any channel), hold back
// the 31st until the oldest leaves the window.
func TestLimiterCountsTheOutbox(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		clock := func() time.Time { return now }
		log := hub.NewLog(db, clock)
		chs := channels.New(db, log, channels.Config{Now: clock})
		a, err := chs.Ensure(ctx, channels.Email, "a", "a@acme.test")
		if err != nil {
			t.Fatal(err)
		}
		b, err := chs.Ensure(ctx, channels.Email, "b", "b@acme.test")
		if err != nil {
			t.Fatal(err)
		}
		ob := outbox.New(db, log, outbox.Config{Now: clock})
		put := func(ch int64, to, state string, at time.Time) int64 {
			t.Helper()
			var id int64
			err := db.InTx(ctx, func(tx *store.Tx) error {
				var err error
				id, err = ob.Enqueue(ctx, tx, outbox.Outgoing{ChannelID: ch, Connector: email.ConnectorName, To: to, Body: "x"})
				if err != nil {
					return err
				}
				_, err = tx.ExecContext(ctx, `UPDATE outbox SET state = $1, updated_at = $2 WHERE id = $3`, state, at.UTC(), id)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		l := email.NewLimiter(db, clock)
		wait := func(self int64) time.Duration {
			t.Helper()
			d, err := l.Wait(ctx, "Jane@Example.com", self)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		// Old mail and failures do not count; another address does not either.
		put(a.ID, "jane@example.com", "sent", now.Add(-11*time.Minute))
		put(a.ID, "jane@example.com", "failed", now.Add(-time.Minute))
		put(a.ID, "joe@example.com", "sent", now.Add(-time.Minute))
		// 29 sent over the last 9 minutes, across two mailboxes, in any case.
		for i := range 29 {
			ch, to := a.ID, "jane@example.com"
			if i%2 == 1 {
				ch, to = b.ID, "JANE@example.com"
			}
			put(ch, to, "sent", now.Add(-9*time.Minute+time.Duration(i)*time.Second))
		}
		self := put(a.ID, "jane@example.com", "sending", now)
		if d := wait(self); d != 0 {
			t.Fatalf("30th mail waits %s", d)
		}
		// One more in flight elsewhere (or sent with an unknown outcome) fills the budget.
		put(b.ID, "jane@example.com", "unknown", now)
		d := wait(self)
		if want := time.Minute; d != want { // the oldest of the 29 leaves the window in 1 minute
			t.Fatalf("31st mail waits %s, want %s", d, want)
		}
		now = now.Add(time.Minute)
		if d := wait(self); d != 0 {
			t.Fatalf("after the oldest left the window: waits %s", d)
		}
	})
}
