package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// dial connects as the URL says: imaps:// over TLS; imap:// with STARTTLS, or in plain
// text when the host is a loopback address (and the server does not insist on TLS).
func (s *Service) dial(ctx context.Context, opts *imapclient.Options) (*imapclient.Client, error) {
	u := s.cfg.URL
	host := u.Hostname()
	port := u.Port()
	if port == "" {
		port = "143"
		if u.Scheme == "imaps" {
			port = "993"
		}
	}
	addr := net.JoinHostPort(host, port)
	tlsConfig := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if s.cfg.TLS != nil {
		tlsConfig = s.cfg.TLS.Clone()
		if tlsConfig.ServerName == "" {
			tlsConfig.ServerName = host
		}
	}
	opts.TLSConfig = tlsConfig
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("email: connect to %s: %w", addr, err)
	}
	switch {
	case u.Scheme == "imaps":
		tc := tls.Client(conn, tlsConfig)
		hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("email: TLS with %s: %w", addr, err)
		}
		return imapclient.New(tc, opts), nil
	case isLoopback(host):
		c := imapclient.New(conn, opts)
		if err := c.WaitGreeting(); err != nil {
			c.Close()
			return nil, fmt.Errorf("email: greeting from %s: %w", addr, err)
		}
		caps := c.Caps()
		if !caps.Has(imap.CapLoginDisabled) || !caps.Has(imap.CapStartTLS) {
			return c, nil
		}
		// The server wants TLS even on loopback: start over with STARTTLS.
		c.Close()
		if conn, err = d.DialContext(ctx, "tcp", addr); err != nil {
			return nil, fmt.Errorf("email: connect to %s: %w", addr, err)
		}
		fallthrough
	default:
		c, err := imapclient.NewStartTLS(conn, opts)
		if err != nil {
			return nil, fmt.Errorf("email: STARTTLS with %s (imap:// needs it except on loopback; use imaps:// for TLS from the start): %w", addr, err)
		}
		return c, nil
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// session is one connection's life: log in, then select, take new mail and wait for
// more, until an error or ctx ends. connected is called after the first complete pass.
func (s *Service) session(ctx context.Context, connected func()) error {
	updates := make(chan struct{}, 1)
	c, err := s.dial(ctx, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					select {
					case updates <- struct{}{}:
					default:
					}
				}
			},
		},
	})
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	if err := c.Login(s.user, s.password).Wait(); err != nil {
		return fmt.Errorf("email: log in as %s: %w", s.user, err)
	}
	caps := c.Caps()
	idle := caps.Has(imap.CapIdle) || caps.Has(imap.CapIMAP4rev2)
	first := true
	for {
		// Selected again on every pass: a fresh view of the mailbox, and a UIDVALIDITY
		// change (the mailbox recreated) is seen at once.
		sel, err := c.Select(s.mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return fmt.Errorf("email: select %s: %w", s.mailbox, err)
		}
		retry, err := s.sync(ctx, c, sel.UIDValidity)
		if err != nil {
			return err
		}
		if first {
			first = false
			mode := "poll"
			if idle {
				mode = "idle"
			}
			s.log.Info("email: reading mailbox", "mode", mode, "uidvalidity", sel.UIDValidity, "messages", sel.NumMessages)
			connected()
		}
		wait := s.cfg.PollInterval
		if idle {
			wait = s.cfg.IdleRefresh
		}
		if retry {
			wait = min(wait, s.cfg.RetryDelay)
		}
		if idle {
			err = s.idle(ctx, c, updates, wait)
		} else {
			err = sleep(ctx, c, wait)
		}
		if err != nil {
			return err
		}
	}
}

// idle waits in IDLE until the server reports new mail, wait passes, or ctx ends.
func (s *Service) idle(ctx context.Context, c *imapclient.Client, updates <-chan struct{}, wait time.Duration) error {
	cmd, err := c.Idle()
	if err != nil {
		return fmt.Errorf("email: idle: %w", err)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-updates:
	case <-t.C:
	case <-ctx.Done():
	case <-c.Closed():
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("email: idle: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("email: idle: %w", err)
	}
	return ctx.Err()
}

// sleep waits for the next poll.
func sleep(ctx context.Context, c *imapclient.Client, wait time.Duration) error {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.Closed():
		return errors.New("email: connection closed")
	}
}

// batchBytes bounds the mail fetched in one FETCH command (one mail may exceed it).
const batchBytes = 32 << 20

// maxBatch bounds the number of mails fetched in one FETCH command.
const maxBatch = 50

