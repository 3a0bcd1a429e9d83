package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

// GET /api/issues carries each issue's SLA summary, and it says what GET
// /api/issues/{id}/sla says of the same issue at the same moment (a fake clock).
func TestIssueListSLASummary(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		clock := &slaClock{now: slaT0}
		e := slaStart(t, d.Dialect(), clock)
		admin := e.agent("root", accounts.RoleAdmin)
		alice := e.agent("alice", accounts.RoleAgent)
		at := func(min float64) time.Time { return slaT0.Add(time.Duration(min * float64(time.Minute))) }
		n := 0
		open := func(min float64) int64 {
			t.Helper()
			clock.set(at(min))
			n++
			if resp := e.postSMS(smsForm(fmt.Sprint("SM-slalist-", n), fmt.Sprintf("+1555123%04d", n), "help"), "good"); resp.StatusCode != 200 {
				t.Fatalf("webhook: %d %s", resp.StatusCode, body(resp))
			}
			var list issueList
			e.getJSON(alice, "/api/issues?limit=1", &list)
			return list.Issues[0].ID
		}
		act := func(min float64, id int64, action string) {
			t.Helper()
			clock.set(at(min))
			e.slaMust(alice, "POST", fmt.Sprintf("/api/issues/%d/%s", id, action), nil, 200, nil)
		}

		none := open(0) // before the channel had a policy
		var chans struct {
			Channels []struct {
				ID int64 `json:"id"`
			} `json:"channels"`
		}
		e.getJSON(alice, "/api/channels", &chans)
		clock.set(at(0.5))
		e.slaMust(admin, "PUT", fmt.Sprintf("/api/channels/%d/sla", chans.Channels[0].ID),
			map[string]any{"first_response_minutes": 30, "resolution_minutes": 120}, 200, nil)
		breached := open(1) // first response due at 31
		paused := open(2)   // resolved with no response: first response paused, resolution met
		act(3, paused, "resolve")
		met := open(3) // contacted, then resolved: both met
		act(4, met, "contacted")
		act(6, met, "resolve")
		warned := open(15)    // due at 45, warning point (80 %) at 39
		running := open(35)   // due at 65
		unstamped := open(39) // the engine has not seen it: shown with the channel's policy

		// The engine stamps and ticks at 38 (not after 39: the last issue stays unstamped).
		if rep, err := e.s.Timers.Tick(context.Background(), at(38)); err != nil || !rep.Leader {
			t.Fatalf("tick: %+v %v", rep, err)
		}
		clock.set(at(40))

		type summary struct {
			State string     `json:"state"`
			Kind  string     `json:"kind"`
			DueAt *time.Time `json:"due_at"`
		}
		var list struct {
			Issues []struct {
				ID  int64    `json:"id"`
				SLA *summary `json:"sla"`
			} `json:"issues"`
		}
		e.getJSON(alice, "/api/issues?status=open,in_progress,resolved,closed", &list)
		got := map[int64]*summary{}
		for _, i := range list.Issues {
			got[i.ID] = i.SLA
		}
		due := func(min float64) *time.Time { t := at(min); return &t }
		for _, tc := range []struct {
			name  string
			id    int64
			state string
			kind  string
			due   *time.Time // nil: whatever /sla says (checked below)
		}{
			{"no policy when opened", none, "none", "", nil},
			{"first response overdue", breached, "breached", "first_response", due(31)},
			{"resolved without a response", paused, "paused", "first_response", nil},
			{"contacted and resolved", met, "met", "first_response", nil},
			{"past the warning point", warned, "warning", "first_response", due(45)},
			{"running", running, "running", "first_response", due(65)},
			{"not stamped yet", unstamped, "running", "first_response", due(69)},
		} {
			s := got[tc.id]
			if s == nil {
				t.Errorf("%s: issue %d has no sla in the list %+v", tc.name, tc.id, list)
				continue
			}
			if s.State != tc.state || s.Kind != tc.kind || (tc.due != nil && (s.DueAt == nil || !s.DueAt.Equal(*tc.due))) {
				t.Errorf("%s: list says %+v; want %s %s due %v", tc.name, s, tc.state, tc.kind, tc.due)
			}
			// The same issue, read on its own at the same moment.
			var one struct {
				SLA *struct {
					WarnPercent   int       `json:"warn_percent"`
					FirstResponse clockJSON `json:"first_response"`
					Resolution    clockJSON `json:"resolution"`
				} `json:"sla"`
			}
			e.slaMust(alice, "GET", fmt.Sprintf("/api/issues/%d/sla", tc.id), nil, 200, &one)
			if one.SLA == nil {
				if s.State != "none" || s.Kind != "" || s.DueAt != nil {
					t.Errorf("%s: /sla has no SLA but the list says %+v", tc.name, s)
				}
				continue
			}
			c := one.SLA.FirstResponse
			if s.Kind == "resolution" {
				c = one.SLA.Resolution
			}
			wantState := c.State
			if wantState == "running" && (c.WarnedAt != nil || c.ElapsedSeconds*100 >= int64(c.TargetMinutes)*60*int64(one.SLA.WarnPercent)) {
				wantState = "warning"
			}
			if s.State != wantState || s.DueAt == nil || !s.DueAt.Equal(c.DueAt) {
				t.Errorf("%s: list says %+v; /sla says %s clock %+v (warn %d %%)", tc.name, s, s.Kind, c, one.SLA.WarnPercent)
			}
		}
	})
}

// clockJSON is one clock of GET /api/issues/{id}/sla.
type clockJSON struct {
	State          string     `json:"state"`
	DueAt          time.Time  `json:"due_at"`
	TargetMinutes  int        `json:"target_minutes"`
	ElapsedSeconds int64      `json:"elapsed_seconds"`
	WarnedAt       *time.Time `json:"warned_at"`
}
