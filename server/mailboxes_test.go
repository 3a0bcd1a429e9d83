package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/storetest"
)

// newIMAPMailboxAs is a second real IMAP server on loopback, for another account.
func newIMAPMailboxAs(t *testing.T, user, password string) *imapMailbox {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser(user, password)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return idlePolls{mem.NewSession()}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
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

func (e *mailEnv) send(c *http.Client, method, path string, v any) (int, string) {
	e.t.Helper()
	var body io.Reader
	if v != nil {
		b, _ := json.Marshal(v)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.base+path, body)
	if v != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type mailIssueList struct {
	Issues []struct {
		ID        int64  `json:"id"`
		ChannelID int64  `json:"channel_id"`
		Title     string `json:"title"`
	} `json:"issues"`
}

func (l *mailIssueList) in(channel int64) int {
	n := 0
	for _, is := range l.Issues {
		if is.ChannelID == channel {
			n++
		}
	}
	return n
}

// TestMailboxesAPI: an admin adds a second mailbox over the API and it is read at once,
// into its own channel; agents are refused; passwords are never served; deleting it stops
// intake while the first mailbox goes on.
func TestMailboxesAPI(t *testing.T) {
	for _, d := range storetest.Engines {
		t.Run(string(d), func(t *testing.T) {
			e := startWithMail(t, d)
			admin := e.login("ada", accounts.RoleAdmin)
			agent := e.login("bob", accounts.RoleAgent)
			sales := newIMAPMailboxAs(t, "sales@example.org", "s3cret-sales")

			code, body := e.send(agent, http.MethodPost, "/api/email/mailboxes", map[string]string{"url": sales.url.String()})
			if code != 403 || !strings.Contains(body, "only admins may manage mailboxes") {
				t.Fatalf("agent adds a mailbox: %d %s; want 403 naming the rule", code, body)
			}
			for _, path := range []string{"/api/email/mailboxes", "/api/email/mailboxes/1"} {
				method := http.MethodGet
				if strings.HasSuffix(path, "/1") {
					method = http.MethodDelete
				}
				if code, body := e.send(agent, method, path, nil); code != 403 || !strings.Contains(body, "only admins") {
					t.Errorf("agent %s %s: %d %s; want 403", method, path, code, body)
				}
			}
			for _, bad := range []string{"https://sales%40example.org:pw@127.0.0.1/INBOX", "imap://127.0.0.1/INBOX",
				"imap://sales%40example.org@127.0.0.1/INBOX", "imaps://sales@"} {
				if code, body := e.send(admin, http.MethodPost, "/api/email/mailboxes", map[string]string{"url": bad}); code != 400 {
					t.Errorf("POST %s: %d %s; want 400", bad, code, body)
				}
			}
			if code, body := e.send(admin, http.MethodPost, "/api/email/mailboxes",
				map[string]string{"url": "imap://sales:pw@127.0.0.1/INBOX"}); code != 400 || !strings.Contains(body, "address") {
				t.Errorf("user name not an address, no address: %d %s; want 400 naming address", code, body)
			}

			code, body = e.send(admin, http.MethodPost, "/api/email/mailboxes", map[string]string{"url": sales.url.String()})
			if code != 201 {
				t.Fatalf("admin adds a mailbox: %d %s", code, body)
			}
			var added struct {
				Mailbox struct {
					ID      int64  `json:"id"`
					Address string `json:"address"`
					Name    string `json:"name"`
					URL     string `json:"url"`
				} `json:"mailbox"`
			}
			if err := json.Unmarshal([]byte(body), &added); err != nil {
				t.Fatal(err)
			}
			mb := added.Mailbox
			if mb.Address != "sales@example.org" || mb.Name != "Email sales@example.org" || strings.Contains(body, "s3cret") ||
				mb.URL != "imap://sales%40example.org@"+sales.url.Host+"/INBOX" {
				t.Errorf("added %s", body)
			}

			code, body = e.send(admin, http.MethodGet, "/api/email/mailboxes", nil)
			var list struct {
				Mailboxes []struct {
					ID      int64  `json:"id"`
					Address string `json:"address"`
					URL     string `json:"url"`
				} `json:"mailboxes"`
			}
			if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list.Mailboxes) != 2 {
				t.Fatalf("GET mailboxes: %d %s; want the IMAP_URL mailbox and the new one", code, body)
			}
			if strings.Contains(body, "s3cret") || strings.Contains(body, ":pw@") || list.Mailboxes[0].Address != "support@example.org" {
				t.Errorf("GET mailboxes serves a password or misses the first mailbox: %s", body)
			}

			// A mail to the new mailbox becomes an issue in its channel, without a restart.
			sales.deliver(t, "From: Sam <sam@example.com>\nTo: sales@example.org\nSubject: Quote\nMessage-ID: <quote@example.com>\n\nA quote, please.\n")
			var issues mailIssueList
			e.waitJSON(agent, "/api/issues", &issues, func() bool { return issues.in(mb.ID) == 1 })

			// Deleted: intake stops at once. A later mail to it is not read, while the first
			// mailbox goes on.
			if code, body := e.send(admin, http.MethodDelete, fmt.Sprintf("/api/email/mailboxes/%d", mb.ID), nil); code != 204 {
				t.Fatalf("DELETE: %d %s", code, body)
			}
			sales.deliver(t, "From: Tim <tim@example.com>\nTo: sales@example.org\nSubject: Late\nMessage-ID: <late@example.com>\n\nToo late.\n")
			e.box.deliver(t, "From: Una <una@example.com>\nTo: support@example.org\nSubject: Help\nMessage-ID: <help@example.com>\n\nHelp.\n")
			e.waitJSON(agent, "/api/issues", &issues, func() bool { return issues.in(mb.ID) != 1 || len(issues.Issues) == 2 })
			for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); {
				if _, b := e.get(agent, "/api/issues"); json.Unmarshal(b, &issues) != nil || issues.in(mb.ID) != 1 {
					t.Fatalf("a mail appended after DELETE was read: %s", b)
				}
				time.Sleep(20 * time.Millisecond)
			}

			if code, body := e.send(admin, http.MethodDelete, fmt.Sprintf("/api/email/mailboxes/%d", mb.ID), nil); code != 404 {
				t.Errorf("DELETE again: %d %s; want 404", code, body)
			}
			code, body = e.send(admin, http.MethodGet, "/api/email/mailboxes", nil)
			if code != 200 || strings.Contains(body, "sales@") {
				t.Errorf("GET after DELETE: %d %s", code, body)
			}
			// The channel and its issue stay.
			if _, b := e.get(agent, "/api/channels"); !bytes.Contains(b, []byte(`"address":"sales@example.org"`)) {
				t.Errorf("channel gone after DELETE: %s", b)
			}
		})
	}
}
