package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/server"
	"github.com/switchboard-hq/switchboard/store"
)

// slaClock is the fake clock of a whole server: the SLA tests move it and tick the timers
// by hand (Server.Timers.Tick); the timer loop itself only runs in Server.Run.
type slaClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *slaClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *slaClock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

var slaT0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// slaStart is start with a fake clock.
func slaStart(t *testing.T, d store.Dialect, clock *slaClock) *env {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	public, _ := url.Parse("http://" + srv.Listener.Addr().String())
	s, err := server.New(context.Background(), server.Config{
		DatabaseURL: storetest.URL(t, d),
		PublicURL:   public,
		Twilio:      &server.Twilio{AccountSID: "AC" + strings.Repeat("0", 32), AuthToken: authToken, PhoneNumber: number},
		Now:         clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = s.Handler()
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Hub.Shutdown(ctx)
		s.Close()
	})
	return &env{t: t, s: s, srv: srv}
}

// slaCall sends a JSON request and returns the status and body.
func (e *env) slaCall(c *http.Client, method, path string, v any) (int, string) {
	e.t.Helper()
	resp := e.do(c, method, path, v)
	return resp.StatusCode, body(resp)
}

func (e *env) slaMust(c *http.Client, method, path string, v any, want int, out any) {
	e.t.Helper()
	code, b := e.slaCall(c, method, path, v)
	if code != want {
		e.t.Fatalf("%s %s: %d %s; want %d", method, path, code, b, want)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(b), out); err != nil {
			e.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

func TestSLASettingsAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		clock := &slaClock{now: slaT0}
		e := slaStart(t, d.Dialect(), clock)
		admin := e.agent("root", accounts.RoleAdmin)
		alice := e.agent("alice", accounts.RoleAgent)
		var chans struct {
			Channels []struct {
				ID   int64  `json:"id"`
				Kind string `json:"kind"`
			} `json:"channels"`
		}
		e.getJSON(admin, "/api/channels", &chans)
		if len(chans.Channels) == 0 {
			t.Fatal("no channels")
		}
		smsPath := fmt.Sprintf("/api/channels/%d/sla", chans.Channels[0].ID)
		good := map[string]any{"first_response_minutes": 60, "resolution_minutes": 480, "pause_while_waiting": true}

		// Agents: refused, with the rule.
		for _, tc := range []struct {
			method, path string
			body         any
		}{
			{"GET", smsPath, nil}, {"PUT", smsPath, good}, {"DELETE", smsPath, nil},
			{"GET", "/api/settings/sla", nil}, {"PUT", "/api/settings/sla", map[string]any{"auto_close_minutes": 60}},
		} {
			code, b := e.slaCall(alice, tc.method, tc.path, tc.body)
			if code != http.StatusForbidden || !strings.Contains(b, "only admins may view or change SLA") {
				t.Errorf("agent %s %s: %d %s; want 403 naming the rule", tc.method, tc.path, code, b)
			}
		}
		if code, _ := e.slaCall(&http.Client{}, "GET", smsPath, nil); code != http.StatusUnauthorized {
			t.Errorf("no session: %d; want 401", code)
		}

		// Validation: 400 naming the field and its bound.
		for _, tc := range []struct {
			body map[string]any
			want string
		}{
			{map[string]any{"first_response_minutes": 29, "resolution_minutes": 480}, "first_response_minutes must be between 30 (0.5 h) and 2880 (48 h)"},
			{map[string]any{"first_response_minutes": 2881, "resolution_minutes": 4000}, "first_response_minutes must be between 30 (0.5 h) and 2880 (48 h)"},
			{map[string]any{"first_response_minutes": 0.5, "resolution_minutes": 480}, `must be int`},
			{map[string]any{"resolution_minutes": 480}, "first_response_minutes is required"},
			{map[string]any{"first_response_minutes": 60}, "resolution_minutes is required"},
			{map[string]any{"first_response_minutes": 60, "resolution_minutes": 20}, "resolution_minutes must be between 30 (0.5 h)"},
			{map[string]any{"first_response_minutes": 60, "resolution_minutes": 45}, "resolution_minutes must be at least first_response_minutes"},
			{map[string]any{"first_response_minutes": 60, "resolution_minutes": 480, "warn_percent": 100}, "warn_percent must be between 1 and 99"},
			{map[string]any{"first_response_minutes": 60, "resolution_minutes": 480, "warn_percent": 0}, "warn_percent must be between 1 and 99"},
			{map[string]any{"first_response_minutes": 60, "resolution_minutes": 480, "paws": true}, `unknown field`},
		} {
			code, b := e.slaCall(admin, "PUT", smsPath, tc.body)
			if code != http.StatusBadRequest || !strings.Contains(b, tc.want) {
				t.Errorf("PUT %v: %d %s; want 400 with %q", tc.body, code, b, tc.want)
			}
		}

		// No policy yet; set, read, replace, delete.
		if code, b := e.slaCall(admin, "GET", smsPath, nil); code != http.StatusNotFound || !strings.Contains(b, "no SLA policy") {
			t.Errorf("GET without policy: %d %s; want 404", code, b)
		}
		if code, _ := e.slaCall(admin, "PUT", "/api/channels/999/sla", good); code != http.StatusNotFound {
			t.Errorf("PUT on a missing channel: %d; want 404", code)
		}
		var p struct {
			ChannelID            int64 `json:"channel_id"`
			FirstResponseMinutes int   `json:"first_response_minutes"`
			ResolutionMinutes    int   `json:"resolution_minutes"`
			PauseWhileWaiting    bool  `json:"pause_while_waiting"`
			WarnPercent          int   `json:"warn_percent"`
		}
		e.slaMust(admin, "PUT", smsPath, good, 200, &p)
		if p.FirstResponseMinutes != 60 || p.ResolutionMinutes != 480 || !p.PauseWhileWaiting || p.WarnPercent != 80 {
			t.Errorf("stored %+v; want 60/480/pause/80 (the default)", p)
		}
		e.slaMust(admin, "PUT", smsPath, map[string]any{"first_response_minutes": 30, "resolution_minutes": 2880, "warn_percent": 75}, 200, nil)
		e.slaMust(admin, "GET", smsPath, nil, 200, &p)
		if p.FirstResponseMinutes != 30 || p.ResolutionMinutes != 2880 || p.PauseWhileWaiting || p.WarnPercent != 75 {
			t.Errorf("replaced %+v; want 30/2880/no pause/75", p)
		}
		e.slaMust(admin, "DELETE", smsPath, nil, 204, nil)
		if code, _ := e.slaCall(admin, "DELETE", smsPath, nil); code != http.StatusNotFound {
			t.Errorf("second DELETE: %d; want 404", code)
		}

		// Organisation settings.
		type settings struct {
			AlertChannelID   *int64 `json:"alert_channel_id"`
			AutoCloseMinutes int    `json:"auto_close_minutes"`
		}
		var st settings
		e.slaMust(admin, "GET", "/api/settings/sla", nil, 200, &st)
		if st.AlertChannelID != nil || st.AutoCloseMinutes != 4*24*60 {
			t.Errorf("defaults %+v; want no alert channel, 5760 minutes (4 days)", st)
		}
		team, err := e.s.Channels.CreateTeam(context.Background(), "Leads", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			body map[string]any
			want string
		}{
			{map[string]any{"alert_channel_id": 999}, "alert_channel_id: no channel 999"},
			{map[string]any{"alert_channel_id": "leads"}, "alert_channel_id must be a channel id or null"},
			{map[string]any{"alert_channel_id": -1}, "alert_channel_id must be a channel id or null"},
			{map[string]any{"auto_close_minutes": 10}, "auto_close_minutes must be 0 (never) or between 60 (1 h) and 525600 (365 days)"},
		} {
			code, b := e.slaCall(admin, "PUT", "/api/settings/sla", tc.body)
			if code != http.StatusBadRequest || !strings.Contains(b, tc.want) {
				t.Errorf("PUT %v: %d %s; want 400 with %q", tc.body, code, b, tc.want)
			}
		}
		e.slaMust(admin, "PUT", "/api/settings/sla", map[string]any{"alert_channel_id": team.ID}, 200, &st)
		if st.AlertChannelID == nil || *st.AlertChannelID != team.ID || st.AutoCloseMinutes != 5760 {
			t.Errorf("after setting the alert channel: %+v", st)
		}
		e.slaMust(admin, "PUT", "/api/settings/sla", map[string]any{"auto_close_minutes": 0}, 200, &st)
		if st.AlertChannelID == nil || st.AutoCloseMinutes != 0 {
			t.Errorf("a field not sent changed: %+v", st)
		}
		e.slaMust(admin, "PUT", "/api/settings/sla", map[string]any{"alert_channel_id": nil}, 200, &st)
		if st.AlertChannelID != nil || st.AutoCloseMinutes != 0 {
			t.Errorf("after clearing the alert channel: %+v", st)
		}
	})
}

