package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"strings"
	"testing"
	"time"

	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/notify"
	"github.com/switchboard-hq/switchboard/server"
	"github.com/switchboard-hq/switchboard/store"
)

// notifyT0 is a Wednesday morning, UTC.
var notifyT0 = time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)

// notifyEnv is a server with a fake clock and a real SMTP server; tests run the email
// worker's passes by hand (Notify.MailTick) at chosen times instead of waiting.
type notifyEnv struct {
	*env
	clock *fakeClock
	mta   *mta
}

func startNotify(t *testing.T, d store.Dialect, dbURL string) *notifyEnv {
	t.Helper()
	return startNotifyWith(t, d, dbURL, &fakeClock{now: notifyT0}, newMTA(t))
}

func startNotifyWith(t *testing.T, d store.Dialect, dbURL string, clock *fakeClock, m *mta) *notifyEnv {
	t.Helper()
	e := startWith(t, d, func(c *server.Config) {
		if dbURL != "" {
			c.DatabaseURL = dbURL
		}
		c.Now = clock.Now
		c.SMTP = m.url
		c.MailFrom = &mail.Address{Name: "Acme Support", Address: "help@acme.test"}
		c.Notify = notify.Config{EmailWindow: 20 * time.Second}
	})
	return &notifyEnv{env: e, clock: clock, mta: m}
}

// tick runs one pass of the email worker at the clock's time.
func (e *notifyEnv) tick() notify.MailReport {
	e.t.Helper()
	rep, err := e.s.Notify.MailTick(context.Background(), e.clock.Now())
	if err != nil {
		e.t.Fatalf("mail pass: %v", err)
	}
	return rep
}

// newIssue makes an issue from an inbound SMS and returns its id.
func (e *notifyEnv) newIssue(c *http.Client, sid, from, text string) int64 {
	e.t.Helper()
	resp := e.postSMS(smsForm(sid, from, text), "good")
	if b := body(resp); resp.StatusCode != 200 {
		e.t.Fatalf("webhook: %d %s", resp.StatusCode, b)
	}
	var list issueList
	e.getJSON(c, "/api/issues", &list)
	for _, is := range list.Issues {
		return is.ID // newest first
	}
	e.t.Fatal("no issue")
	return 0
}

func (e *notifyEnv) assign(c *http.Client, issueID, userID int64) {
	e.t.Helper()
	e.expect(c, "POST", fmt.Sprintf("/api/issues/%d/assign", issueID), map[string]any{"assignee_id": userID}, 200, "")
}

type inboxPage struct {
	Notifications []struct {
		ID      int64   `json:"id"`
		Event   string  `json:"event"`
		Title   string  `json:"title"`
		Body    string  `json:"body"`
		Link    string  `json:"link"`
		IssueID *int64  `json:"issue_id"`
		ActorID *int64  `json:"actor_id"`
		Sound   *string `json:"sound"`
		ReadAt  *string `json:"read_at"`
	} `json:"notifications"`
	Unread  int  `json:"unread"`
	HasMore bool `json:"has_more"`
}

func (e *notifyEnv) inbox(c *http.Client, query string) inboxPage {
	e.t.Helper()
	var p inboxPage
	e.getJSON(c, "/api/notifications"+query, &p)
	return p
}

// sentMail is a mail the MTA took, taken apart.
type sentMail struct {
	to      []string
	subject string
	text    string
	html    string
	auto    string
}

func (e *notifyEnv) mails() []sentMail {
	e.t.Helper()
	var out []sentMail
	for _, raw := range e.mta.received() {
		r, err := gomail.CreateReader(bytes.NewReader(raw))
		if err != nil {
			e.t.Fatalf("unreadable mail: %v\n%s", err, raw)
		}
		var m sentMail
		m.subject, _ = r.Header.Subject()
		m.auto = r.Header.Get("Auto-Submitted")
		to, _ := r.Header.AddressList("To")
		for _, a := range to {
			m.to = append(m.to, a.Address)
		}
		for {
			p, err := r.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				e.t.Fatal(err)
			}
			b, _ := io.ReadAll(p.Body)
			if h, ok := p.Header.(*gomail.InlineHeader); ok {
				switch ct, _, _ := h.ContentType(); ct {
				case "text/plain":
					m.text = string(b)
				case "text/html":
					m.html = string(b)
				}
			}
		}
		out = append(out, m)
	}
	// Never more than one recipient per message (DESIGN.md allows 50).
	e.mta.mu.Lock()
	rcpts := len(e.mta.rcpts)
	e.mta.mu.Unlock()
	if rcpts != len(out) {
		e.t.Fatalf("%d recipients over %d messages; want one each", rcpts, len(out))
	}
	for _, m := range out {
		if len(m.to) != 1 {
			e.t.Fatalf("To %v; want exactly one recipient", m.to)
		}
	}
	return out
}

