package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	_ "github.com/jackc/pgx/v5/stdlib" // the test reads the cluster's lease and notification rows

	"github.com/switchboard-hq/switchboard/channels/sms"
	"github.com/switchboard-hq/switchboard/internal/redistest"
)

// Notifications across real `serve` processes: presence is the cluster's, live frames
// cross nodes over the Redis bus, and notification email leaves from whichever node holds
// the "notify-email" lease, once, even when that node dies.

// clusterWait bounds each wait for something the cluster should do. Every wait polls an
// observable (a frame, a mail, a row) and returns as soon as it holds.
const clusterWait = 20 * time.Second

// The serve command wants SMTP_URL with credentials, and then logs in: the cluster's
// MTA is newMTA's with AUTH PLAIN for one user.
const (
	clusterSMTPUser     = "switchboard"
	clusterSMTPPassword = "smtp-secret"
)

// newAuthMTA is newMTA's server (it keeps every mail in the returned mta) that also
// requires AUTH PLAIN; its url carries the credentials.
func newAuthMTA(t *testing.T) *mta {
	t.Helper()
	m := &mta{}
	srv := smtp.NewServer(authBackend{m})
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true // loopback, plain text
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	m.url = &url.URL{Scheme: "smtp", Host: ln.Addr().String(), User: url.UserPassword(clusterSMTPUser, clusterSMTPPassword)}
	return m
}

type authBackend struct{ m *mta }

func (b authBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &authSession{mtaSession: mtaSession{m: b.m}}, nil
}

// authSession refuses mail until the client logged in.
type authSession struct {
	mtaSession
	authed bool
}

func (s *authSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *authSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != clusterSMTPUser || pass != clusterSMTPPassword {
			return smtp.ErrAuthFailed
		}
		s.authed = true
		return nil
	}), nil
}

func (s *authSession) Mail(from string, opts *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	return s.mtaSession.Mail(from, opts)
}

// notifyCluster is a cluster whose nodes mail through an in-process SMTP server with a
// one-second digest window, so a lone notification leaves within about three seconds
// (window + the worker's 2 s poll).
func notifyCluster(t *testing.T, m *mta) *cluster {
	t.Helper()
	c := newCluster(t, redistest.URL(t))
	// os/exec keeps the last of duplicate variables, so these override newCluster's.
	c.env = append(c.env, "SWITCHBOARD_NOTIFY_EMAIL_WINDOW=1s")
	if m != nil {
		c.env = append(c.env, "SMTP_URL="+m.url.String())
	}
	return c
}

// clusterUser is one person with their own session, usable on every node.
type clusterUser struct {
	c      *cluster
	email  string
	id     int64
	jar    http.CookieJar
	client *http.Client
}

// addUser creates a user with the CLI, as an operator would, against the cluster's database.
func (c *cluster) addUser(handle, role string) *clusterUser {
	c.t.Helper()
	email := handle + "@example.com"
	cmd := exec.Command(switchboardBinary(c.t), "user", "add", "--email", email, "--name", strings.ToUpper(handle[:1])+handle[1:],
		"--role", role, "--password-stdin")
	cmd.Env = c.env
	cmd.Stdin = strings.NewReader("password-" + handle + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("user add %s: %v\n%s", handle, err, out)
	}
	jar, _ := cookiejar.New(nil)
	return &clusterUser{c: c, email: email, jar: jar, client: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

// login opens a session through node p and learns the user's id; the session cookie is
// then offered to every node.
func (u *clusterUser) login(p *proc) {
	t := u.c.t
	t.Helper()
	handle, _, _ := strings.Cut(u.email, "@")
	u.do(p, "POST", "/api/session", map[string]string{"email": u.email, "password": "password-" + handle}, 200)
	from, _ := url.Parse(p.url())
	for _, q := range u.c.nodes {
		to, _ := url.Parse(q.url())
		u.jar.SetCookies(to, u.jar.Cookies(from))
	}
	var me struct {
		User struct {
			ID int64 `json:"id"`
		} `json:"user"`
	}
	if err := json.Unmarshal(u.do(p, "GET", "/api/me", nil, 200), &me); err != nil || me.User.ID == 0 {
		t.Fatalf("/api/me of %s: %v", u.email, err)
	}
	u.id = me.User.ID
}

// do sends a JSON request through node p and checks the status.
func (u *clusterUser) do(p *proc, method, path string, body any, want int) []byte {
	t := u.c.t
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, p.url()+path, r)
	req.Header.Set("Content-Type", "application/json")
	resp, err := u.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s on %s: %v", method, path, p.name, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s on %s as %s: %d %s; want %d", method, path, p.name, u.email, resp.StatusCode, out, want)
	}
	return out
}

