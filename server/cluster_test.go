package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-hq/switchboard/channels/sms"
	"github.com/switchboard-hq/switchboard/internal/redistest"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

// The cluster tests run real `switchboard serve` processes on one PostgreSQL schema and
// one Redis, as a deployment would.

const clusterPublicURL = "http://switchboard.test" // what Twilio signs; nodes are reached directly

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

func switchboardBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchboard-bin")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "switchboard")
		out, err := exec.Command("go", "build", "-o", binary, "github.com/switchboard-hq/switchboard/cmd/switchboard").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

type cluster struct {
	t        *testing.T
	env      []string
	jar      http.CookieJar
	nodes    []*proc
	redisURL string
}

type proc struct {
	name string
	cmd  *exec.Cmd
	addr string
	logs *bytes.Buffer
	mu   *sync.Mutex
}

func newCluster(t *testing.T, redisURL string) *cluster {
	t.Helper()
	bin := switchboardBinary(t)
	c := &cluster{t: t, redisURL: redisURL}
	c.env = append(os.Environ(),
		"DATABASE_URL="+storetest.URL(t, store.Postgres),
		"REDIS_URL="+redisURL,
		"SWITCHBOARD_REDIS_PREFIX="+redistest.Prefix(t),
		"SWITCHBOARD_PUBLIC_URL="+clusterPublicURL,
		"SWITCHBOARD_ADDR=127.0.0.1:0",
		"TWILIO_ACCOUNT_SID=AC"+strings.Repeat("0", 32),
		"TWILIO_AUTH_TOKEN="+authToken,
		"TWILIO_PHONE_NUMBER="+number,
	)
	cmd := exec.Command(bin, "user", "add", "--email", "alice@example.com", "--name", "Alice", "--role", "agent", "--password-stdin")
	cmd.Env = c.env
	cmd.Stdin = strings.NewReader("password-alice\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	c.jar, _ = cookiejar.New(nil)
	return c
}

// start launches a node and waits until it listens.
func (c *cluster) start(name string) *proc {
	c.t.Helper()
	cmd := exec.Command(switchboardBinary(c.t), "serve")
	cmd.Env = c.env
	p := &proc{name: name, cmd: cmd, logs: &bytes.Buffer{}, mu: &sync.Mutex{}}
	cmd.Stderr = &lockedWriter{p.mu, p.logs}
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if c.t.Failed() {
			p.mu.Lock()
			c.t.Logf("node %s log:\n%s", name, p.logs.String())
			p.mu.Unlock()
		}
	})
	addrc := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`listening on (\S+)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
	}()
	select {
	case p.addr = <-addrc:
	case <-time.After(30 * time.Second):
		p.mu.Lock()
		c.t.Fatalf("node %s did not start:\n%s", name, p.logs.String())
	}
	c.nodes = append(c.nodes, p)
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (p *proc) url() string { return "http://" + p.addr }

// login logs alice in through node p; the cookie works on every node.
func (c *cluster) login(p *proc) {
	c.t.Helper()
	client := &http.Client{Jar: c.jar, Timeout: 10 * time.Second}
	resp, err := client.Post(p.url()+"/api/session", "application/json", strings.NewReader(`{"email":"alice@example.com","password":"password-alice"}`))
	if err != nil || resp.StatusCode != 200 {
		c.t.Fatalf("login: %v %v", resp, err)
	}
	resp.Body.Close()
	// The jar holds the cookie for the host; share it with the other nodes (same IP).
	u, _ := url.Parse(p.url())
	for _, q := range c.nodes {
		qu, _ := url.Parse(q.url())
		c.jar.SetCookies(qu, c.jar.Cookies(u))
	}
}

// sms posts a Twilio-signed inbound message to node p.
func (c *cluster) sms(p *proc, sid, text string) error {
	form := smsForm(sid, "+15551230000", text)
	req, _ := http.NewRequest("POST", p.url()+sms.InboundPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sms.Sign(authToken, clusterPublicURL+sms.InboundPath, form))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("webhook: %d", resp.StatusCode)
	}
	return nil
}

// feedClient is a WebSocket on one node that records every object it receives.
type feedClient struct {
	t  *testing.T
	ws *websocket.Conn
	in chan map[string]any
}

func (c *cluster) connect(p *proc, cursor string) *feedClient {
	c.t.Helper()
	q := ""
	if cursor != "" {
		q = "?cursor=" + url.QueryEscape(cursor)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+p.addr+"/ws"+q, &websocket.DialOptions{HTTPClient: &http.Client{Jar: c.jar}})
	if err != nil {
		c.t.Fatalf("dial %s: %v", p.name, err)
	}
	ws.SetReadLimit(1 << 24)
	f := &feedClient{t: c.t, ws: ws, in: make(chan map[string]any, 10000)}
	go func() {
		defer close(f.in)
		for {
			_, data, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			for _, line := range bytes.Split(data, []byte("\n")) {
				var m map[string]any
				if json.Unmarshal(line, &m) == nil {
					f.in <- m
				}
			}
		}
	}()
	c.t.Cleanup(func() { ws.CloseNow() })
	return f
}

// messages reads until it has n message.created objects (or the connection ends, when
// untilClosed), returning them with the last cursor seen.
func (f *feedClient) messages(n int, untilClosed bool) ([]map[string]any, string) {
	f.t.Helper()
	var got []map[string]any
	cursor := ""
	deadline := time.After(30 * time.Second)
	for untilClosed || len(got) < n {
		select {
		case m, ok := <-f.in:
			if !ok {
				if untilClosed {
					return got, cursor
				}
				f.t.Fatalf("connection ended after %d of %d messages", len(got), n)
			}
			if c, ok := m["cursor"].(string); ok {
				cursor = c
			}
			if m["type"] == "message.created" {
				got = append(got, m)
			}
		case <-deadline:
			f.t.Fatalf("timed out with %d of %d messages", len(got), n)
		}
	}
	return got, cursor
}

func bodyOf(m map[string]any) string {
	return m["data"].(map[string]any)["message"].(map[string]any)["body"].(string)
}

func (f *feedClient) hello() string {
	f.t.Helper()
	select {
	case m := <-f.in:
		if m["type"] != "hello" {
			f.t.Fatalf("first frame %v; want hello", m)
		}
		return m["cursor"].(string)
	case <-time.After(10 * time.Second):
		f.t.Fatal("no hello")
	}
	return ""
}

func TestClusterEventOnOneNodeReachesClientsOnAnother(t *testing.T) {
	c := newCluster(t, redistest.URL(t))
	a, b := c.start("a"), c.start("b")
	c.login(a)
	fa := c.connect(a, "")
	fa.hello()
	if err := c.sms(b, "SM-x1", "via node b"); err != nil {
		t.Fatal(err)
	}
	got, _ := fa.messages(1, false)
	if bodyOf(got[0]) != "via node b" {
		t.Errorf("got %q", bodyOf(got[0]))
	}
}

func TestClusterResumeOnAnotherNodeSeesWhatALiveClientSaw(t *testing.T) {
	c := newCluster(t, redistest.URL(t))
	a, b := c.start("a"), c.start("b")
	c.login(a)
	live := c.connect(a, "")
	live.hello()
	leaver := c.connect(a, "")
	leaver.hello()
	c.sms(b, "SM-r1", "one")
	_, cursor := leaver.messages(1, false)
	leaver.ws.Close(websocket.StatusNormalClosure, "")
	for i := 2; i <= 5; i++ {
		if err := c.sms(a, fmt.Sprint("SM-r", i), fmt.Sprint("msg ", i)); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := live.messages(5, false)
	back := c.connect(b, cursor)
	if h := back.hello(); h != cursor {
		t.Errorf("hello cursor %s; want %s", h, cursor)
	}
	got, _ := back.messages(4, false)
	for i := range got {
		w, g := want[i+1], got[i]
		wj, _ := json.Marshal(w)
		gj, _ := json.Marshal(g)
		if !bytes.Equal(wj, gj) {
			t.Errorf("frame %d on node b:\n got %s\nwant %s (what the live client on node a saw)", i, gj, wj)
		}
	}
	select {
	case m := <-back.in:
		t.Errorf("extra frame after resume: %v", m)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestClusterKill9MidBurstLosesNothing(t *testing.T) {
	c := newCluster(t, redistest.URL(t))
	a, b := c.start("a"), c.start("b")
	c.login(a)
	fa := c.connect(a, "")
	fa.hello()
	const total = 60
	sent := make(chan error, total)
	go func() {
		for i := range total {
			sent <- c.sms(b, fmt.Sprint("SM-k", i), fmt.Sprint("burst ", i))
		}
		close(sent)
	}()
	// Kill node a, uncleanly, after its client has seen part of the burst.
	first, _ := fa.messages(10, false)
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	rest, cursor := fa.messages(0, true)
	seen := append(first, rest...)
	if cursor == "" {
		cursor, _ = seen[len(seen)-1]["cursor"].(string)
	}
	for err := range sent {
		if err != nil {
			t.Fatal(err)
		}
	}
	fb := c.connect(b, cursor)
	fb.hello()
	resumed, _ := fb.messages(total-len(seen), false)
	all := append(seen, resumed...)
	for i, m := range all {
		if want := fmt.Sprint("burst ", i); bodyOf(m) != want {
			t.Fatalf("message %d is %q; want %q (nothing lost, nothing twice, in order)", i, bodyOf(m), want)
		}
	}
	select {
	case m := <-fb.in:
		if m["type"] == "message.created" {
			t.Errorf("extra message after the burst: %v", bodyOf(m))
		}
	case <-time.After(300 * time.Millisecond):
	}
}

func TestClusterRedisRestartUnderTraffic(t *testing.T) {
	redisURL, _, restart := redistest.StartServer(t)
	c := newCluster(t, redisURL)
	a, b := c.start("a"), c.start("b")
	c.login(a)
	fa := c.connect(a, "")
	fa.hello()
	const total = 40
	for i := range total {
		if i == total/2 {
			restart()
		}
		if err := c.sms(b, fmt.Sprint("SM-q", i), fmt.Sprint("q ", i)); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := fa.messages(total, false)
	for i, m := range got {
		if want := fmt.Sprint("q ", i); bodyOf(m) != want {
			t.Fatalf("message %d is %q; want %q", i, bodyOf(m), want)
		}
	}
	// Live again over the new Redis: the next message arrives well before a sweep
	// could be the only path (sweeps run every 2 s; this waits at most 10 s but the
	// bus normally delivers in milliseconds).
	if err := c.sms(b, "SM-after", "after restart"); err != nil {
		t.Fatal(err)
	}
	after, _ := fa.messages(1, false)
	if bodyOf(after[0]) != "after restart" {
		t.Errorf("got %q", bodyOf(after[0]))
	}
}
