// Package server wires Switchboard's packages into one HTTP server: it opens the store,
// builds the services and the hub, mounts every route behind the shared middleware
// (request ids, logs, metrics, cross-origin protection), and owns graceful shutdown.
//
// Nothing here reads the environment: cmd/switchboard turns it into a Config.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/channels/email"
	"github.com/switchboard-hq/switchboard/channels/sms"
	"github.com/switchboard-hq/switchboard/frontend"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/internal/lease"
	"github.com/switchboard-hq/switchboard/internal/outbox"
	"github.com/switchboard-hq/switchboard/issues"
	"github.com/switchboard-hq/switchboard/notify"
	"github.com/switchboard-hq/switchboard/store"
)

// Twilio is the default SMS channel's account.
type Twilio struct {
	AccountSID  string
	AuthToken   string
	PhoneNumber string // E.164
	APIURL      string // base URL of the REST API; empty: Twilio's
}

// Config is everything a server needs, already validated.
type Config struct {
	Addr string // listen address, e.g. ":8080"
	// Listener, when set, is used instead of listening on Addr: serve opens it before
	// anything else, so a port in use is found before the first-start admin's password
	// is printed (and lost).
	Listener    net.Listener
	PublicURL   *url.URL // external base URL
	DatabaseURL string
	RedisURL    string // empty: in-process bus
	// RedisPrefix starts every Redis key and channel name, so deployments and test runs
	// can share one Redis. Default "switchboard:".
	RedisPrefix string
	Twilio      *Twilio
	// IMAP, when set, reads a mailbox into an email channel (IMAP_URL); New fills in its
	// DB, Intake, Channels, Log, Now and Metrics. Nil: no email intake.
	IMAP *email.Config
	// SMTP, when set, sends email replies (SMTP_URL) from MailFrom (EMAIL_FROM). Nil:
	// email replies are stored and stay queued.
	SMTP     *url.URL
	MailFrom *mail.Address
	// Outbox tunes outbound delivery (timeouts, backoff); zero values take its defaults.
	// Now, Logger and Metrics are the server's.
	Outbox outbox.Config
	// AllowedOrigins are extra page origins (host or host:port patterns) that may open
	// WebSockets; the public URL's host is always allowed.
	AllowedOrigins []string
	TrustedProxies []netip.Prefix
	// EventRetention is how long events are kept for resume. Default 7 days.
	EventRetention time.Duration
	// EventRetentionMin is how many events each topic keeps however old. Default 1,000.
	EventRetentionMin int64
	// IdleAfter is how long a connected user may do nothing before showing as idle (and
	// counting as logged out for notifications). Default 10 minutes.
	IdleAfter time.Duration
	// Notify tunes notifications (the email window, poll, retries); zero values take its
	// defaults. New fills in the services, the clock, the lease and the SMTP mailer.
	Notify notify.Config
	Logger *slog.Logger
	Now    func() time.Time
}

// Server is a running Switchboard node's parts.
type Server struct {
	cfg      Config
	log      *slog.Logger
	DB       *store.DB
	Events   *hub.Log
	Hub      *hub.Hub
	Bus      hub.Bus
	Accounts *accounts.Service
	Channels *channels.Service
	Issues   *issues.Service
	Email    *email.Service // nil without IMAP
	// Mailboxes are the mailboxes read (IMAP's first, admins' more); Run runs the
	// supervisor that keeps one leased intake loop per mailbox.
	Mailboxes *email.Mailboxes
	mailboxes *email.Supervisor
	// Outbox delivers replies (SMS, email); Run runs its worker. SMS is the Twilio
	// connector's store: numbers, opt-outs, media.
	Outbox *outbox.Service
	SMS    *sms.Store
	// Timers runs SLA warnings and breaches, auto-close and snooze wake-ups on the node
	// holding the "sla" lease; Run starts it.
	Timers *issues.Engine
	// Notify routes notifications and keeps preferences and inboxes; Run runs its email
	// worker on the node holding the "notify-email" lease.
	Notify   *notify.Service
	registry *prometheus.Registry
	handler  http.Handler
}

