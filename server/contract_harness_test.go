package server_test

// The contract tests drive the real `switchboard` binary only from outside, as the
// acceptance suite does: environment variables, the CLI, HTTP, WebSocket and signed
// Twilio webhooks. Nothing here reaches into the server's packages; the Twilio signature
// is computed from Twilio's published algorithm, not with the product's helper.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

const (
	ctPublicURL = "http://support.contract.test"     // what Twilio signs; the node is reached directly
	ctToken     = "0123456789abcdef0123456789abcdef" // Twilio tokens are 32 hex digits
	ctNumber    = "+15550002222"
	ctAccount   = "AC11111111111111111111111111111111"
)

// ctContractVars are the variables a test process must not inherit from the developer's
// environment, so every run starts from the same, known configuration.
var ctContractVars = []string{
	"SWITCHBOARD_", "DATABASE_URL", "REDIS_URL", "TWILIO_", "IMAP_URL", "SMTP_URL", "EMAIL_FROM",
}

// ctBaseEnv is the test's environment without any Switchboard configuration.
func ctBaseEnv() []string {
	var env []string
outer:
	for _, kv := range os.Environ() {
		for _, p := range ctContractVars {
			if strings.HasPrefix(kv, p) {
				continue outer
			}
		}
		env = append(env, kv)
	}
	return env
}

// ctRun runs the binary to completion with env and stdin, bounded by a deadline.
func ctRun(t *testing.T, env []string, dir, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, switchboardBinary(t), args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("switchboard %v did not finish in 30 s\nstdout: %s\nstderr: %s", args, o.String(), e.String())
	}
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("switchboard %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// ctNode is one running `switchboard serve`.
type ctNode struct {
	t        *testing.T
	env      []string
	cmd      *exec.Cmd
	addr     string // host:port it listens on
	base     string // http://addr
	out, err *lockedWriter
	exited   chan struct{}
	// The first-start admin login printed on stdout (empty when an admin existed).
	adminEmail, adminPassword string
}

// ctEnvFor returns the environment of a node on a fresh database of engine d, with the
// default SMS channel pointed at twilioAPI (a loopback fake), plus extra variables.
func ctEnvFor(t *testing.T, d store.Dialect, twilioAPI string, extra ...string) []string {
	t.Helper()
	env := append(ctBaseEnv(),
		"DATABASE_URL="+storetest.URL(t, d),
		"SWITCHBOARD_ADDR=127.0.0.1:0",
		"SWITCHBOARD_PUBLIC_URL="+ctPublicURL,
		"TWILIO_ACCOUNT_SID="+ctAccount,
		"TWILIO_AUTH_TOKEN="+ctToken,
		"TWILIO_PHONE_NUMBER="+ctNumber,
		"TWILIO_API_URL="+twilioAPI,
	)
	return append(env, extra...)
}

// ctStart launches `switchboard serve` with env and waits until it prints its address.
func ctStart(t *testing.T, env []string, dir string) *ctNode {
	t.Helper()
	n := &ctNode{t: t, env: env, exited: make(chan struct{})}
	mu := &sync.Mutex{}
	n.out, n.err = &lockedWriter{mu, &bytes.Buffer{}}, &lockedWriter{mu, &bytes.Buffer{}}
	n.cmd = exec.Command(switchboardBinary(t), "serve")
	n.cmd.Env = env
	n.cmd.Dir = dir
	n.cmd.Stderr = n.err
	pr, pw := io.Pipe()
	n.cmd.Stdout = io.MultiWriter(n.out, pw)
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = n.cmd.Wait()
		pw.Close()
		close(n.exited)
	}()
	t.Cleanup(func() {
		_ = n.cmd.Process.Kill()
		<-n.exited
		if t.Failed() {
			t.Logf("switchboard serve stdout:\n%s\nstderr:\n%s", n.stdout(), n.stderr())
		}
	})
	addrc := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`listening on (\S+)`)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
				break
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case n.addr = <-addrc:
	case <-n.exited:
		t.Fatalf("switchboard serve exited before listening:\n%s\n%s", n.stdout(), n.stderr())
	case <-time.After(30 * time.Second):
		t.Fatalf("switchboard serve did not listen within 30 s:\n%s\n%s", n.stdout(), n.stderr())
	}
	n.base = "http://" + n.addr
	if m := regexp.MustCompile(`email:\s+(\S+)\s+password:\s+(\S+)`).FindStringSubmatch(n.stdout()); m != nil {
		n.adminEmail, n.adminPassword = m[1], m[2]
	}
	return n
}