// From the webhook to the breach, through the HTTP API and the live feed, on a fake clock.
func TestSLABreachEndToEnd(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		clock := &slaClock{now: slaT0}
		e := slaStart(t, d.Dialect(), clock)
		admin := e.agent("root", accounts.RoleAdmin)
		alice := e.agent("alice", accounts.RoleAgent)
		ctx := context.Background()
		var me struct {
			User struct {
				ID int64 `json:"id"`
			} `json:"user"`
		}
		e.getJSON(admin, "/api/me", &me)
		team, err := e.s.Channels.CreateTeam(ctx, "Leads", []int64{me.User.ID})
		if err != nil {
			t.Fatal(err)
		}
		var chans struct {
			Channels []struct {
				ID   int64  `json:"id"`
				Kind string `json:"kind"`
			} `json:"channels"`
		}
		e.getJSON(alice, "/api/channels", &chans)
		smsID := chans.Channels[0].ID
		e.slaMust(admin, "PUT", fmt.Sprintf("/api/channels/%d/sla", smsID), map[string]any{"first_response_minutes": 30, "resolution_minutes": 120}, 200, nil)
		e.slaMust(admin, "PUT", "/api/settings/sla", map[string]any{"alert_channel_id": team.ID}, 200, nil)

		clock.set(slaT0.Add(time.Minute))
		if resp := e.postSMS(smsForm("SM-sla-1", "+15551234567", "Where is my parcel?"), "good"); resp.StatusCode != 200 {
			t.Fatalf("webhook: %d", resp.StatusCode)
		}
		var list issueList
		e.getJSON(alice, "/api/issues", &list)
		if len(list.Issues) != 1 {
			t.Fatalf("issues %+v; want 1", list)
		}
		id := list.Issues[0].ID
		_, in := dialWS(t, e, alice, "")
		next(t, in, "hello")

		tick := func(min float64) {
			t.Helper()
			now := slaT0.Add(time.Duration(min * float64(time.Minute)))
			clock.set(now)
			rep, err := e.s.Timers.Tick(ctx, now)
			if err != nil || !rep.Leader {
				t.Fatalf("tick at %v: %+v %v", min, rep, err)
			}
		}
		tick(2)
		type clockView struct {
			State      string     `json:"state"`
			DueAt      time.Time  `json:"due_at"`
			BreachedAt *time.Time `json:"breached_at"`
		}
		var view struct {
			SLA *struct {
				FirstResponse clockView `json:"first_response"`
				Resolution    clockView `json:"resolution"`
			} `json:"sla"`
		}
		e.slaMust(alice, "GET", fmt.Sprintf("/api/issues/%d/sla", id), nil, 200, &view)
		if view.SLA == nil || view.SLA.FirstResponse.State != "running" || !view.SLA.FirstResponse.DueAt.Equal(slaT0.Add(31*time.Minute)) {
			t.Fatalf("issue SLA %+v; want running, due at minute 31", view.SLA)
		}

		tick(25) // 80 % of 30 minutes: 24 minutes after minute 1
		if m := next(t, in, "sla.warning"); m["topic"] != fmt.Sprint("channel:", smsID) {
			t.Errorf("warning on %v; want the channel (the issue is unassigned)", m["topic"])
		}
		tick(31)
		m := next(t, in, "sla_breached")
		data, _ := m["data"].(map[string]any)
		if m["topic"] != fmt.Sprint("channel:", smsID) || data["issue_id"] != float64(id) || data["kind"] != "first_response" ||
			data["assignee_id"] != nil || data["channel_id"] != float64(smsID) {
			t.Errorf("breach frame %v; want on the channel with issue_id, kind, assignee_id, channel_id", m)
		}
		var msgs struct {
			Messages []struct {
				Body     string `json:"body"`
				AuthorID *int64 `json:"author_id"`
				IssueID  *int64 `json:"issue_id"`
			} `json:"messages"`
		}
		e.getJSON(admin, fmt.Sprintf("/api/channels/%d/messages", team.ID), &msgs)
		if len(msgs.Messages) != 1 || !strings.HasPrefix(msgs.Messages[0].Body, fmt.Sprintf("SLA breached: first response on issue #%d (", id)) ||
			msgs.Messages[0].AuthorID != nil || msgs.Messages[0].IssueID == nil || *msgs.Messages[0].IssueID != id {
			t.Errorf("alert channel %+v; want one system message about issue %d", msgs.Messages, id)
		}
		e.slaMust(alice, "GET", fmt.Sprintf("/api/issues/%d/sla", id), nil, 200, &view)
		if view.SLA.FirstResponse.State != "breached" || view.SLA.FirstResponse.BreachedAt == nil {
			t.Errorf("after the breach: %+v", view.SLA.FirstResponse)
		}
		var detail struct {
			Activity []struct {
				Action  string `json:"action"`
				ActorID *int64 `json:"actor_id"`
			} `json:"activity"`
		}
		e.getJSON(alice, fmt.Sprintf("/api/issues/%d", id), &detail)
		if last := detail.Activity[len(detail.Activity)-1]; last.Action != "sla_breached" || last.ActorID != nil {
			t.Errorf("last activity %+v; want sla_breached by nobody", last)
		}

		// The figures count it as breached; agents may read them.
		var st struct {
			Issues int `json:"issues"`
			Counts struct {
				Open, Unassigned, Breached int
			} `json:"counts"`
			Channels []struct {
				ChannelID int64  `json:"channel_id"`
				Name      string `json:"name"`
			} `json:"channels"`
		}
		e.getJSON(alice, "/api/stats?from=2026-03-02T00:00:00Z&to=2026-03-03T00:00:00Z", &st)
		if st.Issues != 1 || st.Counts.Open != 1 || st.Counts.Unassigned != 1 || st.Counts.Breached != 1 ||
			len(st.Channels) != 1 || st.Channels[0].Name == "" {
			t.Errorf("stats %+v; want 1 issue, 1 open, unassigned and breached, the channel named", st)
		}
		// Defaults: the last 30 days to now.
		e.getJSON(alice, "/api/stats", &st)
		if st.Issues != 1 {
			t.Errorf("default range: %d issues; want 1", st.Issues)
		}
	})
}

