package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTP sends notification email over SMTP_URL. It follows the rules of the email reply
// connector (channels/email): smtps:// is TLS from the start; smtp:// requires STARTTLS,
// except to a loopback host that does not offer it. That connector's sender is bound to
// the reply outbox, so notify has this small one of its own.
type SMTP struct {
	url    *url.URL
	from   *mail.Address
	addr   string
	domain string
	tls    *tls.Config
	now    func() time.Time
}

// NewSMTP checks the URL and sender and returns the mailer. tlsConfig may be nil.
func NewSMTP(u *url.URL, from *mail.Address, tlsConfig *tls.Config, now func() time.Time) (*SMTP, error) {
	if u == nil || from == nil {
		return nil, errors.New("notify: SMTP needs a URL and a From address")
	}
	if u.Scheme != "smtp" && u.Scheme != "smtps" {
		return nil, fmt.Errorf("notify: SMTP URL must start with smtps:// or smtp://, not %s://", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return nil, errors.New("notify: SMTP URL needs a host")
	}
	_, domain, ok := strings.Cut(from.Address, "@")
	if !ok || domain == "" {
		return nil, fmt.Errorf("notify: From address %q has no domain", from.Address)
	}
	port := u.Port()
	if port == "" {
		port = "587"
		if u.Scheme == "smtps" {
			port = "465"
		}
	}
	if now == nil {
		now = time.Now
	}
	return &SMTP{url: u, from: from, addr: net.JoinHostPort(host, port), domain: strings.ToLower(domain), tls: tlsConfig, now: now}, nil
}

// Message renders m as a multipart/alternative message (text/plain and text/html).
func (s *SMTP) Message(m *Mail) ([]byte, error) {
	var h gomail.Header
	h.SetDate(s.now())
	h.SetAddressList("From", []*gomail.Address{{Name: s.from.Name, Address: s.from.Address}})
	h.SetAddressList("To", []*gomail.Address{{Name: m.To.Name, Address: m.To.Address}})
	h.SetSubject(m.Subject)
	var b [12]byte
	_, _ = rand.Read(b[:])
	h.Set("Message-Id", "<notify."+strconv.FormatInt(s.now().UnixMilli(), 36)+"."+hex.EncodeToString(b[:])+"@"+s.domain+">")
	// Automatic mail: auto-responders must not answer it (RFC 3834), and our own intake
	// ignores it should it ever come back.
	h.Set("Auto-Submitted", "auto-generated")
	h.Set("MIME-Version", "1.0")
	var buf bytes.Buffer
	w, err := gomail.CreateInlineWriter(&buf, h)
	if err != nil {
		return nil, err
	}
	for _, part := range []struct{ typ, text string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
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

// Send implements Mailer: one SMTP session, one recipient.
func (s *SMTP) Send(ctx context.Context, m *Mail) error {
	raw, err := s.Message(m)
	if err != nil {
		return fmt.Errorf("notify: compose mail: %w", err)
	}
	host := s.url.Hostname()
	tlsConfig := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if s.tls != nil {
		tlsConfig = s.tls.Clone()
		if tlsConfig.ServerName == "" {
			tlsConfig.ServerName = host
		}
	}
	d := &net.Dialer{Timeout: 30 * time.Second}
	dial := func() (net.Conn, error) {
		conn, err := d.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			return nil, fmt.Errorf("notify: connect to %s: %w", s.addr, err)
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		}
		return conn, nil
	}
	conn, err := dial()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer func() { stop() }()
	var c *smtp.Client
	switch {
	case s.url.Scheme == "smtps":
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return fmt.Errorf("notify: TLS with %s: %w", s.addr, err)
		}
		c = smtp.NewClient(tc)
		if err := c.Hello(s.domain); err != nil {
			c.Close()
			return fmt.Errorf("notify: greet %s: %w", s.addr, err)
		}
	case isLoopback(host):
		c = smtp.NewClient(conn)
		if err := c.Hello(s.domain); err != nil {
			c.Close()
			return fmt.Errorf("notify: greet %s: %w", s.addr, err)
		}
		if ok, _ := c.Extension("STARTTLS"); !ok {
			break
		}
		// The server offers TLS: use it, on a fresh connection.
		c.Close()
		stop()
		if conn, err = dial(); err != nil {
			return err
		}
		stop = context.AfterFunc(ctx, func() { conn.Close() })
		if c, err = smtp.NewClientStartTLS(conn, tlsConfig); err != nil {
			conn.Close()
			return fmt.Errorf("notify: STARTTLS with %s: %w", s.addr, err)
		}
	default:
		if c, err = smtp.NewClientStartTLS(conn, tlsConfig); err != nil {
			conn.Close()
			return fmt.Errorf("notify: STARTTLS (which smtp:// requires) with %s: %w", s.addr, err)
		}
	}
	defer c.Close()
	if u := s.url.User; u != nil && u.Username() != "" {
		pw, _ := u.Password()
		if err := c.Auth(sasl.NewPlainClient("", u.Username(), pw)); err != nil {
			return fmt.Errorf("notify: log in to %s: %w", s.addr, err)
		}
	}
	if err := c.SendMail(s.from.Address, []string{m.To.Address}, bytes.NewReader(raw)); err != nil {
		return fmt.Errorf("notify: send to %s: %w", s.addr, err)
	}
	_ = c.Quit() // the message was accepted; a failed QUIT does not undo that
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
