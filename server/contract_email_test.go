package server_test

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/switchboard-hq/switchboard/store"
)

// ctMailbox is an IMAP server on loopback (the library's in-memory one): the mailbox
// IMAP_URL points the binary at, and the test's way to "send" customer mail.
type ctMailbox struct {
	t   *testing.T
	box *imapMailbox
	url string
}

func newCTMailbox(t *testing.T) *ctMailbox {
	box := startIMAP(t, "support@example.com", "mail-password", true)
	return &ctMailbox{t: t, box: box, url: box.url.String()}
}

// deliver puts a mail in INBOX; headers are "Name: value" lines.
func (m *ctMailbox) deliver(headers []string, body string) {
	m.t.Helper()
	m.box.deliver(m.t, strings.Join(headers, "\r\n")+"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+body+"\r\n")
}

// TestContractEmail: mail read from IMAP_URL becomes issues and comments; a customer is
// found by email address case-insensitively; the comment's external_id is the mail's
// Message-ID; auto-replies never create issues.
func TestContractEmail(t *testing.T) {
	mb := newCTMailbox(t)
	o := ctNewOrg(t, store.SQLite, "IMAP_URL="+mb.url)
	date := time.Now().UTC().Format(time.RFC1123Z)
	mb.deliver([]string{"From: Jane Doe <Jane.Doe@Example.com>", "To: support@example.com", "Subject: Invoice twice",
		"Message-ID: <contract-1@example.com>", "Date: " + date}, "My invoice was charged twice.")
	mb.deliver([]string{"From: Mailer <noreply@example.com>", "To: support@example.com", "Subject: Out of office",
		"Message-ID: <contract-auto@example.com>", "Auto-Submitted: auto-replied", "Date: " + date}, "I am away.")
	mb.deliver([]string{"From: jane.doe@example.com", "To: support@example.com", "Subject: also",
		"Message-ID: <contract-2@example.com>", "Date: " + date}, "And the shipping too.")

	var issues []map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for {
		issues = ctListIssues(t, o.admin, "")
		if len(issues) > 0 && len(ctDetail(t, o.admin, ctNum(issues[0], "id")).Comments) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mail did not become an issue with two comments within 20 s: %v\n%s", issues, o.n.stderr())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(issues) != 1 {
		t.Errorf("two mails of one customer (address in another case) and an auto-reply made %d issues; want 1: %v", len(issues), ctIDs(issues))
	}
	d := ctDetail(t, o.admin, ctNum(issues[0], "id"))
	var ids []string
	for _, c := range d.Comments {
		if c["kind"] != "customer" {
			t.Errorf("comment %v kind %v", c["id"], c["kind"])
		}
		ids = append(ids, fmt.Sprint(c["external_id"]))
	}
	if got := strings.Join(ids, " "); got != "<contract-1@example.com> <contract-2@example.com>" {
		t.Errorf("external_ids %s; want the Message-IDs", got)
	}
	// The auto-reply was read (it came between the two) and still made nothing.
	if got := ctListIssues(t, o.admin, "q=away"); len(got) != 0 {
		t.Errorf("an auto-reply made an issue: %v", got)
	}
}

// ctMTA is an SMTP server on loopback that takes every mail after PLAIN login.
type ctMTA struct {
	mu     sync.Mutex
	mails  []string // guarded by mu: "rcpt\n" + data
	logins []string // guarded by mu
	url    string
}

func newCTMTA(t *testing.T) *ctMTA {
	m := &ctMTA{}
	srv := smtp.NewServer(ctMTABackend{m})
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	m.url = "smtp://mailer:smtp-password@" + ln.Addr().String()
	return m
}

func (m *ctMTA) received() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.mails...)
}

type ctMTABackend struct{ m *ctMTA }

func (b ctMTABackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &ctMTASession{m: b.m}, nil
}

type ctMTASession struct {
	m  *ctMTA
	to []string
}

func (s *ctMTASession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *ctMTASession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		s.m.mu.Lock()
		s.m.logins = append(s.m.logins, user+":"+pass)
		s.m.mu.Unlock()
		return nil
	}), nil
}

func (s *ctMTASession) Mail(string, *smtp.MailOptions) error { return nil }

func (s *ctMTASession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *ctMTASession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.mu.Lock()
	s.m.mails = append(s.m.mails, strings.Join(s.to, ",")+"\n"+string(raw))
	s.m.mu.Unlock()
	return nil
}

func (s *ctMTASession) Reset()        { s.to = nil }
func (s *ctMTASession) Logout() error { return nil }

// TestContractEmailReply: the agent's reply to a customer who wrote by email goes out
// over SMTP_URL, From EMAIL_FROM, to the customer, threaded to their mail, and its
// delivery_status moves on from queued.
func TestContractEmailReply(t *testing.T) {
	mb := newCTMailbox(t)
	mta := newCTMTA(t)
	o := ctNewOrg(t, store.SQLite, "IMAP_URL="+mb.url, "SMTP_URL="+mta.url, "EMAIL_FROM=Acme Help <help@acme.example>")
	mb.deliver([]string{"From: Pat <pat@customer.example>", "To: support@example.com", "Subject: Broken lamp",
		"Message-ID: <contract-lamp@customer.example>", "Date: " + time.Now().UTC().Format(time.RFC1123Z)}, "The lamp flickers.")
	var id int64
	deadline := time.Now().Add(20 * time.Second)
	for id == 0 {
		if got := ctListIssues(t, o.alice, "q=lamp"); len(got) == 1 {
			id = ctNum(got[0], "id")
		} else if time.Now().After(deadline) {
			t.Fatalf("the mail made no issue within 20 s\n%s", o.n.stderr())
		} else {
			time.Sleep(100 * time.Millisecond)
		}
	}
	o.alice.want(200, "POST", fmt.Sprintf("/api/issues/%d/replies", id), map[string]any{"body": "A new lamp is on its way."}, nil)
	for len(mta.received()) == 0 {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatalf("no mail reached SMTP_URL\n%s", o.n.stderr())
		}
		time.Sleep(50 * time.Millisecond)
	}
	mail := mta.received()[0]
	for _, want := range []string{"pat@customer.example\n", "help@acme.example", "<contract-lamp@customer.example>", "A new lamp is on its way."} {
		if !strings.Contains(mail, want) {
			t.Errorf("the reply mail lacks %q:\n%s", want, mail)
		}
	}
	mta.mu.Lock()
	logins := strings.Join(mta.logins, " ")
	mta.mu.Unlock()
	if logins != "mailer:smtp-password" {
		t.Errorf("SMTP logins %q; want the credentials of SMTP_URL", logins)
	}
	ctWaitComment(t, o.alice, id, func(c map[string]any) bool {
		return c["kind"] == "reply" && c["delivery_status"] != "queued" && c["delivery_status"] != nil
	})
}
