package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/channels/email"
	"github.com/switchboard-hq/switchboard/internal/outbox"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/server"
	"github.com/switchboard-hq/switchboard/store"
)

// mta is a real SMTP server (go-smtp) on loopback, in plain text, that keeps every mail
// it takes; refuse, when set, may answer a stage ("rcpt", "data") with an error.
type mta struct {
	url *url.URL

	mu     sync.Mutex
	mails  [][]byte // guarded by mu
	rcpts  []string // guarded by mu
	refuse func(stage string) error
}

func newMTA(t *testing.T) *mta {
	t.Helper()
	m := &mta{}
	srv := smtp.NewServer(mtaBackend{m})
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	m.url = &url.URL{Scheme: "smtp", Host: ln.Addr().String()}
	return m
}

func (m *mta) setRefuse(f func(stage string) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refuse = f
}

func (m *mta) check(stage string) error {
	m.mu.Lock()
	f := m.refuse
	m.mu.Unlock()
	if f == nil {
		return nil
	}
	return f(stage)
}

func (m *mta) received() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([][]byte(nil), m.mails...)
}

type mtaBackend struct{ m *mta }

func (b mtaBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &mtaSession{m: b.m}, nil }

type mtaSession struct {
	m  *mta
	to []string
}

func (s *mtaSession) Mail(string, *smtp.MailOptions) error { return s.m.check("mail") }

func (s *mtaSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := s.m.check("rcpt"); err != nil {
		return err
	}
	s.to = append(s.to, to)
	return nil
}

func (s *mtaSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := s.m.check("data"); err != nil {
		return err
	}
	s.m.mu.Lock()
	s.m.mails = append(s.m.mails, raw)
	s.m.rcpts = append(s.m.rcpts, s.to...)
	s.m.mu.Unlock()
	return nil
}

func (s *mtaSession) Reset()        { s.to = nil }
func (s *mtaSession) Logout() error { return nil }

// fakeClock is the server's clock in tests that move time.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// startWithSMTP is a whole server reading a real IMAP mailbox and replying through a
// real SMTP server.
func startWithSMTP(t *testing.T, d store.Dialect, m *mta, now func() time.Time) *mailEnv {
	t.Helper()
	box := newIMAPMailbox(t)
	s, err := server.New(context.Background(), server.Config{
		Addr:        "127.0.0.1:0",
		DatabaseURL: storetest.URL(t, d),
		IMAP:        &email.Config{URL: box.url, BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond},
		SMTP:        m.url,
		MailFrom:    &mail.Address{Name: "Acme Support", Address: "help@acme.test"},
		Outbox:      outbox.Config{RetryBase: 10 * time.Millisecond, RetryMax: 40 * time.Millisecond, Poll: 20 * time.Millisecond},
		Now:         now,
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
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("Run did not return")
		}
		s.Close()
	})
	return &mailEnv{t: t, s: s, base: "http://" + addr.String(), box: box}
}

type smtpIssue struct {
	Issue struct {
		ID     int64  `json:"id"`
		Status string `json:"status"`
	} `json:"issue"`
	Comments []struct {
		ID             int64   `json:"id"`
		Kind           string  `json:"kind"`
		Body           string  `json:"body"`
		ExternalID     *string `json:"external_id"`
		DeliveryStatus *string `json:"delivery_status"`
	} `json:"comments"`
}

// customerIssue waits for the issue a mail with Message-ID id became.
func (e *mailEnv) customerIssue(c *http.Client, id string) int64 {
	e.t.Helper()
	var list struct {
		Issues []struct {
			ID int64 `json:"id"`
		} `json:"issues"`
	}
	e.waitJSON(c, "/api/issues", &list, func() bool { return len(list.Issues) > 0 })
	for _, is := range list.Issues {
		var d smtpIssue
		_, b := e.get(c, fmt.Sprintf("/api/issues/%d", is.ID))
		if json.Unmarshal(b, &d) == nil {
			for _, cm := range d.Comments {
				if cm.ExternalID != nil && *cm.ExternalID == id {
					return is.ID
				}
			}
		}
	}
	e.t.Fatalf("no issue holds mail %s", id)
	return 0
}

func (e *mailEnv) post(c *http.Client, path, body string, want int) []byte {
	e.t.Helper()
	resp, err := c.Post(e.base+path, "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		e.t.Fatalf("POST %s: %d %s, want %d", path, resp.StatusCode, b, want)
	}
	return b
}

// replyID posts a reply and returns its comment's id.
func (e *mailEnv) reply(c *http.Client, issueID int64, body string) int64 {
	e.t.Helper()
	e.post(c, fmt.Sprintf("/api/issues/%d/replies", issueID), fmt.Sprintf(`{"body":%q}`, body), http.StatusOK)
	var d smtpIssue
	_, b := e.get(c, fmt.Sprintf("/api/issues/%d", issueID))
	if err := json.Unmarshal(b, &d); err != nil {
		e.t.Fatal(err)
	}
	for i := len(d.Comments) - 1; i >= 0; i-- {
		if d.Comments[i].Kind == "reply" {
			return d.Comments[i].ID
		}
	}
	e.t.Fatal("reply not stored")
	return 0
}