// nextData waits for a frame of type typ and returns its data.
func nextData(t *testing.T, in chan map[string]any, typ string) map[string]any {
	t.Helper()
	f := next(t, in, typ)
	d, _ := f["data"].(map[string]any)
	if d == nil {
		t.Fatalf("%s frame without data: %v", typ, f)
	}
	return d
}

func TestNotifyAssignmentEmailWhenLoggedOutAndLiveFrameWhenOnline(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		e := startNotify(t, d.Dialect(), "")
		alice := e.agent("alice", accounts.RoleAdmin)
		bob := e.agent("bob", accounts.RoleAgent)
		carol := e.agent("carol", accounts.RoleAgent)
		bobID, carolID := e.userID("bob"), e.userID("carol")

		// carol has the app open; bob does not.
		_, live := dialWS(t, e.env, carol, "")
		next(t, live, "hello")

		first := e.newIssue(alice, "SMn1", "+15551230001", "Where is <b>my</b> order & why?")
		second := e.newIssue(alice, "SMn2", "+15551230002", "Hello")
		e.assign(alice, first, bobID)
		e.assign(alice, second, carolID)

		// carol: the live frame at once, with her unread count.
		got := nextData(t, live, "notification.created")
		n, _ := got["notification"].(map[string]any)
		if n["event"] != "assigned" || n["link"] != fmt.Sprintf("#/issues/%d", second) || got["unread"] != float64(1) {
			t.Errorf("carol's frame %v; want assigned, linking issue %d, unread 1", got, second)
		}
		// bob: the notification waits in his inbox.
		p := e.inbox(bob, "")
		if len(p.Notifications) != 1 || p.Unread != 1 || p.Notifications[0].Event != "assigned" ||
			p.Notifications[0].Link != fmt.Sprintf("#/issues/%d", first) || !strings.Contains(p.Notifications[0].Title, "Alice assigned you") {
			t.Fatalf("bob's inbox %+v", p)
		}
		if a := e.inbox(alice, ""); len(a.Notifications) != 0 {
			t.Errorf("alice was notified of her own actions: %+v", a)
		}

		// The email waits for the digest window (a lone one leaves within 30 s) ...
		e.clock.add(19 * time.Second)
		if rep := e.tick(); rep.Sent != 0 || len(e.mta.received()) != 0 {
			t.Fatalf("mail before the window ended: %+v", rep)
		}
		e.clock.add(2 * time.Second)
		if rep := e.tick(); rep.Sent != 1 {
			t.Fatalf("after the window: %+v; want one mail", rep)
		}
		e.tick() // nothing twice
		mails := e.mails()
		if len(mails) != 1 {
			t.Fatalf("%d mails; want exactly one (bob's; carol was online)", len(mails))
		}
		m := mails[0]
		link := fmt.Sprintf("%s/#/issues/%d", e.srv.URL, first)
		if m.to[0] != "bob@example.com" || !strings.Contains(m.subject, fmt.Sprintf("Alice assigned you issue #%d", first)) {
			t.Errorf("mail to %v subject %q", m.to, m.subject)
		}
		if !strings.Contains(m.text, link) || !strings.Contains(m.text, e.srv.URL+"/#/preferences") ||
			!strings.Contains(m.text, "Where is <b>my</b> order & why?") {
			t.Errorf("text part lacks the link, the preferences link or the subject:\n%s", m.text)
		}
		if !strings.Contains(m.html, `href="`+link+`"`) || !strings.Contains(m.html, "Where is &lt;b&gt;my&lt;/b&gt; order &amp; why?") ||
			strings.Contains(m.html, "<b>my</b>") || !strings.Contains(m.html, "/#/preferences") {
			t.Errorf("HTML part not escaped or without links:\n%s", m.html)
		}
		if m.auto != "auto-generated" {
			t.Errorf("Auto-Submitted %q", m.auto)
		}
	})
}

