package email

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/store"
)

// Mailbox is a mailbox read into an email channel. Its IMAP URL keeps the password
// server-side: URL is the address without it.
type Mailbox struct {
	ChannelID int64     `json:"id"`
	Address   string    `json:"address"`
	Name      string    `json:"name"`
	URL       string    `json:"url"` // the IMAP URL without the password
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	imapURL   string
}

// NewMailbox is what an admin gives to add a mailbox.
type NewMailbox struct {
	// URL is imaps://user:password@host[:993]/FOLDER, or imap://… (STARTTLS; plain text
	// only to a loopback host).
	URL string `json:"url"`
	// Address is the mailbox's address; optional when the IMAP user name is one.
	Address string `json:"address"`
	// Name is the channel's name for a new channel; default "Email <address>".
	Name string `json:"name"`
}

var (
	errNoMailbox        = httpx.Errorf(http.StatusNotFound, "no such mailbox")
	errMailboxAdminOnly = httpx.Errorf(http.StatusForbidden, "only admins may manage mailboxes")
)

// CheckIMAPURL checks an IMAP URL as IMAP_URL is checked: imaps:// or imap://, a host,
// a user name and a password.
func CheckIMAPURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	switch {
	case err != nil || raw == "":
		return nil, errors.New("url must be an IMAP URL such as imaps://user:password@imap.example.com/INBOX")
	case u.Scheme != "imaps" && u.Scheme != "imap":
		return nil, errors.New("url must start with imaps:// or imap://")
	case u.Hostname() == "":
		return nil, errors.New("url needs a host")
	case u.User == nil || u.User.Username() == "":
		return nil, errors.New("url needs credentials, as in imaps://user:password@host")
	}
	if pw, ok := u.User.Password(); !ok || pw == "" {
		return nil, errors.New("url needs credentials, as in imaps://user:password@host")
	}
	return u, nil
}

// redact is u without its password.
func redact(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User(c.User.Username())
	}
	return c.String()
}

// mailboxAddress is the address a mailbox's channel is named by: the IMAP user name when
// it is an address, else the one given.
func mailboxAddress(u *url.URL, given string) (string, error) {
	cand := strings.TrimSpace(given)
	if user := u.User.Username(); strings.Contains(user, "@") {
		cand = user
	}
	if cand == "" {
		return "", errors.New("address is required when the IMAP user name is not an address")
	}
	a, err := mail.ParseAddress(cand)
	if err != nil {
		return "", fmt.Errorf("address %q is not an email address", cand)
	}
	return strings.ToLower(a.Address), nil
}

// Mailboxes is the table of mailboxes read into email channels.
type Mailboxes struct {
	db       *store.DB
	channels Channels
	now      func() time.Time
}

// NewMailboxes returns the mailboxes table. now defaults to time.Now.
func NewMailboxes(db *store.DB, ch Channels, now func() time.Time) *Mailboxes {
	if now == nil {
		now = time.Now
	}
	return &Mailboxes{db: db, channels: ch, now: now}
}

// Add adds a mailbox (or replaces the URL of the mailbox with the same address): its
// email channel is created when new, kept with its history otherwise.
func (m *Mailboxes) Add(ctx context.Context, in NewMailbox) (*Mailbox, error) {
	u, err := CheckIMAPURL(in.URL)
	if err != nil {
		return nil, httpx.Errorf(http.StatusBadRequest, "%s", err.Error())
	}
	address, err := mailboxAddress(u, in.Address)
	if err != nil {
		return nil, httpx.Errorf(http.StatusBadRequest, "%s", err.Error())
	}
	name := strings.TrimSpace(in.Name)
	if len(name) > 200 {
		return nil, httpx.Errorf(http.StatusBadRequest, "name is longer than 200 characters")
	}
	if name == "" {
		name = "Email " + address
	}
	ch, err := m.channels.Ensure(ctx, channels.Email, name, address)
	if err != nil {
		return nil, err
	}
	if err := m.Save(ctx, ch.ID, address, u); err != nil {
		return nil, err
	}
	return m.Get(ctx, ch.ID)
}

