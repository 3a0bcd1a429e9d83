package server_test

// Browser tests of the issue view (#/issues/ID: list, conversation, details), the
// customer lightbox, notes and replies, keyboard shortcuts and the tracker. Helpers are in
// browser_test.go; nothing sleeps.

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/browsertest"
)

// issueOfMessage is the issue id on message id's chip.
func issueOfMessage(p *page, msgID int64) int64 {
	p.t.Helper()
	p.wait("the message's chip", fmt.Sprintf(`document.querySelector(%s) !== null`, js(msgSel(msgID)+" .issue-chip")))
	s := evalJS[string](p, fmt.Sprintf(`document.querySelector(%s).dataset.issueId`, js(msgSel(msgID)+" .issue-chip")))
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		p.t.Fatalf("issue id %q: %v", s, err)
	}
	return id
}

// openIssue goes to #/issues/ID and waits for the conversation and the details.
func (p *page) openIssue(id int64) {
	p.t.Helper()
	p.do("open the issue", chromedp.Navigate(p.url(fmt.Sprintf("#/issues/%d", id))))
	p.waitIssue(id)
}

func (p *page) waitIssue(id int64) {
	p.t.Helper()
	p.wait("the issue view", fmt.Sprintf(`!document.getElementById('issue-view').hidden
		&& document.querySelector('#conversation [data-comment-id]') !== null
		&& document.getElementById('issue-status') !== null
		&& document.getElementById('issue-title').textContent.startsWith(%s)
		&& document.querySelector('#issue-list [data-issue-id="%d"][aria-current]') !== null`, js(fmt.Sprintf("#%d ", id)), id))
}

// url is the app's address with hash (the page's current origin).
func (p *page) url(hash string) string {
	p.t.Helper()
	return evalJS[string](p, `location.origin + '/'`) + hash
}

