package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/channels/email"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/server"
	"github.com/switchboard-hq/switchboard/store"
)

// imapMailbox is a real IMAP server (go-imap's in-memory backend) on loopback.
type imapMailbox struct {
	user *imapmemserver.User
	url  *url.URL
}

// idlePolls makes imapmemserver's IDLE report changes made just before it began, as real
// servers do.
type idlePolls struct{ imapserver.Session }

func (s idlePolls) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		if err := s.Session.Poll(w, true); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-t.C:
		}
	}
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

func newIMAPMailbox(t *testing.T) *imapMailbox {
	t.Helper()
	return startIMAP(t, "support@example.org", "pw", false)
}

// startIMAP serves one INBOX of user on loopback with the library's in-memory server;
// withIdle also advertises IDLE, as most real servers do.
func startIMAP(t *testing.T, user, password string, withIdle bool) *imapMailbox {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(user, password)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	caps := imap.CapSet{imap.CapIMAP4rev1: {}}
	if withIdle {
		caps[imap.CapIdle] = struct{}{}
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return idlePolls{mem.NewSession()}, nil, nil
		},
		Caps:         caps,
		InsecureAuth: true,
		Logger:       quietLogger{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return &imapMailbox{user: u, url: &url.URL{Scheme: "imap", User: url.UserPassword(user, password),
		Host: ln.Addr().String(), Path: "/INBOX"}}
}

func (m *imapMailbox) deliver(t *testing.T, raw string) {
	t.Helper()
	raw = strings.ReplaceAll(strings.ReplaceAll(raw, "\r\n", "\n"), "\n", "\r\n")
	if _, err := m.user.Append("INBOX", bytes.NewReader([]byte(raw)), &imap.AppendOptions{Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

// mailEnv is a whole server, run by Server.Run, reading a real IMAP mailbox.
type mailEnv struct {
	t    *testing.T
	s    *server.Server
	base string
	box  *imapMailbox
}

func startWithMail(t *testing.T, d store.Dialect) *mailEnv {
	t.Helper()
	box := newIMAPMailbox(t)
	s, err := server.New(context.Background(), server.Config{
		Addr:        "127.0.0.1:0",
		DatabaseURL: storetest.URL(t, d),
		IMAP:        &email.Config{URL: box.url, MaxAttachment: 100, BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(a net.Addr) { addrc <- a }) }()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return")
		}
		s.Close()
	})
	return &mailEnv{t: t, s: s, base: "http://" + addr.String(), box: box}
}

func (e *mailEnv) login(handle string, role accounts.Role) *http.Client {
	e.t.Helper()
	pw := "password-" + handle
	if _, err := e.s.Accounts.CreateUser(context.Background(), accounts.NewUser{
		Email: handle + "@example.com", Name: handle, Role: role, Password: pw}); err != nil {
		e.t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.Post(e.base+"/api/session", "application/json",
		strings.NewReader(fmt.Sprintf(`{"email":%q,"password":%q}`, handle+"@example.com", pw)))
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		e.t.Fatalf("login %s: %d", handle, resp.StatusCode)
	}
	return c
}

func (e *mailEnv) get(c *http.Client, path string) (*http.Response, []byte) {
	e.t.Helper()
	resp, err := c.Get(e.base + path)
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

// waitJSON polls a GET until cond accepts its decoded body.
func (e *mailEnv) waitJSON(c *http.Client, path string, v any, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, b := e.get(c, path)
		if resp.StatusCode == 200 && json.Unmarshal(b, v) == nil && cond() {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("GET %s: timed out; last answer %d %s", path, resp.StatusCode, b)
		}
		<-tick.C
	}
}

const invoiceMail = `From: Jane Doe <jane@example.com>
To: support@example.org
Subject: Invoice
Message-ID: <invoice@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="B"

--B
Content-Type: text/plain; charset=utf-8

The invoice is wrong.

` + "-- " + `
Jane
--B
Content-Type: text/html; name="evil.html"
Content-Disposition: attachment; filename="evil.html"

<script>alert(document.cookie)</script>
--B
Content-Type: application/pdf; name="big.pdf"
Content-Disposition: attachment; filename="big.pdf"
Content-Transfer-Encoding: base64

` + "%s" + `
--B--
`

// TestEmailThroughTheAPI: a mail read over IMAP by the running server becomes an issue;
// agents list its whole text and attachments and download them only as files; admins see
// quarantined mail; automatic mail creates nothing.
func TestEmailThroughTheAPI(t *testing.T) {
	for _, d := range storetest.Engines {
		t.Run(string(d), func(t *testing.T) {
			e := startWithMail(t, d)
			admin := e.login("ada", accounts.RoleAdmin)
			agent := e.login("bob", accounts.RoleAgent)

			e.box.deliver(t, "From: MAILER-DAEMON@mx.example.org\nTo: support@example.org\nSubject: failure\nMessage-ID: <b@x>\n\nbounce\n")
			e.box.deliver(t, "To: support@example.org\nSubject: who\nMessage-ID: <q@x>\n\nno sender\n")
			e.box.deliver(t, fmt.Sprintf(invoiceMail, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("%PDF"), 64))))

			var list struct {
				Issues []struct {
					ID        int64 `json:"id"`
					ChannelID int64 `json:"channel_id"`
				} `json:"issues"`
			}
			e.waitJSON(agent, "/api/issues", &list, func() bool { return len(list.Issues) > 0 })
			if len(list.Issues) != 1 {
				t.Fatalf("%d issues; want 1 (the bounce and the unparseable mail make none)", len(list.Issues))
			}
			issueID := list.Issues[0].ID
			var detail struct {
				Comments []struct {
					ID         int64  `json:"id"`
					Kind       string `json:"kind"`
					Body       string `json:"body"`
					ExternalID string `json:"external_id"`
				} `json:"comments"`
			}
			e.waitJSON(agent, fmt.Sprintf("/api/issues/%d", issueID), &detail, func() bool { return len(detail.Comments) == 1 })
			if c := detail.Comments[0]; c.Kind != "customer" || c.Body != "The invoice is wrong." || c.ExternalID != "<invoice@example.com>" {
				t.Errorf("comment %+v; want the customer's new text without the signature, external_id the Message-ID", c)
			}

			var mail struct {
				Messages []struct {
					CommentID   int64  `json:"comment_id"`
					FullBody    string `json:"full_body"`
					RawURL      string `json:"raw_url"`
					Attachments []struct {
						Filename    string `json:"filename"`
						ContentType string `json:"content_type"`
						Size        int64  `json:"size"`
						Stored      bool   `json:"stored"`
						URL         string `json:"url"`
						ID          int64  `json:"id"`
					} `json:"attachments"`
				} `json:"messages"`
			}
			e.waitJSON(agent, fmt.Sprintf("/api/issues/%d/email", issueID), &mail, func() bool { return len(mail.Messages) == 1 })
			m := mail.Messages[0]
			if m.CommentID != detail.Comments[0].ID || !strings.Contains(m.FullBody, "-- \nJane") {
				t.Errorf("email record: comment %d full body %q", m.CommentID, m.FullBody)
			}
			if len(m.Attachments) != 2 || !m.Attachments[0].Stored || m.Attachments[1].Stored || m.Attachments[1].Size != 256 {
				t.Fatalf("attachments %+v; want evil.html stored and big.pdf (256 bytes, over the 100-byte limit) listed only", m.Attachments)
			}

			// The HTML attachment is a download, never a page of our origin.
			resp, b := e.get(agent, m.Attachments[0].URL)
			h := resp.Header
			if resp.StatusCode != 200 || string(b) != "<script>alert(document.cookie)</script>" {
				t.Fatalf("download: %d %q", resp.StatusCode, b)
			}
			if h.Get("Content-Type") != "application/octet-stream" || !strings.HasPrefix(h.Get("Content-Disposition"), "attachment;") ||
				h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("download headers: %v", h)
			}
			if resp, _ := e.get(agent, fmt.Sprintf("/api/attachments/%d", m.Attachments[1].ID)); resp.StatusCode != 404 {
				t.Errorf("attachment over the limit: %d; want 404", resp.StatusCode)
			}
			resp, b = e.get(agent, m.RawURL)
			if resp.StatusCode != 200 || !bytes.Contains(b, []byte("Message-ID: <invoice@example.com>")) ||
				!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("original: %d %v", resp.StatusCode, resp.Header)
			}

			// Only users who may see the issue: not logged in, then not a member.
			if resp, _ := e.get(http.DefaultClient, m.Attachments[0].URL); resp.StatusCode != 401 {
				t.Errorf("anonymous download: %d; want 401", resp.StatusCode)
			}
			if _, err := e.s.DB.ExecContext(context.Background(), `UPDATE channels SET all_agents = FALSE WHERE id = $1`, list.Issues[0].ChannelID); err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{m.Attachments[0].URL, m.RawURL, fmt.Sprintf("/api/issues/%d/email", issueID)} {
				if resp, _ := e.get(agent, path); resp.StatusCode != 404 {
					t.Errorf("%s by a non-member: %d; want 404", path, resp.StatusCode)
				}
			}

			// Quarantine: admins only.
			if resp, _ := e.get(agent, "/api/email/quarantine"); resp.StatusCode != 403 {
				t.Errorf("agent on the quarantine: %d; want 403", resp.StatusCode)
			}
			var q struct {
				Quarantine []struct {
					MessageID string `json:"message_id"`
					Error     string `json:"error"`
					RawURL    string `json:"raw_url"`
				} `json:"quarantine"`
			}
			e.waitJSON(admin, "/api/email/quarantine", &q, func() bool { return len(q.Quarantine) == 1 })
			if q.Quarantine[0].MessageID != "<q@x>" || !strings.Contains(q.Quarantine[0].Error, "no sender") {
				t.Errorf("quarantine %+v", q.Quarantine)
			}
			if resp, b := e.get(admin, q.Quarantine[0].RawURL); resp.StatusCode != 200 || !bytes.Contains(b, []byte("no sender")) {
				t.Errorf("quarantined original: %d %q", resp.StatusCode, b)
			}
		})
	}
}