func (n *ctNode) stdout() string {
	n.out.mu.Lock()
	defer n.out.mu.Unlock()
	return n.out.w.String()
}

func (n *ctNode) stderr() string {
	n.err.mu.Lock()
	defer n.err.mu.Unlock()
	return n.err.w.String()
}

// ctAddUser runs `switchboard user add` against the node's database.
func ctAddUser(t *testing.T, env []string, email, name, role, password string) {
	t.Helper()
	out, errOut, code := ctRun(t, env, "", password+"\n", "user", "add", "--email", email, "--name", name, "--role", role, "--password-stdin")
	if code != 0 {
		t.Fatalf("user add %s: exit %d\n%s%s", email, code, out, errOut)
	}
}

// ctClient is one browser: a cookie jar against one node.
type ctClient struct {
	t    *testing.T
	base string
	http *http.Client
	id   int64 // the logged-in user's id
}

func (n *ctNode) client() *ctClient {
	jar, _ := cookiejar.New(nil)
	return &ctClient{t: n.t, base: n.base, http: &http.Client{Jar: jar, Timeout: 15 * time.Second}}
}

// login opens a session, failing the test unless it answers 200.
func (n *ctNode) login(email, password string) *ctClient {
	n.t.Helper()
	c := n.client()
	r := c.do("POST", "/api/session", map[string]string{"email": email, "password": password})
	if r.status != 200 {
		n.t.Fatalf("login %s: %d %s", email, r.status, r.raw)
	}
	var me struct {
		User struct{ ID int64 } `json:"user"`
	}
	c.get("/api/me", &me)
	c.id = me.User.ID
	return c
}

// ctResp is an answer, read whole.
type ctResp struct {
	status int
	header http.Header
	raw    []byte
	resp   *http.Response
}

// json decodes the body as a JSON object.
func (r ctResp) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.raw, &m); err != nil {
		t.Fatalf("body is not a JSON object (%d): %q", r.status, r.raw)
	}
	return m
}

func (c *ctClient) do(method, path string, body any) ctResp {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			rd = strings.NewReader(s)
		} else {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return ctResp{status: resp.StatusCode, header: resp.Header, raw: raw, resp: resp}
}

// get fetches path, demands 200 and decodes into v.
func (c *ctClient) get(path string, v any) {
	c.t.Helper()
	r := c.do("GET", path, nil)
	if r.status != 200 {
		c.t.Fatalf("GET %s: %d %s", path, r.status, r.raw)
	}
	if err := json.Unmarshal(r.raw, v); err != nil {
		c.t.Fatalf("GET %s: %v in %s", path, err, r.raw)
	}
}

// want demands status and decodes the body into v (when v is not nil).
func (c *ctClient) want(status int, method, path string, body, v any) ctResp {
	c.t.Helper()
	r := c.do(method, path, body)
	if r.status != status {
		c.t.Fatalf("%s %s %v: %d %s; want %d", method, path, body, r.status, r.raw, status)
	}
	if v != nil {
		if err := json.Unmarshal(r.raw, v); err != nil {
			c.t.Fatalf("%s %s: %v in %s", method, path, err, r.raw)
		}
	}
	return r
}

