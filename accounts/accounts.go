// Package accounts owns who may use Switchboard: users and their roles, teams, login
// sessions carried by a cookie, and the throttling that keeps password guessing slow.
//
// Passwords are stored as argon2id hashes and session tokens only as their SHA-256, so a
// copy of the database gives an attacker neither. A session slides: each use pushes its
// expiry out by SessionTTL (written at most once a minute), so people who work every day
// stay logged in, and a stolen cookie left unused dies.
//
// Login throttling is per process: with N nodes behind a load balancer an attacker gets N
// times the budget. That is still slow enough for online guessing against argon2id; a
// cluster-wide limiter can move the counters to Redis later without changing the API.
package accounts

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"time"

	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/store"
)

// Role is what a user may do: admins manage users, teams and settings; agents work issues.
type Role string

// The roles a user can have.
const (
	RoleAdmin Role = "admin"
	RoleAgent Role = "agent"
)

func (r Role) valid() bool { return r == RoleAdmin || r == RoleAgent }

// User is a person who logs in: an agent or an admin. Customers are not users.
type User struct {
	ID        int64     `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Handle    string    `json:"handle"`
	Role      Role      `json:"role"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

// IsAdmin reports whether u may manage users, teams and organisation settings.
func (u *User) IsAdmin() bool { return u != nil && u.Role == RoleAdmin }

// Session is one login: a browser holding the cookie whose token hashes to this row.
type Session struct {
	ID        int64
	UserID    int64
	User      *User
	ExpiresAt time.Time
}

// Config tunes a Service. The zero value is usable: every field has a default.
type Config struct {
	// Now is the clock; default time.Now. Tests inject a fake one instead of sleeping.
	Now func() time.Time
	// SessionTTL is how long a session lives after its last use; default 30 days.
	SessionTTL time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For is believed; default none, so the
	// client address is the TCP peer.
	TrustedProxies []netip.Prefix
	// SecureCookies marks the session cookie Secure; set it when the public URL is https.
	SecureCookies bool
	// SessionsEnded, when set, is called after commit with the ids of sessions that ended
	// (logout, password change, user disabled, expiry pruned) so the hub can close their
	// live connections. It runs on the request's goroutine: it must not block for long.
	SessionsEnded func(sessionIDs []int64)
	// Log receives internal errors; default discards.
	Log *slog.Logger
}

// Service is the accounts API over one database. It is safe for concurrent use.
type Service struct {
	db  *store.DB
	cfg Config
	log *slog.Logger
	now func() time.Time

	throttle *throttle

	// hashSlots bounds concurrent argon2id computations: each takes 19 MiB, and a burst of
	// logins must not be able to exhaust memory.
	hashSlots chan struct{}

	dummyHash string // verified against when the email is unknown
}

const (
	defaultSessionTTL = 30 * 24 * time.Hour
	// refreshEvery bounds how often a session's last_seen_at is written: without it every
	// request would be a write.
	refreshEvery = time.Minute
)

// New returns a Service on db, applying cfg's defaults.
func New(db *store.DB, cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = defaultSessionTTL
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{
		db:        db,
		cfg:       cfg,
		log:       cfg.Log,
		now:       cfg.Now,
		throttle:  newThrottle(),
		hashSlots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0))),
		dummyHash: hashPassword(rand.Text()),
	}
}

// timestamp is the clock's reading as stored: UTC, truncated to what both engines keep.
func (s *Service) timestamp() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// sessionsEnded reports ended sessions to the hub; callers register it with AfterCommit.
func (s *Service) sessionsEnded(ids []int64) {
	if len(ids) > 0 && s.cfg.SessionsEnded != nil {
		s.cfg.SessionsEnded(ids)
	}
}

// Client-facing errors that callers may compare with errors.Is.
var (
	// ErrBadCredentials: no such email, or the wrong password. The two are deliberately
	// indistinguishable.
	ErrBadCredentials = &httpx.Error{Status: http.StatusUnauthorized, Message: "wrong email or password"}
	// ErrDisabled: the password was right but an admin disabled the account.
	ErrDisabled = &httpx.Error{Status: http.StatusForbidden, Message: "this account is disabled"}
	// ErrNotAdmin: an agent tried to manage users.
	ErrNotAdmin = &httpx.Error{Status: http.StatusForbidden, Message: "only admins may manage users"}
	// ErrNotAdminTeams: an agent tried to manage teams.
	ErrNotAdminTeams = &httpx.Error{Status: http.StatusForbidden, Message: "only admins may manage teams"}
	// ErrLastAdmin: the change would leave no enabled admin, locking everyone out of
	// administration.
	ErrLastAdmin = &httpx.Error{Status: http.StatusConflict, Message: "the last admin cannot be demoted or disabled"}
	// ErrWrongPassword: a password change gave the wrong current password.
	ErrWrongPassword = &httpx.Error{Status: http.StatusForbidden, Message: "the current password is wrong"}
)

// ctxKey is the context key for the request's session.
type ctxKey struct{}

// SessionFrom returns the session Middleware found on the request, or nil.
func SessionFrom(ctx context.Context) *Session {
	sess, _ := ctx.Value(ctxKey{}).(*Session)
	return sess
}

// WithSession returns ctx carrying sess, as Middleware does; for callers that authenticate
// some other way (tests of other packages, the CLI).
func WithSession(ctx context.Context, sess *Session) context.Context {
	return context.WithValue(ctx, ctxKey{}, sess)
}
