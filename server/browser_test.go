package server_test

// End-to-end tests of the embedded web app in a real headless Chromium (see
// internal/browsertest), against a whole server on SQLite: the API tests already run
// both engines. Nothing here sleeps: every wait polls a condition until a deadline.
//
// SWITCHBOARD_SCREENSHOTS=1 also saves docs/screenshots/login.png and feed.png.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/channels/sms"
	"github.com/switchboard-hq/switchboard/internal/browsertest"
	"github.com/switchboard-hq/switchboard/internal/outbox"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/server"
	"github.com/switchboard-hq/switchboard/store"
)

const (
	// browserToken is the Twilio auth token of the browser tests' number: alphanumeric, as
	// Twilio's are, since the client that sends replies refuses anything else.
	browserToken = "br0wser70ken0br0wser70ken0br0ws3"
	// stepTimeout bounds one browser step or one wait.
	stepTimeout = 20 * time.Second
	// pollEvery is how often a wait looks again. Polling on a timer rather than on
	// animation frames keeps working in a tab the browser considers hidden.
	pollEvery = 25 * time.Millisecond
)

// ---- The server and the network between it and the browser ----------------------------

// wire sits between the browser and a browser test's server. It tracks every connection
// the server accepted, so that a test can cut them all, WebSockets included: httptest's
// CloseClientConnections forgets a connection once it is hijacked, so it never closes a
// live feed. It can also hold WebSocket upgrades, so that a test can act at a known point
// while the browser is reconnecting.
type wire struct {
	mu    sync.Mutex
	conns map[*trackedConn]struct{} // guarded by mu
	hold  chan struct{}             // guarded by mu; non-nil: /ws requests wait until it closes
	held  chan string               // the query of each held /ws request (buffered, lossy)
}

func newWire() *wire {
	return &wire{conns: make(map[*trackedConn]struct{}), held: make(chan string, 16)}
}

// cut closes every connection the server has, as a network failure or a proxy restart would.
func (w *wire) cut() {
	w.mu.Lock()
	conns := make([]*trackedConn, 0, len(w.conns))
	for c := range w.conns {
		conns = append(conns, c)
	}
	w.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// holdUpgrades makes /ws requests wait until release.
func (w *wire) holdUpgrades() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.hold == nil {
		w.hold = make(chan struct{})
	}
}

// release lets held and later /ws requests through.
func (w *wire) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.hold != nil {
		close(w.hold)
		w.hold = nil
	}
}

func (w *wire) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			w.mu.Lock()
			hold := w.hold
			w.mu.Unlock()
			if hold != nil {
				select {
				case w.held <- r.URL.RawQuery:
				default:
				}
				select {
				case <-hold:
				case <-r.Context().Done():
					return
				}
			}
		}
		next.ServeHTTP(rw, r)
	})
}

type trackingListener struct {
	net.Listener
	w *wire
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, w: l.w}
	l.w.mu.Lock()
	l.w.conns[tc] = struct{}{}
	l.w.mu.Unlock()
	return tc, nil
}

type trackedConn struct {
	net.Conn
	w *wire
}

func (c *trackedConn) Close() error {
	c.w.mu.Lock()
	delete(c.w.conns, c)
	c.w.mu.Unlock()
	return c.Conn.Close()
}

// startBrowser is start on SQLite, with the server behind a wire.
func startBrowser(t *testing.T) (*env, *wire) {
	t.Helper()
	e, w, _ := startBrowserTwilio(t)
	return e, w
}