// New opens the database, applies migrations and builds the server. Close it when done.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PublicURL == nil {
		cfg.PublicURL = &url.URL{Scheme: "http", Host: "localhost:8080"}
	}
	if cfg.RedisPrefix == "" {
		cfg.RedisPrefix = "switchboard:"
	}
	if cfg.EventRetention <= 0 {
		cfg.EventRetention = 7 * 24 * time.Hour
	}
	if cfg.EventRetentionMin <= 0 {
		cfg.EventRetentionMin = 1000
	}
	log := cfg.Logger
	if cfg.RedisURL != "" {
		if err := checkRedis(ctx, cfg.RedisURL); err != nil {
			return nil, err // before the database: a refused start changes nothing
		}
	}
	// Database errors name the setting they come from: a bad DATABASE_URL is the usual
	// cause, and the operator reads one line.
	db, err := store.Open(ctx, cfg.DatabaseURL, log)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if n, err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	} else if n > 0 {
		log.Info("database migrated", "applied", n)
	}
	s := &Server{cfg: cfg, log: log, DB: db, registry: prometheus.NewRegistry()}
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	s.Bus, err = newBus(ctx, cfg, log)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.Events = hub.NewLog(db, cfg.Now)
	origins := append([]string{cfg.PublicURL.Host}, cfg.AllowedOrigins...)
	var presence hub.PresenceStore
	if rb, ok := s.Bus.(*hub.RedisBus); ok {
		presence = rb.Presence()
	}
	s.Hub = hub.New(hub.Config{Log: s.Events, Bus: s.Bus, Logger: log, OriginPatterns: origins, Metrics: s.registry,
		Presence: presence, IdleAfter: cfg.IdleAfter, Now: cfg.Now})
	s.Accounts = accounts.New(db, accounts.Config{
		Now:            cfg.Now,
		TrustedProxies: cfg.TrustedProxies,
		SecureCookies:  cfg.PublicURL.Scheme == "https",
		SessionsEnded:  s.Hub.CloseSessions,
		Log:            log,
	})
	s.Channels = channels.New(db, s.Events, channels.Config{Now: cfg.Now, People: s.Accounts, Revoke: s.Hub.Revoke})
	s.Issues = issues.New(db, s.Events, s.Channels, issues.Config{Now: cfg.Now, People: s.Accounts})
	s.Channels.SetDirectory(s.Issues)
	s.Timers = issues.NewEngine(s.Issues, issues.EngineConfig{Lease: lease.New(db, "sla", "", 0), Now: cfg.Now, Logger: log})

	if err := s.setupNotify(); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.setupOutbound(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if cfg.SMTP != nil {
		from := cfg.MailFrom
		if from == nil {
			from = &mail.Address{Name: "Support", Address: "support@localhost"}
		}
		out, err := email.NewSMTP(email.SMTPConfig{URL: cfg.SMTP, From: from, DB: db, Log: log, Now: cfg.Now})
		if err != nil {
			s.Close()
			return nil, err
		}
		s.Outbox.Register(email.ConnectorName, out)
		s.Issues.SetSender(channels.Email, OutboxSender(s.Outbox, email.ConnectorName))
	}
	if cfg.IMAP != nil {
		ec := *cfg.IMAP
		ec.DB, ec.Intake, ec.Channels, ec.Log, ec.Metrics = db, s.Issues, s.Channels, log, s.registry
		if ec.Now == nil {
			ec.Now = cfg.Now
		}
		if s.Email, err = email.New(ctx, ec); err != nil {
			s.Close()
			return nil, err
		}
		log.Info("email channel ready", "channel", s.Email.Channel().ID, "address", s.Email.Channel().Address)
	}
	if err := s.setupMailboxes(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// Handler is the whole HTTP surface.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	r := mux.NewRouter()
	r.Use(nameRoute)
	r.HandleFunc("/healthz", s.healthz).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry})).Methods(http.MethodGet)
	// The API: sessions come from the cookie; everything but logging in needs one.
	s.Accounts.Register(r)
	authed := r.NewRoute().Subrouter()
	authed.Use(accounts.RequireUser)
	s.outboundRoutes(r, authed)
	channels.NewHandler(s.Channels, s.log).Register(authed)
	issueRoutes := issues.NewHandler(s.Issues, s.Channels, s.log)
	issueRoutes.Register(authed)
	issueRoutes.RegisterSplitMerge(authed)
	email.NewHandler(s.DB, s.Issues, s.Channels, s.log).Register(authed)
	email.NewMailboxesHandler(s.Mailboxes, s.mailboxes.Sync, s.log).Register(authed)
	issues.NewSLAHandler(s.Issues, s.Channels, s.log).Register(authed)
	notify.NewHandler(s.Notify, s.log).Register(authed)
	authed.HandleFunc("/ws", s.websocket).Methods(http.MethodGet)
	authed.HandleFunc("/api/presence", s.presence).Methods(http.MethodGet)
	r.PathPrefix("/api/").HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteError(w, r, s.log, httpx.Errorf(http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteError(w, r, s.log, httpx.Errorf(http.StatusMethodNotAllowed, "method %s is not allowed here", r.Method))
	})
	r.PathPrefix("/").Handler(frontend.Handler())

	// Cross-site POSTs from browsers are refused; Twilio's server-to-server posts carry
	// no browser headers and pass. WebSocket upgrades are GETs: hub checks their Origin.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteError(w, r, s.log, httpx.Errorf(http.StatusForbidden,
			"cross-origin request refused: browsers may only send this from the app's own origin or SWITCHBOARD_ALLOWED_ORIGINS"))
	}))
	for _, o := range s.cfg.AllowedOrigins {
		if strings.Contains(o, "://") {
			_ = cop.AddTrustedOrigin(o)
		}
	}
	var h http.Handler = r
	h = s.Accounts.Middleware(h)
	h = cop.Handler(h)
	return newMiddleware(s.log, s.registry).wrap(h)
}