func TestNotifyMentionsOfUsersAndTeams(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		e := startNotify(t, d.Dialect(), "")
		alice := e.agent("alice", accounts.RoleAgent)
		bob := e.agent("bob", accounts.RoleAgent)
		carol := e.agent("carol", accounts.RoleAgent)
		dave := e.agent("dave", accounts.RoleAgent)
		ctx := context.Background()
		team, err := e.s.Accounts.CreateTeam(ctx, "Support", "support")
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{"alice", "bob", "carol"} {
			if _, err := e.s.Accounts.AddTeamMember(ctx, team.ID, e.userID(h)); err != nil {
				t.Fatal(err)
			}
		}
		issue := e.newIssue(alice, "SMm1", "+15551230003", "The app crashes")
		e.expect(alice, "POST", fmt.Sprintf("/api/issues/%d/notes", issue), map[string]any{"body": "@bob and @support: look at this"}, 200, "")

		for _, tc := range []struct {
			c     *http.Client
			who   string
			event string // "" none
		}{
			{bob, "bob", "mentioned"}, // also on the team: one notification, the stronger one
			{carol, "carol", "team_mentioned"},
			{alice, "alice", ""}, // the author
			{dave, "dave", ""},   // not named
		} {
			p := e.inbox(tc.c, "")
			switch {
			case tc.event == "" && len(p.Notifications) != 0:
				t.Errorf("%s: %+v; want nothing", tc.who, p.Notifications)
			case tc.event != "" && (len(p.Notifications) != 1 || p.Notifications[0].Event != tc.event):
				t.Errorf("%s: %+v; want one %s", tc.who, p.Notifications, tc.event)
			case tc.event != "" && (!strings.Contains(p.Notifications[0].Title, "Alice mentioned") || p.Notifications[0].Body != "@bob and @support: look at this"):
				t.Errorf("%s: %+v", tc.who, p.Notifications[0])
			}
		}
		// Both are logged out: mentioned and team_mentioned mail them, one each.
		e.clock.add(21 * time.Second)
		if rep := e.tick(); rep.Sent != 2 {
			t.Fatalf("%+v; want two mails", rep)
		}
		to := map[string]string{}
		for _, m := range e.mails() {
			to[m.to[0]] = m.subject
		}
		if !strings.Contains(to["bob@example.com"], "mentioned you") || !strings.Contains(to["carol@example.com"], "mentioned @support") || len(to) != 2 {
			t.Errorf("mails: %v", to)
		}
	})
}

func TestNotifyBurstBecomesOneDigest(t *testing.T) {
	e := startNotify(t, store.SQLite, "")
	alice := e.agent("alice", accounts.RoleAdmin)
	bobID := func() int64 { e.agent("bob", accounts.RoleAgent); return e.userID("bob") }()
	var ids []int64
	for i := range 3 {
		id := e.newIssue(alice, fmt.Sprintf("SMb%d", i), fmt.Sprintf("+1555123100%d", i), fmt.Sprintf("burst %d", i))
		e.assign(alice, id, bobID)
		ids = append(ids, id)
		e.clock.add(5 * time.Second)
	}
	e.clock.add(6 * time.Second) // 21 s after the first
	if rep := e.tick(); rep.Sent != 1 {
		t.Fatalf("%+v; want one digest", rep)
	}
	mails := e.mails()
	if len(mails) != 1 {
		t.Fatalf("%d mails; want one digest", len(mails))
	}
	if !strings.HasPrefix(mails[0].subject, "3 notifications: ") {
		t.Errorf("digest subject %q", mails[0].subject)
	}
	for _, id := range ids {
		if !strings.Contains(mails[0].text, fmt.Sprintf("/#/issues/%d\r\n", id)) || !strings.Contains(mails[0].html, fmt.Sprintf("/#/issues/%d\"", id)) {
			t.Errorf("digest lacks issue %d:\n%s", id, mails[0].text)
		}
	}
	// A later one is a mail of its own.
	id := e.newIssue(alice, "SMb9", "+15551231009", "later")
	e.assign(alice, id, bobID)
	e.clock.add(21 * time.Second)
	e.tick()
	if mails := e.mails(); len(mails) != 2 || strings.HasPrefix(mails[1].subject, "2 notifications") {
		t.Errorf("mails %+v; want a second, single one", mails)
	}
}

