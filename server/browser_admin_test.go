package server_test

// Browser tests of the admin and stats pages (frontend/static/admin.js, stats.js), on the
// harness of browser_test.go. SWITCHBOARD_SCREENSHOTS=1 saves admin-*.png and stats-page.png.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/browsertest"
)

// route moves the app to hash in place, as a click on a link would (no reload).
func (p *page) route(hash string) {
	p.t.Helper()
	evalJS[chromedp.Void](p, `location.hash = `+js(hash))
}

// fill types text into the input sel after clearing it.
func fill(sel, text string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{chromedp.Clear(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), text)}
}

// TestBrowserAdminPages: an admin creates a user, makes her an admin, disables and
// enables her; creates a team, adds and removes her; connects a Twilio number and sees the
// webhook URLs to paste into Twilio; adds and removes a mailbox. Every change is in the API
// afterwards. The stats page shows its figures.
func TestBrowserAdminPages(t *testing.T) {
	e, _ := startBrowser(t)
	adminAPI := e.agent("root", accounts.RoleAdmin)
	p := openPage(t, browsertest.New(t), "root")
	p.do("a desktop window", chromedp.EmulateViewport(1280, 900))
	p.login(e.srv.URL, "root")
	p.markNoReload()

	// Users: create one through the form.
	p.route("#/admin/users")
	p.wait("the users table", `document.querySelector('#admin-users tbody tr') !== null`)
	var actions []chromedp.Action[chromedp.Void]
	actions = append(actions, fill("#admin-name", "Erin Park")...)
	actions = append(actions, fill("#admin-email", "erin@example.com")...)
	actions = append(actions, fill("#admin-password", "longenough1")...)
	actions = append(actions, chromedp.Click(chromedp.CSS(`#admin-user-form button[type="submit"]`)))
	p.do("create a user", actions...)
	p.wait("Erin in the table", `[...document.querySelectorAll('#admin-users tbody tr')].some((r) => r.textContent.includes('erin@example.com'))`)
	type user struct {
		ID     int64  `json:"id"`
		Email  string `json:"email"`
		Handle string `json:"handle"`
		Role   string `json:"role"`
	}
	var users struct {
		Users []user `json:"users"`
	}
	e.getJSON(adminAPI, "/api/users", &users)
	erin := slices.IndexFunc(users.Users, func(u user) bool { return u.Email == "erin@example.com" })
	if erin < 0 || users.Users[erin].Role != "agent" || users.Users[erin].Handle != "erin" {
		t.Fatalf("GET /api/users after the form: %+v; want erin@example.com, agent, @erin", users.Users)
	}
	erinID := users.Users[erin].ID

	// A refusal is shown, not swallowed: the same email again.
	p.do("create the same user again", append(fill("#admin-name", "Erin Again"),
		append(fill("#admin-email", "erin@example.com"), append(fill("#admin-password", "longenough2"),
			chromedp.Click(chromedp.CSS(`#admin-user-form button[type="submit"]`)))...)...)...)
	p.wait("the 409 in the form", `document.querySelector('#admin-user-form .form-error').textContent.includes('already exists')`)
	p.screenshot("admin-users.png")

	// Erin becomes an admin, is disabled and enabled again, from her row.
	erinRow := `[...document.querySelectorAll('#admin-users tbody tr')].find((r) => r.textContent.includes('erin@example.com'))`
	evalJS[chromedp.Void](p, `(() => { const s = `+erinRow+`.querySelector('select'); s.value = 'admin'; s.dispatchEvent(new Event('change')); })()`)
	eventually(t, "Erin an admin", func() bool {
		e.getJSON(adminAPI, "/api/users", &users)
		return users.Users[erin].Role == "admin"
	})
	evalJS[chromedp.Void](p, erinRow+`.querySelector('.pg-inline button').click()`)
	p.wait("Erin shown disabled", erinRow+`.querySelector('.pill').textContent === 'Disabled'`)
	var erinNow struct {
		User struct {
			Disabled bool `json:"disabled"`
		} `json:"user"`
	}
	resp := e.do(adminAPI, "PATCH", fmt.Sprintf("/api/users/%d", erinID), map[string]any{})
	if b := body(resp); resp.StatusCode != 200 || json.Unmarshal([]byte(b), &erinNow) != nil || !erinNow.User.Disabled {
		t.Fatalf("Erin after Disable: %d %s; want disabled", resp.StatusCode, b)
	}
	evalJS[chromedp.Void](p, erinRow+`.querySelector('.pg-inline button').click()`)
	p.wait("Erin shown active again", erinRow+`.querySelector('.pill').textContent === 'Active'`)

	// Teams: create one and add Erin.
	p.route("#/admin/teams")
	p.wait("the teams section", `document.querySelector('#admin-team-form') !== null && document.querySelector('#admin-teams') !== null
		&& document.querySelector('#admin-teams').textContent.includes('No teams yet.')`)
	p.do("create a team", append(fill("#admin-team-name", "Night shift"),
		chromedp.Click(chromedp.CSS(`#admin-team-form button[type="submit"]`)))...)
	p.wait("the team", `document.querySelector('#admin-teams .team') !== null`)
	teamSel := `#admin-teams .team`
	p.do("pick Erin", chromedp.SetValue(chromedp.CSS(teamSel+` select`), fmt.Sprint(erinID)),
		chromedp.Click(chromedp.CSS(teamSel+` .pg-inline button`)))
	p.wait("Erin on the team", fmt.Sprintf(`document.querySelector(%s) !== null`, js(fmt.Sprintf(`%s .chip[data-user-id="%d"]`, teamSel, erinID))))
	var teams struct {
		Teams []struct {
			Name      string  `json:"name"`
			Handle    string  `json:"handle"`
			MemberIDs []int64 `json:"member_ids"`
		} `json:"teams"`
	}
	e.getJSON(adminAPI, "/api/teams", &teams)
	if len(teams.Teams) != 1 || teams.Teams[0].Handle != "night-shift" || !slices.Equal(teams.Teams[0].MemberIDs, []int64{erinID}) {
		t.Fatalf("GET /api/teams: %+v; want Night shift with Erin (%d)", teams.Teams, erinID)
	}
	p.screenshot("admin-teams.png")
	p.do("remove Erin", chromedp.Click(chromedp.CSS(fmt.Sprintf(`%s .chip[data-user-id="%d"] .chip-x`, teamSel, erinID))))
	p.wait("nobody on the team", `document.querySelector('#admin-teams .team .chip') === null`)
	e.getJSON(adminAPI, "/api/teams", &teams)
	if len(teams.Teams[0].MemberIDs) != 0 {
		t.Fatalf("GET /api/teams after removing Erin: %+v", teams.Teams)
	}

	// Channels: connect a Twilio number; the webhook URLs show with copy buttons.
	p.route("#/admin/channels")
	p.wait("the numbers list", `document.querySelector('#admin-numbers table, #admin-numbers p') !== null`)
	sid := "AC" + strings.Repeat("a1", 16)
	p.do("connect a number", append(append(append(fill("#admin-number", "+15550008888"), fill("#admin-account_sid", sid)...),
		fill("#admin-auth_token", "secret-token")...), chromedp.Click(chromedp.CSS(`#admin-number-form button[type="submit"]`)))...)
	inbound := e.srv.URL + "/webhooks/twilio/sms"
	p.wait("the number with its webhook URLs", fmt.Sprintf(`(() => {
		const rows = [...document.querySelectorAll('#admin-numbers tbody tr')];
		const row = rows.find((r) => r.textContent.includes('+15550008888'));
		const hooks = [...document.querySelectorAll('#admin-webhooks .webhook')];
		return !!row && row.textContent.includes('As above')
			&& hooks.some((h) => h.querySelector('.webhook-url').textContent === %s && h.querySelector('button').textContent === 'Copy')
			&& hooks.some((h) => h.querySelector('.webhook-url').textContent === %s);
	})()`, js(inbound), js(e.srv.URL+"/webhooks/twilio/status")))
	type smsNumber struct {
		Number     string `json:"number"`
		AccountSID string `json:"account_sid"`
	}
	var nums struct {
		Numbers []smsNumber `json:"numbers"`
	}
	e.getJSON(adminAPI, "/api/sms/numbers", &nums)
	if !slices.Contains(nums.Numbers, smsNumber{"+15550008888", sid}) {
		t.Fatalf("GET /api/sms/numbers: %+v; want +15550008888 with %s", nums.Numbers, sid)
	}
	p.screenshot("admin-channels.png")

	// Mailboxes: add one (its intake only ever dials this machine), then remove it.
	p.do("add a mailbox", append(append(fill("#admin-url", "imap://sales:secret-pw@127.0.0.1:1/INBOX"), fill("#admin-address", "sales@example.com")...),
		chromedp.Click(chromedp.CSS(`#admin-mailbox-form button[type="submit"]`)))...)
	p.wait("the mailbox, its password not shown", `(() => {
		const row = document.querySelector('#admin-mailboxes tbody tr');
		return !!row && row.textContent.includes('sales@example.com') && row.querySelector('code').textContent.includes('127.0.0.1')
			&& !row.textContent.includes('secret-pw');
	})()`)
	evalJS[chromedp.Void](p, `window.confirm = () => true`)
	p.do("remove it", chromedp.Click(chromedp.CSS(`#admin-mailboxes tbody tr .btn-danger`)))
	p.wait("no mailboxes", `document.querySelector('#admin-mailboxes').textContent === 'No mailboxes.'`)
	var boxes struct {
		Mailboxes []any `json:"mailboxes"`
	}
	e.getJSON(adminAPI, "/api/email/mailboxes", &boxes)
	if len(boxes.Mailboxes) != 0 {
		t.Fatalf("GET /api/email/mailboxes after Remove: %+v", boxes.Mailboxes)
	}

	// Stats: one issue taken and resolved, one still open; the counts and figures show them.
	smsID := e.smsChannel()
	done := e.issueOf(adminAPI, smsID, e.sms(adminAPI, smsID, "SMa1", "+15551230301", "Please cancel my order"))
	e.sms(adminAPI, smsID, "SMa2", "+15551230302", "Is the shop open on Sunday?")
	for _, action := range []string{"take", "resolve"} {
		resp := e.do(adminAPI, "POST", fmt.Sprintf("/api/issues/%d/%s", done, action), nil)
		if b := body(resp); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", action, resp.StatusCode, b)
		}
	}
	p.route("#/stats")
	p.wait("the figures", `(() => {
		const v = [...document.querySelectorAll('#stats-counts .stat-value, #stats-overall .stat-value')].map((e) => e.textContent);
		return v.length === 8 && v[0] === '1' && v[1] === '1' && v[3] === '2' && v[6] !== '—'
			&& document.querySelector('#stats-channels tbody tr') !== null;
	})()`)
	p.screenshot("stats-page.png")

	// Dates: a day long ago has nothing; the wrong way round is refused in the server's words.
	setDates := func(from, to string) {
		evalJS[chromedp.Void](p, fmt.Sprintf(`(() => {
			const r = document.getElementById('stats-range');
			r.value = 'custom';
			document.getElementById('stats-from').value = %s;
			document.getElementById('stats-to').value = %s;
			r.dispatchEvent(new Event('change'));
		})()`, js(from), js(to)))
	}
	setDates("2020-01-01", "2020-01-02")
	p.wait("nothing opened then", `!document.getElementById('stats-from').closest('.pg-row').hidden
		&& document.querySelectorAll('#stats-overall .stat-value')[0].textContent === '0'`)
	setDates("2020-01-02", "2020-01-01")
	p.wait("the refusal", `document.querySelector('#page .form-error').textContent.toLowerCase().includes('from must be before to')`)
	p.checkNoReload()
}