// startBrowserTwilio is startBrowser with replies sent: the outbox worker runs and Twilio's
// API is a local fake that records what it was asked to send.
func startBrowserTwilio(t *testing.T) (*env, *wire, *fakeTwilio) {
	t.Helper()
	w := newWire()
	tw := newFakeTwilio(t)
	srv := httptest.NewUnstartedServer(nil)
	srv.Listener = &trackingListener{Listener: srv.Listener, w: w}
	public, _ := url.Parse("http://" + srv.Listener.Addr().String())
	s, err := server.New(context.Background(), server.Config{
		DatabaseURL: storetest.URL(t, store.SQLite),
		PublicURL:   public,
		Twilio: &server.Twilio{AccountSID: "AC" + strings.Repeat("0", 32), AuthToken: browserToken, PhoneNumber: number,
			APIURL: tw.srv.URL},
		Outbox: outbox.Config{SendTimeout: 5 * time.Second, Poll: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = w.handler(s.Handler())
	srv.Start()
	ctx, stop := context.WithCancel(context.Background())
	worker := make(chan struct{})
	go func() {
		defer close(worker)
		s.Outbox.Run(ctx)
	}()
	t.Cleanup(func() {
		stop()
		<-worker
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Hub.Shutdown(ctx)
		s.Close()
	})
	t.Cleanup(w.release) // runs first: a held upgrade would keep srv.Close waiting
	return &env{t: t, s: s, srv: srv}, w, tw
}

// userID is the id of the user that agent(handle) created.
func (e *env) userID(handle string) int64 {
	e.t.Helper()
	u, err := e.s.Accounts.UserByHandle(context.Background(), handle)
	if err != nil {
		e.t.Fatal(err)
	}
	return u.ID
}

// smsChannel is the id of the Twilio number's channel.
func (e *env) smsChannel() int64 {
	e.t.Helper()
	ch, err := e.s.Channels.ByAddress(context.Background(), channels.SMS, number)
	if err != nil {
		e.t.Fatal(err)
	}
	return ch.ID
}

// sms posts a signed inbound SMS and returns the id of the feed message it made.
func (e *env) sms(c *http.Client, channelID int64, sid, from, text string) int64 {
	e.t.Helper()
	if status := e.twilioPost(sms.InboundPath, smsForm(sid, from, text)); status != 200 {
		e.t.Fatalf("webhook %s: %d", sid, status)
	}
	var page struct {
		Messages []struct {
			ID   int64  `json:"id"`
			Body string `json:"body"`
		} `json:"messages"`
	}
	e.getJSON(c, fmt.Sprintf("/api/channels/%d/messages", channelID), &page)
	if n := len(page.Messages); n == 0 || page.Messages[n-1].Body != text {
		e.t.Fatalf("the feed's last message is not %q: %+v", text, page.Messages)
	}
	return page.Messages[len(page.Messages)-1].ID
}

// twilioPost posts a form to a Twilio webhook path (or URL) of a browser test's server,
// signed as Twilio signs it, and returns the status.
func (e *env) twilioPost(path string, form url.Values) int {
	e.t.Helper()
	target := path
	if strings.HasPrefix(path, "/") {
		target = e.srv.URL + path
	}
	req, _ := http.NewRequest("POST", target, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sms.Sign(browserToken, target, form))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// eventually polls ok until it holds, failing the test after a deadline.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(stepTimeout)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// ---- A browser tab ----------------------------------------------------------------------

// page is one tab, logged in (or not) as one person.
type page struct {
	t    *testing.T
	ctx  context.Context
	name string

	mu      sync.Mutex
	console []chromedp.ConsoleMessage // guarded by mu
}

// openPage records the console of the tab ctx; the test fails if the page throws.
func openPage(t *testing.T, ctx context.Context, name string) *page {
	t.Helper()
	p := &page{t: t, ctx: ctx, name: name}
	msgs := chromedp.Console(ctx) // subscribes now, before anything runs
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.console = append(p.console, m)
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, m := range p.console {
			if m.IsException() {
				t.Errorf("%s's page threw: %s", p.name, m)
			}
		}
	})
	return p
}

// js is v as a JavaScript literal.
func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// state describes what the page shows, for failure messages.
func (p *page) state() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const text = (id) => { const el = document.getElementById(id); return el ? el.innerText.trim().slice(0, 1500) : '(none)'; };
		const banner = document.getElementById('offline-banner');
		return [
			'url: ' + location.href,
			'title: ' + document.title,
			'screens: boot=' + !document.getElementById('boot').hidden + ' login=' + !document.getElementById('login-screen').hidden + ' app=' + !document.getElementById('app').hidden,
			'login error: ' + text('login-error'),
			'app error: ' + text('app-error'),
			'offline banner: ' + (banner.hidden ? 'hidden' : 'shown: ' + banner.textContent),
			'channels:\n' + text('channel-list'),
			'messages:\n' + text('messages'),
			'issue view: ' + (document.getElementById('issue-view').hidden ? 'hidden' : 'shown'),
			'conversation:\n' + text('conversation'),
			'issue errors: ' + text('conv-error') + ' | ' + text('issue-error') + ' | ' + text('action-error'),
			'composer: ' + JSON.stringify(document.getElementById('issue-input').value),
		].join('\n');
	})()`))
	if err != nil {
		s = "(page state unavailable: " + err.Error() + ")"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	b.WriteString(s)
	b.WriteString("\nconsole:")
	for _, m := range p.console[max(0, len(p.console)-20):] {
		b.WriteString("\n  " + m.String())
	}
	return b.String()
}

// do runs browser actions within stepTimeout.
func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %s: %v\n%s", p.name, what, err, p.state())
	}
}

// wait polls the JavaScript expression cond until it is true.
func (p *page) wait(what, cond string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => { try { return (`+cond+`) === true; } catch (e) { return false; } })()`,
		chromedp.WithPollingInterval(pollEvery), chromedp.WithPollingTimeout(stepTimeout)))
	if err != nil {
		p.t.Fatalf("%s: waiting for %s: %v\n%s", p.name, what, err, p.state())
	}
}