// commentSel selects comments of a kind whose body is text.
func commentIs(kind, text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('#conversation [data-kind=%s]')].some((c) => c.querySelector('.c-body').textContent === %s)`,
		js(kind), js(text))
}

// TestBrowserIssueViewPanelsAndCustomer: the three panels of the issue view, the customer
// card's "View Customer" lightbox (contact, follow, past issues; Escape closes it and gives
// the focus back), and hostile text shown as text in every panel.
func TestBrowserIssueViewPanelsAndCustomer(t *testing.T) {
	e, _ := startBrowser(t)
	aliceAPI := e.agent("alice", accounts.RoleAgent)
	e.agent("bob", accounts.RoleAgent)
	smsID := e.smsChannel()
	p := openPage(t, browsertest.New(t), "alice")
	p.login(e.srv.URL, "alice")

	const hostile = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>`
	m1 := e.sms(aliceAPI, smsID, "SMi1", "+15551230101", "My order 4417 never arrived")
	m2 := e.sms(aliceAPI, smsID, "SMi2", "+15551230102", hostile)
	first := issueOfMessage(p, m1)
	second := issueOfMessage(p, m2)
	p.markNoReload()

	// From the feed: the chip's link opens the issue view.
	p.do("open the issue from its chip", chromedp.Click(chromedp.CSS(msgSel(m1)+" .issue-label")))
	p.waitIssue(first)
	p.check("three panels side by side at 1280 px", `(() => {
		const r = (id) => document.getElementById(id).getBoundingClientRect();
		const l = r('issue-list-panel'), c = r('conv-panel'), s = r('issue-side');
		return l.width > 200 && c.width > 300 && s.width > 200 && l.right <= c.left + 1 && c.right <= s.left + 1;
	})()`)
	p.check("the list with both issues, the conversation, the preview and the customer card", fmt.Sprintf(`
		document.querySelectorAll('#issue-list [data-issue-id]').length === 2
		&& document.querySelector('#issue-list [data-issue-id="%d"]').dataset.state === 'unassigned'
		&& %s
		&& document.getElementById('issue-status').textContent === 'Open · Unassigned'
		&& document.getElementById('issue-assignee').textContent === 'Nobody'
		&& document.querySelector('#customer-card .cust-name').textContent === '+15551230101'
		&& document.querySelector('#issue-side [data-action="take"]') !== null`, second, commentIs("customer", "My order 4417 never arrived")))
	p.screenshot("issue.png")
	p.check("a name for every visible control (label, aria-label or text)", `[...document.querySelectorAll('#app input, #app select, #app textarea, #app button, #app a[href]')]
		.filter((el) => el.offsetParent !== null)
		.every((el) => (el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || (el.labels && el.labels.length) || el.textContent.trim() || el.title))`)

	// The hostile customer's issue: text everywhere, nothing run.
	p.do("open the other issue from the list", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#issue-list [data-issue-id="%d"]`, second))))
	p.waitIssue(second)
	p.check("markup shown as text", commentIs("customer", hostile)+` && document.querySelector('#conversation img, #conversation script, #issue-list img') === null
		&& typeof window.__pwned === 'undefined'`)

	// The customer lightbox.
	p.do("view the customer", chromedp.Click(chromedp.CSS("#view-customer")))
	p.wait("the lightbox with contact and past issues", fmt.Sprintf(`(() => {
		const d = document.getElementById('customer-dialog');
		return !!d && d.open && document.getElementById('customer-name')?.textContent === '+15551230102'
			&& d.querySelector('.facts').textContent.includes('+15551230102')
			&& d.querySelector('.past-issues a[data-issue-id="%d"]') !== null
			&& document.getElementById('follow-customer').getAttribute('aria-pressed') === 'false';
	})()`, second))
	p.do("follow the customer", chromedp.Click(chromedp.CSS("#follow-customer")))
	p.wait("following", `document.getElementById('follow-customer').getAttribute('aria-pressed') === 'true'
		&& document.getElementById('follow-customer').textContent === 'Following'`)
	p.screenshot("customer.png")
	p.do("unfollow", chromedp.Click(chromedp.CSS("#follow-customer")))
	p.wait("not following", `document.getElementById('follow-customer').getAttribute('aria-pressed') === 'false'
		&& document.getElementById('follow-customer').textContent === 'Follow'`)
	p.do("close with Escape", press("\u001b"))
	p.wait("the lightbox gone and the focus back on View Customer", `document.getElementById('customer-dialog') === null
		&& document.activeElement === document.getElementById('view-customer')`)

	// Assign It: the first issue to bob, picked by name. Alice, an agent, then has no
	// action left on it, and may only write notes.
	p.do("back to the first issue", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#issue-list [data-issue-id="%d"]`, first))))
	p.waitIssue(first)
	p.do("Assign It", chromedp.Click(chromedp.CSS(`#issue-side [data-action="assign"]`)))
	p.wait("the people picker", `document.querySelector('dialog[open] input[type=search]') === document.activeElement`)
	p.do("pick bob", chromedp.SendKeys(chromedp.CSS(`dialog[open] input[type=search]`), "bo"), press("\r"))
	p.wait("assigned to bob, everywhere", fmt.Sprintf(`document.getElementById('issue-status').textContent === 'In progress · Assigned to Bob'
		&& document.querySelector('dialog[open]') === null
		&& document.querySelector('#issue-list [data-issue-id="%d"]').dataset.state === 'assigned'`, first))
	p.check("no actions offered to alice, replies closed to her", `document.querySelector('#issue-side [data-action]') === null
		&& document.getElementById('mode-reply').disabled && document.getElementById('mode-note').checked
		&& document.getElementById('issue-hint').textContent.startsWith('Only Bob')`)

	// The filters: unassigned only; then a search through the messages.
	list := `[...document.querySelectorAll('#issue-list [data-issue-id]')].map((a) => a.dataset.issueId).join()`
	p.do("show the unassigned", chromedp.SetValue(chromedp.CSS("#f-assignee"), "none"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('f-assignee').dispatchEvent(new Event('change', { bubbles: true }))`))
	p.wait("only the unassigned issue", fmt.Sprintf(`%s === '%d'`, list, second))
	p.do("anyone's, searching for 4417", chromedp.SetValue(chromedp.CSS("#f-assignee"), ""),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('f-assignee').dispatchEvent(new Event('change', { bubbles: true }))`),
		chromedp.SendKeys(chromedp.CSS("#f-q"), "4417"))
	p.wait("only the issue whose message says 4417", fmt.Sprintf(`%s === '%d' && document.getElementById('issue-count').textContent === '1 issue'`, list, first))
	p.checkNoReload()
}

// statusCallback posts a signed Twilio delivery report for the reply Twilio was asked to
// send in req, to the callback it was given.
func (e *env) statusCallback(req twRequest, sid, status string) {
	e.t.Helper()
	form := url.Values{"MessageSid": {sid}, "MessageStatus": {status}, "AccountSid": {"AC" + strings.Repeat("0", 32)},
		"From": {number}, "To": {req.Form.Get("To")}}
	if code := e.twilioPost(req.Form.Get("StatusCallback"), form); code != http.StatusNoContent {
		e.t.Fatalf("status callback: %d", code)
	}
}

// TestBrowserNoteStaysInternalAndReplyIsDelivered: alice and bob have the same issue open.
// Bob sees alice viewing it. Alice writes an internal note with an @-completed mention:
// both see it, yellow, and Twilio is asked to send nothing. Her reply goes to Twilio, takes
// the issue (bob may no longer reply) and shows its delivery status changing live in both
// views when Twilio reports it. When her view is stale (her connection down while the
// customer wrote), her next reply is held back by the collision guard and the new message
// is shown.
func TestBrowserNoteStaysInternalAndReplyIsDelivered(t *testing.T) {
	e, w, tw := startBrowserTwilio(t)
	aliceAPI := e.agent("alice", accounts.RoleAgent)
	e.agent("bob", accounts.RoleAgent)
	adminAPI := e.agent("root", accounts.RoleAdmin)
	if resp := e.do(adminAPI, "POST", "/api/teams", map[string]any{"name": "Billing"}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create team: %d %s", resp.StatusCode, body(resp))
	} else {
		resp.Body.Close()
	}
	aliceID := e.userID("alice")
	smsID := e.smsChannel()
	browser := browsertest.New(t)
	alice := openPage(t, browser, "alice")
	bob := openPage(t, browsertest.NewTab(t, browser), "bob")
	alice.login(e.srv.URL, "alice")
	bob.login(e.srv.URL, "bob")
	m := e.sms(aliceAPI, smsID, "SMn1", "+15551230301", "I was charged twice")
	issue := issueOfMessage(alice, m)
	alice.openIssue(issue)
	bob.openIssue(issue)
	alice.markNoReload()
	bob.markNoReload()
	bob.wait("alice shown viewing the issue", fmt.Sprintf(`document.querySelector('#issue-viewers [data-user-id="%d"]')?.textContent === 'Alice'`, aliceID))

	// An internal note, with the mention completed from "@bo".
	alice.do("switch to a note with n", press("n"))
	alice.wait("the note mode, the cursor in the composer", `document.getElementById('mode-note').checked
		&& document.activeElement === document.getElementById('issue-input')
		&& document.getElementById('issue-composer').dataset.mode === 'note'`)
	alice.do("type a mention", chromedp.SendKeys(chromedp.CSS("#issue-input"), "Refund done? @bo"))
	bob.wait("alice typing", fmt.Sprintf(`document.querySelector('#issue-viewers [data-user-id="%d"]')?.textContent === 'Alice is typing…'`, aliceID))
	alice.wait("bob offered", `!document.getElementById('mention-list').hidden
		&& document.querySelector('#mention-list [aria-selected="true"]')?.dataset.handle === 'bob'`)
	alice.do("pick bob and finish the note",
		press("\r"),
		chromedp.SendKeys(chromedp.CSS("#issue-input"), "please check"),
		chromedp.Click(chromedp.CSS("#issue-send")))
	const note = "Refund done? @bob please check"
	for _, p := range []*page{alice, bob} {
		p.wait("the note, yellow, the mention standing out", commentIs("note", note)+` && getComputedStyle(document.querySelector('#conversation [data-kind=note]')).backgroundColor === 'rgb(255, 246, 199)'
			&& document.querySelector('#conversation [data-kind=note] .mention')?.textContent === '@bob'`)
	}
	alice.check("the composer emptied", `document.getElementById('issue-input').value === ''`)
	// Teams complete too; Escape closes the list and leaves the text alone.
	alice.do("type a team mention", chromedp.SendKeys(chromedp.CSS("#issue-input"), "cc @bil"))
	alice.wait("the team offered", `document.querySelector('#mention-list [aria-selected="true"]')?.dataset.handle === 'billing'
		&& document.querySelector('#mention-list [aria-selected="true"]').textContent.includes('team · Billing')`)
	alice.do("Escape", press("\u001b"))
	alice.wait("the list closed, the text kept", `document.getElementById('mention-list').hidden
		&& document.getElementById('issue-input').value === 'cc @bil'
		&& document.getElementById('issue-input').getAttribute('aria-expanded') === 'false'`)
	alice.do("clear the composer", chromedp.Evaluate[chromedp.Void](`(() => {
		const i = document.getElementById('issue-input');
		i.value = '';
		i.dispatchEvent(new Event('input', { bubbles: true }));
	})()`))
	bob.wait("alice no longer typing", fmt.Sprintf(`document.querySelector('#issue-viewers [data-user-id="%d"]')?.dataset.typing === 'false'`, aliceID))

	// The reply: to Twilio, with its delivery status.
	alice.do("leave the composer and switch to a reply with e",
		chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`), press("e"))
	alice.wait("the reply mode", `document.getElementById('mode-reply').checked && document.activeElement === document.getElementById('issue-input')`)
	const reply = "Sorry about that, the refund is on its way."
	alice.do("reply", chromedp.SendKeys(chromedp.CSS("#issue-input"), reply), chromedp.Click(chromedp.CSS("#issue-send")))
	alice.wait("the reply shown", commentIs("reply", reply))
	eventually(t, "Twilio asked to send the reply", func() bool { return len(tw.requests()) == 1 })
	req := tw.requests()[0]
	if got := req.Form.Get("Body"); got != reply {
		t.Fatalf("Twilio was asked to send %q; want only the reply %q (never the note)", got, reply)
	}
	for _, p := range []*page{alice, bob} {
		p.wait("the reply with a delivery status", commentIs("reply", reply)+` && document.querySelector('#conversation [data-kind=reply] .delivery').dataset.delivery !== undefined`)
		p.wait("the issue taken by the reply", `document.getElementById('issue-status').textContent === 'In progress · Assigned to Alice'`)
	}
	bob.check("bob may no longer reply", `document.getElementById('mode-reply').disabled && document.getElementById('mode-note').checked`)
	e.statusCallback(req, "SM"+fmt.Sprintf("%032d", 1), "delivered")
	for _, p := range []*page{alice, bob} {
		p.wait("the reply delivered", `(() => { const d = document.querySelector('#conversation [data-kind=reply] .delivery');
			return d.dataset.delivery === 'delivered' && d.textContent === 'Delivered'; })()`)
	}
	if n := len(tw.requests()); n != 1 {
		t.Errorf("Twilio got %d requests; want 1 (the reply)", n)
	}
	for _, p := range []*page{alice, bob} {
		p.wait("the activity entry of the reply taking the issue", `[...document.querySelectorAll('#conversation .act[data-action=assigned] span')].some((s) => s.textContent === 'Alice took the issue by replying')`)
	}
	alice.screenshot("issue-conversation.png")

	// Collision: alice's connection is down while the customer writes again.
	w.holdUpgrades()
	w.cut()
	http.DefaultClient.CloseIdleConnections()
	alice.wait("the offline banner", `!document.getElementById('offline-banner').hidden`)
	e.sms(aliceAPI, smsID, "SMn2", "+15551230301", "Actually, cancel the order")
	alice.check("alice has not seen it", `!`+commentIs("customer", "Actually, cancel the order"))
	alice.do("reply on the stale view", chromedp.SendKeys(chromedp.CSS("#issue-input"), "Done!"), chromedp.Click(chromedp.CSS("#issue-send")))
	alice.wait("the collision shown, with the new message loaded", commentIs("customer", "Actually, cancel the order")+
		` && document.getElementById('issue-error').dataset.collision === 'true'
		&& document.getElementById('issue-input').value === 'Done!'`)
	if n := len(tw.requests()); n != 1 {
		t.Errorf("Twilio got %d requests; want still 1: the held-back reply is not sent", n)
	}
	w.release()
	alice.wait("back online", `document.getElementById('offline-banner').hidden`)
	alice.checkNoReload()
	bob.checkNoReload()
}

// TestBrowserFailedReplyIsSentAgain: a reply Twilio refuses shows as failed with Twilio's
// reason, and "Send again" sends it once more (here it goes through).
func TestBrowserFailedReplyIsSentAgain(t *testing.T) {
	e, _, tw := startBrowserTwilio(t)
	aliceAPI := e.agent("alice", accounts.RoleAgent)
	smsID := e.smsChannel()
	p := openPage(t, browsertest.New(t), "alice")
	p.login(e.srv.URL, "alice")
	tw.then(twReply{status: 400, body: `{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}`})
	m := e.sms(aliceAPI, smsID, "SMf1", "+15551230501", "Hello?")
	p.openIssue(issueOfMessage(p, m))

	const reply = "Hi! How can I help?"
	p.do("reply", chromedp.SendKeys(chromedp.CSS("#issue-input"), reply), chromedp.Click(chromedp.CSS("#issue-send")))
	p.wait("the reply failed, with the reason and a way to send it again", `(() => {
		const c = document.querySelector('#conversation [data-kind=reply]');
		return !!c && c.querySelector('.delivery').dataset.delivery === 'failed'
			&& c.querySelector('.delivery-reason')?.textContent.includes('not a valid phone number')
			&& c.querySelector('[data-delivery-action="retry"]') !== null;
	})()`)
	p.do("send it again", chromedp.Click(chromedp.CSS(`#conversation [data-delivery-action="retry"]`)))
	p.wait("sent again: no longer failed, no buttons", `(() => {
		const c = document.querySelector('#conversation [data-kind=reply]');
		return c.querySelector('.delivery').dataset.delivery !== 'failed' && c.querySelector('[data-delivery-action]') === null;
	})()`)
	eventually(t, "Twilio asked twice", func() bool { return len(tw.requests()) == 2 })
	if got := tw.requests()[1].Form.Get("Body"); got != reply {
		t.Errorf("the second request sent %q; want the reply %q", got, reply)
	}
}
