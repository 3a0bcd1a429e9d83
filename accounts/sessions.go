package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/store"
)

// CookieName is the session cookie's name.
const CookieName = "sb_session"

// tokenLen is the session token's entropy in bytes; tokenChars its base64url length.
const (
	tokenLen   = 32
	tokenChars = 43
	maxAgent   = 512
)

// ErrNotLoggedIn is what SessionFromRequest answers for a missing, unknown or expired
// session, or one whose user is disabled; it renders as 401 {"error":"not logged in"}.
var ErrNotLoggedIn = httpx.ErrUnauthorized

func newToken() string {
	var b [tokenLen]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// tokenHash is what the database keeps of a token: a leaked sessions table is useless
// without the cookies themselves. A fast hash suffices because tokens have 256 bits.
func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Login checks email and password and, when they match an enabled user, starts a session.
// It returns the token for the cookie. remoteAddr is the client's address (see ClientAddr);
// it keys the per-address throttle and is recorded with the session.
//
// Errors: ErrBadCredentials (401), ErrDisabled (403), a *ThrottledError (429), or a
// validation error (400); all of them wrap an *httpx.Error.
func (s *Service) Login(ctx context.Context, email, password, userAgent, remoteAddr string) (token string, sess *Session, err error) {
	emailNorm := normEmail(email)
	if emailNorm == "" || password == "" {
		return "", nil, badRequest("email and password are required")
	}
	if len(password) > maxPassword || len(emailNorm) > maxEmail || !utf8.ValidString(emailNorm) {
		return "", nil, ErrBadCredentials
	}
	now := s.now()
	akey := addrKey(remoteAddr)
	if err := s.throttle.begin(now, akey, emailNorm); err != nil {
		return "", nil, err
	}

	var (
		hash     string
		userID   int64
		disabled bool
	)
	err = s.db.QueryRowContext(ctx, `SELECT id, password_hash, disabled FROM users WHERE email_norm = $1`, emailNorm).
		Scan(&userID, &hash, &disabled)
	if err != nil && !errors.Is(store.Err(err), store.ErrNotFound) {
		s.throttle.abandon(now, akey, emailNorm)
		return "", nil, fmt.Errorf("accounts: login: %w", err)
	}
	ok, err := s.verify(ctx, hash, password) // hash is "" for an unknown email: a dummy check
	if err != nil {
		s.throttle.abandon(now, akey, emailNorm)
		return "", nil, fmt.Errorf("accounts: login: %w", err)
	}
	if !ok {
		return "", nil, ErrBadCredentials
	}
	s.throttle.succeeded(now, akey, emailNorm)
	if disabled {
		return "", nil, ErrDisabled
	}

	token = newToken()
	userAgent = clip(userAgent, maxAgent)
	remoteAddr = clip(remoteAddr, maxAgent)
	ts := s.timestamp()
	sess = &Session{UserID: userID, ExpiresAt: ts.Add(s.cfg.SessionTTL)}
	var ended []int64
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		// Expired sessions are swept at the user's next login, so the table stays the size
		// of the live ones without needing a job; PruneSessions catches the rest.
		rows, err := tx.QueryContext(ctx, `DELETE FROM sessions WHERE user_id = $1 AND expires_at <= $2 RETURNING id`, userID, ts)
		if err != nil {
			return err
		}
		if ended, err = collectIDs(rows); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx,
			`INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_seen_at, user_agent, remote_addr)
			VALUES ($1, $2, $3, $4, $3, $5, $6) RETURNING id`,
			tokenHash(token), userID, ts, sess.ExpiresAt, userAgent, remoteAddr).Scan(&sess.ID); err != nil {
			return store.Err(err)
		}
		sess.User, err = scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, userID))
		return err
	})
	if err != nil {
		return "", nil, fmt.Errorf("accounts: login: %w", err)
	}
	s.sessionsEnded(ended)
	return token, sess, nil
}

// clip makes header text storable: valid UTF-8 (PostgreSQL refuses anything else) and at
// most n bytes, cut at a character boundary.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func collectIDs(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
	Close() error
}) ([]int64, error) {
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, store.Err(rows.Err())
}

// endSessions runs query, a DELETE … RETURNING id on sessions, in tx and reports the
// deleted ids to SessionsEnded once tx commits.
func (s *Service) endSessions(ctx context.Context, tx *store.Tx, query string, args ...any) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	ids, err := collectIDs(rows)
	if err != nil {
		return err
	}
	tx.AfterCommit(func() { s.sessionsEnded(ids) })
	return nil
}

// Logout ends one session.
func (s *Service) Logout(ctx context.Context, sessionID int64) error {
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		return s.endSessions(ctx, tx, `DELETE FROM sessions WHERE id = $1 RETURNING id`, sessionID)
	})
	if err != nil {
		return fmt.Errorf("accounts: logout: %w", err)
	}
	return nil
}

// LogoutEverywhere ends every session of the user.
func (s *Service) LogoutEverywhere(ctx context.Context, userID int64) error {
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		return s.endSessions(ctx, tx, `DELETE FROM sessions WHERE user_id = $1 RETURNING id`, userID)
	})
	if err != nil {
		return fmt.Errorf("accounts: logout everywhere: %w", err)
	}
	return nil
}