type smtpDeliveries struct {
	Deliveries []struct {
		ID             int64   `json:"id"`
		CommentID      *int64  `json:"comment_id"`
		State          string  `json:"state"`
		DeliveryStatus string  `json:"delivery_status"`
		Attempts       int     `json:"attempts"`
		ExternalID     *string `json:"external_id"`
		ErrorCode      *string `json:"error_code"`
		ErrorReason    *string `json:"error_reason"`
		NextAttemptAt  *string `json:"next_attempt_at"`
	} `json:"deliveries"`
}

const janeMail = `From: Jane Doe <jane@example.com>
To: support@example.org
Subject: Invoice is wrong
Message-ID: <inv-2@example.com>
In-Reply-To: <inv-1@example.com>
References: <inv-0@example.com> <inv-1@example.com>
Content-Type: text/plain; charset=utf-8

The invoice is wrong.
`

// TestEmailRepliesOverSMTP: an agent's reply on an email issue, through the API, leaves
// over SMTP from EMAIL_FROM, threaded (In-Reply-To, References, the [#id] token), with a
// text and an HTML part; its Message-ID becomes the reply's external_id, and the
// customer's answer to it threads onto the same issue even with another subject.
func TestEmailRepliesOverSMTP(t *testing.T) {
	for _, d := range storetest.Engines {
		t.Run(string(d), func(t *testing.T) {
			m := newMTA(t)
			e := startWithSMTP(t, d, m, nil)
			agent := e.login("ann", accounts.RoleAgent)
			e.box.deliver(t, janeMail)
			id := e.customerIssue(agent, "<inv-2@example.com>")
			cid := e.reply(agent, id, "Hello Jane,\nit is <fixed> & sent again.")

			var detail smtpIssue
			e.waitJSON(agent, fmt.Sprintf("/api/issues/%d", id), &detail, func() bool {
				for _, c := range detail.Comments {
					if c.ID == cid && c.DeliveryStatus != nil && *c.DeliveryStatus == "sent" && c.ExternalID != nil {
						return true
					}
				}
				return false
			})
			var ourID string
			for _, c := range detail.Comments {
				if c.ID == cid {
					ourID = *c.ExternalID
				}
			}
			got := m.received()
			if len(got) != 1 {
				t.Fatalf("%d mails sent, want 1", len(got))
			}
			msg, err := mail.ReadMessage(bytes.NewReader(got[0]))
			if err != nil {
				t.Fatal(err)
			}
			h := msg.Header
			for k, want := range map[string]string{
				"Message-Id":  ourID,
				"In-Reply-To": "<inv-2@example.com>",
				"References":  "<inv-0@example.com> <inv-1@example.com> <inv-2@example.com>",
				"Subject":     fmt.Sprintf("Re: Invoice is wrong [#%d]", id),
				"From":        `"Acme Support" <help@acme.test>`,
				"To":          `"Jane Doe" <jane@example.com>`,
			} {
				if v := h.Get(k); v != want {
					t.Errorf("%s = %q, want %q", k, v, want)
				}
			}
			if !strings.HasPrefix(ourID, "<") || !strings.HasSuffix(ourID, "@acme.test>") {
				t.Errorf("Message-ID %q is not <…@acme.test>", ourID)
			}
			if h.Get("Auto-Submitted") != "" {
				t.Error("a human reply carries Auto-Submitted")
			}
			raw := string(got[0])
			for _, want := range []string{"multipart/alternative", "text/plain", "text/html", "&lt;fixed&gt; &amp; sent again.", "Hello Jane,<br>"} {
				if !strings.Contains(raw, want) {
					t.Errorf("mail lacks %q", want)
				}
			}

			// Resolved, then Jane answers our mail under another subject: threading by
			// In-Reply-To reopens the same issue instead of starting a new one.
			e.post(agent, fmt.Sprintf("/api/issues/%d/resolve", id), `{}`, http.StatusOK)
			e.box.deliver(t, fmt.Sprintf("From: jane@example.com\nTo: support@example.org\nSubject: something else\n"+
				"Message-ID: <inv-3@example.com>\nIn-Reply-To: %s\nReferences: %s\n\nThanks, all good now.\n", ourID, ourID))
			// (The issue and its comments are read one after the other: wait for both.)
			var after smtpIssue
			e.waitJSON(agent, fmt.Sprintf("/api/issues/%d", id), &after, func() bool {
				for _, c := range after.Comments {
					if c.ExternalID != nil && *c.ExternalID == "<inv-3@example.com>" {
						return after.Issue.Status != "resolved"
					}
				}
				return false
			})
		})
	}
}

