package server_test

// Browser tests of the issue view (#/issues/ID: list, conversation, details), the
// customer lightbox, notes and replies, keyboard shortcuts and the tracker. Helpers are in
// browser_test.go; nothing sleeps.

import (
	"fmt"
	"strconv"
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
	p.do("close with Escape", chromedp.KeyEvent("\u001b"))
	p.wait("the lightbox gone and the focus back on View Customer", `document.getElementById('customer-dialog') === null
		&& document.activeElement === document.getElementById('view-customer')`)
	p.checkNoReload()
}
