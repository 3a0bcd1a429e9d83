package accounts

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/store"
)

// Limits on what a person types. They keep rows and log lines sane; none is a security
// boundary except the password minimum.
const (
	maxEmail       = 254
	maxName        = 100
	maxHandle      = 32
	minPassword    = 8
	maxPassword    = 1024 // bytes; argon2 prehashes, but a megabyte password is an attack
	maxHandleTries = 1000
)

// handleRE is what a @handle may be. It starts and ends with a letter or digit so that a
// mention followed by a full stop ("ask @bob.") parses as "bob".
var handleRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$`)

// NewUser is what CreateUser needs. Handle may be empty: it then defaults to the email's
// local part, lower-cased and reduced to [a-z0-9._-], with a number appended on a clash.
type NewUser struct {
	Email, Name, Handle string
	Role                Role
	Password            string
}

// UserChange is a partial update of a user; nil fields stay as they are.
type UserChange struct {
	Name     *string
	Role     *Role
	Disabled *bool
}

const userColumns = `id, email, name, handle, role, disabled, created_at`

func scanUser(row interface{ Scan(...any) error }) (*User, error) {
	var u User
	if err := row.Scan(&u.ID, &u.Email, &u.Name, &u.Handle, &u.Role, &u.Disabled, &u.CreatedAt); err != nil {
		return nil, store.Err(err)
	}
	u.CreatedAt = u.CreatedAt.UTC()
	return &u, nil
}

func badRequest(format string, args ...any) error {
	return fmt.Errorf("accounts: %w", httpx.Errorf(http.StatusBadRequest, format, args...))
}

// normEmail is the key emails are matched by: people type their address in any case.
func normEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

func validEmail(email string) error {
	if email == "" {
		return badRequest("email is required")
	}
	if !utf8.ValidString(email) {
		return badRequest("email is not valid UTF-8")
	}
	if len(email) > maxEmail {
		return badRequest("email is longer than %d characters", maxEmail)
	}
	// ParseAddress also accepts "Name <a@b>"; only a bare address is an email here.
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email {
		return badRequest("email %q is not an email address", email)
	}
	return nil
}

func validName(name string) error {
	if name == "" {
		return badRequest("name is required")
	}
	if !utf8.ValidString(name) {
		return badRequest("name is not valid UTF-8")
	}
	if utf8.RuneCountInString(name) > maxName {
		return badRequest("name is longer than %d characters", maxName)
	}
	return nil
}

func validPassword(password string) error {
	if utf8.RuneCountInString(password) < minPassword {
		return badRequest("password must be at least %d characters", minPassword)
	}
	if len(password) > maxPassword {
		return badRequest("password must be at most %d bytes", maxPassword)
	}
	return nil
}

func validHandle(handle string) error {
	if len(handle) > maxHandle || !handleRE.MatchString(handle) {
		return badRequest("handle %q must be 1 to %d of a-z, 0-9, '.', '_' or '-', starting and ending with a letter or digit", handle, maxHandle)
	}
	return nil
}

func validRole(role Role) error {
	if !role.valid() {
		return badRequest("role must be %q or %q", RoleAdmin, RoleAgent)
	}
	return nil
}

// defaultHandle derives a handle from text (an email's local part, a team's name). It
// leaves room for the number a clash appends.
func defaultHandle(text string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	h := strings.Trim(b.String(), "._-")
	if len(h) > maxHandle-4 {
		h = strings.TrimRight(h[:maxHandle-4], "._-")
	}
	if h == "" {
		h = "user"
	}
	return h
}

// handleTaken reports whether a user or a team already has handle: they share one
// namespace, or "@support" would be ambiguous.
func handleTaken(ctx context.Context, q store.Querier, handle string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM users WHERE handle = $1) + (SELECT COUNT(*) FROM teams WHERE handle = $1)`, handle).Scan(&n)
	return n > 0, store.Err(err)
}

// freeHandle returns base, or base2, base3, … whichever is free first.
func freeHandle(ctx context.Context, q store.Querier, base string) (string, error) {
	for i := 1; i <= maxHandleTries; i++ {
		h := base
		if i > 1 {
			h += strconv.Itoa(i)
		}
		taken, err := handleTaken(ctx, q, h)
		if err != nil {
			return "", err
		}
		if !taken {
			return h, nil
		}
	}
	return "", fmt.Errorf("accounts: %w", httpx.Errorf(http.StatusConflict, "no free handle like @%s", base))
}

func handleConflict(handle string) error {
	return fmt.Errorf("accounts: %w", httpx.Errorf(http.StatusConflict, "handle @%s is taken", handle))
}

// insertAttempts bounds retries when a concurrent insert takes the handle we picked.
const insertAttempts = 3

