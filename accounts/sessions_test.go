package accounts_test

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

func TestLogin(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		e.user("Ann@Example.com", "Ann", accounts.RoleAdmin)
		dis := e.user("dis@example.com", "Dis", accounts.RoleAgent)
		yes := true
		if _, err := e.svc.UpdateUser(context.Background(), dis.ID, accounts.UserChange{Disabled: &yes}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name, email, password string
			status                int
			err                   string
		}{
			{"ok", "Ann@Example.com", testPassword, http.StatusOK, ""},
			{"email in another case", "  aNN@example.COM ", testPassword, http.StatusOK, ""},
			{"bad password", "ann@example.com", "wrong password", http.StatusUnauthorized, "wrong email or password"},
			{"unknown email", "nobody@example.com", testPassword, http.StatusUnauthorized, "wrong email or password"},
			{"disabled user", "dis@example.com", testPassword, http.StatusForbidden, "this account is disabled"},
			{"disabled user, bad password", "dis@example.com", "wrong password", http.StatusUnauthorized, "wrong email or password"},
			{"no password", "ann@example.com", "", http.StatusBadRequest, "email and password are required"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := e.client("192.0.2.1:4000")
				resp := c.login(tt.email, tt.password)
				if tt.status != http.StatusOK {
					wantError(t, "login", resp, tt.status, tt.err)
					if resp.cookie() != nil || c.token != "" {
						t.Errorf("failed login set a cookie")
					}
					return
				}
				wantStatus(t, "login", resp, http.StatusOK)
				u, _ := resp.body["user"].(map[string]any)
				if u["email"] != "Ann@Example.com" || u["role"] != "admin" || u["handle"] != "ann" {
					t.Errorf("got user %v; want Ann, an admin, as she signed up", u)
				}
				if c.session() == nil {
					t.Errorf("the cookie from a successful login does not authenticate")
				}
			})
		}
	})
}

func TestCookie(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		for _, secure := range []bool{false, true} {
			e := newEnv(t, db, func(c *accounts.Config) { c.SecureCookies = secure })
			if !secure { // one database for both rounds
				e.user("ann@example.com", "Ann", accounts.RoleAgent)
			}
			c := e.client("192.0.2.1:4000")
			resp := c.login("ann@example.com", testPassword)
			wantStatus(t, "login", resp, http.StatusOK)
			ck := resp.cookie()
			if ck == nil {
				t.Fatal("login set no sb_session cookie")
			}
			if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Secure != secure {
				t.Errorf("cookie %s: want HttpOnly, SameSite=Lax, Path=/, Secure=%v", ck, secure)
			}
			if want := int((30 * 24 * time.Hour).Seconds()); ck.MaxAge != want {
				t.Errorf("cookie Max-Age %d; want %d (the session TTL)", ck.MaxAge, want)
			}
			// The database keeps only the token's SHA-256.
			var stored []byte
			if err := db.QueryRowContext(context.Background(),
				`SELECT token_hash FROM sessions WHERE id = $1`, c.session().ID).Scan(&stored); err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256([]byte(ck.Value)); !slices.Equal(stored, sum[:]) {
				t.Errorf("stored token_hash %x; want SHA-256 of the cookie", stored)
			}
			if len(ck.Value) != 43 {
				t.Errorf("token %q has %d characters; want 43 (32 bytes, base64url)", ck.Value, len(ck.Value))
			}
		}
	})
}

func TestMe(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		ann := e.user("ann@example.com", "Ann", accounts.RoleAgent)
		anon := e.client("192.0.2.1:4000")
		wantError(t, "no cookie", anon.do(http.MethodGet, "/api/me", nil), http.StatusUnauthorized, "not logged in")
		anon.token = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		wantError(t, "unknown token", anon.do(http.MethodGet, "/api/me", nil), http.StatusUnauthorized, "not logged in")
		anon.token = "short"
		wantError(t, "malformed token", anon.do(http.MethodGet, "/api/me", nil), http.StatusUnauthorized, "not logged in")

		c := e.client("192.0.2.1:4000")
		c.mustLogin("ann@example.com")
		resp := c.do(http.MethodGet, "/api/me", nil)
		wantStatus(t, "me", resp, http.StatusOK)
		u, _ := resp.body["user"].(map[string]any)
		if u["id"] != float64(ann.ID) || u["name"] != "Ann" || u["created_at"] == "" {
			t.Errorf("got %v; want Ann", u)
		}
	})
}

