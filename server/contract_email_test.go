package server_test

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/switchboard-hq/switchboard/store"
)

// ctMailbox is an IMAP server on loopback (the library's in-memory one): the mailbox
// IMAP_URL points the binary at, and the test's way to "send" customer mail.
type ctMailbox struct {
	t    *testing.T
	user *imapmemserver.User
	url  string
}

// ctIdle makes IDLE report every change promptly (the in-memory server only reports
// changes made after IDLE registered).
type ctIdle struct{ imapserver.Session }

func (s ctIdle) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	tk := time.NewTicker(5 * time.Millisecond)
	defer tk.Stop()
	for {
		if err := s.Session.Poll(w, true); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-tk.C:
		}
	}
}

type ctNoLog struct{}

func (ctNoLog) Printf(string, ...any) {}

func newCTMailbox(t *testing.T) *ctMailbox {
	mem := imapmemserver.New()
	user := imapmemserver.NewUser("support@example.com", "mail-password")
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return ctIdle{mem.NewSession()}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIdle: {}},
		InsecureAuth: true,
		Logger:       ctNoLog{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	u := url.URL{Scheme: "imap", User: url.UserPassword("support@example.com", "mail-password"), Host: ln.Addr().String(), Path: "/INBOX"}
	return &ctMailbox{t: t, user: user, url: u.String()}
}

// deliver puts a mail in INBOX; headers are "Name: value" lines.
func (m *ctMailbox) deliver(headers []string, body string) {
	m.t.Helper()
	raw := strings.Join(headers, "\r\n") + "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"
	if _, err := m.user.Append("INBOX", bytes.NewReader([]byte(raw)), &imap.AppendOptions{Time: time.Now()}); err != nil {
		m.t.Fatal(err)
	}
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
