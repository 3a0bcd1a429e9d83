package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

type prefsDoc struct {
	Events map[string]struct {
		InApp string  `json:"in_app"`
		Email string  `json:"email"`
		Sound *string `json:"sound"`
	} `json:"events"`
	Channels map[string]struct {
		CustomerMessage struct {
			InApp string `json:"in_app"`
			Email string `json:"email"`
		} `json:"customer_message"`
		Sound *string `json:"sound"`
	} `json:"channels"`
	QuietHours *struct {
		Enabled       bool   `json:"enabled"`
		Start         string `json:"start"`
		End           string `json:"end"`
		TimeZone      string `json:"time_zone"`
		Days          []int  `json:"days"`
		AllowMentions bool   `json:"allow_mentions"`
	} `json:"quiet_hours"`
	Source struct {
		Events map[string]struct {
			InApp string `json:"in_app"`
			Email string `json:"email"`
			Sound string `json:"sound"`
		} `json:"events"`
		Channels map[string]struct {
			CustomerMessage struct {
				InApp string `json:"in_app"`
			} `json:"customer_message"`
			Sound string `json:"sound"`
		} `json:"channels"`
	} `json:"source"`
	Sounds []string `json:"sounds"`
}

func (e *env) prefs(c *http.Client, path string) prefsDoc {
	e.t.Helper()
	var p prefsDoc
	e.getJSON(c, path, &p)
	return p
}

func (e *env) putPrefs(c *http.Client, path string, doc any) prefsDoc {
	e.t.Helper()
	var p prefsDoc
	resp := e.do(c, "PUT", path, doc)
	if resp.StatusCode != 200 {
		e.t.Fatalf("PUT %s %v: %d %s", path, doc, resp.StatusCode, body(resp))
	}
	notifyDecode(e.t, resp, &p)
	return p
}

