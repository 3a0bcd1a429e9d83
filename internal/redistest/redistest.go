// Package redistest gives tests a real Redis: the shared server that the README's test
// command provides, a key and channel prefix per test that is cleaned up afterwards, and
// throwaway redis-server processes for tests that stop and restart Redis under traffic.
//
// SWITCHBOARD_TEST_REDIS names the shared server (default redis://127.0.0.1:6379/0).
// SWITCHBOARD_REDIS_SERVER names the redis-server binary for StartServer (default: the one
// on PATH). As with storetest, a missing server skips the test, unless CI=true, when it
// fails: CI must never pass by skipping.
package redistest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-hq/switchboard/internal/storetest"
)

// DefaultURL is used when SWITCHBOARD_TEST_REDIS is unset.
const DefaultURL = "redis://127.0.0.1:6379/0"

// pingTimeout bounds the check that a server answers.
const pingTimeout = 3 * time.Second

// serverURL returns the shared server's URL from the environment.
func serverURL() string {
	if u := os.Getenv("SWITCHBOARD_TEST_REDIS"); u != "" {
		return u
	}
	return DefaultURL
}

// newClient returns a client for url with short timeouts, for the helpers' own use.
func newClient(url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redistest: %q: %w", url, err)
	}
	opt.DialTimeout = pingTimeout
	opt.ReadTimeout = pingTimeout
	opt.WriteTimeout = pingTimeout
	opt.MaxRetries = -1
	opt.DisableIdentity = true
	return redis.NewClient(opt), nil
}

// URL returns the shared test server's URL, after checking within 3 s that it answers
// PING. When it does not, the test is skipped, or failed under CI=true.
func URL(t testing.TB) string {
	t.Helper()
	u := serverURL()
	c, err := newClient(u)
	if err != nil {
		t.Fatalf("SWITCHBOARD_TEST_REDIS: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		storetest.Unavailable(t, "Redis at "+u, err)
	}
	return u
}

// Prefix returns a key and channel prefix unique to this test, like "sbtest:1a2b3c4d5e6f:".
// Tests put every key and channel they use under it, so tests in parallel packages never
// meet on the shared server. When the test ends, keys under the prefix are deleted.
// Prefix checks the server first, as URL does.
func Prefix(t testing.TB) string {
	t.Helper()
	u := URL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "sbtest:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n, err := deletePrefix(ctx, u, prefix)
		if err != nil {
			t.Errorf("redistest: delete keys %s*: %v", prefix, err)
		} else if n > 0 && testing.Verbose() {
			t.Logf("redistest: deleted %d keys under %s", n, prefix)
		}
	})
	return prefix
}

// deletePrefix deletes every key that starts with prefix, which holds no glob
// metacharacters, and returns how many it deleted.
func deletePrefix(ctx context.Context, url, prefix string) (int, error) {
	c, err := newClient(url)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	var (
		cursor uint64
		n      int
	)
	for {
		keys, next, err := c.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			return n, err
		}
		if len(keys) > 0 {
			if err := c.Unlink(ctx, keys...).Err(); err != nil {
				return n, err
			}
			n += len(keys)
		}
		if next == 0 {
			return n, nil
		}
		cursor = next
	}
}

// StartServer starts a throwaway redis-server that keeps nothing on disk (--save ”
// --appendonly no) on a free loopback port, waits until it answers, and kills it when the
// test ends. It returns the server's URL, a stop func that kills the server as a crash
// would, and a restart func that kills it and starts a new, empty one on the same port,
// returning once it answers. Clients keep the URL across restarts.
//
// stop and restart may be called from any goroutine and any number of times; restart
// reports a failure to start with t.Error. The binary is SWITCHBOARD_REDIS_SERVER, else
// redis-server on PATH; when there is none, the test is skipped, or failed under CI=true.
func StartServer(t testing.TB) (url string, stop func(), restart func()) {
	t.Helper()
	bin := os.Getenv("SWITCHBOARD_REDIS_SERVER")
	if bin == "" {
		bin = "redis-server"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		storetest.Unavailable(t, "redis-server", err)
	}
	s := &server{bin: path, dir: t.TempDir()}
	// A port can be taken between our probe and the server's bind: try a few.
	for attempt := 0; ; attempt++ {
		s.port, err = freePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		if err = s.start(); err == nil {
			break
		}
		if attempt == 2 {
			t.Fatalf("redistest: %v", err)
		}
	}
	t.Cleanup(s.stop)
	restart = func() {
		s.stop()
		if err := s.start(); err != nil {
			t.Errorf("redistest: restart: %v", err)
		}
	}
	return s.url(), s.stop, restart
}

// server is one throwaway redis-server, started again on the same port by each restart.
type server struct {
	bin  string
	dir  string
	port int

	mu     sync.Mutex
	cmd    *exec.Cmd  // guarded by mu; nil while stopped
	exited chan error // guarded by mu; receives cmd.Wait's result
}

func (s *server) url() string {
	return "redis://127.0.0.1:" + strconv.Itoa(s.port) + "/0"
}

// start runs the server and waits up to 10 s for it to answer PING.
func (s *server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	var out bytes.Buffer
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", s.dir,
		"--loglevel", "warning",
	)
	cmd.Stdout = &out
	cmd.Stderr = &out
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	c, err := newClient(s.url())
	if err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			s.cmd = cmd
			// Hand the wait to stop: it needs the exit before the port is free again.
			s.exited = exited
			return nil
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("redis-server on port %d exited (%v): %s", s.port, werr, bytes.TrimSpace(out.Bytes()))
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on port %d did not answer within 10s: %v: %s", s.port, err, bytes.TrimSpace(out.Bytes()))
		}
	}
}

// stop kills the server, if it runs, and waits until it has exited.
func (s *server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd, s.exited = nil, nil
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
