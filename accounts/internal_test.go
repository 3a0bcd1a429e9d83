package accounts

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestPasswordHash(t *testing.T) {
	h := hashPassword("hunter22")
	if !regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`).MatchString(h) {
		t.Errorf("hash %q is not in the PHC argon2id format", h)
	}
	if h2 := hashPassword("hunter22"); h2 == h {
		t.Errorf("two hashes of one password are equal: the salt is not random")
	}
	for _, tt := range []struct {
		password string
		want     bool
	}{{"hunter22", true}, {"hunter23", false}, {"", false}, {"hunter22 ", false}} {
		if got, err := verifyPassword(h, tt.password); got != tt.want || err != nil {
			t.Errorf("verify %q: %v, %v; want %v", tt.password, got, err, tt.want)
		}
	}
	// The reference implementation's test vector (phc-winner-argon2 src/test.c): hashes
	// made elsewhere, with other parameters, verify because they are read from the string.
	const ref = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	if got, err := verifyPassword(ref, "password"); err != nil || !got {
		t.Errorf("verifying the reference vector: %v, %v; want true", got, err)
	}
	if got, _ := verifyPassword(ref, "passwore"); got {
		t.Errorf("the reference vector verifies a wrong password")
	}
	for _, bad := range []string{
		"",
		"plain",
		"$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=18$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=0,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$short",
	} {
		if ok, err := verifyPassword(bad, "password"); ok || err == nil {
			t.Errorf("verify against %q: %v, %v; want errBadHash", bad, ok, err)
		}
	}
}

func TestVerifyUnknownUserCostsAHash(t *testing.T) {
	s := New(nil, Config{})
	// An empty hash (no such user) is checked against the dummy hash, and never matches,
	// not even with the dummy's own password.
	for _, pw := range []string{"", "anything"} {
		if ok, err := s.verify(context.Background(), "", pw); ok || err != nil {
			t.Errorf("verify unknown user: %v, %v; want false, nil", ok, err)
		}
	}
	if !strings.HasPrefix(s.dummyHash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("dummy hash %q does not cost what a real one does", s.dummyHash)
	}
}

func TestLockFor(t *testing.T) {
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{1, 0}, {4, 0},
		{5, 30 * time.Second}, {6, time.Minute}, {7, 2 * time.Minute}, {9, 8 * time.Minute},
		{10, 15 * time.Minute}, {1000, 15 * time.Minute},
	}
	for _, tt := range tests {
		if got := lockFor(tt.failures); got != tt.want {
			t.Errorf("lockFor(%d) = %v; want %v", tt.failures, got, tt.want)
		}
	}
}

func TestLRUBoundsMemory(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newLRU[int](3, time.Minute)
	for i := range 5 {
		*c.get(fmt.Sprint(i), now, func() int { return i }) += 100
	}
	if c.len() != 3 || c.peek("0") != nil || c.peek("1") != nil || *c.peek("4") != 104 {
		t.Errorf("after 5 inserts into 3: len %d; want the 3 most recent", c.len())
	}
	c.get("2", now.Add(30*time.Second), func() int { return -1 }) // keeps "2" alive
	c.get("5", now.Add(61*time.Second), func() int { return 5 })
	if c.len() != 2 || c.peek("2") == nil || c.peek("3") != nil {
		t.Errorf("idle entries were not evicted: len %d", c.len())
	}
	c.get("6", now.Add(time.Hour), func() int { return 6 })
	if c.len() != 1 {
		t.Errorf("len %d after an hour; want 1", c.len())
	}
}

func TestThrottleFloodIsBounded(t *testing.T) {
	th := newThrottle()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range maxTracked + 1000 {
		_ = th.begin(now, fmt.Sprint("addr", i), fmt.Sprint("email", i))
	}
	if th.addrs.len() != maxTracked || th.accounts.len() != maxTracked {
		t.Errorf("tracked %d addresses and %d accounts; want at most %d", th.addrs.len(), th.accounts.len(), maxTracked)
	}
}

func TestAddrKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"192.0.2.1:4000", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2::9]:80", "2001:db8:1:2::/64"},
		{"cli", "cli"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := addrKey(tt.in); got != tt.want {
			t.Errorf("addrKey(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestBucketEarnsEachIntervalOnce(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := bucket{tokens: 0, last: t0.Add(10 * addrRefill)}
	b.fill(t0) // a late refund from an attempt that began earlier
	b.fill(t0.Add(11 * addrRefill))
	if b.tokens != 1 {
		t.Errorf("tokens %v; want 1, for the one interval that passed", b.tokens)
	}
}
