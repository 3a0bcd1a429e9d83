package email_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/channels/email"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/issues"
	"github.com/switchboard-hq/switchboard/store"
)

const (
	imapUser = "support@example.org"
	imapPass = "secret"
)

// mailServer is a real IMAP server (go-imap's in-memory backend) on loopback, behind a
// proxy that can hide IDLE, cut a connection in the middle of a fetch, refuse
// connections, and count the message bodies it carried.
type mailServer struct {
	t      testing.TB
	user   *imapmemserver.User
	server *imapserver.Server
	addr   string // the server itself

	ln        net.Listener // the proxy
	hideIdle  bool
	down      atomic.Bool
	bodies    atomic.Int64 // BODY[] responses carried to clients
	dropAfter atomic.Int64 // when > 0: cut the connection after this many bodies started (once)

	mu    sync.Mutex
	conns map[net.Conn]bool // guarded by mu
}

type serverOptions struct {
	hideIdle bool // the server does not offer IDLE: the connector must poll
}

func newMailServer(t testing.TB, opts serverOptions) *mailServer {
	t.Helper()
	mem := imapmemserver.New()
	user := imapmemserver.NewUser(imapUser, imapPass)
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return pollingIdle{mem.NewSession()}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
		InsecureAuth: true,
		Logger:       discardLogger{},
	})
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(sln) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ms := &mailServer{t: t, user: user, server: srv, addr: sln.Addr().String(), ln: ln, hideIdle: opts.hideIdle,
		conns: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ms.accept(&wg)
	}()
	t.Cleanup(func() {
		ln.Close()
		ms.dropAll()
		srv.Close()
		wg.Wait()
	})
	return ms
}

// pollingIdle makes the in-memory server's IDLE behave like a real server's: it reports
// every change, including one made just before IDLE began (imapmemserver only reports
// changes made after its IDLE registered, and queues the others until the next command).
type pollingIdle struct{ imapserver.Session }

func (s pollingIdle) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
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

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// URL is the IMAP_URL of the mailbox, through the proxy.
func (ms *mailServer) URL() *url.URL {
	return &url.URL{Scheme: "imap", User: url.UserPassword(imapUser, imapPass), Host: ms.ln.Addr().String(), Path: "/INBOX"}
}

func (ms *mailServer) accept(wg *sync.WaitGroup) {
	for {
		c, err := ms.ln.Accept()
		if err != nil {
			return
		}
		if ms.down.Load() {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", ms.addr)
		if err != nil {
			c.Close()
			continue
		}
		ms.mu.Lock()
		ms.conns[c], ms.conns[s] = true, true
		ms.mu.Unlock()
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, _ = io.Copy(s, c)
			s.Close()
			c.Close()
		}()
		go func() {
			defer wg.Done()
			ms.toClient(c, s)
			s.Close()
			c.Close()
		}()
	}
}

