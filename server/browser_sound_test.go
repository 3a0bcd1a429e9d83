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
// without Web Locks. One tab leads, and a notification plays one sound between them; what
// played is remembered where the other tab looks. A leader that falls silent without a
// word is replaced after a few seconds, and the two settle on one leader once it speaks
// again. A leader that freezes hands the lead on; woken, it plays nothing the other
// played. A leader that closes hands it on too, and the other plays the next one, once.
func TestBrowserSoundWithoutWebLocks(t *testing.T) {
	tests := []struct {
		name     string
		remove   string // run in every tab before the app's scripts
		election string // what window.__switchboardSound.election must say
		mute     string // the method whose calls carry the leader's word to the other tabs
	}{
		{"broadcast channel heartbeat", `delete Navigator.prototype.locks;`, "broadcast", "BroadcastChannel.prototype.postMessage"},
		{"local storage lease", `delete Navigator.prototype.locks; delete window.BroadcastChannel;`, "lease", "Storage.prototype.setItem"},
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
			notify := func(n int) {
				m := e.sms(aliceAPI, smsID, fmt.Sprintf("SMs%d", n), fmt.Sprintf("+155512306%02d", n), fmt.Sprintf("Question %d", n))
				e.assign(aliceAPI, e.issueOf(aliceAPI, smsID, m), bobID)
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

			notify(1)
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
			// same notification late (a reconnect replays what it missed), it would stay
			// silent. A notification nobody played is still free.
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

			// The leader falls silent without resigning (its word no longer reaches the other
			// tab, as when it hangs): the other takes over. When it speaks again, one leads.
			evalJS[chromedp.Void](leader, fmt.Sprintf(`(() => { const orig = %[1]s; %[1]s = function () {}; window.__unmute = () => { %[1]s = orig; }; })()`, tt.mute))
			other.wait("the other tab leading after the silence", `window.__switchboardSound.leader === true`)
			evalJS[chromedp.Void](leader, `window.__unmute()`)
			eventually(t, "one leading tab again", func() bool { n, _, _ := leaders(); return n == 1 })
			_, leader, other = leaders()

			// The leader freezes (browsers freeze tabs in the background): it hands the lead
			// on, and the other tab plays the next notification. Woken, the frozen tab
			// catches up without a sound, and one tab leads.
			before, otherBefore := played(leader)+played(other), played(other)
			leader.do("freeze the leading tab", lifecycle("frozen"))
			other.wait("the other tab leading", `window.__switchboardSound.leader === true`)
			notify(2)
			other.wait("the badge at 2 and the chime", bellIs("2")+fmt.Sprintf(` && window.__switchboardSound.played === %d`, otherBefore+1))
			leader.do("wake the frozen tab", lifecycle("active"))
			leader.wait("the badge at 2", bellIs("2"))
			if sum := played(leader) + played(other); sum != before+1 {
				t.Fatalf("the tabs played %d sounds for the second notification; want 1", sum-before)
			}
			eventually(t, "one leading tab again", func() bool { n, _, _ := leaders(); return n == 1 })
			_, leader, other = leaders()

			// The leader closes, resigning as it goes; the other tab takes over and plays the
			// next one, once.
			before = played(other)
			closers[leader]()
			other.wait("the other tab leading", `window.__switchboardSound.leader === true`)
			notify(3)
			other.wait("the badge at 3", bellIs("3"))
			other.wait("its chime", fmt.Sprintf(`window.__switchboardSound.played === %d && window.__switchboardSound.last === 'chime'`, before+1))
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

// lifecycle freezes a tab ("frozen": no timers, no events, nothing received is handled)
// or wakes it ("active"), as browsers do with tabs in the background.
func lifecycle(state string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		return t.Call(ctx, "Page.setWebLifecycleState", map[string]any{"state": state}, nil)
	})
}
