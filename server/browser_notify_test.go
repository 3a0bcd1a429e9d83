package server_test

// Browser tests of the notification UI (frontend/static/notify.js, sound.js, prefs.js):
// the bell, its badge and panel, pop-ups, Mark all read across tabs, one sound among
// several tabs, and the preferences page. SWITCHBOARD_SCREENSHOTS=1 saves notify-*.png.

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/browsertest"
)

// sameBrowserTab opens another tab beside the tab ctx, sharing its cookies and storage:
// the same person in a second tab. It is closed by the returned function or at the end.
func sameBrowserTab(t *testing.T, ctx context.Context) (context.Context, context.CancelFunc) {
	t.Helper()
	tab, cancel := chromedp.NewContext(ctx)
	if err := chromedp.Do(tab); err != nil {
		cancel()
		t.Fatalf("open a second tab: %v", err)
	}
	t.Cleanup(cancel)
	return tab, cancel
}

// issueOf is the id of the issue that feed message msgID belongs to.
func (e *env) issueOf(c *http.Client, channelID, msgID int64) int64 {
	e.t.Helper()
	var page struct {
		Messages []struct {
			ID    int64 `json:"id"`
			Issue *struct {
				ID int64 `json:"id"`
			} `json:"issue"`
		} `json:"messages"`
	}
	e.getJSON(c, fmt.Sprintf("/api/channels/%d/messages", channelID), &page)
	for _, m := range page.Messages {
		if m.ID == msgID && m.Issue != nil {
			return m.Issue.ID
		}
	}
	e.t.Fatalf("message %d has no issue in channel %d: %+v", msgID, channelID, page.Messages)
	return 0
}

// assign makes c assign the issue to user; it must succeed.
func (e *env) assign(c *http.Client, issueID, userID int64) {
	e.t.Helper()
	resp := e.do(c, "POST", fmt.Sprintf("/api/issues/%d/assign", issueID), map[string]any{"assignee_id": userID})
	if b := body(resp); resp.StatusCode != 200 {
		e.t.Fatalf("assign issue %d to %d: %d %s", issueID, userID, resp.StatusCode, b)
	}
}

// unreadNotifications is what GET /api/notifications says is unread for c.
func (e *env) unreadNotifications(c *http.Client) int {
	e.t.Helper()
	var v struct {
		Unread *int `json:"unread"`
	}
	e.getJSON(c, "/api/notifications?limit=1", &v)
	if v.Unread == nil {
		e.t.Fatal("GET /api/notifications has no unread count")
	}
	return *v.Unread
}

// bellIs is true when the bell's badge shows text ("" for hidden).
func bellIs(text string) string {
	if text == "" {
		return `document.getElementById('bell-badge').hidden === true`
	}
	return fmt.Sprintf(`(() => { const b = document.getElementById('bell-badge'); return !b.hidden && b.textContent === %s; })()`, js(text))
}

