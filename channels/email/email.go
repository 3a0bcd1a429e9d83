// Package email is the mail connector's intake side: it reads a mailbox over IMAP (IDLE
// when the server offers it, polling otherwise), turns each mail into a customer message
// for issue intake, and serves what mail carries besides its text — attachments, the
// original message, the quoted history — to agents, and quarantined mail to admins.
//
// Invariants:
//   - A mail is taken at most once: intake is idempotent by (provider "email",
//     Message-ID), and the mailbox position (UIDVALIDITY, last UID) is persisted after
//     each message, so neither a restart, a dropped connection nor a renumbered mailbox
//     takes one twice.
//   - A mail is never skipped: the position moves past a UID only once its mail is taken,
//     ignored as automatic, or quarantined.
//   - One bad mail never blocks the mailbox: unparseable mail is quarantined at once, and
//     mail whose intake keeps failing after MaxTries attempts.
//   - Automatic mail (auto-replies, bounces, lists, delivery reports, our own) never
//     becomes an issue.
package email

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/issues"
	"github.com/switchboard-hq/switchboard/store"
)

// Provider is the namespace of email Message-IDs in issue intake.
const Provider = "email"

// Defaults of Config.
const (
	DefaultMaxAttachment = 10 << 20
	DefaultMaxMessage    = 32 << 20
	DefaultPollInterval  = time.Minute
	DefaultIdleRefresh   = 5 * time.Minute
	DefaultRetryDelay    = 30 * time.Second
	DefaultMaxTries      = 3
	DefaultBackoffMin    = time.Second
	DefaultBackoffMax    = 5 * time.Minute
)

// Intake is what the connector needs from issues.
type Intake interface {
	Intake(ctx context.Context, in issues.Inbound) (*issues.IntakeResult, error)
}

// Channels creates the mailbox's channel.
type Channels interface {
	Ensure(ctx context.Context, kind channels.Kind, name, address string) (*channels.Channel, error)
}

// Config configures a mailbox's intake. URL, DB, Intake and Channels are required.
type Config struct {
	// URL is IMAP_URL: imaps://user:password@host[:993]/MAILBOX (TLS) or
	// imap://user:password@host[:143]/MAILBOX (STARTTLS; plain text only to a loopback
	// host). The path names the mailbox, INBOX when empty.
	URL *url.URL
	// Address is the mailbox's email address, used for its channel when the IMAP user
	// name is not an address (EMAIL_FROM's address).
	Address string
	// OwnAddresses are addresses Switchboard sends from; mail from them (or from the
	// mailbox itself) is a loop and is ignored.
	OwnAddresses []string
	// PollInterval is how often a server without IDLE is asked for new mail. Default 1 min.
	PollInterval time.Duration
	// IdleRefresh is how long one IDLE lasts before the mailbox is selected again; it
	// keeps middleboxes from dropping a quiet connection and notices a dead one. Default 5 min.
	IdleRefresh time.Duration
	// RetryDelay is how long a mail whose intake failed waits for its next try. Default 30 s.
	RetryDelay time.Duration
	// MaxTries is how many failed intakes quarantine a mail. Default 3.
	MaxTries int
	// MaxAttachment is the largest attachment stored; larger ones are listed but not
	// downloadable. Default 10 MiB.
	MaxAttachment int64
	// MaxMessage is the most of one mail that is fetched and stored; a larger mail is cut
	// there (its text usually comes first) and marked truncated. Default 32 MiB.
	MaxMessage int64
	// BackoffMin and BackoffMax bound the wait between reconnection attempts, which
	// doubles from the first to the second with jitter. Defaults 1 s and 5 min.
	BackoffMin, BackoffMax time.Duration
	// TLS is the TLS configuration for imaps:// and STARTTLS; nil: the system's roots,
	// with the URL's host as server name.
	TLS *tls.Config

	DB       *store.DB
	Intake   Intake
	Channels Channels
	Log      *slog.Logger
	Now      func() time.Time
	// Metrics, when set, receives the connector's counters.
	Metrics prometheus.Registerer
}

// Service reads one mailbox into its channel. Run it on one node at a time (a lease).
type Service struct {
	cfg      Config
	log      *slog.Logger
	repo     *repo
	channel  *channels.Channel
	mailbox  string
	user     string
	password string
	own      []string
	metrics  *metrics
}