// PruneSessions deletes expired sessions and reports how many; run it now and then (the
// hub learns of them through SessionsEnded like any other ended session).
func (s *Service) PruneSessions(ctx context.Context) (int, error) {
	var n int
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		rows, err := tx.QueryContext(ctx, `DELETE FROM sessions WHERE expires_at <= $1 RETURNING id`, s.timestamp())
		if err != nil {
			return err
		}
		ids, err := collectIDs(rows)
		n = len(ids)
		tx.AfterCommit(func() { s.sessionsEnded(ids) })
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("accounts: prune sessions: %w", err)
	}
	return n, nil
}

// SessionFromRequest returns the session named by the request's cookie. The error is
// ErrNotLoggedIn when the cookie is missing, unknown or expired, or the user is disabled;
// anything else is a database failure.
func (s *Service) SessionFromRequest(r *http.Request) (*Session, error) {
	sess, _, err := s.authenticate(r)
	return sess, err
}

// authenticate is SessionFromRequest that also reports whether the expiry slid, so that
// Middleware can slide the cookie's expiry along with it.
func (s *Service) authenticate(r *http.Request) (*Session, bool, error) {
	c, err := r.Cookie(CookieName)
	if err != nil || len(c.Value) != tokenChars {
		return nil, false, ErrNotLoggedIn
	}
	ctx := r.Context()
	var (
		sess     = &Session{User: &User{}}
		lastSeen time.Time
	)
	u := sess.User
	err = s.db.QueryRowContext(ctx,
		`SELECT s.id, s.user_id, s.expires_at, s.last_seen_at,
			u.email, u.name, u.handle, u.role, u.disabled, u.created_at
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = $1`, tokenHash(c.Value)).
		Scan(&sess.ID, &sess.UserID, &sess.ExpiresAt, &lastSeen,
			&u.Email, &u.Name, &u.Handle, &u.Role, &u.Disabled, &u.CreatedAt)
	if err = store.Err(err); errors.Is(err, store.ErrNotFound) {
		return nil, false, ErrNotLoggedIn
	} else if err != nil {
		return nil, false, fmt.Errorf("accounts: session: %w", err)
	}
	u.ID = sess.UserID
	u.CreatedAt = u.CreatedAt.UTC()
	sess.ExpiresAt = sess.ExpiresAt.UTC()

	now := s.timestamp()
	// A disabled user's sessions were deleted when they were disabled; checking here too
	// covers rows written by anything else.
	if !now.Before(sess.ExpiresAt) || u.Disabled {
		return nil, false, ErrNotLoggedIn
	}
	if now.Sub(lastSeen) < refreshEvery {
		return sess, false, nil
	}
	expires := now.Add(s.cfg.SessionTTL)
	if _, err := s.db.ExecContext(ctx,
		`UPDATE sessions SET last_seen_at = $1, expires_at = $2 WHERE id = $3`, now, expires, sess.ID); err != nil {
		// The session is valid; failing to slide it only shortens its life.
		s.log.WarnContext(ctx, "accounts: refresh session", "session", sess.ID, "err", err)
		return sess, false, nil
	}
	sess.ExpiresAt = expires
	return sess, true, nil
}

// Middleware puts the request's *Session in its context when a valid cookie is present.
// It never rejects a request itself: handlers decide (see RequireUser).
func (s *Service) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, slid, err := s.authenticate(r)
		if err != nil {
			if !errors.Is(err, ErrNotLoggedIn) {
				s.log.ErrorContext(r.Context(), "accounts: authenticate", "path", r.URL.Path, "err", err)
			}
			next.ServeHTTP(w, r)
			return
		}
		if slid {
			// The cookie's Max-Age slides with the session, or the browser would drop a
			// cookie that the server still honours.
			c, _ := r.Cookie(CookieName)
			http.SetCookie(w, s.cookie(c.Value))
		}
		next.ServeHTTP(w, r.WithContext(WithSession(r.Context(), sess)))
	})
}

// RequireUser answers 401 {"error":"not logged in"} unless Middleware found a session.
func RequireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if SessionFrom(r.Context()) == nil {
			httpx.WriteError(w, r, nil, ErrNotLoggedIn)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cookie is the session cookie carrying token. SameSite=Lax keeps it off cross-site
// POSTs; HttpOnly keeps it from scripts.
func (s *Service) cookie(token string) *http.Cookie {
	return &http.Cookie{
		Name:     CookieName,
		Value:    token,
		Path:     "/",
		MaxAge:   int(s.cfg.SessionTTL / time.Second),
		HttpOnly: true,
		Secure:   s.cfg.SecureCookies,
		SameSite: http.SameSiteLaxMode,
	}
}

// clearCookie tells the browser to forget the session cookie.
func (s *Service) clearCookie() *http.Cookie {
	c := s.cookie("")
	c.MaxAge = -1
	return c
}

// SetCookie writes the session cookie for token, as the login handler does; for other
// entry points that start sessions.
func (s *Service) SetCookie(w http.ResponseWriter, token string) {
	http.SetCookie(w, s.cookie(token))
}