func TestNotifyEmailSurvivesSMTPOutageAndRestart(t *testing.T) {
	dbURL := storetest.URL(t, store.SQLite)
	clock := &fakeClock{now: notifyT0}
	m := newMTA(t)
	m.setRefuse(func(string) error {
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	})
	e := startNotifyWith(t, store.SQLite, dbURL, clock, m)
	alice := e.agent("alice", accounts.RoleAdmin)
	e.agent("bob", accounts.RoleAgent)
	issue := e.newIssue(alice, "SMo1", "+15551232001", "down")
	e.assign(alice, issue, e.userID("bob"))
	clock.add(21 * time.Second)
	if rep := e.tick(); rep.Failed != 1 || rep.Sent != 0 {
		t.Fatalf("%+v; want one failed attempt", rep)
	}

	// The node goes away; another starts on the same database. The server is back.
	e.s.Hub.Shutdown(context.Background())
	m.setRefuse(nil)
	e2 := startNotifyWith(t, store.SQLite, dbURL, clock, m)
	if rep := e2.tick(); rep.Sent != 0 {
		t.Fatalf("%+v; want the retry to wait for its backoff", rep)
	}
	clock.add(31 * time.Second)
	if rep := e2.tick(); rep.Sent != 1 {
		t.Fatalf("%+v; want the mail sent after the backoff", rep)
	}
	e2.tick()
	if mails := e2.mails(); len(mails) != 1 || mails[0].to[0] != "bob@example.com" {
		t.Fatalf("mails %+v; want exactly one, to bob", mails)
	}
}

func TestNotifyQuietHoursHoldEmailAndSoundUntilTheyEnd(t *testing.T) {
	e := startNotify(t, store.SQLite, "")
	e.clock.mu.Lock()
	e.clock.now = time.Date(2026, 3, 4, 23, 0, 0, 0, time.UTC)
	e.clock.mu.Unlock()
	alice := e.agent("alice", accounts.RoleAdmin)
	bob := e.agent("bob", accounts.RoleAgent)
	e.putPrefs(bob, "/api/preferences", map[string]any{
		"events": map[string]any{
			"assigned":  map[string]any{"email": "always", "sound": "chime"},
			"mentioned": map[string]any{"sound": "ping"},
		},
		"quiet_hours": map[string]any{"enabled": true, "start": "22:00", "end": "07:00", "time_zone": "UTC", "allow_mentions": true},
	})
	_, live := dialWS(t, e.env, bob, "")
	next(t, live, "hello")

	issue := e.newIssue(alice, "SMq1", "+15551233001", "at night")
	e.assign(alice, issue, e.userID("bob"))
	held := nextData(t, live, "notification.created")
	hn, _ := held["notification"].(map[string]any)
	if held["sound"] != nil || held["held"] != true || hn["sound"] != "chime" || held["unread"] != float64(1) {
		t.Errorf("during quiet hours: %v; want stored and counted, sound held", held)
	}
	// A mention comes through with its sound.
	e.expect(alice, "POST", fmt.Sprintf("/api/issues/%d/notes", issue), map[string]any{"body": "@bob urgent"}, 200, "")
	through := nextData(t, live, "notification.created")
	if through["sound"] != "ping" || through["held"] != false {
		t.Errorf("mention during quiet hours: %v; want it let through with its sound", through)
	}

	e.clock.add(21 * time.Second)
	e.tick()
	mails := e.mails()
	if len(mails) != 1 || !strings.Contains(mails[0].subject, "mentioned you") {
		t.Fatalf("during quiet hours: %+v; want only the mention mailed", mails)
	}
	e.clock.add(7 * time.Hour) // 06:00:21, still quiet
	if rep := e.tick(); rep.Released != 0 || rep.Sent != 0 {
		t.Fatalf("%+v; want everything held until 07:00", rep)
	}
	e.clock.add(time.Hour) // 07:00:21
	if rep := e.tick(); rep.Released != 1 || rep.Sent != 1 {
		t.Fatalf("%+v; want the hold released and the held mail sent", rep)
	}
	rel := nextData(t, live, "notification.released")
	ids, _ := rel["ids"].([]any)
	if len(ids) != 1 || ids[0] != hn["id"] || rel["sound"] != "chime" {
		t.Errorf("released %v; want the held notification %v with its sound", rel, hn["id"])
	}
	if mails := e.mails(); len(mails) != 2 || !strings.Contains(mails[1].subject, "assigned you") {
		t.Errorf("mails %+v; want the held one after quiet hours", mails)
	}
	if rep := e.tick(); rep.Released != 0 || rep.Sent != 0 {
		t.Errorf("a second pass did more: %+v", rep)
	}
}