// CreateUser validates nu and stores a new user. A duplicate email or an explicitly asked
// handle that is taken is an error wrapping a 409 *httpx.Error; bad input wraps a 400.
func (s *Service) CreateUser(ctx context.Context, nu NewUser) (*User, error) {
	nu.Email = strings.TrimSpace(nu.Email)
	nu.Name = strings.TrimSpace(nu.Name)
	nu.Handle = strings.ToLower(strings.TrimSpace(nu.Handle))
	if err := validEmail(nu.Email); err != nil {
		return nil, err
	}
	if err := validName(nu.Name); err != nil {
		return nil, err
	}
	if err := validRole(nu.Role); err != nil {
		return nil, err
	}
	if err := validPassword(nu.Password); err != nil {
		return nil, err
	}
	if nu.Handle != "" {
		if err := validHandle(nu.Handle); err != nil {
			return nil, err
		}
	}
	hash, err := s.hash(ctx, nu.Password)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		u, err := s.insertUser(ctx, nu, hash)
		// A conflict here means another writer took the email or handle between our check
		// and our insert; the next attempt's checks say which, with the right message.
		if errors.Is(err, store.ErrConflict) && attempt < insertAttempts {
			continue
		}
		return u, err
	}
}

func (s *Service) insertUser(ctx context.Context, nu NewUser, hash string) (*User, error) {
	var u *User
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE email_norm = $1`, normEmail(nu.Email)).Scan(&n); err != nil {
			return store.Err(err)
		}
		if n > 0 {
			return fmt.Errorf("accounts: %w", httpx.Errorf(http.StatusConflict, "a user with email %s already exists", nu.Email))
		}
		handle := nu.Handle
		if handle == "" {
			local, _, _ := strings.Cut(nu.Email, "@")
			var err error
			if handle, err = freeHandle(ctx, tx, defaultHandle(local)); err != nil {
				return err
			}
		} else if taken, err := handleTaken(ctx, tx, handle); err != nil {
			return err
		} else if taken {
			return handleConflict(handle)
		}
		var err error
		u, err = scanUser(tx.QueryRowContext(ctx,
			`INSERT INTO users (email, email_norm, name, handle, role, password_hash, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+userColumns,
			nu.Email, normEmail(nu.Email), nu.Name, handle, string(nu.Role), hash, s.timestamp()))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("accounts: create user: %w", err)
	}
	return u, nil
}

// notFound wraps store.ErrNotFound for a missing row with a 404 the client can read.
func notFound(what string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("accounts: %w: %w", httpx.Errorf(http.StatusNotFound, "%s not found", what), store.ErrNotFound)
	}
	return err
}

// User returns the user with id; the error wraps store.ErrNotFound (and a 404) when there
// is none.
func (s *Service) User(ctx context.Context, id int64) (*User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	return u, notFound("user", err)
}

