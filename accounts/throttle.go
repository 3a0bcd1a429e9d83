package accounts

import (
	"container/list"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/switchboard-hq/switchboard/internal/httpx"
)

// Login throttling. Two independent limits apply to every password check:
//
//   - per client address, a token bucket: addrBurst failed attempts at once, then one
//     more every addrRefill. It slows one machine spraying many accounts.
//   - per account (the normalised email, whether or not it exists, so the limit does not
//     reveal which do), a lockout: accountFreeFailures failures in a row are free, then
//     each further failure locks the account for twice as long as the last, from
//     lockoutBase up to lockoutMax. It slows many machines guessing one password.
//
// An attempt is charged before the password is checked and refunded when it succeeds,
// so a burst of concurrent guesses cannot all slip through before the first is counted,
// while a successful login from an office behind one NAT costs its neighbours nothing.
const (
	addrBurst           = 20
	addrRefill          = 3 * time.Second // 20 a minute
	accountFreeFailures = 5
	lockoutBase         = 30 * time.Second
	lockoutMax          = 15 * time.Minute
	// accountIdle is how long an account's failures are remembered after its last attempt.
	accountIdle = time.Hour
	// maxTracked bounds each table's memory (about 100 bytes an entry). When a flood fills
	// it, the least recently used entries go first.
	maxTracked = 50_000
)

// ThrottledError is the answer to a login attempt made too soon. It wraps a 429
// *httpx.Error; handlers also send RetryAfter as the Retry-After header.
type ThrottledError struct {
	RetryAfter time.Duration
}

// retrySeconds is RetryAfter rounded up to whole seconds, at least one.
func (e *ThrottledError) retrySeconds() int {
	return max(1, int(math.Ceil(e.RetryAfter.Seconds())))
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many login attempts; try again in %d seconds", e.retrySeconds())
}

// Unwrap lets httpx.WriteError render the error as a 429 with its message.
func (e *ThrottledError) Unwrap() error {
	return &httpx.Error{Status: http.StatusTooManyRequests, Message: e.Error()}
}

// bucket is a token bucket of failed attempts allowed from one address.
type bucket struct {
	tokens float64
	last   time.Time
}

// fill adds the tokens earned since the last fill. A now earlier than the last fill (an
// attempt that began before another one ended) earns nothing and must not move last back,
// or the interval would be earned twice.
func (b *bucket) fill(now time.Time) {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(addrBurst, b.tokens+float64(elapsed)/float64(addrRefill))
		b.last = now
	}
}

// wait is how long until one token is available; 0 when one is.
func (b *bucket) wait() time.Duration {
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(addrRefill))
}

// lockout is the failure record of one account.
type lockout struct {
	failures int
	until    time.Time
}

// lockFor is how long an account stays locked after its nth consecutive failure.
func lockFor(n int) time.Duration {
	if n < accountFreeFailures {
		return 0
	}
	d := lockoutBase
	for i := accountFreeFailures; i < n && d < lockoutMax; i++ {
		d *= 2
	}
	return min(d, lockoutMax)
}

// throttle holds both limits' state, bounded in size.
type throttle struct {
	mu       sync.Mutex
	addrs    *lru[bucket]  // guarded by mu
	accounts *lru[lockout] // guarded by mu
}

func newThrottle() *throttle {
	return &throttle{
		// A bucket untouched for addrBurst*addrRefill is full again, the same as a new
		// one, so dropping it loses nothing.
		addrs:    newLRU[bucket](maxTracked, addrBurst*addrRefill),
		accounts: newLRU[lockout](maxTracked, accountIdle),
	}
}

// begin charges one attempt to the address and the account, or returns a *ThrottledError
// (charging neither) when either is exhausted. An empty addr is not limited per address.
func (t *throttle) begin(now time.Time, addr, account string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b *bucket
	if addr != "" {
		b = t.addrs.get(addr, now, func() bucket { return bucket{tokens: addrBurst, last: now} })
		b.fill(now)
	}
	a := t.accounts.get(account, now, func() lockout { return lockout{} })
	var wait time.Duration
	if b != nil {
		wait = b.wait()
	}
	if now.Before(a.until) {
		wait = max(wait, a.until.Sub(now))
	}
	if wait > 0 {
		return &ThrottledError{RetryAfter: wait}
	}
	if b != nil {
		b.tokens--
	}
	a.failures++
	if d := lockFor(a.failures); d > 0 {
		a.until = now.Add(d)
	}
	return nil
}

// succeeded refunds the address's token and clears the account's failures.
func (t *throttle) succeeded(now time.Time, addr, account string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refundLocked(now, addr)
	if a := t.accounts.peek(account); a != nil {
		*a = lockout{}
	}
}

// abandon undoes begin when the attempt failed for a reason that was not the password
// (the database was down): the user should not pay for that.
func (t *throttle) abandon(now time.Time, addr, account string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refundLocked(now, addr)
	if a := t.accounts.peek(account); a != nil && a.failures > 0 {
		a.failures--
	}
}

func (t *throttle) refundLocked(now time.Time, addr string) {
	if addr == "" {
		return
	}
	if b := t.addrs.peek(addr); b != nil {
		b.fill(now)
		b.tokens = min(addrBurst, b.tokens+1)
	}
}

// lru is a map whose entries expire after idle without use, and whose least recently used
// entry is dropped when it would grow past max. Keeping entries in use order makes both
// cheap: expired entries are always at the back.
type lru[V any] struct {
	max   int
	idle  time.Duration
	items map[string]*list.Element // of *lruEntry[V]
	order *list.List               // front: most recently used
}

type lruEntry[V any] struct {
	key  string
	used time.Time
	val  V
}

func newLRU[V any](max int, idle time.Duration) *lru[V] {
	return &lru[V]{max: max, idle: idle, items: make(map[string]*list.Element), order: list.New()}
}

// get returns key's value, creating it with fresh when missing, and marks it used at now.
func (c *lru[V]) get(key string, now time.Time, fresh func() V) *V {
	for e := c.order.Back(); e != nil && now.Sub(e.Value.(*lruEntry[V]).used) > c.idle; e = c.order.Back() {
		c.remove(e)
	}
	if e, ok := c.items[key]; ok {
		ent := e.Value.(*lruEntry[V])
		ent.used = now
		c.order.MoveToFront(e)
		return &ent.val
	}
	ent := &lruEntry[V]{key: key, used: now, val: fresh()}
	c.items[key] = c.order.PushFront(ent)
	if c.order.Len() > c.max {
		c.remove(c.order.Back())
	}
	return &ent.val
}

// peek returns key's value without marking it used, or nil.
func (c *lru[V]) peek(key string) *V {
	if e, ok := c.items[key]; ok {
		return &e.Value.(*lruEntry[V]).val
	}
	return nil
}

func (c *lru[V]) remove(e *list.Element) {
	c.order.Remove(e)
	delete(c.items, e.Value.(*lruEntry[V]).key)
}

func (c *lru[V]) len() int { return c.order.Len() }

// addrKey is the per-address throttle's key for a client address. IPv6 clients are keyed
// by their /64, since one host commonly holds a whole /64 and could rotate through it.
// Text that is not an address (a caller without one) is used as given.
func addrKey(remoteAddr string) string {
	a := parseAddr(remoteAddr)
	if !a.IsValid() {
		return remoteAddr
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
