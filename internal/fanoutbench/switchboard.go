package fanoutbench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/channels/sms"
	"github.com/switchboard-hq/switchboard/server"
)

// sbTarget is a whole Switchboard node on loopback, built the way `switchboard serve`
// builds it (server.New), with agents logged in and one SMS channel per number.
type sbTarget struct {
	s       *server.Server
	srv     *http.Server
	ln      net.Listener
	base    string // http://127.0.0.1:P, also the public URL the signatures cover
	tmp     string // temporary directory of the SQLite database, if any
	runID   string
	token   string
	sid     string
	numbers []string
	cookies []string
}

// startSwitchboard starts the node, creates users agents and logs each in once through
// POST /api/session (connections share those sessions: one user may hold many), and
// makes channels SMS channels, each its own Twilio number.
func startSwitchboard(ctx context.Context, databaseURL string, users, nchannels int, log *slog.Logger) (_ *sbTarget, err error) {
	t := &sbTarget{runID: randomHex(4), token: randomHex(16), sid: "AC" + strings.Repeat("0", 32)}
	defer func() {
		if err != nil {
			t.close(context.Background())
		}
	}()
	if databaseURL == "" {
		if t.tmp, err = os.MkdirTemp("", "switchboard-bench-"); err != nil {
			return nil, err
		}
		databaseURL = "sqlite:" + filepath.Join(t.tmp, "bench.db")
	}
	if t.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	t.base = "http://" + t.ln.Addr().String()
	public, _ := url.Parse(t.base)
	for i := range nchannels {
		t.numbers = append(t.numbers, fmt.Sprintf("+1555010%04d", i))
	}
	t.s, err = server.New(ctx, server.Config{
		DatabaseURL: databaseURL,
		PublicURL:   public,
		Twilio:      &server.Twilio{AccountSID: t.sid, AuthToken: t.token, PhoneNumber: t.numbers[0]},
		Logger:      log,
	})
	if err != nil {
		return nil, err
	}
	// The server configures one number; the others are channels like it, as an admin
	// would connect them.
	for i, n := range t.numbers[1:] {
		if _, err := t.s.Channels.Ensure(ctx, channels.SMS, "SMS "+n, n); err != nil {
			return nil, fmt.Errorf("fanoutbench: channel %d: %w", i+2, err)
		}
	}
	t.srv = &http.Server{Handler: t.s.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() { _ = t.srv.Serve(t.ln) }()
	if t.cookies, err = t.login(ctx, users); err != nil {
		return nil, err
	}
	return t, nil
}

// login creates n agents and logs each in over HTTP, returning their session cookies.
func (t *sbTarget) login(ctx context.Context, n int) ([]string, error) {
	cookies := make([]string, n)
	hc := &http.Client{Transport: newTransport(4), Timeout: time.Minute}
	defer hc.CloseIdleConnections()
	sem := make(chan struct{}, 4) // argon2id runs a few at a time anyway
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := t.agent(ctx, hc, i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			cookies[i] = c
		}()
	}
	wg.Wait()
	return cookies, firstErr
}

func (t *sbTarget) agent(ctx context.Context, hc *http.Client, i int) (string, error) {
	email := fmt.Sprintf("bench-%s-%d@example.com", t.runID, i)
	password := "bench-password-" + t.runID
	if _, err := t.s.Accounts.CreateUser(ctx, accounts.NewUser{
		Email: email, Name: fmt.Sprintf("Bench Agent %d", i), Role: accounts.RoleAgent, Password: password,
	}); err != nil {
		return "", fmt.Errorf("fanoutbench: create user: %w", err)
	}
	body := fmt.Sprintf(`{"email":%q,"password":%q}`, email, password)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.base+"/api/session", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("fanoutbench: login: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fanoutbench: login: %s", resp.Status)
	}
	for _, c := range resp.Cookies() {
		if c.Name == accounts.CookieName {
			return c.Name + "=" + c.Value, nil
		}
	}
	return "", errors.New("fanoutbench: login set no session cookie")
}

func (t *sbTarget) connectSpec(clients int) connectSpec {
	return connectSpec{URL: "ws://" + t.ln.Addr().String() + "/ws", Origin: t.base, Cookies: t.cookies, Clients: clients}
}

func (t *sbTarget) publishSpec(customers int) publishSpec {
	return publishSpec{
		Kind: pubTwilio, URL: t.base + sms.InboundPath, SignURL: t.base + sms.InboundPath,
		AuthToken: t.token, AccountSID: t.sid, Numbers: t.numbers, Channels: len(t.numbers),
		Customers: customers, RunID: t.runID,
	}
}

// counters reads the hub's objects and WebSocket messages written from /metrics.
func (t *sbTarget) counters(ctx context.Context) (objects, writes int64) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+"/metrics", nil)
	if err != nil {
		return 0, 0
	}
	resp, err := metricsTransport.RoundTrip(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, _ := strconv.ParseFloat(value, 64)
		switch name {
		case "switchboard_ws_frames_total":
			objects = int64(v)
		case "switchboard_ws_writes_total":
			writes = int64(v)
		}
	}
	return objects, writes
}

func (t *sbTarget) close(ctx context.Context) error {
	var err error
	if t.srv != nil {
		err = t.srv.Shutdown(ctx)
	} else if t.ln != nil {
		t.ln.Close()
	}
	if t.s != nil {
		err = errors.Join(err, t.s.Hub.Shutdown(ctx), t.s.Close())
	}
	if t.tmp != "" {
		err = errors.Join(err, os.RemoveAll(t.tmp))
	}
	return err
}

var metricsTransport = newTransport(1)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
