package email

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/switchboard-hq/switchboard/internal/outbox"
	"github.com/switchboard-hq/switchboard/store"
)

// ConnectorName is the outbox connector of email replies.
const ConnectorName = "email"

// SMTPConfig configures the sender of email replies.
type SMTPConfig struct {
	// URL is SMTP_URL: smtps://user:password@host[:465] (TLS from the start) or
	// smtp://user:password@host[:587] (STARTTLS required; plain text only to a loopback
	// host). Credentials are optional.
	URL *url.URL
	// From is EMAIL_FROM: the From of every reply; its domain names our Message-IDs.
	From *mail.Address
	// TLS is the TLS configuration; nil: the system's roots, the URL's host as name.
	TLS *tls.Config
	// DB holds the customers' stored mail (their References) and the outbox the
	// rate limit counts.
	DB *store.DB
	// Limiter caps the mail one address receives; nil: NewLimiter(DB, Now).
	Limiter *Limiter
	Log     *slog.Logger
	Now     func() time.Time
}

// SMTP sends email replies over SMTP. It is the outbox's "email" connector.
type SMTP struct {
	cfg    SMTPConfig
	addr   string
	domain string
}

var _ outbox.Connector = (*SMTP)(nil)

// NewSMTP checks cfg and returns the sender.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	if cfg.URL == nil || cfg.From == nil || cfg.DB == nil {
		return nil, errors.New("email: SMTPConfig needs URL, From and DB")
	}
	if cfg.URL.Scheme != "smtp" && cfg.URL.Scheme != "smtps" {
		return nil, fmt.Errorf("email: SMTP URL must start with smtps:// or smtp://, not %s://", cfg.URL.Scheme)
	}
	host := cfg.URL.Hostname()
	if host == "" {
		return nil, errors.New("email: SMTP URL needs a host")
	}
	_, domain, ok := strings.Cut(cfg.From.Address, "@")
	if !ok || domain == "" {
		return nil, fmt.Errorf("email: From address %q has no domain", cfg.From.Address)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Limiter == nil {
		cfg.Limiter = NewLimiter(cfg.DB, cfg.Now)
	}
	port := cfg.URL.Port()
	if port == "" {
		port = "587"
		if cfg.URL.Scheme == "smtps" {
			port = "465"
		}
	}
	return &SMTP{cfg: cfg, addr: net.JoinHostPort(host, port), domain: strings.ToLower(domain)}, nil
}

// replyPayload is what the email connector reads from an outbox message's payload (the
// fields server.ReplyPayload writes).
type replyPayload struct {
	Subject   string `json:"subject"`
	From      string `json:"from"` // the channel's mailbox address
	ToName    string `json:"to_name"`
	InReplyTo string `json:"in_reply_to"`
}

// Deliver sends one reply and classifies a failure for the outbox: transient when the
// address had its share of mail for now (the rate limit), nothing was sent (no
// connection, a 4xx answer); permanent for a 5xx answer (no such user), with the code and
// the server's text; indeterminate when the connection broke after the message's DATA
// began, since the server may have taken it.
func (s *SMTP) Deliver(ctx context.Context, m *outbox.Message) (*outbox.Receipt, error) {
	var p replyPayload
	if len(m.Payload) > 0 {
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			return nil, &outbox.Error{Outcome: outbox.Permanent, Reason: "the reply's stored details are unreadable", Err: err}
		}
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return nil, &outbox.Error{Outcome: outbox.Permanent, Reason: fmt.Sprintf("%q is not a valid email address", m.To), Err: err}
	}
	wait, err := s.cfg.Limiter.Wait(ctx, to.Address, m.ID)
	if err != nil {
		return nil, &outbox.Error{Outcome: outbox.Transient, Reason: "could not check the rate limit", Err: err}
	}
	if wait > 0 {
		return nil, &outbox.Error{Outcome: outbox.Transient, Code: "rate_limited", RetryAfter: wait,
			Reason: fmt.Sprintf("%s already received %d mails from us in the last %s; this one waits about %s",
				to.Address, s.cfg.Limiter.Max, s.cfg.Limiter.Window, wait.Round(time.Second))}
	}
	refs := s.references(ctx, p.InReplyTo)
	id := s.newMessageID()
	raw, err := s.compose(m, p, to, id, refs)
	if err != nil {
		return nil, &outbox.Error{Outcome: outbox.Permanent, Reason: "could not compose the mail", Err: err}
	}
	if err := s.send(ctx, to.Address, raw); err != nil {
		return nil, err
	}
	return &outbox.Receipt{ExternalID: id, Status: "sent"}, nil
}