func TestLogout(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		e.user("ann@example.com", "Ann", accounts.RoleAgent)
		laptop, phone := e.client("192.0.2.1:4000"), e.client("192.0.2.2:4000")
		sess := laptop.mustLogin("ann@example.com")
		phone.mustLogin("ann@example.com")
		token := laptop.token

		resp := laptop.do(http.MethodDelete, "/api/session", nil)
		wantStatus(t, "logout", resp, http.StatusNoContent)
		if ck := resp.cookie(); ck == nil || ck.MaxAge >= 0 || ck.Value != "" {
			t.Errorf("logout cookie %v; want it cleared", ck)
		}
		if got := e.takeEnded(); !slices.Equal(got, []int64{sess.ID}) {
			t.Errorf("SessionsEnded got %v; want [%d]", got, sess.ID)
		}
		laptop.token = token // a browser that ignored the cleared cookie gets nothing for it
		wantStatus(t, "me after logout", laptop.do(http.MethodGet, "/api/me", nil), http.StatusUnauthorized)
		wantStatus(t, "other session", phone.do(http.MethodGet, "/api/me", nil), http.StatusOK)

		laptop.token = ""
		wantStatus(t, "logout without a session", laptop.do(http.MethodDelete, "/api/session", nil), http.StatusNoContent)
		if got := e.takeEnded(); len(got) != 0 {
			t.Errorf("SessionsEnded got %v for a logout without a session", got)
		}
	})
}

func TestLogoutEverywhere(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		e.user("ann@example.com", "Ann", accounts.RoleAgent)
		e.user("bob@example.com", "Bob", accounts.RoleAgent)
		var ids []int64
		var clients []*client
		for range 3 {
			c := e.client("192.0.2.1:4000")
			ids = append(ids, c.mustLogin("ann@example.com").ID)
			clients = append(clients, c)
		}
		bob := e.client("192.0.2.9:4000")
		bob.mustLogin("bob@example.com")

		wantStatus(t, "log out everywhere", clients[0].do(http.MethodDelete, "/api/sessions", nil), http.StatusNoContent)
		if got := e.takeEnded(); !slices.Equal(got, ids) {
			t.Errorf("SessionsEnded got %v; want %v", got, ids)
		}
		for i, c := range clients {
			if c.session() != nil {
				t.Errorf("session %d still works", i)
			}
		}
		if bob.session() == nil {
			t.Errorf("another user's session ended")
		}
		wantStatus(t, "again, logged out", clients[1].do(http.MethodDelete, "/api/sessions", nil), http.StatusUnauthorized)
	})
}

func TestChangePassword(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		e.user("ann@example.com", "Ann", accounts.RoleAgent)
		here, there := e.client("192.0.2.1:4000"), e.client("192.0.2.2:4000")
		keep := here.mustLogin("ann@example.com")
		other := there.mustLogin("ann@example.com")

		change := func(current, next string) *response {
			return here.do(http.MethodPost, "/api/me/password", map[string]string{"current_password": current, "new_password": next})
		}
		wantError(t, "wrong current", change("nope nope nope", "new password 1"), http.StatusForbidden, "the current password is wrong")
		wantError(t, "short new", change(testPassword, "short"), http.StatusBadRequest, "password must be at least 8 characters")
		if got := e.takeEnded(); len(got) != 0 {
			t.Fatalf("failed changes ended sessions %v", got)
		}
		wantStatus(t, "change", change(testPassword, "new password 1"), http.StatusNoContent)
		if got := e.takeEnded(); !slices.Equal(got, []int64{other.ID}) {
			t.Errorf("SessionsEnded got %v; want [%d], the other session", got, other.ID)
		}
		if s := here.session(); s == nil || s.ID != keep.ID {
			t.Errorf("the session that changed the password ended")
		}
		if there.session() != nil {
			t.Errorf("the other session still works")
		}
		c := e.client("192.0.2.3:4000")
		wantStatus(t, "old password", c.login("ann@example.com", testPassword), http.StatusUnauthorized)
		wantStatus(t, "new password", c.login("ann@example.com", "new password 1"), http.StatusOK)

		anon := e.client("192.0.2.4:4000")
		wantStatus(t, "logged out", anon.do(http.MethodPost, "/api/me/password", map[string]string{"current_password": "x", "new_password": "yyyyyyyy"}), http.StatusUnauthorized)
	})
}

func TestSessionExpiry(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db, func(c *accounts.Config) { c.SessionTTL = 24 * time.Hour })
		e.user("ann@example.com", "Ann", accounts.RoleAgent)
		c := e.client("192.0.2.1:4000")
		sess := c.mustLogin("ann@example.com")
		lastSeen := func() time.Time {
			var ts time.Time
			if err := db.QueryRowContext(context.Background(), `SELECT last_seen_at FROM sessions WHERE id = $1`, sess.ID).Scan(&ts); err != nil {
				t.Fatal(err)
			}
			return ts.UTC()
		}
		login := lastSeen()

		// Within a minute nothing is written.
		e.clock.Advance(30 * time.Second)
		resp := c.do(http.MethodGet, "/api/me", nil)
		wantStatus(t, "after 30s", resp, http.StatusOK)
		if got := lastSeen(); !got.Equal(login) {
			t.Errorf("last_seen_at moved to %v within a minute of login", got)
		}
		if resp.cookie() != nil {
			t.Errorf("cookie re-sent although the session did not slide")
		}

		// Use after the minute slides the session and its cookie.
		e.clock.Advance(23 * time.Hour)
		resp = c.do(http.MethodGet, "/api/me", nil)
		wantStatus(t, "after 23h", resp, http.StatusOK)
		if got, want := lastSeen(), e.clock.Now(); !got.Equal(want) {
			t.Errorf("last_seen_at %v; want %v", got, want)
		}
		if ck := resp.cookie(); ck == nil || ck.MaxAge != 24*60*60 {
			t.Errorf("slid session re-sent cookie %v; want Max-Age 86400", ck)
		}
		if s := c.session(); s == nil || !s.ExpiresAt.Equal(e.clock.Now().Add(24*time.Hour)) {
			t.Errorf("session %+v; want it to expire 24h from its last use", s)
		}

		if n, err := e.svc.PruneSessions(context.Background()); n != 0 || err != nil {
			t.Errorf("PruneSessions of a live session: %d, %v; want 0", n, err)
		}

		// A day unused: gone.
		e.clock.Advance(24 * time.Hour)
		wantError(t, "after a day unused", c.do(http.MethodGet, "/api/me", nil), http.StatusUnauthorized, "not logged in")

		n, err := e.svc.PruneSessions(context.Background())
		if err != nil || n != 1 {
			t.Errorf("PruneSessions: %d, %v; want 1 pruned", n, err)
		}
		if got := e.takeEnded(); !slices.Equal(got, []int64{sess.ID}) {
			t.Errorf("SessionsEnded got %v; want [%d]", got, sess.ID)
		}
	})
}