func (s *Server) websocket(w http.ResponseWriter, r *http.Request) {
	sess := accounts.SessionFrom(r.Context())
	topics, err := s.Channels.Topics(r.Context(), sess.UserID)
	if err != nil {
		httpx.WriteError(w, r, s.log, err)
		return
	}
	s.Hub.Serve(w, r, hub.Client{UserID: sess.UserID, SessionID: sess.ID, Topics: topics,
		Authorize: func(ctx context.Context, t hub.Topic) error { return s.mayFollow(ctx, sess.UserID, t) }})
}

// errNotAllowed refuses a subscription without saying whether the thing exists.
var errNotAllowed = errors.New("no such topic, or not allowed")

// mayFollow decides whether a user may follow a topic they ask for after connecting: an
// issue of a channel they belong to, a channel they belong to, their own user topic.
func (s *Server) mayFollow(ctx context.Context, userID int64, t hub.Topic) error {
	kind, num, _ := strings.Cut(string(t), ":")
	id, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return errNotAllowed
	}
	channelID := id
	switch kind {
	case "user":
		if id != userID {
			return errNotAllowed
		}
		return nil
	case "issue":
		issue, err := s.Issues.Get(ctx, id)
		if errors.Is(err, issues.ErrNotFound) {
			return errNotAllowed
		}
		if err != nil {
			return err
		}
		channelID = issue.ChannelID
	case "channel":
	default:
		return errNotAllowed
	}
	ok, err := s.Channels.IsMember(ctx, userID, channelID)
	if err != nil {
		return err
	}
	if !ok {
		return errNotAllowed
	}
	return nil
}

// presence answers {"presence":{"<user id>":"online"|"idle"}}; users absent are offline.
func (s *Server) presence(w http.ResponseWriter, r *http.Request) {
	states, err := s.Hub.Presence(r.Context())
	if err != nil {
		httpx.WriteError(w, r, s.log, err)
		return
	}
	out := make(map[string]hub.PresenceState, len(states))
	for uid, st := range states {
		out[strconv.FormatInt(uid, 10)] = st
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"presence": out})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status := map[string]string{"database": "ok"}
	code := http.StatusOK
	if err := s.DB.Ping(ctx); err != nil {
		status["database"] = err.Error()
		code = http.StatusServiceUnavailable
	}
	if p, ok := s.Bus.(interface{ Ping(context.Context) error }); ok {
		status["redis"] = "ok"
		if err := p.Ping(ctx); err != nil {
			status["redis"] = err.Error()
			code = http.StatusServiceUnavailable
		}
	}
	httpx.WriteJSON(w, code, status)
}

// Listen opens the listening socket for addr; its error names SWITCHBOARD_ADDR.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("SWITCHBOARD_ADDR: listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Run serves on cfg.Addr until ctx ends, then shuts down gracefully. ready, when not nil,
// is called with the bound address once listening.
func (s *Server) Run(ctx context.Context, ready func(addr net.Addr)) error {
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = Listen(s.cfg.Addr); err != nil {
			return err
		}
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Mail intake stops with the rest of the background work. One loop per mailbox;
		// one node in a cluster reads each: the one holding its lease.
		mail := make(chan struct{})
		go func() {
			defer close(mail)
			s.mailboxes.Run(bg)
		}()
		defer func() { <-mail }()
		s.maintain(bg)
	}()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("listening", "addr", ln.Addr().String(), "public_url", s.cfg.PublicURL.String())
	if ready != nil {
		ready(ln.Addr())
	}
	select {
	case err := <-errc:
		stopBG()
		<-done
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down")
	// Order: stop taking requests, close live connections (clients reconnect elsewhere),
	// stop background work; the caller closes the store.
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	err = errors.Join(err, s.Hub.Shutdown(sctx))
	stopBG()
	<-done
	return err
}