// check fails the test unless the JavaScript expression cond is true now.
func (p *page) check(what, cond string) {
	p.t.Helper()
	if !evalJS[bool](p, `(`+cond+`) === true`) {
		p.t.Fatalf("%s: want %s\n%s", p.name, what, p.state())
	}
}

// evalJS evaluates a JavaScript expression in p.
func evalJS[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("%s: evaluate %s: %v\n%s", p.name, expr, err, p.state())
	}
	return v
}

// login signs in through the login form and waits for the channel list.
func (p *page) login(base, handle string) {
	p.t.Helper()
	p.do("open the login page", chromedp.Navigate(base), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	p.do("sign in",
		chromedp.SendKeys(chromedp.CSS("#email"), handle+"@example.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), "password-"+handle),
		chromedp.Click(chromedp.CSS("#login-submit")),
	)
	p.waitSignedIn()
}

// waitSignedIn waits for the app with its channel list and the open channel's first page.
func (p *page) waitSignedIn() {
	p.t.Helper()
	p.wait("the app with its channel list and a loaded feed", `!document.getElementById('app').hidden
		&& document.getElementById('login-screen').hidden
		&& document.querySelector('#channel-list [data-channel-id][aria-current="page"]') !== null
		&& document.getElementById('feed-status').textContent === ''
		&& document.querySelector('#messages > *') !== null`)
}

// press types keys as a keyboard does: for each, a keyDown that carries the character,
// then a keyUp. A handler that prevents the keydown's default then also stops the
// character, as with a real keyboard; chromedp.KeyEvent sends the character as a separate
// event that nothing on the page can cancel (a shortcut that moves the focus into a field
// would find its own key typed there).
func press(keys string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, r := range keys {
			evs := kb.Encode(r)
			for _, ev := range evs {
				if ev.Type == kb.KeyChar {
					evs[0].Text, evs[0].UnmodifiedText = ev.Text, ev.UnmodifiedText
				}
			}
			for _, ev := range evs {
				if ev.Type == kb.KeyChar {
					continue
				}
				if err := t.Call(ctx, "Input.dispatchKeyEvent", ev, nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// markNoReload leaves a value in the page's globals; checkNoReload finds it only when the
// page has not been reloaded since.
func (p *page) markNoReload() {
	p.t.Helper()
	evalJS[chromedp.Void](p, `window.__switchboardTestMark = 'no reload'`)
}

func (p *page) checkNoReload() {
	p.t.Helper()
	p.check("the same page, never reloaded", `window.__switchboardTestMark === 'no reload'`)
}

// screenshot saves the page as docs/screenshots/NAME when SWITCHBOARD_SCREENSHOTS=1.
func (p *page) screenshot(name string) {
	p.t.Helper()
	if os.Getenv("SWITCHBOARD_SCREENSHOTS") != "1" {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("saved %s", filepath.Join(dir, name))
}

// ---- Selectors and conditions -------------------------------------------------------------

func msgSel(id int64) string { return fmt.Sprintf(`#messages [data-message-id="%d"]`, id) }

func chanSel(id int64) string { return fmt.Sprintf(`#channel-list [data-channel-id="%d"]`, id) }

// shows is true when message id is in the feed with exactly text as its body.
func shows(id int64, text string) string {
	return fmt.Sprintf(`document.querySelector(%s)?.textContent === %s`, js(msgSel(id)+" .msg-body"), js(text))
}

// chipIs is true when message id's issue chip has the given status, colour state and label text.
func chipIs(id int64, status, state, label string) string {
	return fmt.Sprintf(`(() => {
		const chip = document.querySelector(%s);
		return !!chip && chip.dataset.status === %s && chip.dataset.state === %s
			&& chip.querySelector('.issue-label').textContent.includes(%s);
	})()`, js(msgSel(id)+" .issue-chip"), js(status), js(state), js(label))
}

// badgeIs is true when the channel's unread badge shows text ("" for hidden).
func badgeIs(channelID int64, text string) string {
	if text == "" {
		return fmt.Sprintf(`document.querySelector(%s).hidden === true`, js(chanSel(channelID)+" .badge"))
	}
	return fmt.Sprintf(`(() => { const b = document.querySelector(%s); return !b.hidden && b.textContent === %s; })()`,
		js(chanSel(channelID)+" .badge"), js(text))
}

// ---- The tests ------------------------------------------------------------------------------

// TestBrowserLoginAndLiveFeed: the login page, a refused and an accepted login, a webhook
// message arriving live in the open feed (and read at once), unread badges counting what
// arrives in another channel, and the "New messages" line on coming back.
func TestBrowserLoginAndLiveFeed(t *testing.T) {
	e, _ := startBrowser(t)
	ctx := context.Background()
	aliceAPI := e.agent("alice", accounts.RoleAgent)
	aliceID := e.userID("alice")
	smsID := e.smsChannel()
	team, err := e.s.Channels.CreateTeam(ctx, "general", []int64{aliceID})
	if err != nil {
		t.Fatal(err)
	}
	p := openPage(t, browsertest.New(t), "alice")

	// Signed out: the login form, and nothing else.
	p.do("open the app", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(e.srv.URL),
		chromedp.WaitVisible(chromedp.CSS("#login-form")))
	p.check("only the login screen", `document.getElementById('app').hidden && document.getElementById('boot').hidden
		&& document.getElementById('login-error').textContent === ''`)
	p.screenshot("login.png")

	// A wrong password: the server's refusal in #login-error, still signed out.
	p.do("sign in with a wrong password",
		chromedp.SendKeys(chromedp.CSS("#email"), "alice@example.com"),
		chromedp.SendKeys(chromedp.CSS("#password"), "not-her-password"),
		chromedp.Click(chromedp.CSS("#login-submit")),
	)
	p.wait("the refusal", `document.getElementById('login-error').textContent.toLowerCase() === 'wrong email or password'
		&& !document.getElementById('login-submit').disabled`)
	p.check("still signed out", `document.getElementById('app').hidden && !document.getElementById('login-screen').hidden`)

	// The right one: the app, with both channels, the SMS channel open.
	p.do("sign in with the right password",
		chromedp.Clear(chromedp.CSS("#password")),
		chromedp.SendKeys(chromedp.CSS("#password"), "password-alice"),
		chromedp.Click(chromedp.CSS("#login-submit")),
	)
	p.waitSignedIn()
	p.check("the SMS and team channels, the SMS one open and empty", fmt.Sprintf(`
		document.querySelector(%s)?.dataset.kind === 'sms'
		&& document.querySelector(%s)?.getAttribute('aria-current') === 'page'
		&& location.hash === %s
		&& document.querySelector(%s)?.dataset.kind === 'team'
		&& document.querySelector('#messages .feed-empty') !== null
		&& document.getElementById('me-name').textContent === 'Alice'`,
		js(chanSel(smsID)), js(chanSel(smsID)), js(fmt.Sprintf("#/channels/%d", smsID)), js(chanSel(team.ID))))
	p.markNoReload()

	// A customer texts: the message shows up live in the open feed as a new, unassigned
	// issue. The feed is open and at the bottom, so it is read at once: no badge, and the
	// read marker moves on the server.
	const customer = "+15551230001"
	m1 := e.sms(aliceAPI, smsID, "SMb1", customer, "Hi, my parcel never arrived")
	p.wait("the first message, live", shows(m1, "Hi, my parcel never arrived")+" && "+chipIs(m1, "open", "unassigned", "Unassigned"))
	eventually(t, "alice's read marker on message 1", func() bool {
		n, err := e.s.Channels.LastRead(ctx, aliceID, smsID)
		return err == nil && n == 1
	})
	// Let the browser have the answer to its read request too, before the next messages:
	// an answer that lands after them would reset the badge to the count it carries,
	// which the server took before they existed.
	p.wait("the answer to the read request", fmt.Sprintf(
		`performance.getEntriesByType('resource').filter((r) => r.name.endsWith(%s)).length === 1`,
		js(fmt.Sprintf("/api/channels/%d/read", smsID))))
	p.check("no unread badge on the open, read channel", badgeIs(smsID, ""))

	// With the team channel open, the SMS channel counts what arrives.
	p.do("open the team channel", chromedp.Click(chromedp.CSS(chanSel(team.ID))))
	p.wait("the team channel", fmt.Sprintf(`document.getElementById('channel-title').textContent === '# general'
		&& document.querySelector(%s).getAttribute('aria-current') === 'page'
		&& document.querySelector('#messages .feed-empty') !== null`, js(chanSel(team.ID))))
	m2 := e.sms(aliceAPI, smsID, "SMb2", customer, "It was due on Monday")
	p.wait("a badge of 1 on the SMS channel", badgeIs(smsID, "1"))
	m3 := e.sms(aliceAPI, smsID, "SMb3", customer, "Order 4417")
	p.wait("a badge of 2 on the SMS channel", badgeIs(smsID, "2")+` && document.title === '(2) general · Switchboard'`)
	p.check("the team feed without the SMS messages", `document.querySelector('#messages [data-message-id]') === null`)

	// Back in the SMS channel: the two new messages below the "New messages" line, then
	// read (the badge goes, the marker moves on).
	p.do("open the SMS channel", chromedp.Click(chromedp.CSS(chanSel(smsID))))
	p.wait("the SMS feed with the new messages", shows(m1, "Hi, my parcel never arrived")+" && "+
		shows(m2, "It was due on Monday")+" && "+shows(m3, "Order 4417")+" && "+chipIs(m3, "open", "unassigned", "Unassigned"))
	p.check("the New messages line right above the second message, and only there", fmt.Sprintf(`
		document.querySelectorAll('#messages .new-messages-divider').length === 1
		&& document.querySelector(%s).previousElementSibling.classList.contains('new-messages-divider')`, js(msgSel(m2))))
	p.wait("the badge cleared", badgeIs(smsID, "")+` && document.title === document.getElementById('channel-title').textContent + ' · Switchboard'`)
	eventually(t, "alice's read marker on message 3", func() bool {
		n, err := e.s.Channels.LastRead(ctx, aliceID, smsID)
		return err == nil && n == 3
	})

	// Issue colours follow actions live: alice takes the first customer's issue (blue, with
	// her name) and resolves a second customer's (green, with who resolved it); a third
	// customer's new issue is red.
	issue1 := evalJS[string](p, fmt.Sprintf(`document.querySelector(%s).dataset.issueId`, js(msgSel(m1)+" .issue-chip")))
	m4 := e.sms(aliceAPI, smsID, "SMb4", "+15551230005", "Thanks, all sorted!")
	p.wait("the second customer's message", shows(m4, "Thanks, all sorted!"))
	issue2 := evalJS[string](p, fmt.Sprintf(`document.querySelector(%s).dataset.issueId`, js(msgSel(m4)+" .issue-chip")))
	if issue2 == issue1 {
		t.Fatalf("two customers share issue %s", issue1)
	}
	for _, action := range []string{"/api/issues/" + issue1 + "/take", "/api/issues/" + issue2 + "/resolve"} {
		if resp := e.do(aliceAPI, "POST", action, map[string]any{}); resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d %s", action, resp.StatusCode, body(resp))
		} else {
			resp.Body.Close()
		}
	}
	m5 := e.sms(aliceAPI, smsID, "SMb5", "+15551230006", "Do you ship to Canada?")
	p.wait("the chips coloured by state", chipIs(m1, "in_progress", "assigned", "Assigned to Alice")+" && "+
		chipIs(m3, "in_progress", "assigned", "Assigned to Alice")+" && "+
		chipIs(m4, "resolved", "resolved", "Resolved by Alice")+" && "+
		chipIs(m5, "open", "unassigned", "Unassigned"))
	eventually(t, "alice's read marker on message 5", func() bool {
		n, err := e.s.Channels.LastRead(ctx, aliceID, smsID)
		return err == nil && n == 5
	})
	p.wait("no badge on the open channel once read", badgeIs(smsID, ""))
	p.checkNoReload()
	p.screenshot("feed.png")
}

// TestBrowserTakeShowsInOtherAgentsFeed: two agents in two browser contexts see the same
// webhook message, alice in the open SMS feed and bob as an unread badge on it; when alice
// takes the issue, bob's chip turns to "Assigned to Alice" without a reload and no longer
// offers Take It. A Take It that bob clicks on a stale chip (his live connection was
// down when alice took the issue) shows the server's refusal on the chip.
func TestBrowserTakeShowsInOtherAgentsFeed(t *testing.T) {
	e, w := startBrowser(t)
	ctx := context.Background()
	aliceAPI := e.agent("alice", accounts.RoleAgent)
	e.agent("bob", accounts.RoleAgent)
	smsID := e.smsChannel()
	team, err := e.s.Channels.CreateTeam(ctx, "general", []int64{e.userID("alice"), e.userID("bob")})
	if err != nil {
		t.Fatal(err)
	}
	browser := browsertest.New(t)
	alice := openPage(t, browser, "alice")
	bob := openPage(t, browsertest.NewTab(t, browser), "bob")
	alice.login(e.srv.URL, "alice")
	bob.login(e.srv.URL, "bob")
	bob.do("open the team channel", chromedp.Click(chromedp.CSS(chanSel(team.ID))))
	bob.wait("the team channel", `document.getElementById('channel-title').textContent === '# general'`)
	alice.markNoReload()
	bob.markNoReload()

	m := e.sms(aliceAPI, smsID, "SMt1", "+15551230002", "Can someone call me back?")
	alice.wait("the message, unassigned", shows(m, "Can someone call me back?")+" && "+chipIs(m, "open", "unassigned", "Unassigned"))
	bob.wait("an unread badge on the SMS channel", badgeIs(smsID, "1"))
	bob.do("open the SMS channel", chromedp.Click(chromedp.CSS(chanSel(smsID))))
	bob.wait("the message, unassigned, with Take It", shows(m, "Can someone call me back?")+" && "+chipIs(m, "open", "unassigned", "Unassigned")+
		fmt.Sprintf(` && !document.querySelector(%s).hidden`, js(msgSel(m)+` [data-action="take"]`)))
	bob.wait("the badge gone once read", badgeIs(smsID, ""))

	take := chromedp.CSS(msgSel(m) + ` .issue-chip [data-action="take"]`)
	alice.do("take the issue", chromedp.Click(take))
	bob.wait("the chip assigned to Alice, blue, without Take It", chipIs(m, "in_progress", "assigned", "Assigned to Alice")+
		fmt.Sprintf(` && document.querySelector(%s).hidden
		&& getComputedStyle(document.querySelector(%s)).backgroundColor === 'rgb(232, 239, 253)'`, js(string(take)), js(msgSel(m)+" .issue-chip")))
	alice.wait("her own chip assigned to her, without Take It", chipIs(m, "in_progress", "assigned", "Assigned to Alice")+
		fmt.Sprintf(` && document.querySelector(%s).hidden`, js(string(take))))

	// A second customer; bob's connection drops (and stays down) before alice takes it,
	// so his chip still offers Take It: the server refuses, and the chip says why.
	m2 := e.sms(aliceAPI, smsID, "SMt2", "+15551230003", "Hello?")
	bob.wait("the second message, unassigned", chipIs(m2, "open", "unassigned", "Unassigned"))
	issue2 := evalJS[string](bob, fmt.Sprintf(`document.querySelector(%s).dataset.issueId`, js(msgSel(m2)+" .issue-chip")))
	w.holdUpgrades()
	w.cut()
	http.DefaultClient.CloseIdleConnections()
	bob.wait("the offline banner", `!document.getElementById('offline-banner').hidden`)
	if resp := e.do(aliceAPI, "POST", "/api/issues/"+issue2+"/take", map[string]any{}); resp.StatusCode != 200 {
		t.Fatalf("alice takes issue %s: %d %s", issue2, resp.StatusCode, body(resp))
	} else {
		resp.Body.Close()
	}
	take2 := chromedp.CSS(msgSel(m2) + ` .issue-chip [data-action="take"]`)
	bob.do("take the stale issue", chromedp.Click(take2))
	bob.wait("the refusal on the chip", fmt.Sprintf(`document.querySelector(%s).textContent.includes('assigned to someone else')
		&& !document.querySelector(%s).disabled`, js(msgSel(m2)+" .issue-error"), js(string(take2))))
	w.release()
	bob.wait("the chip caught up: alice's, without Take It", chipIs(m2, "in_progress", "assigned", "Assigned to Alice")+
		fmt.Sprintf(` && document.querySelector(%s).hidden && document.getElementById('offline-banner').hidden`, js(string(take2))))

	// Assign It from the chip: alice hands her first issue to bob, picked from the list.
	alice.do("Assign It", chromedp.Click(chromedp.CSS(msgSel(m)+` .issue-chip [data-action="assign"]`)))
	alice.wait("the people picker", `document.querySelector('dialog.picker[open] input[type=search]') === document.activeElement`)
	alice.do("pick bob", chromedp.Click(chromedp.CSS(fmt.Sprintf(`dialog.picker[open] [data-user-id="%d"]`, e.userID("bob")))))
	for _, p := range []*page{alice, bob} {
		p.wait("the chip assigned to Bob", chipIs(m, "in_progress", "assigned", "Assigned to Bob"))
	}
	alice.check("no actions left to alice on bob's issue", fmt.Sprintf(`[...document.querySelectorAll(%s)].every((b) => b.hidden)`, js(msgSel(m)+" .issue-chip button")))
	alice.checkNoReload()
	bob.checkNoReload()
}

// TestBrowserShowsHostileTextAsText: markup in a customer's SMS is shown as the literal
// text, live and after a reload, and never becomes elements or runs.
func TestBrowserShowsHostileTextAsText(t *testing.T) {
	e, _ := startBrowser(t)
	aliceAPI := e.agent("alice", accounts.RoleAgent)
	smsID := e.smsChannel()
	p := openPage(t, browsertest.New(t), "alice")
	p.login(e.srv.URL, "alice")

	const hostile = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold</b>`
	m := e.sms(aliceAPI, smsID, "SMx1", "+15551230003", hostile)
	inert := fmt.Sprintf(`document.querySelector(%s).textContent === %s
		&& document.querySelector(%s).children.length === 0
		&& document.querySelector('#messages b, #messages img, #messages script') === null
		&& typeof window.__pwned === 'undefined'`, js(msgSel(m)+" .msg-body"), js(hostile), js(msgSel(m)+" .msg-body"))
	p.wait("the message, live", fmt.Sprintf(`document.querySelector(%s) !== null`, js(msgSel(m))))
	p.check("the message as literal text, nothing run", inert)

	// From the snapshot after a reload, too.
	p.do("reload", chromedp.Reload())
	p.waitSignedIn()
	p.wait("the message, from the snapshot", fmt.Sprintf(`document.querySelector(%s) !== null`, js(msgSel(m))))
	p.check("the message as literal text, nothing run", inert)

	// The customer's name opens View Customer, where the issue's subject (the message's
	// first line) is text too.
	p.do("view the customer from the feed", chromedp.Click(chromedp.CSS(msgSel(m)+" .msg-author")))
	p.wait("the lightbox, the subject as text, nothing run", `(() => {
		const d = document.getElementById('customer-dialog');
		const subject = d?.querySelector('.past-issues .pi-subject');
		return !!subject && subject.textContent.includes('<script>') && d.querySelector('img, script, b') === null
			&& typeof window.__pwned === 'undefined';
	})()`)
}

// TestBrowserOfflineBannerAndCatchUp: when the server's connections drop, the offline
// banner shows; a message that arrives while the browser is reconnecting reaches the feed
// once the live connection is back (resumed from its cursor, no reload), and the banner goes.
func TestBrowserOfflineBannerAndCatchUp(t *testing.T) {
	e, w := startBrowser(t)
	aliceAPI := e.agent("alice", accounts.RoleAgent)
	aliceID := e.userID("alice")
	smsID := e.smsChannel()
	p := openPage(t, browsertest.New(t), "alice")
	p.login(e.srv.URL, "alice")
	m1 := e.sms(aliceAPI, smsID, "SMo1", "+15551230004", "Before the outage")
	p.wait("the first message, live", shows(m1, "Before the outage"))
	eventually(t, "alice's live connection", func() bool { return e.s.Hub.Connected(aliceID) })
	p.check("no offline banner while connected", `document.getElementById('offline-banner').hidden`)
	p.markNoReload()

	// Every connection drops; the browser's reconnects wait at the server's door.
	w.holdUpgrades()
	w.cut()
	http.DefaultClient.CloseIdleConnections() // the webhook's client held one of them
	p.wait("the offline banner", `(() => {
		const b = document.getElementById('offline-banner');
		return !b.hidden && b.offsetHeight > 0 && b.textContent === 'Offline — reconnecting…';
	})()`)
	eventually(t, "the server to see alice go", func() bool { return !e.s.Hub.Connected(aliceID) })
	var query string
	select {
	case query = <-w.held:
	case <-time.After(stepTimeout):
		t.Fatalf("the browser did not try to reconnect\n%s", p.state())
	}
	q, _ := url.ParseQuery(query)
	if q.Get("cursor") == "" {
		t.Errorf("the reconnect asked for /ws?%s; want a cursor to resume from", query)
	}

	// A customer writes while the browser is reconnecting.
	m2 := e.sms(aliceAPI, smsID, "SMo2", "+15551230004", "During the outage")
	p.check("nothing new before the connection is back", fmt.Sprintf(`document.querySelector(%s) === null
		&& !document.getElementById('offline-banner').hidden`, js(msgSel(m2))))

	w.release()
	p.wait("the missed message and the banner gone", shows(m2, "During the outage")+
		` && document.getElementById('offline-banner').hidden`)
	p.check("each message once", fmt.Sprintf(`document.querySelectorAll('#messages [data-message-id]').length === 2
		&& document.querySelectorAll(%s).length === 1`, js(msgSel(m2))))
	eventually(t, "alice's live connection again", func() bool { return e.s.Hub.Connected(aliceID) })

	// The live feed works on the new connection.
	m3 := e.sms(aliceAPI, smsID, "SMo3", "+15551230004", "After the outage")
	p.wait("a message on the new connection", shows(m3, "After the outage"))
	p.checkNoReload()
}