// connect opens the user's live feed on node p.
func (u *clusterUser) connect(p *proc) *feedClient {
	t := u.c.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+p.addr+"/ws", &websocket.DialOptions{HTTPClient: &http.Client{Jar: u.jar}})
	if err != nil {
		t.Fatalf("dial %s as %s: %v", p.name, u.email, err)
	}
	ws.SetReadLimit(1 << 24)
	f := &feedClient{t: t, ws: ws, in: make(chan map[string]any, 10000)}
	go func() {
		defer close(f.in)
		for {
			_, data, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			for line := range bytes.SplitSeq(data, []byte("\n")) {
				var m map[string]any
				if json.Unmarshal(line, &m) == nil {
					f.in <- m
				}
			}
		}
	}()
	t.Cleanup(func() { ws.CloseNow() })
	return f
}

// await reads frames until one satisfies match, and returns it. Frames before it are
// skipped (named in the failure message).
func (f *feedClient) await(what string, match func(m map[string]any) bool) map[string]any {
	f.t.Helper()
	var skipped []string
	deadline := time.After(clusterWait)
	for {
		select {
		case m, ok := <-f.in:
			if !ok {
				f.t.Fatalf("connection ended waiting for %s; skipped %v", what, skipped)
			}
			if match(m) {
				return m
			}
			skipped = append(skipped, fmt.Sprint(m["type"]))
		case <-deadline:
			f.t.Fatalf("no %s within %s; skipped %v", what, clusterWait, skipped)
		}
	}
}

// cnData returns a frame's data object, or nil.
func cnData(m map[string]any) map[string]any {
	d, _ := m["data"].(map[string]any)
	return d
}

// send writes one client frame.
func (f *feedClient) send(frame string) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		f.t.Fatalf("send %s: %v", frame, err)
	}
}

// newIssue starts an issue with a customer's SMS to node p (one customer per phone, so
// one issue each) and returns its id as the admin sees it.
func (c *cluster) newIssue(p *proc, admin *clusterUser, sid, from, text string) int64 {
	c.t.Helper()
	form := smsForm(sid, from, text)
	req, _ := http.NewRequest("POST", p.url()+sms.InboundPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sms.Sign(authToken, clusterPublicURL+sms.InboundPath, form))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		c.t.Fatalf("webhook on %s: %d", p.name, resp.StatusCode)
	}
	var list struct {
		Issues []struct {
			ID       int64 `json:"id"`
			Customer struct {
				Phone string `json:"phone"`
			} `json:"customer"`
		} `json:"issues"`
	}
	if err := json.Unmarshal(admin.do(p, "GET", "/api/issues", nil, 200), &list); err != nil {
		c.t.Fatal(err)
	}
	for _, is := range list.Issues {
		if is.Customer.Phone == from {
			return is.ID
		}
	}
	c.t.Fatalf("no issue of %s in %+v", from, list.Issues)
	return 0
}

// assign assigns an issue through node p.
func (u *clusterUser) assign(p *proc, issueID int64, to *clusterUser) {
	u.c.t.Helper()
	u.do(p, "POST", fmt.Sprintf("/api/issues/%d/assign", issueID), map[string]any{"assignee_id": to.id}, 200)
}

// cnMailsTo returns the subjects of the mails the MTA took for addr, in order.
func cnMailsTo(t *testing.T, m *mta, addr string) []string {
	t.Helper()
	var subjects []string
	for _, raw := range m.received() {
		r, err := gomail.CreateReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("unreadable mail: %v\n%s", err, raw)
		}
		to, _ := r.Header.AddressList("To")
		subject, _ := r.Header.Subject()
		if len(to) == 1 && to[0].Address == addr {
			subjects = append(subjects, subject)
		}
	}
	return subjects
}

// cnAwaitMails waits until addr has n mails and returns their subjects.
func cnAwaitMails(t *testing.T, m *mta, addr string, n int) []string {
	t.Helper()
	var got []string
	eventually(t, fmt.Sprintf("%d mail(s) to %s", n, addr), func() bool {
		got = cnMailsTo(t, m, addr)
		return len(got) >= n
	})
	return got
}

// db opens the cluster's PostgreSQL schema, to look at rows the nodes share.
func (c *cluster) db() *sql.DB {
	c.t.Helper()
	var dbURL string
	for _, kv := range c.env {
		if v, ok := strings.CutPrefix(kv, "DATABASE_URL="); ok {
			dbURL = v
		}
	}
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { db.Close() })
	return db
}

