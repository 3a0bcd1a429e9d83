package redistest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func client(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opt.DisableIdentity = true
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

func countKeys(t *testing.T, c *redis.Client, prefix string) int {
	t.Helper()
	var (
		cursor uint64
		n      int
	)
	for {
		keys, next, err := c.Scan(context.Background(), cursor, prefix+"*", 1000).Result()
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		n += len(keys)
		if next == 0 {
			return n
		}
		cursor = next
	}
}

func TestURLAnswers(t *testing.T) {
	c := client(t, URL(t))
	if got, err := c.Ping(context.Background()).Result(); err != nil || got != "PONG" {
		t.Fatalf("PING: got %q, %v; want PONG", got, err)
	}
}

func TestPrefixIsUniqueAndCleanedUp(t *testing.T) {
	c := client(t, URL(t))
	ctx := context.Background()

	var prefixes []string
	for i := range 2 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			p := Prefix(t)
			if !strings.HasPrefix(p, "sbtest:") || !strings.HasSuffix(p, ":") {
				t.Fatalf("Prefix = %q; want sbtest:<random>:", p)
			}
			prefixes = append(prefixes, p)
			// More keys than one SCAN page, and of several types.
			pipe := c.Pipeline()
			for k := range 2500 {
				pipe.Set(ctx, fmt.Sprintf("%skey:%d", p, k), k, 0)
			}
			pipe.HSet(ctx, p+"hash", "f", "v")
			pipe.ZAdd(ctx, p+"zset", redis.Z{Score: 1, Member: "m"})
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatalf("populate: %v", err)
			}
			if got := countKeys(t, c, p); got != 2502 {
				t.Fatalf("keys under %s: got %d; want 2502", p, got)
			}
		})
	}
	if len(prefixes) != 2 || prefixes[0] == prefixes[1] {
		t.Fatalf("prefixes %q; want two different ones", prefixes)
	}
	for _, p := range prefixes {
		if got := countKeys(t, c, p); got != 0 {
			t.Errorf("keys under %s after the test: got %d; want 0", p, got)
		}
	}
}

func TestStartServerRestart(t *testing.T) {
	url, stop, restart := StartServer(t)
	if url == URL(t) {
		t.Fatalf("StartServer returned the shared server's URL %s", url)
	}
	c := client(t, url)
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}

	restart()
	// The same client reconnects to the new server, which kept nothing.
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET after restart: got %v; want redis.Nil", err)
	}

	stop()
	stop() // idempotent
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := c.Ping(pctx).Err(); err == nil {
		t.Fatal("PING after stop succeeded; want an error")
	}

	restart() // from stopped, restart starts it again
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after restart from stopped: %v", err)
	}
}

// TestStartServerRestartUnderTraffic restarts the server while a writer keeps going, and
// checks that the same client's writes succeed again afterwards.
func TestStartServerRestartUnderTraffic(t *testing.T) {
	url, _, restart := StartServer(t)
	c := client(t, url)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil && i < 1_000_000; i++ {
			if err := c.Incr(ctx, "n").Err(); err != nil {
				failed.Add(1)
				time.Sleep(time.Millisecond) // back off while the server is down
				continue
			}
			ok.Add(1)
		}
	}()

	waitFor(t, func() bool { return ok.Load() > 100 })
	restart()
	before := ok.Load()
	waitFor(t, func() bool { return ok.Load() > before+100 })
	cancel()
	wg.Wait()
	t.Logf("commands: %d ok, %d failed across the restart", ok.Load(), failed.Load())
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStartServerParallel(t *testing.T) {
	urls := make([]string, 3)
	for i := range urls {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			url, _, _ := StartServer(t)
			urls[i] = url
			if err := client(t, url).Ping(context.Background()).Err(); err != nil {
				t.Fatalf("PING %s: %v", url, err)
			}
		})
	}
}