func TestNotifyReadAndReadAllReachEveryTab(t *testing.T) {
	e := startNotify(t, store.SQLite, "")
	alice := e.agent("alice", accounts.RoleAdmin)
	bob := e.agent("bob", accounts.RoleAgent)
	bobID := e.userID("bob")
	_, live := dialWS(t, e.env, bob, "")
	next(t, live, "hello")
	for i := range 3 {
		e.assign(alice, e.newIssue(alice, fmt.Sprintf("SMr%d", i), fmt.Sprintf("+1555123400%d", i), "hi"), bobID)
		nextData(t, live, "notification.created")
	}
	p := e.inbox(bob, "?limit=2")
	if len(p.Notifications) != 2 || !p.HasMore || p.Unread != 3 || p.Notifications[0].ID < p.Notifications[1].ID {
		t.Fatalf("first page %+v; want the 2 newest, more to come, 3 unread", p)
	}
	rest := e.inbox(bob, fmt.Sprintf("?before=%d&limit=2", p.Notifications[1].ID))
	if len(rest.Notifications) != 1 || rest.HasMore {
		t.Fatalf("second page %+v", rest)
	}
	e.expect(bob, "GET", "/api/notifications?limit=0", nil, 400, "limit")
	e.expect(bob, "GET", "/api/notifications?before=x", nil, 400, "before")

	one := rest.Notifications[0].ID
	e.expect(alice, "POST", fmt.Sprintf("/api/notifications/%d/read", one), nil, 404, "no such notification")
	e.expect(bob, "POST", fmt.Sprintf("/api/notifications/%d/read", one), nil, 200, `"unread":2`)
	read := nextData(t, live, "notification.read")
	if ids, _ := read["ids"].([]any); len(ids) != 1 || ids[0] != float64(one) || read["unread"] != float64(2) {
		t.Errorf("read frame %v", read)
	}
	e.expect(bob, "POST", "/api/notifications/read-all", nil, 200, `"unread":0`)
	all := nextData(t, live, "notification.read")
	if all["all"] != true || all["unread"] != float64(0) || all["up_to"] != float64(p.Notifications[0].ID) {
		t.Errorf("read-all frame %v", all)
	}
	if p := e.inbox(bob, ""); p.Unread != 0 || p.Notifications[0].ReadAt == nil {
		t.Errorf("after read-all: %+v", p)
	}
}

func TestNotifyTeamChannelMessagesFollowPerChannelSettings(t *testing.T) {
	e := startNotify(t, store.SQLite, "")
	alice := e.agent("alice", accounts.RoleAgent)
	bob := e.agent("bob", accounts.RoleAgent)
	carol := e.agent("carol", accounts.RoleAgent)
	ch, err := e.s.Channels.CreateTeam(context.Background(), "Ops", []int64{e.userID("alice"), e.userID("bob"), e.userID("carol")})
	if err != nil {
		t.Fatal(err)
	}
	e.putPrefs(bob, "/api/preferences", map[string]any{"channels": map[string]any{
		fmt.Sprint(ch.ID): map[string]any{"customer_message": map[string]any{"in_app": "always"}}}})
	e.expect(alice, "POST", fmt.Sprintf("/api/channels/%d/messages", ch.ID), map[string]any{"body": "deploy at 5"}, 201, "")
	p := e.inbox(bob, "")
	if len(p.Notifications) != 1 || p.Notifications[0].Link != fmt.Sprintf("#/channels/%d", ch.ID) ||
		p.Notifications[0].Body != "deploy at 5" || !strings.Contains(p.Notifications[0].Title, "Alice wrote in Ops") {
		t.Errorf("bob (channel turned on): %+v", p)
	}
	for _, c := range []*http.Client{alice, carol} {
		if p := e.inbox(c, ""); len(p.Notifications) != 0 {
			t.Errorf("notified without asking, or of their own message: %+v", p)
		}
	}
}