// sync takes every mail above the persisted position, in UID order. It reports retry
// when a mail failed and should be tried again soon; an error means the connection is
// no good.
func (s *Service) sync(ctx context.Context, c *imapclient.Client, uidValidity uint32) (retry bool, err error) {
	last, err := s.repo.position(ctx, s.channel.ID, s.mailbox, uidValidity, s.log)
	if err != nil {
		return true, nil // the database is away: try again soon, keep the connection
	}
	// UID FETCH last+1:* answers with the highest UID even when it is below last+1:
	// filter.
	sizes, err := c.Fetch(imap.UIDSet{{Start: imap.UID(last + 1), Stop: 0}}, &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
	if err != nil {
		return false, fmt.Errorf("email: list new mail: %w", err)
	}
	type item struct {
		uid  imap.UID
		size int64
	}
	var todo []item
	for _, m := range sizes {
		if uint32(m.UID) > last {
			todo = append(todo, item{m.UID, m.RFC822Size})
		}
	}
	slices.SortFunc(todo, func(a, b item) int { return int(a.uid) - int(b.uid) })
	for len(todo) > 0 {
		n, total := 0, int64(0)
		for n < len(todo) && n < maxBatch && (n == 0 || total+min(todo[n].size, s.cfg.MaxMessage) <= batchBytes) {
			total += min(todo[n].size, s.cfg.MaxMessage)
			n++
		}
		batch := todo[:n]
		todo = todo[n:]
		var set imap.UIDSet
		for _, it := range batch {
			set.AddNum(it.uid)
		}
		section := &imap.FetchItemBodySection{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: s.cfg.MaxMessage}}
		cmd := c.Fetch(set, &imap.FetchOptions{UID: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{section}})
		// Collect mail by mail: when the connection drops in the middle, the mails that
		// arrived whole are still taken; the rest are fetched again on reconnection.
		got := map[imap.UID]*fetched{}
		var fetchErr error
		for {
			m := cmd.Next()
			if m == nil {
				break
			}
			f, err := collect(m)
			if err != nil {
				// The body broke off. go-imap (beta.8) would read the broken literal again
				// when the command is drained, racing its decoder: abandon the connection
				// instead of closing the command.
				fetchErr = err
				c.Close()
				break
			}
			got[f.uid] = f
		}
		if fetchErr == nil {
			fetchErr = cmd.Close()
		}
		for _, it := range batch {
			k := key{s.channel.ID, s.mailbox, uidValidity, uint32(it.uid)}
			buf := got[it.uid]
			if buf == nil {
				if fetchErr != nil {
					return false, fmt.Errorf("email: fetch: %w", fetchErr)
				}
				// The server listed it but gave no body (expunged meanwhile, or broken).
				if err := s.failed(ctx, k, nil, it.size, nil, errors.New("the server returned no message")); err != nil {
					return true, nil
				}
				continue
			}
			size := buf.size
			if size == 0 {
				size = it.size
			}
			raw := buf.body
			if raw == nil {
				if err := s.failed(ctx, k, nil, size, nil, errors.New("the server returned no message body")); err != nil {
					return true, nil
				}
				continue
			}
			if err := s.take(ctx, k, raw, size); err != nil {
				if ctx.Err() != nil {
					return false, ctx.Err()
				}
				s.log.Warn("email: taking a mail failed; will try again", "uid", it.uid, "err", err)
				return true, nil
			}
		}
		if fetchErr != nil {
			return false, fmt.Errorf("email: fetch: %w", fetchErr)
		}
	}
	return false, nil
}

// fetched is one mail of a FETCH answer.
type fetched struct {
	uid  imap.UID
	size int64
	body []byte // nil when the server sent none
}

// collect reads one FETCH answer item by item. It stops at the first error and leaves the
// message unread from there (see sync).
func collect(m *imapclient.FetchMessageData) (*fetched, error) {
	f := &fetched{}
	for {
		item := m.Next()
		if item == nil {
			return f, nil
		}
		switch item := item.(type) {
		case imapclient.FetchItemDataUID:
			f.uid = item.UID
		case imapclient.FetchItemDataRFC822Size:
			f.size = item.Size
		case imapclient.FetchItemDataBodySection:
			if item.Literal == nil {
				continue
			}
			b, err := io.ReadAll(item.Literal)
			if err == nil && int64(len(b)) != item.Literal.Size() {
				// A connection closed in the middle of the literal reads as a clean end.
				err = fmt.Errorf("%d of %d bytes: %w", len(b), item.Literal.Size(), io.ErrUnexpectedEOF)
			}
			if err != nil {
				return nil, fmt.Errorf("email: fetch: reading a message: %w", err)
			}
			if b == nil {
				b = []byte{}
			}
			f.body = b
		}
	}
}
