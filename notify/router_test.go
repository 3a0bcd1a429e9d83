package notify

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

// presence is the router's view of who is logged in, set by the test.
type presence struct {
	mu   sync.Mutex
	on   map[int64]bool
	down bool // Presence fails, as with Redis unreachable
}

func (p *presence) Presence(context.Context) (map[int64]hub.PresenceState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return nil, errors.New("presence store unreachable")
	}
	out := map[int64]hub.PresenceState{}
	for id, on := range p.on {
		if on {
			out[id] = hub.Online
		}
	}
	return out, nil
}

// mailer counts what it is asked to send.
type mailer struct {
	mu   sync.Mutex
	sent []*Mail
	fail error // when set, every send fails with it
}

func (m *mailer) Send(_ context.Context, mail *Mail) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.sent = append(m.sent, mail)
	return nil
}

// rig is a notify.Service on a real database with real accounts and channels.
type rig struct {
	t        *testing.T
	svc      *Service
	accounts *accounts.Service
	pres     *presence
	mail     *mailer
	now      time.Time
}

func newRig(t *testing.T, db *store.DB) *rig {
	t.Helper()
	r := &rig{t: t, pres: &presence{on: map[int64]bool{}}, mail: &mailer{}, now: time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)}
	clock := func() time.Time { return r.now }
	r.accounts = accounts.New(db, accounts.Config{Now: clock})
	log := hub.NewLog(db, clock)
	r.svc = New(Config{DB: db, Log: log, Users: r.accounts, Channels: channels.New(db, log, channels.Config{Now: clock}),
		Presence: r.pres, Mailer: r.mail, Now: clock})
	return r
}

// user creates a user (disabled, if so) and returns the id.
func (r *rig) user(handle string, disabled bool) int64 {
	r.t.Helper()
	ctx := context.Background()
	u, err := r.accounts.CreateUser(ctx, accounts.NewUser{Email: handle + "@example.com", Name: handle, Role: accounts.RoleAgent, Password: "password-" + handle})
	if err != nil {
		r.t.Fatal(err)
	}
	if disabled {
		yes := true
		if _, err := r.accounts.UpdateUser(ctx, u.ID, accounts.UserChange{Disabled: &yes}); err != nil {
			r.t.Fatal(err)
		}
	}
	return u.ID
}

type routed struct {
	event, emailState string
	inApp             bool
}

func TestRouterOneNotificationPerRecipientStrongestFirst(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		r := newRig(t, db)
		svc, user, pres := r.svc, r.user, r.pres
		actor, assignee, teammate, follower, gone := user("ann", false), user("ben", false), user("cat", false), user("dan", false), user("eve", true)
		pres.on[teammate] = true

		note := &Occurrence{What: WhatNote, ActorID: actor, IssueID: 7, Subject: "Refund", Customer: "Zed", Text: "@ben @team",
			AssigneeID: assignee, Mentioned: []int64{assignee},
			Teams:     []TeamMention{{Handle: "team", MemberIDs: []int64{actor, assignee, teammate, gone}}},
			Followers: []int64{follower, gone, actor}}
		route := func(o *Occurrence) map[int64][]routed {
			t.Helper()
			if err := db.InTx(ctx, func(tx *store.Tx) error { return svc.Notify(ctx, tx, o) }); err != nil {
				t.Fatal(err)
			}
			rows, err := db.QueryContext(ctx, `SELECT user_id, event, email_state, in_app FROM notifications ORDER BY id`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			out := map[int64][]routed{}
			for rows.Next() {
				var uid int64
				var r routed
				if err := rows.Scan(&uid, &r.event, &r.emailState, &r.inApp); err != nil {
					t.Fatal(err)
				}
				out[uid] = append(out[uid], r)
			}
			if _, err := db.ExecContext(ctx, `DELETE FROM notifications`); err != nil {
				t.Fatal(err)
			}
			return out
		}

		got := route(note)
		want := map[int64]routed{
			assignee: {EventMentioned, "pending", true},  // mentioned beats team_mentioned and note; email always
			teammate: {EventTeamMentioned, "none", true}, // logged in: team_mentioned email is when_logged_out
			follower: {EventNote, "pending", true},       // logged out: note email when_logged_out
		}
		if len(got) != len(want) {
			t.Errorf("recipients %v; want %v (not the actor, not the disabled user)", got, want)
		}
		for uid, w := range want {
			if g := got[uid]; len(g) != 1 || g[0] != w {
				t.Errorf("user %d: %+v; want exactly %+v", uid, g, w)
			}
		}

		// A relation whose preference delivers nothing gives way to the next one: with
		// mentions turned off, the assignee hears of the note as its assignee.
		if _, err := svc.SetPreferences(ctx, assignee, map[string]any{"events": map[string]any{
			EventMentioned: map[string]any{"in_app": "never", "email": "never"}, EventTeamMentioned: map[string]any{"in_app": "never", "email": "never"}}}); err != nil {
			t.Fatal(err)
		}
		if g := route(note)[assignee]; len(g) != 1 || g[0].event != EventNote {
			t.Errorf("assignee with mentions off: %+v; want the note", g)
		}
		// The teammate logs out: now the email goes too.
		pres.mu.Lock()
		pres.on[teammate] = false
		pres.mu.Unlock()
		if g := route(note)[teammate]; len(g) != 1 || g[0].emailState != "pending" {
			t.Errorf("teammate logged out: %+v; want the email pending", g)
		}

		// Presence unknown (Redis down): the note still commits, and the logged-in
		// teammate is treated as logged out, so the email goes rather than nothing.
		pres.mu.Lock()
		pres.on[teammate], pres.down = true, true
		pres.mu.Unlock()
		if g := route(note)[teammate]; len(g) != 1 || g[0].emailState != "pending" {
			t.Errorf("presence down: %+v; want the email pending (degrade to logged out)", g)
		}
		pres.mu.Lock()
		pres.down = false
		pres.mu.Unlock()
		if g := route(note)[teammate]; len(g) != 1 || g[0].emailState != "none" {
			t.Errorf("presence back, teammate online: %+v; want no email", g)
		}

		// An assignment by the assignee themselves (take) tells nobody but followers.
		take := &Occurrence{What: WhatIssueUpdated, ActorID: assignee, IssueID: 7, Actions: []string{"assigned"},
			AssigneeID: assignee, Followers: []int64{follower}}
		got = route(take)
		if len(got) != 1 || len(got[follower]) != 1 || got[follower][0].event != EventFollowedCustomerIssue {
			t.Errorf("take: %v; want only the follower's followed_customer_issue", got)
		}
	})
}
