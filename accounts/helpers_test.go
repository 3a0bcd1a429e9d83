package accounts_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/store"
)

// clock is a fake time source that moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a Service behind its real routes and middleware, with a fake clock and a record
// of the sessions it reported ended.
type env struct {
	t     *testing.T
	db    *store.DB
	svc   *accounts.Service
	h     http.Handler
	clock *clock

	mu    sync.Mutex
	ended []int64
}

const testPassword = "correct horse battery"

func newEnv(t *testing.T, db *store.DB, configure ...func(*accounts.Config)) *env {
	t.Helper()
	e := &env{t: t, db: db, clock: &clock{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}}
	cfg := accounts.Config{
		Now: e.clock.Now,
		SessionsEnded: func(ids []int64) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.ended = append(e.ended, ids...)
		},
	}
	for _, f := range configure {
		f(&cfg)
	}
	e.svc = accounts.New(db, cfg)
	r := mux.NewRouter()
	e.svc.Register(r)
	e.h = e.svc.Middleware(r)
	return e
}

// takeEnded returns the sessions reported ended since the last call, sorted.
func (e *env) takeEnded() []int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := e.ended
	e.ended = nil
	slices.Sort(ids)
	return ids
}

// user creates a user with testPassword.
func (e *env) user(email, name string, role accounts.Role) *accounts.User {
	e.t.Helper()
	u, err := e.svc.CreateUser(context.Background(), accounts.NewUser{Email: email, Name: name, Role: role, Password: testPassword})
	if err != nil {
		e.t.Fatalf("create %s: %v", email, err)
	}
	return u
}

// client is one browser: a peer address, an optional X-Forwarded-For, and a cookie jar of
// one cookie.
type client struct {
	e      *env
	remote string
	xff    string
	token  string
}

func (e *env) client(remote string) *client { return &client{e: e, remote: remote} }

// response is a finished request with its JSON body decoded loosely.
type response struct {
	*http.Response
	body map[string]any
}

func (r *response) errMsg() string {
	s, _ := r.body["error"].(string)
	return s
}

func (r *response) cookie() *http.Cookie {
	for _, c := range r.Cookies() {
		if c.Name == accounts.CookieName {
			return c
		}
	}
	return nil
}

func (c *client) do(method, path string, body any) *response {
	c.e.t.Helper()
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			c.e.t.Fatal(err)
		}
	}
	req := httptest.NewRequest(method, path, &buf)
	req.RemoteAddr = c.remote
	req.Header.Set("User-Agent", "accounts-test")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.xff != "" {
		req.Header.Set("X-Forwarded-For", c.xff)
	}
	if c.token != "" {
		req.AddCookie(&http.Cookie{Name: accounts.CookieName, Value: c.token})
	}
	rec := httptest.NewRecorder()
	c.e.h.ServeHTTP(rec, req)
	resp := &response{Response: rec.Result()}
	if rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &resp.body); err != nil {
			c.e.t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, rec.Body, err)
		}
	}
	if ck := resp.cookie(); ck != nil {
		if ck.MaxAge < 0 {
			c.token = ""
		} else {
			c.token = ck.Value
		}
	}
	return resp
}

func (c *client) login(email, password string) *response {
	c.e.t.Helper()
	return c.do(http.MethodPost, "/api/session", map[string]string{"email": email, "password": password})
}

// mustLogin logs in and returns the session, failing the test otherwise.
func (c *client) mustLogin(email string) *accounts.Session {
	c.e.t.Helper()
	if resp := c.login(email, testPassword); resp.StatusCode != http.StatusOK {
		c.e.t.Fatalf("login %s: %d %s", email, resp.StatusCode, resp.errMsg())
	}
	return c.session()
}

// session is the Service's view of the client's cookie, or nil.
func (c *client) session() *accounts.Session {
	c.e.t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.AddCookie(&http.Cookie{Name: accounts.CookieName, Value: c.token})
	sess, err := c.e.svc.SessionFromRequest(req)
	if err != nil {
		return nil
	}
	return sess
}

func wantStatus(t *testing.T, what string, resp *response, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s: got %d %q; want %d", what, resp.StatusCode, resp.errMsg(), status)
	}
}

func wantError(t *testing.T, what string, resp *response, status int, msg string) {
	t.Helper()
	wantStatus(t, what, resp, status)
	if got := resp.errMsg(); got != msg {
		t.Errorf("%s: got error %q; want %q", what, got, msg)
	}
}