func TestNotifyDirectMessageThroughTheChannelsHook(t *testing.T) {
	e := startNotify(t, store.SQLite, "")
	alice := e.agent("alice", accounts.RoleAgent)
	bob := e.agent("bob", accounts.RoleAgent)
	carol := e.agent("carol", accounts.RoleAgent)
	dm, err := e.s.Channels.OpenDirect(context.Background(), e.userID("alice"), e.userID("bob"))
	if err != nil {
		t.Fatal(err)
	}
	e.expect(alice, "POST", fmt.Sprintf("/api/channels/%d/messages", dm.ID), map[string]any{"body": "lunch? <3"}, 201, "")
	p := e.inbox(bob, "")
	if len(p.Notifications) != 1 || p.Notifications[0].Event != "direct_message" || p.Notifications[0].Body != "lunch? <3" ||
		p.Notifications[0].Link != fmt.Sprintf("#/channels/%d", dm.ID) || !strings.Contains(p.Notifications[0].Title, "Alice sent you") {
		t.Fatalf("bob: %+v; want one direct_message", p)
	}
	for _, c := range []*http.Client{alice, carol} {
		if p := e.inbox(c, ""); len(p.Notifications) != 0 {
			t.Errorf("the author or an outsider was notified: %+v", p)
		}
	}
	// bob is logged out: direct_message mails him (when_logged_out).
	e.clock.add(21 * time.Second)
	e.tick()
	if mails := e.mails(); len(mails) != 1 || mails[0].to[0] != "bob@example.com" || !strings.Contains(mails[0].html, "lunch? &lt;3") {
		t.Errorf("mails %+v; want one to bob, escaped", mails)
	}
}

func TestNotifyCustomerMessagesFollowChannelAndIssueSettings(t *testing.T) {
	e := startNotify(t, store.SQLite, "")
	alice := e.agent("alice", accounts.RoleAdmin)
	bob := e.agent("bob", accounts.RoleAgent)
	carol := e.agent("carol", accounts.RoleAgent)
	sms := fmt.Sprint(e.smsChannel())
	// bob wants new issues of the SMS channel in the app; carol wants messages on her issues.
	e.putPrefs(bob, "/api/preferences", map[string]any{"channels": map[string]any{
		sms: map[string]any{"issue_created": map[string]any{"in_app": "always"}}}})
	e.putPrefs(carol, "/api/preferences", map[string]any{"events": map[string]any{
		"issue_message": map[string]any{"in_app": "always", "sound": "pop"}}})

	issue := e.newIssue(alice, "SMc1", "+15551236001", "my parcel is lost")
	p := e.inbox(bob, "")
	if len(p.Notifications) != 1 || p.Notifications[0].Event != "issue_created" || p.Notifications[0].Body != "my parcel is lost" {
		t.Fatalf("bob: %+v; want issue_created", p)
	}
	if p := e.inbox(carol, ""); len(p.Notifications) != 0 {
		t.Fatalf("carol: %+v; want nothing (channel events are off by default)", p)
	}
	e.assign(alice, issue, e.userID("carol"))
	e.postSMS(smsForm("SMc2", "+15551236001", "any news?"), "good").Body.Close()
	p = e.inbox(carol, "")
	if len(p.Notifications) != 2 || p.Notifications[0].Event != "issue_message" || p.Notifications[0].Body != "any news?" ||
		p.Notifications[0].Sound == nil || *p.Notifications[0].Sound != "pop" {
		t.Errorf("carol: %+v; want issue_message (newest) after assigned", p)
	}
	if p := e.inbox(bob, ""); len(p.Notifications) != 1 {
		t.Errorf("bob: %+v; a message on an existing issue is not issue_created", p)
	}

	// The organisation turns customer messages on for the channel: every member hears of
	// the next one, bob as the stronger issue_created.
	e.putPrefs(alice, "/api/org/preferences", map[string]any{"channels": map[string]any{
		sms: map[string]any{"customer_message": map[string]any{"in_app": "always"}}}})
	e.newIssue(alice, "SMc3", "+15551236002", "hello there")
	for _, tc := range []struct {
		c     *http.Client
		who   string
		event string
		n     int
	}{{alice, "alice", "customer_message", 1}, {bob, "bob", "issue_created", 2}, {carol, "carol", "customer_message", 3}} {
		if p := e.inbox(tc.c, ""); len(p.Notifications) != tc.n || p.Notifications[0].Event != tc.event {
			t.Errorf("%s: %+v; want %d, the newest %s", tc.who, p.Notifications, tc.n, tc.event)
		}
	}
}