// TestBrowserNotificationAppearsLive: Alice assigns an issue to Bob; Bob's bell counts it
// and a pop-up shows, without a reload. The panel lists it, Escape closes the panel and
// gives the focus back to the bell, and opening the notification marks it read. Browser
// pop-ups are asked for from the panel and shown only while the tab is hidden.
func TestBrowserNotificationAppearsLive(t *testing.T) {
	e, _ := startBrowser(t)
	aliceAPI := e.agent("alice", accounts.RoleAgent)
	bobAPI := e.agent("bob", accounts.RoleAgent)
	bobID := e.userID("bob")
	smsID := e.smsChannel()
	bob := openPage(t, browsertest.New(t), "bob")
	bob.do("a desktop window", chromedp.EmulateViewport(1280, 800))
	m := e.sms(aliceAPI, smsID, "SMn1", "+15551230101", "My parcel never arrived")
	issue := e.issueOf(aliceAPI, smsID, m)
	bob.login(e.srv.URL, "bob")
	bob.markNoReload()
	bob.wait("the bell, no badge", `document.getElementById('bell') !== null && `+bellIs(""))

	e.assign(aliceAPI, issue, bobID)
	bob.wait("the badge at 1", bellIs("1"))
	bob.wait("a pop-up", `document.querySelectorAll('#toasts .toast').length === 1
		&& document.querySelector('#toasts .toast-title').textContent !== ''`)
	bob.checkNoReload()

	bob.do("open the panel", chromedp.Click(chromedp.CSS("#bell")))
	bob.wait("the panel with one unread notification, focused", `!document.getElementById('notify-panel').hidden
		&& document.getElementById('bell').getAttribute('aria-expanded') === 'true'
		&& document.querySelectorAll('#notify-list .notify-item[data-unread="true"]').length === 1
		&& document.activeElement === document.querySelector('#notify-list .notify-item')`)
	bob.screenshot("notify-panel.png")
	bob.do("a phone-width window", chromedp.EmulateViewport(390, 844))
	bob.wait("the panel and the pop-up inside the window", `(() => {
		const fits = (el) => { const r = el.getBoundingClientRect(); return r.left >= 0 && r.right <= innerWidth && r.width > 300; };
		return fits(document.getElementById('notify-panel')) && fits(document.querySelector('#toasts .toast'))
			&& getComputedStyle(document.getElementById('sidebar')).visibility === 'hidden';
	})()`)
	bob.screenshot("notify-panel-phone.png")
	bob.do("a desktop window again", chromedp.EmulateViewport(1280, 800))
	bob.do("press Escape", chromedp.KeyEvent("\u001b"))
	bob.wait("the panel closed, focus on the bell", `document.getElementById('notify-panel').hidden
		&& document.activeElement === document.getElementById('bell')`)

	bob.do("open the panel and the notification", chromedp.Click(chromedp.CSS("#bell")),
		chromedp.Click(chromedp.CSS("#notify-list .notify-item")))
	bob.wait("the badge gone and the route at the issue", bellIs("")+fmt.Sprintf(` && location.hash.includes(%s)`, js(fmt.Sprint(issue))))
	eventually(t, "the server to count it read", func() bool { return e.unreadNotifications(bobAPI) == 0 })

	// Browser pop-ups: asked for only from the panel's button, shown only while the tab is
	// hidden, one per notification (tagged). The Notification API is stood in for: a
	// headless browser has no desktop to show them on.
	evalJS[chromedp.Void](bob, `(() => {
		window.__popups = [];
		window.Notification = class {
			static permission = 'default';
			static requestPermission() { window.Notification.permission = 'granted'; return Promise.resolve('granted'); }
			constructor(title, opts) { window.__popups.push({ title, tag: opts.tag }); }
			addEventListener() {}
			close() {}
		};
	})()`)
	bob.do("open the panel", chromedp.Click(chromedp.CSS("#bell")))
	bob.wait("the offer", `!document.getElementById('notify-browser').hidden`)
	bob.check("not asked yet", `window.Notification.permission === 'default'`)
	bob.do("allow browser pop-ups", chromedp.Click(chromedp.CSS("#notify-browser")))
	bob.wait("allowed", `document.getElementById('notify-browser').hidden && window.Notification.permission === 'granted'`)
	bob.do("close the panel", chromedp.KeyEvent("\u001b"))

	m2 := e.sms(aliceAPI, smsID, "SMn2", "+15551230102", "Second question")
	e.assign(aliceAPI, e.issueOf(aliceAPI, smsID, m2), bobID)
	bob.wait("the badge at 1", bellIs("1"))
	bob.check("no browser pop-up while the tab shows", `window.__popups.length === 0`)
	evalJS[chromedp.Void](bob, `Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' })`)
	m3 := e.sms(aliceAPI, smsID, "SMn3", "+15551230103", "Third question")
	e.assign(aliceAPI, e.issueOf(aliceAPI, smsID, m3), bobID)
	var latest struct {
		Notifications []struct {
			ID int64 `json:"id"`
		} `json:"notifications"`
	}
	bob.wait("the badge at 2", bellIs("2"))
	e.getJSON(bobAPI, "/api/notifications?limit=1", &latest)
	bob.check("one browser pop-up, tagged with the notification", fmt.Sprintf(`window.__popups.length === 1
		&& window.__popups[0].tag === %s && window.__popups[0].title.includes('Third question')`,
		js(fmt.Sprintf("switchboard-%d", latest.Notifications[0].ID))))
	bob.checkNoReload()
}