// newMessageID returns a fresh Message-ID in our domain, with its angle brackets.
func (s *SMTP) newMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "<" + strconv.FormatInt(s.cfg.Now().UnixMilli(), 36) + "." + hex.EncodeToString(b[:]) + "@" + s.domain + ">"
}

// references is the References of a reply to the mail inReplyTo: that mail's own
// References (from the stored original, when there is one) followed by its Message-ID.
func (s *SMTP) references(ctx context.Context, inReplyTo string) []string {
	if inReplyTo == "" {
		return nil
	}
	var raw []byte
	err := s.cfg.DB.QueryRowContext(ctx, `SELECT raw FROM email_messages WHERE message_id = $1`, inReplyTo).Scan(&raw)
	var refs []string
	if err == nil {
		if h, err := ReadHeader(raw); err == nil {
			refs = msgIDs(h, "References")
			if len(refs) == 0 {
				refs = msgIDs(h, "In-Reply-To")
			}
		}
	} else if !errors.Is(store.Err(err), store.ErrNotFound) {
		s.cfg.Log.Warn("email: reading the References of the mail replied to failed", "message_id", inReplyTo, "err", err)
	}
	// RFC 5322 3.6.4: keep the thread's start and its latest messages when it is long.
	if len(refs) > 20 {
		refs = append(refs[:1:1], refs[len(refs)-19:]...)
	}
	return append(refs, inReplyTo)
}

// rePrefix matches the reply and forward prefixes of a subject ("Re: AW: ").
var rePrefix = regexp.MustCompile(`(?i)^\s*((re|aw|sv|antw|fwd?)\s*(\[\d+\])?\s*:\s*)+`)

// ReplySubject is the subject of a reply on issue id whose subject is subject:
// "Re: <subject> [#<id>]", without doubling a Re: or the token.
func ReplySubject(subject string, issueID int64) string {
	s := strings.TrimSpace(rePrefix.ReplaceAllString(subject, ""))
	token := "[#" + strconv.FormatInt(issueID, 10) + "]"
	if !strings.Contains(s, token) {
		if s == "" {
			s = token
		} else {
			s += " " + token
		}
	}
	return "Re: " + s
}

// ReplyHTML is the HTML alternative of a reply's text: escaped, newlines as <br>.
func ReplyHTML(text string) string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"></head><body>\r\n<div>")
	for i, line := range strings.Split(text, "\n") {
		if i > 0 {
			b.WriteString("<br>\r\n")
		}
		b.WriteString(html.EscapeString(line))
	}
	b.WriteString("</div>\r\n</body></html>\r\n")
	return b.String()
}