// ctWantError checks an API refusal: the status, a JSON body {"error":"…"} with a
// non-empty message, and the message's words when given.
func ctWantError(t *testing.T, r ctResp, status int, words ...string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d (%s); want %d", r.status, r.raw, status)
		return
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%d error has Content-Type %q; want application/json", status, ct)
	}
	var m map[string]any
	if err := json.Unmarshal(r.raw, &m); err != nil {
		t.Errorf("%d error body %q is not JSON", status, r.raw)
		return
	}
	msg, ok := m["error"].(string)
	if !ok || strings.TrimSpace(msg) == "" {
		t.Errorf("%d error body %s has no \"error\" message", status, r.raw)
		return
	}
	for _, w := range words {
		if !strings.Contains(strings.ToLower(msg), strings.ToLower(w)) {
			t.Errorf("%d error %q does not mention %q", status, msg, w)
		}
	}
}

// ctSign computes X-Twilio-Signature as Twilio documents it: HMAC-SHA1, keyed with the
// auth token, over the full URL followed by every POST parameter's name and value, the
// names sorted; base64.
func ctSign(token, fullURL string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		vs := append([]string(nil), form[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ctSMSForm is what Twilio posts for an inbound message to the default number.
func ctSMSForm(sid, from, text string) url.Values {
	return url.Values{
		"MessageSid": {sid}, "SmsSid": {sid}, "AccountSid": {ctAccount},
		"From": {from}, "To": {ctNumber}, "Body": {text}, "NumMedia": {"0"},
		"SmsStatus": {"received"}, "ApiVersion": {"2010-04-01"},
	}
}

// webhook posts form to path with the given signature header ("" sends none).
func (n *ctNode) webhook(path string, form url.Values, signature string) ctResp {
	n.t.Helper()
	req, _ := http.NewRequest("POST", n.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if signature != "" {
		req.Header.Set("X-Twilio-Signature", signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("POST %s: %v", path, err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return ctResp{status: resp.StatusCode, header: resp.Header, raw: raw, resp: resp}
}

// sms posts a correctly signed inbound SMS and demands 200.
func (n *ctNode) sms(sid, from, text string) {
	n.t.Helper()
	form := ctSMSForm(sid, from, text)
	r := n.webhook("/webhooks/twilio/sms", form, ctSign(ctToken, ctPublicURL+"/webhooks/twilio/sms", form))
	if r.status != 200 {
		n.t.Fatalf("inbound SMS %s: %d %s", sid, r.status, r.raw)
	}
}

// ctTwilio is a loopback stand-in for Twilio's Messages API, so replies never leave the
// machine. Every created message gets a fresh SID.
type ctTwilio struct {
	srv  *httptest.Server
	mu   sync.Mutex
	sent []url.Values
}

func newCTTwilio(t *testing.T) *ctTwilio {
	f := &ctTwilio{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || !strings.HasSuffix(r.URL.Path, "/Messages.json") {
			http.Error(w, `{"code":20404,"message":"not found","status":404}`, 404)
			return
		}
		_ = r.ParseForm()
		f.mu.Lock()
		f.sent = append(f.sent, r.PostForm)
		sid := fmt.Sprintf("SMout%030d", len(f.sent))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"sid": sid, "status": "queued", "to": r.PostForm.Get("To"),
			"from": r.PostForm.Get("From"), "body": r.PostForm.Get("Body"), "api_version": "2010-04-01"})
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// sentCount is how many messages were handed to the fake.
func (f *ctTwilio) sentCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent)
}

// ctWS is a live-feed connection that splits every text frame on "\n" into objects.
type ctWS struct {
	t      *testing.T
	ws     *websocket.Conn
	in     chan map[string]any
	frames chan []byte // every raw frame, for the framing checks
}

// dialWS opens /ws with c's cookies; query is appended as is (e.g. "?cursor=…").
func (c *ctClient) dialWS(query string, header http.Header) (*ctWS, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(c.base, "http") + "/ws" + query
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: header})
	if err != nil {
		return nil, resp, err
	}
	ws.SetReadLimit(1 << 24)
	f := &ctWS{t: c.t, ws: ws, in: make(chan map[string]any, 10000), frames: make(chan []byte, 10000)}
	go func() {
		defer close(f.in)
		for {
			typ, data, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			if typ != websocket.MessageText {
				f.in <- map[string]any{"type": "__binary_frame__"}
				continue
			}
			f.frames <- data
			for _, line := range bytes.Split(data, []byte("\n")) {
				if len(bytes.TrimSpace(line)) == 0 {
					continue
				}
				var m map[string]any
				if err := json.Unmarshal(line, &m); err != nil {
					m = map[string]any{"type": "__unparsable__", "raw": string(line)}
				}
				f.in <- m
			}
		}
	}()
	c.t.Cleanup(func() { ws.CloseNow() })
	return f, resp, nil
}

func (c *ctClient) ws(query string) *ctWS {
	c.t.Helper()
	f, resp, err := c.dialWS(query, nil)
	if err != nil {
		st := 0
		if resp != nil {
			st = resp.StatusCode
		}
		c.t.Fatalf("dial /ws%s: %v (status %d)", query, err, st)
	}
	return f
}

// next returns the next object, failing after d.
func (f *ctWS) next(d time.Duration) map[string]any {
	f.t.Helper()
	select {
	case m, ok := <-f.in:
		if !ok {
			f.t.Fatal("the WebSocket closed")
		}
		return m
	case <-time.After(d):
		f.t.Fatalf("no WebSocket object within %s", d)
	}
	return nil
}

// until returns every object up to and including the first one that ok accepts.
func (f *ctWS) until(ok func(map[string]any) bool) []map[string]any {
	f.t.Helper()
	var got []map[string]any
	deadline := time.After(15 * time.Second)
	for {
		select {
		case m, open := <-f.in:
			if !open {
				f.t.Fatalf("the WebSocket closed after %d objects", len(got))
			}
			got = append(got, m)
			if ok(m) {
				return got
			}
		case <-deadline:
			f.t.Fatalf("timed out after %d objects: %v", len(got), got)
		}
	}
}

// quiet collects what arrives within d.
func (f *ctWS) quiet(d time.Duration) []map[string]any {
	var got []map[string]any
	deadline := time.After(d)
	for {
		select {
		case m, open := <-f.in:
			if !open {
				return got
			}
			got = append(got, m)
		case <-deadline:
			return got
		}
	}
}

// ctFreePort reports whether addr can be listened on now.
func ctFreePort(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// ctNum reads a JSON number field as int64 (0 when absent or not a number).
func ctNum(m map[string]any, k string) int64 {
	f, _ := m[k].(float64)
	return int64(f)
}

// ctIssue extracts the issue object from an action's answer: {"issue":{…}}.
func ctIssue(t *testing.T, r ctResp) map[string]any {
	t.Helper()
	m := r.obj(t)
	is, ok := m["issue"].(map[string]any)
	if !ok {
		t.Fatalf("answer %s has no issue object", r.raw)
	}
	return is
}

// ctProxy forwards loopback TCP to a server and can cut it off, so a test can make the
// database stop answering without touching the shared server.
type ctProxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	l      net.Listener
	conns  []net.Conn
}

func newCTProxy(t *testing.T, target string) *ctProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ctProxy{t: t, target: target, addr: l.Addr().String()}
	p.serve(l)
	t.Cleanup(p.down)
	return p
}

func (p *ctProxy) serve(l net.Listener) {
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); s.Close() }()
			go func() { _, _ = io.Copy(c, s); c.Close() }()
		}
	}()
}

// down closes the listener and every connection through it.
func (p *ctProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// up listens again on the same address.
func (p *ctProxy) up() {
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(l)
}
