package server_test

// Browser tests of the election of the one tab that plays notification sounds when the
// browser has no Web Locks (frontend/static/sound-leader.js): over plain http on a LAN
// address the page is not a secure context, so navigator.locks is missing. The tabs here
// are on 127.0.0.1, a secure context, so the test takes Web Locks (and, for the last
// fallback, BroadcastChannel) away before the app's scripts run.

import (
	"context"
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/browsertest"
)

// TestBrowserSoundWithoutWebLocks: Bob has two tabs open with sound enabled, in a browser
// without Web Locks. One tab leads and a notification plays one sound between them; the
// played notification is remembered for every tab, so a handover cannot play it again.
// When the leading tab closes, the other takes over and plays the next one, once.
func TestBrowserSoundWithoutWebLocks(t *testing.T) {
	tests := []struct {
		name     string
		remove   string // run in every tab before the app's scripts
		election string // what window.__switchboardSound.election must say
	}{
		{"broadcast channel heartbeat", `delete Navigator.prototype.locks;`, "broadcast"},
		{"local storage lease", `delete Navigator.prototype.locks; delete window.BroadcastChannel;`, "lease"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := startBrowser(t)
			aliceAPI := e.agent("alice", accounts.RoleAgent)
			bobAPI := e.agent("bob", accounts.RoleAgent)
			bobID := e.userID("bob")
			smsID := e.smsChannel()
			resp := e.do(bobAPI, "PUT", "/api/preferences", map[string]any{"events": map[string]any{"assigned": map[string]any{"sound": "chime"}}})
			if b := body(resp); resp.StatusCode != 200 {
				t.Fatalf("PUT /api/preferences: %d %s", resp.StatusCode, b)
			}

			// Bob signs in in the browser's first tab, then works in two more, which can be
			// closed on their own (as in TestBrowserMarkAllReadInTwoTabs).
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
				p.do("take the APIs away in every document", beforeScripts(tt.remove))
				p.do("open the app", chromedp.Navigate(e.srv.URL))
				p.waitSignedIn()
				p.check("no Web Locks, and the fallback election in use", fmt.Sprintf(
					`navigator.locks === undefined && window.__switchboardSound.election === %s`, js(tt.election)))
				p.markNoReload()
				tabs = append(tabs, p)
				closers[p] = closeTab
			}
			tab1, tab2 := tabs[0], tabs[1]

			// Sound on: a click in each tab, the gesture browsers need to start audio.
			tab1.do("enable sound", chromedp.Click(chromedp.CSS("#bell")), chromedp.Click(chromedp.CSS("#notify-sound")), chromedp.KeyEvent("\u001b"))
			tab2.do("click in the second tab", chromedp.Click(chromedp.CSS("#bell")), chromedp.KeyEvent("\u001b"))
			for _, p := range tabs {
				p.wait("the audio running", `window.__switchboardSound.state === 'running'`)
			}
			leaders := func() (n int, leader, other *page) {
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

			m := e.sms(aliceAPI, smsID, "SMs1", "+15551230601", "Is anyone there?")
			e.assign(aliceAPI, e.issueOf(aliceAPI, smsID, m), bobID)
			// notify.js counts the badge and decides on the sound in one go: once both
			// badges show it, both tabs have had their say.
			for _, p := range tabs {
				p.wait("the badge at 1", bellIs("1"))
			}
			leader.wait("the chime in the leading tab", `window.__switchboardSound.played === 1 && window.__switchboardSound.last === 'chime'`)
			if sum := played(tab1) + played(tab2); sum != 1 {
				t.Fatalf("the tabs played %d sounds between them; want 1 (tab 1: %d, tab 2: %d)", sum, played(tab1), played(tab2))
			}

			// What the leader played, the other tab knows: were it to lead now and hear the
			// same notification, it would stay silent. A key nobody played is still free.
			var latest struct {
				Notifications []struct {
					ID int64 `json:"id"`
				} `json:"notifications"`
			}
			e.getJSON(bobAPI, "/api/notifications?limit=1", &latest)
			if len(latest.Notifications) != 1 {
				t.Fatalf("GET /api/notifications: %+v; want the new notification", latest)
			}
			firstPlay := func(p *page, key string) bool {
				t.Helper()
				ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
				defer cancel()
				v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
					fmt.Sprintf(`import('/assets/sound-leader.js').then((m) => m.firstPlay(%s))`, js(key)), chromedp.EvalAwaitPromise))
				if err != nil {
					t.Fatalf("%s: firstPlay(%q): %v", p.name, key, err)
				}
				return v
			}
			if firstPlay(other, fmt.Sprintf("n%d", latest.Notifications[0].ID)) {
				t.Fatalf("the other tab could play notification %d again", latest.Notifications[0].ID)
			}
			if !firstPlay(other, "n-test-unplayed") {
				t.Fatal("a notification nobody played counts as played")
			}

			// The leader goes; the other tab takes over and plays the next one, once.
			closers[leader]()
			other.wait("the other tab leading", `window.__switchboardSound.leader === true`)
			m = e.sms(aliceAPI, smsID, "SMs2", "+15551230602", "Hello again")
			e.assign(aliceAPI, e.issueOf(aliceAPI, smsID, m), bobID)
			other.wait("the badge at 2", bellIs("2"))
			other.wait("its chime", `window.__switchboardSound.played === 1 && window.__switchboardSound.last === 'chime'`)
			other.checkNoReload()
		})
	}
}

// beforeScripts runs source in every document the tab loads from now on, before the
// page's own scripts (Page.addScriptToEvaluateOnNewDocument, called by name: the
// module's go.mod reaches cdproto only through chromedp).
func beforeScripts(source string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		return t.Call(ctx, "Page.addScriptToEvaluateOnNewDocument", map[string]any{"source": source}, nil)
	})
}