// Save writes a mailbox's row for an existing email channel.
func (m *Mailboxes) Save(ctx context.Context, channelID int64, address string, u *url.URL) error {
	now := m.now().UTC().Truncate(time.Microsecond)
	_, err := m.db.ExecContext(ctx, `INSERT INTO mailboxes (channel_id, address, imap_url, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $4)
		ON CONFLICT (channel_id) DO UPDATE SET imap_url = excluded.imap_url, address = excluded.address, updated_at = excluded.updated_at`,
		channelID, address, u.String(), now)
	if err != nil {
		return fmt.Errorf("email: save mailbox %s: %w", address, err)
	}
	return nil
}

// Delete removes a mailbox: intake stops, its channel and issues stay.
func (m *Mailboxes) Delete(ctx context.Context, channelID int64) error {
	res, err := m.db.ExecContext(ctx, `DELETE FROM mailboxes WHERE channel_id = $1`, channelID)
	if err != nil {
		return fmt.Errorf("email: delete mailbox %d: %w", channelID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNoMailbox
	}
	return nil
}

// List returns every mailbox.
func (m *Mailboxes) List(ctx context.Context) ([]*Mailbox, error) {
	return m.query(ctx, "")
}

// Get returns one mailbox by its channel.
func (m *Mailboxes) Get(ctx context.Context, channelID int64) (*Mailbox, error) {
	list, err := m.query(ctx, `WHERE m.channel_id = $1`, channelID)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, errNoMailbox
	}
	return list[0], nil
}

