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
	"github.com/switchboard-hq/switchboard/store"
)

// sbTarget is one Switchboard node, or several on one database and one Redis, on
// loopback, each built the way `switchboard serve` builds it (server.New), with agents
// logged in and one SMS channel per number.
type sbTarget struct {
	nodes   []*sbNode
	tmp     string // temporary directory of the SQLite database, if any
	runID   string
	token   string
	sid     string
	numbers []string
	cookies []string
	userIDs []int64 // the agents, in login order: client i is agent i mod len
}

type sbNode struct {
	cfg  server.Config
	s    *server.Server
	srv  *http.Server
	ln   net.Listener
	base string // http://127.0.0.1:P, also the node's public URL (what signatures cover)
}

// startSwitchboard starts nodes (more than one needs redisURL), creates users agents and
// logs each in once through POST /api/session on the first node (connections share those
// sessions: one user may hold many), and makes nchannels SMS channels, each its own Twilio
// number. With spread, agent u is a member of channel u mod nchannels only.
func startSwitchboard(ctx context.Context, databaseURL, redisURL, redisPrefix string, nodes, users, nchannels int, spread bool, log *slog.Logger) (_ *sbTarget, err error) {
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
	if redisPrefix == "" {
		redisPrefix = "switchboard-bench:" + t.runID + ":"
	}
	for i := range nchannels {
		t.numbers = append(t.numbers, fmt.Sprintf("+1555010%04d", i))
	}
	for range nodes {
		n := &sbNode{}
		t.nodes = append(t.nodes, n)
		if n.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		n.base = "http://" + n.ln.Addr().String()
		public, _ := url.Parse(n.base)
		n.cfg = server.Config{
			DatabaseURL: databaseURL,
			RedisURL:    redisURL,
			RedisPrefix: redisPrefix,
			PublicURL:   public,
			Twilio:      &server.Twilio{AccountSID: t.sid, AuthToken: t.token, PhoneNumber: t.numbers[0]},
			Logger:      log,
		}
		if err := n.serve(ctx); err != nil {
			return nil, err
		}
	}
	// The server configures one number; the others are channels like it, as an admin
	// would connect them.
	for i, n := range t.numbers[1:] {
		if _, err := t.nodes[0].s.Channels.Ensure(ctx, channels.SMS, "SMS "+n, n); err != nil {
			return nil, fmt.Errorf("fanoutbench: channel %d: %w", i+2, err)
		}
	}
	if t.cookies, err = t.login(ctx, users); err != nil {
		return nil, err
	}
	if err := t.membership(ctx, spread); err != nil {
		return nil, err
	}
	return t, nil
}

// membership sets who belongs to the benchmark's SMS channels: with spread, agent u (in
// login order) belongs to channel u mod channels only, so that an event reaches the
// connections of a slice of the agents; without, every agent belongs to every channel (the
// product's default). The product's rule is that every agent is in every SMS channel
// "unless an admin narrows it"; the channels package has no API for narrowing yet, so the
// benchmark writes the rows such an API would write (all_agents off, channel_members rows,
// as team channels have), before any client connects. The channels outlive a run in a
// reused PostgreSQL database, so a run without spread widens again what an earlier spread
// run narrowed.
func (t *sbTarget) membership(ctx context.Context, spread bool) error {
	s := t.nodes[0].s
	now := time.Now().UTC().Truncate(time.Microsecond)
	for k, number := range t.numbers {
		ch, err := s.Channels.ByAddress(ctx, channels.SMS, number)
		if err != nil {
			return fmt.Errorf("fanoutbench: channel %s: %w", number, err)
		}
		if !spread && ch.AllAgents {
			continue
		}
		err = s.DB.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.ExecContext(ctx, `UPDATE channels SET all_agents = $2 WHERE id = $1`, ch.ID, !spread); err != nil {
				return err
			}
			for u := k; spread && u < len(t.userIDs); u += len(t.numbers) {
				if _, err := tx.ExecContext(ctx, `INSERT INTO channel_members (channel_id, user_id, joined_at) VALUES ($1, $2, $3)`,
					ch.ID, t.userIDs[u], now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("fanoutbench: membership of channel %s: %w", number, err)
		}
	}
	return nil
}

// serve builds the node's server and serves it on its listener.
func (n *sbNode) serve(ctx context.Context) error {
	var err error
	if n.s, err = server.New(ctx, n.cfg); err != nil {
		return err
	}
	n.srv = &http.Server{Handler: n.s.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(n.cfg.Logger.Handler(), slog.LevelWarn)}
	go func() { _ = n.srv.Serve(n.ln) }()
	return nil
}

// restart stops the first node the way `switchboard serve` stops on SIGTERM (HTTP, then
// the hub closes every connection with "going away", then the store) and starts it again
// on the same address and database, as a process restart would. It returns how long the
// node was away.
func (t *sbTarget) restart(ctx context.Context) (time.Duration, error) {
	n := t.nodes[0]
	start := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := errors.Join(n.srv.Shutdown(sctx), n.s.Hub.Shutdown(sctx), n.s.Close())
	n.srv, n.s = nil, nil
	if err != nil {
		return 0, fmt.Errorf("fanoutbench: restart: stop: %w", err)
	}
	if n.ln, err = net.Listen("tcp", n.ln.Addr().String()); err != nil {
		return 0, fmt.Errorf("fanoutbench: restart: %w", err)
	}
	if err := n.serve(ctx); err != nil {
		return 0, fmt.Errorf("fanoutbench: restart: %w", err)
	}
	return time.Since(start), nil
}

// login creates n agents and logs each in over HTTP, returning their session cookies.
func (t *sbTarget) login(ctx context.Context, n int) ([]string, error) {
	cookies := make([]string, n)
	t.userIDs = make([]int64, n)
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
			c, id, err := t.agent(ctx, hc, i)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			cookies[i], t.userIDs[i] = c, id
		}()
	}
	wg.Wait()
	return cookies, firstErr
}