// TestBrowserMarkAllReadInTwoTabs: Bob has two tabs open; two assignments count 2 in
// both; Mark all read in one clears the badge in both. With sound enabled in both tabs,
// one notification plays one sound between them, and when the playing tab closes the
// other takes over.
func TestBrowserMarkAllReadInTwoTabs(t *testing.T) {
	e, _ := startBrowser(t)
	aliceAPI := e.agent("alice", accounts.RoleAgent)
	bobAPI := e.agent("bob", accounts.RoleAgent)
	bobID := e.userID("bob")
	smsID := e.smsChannel()
	// Bob signs in in the browser's first tab, then works in two more tabs (which, unlike
	// the first, can be closed on their own).
	first := browsertest.New(t)
	openPage(t, first, "bob (sign-in tab)").login(e.srv.URL, "bob")
	if err := chromedp.Do(first, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	var tabs []*page
	closers := map[*page]context.CancelFunc{}
	for _, name := range []string{"bob (tab 1)", "bob (tab 2)"} {
		ctx, closeTab := sameBrowserTab(t, first)
		p := openPage(t, ctx, name)
		p.do("open the app in another tab", chromedp.Navigate(e.srv.URL))
		p.waitSignedIn()
		tabs = append(tabs, p)
		closers[p] = closeTab
	}
	tab1, tab2 := tabs[0], tabs[1]
	for _, p := range tabs {
		p.markNoReload()
	}

	var issues []int64
	for i, text := range []string{"Where is my refund?", "Wrong size delivered"} {
		m := e.sms(aliceAPI, smsID, fmt.Sprintf("SMr%d", i), fmt.Sprintf("+1555123020%d", i), text)
		issues = append(issues, e.issueOf(aliceAPI, smsID, m))
	}
	for _, id := range issues {
		e.assign(aliceAPI, id, bobID)
	}
	for _, p := range tabs {
		p.wait("the badge at 2", bellIs("2"))
	}

	tab1.do("Mark all read", chromedp.Click(chromedp.CSS("#bell")), chromedp.Click(chromedp.CSS("#notify-read-all")))
	for _, p := range tabs {
		p.wait("the badge gone", bellIs("")+` && document.querySelectorAll('#toasts .toast').length === 0`)
	}
	if n := e.unreadNotifications(bobAPI); n != 0 {
		t.Fatalf("GET /api/notifications: unread %d after Mark all read; want 0", n)
	}
	tab1.check("no unread rows left in the open panel", `document.querySelectorAll('#notify-list .notify-item[data-unread="true"]').length === 0`)

	// Sound: Bob wants a chime for assignments, and enables sound in both tabs (a click:
	// the gesture browsers need). Exactly one tab leads.
	resp := e.do(bobAPI, "PUT", "/api/preferences", map[string]any{"events": map[string]any{"assigned": map[string]any{"sound": "chime"}}})
	if b := body(resp); resp.StatusCode != 200 {
		t.Fatalf("PUT /api/preferences: %d %s", resp.StatusCode, b)
	}
	tab1.do("close the panel", chromedp.KeyEvent("\u001b"))
	tab1.do("enable sound", chromedp.Click(chromedp.CSS("#bell")), chromedp.Click(chromedp.CSS("#notify-sound")), chromedp.KeyEvent("\u001b"))
	// The choice is the browser's: in the second tab any click starts the audio.
	tab2.do("click in the second tab", chromedp.Click(chromedp.CSS("#bell")), chromedp.KeyEvent("\u001b"))
	for _, p := range tabs {
		p.wait("the audio running", `window.__switchboardSound.state === 'running'`)
	}
	tab2.do("open the panel", chromedp.Click(chromedp.CSS("#bell")))
	tab2.wait("sound shown as on", `document.getElementById('notify-sound').textContent === 'Sound on'
		&& document.getElementById('notify-sound').getAttribute('aria-pressed') === 'true'`)
	tab2.do("close the panel", chromedp.KeyEvent("\u001b"))
	leaders := func() (n int, leader *page, other *page) {
		for i, p := range tabs {
			if evalJS[bool](p, `window.__switchboardSound.leader`) {
				n++
				leader, other = p, tabs[1-i]
			}
		}
		return
	}
	eventually(t, "one leading tab", func() bool { n, _, _ := leaders(); return n == 1 })
	_, leader, other := leaders()

	played := func(p *page) int { return evalJS[int](p, `window.__switchboardSound.played`) }
	m := e.sms(aliceAPI, smsID, "SMr9", "+15551230209", "Still waiting")
	e.assign(aliceAPI, e.issueOf(aliceAPI, smsID, m), bobID)
	for _, p := range tabs {
		p.wait("the badge at 1", bellIs("1"))
	}
	leader.wait("the chime in the leading tab", `window.__switchboardSound.played === 1 && window.__switchboardSound.last === 'chime'`)
	if n := played(other); n != 0 {
		t.Fatalf("the other tab played %d sounds; want 0 (one sound per event)", n)
	}

	// The leader goes; the other tab takes over and plays the next one.
	closers[leader]()
	other.wait("the other tab leading", `window.__switchboardSound.leader === true`)
	m = e.sms(aliceAPI, smsID, "SMr10", "+15551230210", "Hello again")
	e.assign(aliceAPI, e.issueOf(aliceAPI, smsID, m), bobID)
	other.wait("its chime", `window.__switchboardSound.played === 1 && window.__switchboardSound.last === 'chime'`)
	other.checkNoReload()
}

// TestBrowserPreferencesPage: the grid saves a change that GET /api/preferences returns
// as the user's own and shows it as such; it stacks at phone width; Play previews a sound;
// quiet hours save, and a value the server refuses is named in the error.
func TestBrowserPreferencesPage(t *testing.T) {
	e, _ := startBrowser(t)
	bobAPI := e.agent("bob", accounts.RoleAgent)
	p := openPage(t, browsertest.New(t), "bob")
	p.do("a desktop window", chromedp.EmulateViewport(1280, 900))
	p.login(e.srv.URL, "bob")
	p.route("#/preferences")
	const emailSel = `#prefs-events select[name="events.assigned.email"]`
	p.wait("the grid with factory defaults", fmt.Sprintf(`(() => {
		const s = document.querySelector(%s);
		return !!s && s.value === '' && s.dataset.source === 'factory'
			&& document.querySelectorAll('#prefs-events tbody tr').length === 12;
	})()`, js(emailSel)))

	p.do("choose never, and save", chromedp.SetValue(chromedp.CSS(emailSel), "never"), chromedp.Click(chromedp.CSS("#prefs-save")))
	p.wait("Saved", `document.getElementById('prefs-status').textContent === 'Saved.'
		&& document.getElementById('prefs-error').textContent === ''`)
	var prefs struct {
		Events map[string]struct {
			InApp string `json:"in_app"`
			Email string `json:"email"`
		} `json:"events"`
		Source struct {
			Events map[string]struct {
				InApp string `json:"in_app"`
				Email string `json:"email"`
			} `json:"events"`
		} `json:"source"`
	}
	e.getJSON(bobAPI, "/api/preferences", &prefs)
	if got := prefs.Events["assigned"]; got.Email != "never" || got.InApp != "always" {
		t.Fatalf("GET /api/preferences: assigned = %+v; want email never, in_app still always", got)
	}
	if src := prefs.Source.Events["assigned"]; src.Email != "user" || src.InApp != "factory" {
		t.Fatalf("GET /api/preferences: assigned's sources = %+v; want email from the user, in_app still the factory's", src)
	}
	p.check("the saved choice shown as the user's own", fmt.Sprintf(`(() => {
		const s = document.querySelector(%s);
		return s.value === 'never' && s.dataset.source === 'user'
			&& s.closest('tr').querySelector('.src-tag').textContent === 'your choice';
	})()`, js(emailSel)))

	p.screenshot("notify-preferences.png")

	// At phone width the grid stacks: nothing runs off the side.
	p.do("a phone-width window", chromedp.EmulateViewport(390, 844))
	p.wait("the sidebar away and no horizontal overflow", `(() => {
		const pg = document.getElementById('page');
		return getComputedStyle(document.getElementById('sidebar')).visibility === 'hidden' && pg.scrollWidth <= pg.clientWidth;
	})()`)
	p.screenshot("notify-preferences-phone.png")
	p.do("a desktop window again", chromedp.EmulateViewport(1280, 900))

	// Play previews the chosen sound through Web Audio.
	row := `#prefs-events tr[data-event="mentioned"]`
	p.do("choose knock and play it", chromedp.SetValue(chromedp.CSS(row+` select[name="events.mentioned.sound"]`), "knock"),
		chromedp.Click(chromedp.CSS(row+` .play`)))
	p.wait("the knock played on a running AudioContext", `window.__switchboardSound.played === 1
		&& window.__switchboardSound.last === 'knock' && window.__switchboardSound.state === 'running'`)

	// A bad value from the server is shown, not swallowed: a time zone Go does not know.
	p.do("turn on quiet hours in an unknown zone", chromedp.Click(chromedp.CSS("#qh-enabled")))
	evalJS[chromedp.Void](p, `(() => { const z = document.getElementById('qh-zone'); z.append(new Option('Mars/Olympus', 'Mars/Olympus')); z.value = 'Mars/Olympus'; })()`)
	p.do("save", chromedp.Click(chromedp.CSS("#prefs-save")))
	p.wait("the refusal naming the zone", `document.getElementById('prefs-error').textContent.includes('Mars/Olympus')`)
	p.do("a real zone, save", chromedp.SetValue(chromedp.CSS("#qh-zone"), "Europe/Berlin"), chromedp.Click(chromedp.CSS("#prefs-save")))
	p.wait("Saved", `document.getElementById('prefs-status').textContent === 'Saved.' && document.getElementById('prefs-error').textContent === ''`)
	var quiet struct {
		Quiet struct {
			Enabled  bool   `json:"enabled"`
			Start    string `json:"start"`
			End      string `json:"end"`
			TimeZone string `json:"time_zone"`
		} `json:"quiet_hours"`
	}
	e.getJSON(bobAPI, "/api/preferences", &quiet)
	if q := quiet.Quiet; !q.Enabled || q.TimeZone != "Europe/Berlin" || q.Start != "22:00" || q.End != "07:00" {
		t.Fatalf("quiet hours after saving: %+v; want on, 22:00–07:00, Europe/Berlin", q)
	}
}

// TestBrowserOrgDefaults: an admin changes the organisation's defaults in the admin
// section; GET /api/org/preferences has them; an agent's page then shows them as the
// organisation's defaults, and the agent's own choice wins over them. The admin's own
// preferences page has the same grid under its second tab.
func TestBrowserOrgDefaults(t *testing.T) {
	e, _ := startBrowser(t)
	rootAPI := e.agent("root", accounts.RoleAdmin)
	aliceAPI := e.agent("alice", accounts.RoleAgent)
	smsID := e.smsChannel()
	browser := browsertest.New(t)
	root := openPage(t, browser, "root")
	root.do("a desktop window", chromedp.EmulateViewport(1280, 900))
	root.login(e.srv.URL, "root")
	root.route("#/admin/notifications")
	noteEmail := `select[name="events.note.email"]`
	chSound := fmt.Sprintf(`select[name="channels.%d.sound"]`, smsID)
	root.wait("the organisation grid", fmt.Sprintf(`document.querySelector('#org-prefs-events %s') !== null
		&& document.querySelector('#org-prefs-channels %s') !== null`, noteEmail, chSound))
	root.do("note emails never, a bell for SMS, save", chromedp.SetValue(chromedp.CSS(`#org-prefs-events `+noteEmail), "never"),
		chromedp.SetValue(chromedp.CSS(`#org-prefs-channels `+chSound), "bell"), chromedp.Click(chromedp.CSS("#org-prefs-save")))
	root.wait("Saved", `document.getElementById('org-prefs-status').textContent === 'Saved.'`)
	var org struct {
		Events   map[string]struct{ Email string } `json:"events"`
		Channels map[string]struct {
			Sound *string `json:"sound"`
		} `json:"channels"`
	}
	e.getJSON(rootAPI, "/api/org/preferences", &org)
	if s := org.Channels[fmt.Sprint(smsID)].Sound; org.Events["note"].Email != "never" || s == nil || *s != "bell" {
		t.Fatalf("GET /api/org/preferences: note %+v, SMS sound %v; want never and bell", org.Events["note"], s)
	}
	root.screenshot("admin-notification-defaults.png")

	root.route("#/preferences")
	root.wait("two tabs, the first selected", `document.querySelectorAll('[role=tab]').length === 2
		&& document.querySelector('[role=tab][aria-selected=true]').dataset.tab === 'mine'
		&& document.querySelector('#prefs-events') !== null`)
	root.do("the organisation tab", chromedp.Click(chromedp.CSS(`[role=tab][data-tab="org"]`)))
	root.wait("the organisation grid with its default", fmt.Sprintf(`document.querySelector('#org-prefs-events %s')?.value === 'never'
		&& document.querySelector('#prefs-events') === null`, noteEmail))

	alice := openPage(t, browsertest.NewTab(t, browser), "alice")
	alice.login(e.srv.URL, "alice")
	alice.route("#/preferences")
	alice.wait("the organisation's defaults, inherited", fmt.Sprintf(`(() => {
		const n = document.querySelector('#prefs-events %s'), s = document.querySelector('#prefs-channels %s');
		return !!n && !!s && n.value === '' && n.dataset.source === 'org' && n.selectedOptions[0].textContent === 'Default: Never'
			&& s.value === '' && s.dataset.source === 'org_channel' && s.selectedOptions[0].textContent === 'Default: Bell'
			&& n.closest('tr').querySelector('.src-tag').textContent === 'organisation default';
	})()`, noteEmail, chSound))
	alice.do("her own choice: always", chromedp.SetValue(chromedp.CSS(`#prefs-events `+noteEmail), "always"), chromedp.Click(chromedp.CSS("#prefs-save")))
	alice.wait("Saved", `document.getElementById('prefs-status').textContent === 'Saved.'`)
	var mine struct {
		Events map[string]struct{ Email string } `json:"events"`
	}
	e.getJSON(aliceAPI, "/api/preferences", &mine)
	if got := mine.Events["note"].Email; got != "always" {
		t.Fatalf("alice's note email = %q after choosing always over the organisation's never", got)
	}

	// Reset: back to the organisation's default.
	alice.do("reset the row and save", chromedp.Click(chromedp.CSS(`#prefs-events tr[data-event="note"] td:last-child button`)),
		chromedp.Click(chromedp.CSS("#prefs-save")))
	alice.wait("the organisation's default again", fmt.Sprintf(`(() => {
		const n = document.querySelector('#prefs-events %s');
		return n.value === '' && n.dataset.source === 'org' && document.getElementById('prefs-status').textContent === 'Saved.';
	})()`, noteEmail))
	e.getJSON(aliceAPI, "/api/preferences", &mine)
	if got := mine.Events["note"].Email; got != "never" {
		t.Fatalf("alice's note email = %q after Reset; want the organisation's never", got)
	}
}

// TestBrowserNotificationPagingAndPopups: notifications that arrive live stack at most
// three pop-ups, and a pop-up's dismiss button removes one; the panel shows the first page
// and the live ones, and pages back with Load older; the keyboard focus survives both.
func TestBrowserNotificationPagingAndPopups(t *testing.T) {
	e, _ := startBrowser(t)
	aliceAPI := e.agent("alice", accounts.RoleAgent)
	e.agent("bob", accounts.RoleAgent)
	bobID := e.userID("bob")
	smsID := e.smsChannel()
	// 21 notifications wait for Bob; 4 more arrive while he is signed in.
	const before, live = 21, 4
	const n = before + live
	var issues []int64
	for i := range n {
		m := e.sms(aliceAPI, smsID, fmt.Sprintf("SMp%d", i), fmt.Sprintf("+155512304%02d", i), fmt.Sprintf("Question %d", i))
		issues = append(issues, e.issueOf(aliceAPI, smsID, m))
	}
	for _, id := range issues[:before] {
		e.assign(aliceAPI, id, bobID)
	}
	bob := openPage(t, browsertest.New(t), "bob")
	bob.login(e.srv.URL, "bob")
	bob.wait("the badge at 21", bellIs(fmt.Sprint(before)))
	for _, id := range issues[before:] {
		e.assign(aliceAPI, id, bobID)
	}
	bob.wait("the badge at 25", bellIs(fmt.Sprint(n)))
	bob.wait("at most three pop-ups, the newest last", fmt.Sprintf(`(() => {
		const t = [...document.querySelectorAll('#toasts .toast')];
		return t.length === 3 && t[2].textContent.includes('Question %d');
	})()`, n-1))
	bob.do("dismiss one", chromedp.Click(chromedp.CSS(`#toasts .toast:last-child .toast-close`)))
	bob.wait("two pop-ups", `document.querySelectorAll('#toasts .toast').length === 2`)
	bob.check("still all unread", bellIs(fmt.Sprint(n)))

	bob.do("open the panel", chromedp.Click(chromedp.CSS("#bell")))
	bob.wait("the first page and the live ones", fmt.Sprintf(`document.querySelectorAll('#notify-list .notify-item').length === %d
		&& !document.getElementById('notify-more').hidden`, 20+live))
	bob.do("load older", chromedp.Click(chromedp.CSS("#notify-more")))
	bob.wait("all of them, once each", fmt.Sprintf(`(() => {
		const ids = [...document.querySelectorAll('#notify-list .notify-item')].map((b) => Number(b.dataset.notificationId));
		return ids.length === %d && new Set(ids).size === %d && ids.every((id, i) => i === 0 || ids[i - 1] > id)
			&& document.getElementById('notify-more').hidden
			&& document.activeElement === document.querySelectorAll('#notify-list .notify-item')[%d];
	})()`, n, n, 20+live))

	// A notification arriving while the keyboard is in the list leaves it where it was.
	focused := evalJS[string](bob, `document.activeElement.dataset.notificationId`)
	m := e.sms(aliceAPI, smsID, "SMp99", "+15551230499", "One more")
	e.assign(aliceAPI, e.issueOf(aliceAPI, smsID, m), bobID)
	bob.wait("the new one listed, focus kept", fmt.Sprintf(`document.querySelectorAll('#notify-list .notify-item').length === %d
		&& document.activeElement.dataset.notificationId === %s`, n+1, js(focused)))
}

// TestBrowserSoundRepeatsUntilRead: with "Repeat until read" on, the leading tab plays an
// unread notification's sound again at each repeat tick, and stops once it is read. The
// 30-second tick is driven by the test: setInterval is wrapped before the session starts
// (a logout and login in place, no reload), and its callback called directly.
func TestBrowserSoundRepeatsUntilRead(t *testing.T) {
	e, _ := startBrowser(t)
	aliceAPI := e.agent("alice", accounts.RoleAgent)
	bobAPI := e.agent("bob", accounts.RoleAgent)
	bobID := e.userID("bob")
	smsID := e.smsChannel()
	resp := e.do(bobAPI, "PUT", "/api/preferences", map[string]any{"events": map[string]any{"assigned": map[string]any{"sound": "ping"}}})
	if b := body(resp); resp.StatusCode != 200 {
		t.Fatalf("PUT /api/preferences: %d %s", resp.StatusCode, b)
	}
	p := openPage(t, browsertest.New(t), "bob")
	p.login(e.srv.URL, "bob")
	evalJS[chromedp.Void](p, `(() => {
		const every = window.setInterval;
		window.__ticks = [];
		window.setInterval = (fn, ms, ...rest) => { if (ms === 30000) window.__ticks.push(fn); return every(fn, ms, ...rest); };
	})()`)
	p.do("log out", chromedp.Click(chromedp.CSS("#logout")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	p.do("log in again", chromedp.SendKeys(chromedp.CSS("#password"), "password-bob"), chromedp.Click(chromedp.CSS("#login-submit")))
	p.waitSignedIn()
	p.check("the repeat tick captured", `window.__ticks.length === 1`)
	p.do("enable sound with repeat", chromedp.Click(chromedp.CSS("#bell")), chromedp.Click(chromedp.CSS("#notify-sound")),
		chromedp.Click(chromedp.CSS("#notify-repeat")), chromedp.KeyEvent("\u001b"))
	p.wait("leading, audio running", `window.__switchboardSound.leader && window.__switchboardSound.state === 'running'`)

	m := e.sms(aliceAPI, smsID, "SMq1", "+15551230501", "Hello?")
	e.assign(aliceAPI, e.issueOf(aliceAPI, smsID, m), bobID)
	p.wait("the ping", `window.__switchboardSound.played === 1 && window.__switchboardSound.last === 'ping'`)
	evalJS[chromedp.Void](p, `window.__ticks[0]()`)
	p.check("played again while unread", `window.__switchboardSound.played === 2`)

	p.do("Mark all read", chromedp.Click(chromedp.CSS("#bell")), chromedp.Click(chromedp.CSS("#notify-read-all")))
	p.wait("read", bellIs(""))
	evalJS[chromedp.Void](p, `window.__ticks[0]()`)
	p.check("silent once read", `window.__switchboardSound.played === 2`)
}