// TestEmailReplyRetriesAndFailures: a 451 is retried and the mail goes out once; a 550
// fails the reply at once with the server's code and text for the agent.
func TestEmailReplyRetriesAndFailures(t *testing.T) {
	for _, d := range storetest.Engines {
		t.Run(string(d), func(t *testing.T) {
			m := newMTA(t)
			e := startWithSMTP(t, d, m, nil)
			agent := e.login("ann", accounts.RoleAgent)
			e.box.deliver(t, janeMail)
			id := e.customerIssue(agent, "<inv-2@example.com>")
			var refused sync.Once
			m.setRefuse(func(stage string) error {
				var err error
				if stage == "rcpt" {
					refused.Do(func() {
						err = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "greylisted, try again"}
					})
				}
				return err
			})
			cid := e.reply(agent, id, "first")
			path := fmt.Sprintf("/api/issues/%d/deliveries", id)
			var ds smtpDeliveries
			e.waitJSON(agent, path, &ds, func() bool {
				return len(ds.Deliveries) == 1 && ds.Deliveries[0].State == "sent"
			})
			if dl := ds.Deliveries[0]; dl.Attempts != 2 || *dl.CommentID != cid {
				t.Errorf("451 then success: %+v", dl)
			}
			if n := len(m.received()); n != 1 {
				t.Errorf("%d mails sent after a 451 and a retry, want 1", n)
			}

			m.setRefuse(func(stage string) error {
				if stage == "rcpt" {
					return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
				}
				return nil
			})
			e.reply(agent, id, "second")
			e.waitJSON(agent, path, &ds, func() bool {
				return len(ds.Deliveries) == 2 && ds.Deliveries[1].State == "failed"
			})
			dl := ds.Deliveries[1]
			if dl.Attempts != 1 || dl.ErrorCode == nil || *dl.ErrorCode != "550" || dl.ErrorReason == nil ||
				!strings.Contains(*dl.ErrorReason, "no such user here") || dl.DeliveryStatus != "failed" {
				t.Errorf("550: %+v", dl)
			}
			var detail smtpIssue
			_, b := e.get(agent, fmt.Sprintf("/api/issues/%d", id))
			_ = json.Unmarshal(b, &detail)
			last := detail.Comments[len(detail.Comments)-1]
			if last.DeliveryStatus == nil || *last.DeliveryStatus != "failed" {
				t.Errorf("reply shows %v, want failed", last.DeliveryStatus)
			}
			if n := len(m.received()); n != 1 {
				t.Errorf("%d mails sent, want still 1", n)
			}
		})
	}
}

// TestEmailRateLimit: no address gets more than 30 mails from us in 10 minutes: the 31st
// reply waits (pending, not dropped) until the window allows it.
func TestEmailRateLimit(t *testing.T) {
	for _, d := range storetest.Engines {
		t.Run(string(d), func(t *testing.T) {
			m := newMTA(t)
			clock := &fakeClock{now: time.Now().UTC().Truncate(time.Second)}
			e := startWithSMTP(t, d, m, clock.Now)
			agent := e.login("ann", accounts.RoleAgent)
			e.box.deliver(t, janeMail)
			id := e.customerIssue(agent, "<inv-2@example.com>")
			for i := range 31 {
				e.reply(agent, id, fmt.Sprintf("reply %d", i+1))
			}
			path := fmt.Sprintf("/api/issues/%d/deliveries", id)
			var ds smtpDeliveries
			e.waitJSON(agent, path, &ds, func() bool {
				if len(ds.Deliveries) != 31 {
					return false
				}
				for _, dl := range ds.Deliveries[:30] {
					if dl.State != "sent" {
						return false
					}
				}
				return ds.Deliveries[30].Attempts > 0 && ds.Deliveries[30].State == "pending"
			})
			last := ds.Deliveries[30]
			if last.ErrorCode == nil || *last.ErrorCode != "rate_limited" {
				t.Errorf("31st: %+v", last)
			}
			next, err := time.Parse(time.RFC3339Nano, *last.NextAttemptAt)
			if err != nil || next.Before(clock.Now().Add(10*time.Minute)) {
				t.Errorf("31st retries at %v, want 10 minutes on (%v)", next, err)
			}
			if n := len(m.received()); n != 30 {
				t.Fatalf("%d mails sent, want 30", n)
			}
			// Ten minutes on, the 31st goes.
			clock.add(10*time.Minute + time.Second)
			e.s.Outbox.Kick()
			e.waitJSON(agent, path, &ds, func() bool { return ds.Deliveries[30].State == "sent" })
			if n := len(m.received()); n != 31 {
				t.Errorf("%d mails sent, want 31", n)
			}
		})
	}
}