// setupMailboxes makes the mailboxes table and its supervisor; the IMAP_URL mailbox is
// written into the table at every start (the environment wins for it).
func (s *Server) setupMailboxes(ctx context.Context) error {
	s.Mailboxes = email.NewMailboxes(s.DB, s.Channels, s.cfg.Now)
	var base email.Config
	if s.cfg.IMAP != nil {
		base = *s.cfg.IMAP
	} else if s.cfg.MailFrom != nil {
		base.OwnAddresses = []string{s.cfg.MailFrom.Address}
	}
	base.DB, base.Intake, base.Channels, base.Log, base.Metrics = s.DB, s.Issues, s.Channels, s.log, s.registry
	if base.Now == nil {
		base.Now = s.cfg.Now
	}
	if s.Email != nil {
		ch := s.Email.Channel()
		if err := s.Mailboxes.Save(ctx, ch.ID, ch.Address, s.cfg.IMAP.URL); err != nil {
			return err
		}
	}
	s.mailboxes = email.NewSupervisor(email.SupervisorConfig{Base: base, Mailboxes: s.Mailboxes, Log: s.log,
		Lease: func(name string) email.Leaser { return lease.New(s.DB, name, "", 0) }})
	return nil
}

// setupNotify builds the notification router and hooks it into the services whose
// transactions it joins: issues (actions, notes, intake, timers) and channels (team and
// direct messages).
func (s *Server) setupNotify() error {
	nc := s.cfg.Notify
	nc.DB, nc.Log, nc.Users, nc.Channels, nc.Presence = s.DB, s.Events, s.Accounts, s.Channels, s.Hub
	nc.PublicURL, nc.Logger = s.cfg.PublicURL, s.log
	if nc.Now == nil {
		nc.Now = s.cfg.Now
	}
	if nc.Lease == nil {
		nc.Lease = lease.New(s.DB, "notify-email", "", 0)
	}
	if s.cfg.SMTP != nil && nc.Mailer == nil {
		from := s.cfg.MailFrom
		if from == nil {
			from = &mail.Address{Name: "Support", Address: "support@localhost"}
		}
		m, err := notify.NewSMTP(s.cfg.SMTP, from, nil, s.cfg.Now)
		if err != nil {
			return err
		}
		nc.Mailer = m
	}
	s.Notify = notify.New(nc)
	s.Channels.SetNotifier(s.Notify)
	s.Issues.SetNotifier(s.Notify)
	return nil
}

// notificationRetention is how long read notifications (with no email waiting) are kept.
const notificationRetention = 90 * 24 * time.Hour

// maintain runs periodic housekeeping until ctx ends.
func (s *Server) maintain(ctx context.Context) {
	timers := make(chan struct{})
	go func() {
		defer close(timers)
		s.Timers.Run(ctx) // works only while this node holds the "sla" lease
	}()
	defer func() { <-timers }()
	deliveries := make(chan struct{})
	go func() {
		defer close(deliveries)
		s.Outbox.Run(ctx) // sends replies; attempts in flight finish before it returns
	}()
	defer func() { <-deliveries }()
	mailing := make(chan struct{})
	go func() {
		defer close(mailing)
		s.Notify.RunMail(ctx) // notification email; works only while this node holds "notify-email"
	}()
	defer func() { <-mailing }()
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := s.Events.Prune(ctx, s.cfg.Now().Add(-s.cfg.EventRetention), s.cfg.EventRetentionMin); err != nil {
			s.log.Warn("pruning events failed", "err", err)
		} else if n > 0 {
			s.log.Info("pruned events", "removed", n)
		}
		if _, err := s.Accounts.PruneSessions(ctx); err != nil {
			s.log.Warn("pruning sessions failed", "err", err)
		}
		if _, err := s.Notify.Prune(ctx, s.cfg.Now().Add(-notificationRetention)); err != nil {
			s.log.Warn("pruning notifications failed", "err", err)
		}
	}
}

// Close releases the bus and the database.
func (s *Server) Close() error {
	return errors.Join(s.Bus.Close(), s.DB.Close())
}