func (t *sbTarget) agent(ctx context.Context, hc *http.Client, i int) (string, int64, error) {
	email := fmt.Sprintf("bench-%s-%d@example.com", t.runID, i)
	password := "bench-password-" + t.runID
	u, err := t.nodes[0].s.Accounts.CreateUser(ctx, accounts.NewUser{
		Email: email, Name: fmt.Sprintf("Bench Agent %d", i), Role: accounts.RoleAgent, Password: password,
	})
	if err != nil {
		return "", 0, fmt.Errorf("fanoutbench: create user: %w", err)
	}
	body := fmt.Sprintf(`{"email":%q,"password":%q}`, email, password)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.nodes[0].base+"/api/session", strings.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("fanoutbench: login: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("fanoutbench: login: %s", resp.Status)
	}
	for _, c := range resp.Cookies() {
		if c.Name == accounts.CookieName {
			return c.Name + "=" + c.Value, u.ID, nil
		}
	}
	return "", 0, errors.New("fanoutbench: login set no session cookie")
}

// connectSpec spreads the clients over the nodes: client i connects to node i mod nodes.
func (t *sbTarget) connectSpec(clients, spread int) connectSpec {
	spec := connectSpec{Cookies: t.cookies, Clients: clients, Spread: spread, Users: len(t.cookies)}
	for _, n := range t.nodes {
		spec.URLs = append(spec.URLs, "ws://"+n.ln.Addr().String()+"/ws")
		spec.Origins = append(spec.Origins, n.base)
	}
	return spec
}

// publishSpec posts every webhook to the first node.
func (t *sbTarget) publishSpec(customers int) publishSpec {
	base := t.nodes[0].base
	return publishSpec{
		Kind: pubTwilio, URL: base + sms.InboundPath, SignURL: base + sms.InboundPath,
		AuthToken: t.token, AccountSID: t.sid, Numbers: t.numbers, Channels: len(t.numbers),
		Customers: customers, RunID: t.runID,
	}
}

// counters reads the hubs' objects and WebSocket messages written from /metrics.
func (t *sbTarget) counters(ctx context.Context) (objects, writes int64) {
	for _, n := range t.nodes {
		o, w := n.counters(ctx)
		objects += o
		writes += w
	}
	return objects, writes
}

func (n *sbNode) counters(ctx context.Context) (objects, writes int64) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.base+"/metrics", nil)
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
	for _, n := range t.nodes {
		if n.srv != nil {
			err = errors.Join(err, n.srv.Shutdown(ctx))
		} else if n.ln != nil {
			n.ln.Close()
		}
		if n.s != nil {
			err = errors.Join(err, n.s.Hub.Shutdown(ctx), n.s.Close())
		}
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
