package notify

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

func TestEmailDropsRetriesGivesUpAndPrunes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := newRig(t, db)
		actor, bob, cy := r.user("ann", false), r.user("bob", false), r.user("cy", false)
		assign := func(to, issue int64) {
			t.Helper()
			o := &Occurrence{What: WhatIssueUpdated, ActorID: actor, IssueID: issue, Actions: []string{"assigned"}, AssigneeID: to}
			if err := db.InTx(ctx, func(tx *store.Tx) error { return r.svc.Notify(ctx, tx, o) }); err != nil {
				t.Fatal(err)
			}
		}
		tick := func() MailReport {
			t.Helper()
			rep, err := r.svc.MailTick(ctx, r.now)
			if err != nil {
				t.Fatal(err)
			}
			return rep
		}
		assign(bob, 1)
		assign(cy, 2)
		// cy is disabled before the mail leaves: hers is dropped, bob's sent.
		yes := true
		if _, err := r.accounts.UpdateUser(ctx, cy, accounts.UserChange{Disabled: &yes}); err != nil {
			t.Fatal(err)
		}
		r.now = r.now.Add(21 * time.Second)
		if rep := tick(); rep.Sent != 1 || rep.Dropped != 1 {
			t.Fatalf("%+v; want bob's sent, cy's dropped", rep)
		}
		if len(r.mail.sent) != 1 || r.mail.sent[0].To.Address != "bob@example.com" {
			t.Fatalf("sent %+v", r.mail.sent)
		}

		// The server refuses for days: retried with backoff, then given up.
		r.mail.fail = errors.New("421 try later")
		assign(bob, 3)
		r.now = r.now.Add(21 * time.Second)
		if rep := tick(); rep.Failed != 1 {
			t.Fatalf("%+v; want a failure", rep)
		}
		if rep := tick(); rep.Failed != 0 {
			t.Fatalf("%+v; want nothing before the backoff", rep)
		}
		r.now = r.now.Add(31 * time.Second)
		if rep := tick(); rep.Failed != 1 {
			t.Fatalf("%+v; want a second attempt after 30 s", rep)
		}
		r.now = r.now.Add(73 * time.Hour)
		if rep := tick(); rep.Dropped != 1 {
			t.Fatalf("%+v; want the mail given up after 72 h", rep)
		}
		var state, reason string
		if err := db.QueryRowContext(ctx, `SELECT email_state, email_error FROM notifications WHERE issue_id = 3`).Scan(&state, &reason); err != nil {
			t.Fatal(err)
		}
		if state != "dropped" || reason == "" {
			t.Errorf("state %s, error %q", state, reason)
		}

		// Pruning keeps unread notifications however old.
		if n, err := r.svc.Prune(ctx, r.now.Add(time.Hour)); err != nil || n != 0 {
			t.Fatalf("pruned %d (%v); want none: all are unread", n, err)
		}
		if _, err := r.svc.MarkAllRead(ctx, bob); err != nil {
			t.Fatal(err)
		}
		if n, err := r.svc.Prune(ctx, r.now.Add(time.Hour)); err != nil || n != 2 {
			t.Fatalf("pruned %d (%v); want bob's two read ones", n, err)
		}
	})
}