// cnEmailStates returns the email_state of each of a user's notifications, oldest first.
func cnEmailStates(t *testing.T, db *sql.DB, userID int64) []string {
	t.Helper()
	rows, err := db.Query(`SELECT email_state FROM notifications WHERE user_id = $1 ORDER BY id`, userID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// leaseNode returns the node that holds the live "notify-email" lease and the holder's
// name, or nil while nobody holds it. A holder is named host-pid-random (lease.NewHolder).
func (c *cluster) leaseNode(db *sql.DB) (*proc, string) {
	c.t.Helper()
	var holder string
	err := db.QueryRow(`SELECT holder FROM leases WHERE name = 'notify-email' AND expires_at > $1`, time.Now().UTC()).Scan(&holder)
	if err == sql.ErrNoRows {
		return nil, ""
	}
	if err != nil {
		c.t.Fatal(err)
	}
	parts := strings.Split(holder, "-")
	if len(parts) < 3 {
		c.t.Fatalf("lease holder %q is not host-pid-random", holder)
	}
	pid, _ := strconv.Atoi(parts[len(parts)-2])
	for _, p := range c.nodes {
		if p.cmd.Process.Pid == pid {
			return p, holder
		}
	}
	c.t.Fatalf("lease holder %q is none of the nodes", holder)
	return nil, ""
}

func TestClusterNotifyOnlineAgentGetsTheFrameOnAnotherNodeAndNoEmail(t *testing.T) {
	m := newAuthMTA(t)
	c := notifyCluster(t, m)
	admin, bob, carol := c.addUser("admin", "admin"), c.addUser("bob", "agent"), c.addUser("carol", "agent")
	a, b := c.start("a"), c.start("b")
	for _, u := range []*clusterUser{admin, bob, carol} {
		u.login(b)
	}
	db := c.db()

	// bob has the app open on node a; carol is logged out everywhere.
	live := bob.connect(a)
	live.hello()

	first := c.newIssue(b, admin, "SM-cn1", "+15551110001", "parcel lost")
	second := c.newIssue(b, admin, "SM-cn2", "+15551110002", "wrong size")
	admin.assign(b, first, bob)
	admin.assign(b, second, carol)

	got := live.await("bob's notification.created", func(m map[string]any) bool { return m["type"] == "notification.created" })
	n, _ := cnData(got)["notification"].(map[string]any)
	if n["event"] != "assigned" || n["link"] != fmt.Sprintf("#/issues/%d", first) || cnData(got)["unread"] != float64(1) {
		t.Errorf("bob's frame on node a: %v; want assigned, linking issue %d, unread 1", got, first)
	}

	// carol's mail proves the email worker ran after both assignments: bob's, had it been
	// queued, was due no later than hers, and the worker mails users in that order.
	if subj := cnAwaitMails(t, m, "carol@example.com", 1); !strings.Contains(subj[0], fmt.Sprintf("assigned you issue #%d", second)) {
		t.Errorf("carol's mail %q", subj[0])
	}
	if got := cnMailsTo(t, m, "bob@example.com"); len(got) != 0 {
		t.Errorf("bob, online on node a, was mailed: %q", got)
	}
	// Presence was read across nodes when the notification was made: no mail was queued.
	if st := cnEmailStates(t, db, bob.id); len(st) != 1 || st[0] != "none" {
		t.Errorf("bob's notification email states %v; want [none]", st)
	}
}

func TestClusterNotifyEmailOnceUnderTheLeaseEvenWhenItsHolderIsKilled(t *testing.T) {
	m := newAuthMTA(t)
	c := notifyCluster(t, m)
	admin, bob, carol := c.addUser("admin", "admin"), c.addUser("bob", "agent"), c.addUser("carol", "agent")
	c.start("a")
	b := c.start("b")
	for _, u := range []*clusterUser{admin, bob, carol} {
		u.login(b)
	}
	db := c.db()

	// Both nodes run the email worker; one mail leaves for bob, logged out everywhere.
	first := c.newIssue(b, admin, "SM-ce1", "+15551120001", "first")
	admin.assign(b, first, bob)
	if subj := cnAwaitMails(t, m, "bob@example.com", 1); !strings.Contains(subj[0], fmt.Sprintf("assigned you issue #%d", first)) {
		t.Errorf("bob's mail %q", subj[0])
	}
	// A later mail to carol gives a second sender every chance to show up first.
	sentinel := c.newIssue(b, admin, "SM-ce2", "+15551120002", "sentinel")
	admin.assign(b, sentinel, carol)
	cnAwaitMails(t, m, "carol@example.com", 1)
	if got := cnMailsTo(t, m, "bob@example.com"); len(got) != 1 {
		t.Fatalf("bob got %d mails %q; want exactly one from the two nodes", len(got), got)
	}

	// Kill -9 the lease holder while a notification for bob is pending (the window has
	// not passed yet), so the only way it leaves is the other node taking over.
	var holder *proc
	var holderName string
	eventually(t, "a node holds the notify-email lease", func() bool {
		holder, holderName = c.leaseNode(db)
		return holder != nil
	})
	survivor := c.nodes[0]
	if survivor == holder {
		survivor = c.nodes[1]
	}
	second := c.newIssue(survivor, admin, "SM-ce3", "+15551120003", "second")
	admin.assign(survivor, second, bob)
	if err := holder.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the killed node stops answering", func() bool {
		resp, err := http.Get(holder.url() + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	})
	if got := cnMailsTo(t, m, "bob@example.com"); len(got) != 1 {
		t.Fatalf("bob has %d mails before the takeover; the dead holder sent the pending one (the 1 s window is too short on this machine)", len(got))
	}
	if st := cnEmailStates(t, db, bob.id); len(st) != 2 || st[0] != "sent" || st[1] != "pending" {
		t.Fatalf("bob's email states %v; want [sent pending] while the holder is dead", st)
	}
	// The dead holder's lease would expire by itself within lease.DefaultTTL (30 s); end it
	// now, as the clock would, to keep the test short. The survivor must notice on its own.
	if _, err := db.Exec(`UPDATE leases SET expires_at = $1 WHERE name = 'notify-email' AND holder = $2`,
		time.Now().UTC().Add(-time.Second), holderName); err != nil {
		t.Fatal(err)
	}
	subj := cnAwaitMails(t, m, "bob@example.com", 2)
	if !strings.Contains(subj[1], fmt.Sprintf("assigned you issue #%d", second)) {
		t.Errorf("bob's mail after the takeover %q", subj[1])
	}
	if now, _ := c.leaseNode(db); now != survivor {
		t.Errorf("the lease is held by %v; want the survivor %s", now, survivor.name)
	}
	// Exactly once: nothing was in flight when the holder died (no mail accepted, row
	// pending), so the docs' at-least-once becomes once here. A later sentinel again.
	sentinel = c.newIssue(survivor, admin, "SM-ce4", "+15551120004", "sentinel 2")
	admin.assign(survivor, sentinel, carol)
	cnAwaitMails(t, m, "carol@example.com", 2)
	if got := cnMailsTo(t, m, "bob@example.com"); len(got) != 2 {
		t.Errorf("bob got %d mails %q; want exactly two, one per notification", len(got), got)
	}
	if st := cnEmailStates(t, db, bob.id); len(st) != 2 || st[1] != "sent" {
		t.Errorf("bob's email states %v; want both sent", st)
	}
}

func TestClusterNotifyDirectMessageReachesThePeerOnAnotherNode(t *testing.T) {
	c := notifyCluster(t, nil)
	bob, carol := c.addUser("bob", "agent"), c.addUser("carol", "agent")
	a, b := c.start("a"), c.start("b")
	bob.login(a)
	carol.login(b)
	live := bob.connect(a)
	live.hello()

	var opened struct {
		Channel struct {
			ID   int64  `json:"id"`
			Kind string `json:"kind"`
		} `json:"channel"`
	}
	if err := json.Unmarshal(carol.do(b, "POST", "/api/direct", map[string]any{"user_id": bob.id}, 200), &opened); err != nil {
		t.Fatal(err)
	}
	dm := opened.Channel.ID
	topic := fmt.Sprintf("channel:%d", dm)
	added := live.await("channel.added", func(m map[string]any) bool { return m["type"] == "channel.added" })
	if ch, _ := cnData(added)["channel"].(map[string]any); ch["id"] != float64(dm) || ch["kind"] != "direct" || ch["peer_id"] != float64(carol.id) {
		t.Fatalf("channel.added %v; want direct channel %d with carol (%d)", added, dm, carol.id)
	}
	live.send(`{"type":"subscribe","topic":"` + topic + `"}`)
	live.await("subscribed "+topic, func(m map[string]any) bool { return m["type"] == "subscribed" && m["topic"] == topic })

	carol.do(b, "POST", fmt.Sprintf("/api/channels/%d/messages", dm), map[string]any{"body": "lunch? <3"}, 201)
	var msg, note map[string]any
	live.await("message.created and notification.created", func(m map[string]any) bool {
		switch m["type"] {
		case "message.created":
			msg = m
		case "notification.created":
			note = m
		}
		return msg != nil && note != nil
	})
	if mm, _ := cnData(msg)["message"].(map[string]any); msg["topic"] != topic || mm["body"] != "lunch? <3" {
		t.Errorf("message.created %v; want carol's message on %s", msg, topic)
	}
	n, _ := cnData(note)["notification"].(map[string]any)
	if n["event"] != "direct_message" || n["link"] != fmt.Sprintf("#/channels/%d", dm) || n["body"] != "lunch? <3" ||
		n["actor_id"] != float64(carol.id) || cnData(note)["unread"] != float64(1) {
		t.Errorf("notification.created %v; want direct_message from carol linking channel %d", note, dm)
	}
}
