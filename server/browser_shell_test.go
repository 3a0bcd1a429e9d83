package server_test

// Browser tests of the shell around the feeds: direct messages and team channels in the
// sidebar with presence, keyboard shortcuts, the issue tracker and the phone-width layout.

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/browsertest"
)

// TestBrowserDirectMessageAndTeamChannel: bob sees alice online in his People list; alice
// opens a direct message to bob from hers and writes; the conversation appears live in
// bob's sidebar with an unread badge and a presence dot, and he reads it there. Alice
// creates a team channel with bob from the sidebar: it appears in bob's sidebar at once.
func TestBrowserDirectMessageAndTeamChannel(t *testing.T) {
	e, _ := startBrowser(t)
	e.agent("alice", accounts.RoleAgent)
	e.agent("bob", accounts.RoleAgent)
	e.agent("carol", accounts.RoleAgent)
	aliceID, bobID, carolID := e.userID("alice"), e.userID("bob"), e.userID("carol")
	browser := browsertest.New(t)
	alice := openPage(t, browser, "alice")
	bob := openPage(t, browsertest.NewTab(t, browser), "bob")
	alice.login(e.srv.URL, "alice")
	bob.login(e.srv.URL, "bob")
	alice.markNoReload()
	bob.markNoReload()
	bob.wait("alice online in the People list", fmt.Sprintf(
		`document.querySelector('#people-list [data-user-id="%d"] .dot')?.dataset.presence === 'online'`, aliceID))

	alice.do("open a direct message to bob", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#people-list [data-user-id="%d"]`, bobID))))
	alice.wait("the direct message open, with its composer", `document.getElementById('channel-title').textContent === 'Bob'
		&& !document.getElementById('composer').hidden
		&& document.querySelector('#channel-list [data-kind="direct"][aria-current="page"]') !== null`)
	const text = "Hi Bob, can you cover the SMS queue after lunch?"
	alice.do("write", chromedp.SendKeys(chromedp.CSS("#composer-input"), text), press("\r"))
	alice.wait("her message in the feed", `document.querySelector('#messages [data-message-id] .msg-body')?.textContent === `+js(text))

	dm := `#channel-list [data-kind="direct"]`
	bob.wait("the direct message in bob's sidebar, live, with a badge and alice's presence", fmt.Sprintf(`(() => {
		const a = document.querySelector(%s);
		return !!a && a.querySelector('.channel-name').textContent === 'Alice'
			&& !a.querySelector('.badge').hidden && a.querySelector('.badge').textContent === '1'
			&& a.querySelector('.dot').dataset.presence === 'online';
	})()`, js(dm)))
	bob.do("open it", chromedp.Click(chromedp.CSS(dm)))
	bob.wait("alice's message, read", `document.querySelector('#messages [data-message-id] .msg-body')?.textContent === `+js(text)+
		` && document.querySelector(`+js(dm+" .badge")+`).hidden`)
	bob.screenshot("direct.png")

	// A team channel, from the "+" of the Team channels group.
	alice.do("open the new channel dialog", chromedp.Click(chromedp.CSS(`#channel-list [data-add="team"]`)))
	alice.wait("the dialog", `document.querySelector('dialog[open] #new-channel-name') === document.activeElement`)
	alice.do("name it, add bob, create",
		chromedp.SendKeys(chromedp.CSS("#new-channel-name"), "escalations"),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`dialog[open] input[value="%d"]`, bobID))),
		chromedp.Click(chromedp.CSS(`dialog[open] button[type="submit"]`)))
	alice.wait("the new channel open", `document.getElementById('channel-title').textContent === '# escalations'
		&& document.querySelector('dialog[open]') === null`)
	escalations := `[...document.querySelectorAll('#channel-list [data-kind="team"] .channel-name')].some((n) => n.textContent === 'escalations')`
	bob.wait("the new channel in bob's sidebar", escalations)

	// Its members: alice adds carol; bob leaves, and the channel leaves his sidebar.
	alice.do("open the members", chromedp.Click(chromedp.CSS("#channel-members")))
	member := func(id int64) string {
		return fmt.Sprintf(`document.querySelector('#members-dialog [data-user-id="%d"]') !== null`, id)
	}
	alice.wait("alice and bob listed", member(aliceID)+" && "+member(bobID)+" && !"+member(carolID))
	alice.do("add carol", chromedp.Click(chromedp.CSS("#add-member")))
	alice.wait("the picker", `document.querySelector('dialog.picker[open] input[type=search]') === document.activeElement`)
	alice.do("pick carol", chromedp.SendKeys(chromedp.CSS(`dialog.picker[open] input[type=search]`), "carol"), press("\r"))
	alice.wait("carol listed", member(carolID))
	alice.do("close the members", press("\u001b"))
	alice.wait("the dialog gone", `document.getElementById('members-dialog') === null`)
	bob.do("open the channel", chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('#channel-list [data-kind="team"]')].find((a) => a.textContent.includes('escalations')).click()`))
	bob.wait("the channel open", `document.getElementById('channel-title').textContent === '# escalations' && !document.getElementById('channel-members').hidden`)
	bob.do("open the members", chromedp.Click(chromedp.CSS("#channel-members")))
	bob.wait("the members", member(carolID))
	// Leaving revokes the channel on bob's open connection (close 4001): it resumes at
	// once, without ever showing the offline banner.
	bob.do("watch the offline banner", chromedp.Evaluate[chromedp.Void](`window.__bannerShown = false;
		new MutationObserver(() => { if (!document.getElementById('offline-banner').hidden) window.__bannerShown = true; })
			.observe(document.getElementById('offline-banner'), { attributes: true })`))
	bob.do("leave", chromedp.Click(chromedp.CSS("#leave-channel")))
	bob.wait("the channel gone from bob's sidebar, another channel open", `!(`+escalations+`)
		&& document.getElementById('members-dialog') === null
		&& document.getElementById('channel-title').textContent !== '# escalations'`)
	direct, err := e.s.Channels.OpenDirect(context.Background(), aliceID, bobID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Channels.PostAsUser(context.Background(), aliceID, direct.ID, "still there?"); err != nil {
		t.Fatal(err)
	}
	bob.wait("the next direct message live on the resumed connection", `document.querySelector(`+js(dm+" .badge")+`)?.textContent === '1'`)
	bob.wait("no offline banner on the way", `window.__bannerShown === false && document.getElementById('offline-banner').hidden`)
	alice.checkNoReload()
	bob.checkNoReload()
}

// TestBrowserShortcutsTrackerAndPhone: j and k move through the issue list, t takes and r
// resolves the open issue, ? shows the help, and none of them fires while typing. The
// tracker counts my issues and the team's with their SLA state. At phone width the
// sidebar folds away behind the menu button and nothing overflows sideways.
func TestBrowserShortcutsTrackerAndPhone(t *testing.T) {
	e, _ := startBrowser(t)
	aliceAPI := e.agent("alice", accounts.RoleAgent)
	adminAPI := e.agent("root", accounts.RoleAdmin)
	smsID := e.smsChannel()
	if resp := e.do(adminAPI, "PUT", fmt.Sprintf("/api/channels/%d/sla", smsID),
		map[string]any{"first_response_minutes": 30, "resolution_minutes": 480}); resp.StatusCode != http.StatusOK {
		t.Fatalf("SLA policy: %d %s", resp.StatusCode, body(resp))
	} else {
		resp.Body.Close()
	}
	p := openPage(t, browsertest.New(t), "alice")
	p.login(e.srv.URL, "alice")
	m1 := e.sms(aliceAPI, smsID, "SMk1", "+15551230401", "First customer")
	m2 := e.sms(aliceAPI, smsID, "SMk2", "+15551230402", "Second customer")
	m3 := e.sms(aliceAPI, smsID, "SMk3", "+15551230403", "Third customer")
	i1, i2, i3 := issueOfMessage(p, m1), issueOfMessage(p, m2), issueOfMessage(p, m3)
	p.markNoReload()

	p.do("open the issues", chromedp.Click(chromedp.CSS(`#nav-links [data-route="issues"]`)))
	p.wait("the list, newest first", fmt.Sprintf(`[...document.querySelectorAll('#issue-list [data-issue-id]')].map((a) => a.dataset.issueId).join() === '%d,%d,%d'`, i3, i2, i1))
	p.do("j", press("j"))
	p.waitIssue(i3)
	p.do("j again", press("j"))
	p.waitIssue(i2)
	p.do("k", press("k"))
	p.waitIssue(i3)
	p.do("t takes it", press("t"))
	p.wait("taken", `document.getElementById('issue-status').textContent === 'In progress · Assigned to Alice'`)
	p.wait("the SLA due times", `document.querySelector('#issue-sla [data-sla]')?.textContent.startsWith('Due ')`)
	p.do("raise the priority", chromedp.Evaluate[chromedp.Void](`(() => {
		const s = document.getElementById('issue-priority');
		s.value = 'urgent';
		s.dispatchEvent(new Event('change', { bubbles: true }));
	})()`))
	p.wait("urgent, in the details and the list", fmt.Sprintf(`document.getElementById('issue-priority').value === 'urgent'
		&& document.querySelector('#issue-list [data-issue-id="%d"] .prio')?.textContent === 'urgent'
		&& [...document.querySelectorAll('#conversation .act span')].some((s) => s.textContent === 'Alice set the priority to Urgent')`, i3))
	p.do("reached by phone", chromedp.Click(chromedp.CSS(`#issue-side [data-action="contacted"]`)))
	p.wait("the contact logged", `[...document.querySelectorAll('#conversation .act span')].some((s) => s.textContent === 'Alice reached the customer by phone')`)
	p.do("snooze an hour", chromedp.Evaluate[chromedp.Void](`(() => {
		const s = document.getElementById('issue-snooze');
		s.value = '1 hour';
		s.dispatchEvent(new Event('change', { bubbles: true }));
	})()`))
	p.wait("snoozed, with Unsnooze", `document.getElementById('issue-snoozed') !== null
		&& document.querySelector('#issue-side [data-action="unsnooze"]') !== null`)
	p.do("unsnooze", chromedp.Click(chromedp.CSS(`#issue-side [data-action="unsnooze"]`)))
	p.wait("awake", `document.getElementById('issue-snoozed') === null && document.getElementById('issue-snooze') !== null`)
	p.do("r resolves it", press("r"))
	p.wait("resolved", `document.getElementById('issue-status').textContent === 'Resolved · Resolved by Alice'
		&& document.querySelector('#issue-list [data-issue-id="`+fmt.Sprint(i3)+`"]') !== null`)
	p.do("t in the search box types", chromedp.Click(chromedp.CSS("#f-q")), press("t"))
	p.check("nothing taken by typing", `document.getElementById('f-q').value === 't'
		&& document.getElementById('issue-status').textContent === 'Resolved · Resolved by Alice'`)
	p.do("? shows the help", chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`), press("?"))
	p.wait("the help dialog", `document.getElementById('help-dialog')?.open === true`)
	p.do("Escape closes it", press("\u001b"))
	p.wait("the help gone", `document.getElementById('help-dialog') === null`)

	// The tracker: issue 2 is alice's, issue 1 unassigned, issue 3 resolved (not active).
	if resp := e.do(aliceAPI, "POST", fmt.Sprintf("/api/issues/%d/take", i2), map[string]any{}); resp.StatusCode != 200 {
		t.Fatalf("take: %d %s", resp.StatusCode, body(resp))
	} else {
		resp.Body.Close()
	}
	p.do("open the tracker", chromedp.Click(chromedp.CSS(`#nav-links [data-route="tracker"]`)))
	p.wait("the counts and the SLA states", fmt.Sprintf(`(() => {
		const n = (k) => document.querySelector('[data-count="' + k + '"] strong')?.textContent;
		const sla = (id) => document.querySelector('#tracker-view tr[data-issue-id="' + id + '"] .tr-sla')?.dataset.sla;
		return n('mine') === '1' && n('unassigned') === '1' && n('active') === '2' && n('breached') === '0'
			&& document.querySelector('#tr-mine').textContent === 'Assigned to me (1)'
			&& sla(%d) === 'running' && sla(%d) === 'running'
			&& document.querySelector('#tracker-view tr[data-issue-id="%d"]') === null;
	})()`, i1, i2, i3))
	p.check("the issues where they belong", fmt.Sprintf(`document.querySelector('[aria-labelledby="tr-mine"] tr[data-issue-id="%d"]') !== null
		&& document.querySelector('[aria-labelledby="tr-unassigned"] tr[data-issue-id="%d"]') !== null`, i2, i1))
	p.screenshot("tracker.png")

	// Phone width.
	p.do("a phone-sized window", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	p.do("open the SMS feed", chromedp.Click(chromedp.CSS(`#nav-toggle`)))
	p.wait("the menu open, slid in", `document.body.classList.contains('nav-open') && getComputedStyle(document.getElementById('sidebar')).visibility === 'visible'
		&& document.getElementById('sidebar').getBoundingClientRect().left === 0`)
	p.do("pick the SMS channel", chromedp.Click(chromedp.CSS(chanSel(smsID))))
	p.wait("the feed, full width, the menu closed", `!document.body.classList.contains('nav-open')
		&& getComputedStyle(document.getElementById('sidebar')).visibility === 'hidden'
		&& document.getElementById('channel-title').textContent.startsWith('SMS')
		&& document.getElementById('main').getBoundingClientRect().width === 390
		&& document.documentElement.scrollWidth <= 390`)
	p.screenshot("phone.png")
	p.do("open an issue", chromedp.Click(chromedp.CSS(msgSel(m2)+" .issue-label")))
	p.waitIssue(i2)
	p.check("one column: the list folded away, the way back shown, nothing wider than the screen", `
		getComputedStyle(document.getElementById('issue-list-panel')).display === 'none'
		&& document.getElementById('issue-back').getBoundingClientRect().width > 0
		&& document.getElementById('conversation').getBoundingClientRect().width === 390
		&& document.getElementById('issue-title').getBoundingClientRect().top < document.getElementById('issue-side').getBoundingClientRect().top
		&& document.documentElement.scrollWidth <= 390`)
	p.screenshot("phone-issue.png")
	p.do("open the menu", chromedp.Click(chromedp.CSS(`#nav-toggle`)))
	p.wait("the menu slid in", `document.getElementById('sidebar').getBoundingClientRect().left === 0`)
	p.do("go to the tracker", chromedp.Click(chromedp.CSS(`#nav-links [data-route="tracker"]`)))
	p.wait("the tracker, the menu closed, nothing wider than the screen", `!document.body.classList.contains('nav-open')
		&& document.querySelector('#tracker-view [data-count="mine"]') !== null
		&& document.documentElement.scrollWidth <= 390`)
	p.checkNoReload()
}