func (m *Mailboxes) query(ctx context.Context, where string, args ...any) ([]*Mailbox, error) {
	rows, err := m.db.QueryContext(ctx, `SELECT m.channel_id, m.address, m.imap_url, c.name, m.created_at, m.updated_at
		FROM mailboxes m JOIN channels c ON c.id = m.channel_id `+where+` ORDER BY m.channel_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("email: mailboxes: %w", err)
	}
	defer rows.Close()
	list := []*Mailbox{}
	for rows.Next() {
		var mb Mailbox
		if err := rows.Scan(&mb.ChannelID, &mb.Address, &mb.imapURL, &mb.Name, &mb.CreatedAt, &mb.UpdatedAt); err != nil {
			return nil, fmt.Errorf("email: mailboxes: %w", err)
		}
		if u, err := url.Parse(mb.imapURL); err == nil {
			mb.URL = redact(u)
		}
		list = append(list, &mb)
	}
	return list, rows.Err()
}

// MailboxesHandler serves the admins' API for mailboxes.
type MailboxesHandler struct {
	mailboxes *Mailboxes
	changed   func(ctx context.Context)
	log       *slog.Logger
}

// NewMailboxesHandler returns the mailboxes API; changed, when set, is called after a
// mailbox is added or deleted (the supervisor's Sync), so this node acts at once.
func NewMailboxesHandler(m *Mailboxes, changed func(ctx context.Context), log *slog.Logger) *MailboxesHandler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &MailboxesHandler{mailboxes: m, changed: changed, log: log}
}

// Register mounts the routes on r, which must already require a session. All are for
// admins:
//
//	GET    /api/email/mailboxes        the mailboxes read (URLs without passwords)
//	POST   /api/email/mailboxes        add (or update) a mailbox; intake starts without a restart
//	DELETE /api/email/mailboxes/{id}   stop reading a mailbox (its channel and issues stay)
func (h *MailboxesHandler) Register(r *mux.Router) {
	r.HandleFunc("/api/email/mailboxes", h.admin(h.list)).Methods(http.MethodGet)
	r.HandleFunc("/api/email/mailboxes", h.admin(h.add)).Methods(http.MethodPost)
	r.HandleFunc("/api/email/mailboxes/{id:[0-9]+}", h.admin(h.remove)).Methods(http.MethodDelete)
}

func (h *MailboxesHandler) admin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if sess := accounts.SessionFrom(r.Context()); sess == nil || !sess.User.IsAdmin() {
			httpx.WriteError(w, r, h.log, errMailboxAdminOnly)
			return
		}
		next(w, r)
	}
}

func (h *MailboxesHandler) list(w http.ResponseWriter, r *http.Request) {
	list, err := h.mailboxes.List(r.Context())
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"mailboxes": list})
}

func (h *MailboxesHandler) add(w http.ResponseWriter, r *http.Request) {
	var in NewMailbox
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	mb, err := h.mailboxes.Add(r.Context(), in)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	h.log.InfoContext(r.Context(), "mailbox added", "address", mb.Address, "channel", mb.ChannelID,
		"by", accounts.SessionFrom(r.Context()).UserID)
	if h.changed != nil {
		h.changed(r.Context())
	}
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"mailbox": mb})
}

func (h *MailboxesHandler) remove(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err := h.mailboxes.Delete(r.Context(), id); err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	h.log.InfoContext(r.Context(), "mailbox deleted", "channel", id, "by", accounts.SessionFrom(r.Context()).UserID)
	if h.changed != nil {
		h.changed(r.Context())
	}
	w.WriteHeader(http.StatusNoContent)
}

// DefaultSyncEvery is how often a Supervisor reconciles its loops with the table.
const DefaultSyncEvery = 3 * time.Second

// SupervisorConfig configures a Supervisor.
type SupervisorConfig struct {
	// Base is every mailbox's Config but its URL and Address (poll interval, limits,
	// backoff, TLS, own addresses); DB, Intake and Channels are required.
	Base      Config
	Mailboxes *Mailboxes
	// Lease returns this node's handle on the lease called name (email:<channel id>).
	Lease func(name string) Leaser
	// Every is how often the table is read again. Default DefaultSyncEvery.
	Every time.Duration
	Log   *slog.Logger
}

// Supervisor keeps one leased intake loop per mailbox in the table running on this node:
// every node runs one, and each mailbox's lease lets exactly one of them read it.
type Supervisor struct {
	cfg     SupervisorConfig
	log     *slog.Logger
	kick    chan struct{}
	mu      sync.Mutex
	ctx     context.Context // Run's, while it runs
	running map[int64]*intakeLoop
	failed  map[int64]string // the URL last refused, so it is logged once
}

type intakeLoop struct {
	url    string
	cancel context.CancelFunc
	done   chan struct{}
}

// NewSupervisor returns a supervisor; Run runs it.
func NewSupervisor(cfg SupervisorConfig) *Supervisor {
	if cfg.Every <= 0 {
		cfg.Every = DefaultSyncEvery
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Supervisor{cfg: cfg, log: cfg.Log.With("component", "email"), kick: make(chan struct{}, 1),
		running: map[int64]*intakeLoop{}, failed: map[int64]string{}}
}

// Run reconciles the loops with the table every Every, and at once after Kick, until ctx
// ends; then it stops every loop (releasing their leases) and returns.
func (s *Supervisor) Run(ctx context.Context) {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	defer s.stopAll()
	t := time.NewTicker(s.cfg.Every)
	defer t.Stop()
	for {
		s.Sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
	}
}

// Kick asks Run for a reconciliation soon, without waiting for it.
func (s *Supervisor) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Supervisor) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctx = nil
	for id, l := range s.running {
		l.cancel()
		<-l.done
		delete(s.running, id)
	}
}

// Sync reconciles the loops with the table now: a loop starts for each new mailbox, and
// stops (and has released its lease) before Sync returns for each mailbox deleted or
// whose URL changed (it starts again with the new one). Without Run, it does nothing.
func (s *Supervisor) Sync(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil || s.ctx.Err() != nil {
		return
	}
	list, err := s.cfg.Mailboxes.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("email: cannot read the mailboxes", "err", err)
		}
		return
	}
	want := make(map[int64]*Mailbox, len(list))
	for _, mb := range list {
		want[mb.ChannelID] = mb
	}
	for id, l := range s.running {
		if mb, ok := want[id]; !ok || mb.imapURL != l.url {
			l.cancel()
			<-l.done
			delete(s.running, id)
			s.log.Info("email: stopped reading a mailbox", "channel", id)
		}
	}
	for id := range s.failed {
		if _, ok := want[id]; !ok {
			delete(s.failed, id)
		}
	}
	for id, mb := range want {
		if _, ok := s.running[id]; ok || s.failed[id] == mb.imapURL {
			continue
		}
		u, err := url.Parse(mb.imapURL)
		cfg := s.cfg.Base
		cfg.URL, cfg.Address = u, mb.Address
		var svc *Service
		if err == nil {
			svc, err = New(ctx, cfg)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.failed[id] = mb.imapURL
			s.log.Warn("email: cannot read mailbox", "channel", id, "address", mb.Address, "err", err)
			continue
		}
		delete(s.failed, id)
		lctx, cancel := context.WithCancel(s.ctx)
		l := &intakeLoop{url: mb.imapURL, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(l.done)
			_ = svc.RunLeased(lctx, s.cfg.Lease(fmt.Sprintf("email:%d", id)))
		}()
		s.running[id] = l
	}
}