// compose writes the reply as a multipart/alternative mail: text/plain and text/html.
func (s *SMTP) compose(m *outbox.Message, p replyPayload, to *mail.Address, id string, refs []string) ([]byte, error) {
	var h gomail.Header
	h.SetDate(s.cfg.Now())
	h.SetAddressList("From", []*gomail.Address{{Name: s.cfg.From.Name, Address: s.cfg.From.Address}})
	name := to.Name
	if name == "" {
		name = p.ToName
	}
	h.SetAddressList("To", []*gomail.Address{{Name: name, Address: to.Address}})
	if p.From != "" && !strings.EqualFold(p.From, s.cfg.From.Address) {
		// Answers go to the mailbox the customer wrote to.
		h.SetAddressList("Reply-To", []*gomail.Address{{Name: s.cfg.From.Name, Address: p.From}})
	}
	h.SetSubject(ReplySubject(p.Subject, m.IssueID))
	h.Set("Message-Id", id)
	if len(refs) > 0 {
		h.Set("In-Reply-To", refs[len(refs)-1])
		h.Set("References", strings.Join(refs, " "))
	}
	h.Set("MIME-Version", "1.0")
	var buf bytes.Buffer
	w, err := gomail.CreateInlineWriter(&buf, h)
	if err != nil {
		return nil, err
	}
	body := strings.ReplaceAll(m.Body, "\r\n", "\n")
	for _, part := range []struct{ typ, text string }{
		{"text/plain", strings.ReplaceAll(body, "\n", "\r\n") + "\r\n"},
		{"text/html", ReplyHTML(body)},
	} {
		var ph gomail.InlineHeader
		ph.SetContentType(part.typ, map[string]string{"charset": "utf-8"})
		ph.Set("Content-Transfer-Encoding", "quoted-printable")
		pw, err := w.CreatePart(ph)
		if err != nil {
			return nil, err
		}
		if _, err := pw.Write([]byte(part.text)); err != nil {
			return nil, err
		}
		if err := pw.Close(); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// send delivers raw to rcpt in one SMTP session, classifying failures.
func (s *SMTP) send(ctx context.Context, rcpt string, raw []byte) error {
	u := s.cfg.URL
	host := u.Hostname()
	tlsConfig := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if s.cfg.TLS != nil {
		tlsConfig = s.cfg.TLS.Clone()
		if tlsConfig.ServerName == "" {
			tlsConfig.ServerName = host
		}
	}
	// Nothing was sent until DATA began: every failure before it is transient unless the
	// server said 5xx.
	before := func(what string, err error) error {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return smtpError(what, se)
		}
		return &outbox.Error{Outcome: outbox.Transient,
			Reason: fmt.Sprintf("could not %s at %s (%s); nothing was sent", what, s.addr, shortErr(err)), Err: err}
	}
	d := &net.Dialer{Timeout: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return before("connect to the mail server", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// A connection closes when the attempt's time is up.
	watch := func(cn net.Conn) func() bool { return context.AfterFunc(ctx, func() { cn.Close() }) }
	stop := watch(conn)
	defer func() { stop() }()
	var c *smtp.Client
	switch {
	case u.Scheme == "smtps":
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return before("start TLS with the mail server", err)
		}
		c = smtp.NewClient(tc)
		if err := c.Hello(s.domain); err != nil {
			c.Close()
			return before("greet the mail server", err)
		}
	case isLoopback(host):
		// Plain text is allowed to a loopback host, unless the server offers TLS.
		c = smtp.NewClient(conn)
		if err := c.Hello(s.domain); err != nil {
			c.Close()
			return before("greet the mail server", err)
		}
		if ok, _ := c.Extension("STARTTLS"); !ok {
			break
		}
		c.Close()
		stop()
		if conn, err = d.DialContext(ctx, "tcp", s.addr); err != nil {
			return before("connect to the mail server", err)
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		}
		stop = watch(conn)
		fallthrough
	default:
		// smtp:// elsewhere: STARTTLS or nothing.
		if c, err = smtp.NewClientStartTLS(conn, tlsConfig); err != nil {
			conn.Close()
			return before("start TLS (STARTTLS, which smtp:// requires; smtps:// is TLS from the start) with the mail server", err)
		}
	}
	defer c.Close()
	if u.User != nil && u.User.Username() != "" {
		pw, _ := u.User.Password()
		if err := c.Auth(sasl.NewPlainClient("", u.User.Username(), pw)); err != nil {
			return before("log in to the mail server", err)
		}
	}
	if err := c.Mail(s.cfg.From.Address, nil); err != nil {
		return before("send MAIL FROM", err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return before("send RCPT TO", err)
	}
	w, err := c.Data()
	if err != nil {
		return before("start DATA", err)
	}
	// From here the server may take the message at any moment we cannot see.
	after := func(err error) error {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return smtpError("deliver the message", se)
		}
		reason := "the connection to the mail server broke after the message was sent (" + shortErr(err) + ")"
		if ctx.Err() != nil {
			reason = "the mail server did not answer in time after the message was sent"
		}
		return &outbox.Error{Outcome: outbox.Indeterminate, Err: err,
			Reason: reason + "; it may or may not have been delivered: check, then retry or discard"}
	}
	if _, err := w.Write(raw); err != nil {
		return after(err)
	}
	if err := w.Close(); err != nil {
		return after(err)
	}
	if err := c.Quit(); err != nil {
		s.cfg.Log.Debug("email: QUIT after a delivered message failed", "err", err)
	}
	return nil
}

// smtpError classifies an SMTP server's refusal: 4xx transient, 5xx permanent.
func smtpError(what string, se *smtp.SMTPError) *outbox.Error {
	text := strings.TrimSpace(se.Message)
	if len(text) > 300 {
		text = text[:300] + "…"
	}
	reason := fmt.Sprintf("the mail server answered %d", se.Code)
	if se.EnhancedCode != (smtp.EnhancedCode{}) && se.EnhancedCode != smtp.NoEnhancedCode {
		reason += fmt.Sprintf(" %d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	}
	if text != "" {
		reason += ": " + text
	}
	reason += " (to " + what + ")"
	code := strconv.Itoa(se.Code)
	if se.Code >= 400 && se.Code < 500 {
		return &outbox.Error{Outcome: outbox.Transient, Code: code, Reason: reason, Err: se}
	}
	return &outbox.Error{Outcome: outbox.Permanent, Code: code, Reason: reason, Err: se}
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
