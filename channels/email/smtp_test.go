package email_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/switchboard-hq/switchboard/channels/email"
	"github.com/switchboard-hq/switchboard/internal/outbox"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

// smtpSink is a real SMTP server (go-smtp) on loopback that keeps what it is sent. Its
// hook may refuse a stage ("mail", "rcpt", "data") with an *smtp.SMTPError, or cut the
// connection after the message was received (errCut).
type smtpSink struct {
	url  *url.URL
	mu   sync.Mutex
	got  []sunk
	hook func(stage string) error
	auth []string // user names that logged in
}

type sunk struct {
	from string
	to   []string
	raw  []byte
}

var errCut = errors.New("cut the connection")

func newSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	k := &smtpSink{}
	srv := smtp.NewServer(sinkBackend{k})
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	k.url = &url.URL{Scheme: "smtp", User: url.UserPassword("mailer", "pw"), Host: ln.Addr().String()}
	return k
}

func (k *smtpSink) setHook(h func(stage string) error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.hook = h
}

func (k *smtpSink) check(stage string) error {
	k.mu.Lock()
	h := k.hook
	k.mu.Unlock()
	if h == nil {
		return nil
	}
	return h(stage)
}

func (k *smtpSink) sent() []sunk {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]sunk(nil), k.got...)
}

type sinkBackend struct{ k *smtpSink }

func (b sinkBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &sinkSession{k: b.k, conn: c}, nil
}

type sinkSession struct {
	k    *smtpSink
	conn *smtp.Conn
	cur  sunk
}

func (s *sinkSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *sinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "mailer" || pass != "pw" {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.k.mu.Lock()
		s.k.auth = append(s.k.auth, user)
		s.k.mu.Unlock()
		return nil
	}), nil
}

func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	if err := s.k.check("mail"); err != nil {
		return err
	}
	s.cur = sunk{from: from}
	return nil
}

func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := s.k.check("rcpt"); err != nil {
		return err
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *sinkSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := s.k.check("data"); errors.Is(err, errCut) {
		// Taken, but the client never hears so.
		s.k.mu.Lock()
		s.k.got = append(s.k.got, sunk{from: s.cur.from, to: s.cur.to, raw: raw})
		s.k.mu.Unlock()
		s.conn.Conn().Close()
		return err
	} else if err != nil {
		return err
	}
	s.k.mu.Lock()
	s.k.got = append(s.k.got, sunk{from: s.cur.from, to: s.cur.to, raw: raw})
	s.k.mu.Unlock()
	return nil
}

func (s *sinkSession) Reset()        { s.cur = sunk{} }
func (s *sinkSession) Logout() error { return nil }