func TestEnsureAdmin(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		email, password, created, err := e.svc.EnsureAdmin(ctx)
		if err != nil || !created || email != "admin@localhost" || len(password) < 20 {
			t.Fatalf("EnsureAdmin: %q %q %v %v; want admin@localhost, a 20-character password", email, password, created, err)
		}
		c := e.client("192.0.2.1:4000")
		resp := c.login(email, password)
		wantStatus(t, "admin login", resp, http.StatusOK)
		if u, _ := resp.body["user"].(map[string]any); u["role"] != "admin" || u["name"] != "Admin" {
			t.Errorf("got %v; want the admin", u)
		}
		email, password, created, err = e.svc.EnsureAdmin(ctx)
		if err != nil || created || email != "" || password != "" {
			t.Errorf("second EnsureAdmin: %q %q %v %v; want nothing created", email, password, created, err)
		}
		if n, err := e.svc.CountUsers(ctx); n != 1 || err != nil {
			t.Errorf("CountUsers: %d, %v; want 1", n, err)
		}
	})
}

// Agents added before the first start (user add --role agent) leave the install without
// anyone to manage it: the first start still makes the admin.
func TestEnsureAdminWhenOnlyAgentsExist(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		e.user("ann@example.com", "Ann", accounts.RoleAgent)
		email, password, created, err := e.svc.EnsureAdmin(ctx)
		if err != nil || !created || email != "admin@localhost" || password == "" {
			t.Fatalf("EnsureAdmin with only an agent: %q %v %v; want admin@localhost created", email, created, err)
		}
		if _, _, created, err := e.svc.EnsureAdmin(ctx); created || err != nil {
			t.Errorf("second EnsureAdmin: created %v, %v; want nothing", created, err)
		}
	})
}

func TestLoginStoresAnyUserAgent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		e.user("ann@example.com", "Ann", accounts.RoleAgent)
		// Header bytes need not be UTF-8, and PostgreSQL stores nothing else.
		agent := "Mozilla/5.0 \xff\xfe " + strings.Repeat("é", 600)
		_, sess, err := e.svc.Login(context.Background(), "ann@example.com", testPassword, agent, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		var stored, addr string
		if err := db.QueryRowContext(context.Background(), `SELECT user_agent, remote_addr FROM sessions WHERE id = $1`, sess.ID).Scan(&stored, &addr); err != nil {
			t.Fatal(err)
		}
		if !utf8.ValidString(stored) || len(stored) > 512 || !strings.HasPrefix(stored, "Mozilla/5.0 \uFFFD") || addr != "192.0.2.1" {
			t.Errorf("stored user agent %q (%d bytes), address %q", stored, len(stored), addr)
		}
	})
}

// TestBrowserRoundTrip runs a real server and a client with a cookie jar, so the cookie's
// attributes are judged by net/http as a browser would, not by hand.
func TestBrowserRoundTrip(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		e.user("ann@example.com", "Ann", accounts.RoleAgent)
		srv := httptest.NewServer(e.h)
		defer srv.Close()
		jar, _ := cookiejar.New(nil)
		hc := &http.Client{Jar: jar}
		send := func(method, path, body string) int {
			t.Helper()
			req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		steps := []struct {
			method, path, body string
			want               int
		}{
			{http.MethodGet, "/api/me", "", http.StatusUnauthorized},
			{http.MethodPost, "/api/session", `{"email":"ann@example.com","password":"` + testPassword + `"}`, http.StatusOK},
			{http.MethodGet, "/api/me", "", http.StatusOK},
			{http.MethodDelete, "/api/session", "", http.StatusNoContent},
			{http.MethodGet, "/api/me", "", http.StatusUnauthorized},
		}
		for i, s := range steps {
			if got := send(s.method, s.path, s.body); got != s.want {
				t.Fatalf("step %d, %s %s: got %d; want %d", i+1, s.method, s.path, got, s.want)
			}
		}
	})
}