func notifyDecode(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestNotifyPreferencesAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		e := start(t, d.Dialect())
		admin := e.agent("ada", accounts.RoleAdmin)
		bob := e.agent("bob", accounts.RoleAgent)
		ctx := context.Background()
		team, err := e.s.Channels.CreateTeam(ctx, "admins only", []int64{e.userID("ada")})
		if err != nil {
			t.Fatal(err)
		}
		sms := e.smsChannel()

		// Factory defaults, as DESIGN.md lists them, for every event.
		p := e.prefs(bob, "/api/preferences")
		want := map[string][2]string{
			"issue_message": {"never", "never"}, "followed_customer_message": {"never", "never"},
			"customer_message": {"never", "never"}, "issue_created": {"never", "never"},
			"assigned": {"always", "when_logged_out"}, "unsnoozed": {"always", "always"},
			"note": {"always", "when_logged_out"}, "mentioned": {"always", "always"},
			"team_mentioned": {"always", "when_logged_out"}, "followed_customer_issue": {"always", "when_logged_out"},
			"sla_breached": {"always", "always"}, "direct_message": {"always", "when_logged_out"},
		}
		if len(p.Events) != len(want) {
			t.Fatalf("%d events; want exactly the 12 of the contract: %+v", len(p.Events), p.Events)
		}
		for ev, w := range want {
			got := p.Events[ev]
			if got.InApp != w[0] || got.Email != w[1] || got.Sound != nil || p.Source.Events[ev].InApp != "factory" {
				t.Errorf("factory %s: %+v (source %+v); want %v, no sound, from factory", ev, got, p.Source.Events[ev], w)
			}
		}
		if strings.Join(p.Sounds, ",") != "chime,ping,knock,pop,bell" {
			t.Errorf("sounds %v", p.Sounds)
		}
		if _, ok := p.Channels[fmt.Sprint(sms)]; !ok {
			t.Errorf("channels %v; want a row for the SMS channel bob belongs to", p.Channels)
		}
		if p.QuietHours == nil || p.QuietHours.Enabled {
			t.Errorf("quiet hours %+v; want present and off", p.QuietHours)
		}

		// Agents may not see or change the organisation's defaults.
		for _, method := range []string{"GET", "PUT"} {
			e.expect(bob, method, "/api/org/preferences", map[string]any{}, 403, "only admins")
		}

		// Org defaults apply to everyone who has not chosen.
		o := e.putPrefs(admin, "/api/org/preferences", map[string]any{
			"events": map[string]any{"assigned": map[string]any{"email": "always", "sound": "ping"}}})
		if a := o.Events["assigned"]; a.Email != "always" || a.Sound == nil || *a.Sound != "ping" || a.InApp != "always" {
			t.Errorf("org assigned after PUT: %+v", a)
		}
		p = e.prefs(bob, "/api/preferences")
		if a, s := p.Events["assigned"], p.Source.Events["assigned"]; a.Email != "always" || s.Email != "org" || s.Sound != "org" || s.InApp != "factory" {
			t.Errorf("bob's assigned %+v from %+v; want the org's email and sound", a, s)
		}

		// The user's own choice wins; a partial PUT changes only what it names.
		p = e.putPrefs(bob, "/api/preferences", map[string]any{
			"events": map[string]any{"assigned": map[string]any{"email": "never"}}})
		if a, s := p.Events["assigned"], p.Source.Events["assigned"]; a.Email != "never" || s.Email != "user" || a.Sound == nil || *a.Sound != "ping" {
			t.Errorf("after bob's PUT: %+v from %+v; want email never (user), sound still ping (org)", a, s)
		}
		p = e.putPrefs(bob, "/api/preferences", map[string]any{
			"events": map[string]any{"note": map[string]any{"sound": "knock"}}})
		if p.Events["assigned"].Email != "never" || *p.Events["note"].Sound != "knock" {
			t.Errorf("a second partial PUT lost the first: %+v", p.Events)
		}
		// A null sound (the contract's "no sound", also spelled "none") is bob's own
		// choice and wins over the org's sound; "inherit" (and null frequencies) inherit
		// again.
		for _, silence := range []any{nil, "none"} {
			p = e.putPrefs(bob, "/api/preferences", map[string]any{
				"events": map[string]any{"assigned": map[string]any{"sound": silence}}})
			if a := p.Events["assigned"]; a.Sound != nil || p.Source.Events["assigned"].Sound != "user" {
				t.Errorf("silenced with %v: %+v from %+v; want no sound, bob's choice", silence, a, p.Source.Events["assigned"])
			}
		}
		p = e.putPrefs(bob, "/api/preferences", map[string]any{
			"events": map[string]any{"assigned": map[string]any{"email": nil, "sound": "inherit"}}})
		if a, s := p.Events["assigned"], p.Source.Events["assigned"]; a.Email != "always" || s.Email != "org" || a.Sound == nil {
			t.Errorf("after null: %+v from %+v; want the org's values back", a, s)
		}

		// Per-channel overrides and a channel's sound; quiet hours.
		key := fmt.Sprint(sms)
		p = e.putPrefs(bob, "/api/preferences", map[string]any{
			"channels":    map[string]any{key: map[string]any{"customer_message": map[string]any{"in_app": "always"}, "sound": "bell"}},
			"quiet_hours": map[string]any{"enabled": true, "start": "22:30", "end": "06:00", "time_zone": "Europe/Berlin", "allow_mentions": true},
		})
		ch := p.Channels[key]
		if ch.CustomerMessage.InApp != "always" || ch.Sound == nil || *ch.Sound != "bell" || p.Source.Channels[key].CustomerMessage.InApp != "user_channel" {
			t.Errorf("channel %s: %+v (source %+v)", key, ch, p.Source.Channels[key])
		}
		if p.Events["customer_message"].InApp != "never" {
			t.Errorf("a channel override leaked to the event: %+v", p.Events["customer_message"])
		}
		if q := p.QuietHours; q == nil || !q.Enabled || q.Start != "22:30" || q.TimeZone != "Europe/Berlin" || !q.AllowMentions {
			t.Errorf("quiet hours %+v", q)
		}

		// Each bad value is a 400 that names it.
		for _, tc := range []struct {
			body any
			want string
		}{
			{map[string]any{"events": map[string]any{"asigned": map[string]any{"in_app": "never"}}}, `"asigned"`},
			{map[string]any{"events": map[string]any{"assigned": map[string]any{"in_app": "sometimes"}}}, `"sometimes"`},
			{map[string]any{"events": map[string]any{"assigned": map[string]any{"sound": "gong"}}}, `"gong"`},
			{map[string]any{"channels": map[string]any{fmt.Sprint(team.ID): map[string]any{"sound": "bell"}}}, fmt.Sprintf("channel %d", team.ID)},
			{map[string]any{"channels": map[string]any{"424242": map[string]any{"sound": "bell"}}}, "channel 424242"},
			{map[string]any{"quiet_hours": map[string]any{"time_zone": "Mars/Olympus"}}, `"Mars/Olympus"`},
			{map[string]any{"quiet_hours": map[string]any{"end": "7am"}}, `"7am"`},
			{map[string]any{"volume": 11}, `"volume"`},
		} {
			// The body is JSON: the value's quotes come escaped.
			e.expect(bob, "PUT", "/api/preferences", tc.body, 400, strings.ReplaceAll(tc.want, `"`, `\"`))
		}
		// The refused PUTs changed nothing.
		if p2 := e.prefs(bob, "/api/preferences"); p2.Events["assigned"].InApp != "always" || p2.QuietHours.End != "06:00" {
			t.Errorf("a refused PUT changed something: %+v %+v", p2.Events["assigned"], p2.QuietHours)
		}
		// The organisation has no quiet hours; its channel defaults may name any channel.
		e.expect(admin, "PUT", "/api/org/preferences", map[string]any{"quiet_hours": map[string]any{"enabled": true}}, 400, "quiet_hours")
		e.expect(admin, "PUT", "/api/org/preferences", map[string]any{"events": map[string]any{"assigned": map[string]any{"email": "often"}}}, 400, `\"often\"`)
		o = e.putPrefs(admin, "/api/org/preferences", map[string]any{
			"channels": map[string]any{key: map[string]any{"customer_message": map[string]any{"email": "always"}}}})
		if o.Channels[key].CustomerMessage.Email != "always" {
			t.Errorf("org channel default: %+v", o.Channels[key])
		}
		p = e.prefs(bob, "/api/preferences")
		if c := p.Channels[key].CustomerMessage; c.InApp != "always" || c.Email != "always" {
			t.Errorf("bob's channel: %+v; want his in_app over the org channel's email", c)
		}
	})
}