func TestStatsAPIValidation(t *testing.T) {
	clock := &slaClock{now: slaT0}
	e := slaStart(t, store.SQLite, clock)
	alice := e.agent("alice", accounts.RoleAgent)
	for _, tc := range []struct {
		query string
		code  int
		want  string
	}{
		{"from=yesterday", 400, "from must be an RFC 3339 time"},
		{"to=2026-13-01T00:00:00Z", 400, "to must be an RFC 3339 time"},
		{"from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z", 400, "from must be before to"},
		{"from=2026-03-02T00:00:00Z&to=2026-03-02T00:00:00Z", 400, "from must be before to"},
		{"from=2024-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", 400, "at most 366 days"},
		{"channel=abc", 400, "channel must be a positive id"},
		{"channel=999", 404, "no such channel"},
		{"from=2026-03-01T00:00:00%2B01:00&to=2026-03-02T00:00:00Z", 200, `"from":"2026-02-28T23:00:00Z"`},
	} {
		code, b := e.slaCall(alice, "GET", "/api/stats?"+tc.query, nil)
		if code != tc.code || !strings.Contains(b, tc.want) {
			t.Errorf("%s: %d %s; want %d with %q", tc.query, code, b, tc.code, tc.want)
		}
	}
	if code, _ := e.slaCall(alice, "GET", "/api/issues/999/sla", nil); code != http.StatusNotFound {
		t.Errorf("SLA of a missing issue: %d; want 404", code)
	}
}