// UserByHandle returns the user a @handle mentions; the error wraps store.ErrNotFound when
// no user has it.
func (s *Service) UserByHandle(ctx context.Context, handle string) (*User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE handle = $1`, strings.ToLower(handle)))
	return u, notFound("user", err)
}

// Users returns every user, disabled ones included, sorted by name.
func (s *Service) Users(ctx context.Context) ([]*User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY lower(name), id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	users := []*User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	return users, store.Err(rows.Err())
}

// CountUsers returns how many users exist, disabled ones included.
func (s *Service) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n)
	return n, store.Err(err)
}

// The account EnsureAdmin creates on an empty database.
const (
	firstAdminEmail = "admin@localhost"
	firstAdminName  = "Admin"
)

// adminsQuery counts the admins who can log in: an install whose only users are agents
// (added with `user add` before the first start) still needs someone to manage it.
const adminsQuery = `SELECT COUNT(*) FROM users WHERE role = 'admin' AND NOT disabled`

// EnsureAdmin makes a fresh install usable: when no enabled admin exists it creates
// admin@localhost with a random password and returns both, for the operator to read from
// the console. Otherwise, including when another node won the race to create it (or
// admin@localhost exists already), created is false.
func (s *Service) EnsureAdmin(ctx context.Context) (email, password string, created bool, err error) {
	var n int
	if err := s.db.QueryRowContext(ctx, adminsQuery).Scan(&n); err != nil || n > 0 {
		return "", "", false, store.Err(err)
	}
	var b [15]byte
	_, _ = rand.Read(b[:])
	password = base64.RawURLEncoding.EncodeToString(b[:]) // 20 characters, 120 bits
	hash, err := s.hash(ctx, password)
	if err != nil {
		return "", "", false, err
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		// Counted again inside the transaction so two nodes starting at once create one
		// admin: the loser sees the winner's row, or hits the unique email.
		if err := tx.QueryRowContext(ctx, adminsQuery).Scan(&n); err != nil {
			return store.Err(err)
		}
		if n > 0 {
			return nil
		}
		handle, err := freeHandle(ctx, tx, "admin") // a team may already be @admin
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx,
			`INSERT INTO users (email, email_norm, name, handle, role, password_hash, created_at)
			VALUES ($1, $1, $2, $3, 'admin', $4, $5)`,
			firstAdminEmail, firstAdminName, handle, hash, s.timestamp())
		created = err == nil
		return err
	})
	if errors.Is(err, store.ErrConflict) {
		return "", "", false, nil
	}
	if err != nil || !created {
		return "", "", false, err
	}
	return firstAdminEmail, password, true, nil
}

// UpdateUser applies change to the user with id. Disabling a user ends all their sessions.
// A change that would leave no enabled admin fails with ErrLastAdmin.
func (s *Service) UpdateUser(ctx context.Context, id int64, change UserChange) (*User, error) {
	if change.Name != nil {
		name := strings.TrimSpace(*change.Name)
		if err := validName(name); err != nil {
			return nil, err
		}
		change.Name = &name
	}
	if change.Role != nil {
		if err := validRole(*change.Role); err != nil {
			return nil, err
		}
	}
	var u *User
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		old, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
		if err != nil {
			return notFound("user", err)
		}
		next := *old
		if change.Name != nil {
			next.Name = *change.Name
		}
		if change.Role != nil {
			next.Role = *change.Role
		}
		if change.Disabled != nil {
			next.Disabled = *change.Disabled
		}
		wasAdmin := old.Role == RoleAdmin && !old.Disabled
		isAdmin := next.Role == RoleAdmin && !next.Disabled
		if wasAdmin && !isAdmin {
			admins, err := lockAdmins(ctx, tx)
			if err != nil {
				return err
			}
			if admins <= 1 {
				return ErrLastAdmin
			}
		}
		if u, err = scanUser(tx.QueryRowContext(ctx,
			`UPDATE users SET name = $1, role = $2, disabled = $3 WHERE id = $4 RETURNING `+userColumns,
			next.Name, string(next.Role), next.Disabled, id)); err != nil {
			return err
		}
		if next.Disabled && !old.Disabled {
			return s.endSessions(ctx, tx, `DELETE FROM sessions WHERE user_id = $1 RETURNING id`, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("accounts: update user %d: %w", id, err)
	}
	return u, nil
}

// lockAdmins counts the enabled admins. On PostgreSQL it locks their rows, so that two
// admins demoting each other at once cannot both see the other still in place and leave
// none; SQLite's single writer serialises such transactions anyway.
func lockAdmins(ctx context.Context, tx *store.Tx) (int, error) {
	query := `SELECT id FROM users WHERE role = 'admin' AND NOT disabled`
	if tx.Dialect() == store.Postgres {
		query += ` FOR UPDATE`
	}
	rows, err := tx.QueryContext(ctx, query)
	if err != nil {
		return 0, err
	}
	ids, err := collectIDs(rows)
	return len(ids), err
}

// SetPassword replaces a user's password without knowing the old one (the CLI's reset) and
// ends all their sessions.
func (s *Service) SetPassword(ctx context.Context, userID int64, password string) error {
	if err := validPassword(password); err != nil {
		return err
	}
	return s.setPassword(ctx, userID, password, 0)
}

// ChangePassword replaces the password of sess's user after checking current, and ends
// the user's other sessions: whoever else knew the old password is logged out, while
// the person changing it stays in. Wrong guesses count against the account's login
// throttle, so a stolen session cannot be used to guess the password.
func (s *Service) ChangePassword(ctx context.Context, sess *Session, current, next, remoteAddr string) error {
	if err := validPassword(next); err != nil {
		return err
	}
	var hash, emailNorm string
	err := s.db.QueryRowContext(ctx, `SELECT password_hash, email_norm FROM users WHERE id = $1`, sess.UserID).Scan(&hash, &emailNorm)
	if err != nil {
		return notFound("user", store.Err(err))
	}
	now := s.now()
	if err := s.throttle.begin(now, addrKey(remoteAddr), emailNorm); err != nil {
		return err
	}
	ok, err := s.verify(ctx, hash, current)
	if err != nil {
		s.throttle.abandon(now, addrKey(remoteAddr), emailNorm)
		return err
	}
	if !ok {
		return ErrWrongPassword
	}
	s.throttle.succeeded(now, addrKey(remoteAddr), emailNorm)
	return s.setPassword(ctx, sess.UserID, next, sess.ID)
}

// setPassword stores password's hash and ends the user's sessions except keep (0: none).
func (s *Service) setPassword(ctx context.Context, userID int64, password string, keep int64) error {
	hash, err := s.hash(ctx, password)
	if err != nil {
		return err
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = $1 WHERE id = $2`, hash, userID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return notFound("user", store.ErrNotFound)
		}
		return s.endSessions(ctx, tx, `DELETE FROM sessions WHERE user_id = $1 AND id <> $2 RETURNING id`, userID, keep)
	})
	if err != nil {
		return fmt.Errorf("accounts: set password of user %d: %w", userID, err)
	}
	return nil
}