// TestBrowserAdminIsForAdmins: an agent who opens #/admin is told it is for admins, sees
// no admin forms, and has no Admin link in the sidebar.
func TestBrowserAdminIsForAdmins(t *testing.T) {
	e, _ := startBrowser(t)
	e.agent("alice", accounts.RoleAgent)
	p := openPage(t, browsertest.New(t), "alice")
	p.login(e.srv.URL, "alice")
	p.route("#/admin/users")
	p.wait("the admins-only message", `(() => {
		const m = document.getElementById('admin-denied');
		return !!m && m.offsetHeight > 0 && m.textContent.includes('admins only');
	})()`)
	p.check("no admin forms, no Admin link", `document.querySelector('#admin-user-form, #admin-section') === null
		&& document.getElementById('admin-link').hidden`)
}

// TestBrowserAdminSLAs: an admin sets the SMS channel's SLA, the alert channel and
// auto-close through the SLA section; the API returns them; a bad value is refused with
// the server's words; Remove deletes the policy.
func TestBrowserAdminSLAs(t *testing.T) {
	e, _ := startBrowser(t)
	adminAPI := e.agent("root", accounts.RoleAdmin)
	team, err := e.s.Channels.CreateTeam(context.Background(), "Escalations", []int64{e.userID("root")})
	if err != nil {
		t.Fatal(err)
	}
	smsID := e.smsChannel()
	p := openPage(t, browsertest.New(t), "root")
	p.do("a desktop window", chromedp.EmulateViewport(1280, 900))
	p.login(e.srv.URL, "root")
	p.route("#/admin/sla")
	row := `#admin-slas tbody tr:first-child`
	p.wait("the SMS channel's row, without a policy", fmt.Sprintf(`(() => {
		const r = document.querySelector(%s);
		return !!r && r.textContent.includes('SMS') && r.querySelector('input').value === '';
	})()`, js(row)))

	// Too short a first response: the server's refusal shows in the row.
	p.do("enter 5 and 240 minutes", append(append(fill(row+` td:nth-child(2) input`, "5"), fill(row+` td:nth-child(3) input`, "240")...),
		chromedp.Click(chromedp.CSS(row+` .btn-primary`)))...)
	p.wait("the refusal", fmt.Sprintf(`document.querySelector(%s).textContent.toLowerCase().includes('first_response_minutes must be between 30')`, js(row+` .form-error`)))

	// (chromedp.Clear leaves a number input as it is: select its text and type over it.)
	p.do("enter 60 minutes", chromedp.Click(chromedp.CSS(row+` td:nth-child(2) input`)), chromedp.KeyEvent(kb.Backspace),
		chromedp.SendKeys(chromedp.CSS(row+` td:nth-child(2) input`), "60"), chromedp.Click(chromedp.CSS(row+` .btn-primary`)))
	p.wait("Saved", fmt.Sprintf(`document.querySelector(%s).textContent === 'Saved.'`, js(row+` .pg-status`)))
	var policy struct {
		First int `json:"first_response_minutes"`
		Res   int `json:"resolution_minutes"`
		Warn  int `json:"warn_percent"`
	}
	e.slaMust(adminAPI, "GET", fmt.Sprintf("/api/channels/%d/sla", smsID), nil, 200, &policy)
	if policy.First != 60 || policy.Res != 240 || policy.Warn != 80 {
		t.Fatalf("the policy after saving: %+v; want 60, 240, warn 80", policy)
	}

	p.do("alerts to Escalations, close after 48 hours", chromedp.SetValue(chromedp.CSS("#admin-alert-channel"), fmt.Sprint(team.ID)),
		chromedp.Click(chromedp.CSS("#admin-auto-close")), chromedp.KeyEvent(kb.End), chromedp.KeyEvent(kb.Backspace+kb.Backspace+kb.Backspace),
		chromedp.SendKeys(chromedp.CSS("#admin-auto-close"), "48"),
		chromedp.Click(chromedp.CSS(`#admin-section .pg-card:first-child .btn-primary`)))
	p.wait("Saved", `document.querySelector('#admin-section .pg-card:first-child .pg-status').textContent === 'Saved.'`)
	var settings struct {
		Alert     *int64 `json:"alert_channel_id"`
		AutoClose int    `json:"auto_close_minutes"`
	}
	e.slaMust(adminAPI, "GET", "/api/settings/sla", nil, 200, &settings)
	if settings.Alert == nil || *settings.Alert != team.ID || settings.AutoClose != 48*60 {
		t.Fatalf("the settings after saving: alert %v, auto-close %d; want %d and 2880", settings.Alert, settings.AutoClose, team.ID)
	}
	p.screenshot("admin-slas.png")

	p.do("remove the policy", chromedp.Click(chromedp.CSS(row+` .pg-inline .btn:not(.btn-primary)`)))
	p.wait("Removed", fmt.Sprintf(`document.querySelector(%s).textContent === 'Removed.'`, js(row+` .pg-status`)))
	e.slaMust(adminAPI, "GET", fmt.Sprintf("/api/channels/%d/sla", smsID), nil, 404, nil)
}