// The timers wake snoozed issues (Service.Unsnooze) on each tick, when the time comes.
func TestTimersWakeSnoozedIssues(t *testing.T) {
	clock := &slaClock{now: slaT0}
	e := slaStart(t, store.SQLite, clock)
	alice := e.agent("alice", accounts.RoleAgent)
	if resp := e.postSMS(smsForm("SM-snooze-1", "+15551234567", "Call me tomorrow"), "good"); resp.StatusCode != 200 {
		t.Fatalf("webhook: %d", resp.StatusCode)
	}
	var list issueList
	e.getJSON(alice, "/api/issues", &list)
	id := list.Issues[0].ID
	e.slaMust(alice, "POST", fmt.Sprintf("/api/issues/%d/take", id), nil, 200, nil)
	e.slaMust(alice, "POST", fmt.Sprintf("/api/issues/%d/snooze", id), map[string]any{"until": slaT0.Add(time.Hour).Format(time.RFC3339)}, 200, nil)
	_, in := dialWS(t, e, alice, "")
	next(t, in, "hello")
	for _, tc := range []struct {
		min  time.Duration
		woke int
	}{{59, 0}, {60, 1}, {61, 0}} {
		now := slaT0.Add(tc.min * time.Minute)
		clock.set(now)
		rep, err := e.s.Timers.Tick(context.Background(), now)
		if err != nil || rep.Unsnoozed != tc.woke {
			t.Fatalf("tick at minute %d: %+v %v; want %d woken", tc.min, rep, err, tc.woke)
		}
	}
	if m := next(t, in, "issue.unsnoozed"); m["topic"] != fmt.Sprint("channel:", list.Issues[0].ChannelID) {
		t.Errorf("unsnoozed on %v; want the channel", m["topic"])
	}
}