func newConnector(t *testing.T, db *store.DB, u *url.URL, now func() time.Time) *email.SMTP {
	t.Helper()
	c, err := email.NewSMTP(email.SMTPConfig{URL: u, From: &mail.Address{Name: "Acme Support", Address: "help@acme.test"},
		DB: db, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func replyMessage(t *testing.T, body string) *outbox.Message {
	t.Helper()
	p, _ := json.Marshal(map[string]any{"author_id": 1, "subject": "Invoice wrong", "from": "support@acme.test",
		"to_name": "Jane Doe", "in_reply_to": "<cust-1@example.com>"})
	return &outbox.Message{ID: 1, CommentID: 7, IssueID: 42, ChannelID: 1, Connector: email.ConnectorName,
		To: "jane@example.com", Body: body, Payload: p, Attempt: 1}
}

func TestSMTPDeliversAThreadedReply(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	sink := newSMTPSink(t)
	c := newConnector(t, db, sink.url, time.Now)
	rec, err := c.Deliver(context.Background(), replyMessage(t, "Hello Jane,\nfixed <b>now</b> & done."))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rec.ExternalID, "<") || !strings.HasSuffix(rec.ExternalID, "@acme.test>") {
		t.Fatalf("Message-ID %q: want <…@acme.test>", rec.ExternalID)
	}
	got := sink.sent()
	if len(got) != 1 || got[0].from != "help@acme.test" || len(got[0].to) != 1 || got[0].to[0] != "jane@example.com" {
		t.Fatalf("envelope: %+v", got)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(got[0].raw))
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Header
	for k, want := range map[string]string{
		"Message-Id":  rec.ExternalID,
		"In-Reply-To": "<cust-1@example.com>",
		"References":  "<cust-1@example.com>",
		"Subject":     "Re: Invoice wrong [#42]",
		"Reply-To":    `"Acme Support" <support@acme.test>`,
	} {
		if v := h.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	if from, _ := h.AddressList("From"); len(from) != 1 || from[0].Address != "help@acme.test" || from[0].Name != "Acme Support" {
		t.Errorf("From = %q", h.Get("From"))
	}
	if to, _ := h.AddressList("To"); len(to) != 1 || to[0].Address != "jane@example.com" || to[0].Name != "Jane Doe" {
		t.Errorf("To = %q", h.Get("To"))
	}
	if v := h.Get("Auto-Submitted"); v != "" {
		t.Errorf("Auto-Submitted = %q on a human reply", v)
	}
	parsed, err := email.Parse(got[0].raw, email.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(parsed.Text, "fixed <b>now</b> & done.") {
		t.Errorf("text part: %q", parsed.Text)
	}
	raw := string(got[0].raw)
	for _, want := range []string{"multipart/alternative", "text/plain", "text/html", "&lt;b&gt;now&lt;/b&gt; &amp; done.", "Hello Jane,<br>"} {
		if !strings.Contains(raw, want) {
			t.Errorf("mail lacks %q:\n%s", want, raw)
		}
	}
	sink.mu.Lock()
	if len(sink.auth) != 1 {
		t.Errorf("logins: %v", sink.auth)
	}
	sink.mu.Unlock()
}

func TestSMTPOutcomes(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	sink := newSMTPSink(t)
	c := newConnector(t, db, sink.url, time.Now)
	outcome := func(hook func(string) error) *outbox.Error {
		t.Helper()
		sink.setHook(hook)
		_, err := c.Deliver(context.Background(), replyMessage(t, "hi"))
		var e *outbox.Error
		if !errors.As(err, &e) {
			t.Fatalf("Deliver: %v, want an *outbox.Error", err)
		}
		return e
	}
	at := func(stage string, err error) func(string) error {
		return func(s string) error {
			if s == stage {
				return err
			}
			return nil
		}
	}
	e := outcome(at("rcpt", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}))
	if e.Outcome != outbox.Transient || e.Code != "451" {
		t.Errorf("451: %+v", e)
	}
	e = outcome(at("rcpt", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}))
	if e.Outcome != outbox.Permanent || e.Code != "550" || !strings.Contains(e.Reason, "no such user") {
		t.Errorf("550: %+v", e)
	}
	e = outcome(at("data", &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "rejected as spam"}))
	if e.Outcome != outbox.Permanent || e.Code != "554" {
		t.Errorf("554 after data: %+v", e)
	}
	e = outcome(at("data", errCut))
	if e.Outcome != outbox.Indeterminate {
		t.Errorf("cut after DATA: %+v", e)
	}
	// Nobody listening: nothing was sent.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := *sink.url
	dead.Host = ln.Addr().String()
	ln.Close()
	_, err := newConnector(t, db, &dead, time.Now).Deliver(context.Background(), replyMessage(t, "hi"))
	if !errors.As(err, &e) || e.Outcome != outbox.Transient {
		t.Errorf("connection refused: %v", err)
	}
	// Wrong credentials are a 535: permanent, with the server's word.
	bad := *sink.url
	bad.User = url.UserPassword("mailer", "nope")
	sink.setHook(nil)
	_, err = newConnector(t, db, &bad, time.Now).Deliver(context.Background(), replyMessage(t, "hi"))
	if !errors.As(err, &e) || e.Outcome != outbox.Permanent || e.Code != "535" {
		t.Errorf("bad login: %v", err)
	}
}

func TestReplySubjectAndHTML(t *testing.T) {
	for _, c := range []struct {
		in   string
		id   int64
		want string
	}{
		{"Invoice", 3, "Re: Invoice [#3]"},
		{"Re: Invoice", 3, "Re: Invoice [#3]"},
		{"RE: AW: Invoice [#3]", 3, "Re: Invoice [#3]"},
		{"", 9, "Re: [#9]"},
	} {
		if got := email.ReplySubject(c.in, c.id); got != c.want {
			t.Errorf("ReplySubject(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := email.ReplyHTML("a<b>\n\"c\" & d"); !strings.Contains(got, "a&lt;b&gt;<br>\r\n&#34;c&#34; &amp; d") {
		t.Errorf("ReplyHTML: %q", got)
	}
}
