package accounts_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

func wantThrottled(t *testing.T, what string, resp *response, seconds int) {
	t.Helper()
	wantError(t, what, resp, http.StatusTooManyRequests, fmt.Sprintf("too many login attempts; try again in %d seconds", seconds))
	if got := resp.Header.Get("Retry-After"); got != fmt.Sprint(seconds) {
		t.Errorf("%s: Retry-After %q; want %d", what, got, seconds)
	}
}

func TestThrottlePerAccount(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		e.user("ann@example.com", "Ann", accounts.RoleAgent)
		// Each guess from its own address, as a botnet would: only the account limit applies.
		n := 0
		guess := func(email, password string) *response {
			n++
			return e.client(fmt.Sprintf("198.51.100.%d:4000", n)).login(email, password)
		}
		for i := range 4 {
			wantStatus(t, fmt.Sprint("failure ", i+1), guess("ann@example.com", "wrong password"), http.StatusUnauthorized)
		}
		// A success resets the count.
		wantStatus(t, "success", guess("ann@example.com", testPassword), http.StatusOK)
		for i := range 5 {
			wantStatus(t, fmt.Sprint("failure ", i+1), guess("ANN@example.com", "wrong password"), http.StatusUnauthorized)
		}
		wantThrottled(t, "sixth attempt", guess("ann@example.com", "wrong password"), 30)
		wantThrottled(t, "even the right password", guess("ann@example.com", testPassword), 30)
		e.clock.Advance(20 * time.Second)
		wantThrottled(t, "20s later", guess("ann@example.com", testPassword), 10)

		// After the lockout one more guess is allowed, and a failure doubles the lockout.
		e.clock.Advance(10 * time.Second)
		wantStatus(t, "after lockout", guess("ann@example.com", "wrong password"), http.StatusUnauthorized)
		wantThrottled(t, "second lockout", guess("ann@example.com", testPassword), 60)
		e.clock.Advance(time.Minute)
		wantStatus(t, "right password after the second lockout", guess("ann@example.com", testPassword), http.StatusOK)
		wantStatus(t, "count reset", guess("ann@example.com", "wrong password"), http.StatusUnauthorized)

		// Unknown emails lock alike, so lockouts do not reveal which accounts exist.
		for range 5 {
			wantStatus(t, "unknown email", guess("ghost@example.com", "wrong password"), http.StatusUnauthorized)
		}
		wantThrottled(t, "unknown email locked", guess("ghost@example.com", "wrong password"), 30)
	})
}

func TestThrottlePerAddress(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		trusted := netip.MustParsePrefix("10.0.0.0/8")
		e := newEnv(t, db, func(c *accounts.Config) { c.TrustedProxies = []netip.Prefix{trusted} })
		e.user("ann@example.com", "Ann", accounts.RoleAgent)
		// spray tries a different account each time, as a password sprayer would: only the
		// address limit applies. It returns the status of the last attempt.
		n := 0
		spray := func(c *client, attempts int, xff func(i int) string) *response {
			t.Helper()
			var resp *response
			for i := range attempts {
				n++
				if xff != nil {
					c.xff = xff(i)
				}
				resp = c.login(fmt.Sprintf("user%d@example.com", n), "wrong password")
				if i < attempts-1 && resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("attempt %d from %s (X-Forwarded-For %q): got %d %q; want 401", i+1, c.remote, c.xff, resp.StatusCode, resp.errMsg())
				}
			}
			return resp
		}

		t.Run("direct", func(t *testing.T) {
			c := e.client("203.0.113.7:4000")
			wantStatus(t, "20th attempt", spray(c, 20, nil), http.StatusUnauthorized)
			wantThrottled(t, "21st attempt", spray(c, 1, nil), 3)
			// The right password from a throttled address must wait too.
			wantThrottled(t, "real user on the address", c.login("ann@example.com", testPassword), 3)
			wantStatus(t, "another address", e.client("203.0.113.8:4000").login("ann@example.com", testPassword), http.StatusOK)
			e.clock.Advance(3 * time.Second)
			wantStatus(t, "3s later, one more", spray(c, 1, nil), http.StatusUnauthorized)
			wantThrottled(t, "and then throttled", spray(c, 1, nil), 3)
			e.clock.Advance(time.Minute) // refilled
		})

		t.Run("rotating X-Forwarded-For from an untrusted peer", func(t *testing.T) {
			c := e.client("203.0.113.20:4000")
			rotate := func(i int) string { return fmt.Sprintf("192.0.2.%d", i+1) }
			spray(c, 20, rotate)
			wantThrottled(t, "21st attempt", spray(c, 1, rotate), 3)
		})

		t.Run("X-Forwarded-For from a trusted proxy", func(t *testing.T) {
			proxy := e.client("10.0.0.2:4000")
			// Many clients behind one proxy are limited separately...
			spray(proxy, 30, func(i int) string { return fmt.Sprintf("192.0.2.%d, 10.0.0.3", i+1) })
			// ...and one client is limited however it forges what lies left of the proxies.
			forged := func(i int) string { return fmt.Sprintf("198.18.0.%d, 203.0.113.30, 10.0.0.3", i+1) }
			spray(proxy, 20, forged)
			wantThrottled(t, "21st attempt", spray(proxy, 1, forged), 3)
		})

		t.Run("IPv6 /64", func(t *testing.T) {
			// One host holds a whole /64; rotating through it gains nothing.
			i := 0
			var resp *response
			for ; i < 21; i++ {
				n++
				resp = e.client(fmt.Sprintf("[2001:db8:1:2::%x]:4000", i+1)).login(fmt.Sprintf("user%d@example.com", n), "wrong password")
			}
			wantThrottled(t, "21st attempt in the /64", resp, 3)
		})
	})
}

func TestClientAddr(t *testing.T) {
	svc := accounts.New(nil, accounts.Config{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
	}})
	tests := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct", "203.0.113.7:4000", nil, "203.0.113.7"},
		{"untrusted peer's header ignored", "203.0.113.7:4000", []string{"192.0.2.1"}, "203.0.113.7"},
		{"trusted proxy", "10.0.0.1:4000", []string{"192.0.2.1"}, "192.0.2.1"},
		{"rightmost untrusted", "10.0.0.1:4000", []string{"198.18.0.1, 192.0.2.1, 10.0.0.2"}, "192.0.2.1"},
		{"several headers", "10.0.0.1:4000", []string{"198.18.0.1", "192.0.2.1, 10.9.9.9"}, "192.0.2.1"},
		{"all trusted", "10.0.0.1:4000", []string{"10.0.0.5, 10.0.0.2"}, "10.0.0.5"},
		{"no header from proxy", "10.0.0.1:4000", nil, "10.0.0.1"},
		{"garbage stops the walk", "10.0.0.1:4000", []string{"192.0.2.1, nonsense, 10.0.0.2"}, "10.0.0.2"},
		{"ipv6 proxy", "[fd00::1]:4000", []string{"2001:db8::7"}, "2001:db8::7"},
		{"mapped ipv4 peer", "[::ffff:10.0.0.1]:4000", []string{"192.0.2.1"}, "192.0.2.1"},
		{"hop with port", "10.0.0.1:4000", []string{"[2001:db8::7]:5555"}, "2001:db8::7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := svc.ClientAddr(r).String(); got != tt.want {
				t.Errorf("got %s; want %s", got, tt.want)
			}
		})
	}
}