// toClient copies the server's answers to the client, applying the test's faults.
func (ms *mailServer) toClient(c, s net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if ms.hideIdle {
				chunk = bytes.ReplaceAll(chunk, []byte(" IDLE"), nil)
			}
			if k := int64(bytes.Count(chunk, []byte("BODY[]"))); k > 0 {
				total := ms.bodies.Add(k)
				if limit := ms.dropAfter.Load(); limit > 0 && total >= limit && ms.dropAfter.CompareAndSwap(limit, 0) {
					// Cut inside the body that just started: its header goes, the rest never does.
					i := bytes.LastIndex(chunk, []byte("BODY[]"))
					end := min(len(chunk), i+80)
					_, _ = c.Write(chunk[:end])
					return
				}
			}
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// dropAll cuts every open connection, as a server restart would.
func (ms *mailServer) dropAll() {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for c := range ms.conns {
		c.Close()
		delete(ms.conns, c)
	}
}

// conns0 reports whether no client is connected.
func (ms *mailServer) conns0() bool {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for c := range ms.conns {
		if _, err := c.Write(nil); err != nil {
			delete(ms.conns, c)
		}
	}
	return len(ms.conns) == 0
}

// deliver appends a raw message to INBOX.
func (ms *mailServer) deliver(raw []byte) {
	ms.t.Helper()
	if _, err := ms.user.Append("INBOX", bytes.NewReader(raw), &imap.AppendOptions{Time: time.Now()}); err != nil {
		ms.t.Fatal(err)
	}
}

// recreateInbox deletes and recreates INBOX: a new UIDVALIDITY, UIDs from 1 again.
func (ms *mailServer) recreateInbox() {
	ms.t.Helper()
	if err := ms.user.Delete("INBOX"); err != nil {
		ms.t.Fatal(err)
	}
	if err := ms.user.Create("INBOX", nil); err != nil {
		ms.t.Fatal(err)
	}
}

func eml(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// simple builds a plain-text mail.
func simple(from, msgID, subject, body string, extra ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: Tue, 03 Mar 2026 10:00:00 +0000\r\n", from, imapUser, subject)
	if msgID != "" {
		fmt.Fprintf(&b, "Message-ID: %s\r\n", msgID)
	}
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n")
	return []byte(b.String())
}

// app is the part of Switchboard intake needs: a database with issues and channels.
type app struct {
	db       *store.DB
	channels *channels.Service
	issues   *issues.Service
}

func newApp(db *store.DB) *app {
	log := hub.NewLog(db, time.Now)
	ch := channels.New(db, log, channels.Config{})
	is := issues.New(db, log, ch, issues.Config{})
	ch.SetDirectory(is)
	return &app{db: db, channels: ch, issues: is}
}

// flakyIntake fails intake of chosen Message-IDs.
type flakyIntake struct {
	next  email.Intake
	fail  map[string]bool
	calls atomic.Int64
}

func (f *flakyIntake) Intake(ctx context.Context, in issues.Inbound) (*issues.IntakeResult, error) {
	f.calls.Add(1)
	if f.fail[in.ExternalID] {
		return nil, errors.New("intake refused (test)")
	}
	return f.next.Intake(ctx, in)
}

// runner runs a Service until the test ends.
type runner struct {
	svc     *email.Service
	reg     *prometheus.Registry
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

type runOptions struct {
	intake      email.Intake
	idleRefresh time.Duration
	maxAtt      int64
}

func start(t *testing.T, a *app, ms *mailServer, o runOptions) *runner {
	t.Helper()
	return startWith(t, a, ms.URL(), nil, o)
}

// startURL runs a Service against any IMAP URL, with a TLS configuration.
func startURL(t *testing.T, a *app, u *url.URL, tlsConfig *tls.Config) *runner {
	t.Helper()
	return startWith(t, a, u, tlsConfig, runOptions{})
}

func startWith(t *testing.T, a *app, u *url.URL, tlsConfig *tls.Config, o runOptions) *runner {
	t.Helper()
	if o.intake == nil {
		o.intake = a.issues
	}
	if o.idleRefresh == 0 {
		o.idleRefresh = time.Minute // long: only IDLE (or the test's faults) wakes intake
	}
	reg := prometheus.NewRegistry()
	svc, err := email.New(context.Background(), email.Config{
		URL:           u,
		TLS:           tlsConfig,
		DB:            a.db,
		Intake:        o.intake,
		Channels:      a.channels,
		PollInterval:  20 * time.Millisecond,
		IdleRefresh:   o.idleRefresh,
		RetryDelay:    20 * time.Millisecond,
		BackoffMin:    5 * time.Millisecond,
		BackoffMax:    40 * time.Millisecond,
		MaxAttachment: o.maxAtt,
		Log:           slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:       reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{svc: svc, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- svc.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends Run and waits for it.
func (r *runner) stop(t testing.TB) {
	t.Helper()
	if r.stopped {
		return
	}
	r.stopped = true
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of its context ending")
	}
}

// counter reads a counter of the runner's registry.
func (r *runner) counter(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// count runs a COUNT(*) query.
func count(t testing.TB, db *store.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// customerComments counts customer comments that came by email.
func customerComments(t testing.TB, db *store.DB) int {
	return count(t, db, `SELECT COUNT(*) FROM comments WHERE kind = 'customer'`)
}

// commentsOf returns the bodies of an issue's comments, keyed by external id.
func commentsOf(t testing.TB, a *app, issueID int64) map[string]string {
	t.Helper()
	cs, _, err := a.issues.Detail(context.Background(), issueID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range cs {
		if c.ExternalID != nil {
			out[*c.ExternalID] = c.Body
		}
	}
	return out
}

// issueOf finds the issue holding the comment with a Message-ID.
func issueOf(t testing.TB, db *store.DB, msgID string) int64 {
	t.Helper()
	var id int64
	if err := db.QueryRowContext(context.Background(), `SELECT issue_id FROM comments WHERE external_id = $1`, msgID).Scan(&id); err != nil {
		t.Fatalf("comment %s: %v", msgID, err)
	}
	return id
}

var logOut io.Writer = io.Discard
