// Package notify decides who hears of what, and how: each user's preferences (per event,
// per channel, quiet hours) over the organisation's defaults over the factory defaults of
// DESIGN.md; the router that turns what happened into one notification per recipient; the
// in-app inbox pushed live on the user's topic; and notification email, sent from durable
// rows by one leased worker that batches a burst into a digest.
//
// Domain packages call the router inside their own transaction (issues through
// Service.Notify, channels through Service.ChannelMessage), so a notification commits or
// rolls back with what caused it. They pass what they know of the occurrence's people
// (assignee, followers, mentioned users and team members); notify never reads their
// tables, and asks accounts and channels only through the small interfaces below.
package notify

import (
	"context"
	"log/slog"
	"net/url"
	"time"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/store"
)

// Users is what notify needs of accounts. accounts.Service implements it.
type Users interface {
	// Users lists every user, disabled ones included.
	Users(ctx context.Context) ([]*accounts.User, error)
	// User returns one user.
	User(ctx context.Context, id int64) (*accounts.User, error)
	// Names returns display names, read through q.
	Names(ctx context.Context, q store.Querier, ids []int64) (map[int64]string, error)
	// UsersIn returns the users with ids (nil: every user), read through q: the router
	// runs inside the writer's transaction and must not wait for a second connection.
	UsersIn(ctx context.Context, q store.Querier, ids []int64) (map[int64]*accounts.User, error)
}

// Channels is what notify needs of channels. channels.Service implements it.
type Channels interface {
	Get(ctx context.Context, id int64) (*channels.Channel, error)
	GetIn(ctx context.Context, q store.Querier, id int64) (*channels.Channel, error)
	MemberIDs(ctx context.Context, q store.Querier, channelID int64) (allAgents bool, ids []int64, err error)
	IsMember(ctx context.Context, userID, channelID int64) (bool, error)
	ForUser(ctx context.Context, userID int64) ([]*channels.View, error)
}

// Presence answers who is logged in: a live connection anywhere in the cluster, and not
// idle. hub.Hub implements it. The router asks once per occurrence, whatever the number
// of recipients.
type Presence interface {
	Presence(ctx context.Context) (map[int64]hub.PresenceState, error)
}

// presenceTimeout bounds the presence look-up, which runs inside the writer's
// transaction: a slow or dead Redis must not hold a database write for long.
const presenceTimeout = 500 * time.Millisecond

// Leaser is a singleton job's lease (internal/lease): the email worker runs only while
// it holds it, so one node in a cluster sends.
type Leaser interface {
	Acquire(ctx context.Context, now time.Time) (bool, error)
	Release(ctx context.Context) error
}

// Config configures a Service. DB, Log, Users and Channels are required; every other
// zero value takes the default documented on its field.
type Config struct {
	DB       *store.DB
	Log      *hub.Log
	Users    Users
	Channels Channels
	// Presence decides when_logged_out. Nil: everyone counts as logged out.
	Presence Presence
	// Mailer sends notification email (SMTP_URL). Nil: no notification email; the
	// in-app side works the same.
	Mailer Mailer
	// PublicURL is SWITCHBOARD_PUBLIC_URL: the base of every link in an email. Default
	// http://localhost:8080.
	PublicURL *url.URL
	// Lease makes the email worker a singleton. Nil: it always runs (one node).
	Lease Leaser
	// EmailWindow is how long the first pending email of a user waits for more, so a
	// burst becomes one digest (SWITCHBOARD_NOTIFY_EMAIL_WINDOW). Default 20 s.
	EmailWindow time.Duration
	// Poll is how often the email worker looks for due mail and quiet hours that ended.
	// Default 2 s (a lone notification leaves within EmailWindow + Poll).
	Poll time.Duration
	// RetryBase and RetryMax bound the backoff after an SMTP failure: RetryBase doubled per
	// attempt, at most RetryMax. Defaults 30 s and 15 minutes.
	RetryBase, RetryMax time.Duration
	// GiveUpAfter is how long a mail is retried before its notifications are dropped.
	// Default 72 hours.
	GiveUpAfter time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
}

// Service is the notification API.
type Service struct {
	cfg Config
	db  *store.DB
	log *hub.Log
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.DB == nil || cfg.Log == nil || cfg.Users == nil || cfg.Channels == nil {
		panic("notify: Config needs DB, Log, Users and Channels")
	}
	if cfg.PublicURL == nil {
		cfg.PublicURL = &url.URL{Scheme: "http", Host: "localhost:8080"}
	}
	if cfg.EmailWindow <= 0 {
		cfg.EmailWindow = 20 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 30 * time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 15 * time.Minute
	}
	if cfg.GiveUpAfter <= 0 {
		cfg.GiveUpAfter = 72 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, db: cfg.DB, log: cfg.Log}
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

var _ channels.Notifier = (*Service)(nil)