// New checks cfg, applies defaults and makes sure the mailbox's channel exists.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if cfg.URL == nil || cfg.DB == nil || cfg.Intake == nil || cfg.Channels == nil {
		return nil, errors.New("email: Config needs URL, DB, Intake and Channels")
	}
	if cfg.URL.Scheme != "imap" && cfg.URL.Scheme != "imaps" {
		return nil, fmt.Errorf("email: IMAP URL must start with imaps:// or imap://, not %s://", cfg.URL.Scheme)
	}
	if cfg.URL.User == nil || cfg.URL.User.Username() == "" {
		return nil, errors.New("email: IMAP URL needs a user name and password")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	setDefault(&cfg.PollInterval, DefaultPollInterval)
	setDefault(&cfg.IdleRefresh, DefaultIdleRefresh)
	setDefault(&cfg.RetryDelay, DefaultRetryDelay)
	setDefault(&cfg.BackoffMin, DefaultBackoffMin)
	setDefault(&cfg.BackoffMax, DefaultBackoffMax)
	setDefault(&cfg.MaxAttachment, DefaultMaxAttachment)
	setDefault(&cfg.MaxMessage, DefaultMaxMessage)
	setDefault(&cfg.MaxTries, DefaultMaxTries)
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = cfg.BackoffMin
	}

	s := &Service{cfg: cfg, repo: newRepo(cfg.DB, cfg.Now), metrics: newMetrics(cfg.Metrics)}
	s.user = cfg.URL.User.Username()
	s.password, _ = cfg.URL.User.Password()
	s.mailbox = strings.Trim(cfg.URL.Path, "/")
	if s.mailbox == "" {
		s.mailbox = "INBOX"
	}
	address := cfg.Address
	if strings.Contains(s.user, "@") {
		address = s.user
	}
	if address == "" {
		return nil, errors.New("email: the IMAP user name is not an address, and no mailbox address was given (EMAIL_FROM)")
	}
	s.own = append([]string{address}, cfg.OwnAddresses...)
	s.log = cfg.Log.With("component", "email", "mailbox", address+"/"+s.mailbox)
	ch, err := cfg.Channels.Ensure(ctx, channels.Email, "Email "+address, address)
	if err != nil {
		return nil, fmt.Errorf("email: channel for %s: %w", address, err)
	}
	s.channel = ch
	return s, nil
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Channel is the mailbox's channel.
func (s *Service) Channel() *channels.Channel { return s.channel }

// Run reads the mailbox until ctx ends, reconnecting with exponential backoff and jitter
// whenever the server goes away. An outage is logged once when it starts and once when
// it ends. Run returns nil when ctx ends.
func (s *Service) Run(ctx context.Context) error {
	attempt := 0
	var downSince time.Time
	for {
		err := s.session(ctx, func() {
			if !downSince.IsZero() {
				s.log.Info("email: mailbox reachable again", "down_for", s.cfg.Now().Sub(downSince).Round(time.Second).String(),
					"attempts", attempt)
			}
			attempt, downSince = 0, time.Time{}
		})
		if ctx.Err() != nil {
			return nil
		}
		attempt++
		s.metrics.connErrors.Inc()
		if downSince.IsZero() {
			downSince = s.cfg.Now()
			s.log.Warn("email: mailbox unreachable; retrying with backoff until it answers", "err", err)
		} else {
			s.log.Debug("email: mailbox still unreachable", "attempt", attempt, "err", err)
		}
		t := time.NewTimer(s.backoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// backoff is the wait before reconnection attempt n (1, 2, …): BackoffMin doubled per
// attempt up to BackoffMax, less a random part of up to half ("equal jitter"), so that
// many nodes or mailboxes do not reconnect in step.
func (s *Service) backoff(n int) time.Duration {
	d := s.cfg.BackoffMin
	for i := 1; i < n && d < s.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.BackoffMax)
	half := d / 2
	return half + rand.N(half+1)
}

type metrics struct {
	ignored    *prometheus.CounterVec
	received   *prometheus.CounterVec
	connErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_email_ignored_total",
			Help: "Automatic mail (auto-replies, bounces, lists, delivery reports, loops) that created no issue, by reason.",
		}, []string{"reason"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_email_received_total",
			Help: "Mail read from IMAP by outcome: taken, duplicate, ignored, quarantined, failed (to be retried).",
		}, []string{"outcome"}),
		connErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_email_connection_errors_total",
			Help: "IMAP sessions that ended in an error and were retried.",
		}),
	}
	if reg != nil {
		m.ignored = register(reg, m.ignored)
		m.received = register(reg, m.received)
		m.connErrors = register(reg, m.connErrors)
	}
	return m
}

// register registers c, or returns the collector already registered under its name (a
// second mailbox counts into the same series).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
