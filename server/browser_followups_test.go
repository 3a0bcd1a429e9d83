package server_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/browsertest"
)

// TestBrowserTrackerOneRequest: the tracker reads its issues and their SLA states in one
// request (GET /api/issues carries each issue's SLA summary), never one per issue.
func TestBrowserTrackerOneRequest(t *testing.T) {
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
	var ids []int64
	for i := range 5 {
		m := e.sms(aliceAPI, smsID, fmt.Sprintf("SMtr%d", i), fmt.Sprintf("+155512306%02d", i), fmt.Sprintf("Tracker %d", i))
		ids = append(ids, e.issueOf(aliceAPI, smsID, m))
	}
	// One issue met its first response: its summary moves on to the resolution clock.
	if resp := e.do(aliceAPI, "POST", fmt.Sprintf("/api/issues/%d/contacted", ids[0]), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("contacted: %d %s", resp.StatusCode, body(resp))
	} else {
		resp.Body.Close()
	}

	p := openPage(t, browsertest.New(t), "alice")
	p.do("a desktop window", chromedp.EmulateViewport(1280, 800))
	p.login(e.srv.URL, "alice")
	p.do("forget the requests so far", chromedp.Evaluate[chromedp.Void](`performance.setResourceTimingBufferSize(5000), performance.clearResourceTimings()`))
	p.do("open the tracker", chromedp.Click(chromedp.CSS(`#nav-links [data-route="tracker"]`)))
	p.wait("every issue with its SLA state and text", fmt.Sprintf(`(() => {
		const cell = (id) => document.querySelector('#tracker-view tr[data-issue-id="' + id + '"] .tr-sla');
		const ids = %s;
		return ids.every((id) => cell(id)?.dataset.sla === 'running')
			&& cell(ids[0]).textContent.endsWith('left: resolution')
			&& ids.slice(1).every((id) => cell(id).textContent.endsWith('left: first response'))
			&& document.querySelector('[data-count="active"] strong')?.textContent === '5';
	})()`, js(ids)))
	requests := evalJS[[]string](p, `performance.getEntriesByType('resource').map((r) => new URL(r.name).pathname + new URL(r.name).search)
		.filter((u) => u.startsWith('/api/issues'))`)
	lists, perIssue := 0, 0
	for _, u := range requests {
		switch {
		case len(u) >= len("/api/issues?") && u[:len("/api/issues?")] == "/api/issues?":
			lists++
		default:
			perIssue++
		}
	}
	if lists != 1 || perIssue != 0 {
		t.Errorf("the tracker asked %v; want one GET /api/issues and nothing per issue", requests)
	}
}

// TestBrowserToastsClearTheComposers: a notification pop-up never covers the channel
// composer or the issue composer (nor their Send buttons), at 1280 px and at phone width;
// at 1280 px it also leaves the channel header (Members) and the issue's details panel
// (its actions) clear.
func TestBrowserToastsClearTheComposers(t *testing.T) {
	e, _ := startBrowser(t)
	aliceAPI := e.agent("alice", accounts.RoleAgent)
	e.agent("bob", accounts.RoleAgent)
	bobID := e.userID("bob")
	smsID := e.smsChannel()
	var dm struct {
		Channel struct {
			ID int64 `json:"id"`
		} `json:"channel"`
	}
	e.slaMust(aliceAPI, "POST", "/api/direct", map[string]any{"user_id": bobID}, 200, &dm)
	var issues []int64
	for i := range 4 {
		m := e.sms(aliceAPI, smsID, fmt.Sprintf("SMtoast%d", i), fmt.Sprintf("+155512307%02d", i), fmt.Sprintf("Pop-up %d", i))
		issues = append(issues, e.issueOf(aliceAPI, smsID, m))
	}
	bob := openPage(t, browsertest.New(t), "bob")
	bob.do("a desktop window", chromedp.EmulateViewport(1280, 800))
	bob.login(e.srv.URL, "bob")

	// clear waits for the pop-up of a notification assigning issue to bob, then checks
	// that no pop-up overlaps any of the elements sel, which must be shown.
	clear := func(where string, issue int64, sel ...string) {
		t.Helper()
		e.assign(aliceAPI, issue, bobID)
		bob.wait("the pop-up "+where, fmt.Sprintf(`[...document.querySelectorAll('#toasts .toast')].some((t) => t.textContent.includes('#%d'))
			|| document.querySelectorAll('#toasts .toast').length === 3`, issue))
		bob.check(fmt.Sprintf("no pop-up over %v %s", sel, where), fmt.Sprintf(`(() => {
			const hit = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
			const rects = %s.map((s) => document.querySelector(s).getBoundingClientRect());
			const toasts = [...document.querySelectorAll('#toasts .toast')].map((t) => t.getBoundingClientRect());
			return rects.every((r) => r.width > 0 && r.bottom <= innerHeight) && toasts.length > 0 && toasts.every((t) => t.width > 0)
				&& toasts.every((t) => rects.every((r) => !hit(t, r)));
		})()`, js(sel)))
	}
	open := func(hash, ready string) {
		t.Helper()
		bob.do("go to "+hash, chromedp.Evaluate[chromedp.Void](`location.hash = `+js(hash)))
		bob.wait(hash+" open", ready)
	}
	dmOpen := `document.getElementById('channel-title').textContent === 'Alice' && !document.getElementById('composer').hidden`
	issueOpen := func(id int64) string {
		return fmt.Sprintf(`document.getElementById('issue-view').dataset.open !== undefined && location.hash === '#/issues/%d'
			&& document.getElementById('issue-send').getBoundingClientRect().width > 0`, id)
	}

	open(fmt.Sprintf("#/channels/%d", dm.Channel.ID), dmOpen)
	clear("in a direct message at 1280 px", issues[0], "#composer", "#composer-send", ".channel-header")
	open(fmt.Sprintf("#/issues/%d", issues[1]), issueOpen(issues[1]))
	clear("in the issue view at 1280 px", issues[1], "#issue-composer", "#issue-send", "#issue-side")

	bob.do("a phone-sized window", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	open(fmt.Sprintf("#/channels/%d", dm.Channel.ID), dmOpen)
	clear("in a direct message on a phone", issues[2], "#composer", "#composer-send")
	open(fmt.Sprintf("#/issues/%d", issues[3]), issueOpen(issues[3]))
	clear("in the issue view on a phone", issues[3], "#issue-composer", "#issue-send")
	bob.check("the pop-ups inside the window", `[...document.querySelectorAll('#toasts .toast')].every((t) => {
		const r = t.getBoundingClientRect();
		return r.left >= 0 && r.right <= innerWidth && r.top >= 0;
	})`)
}
