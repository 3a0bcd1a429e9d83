package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/channels/sms"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/server"
	"github.com/switchboard-hq/switchboard/store"
)

const (
	authToken = "test-auth-token"
	number    = "+15550001111"
)

// env is a whole server on a real database behind a real HTTP listener.
type env struct {
	t   *testing.T
	s   *server.Server
	srv *httptest.Server
}

func start(t *testing.T, d store.Dialect) *env {
	t.Helper()
	return startWith(t, d, nil)
}

// startWith is start with changes to the server's Config (a fake clock, SMTP, tuning)
// made by opt, which may be nil.
func startWith(t *testing.T, d store.Dialect, opt func(*server.Config)) *env {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	public, _ := url.Parse("http://" + srv.Listener.Addr().String())
	cfg := server.Config{
		DatabaseURL: storetest.URL(t, d),
		PublicURL:   public,
		Twilio:      &server.Twilio{AccountSID: "AC" + strings.Repeat("0", 32), AuthToken: authToken, PhoneNumber: number},
	}
	if opt != nil {
		opt(&cfg)
	}
	s, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = s.Handler()
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Hub.Shutdown(ctx)
		s.Close()
	})
	return &env{t: t, s: s, srv: srv}
}

// agent creates a user and returns a client logged in as them.
func (e *env) agent(handle string, role accounts.Role) *http.Client {
	e.t.Helper()
	pw := "password-" + handle
	if _, err := e.s.Accounts.CreateUser(context.Background(), accounts.NewUser{
		Email: handle + "@example.com", Name: strings.ToUpper(handle[:1]) + handle[1:], Role: role, Password: pw}); err != nil {
		e.t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp := e.do(c, "POST", "/api/session", map[string]string{"email": handle + "@example.com", "password": pw})
	if resp.StatusCode != 200 {
		e.t.Fatalf("login %s: %d %s", handle, resp.StatusCode, body(resp))
	}
	return c
}

func (e *env) do(c *http.Client, method, path string, v any) *http.Response {
	e.t.Helper()
	var rd io.Reader
	if v != nil {
		b, _ := json.Marshal(v)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if v != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

func (e *env) getJSON(c *http.Client, path string, v any) {
	e.t.Helper()
	resp := e.do(c, "GET", path, nil)
	if resp.StatusCode != 200 {
		e.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body(resp))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
}

func body(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}

// smsForm is what Twilio posts for an inbound message.
func smsForm(sid, from, text string) url.Values {
	return url.Values{
		"MessageSid": {sid}, "SmsSid": {sid}, "AccountSid": {"AC" + strings.Repeat("0", 32)},
		"From": {from}, "To": {number}, "Body": {text}, "NumMedia": {"0"},
	}
}

// postSMS posts a form to the inbound webhook with the given signature mode.
func (e *env) postSMS(form url.Values, sign string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+sms.InboundPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	switch sign {
	case "good":
		req.Header.Set("X-Twilio-Signature", sms.Sign(authToken, e.srv.URL+sms.InboundPath, form))
	case "wrong":
		req.Header.Set("X-Twilio-Signature", sms.Sign("another-token", e.srv.URL+sms.InboundPath, form))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

type issueList struct {
	Issues []struct {
		ID         int64  `json:"id"`
		Status     string `json:"status"`
		CustomerID int64  `json:"customer_id"`
		ChannelID  int64  `json:"channel_id"`
		AssigneeID *int64 `json:"assignee_id"`
	} `json:"issues"`
}

type issueDetail struct {
	Issue struct {
		ID int64 `json:"id"`
	} `json:"issue"`
	Comments []struct {
		Kind       string `json:"kind"`
		Body       string `json:"body"`
		ExternalID string `json:"external_id"`
	} `json:"comments"`
	Activity []struct {
		Action string `json:"action"`
	} `json:"activity"`
}

func TestTwilioWebhook(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close() // Each gives a database; this test starts a whole server on its own
		e := start(t, d.Dialect())
		alice := e.agent("alice", accounts.RoleAgent)

		// Refusals change nothing.
		for _, tc := range []struct{ sign string }{{"none"}, {"wrong"}} {
			resp := e.postSMS(smsForm("SM-bad", "+15551234567", "hello"), tc.sign)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("signature %s: got %d; want 403", tc.sign, resp.StatusCode)
			}
			resp.Body.Close()
		}
		var list issueList
		e.getJSON(alice, "/api/issues", &list)
		if len(list.Issues) != 0 {
			t.Fatalf("refused webhooks created issues: %+v", list)
		}

		// A new customer: a new issue, answered with empty TwiML.
		resp := e.postSMS(smsForm("SM1", "+15551234567", "Where is my order? <b>now</b>"), "good")
		if got := body(resp); resp.StatusCode != 200 || !strings.Contains(got, "<Response/>") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/xml") {
			t.Fatalf("got %d %q %s; want 200 with empty TwiML", resp.StatusCode, got, resp.Header.Get("Content-Type"))
		}
		// The same MessageSid again: accepted and ignored.
		resp = e.postSMS(smsForm("SM1", "+15551234567", "Where is my order? <b>now</b>"), "good")
		if resp.StatusCode != 200 || !strings.Contains(body(resp), "<Response/>") {
			t.Fatalf("repeat: got %d; want 200", resp.StatusCode)
		}
		// The same customer again: appended to the open issue.
		e.postSMS(smsForm("SM2", "+15551234567", "Hello??"), "good").Body.Close()
		// Another customer: a second issue.
		e.postSMS(smsForm("SM3", "+15557654321", "Hi"), "good").Body.Close()

		e.getJSON(alice, "/api/issues", &list)
		if len(list.Issues) != 2 {
			t.Fatalf("got %d issues; want 2: %+v", len(list.Issues), list)
		}
		first := list.Issues[1] // newest first
		if first.Status != "open" || first.AssigneeID != nil {
			t.Errorf("new issue: %+v; want open and unassigned", first)
		}
		var detail issueDetail
		e.getJSON(alice, fmt.Sprintf("/api/issues/%d", first.ID), &detail)
		if len(detail.Comments) != 2 {
			t.Fatalf("got %d comments; want 2 (repeat ignored, second appended): %+v", len(detail.Comments), detail.Comments)
		}
		if c := detail.Comments[0]; c.Kind != "customer" || c.Body != "Where is my order? <b>now</b>" || c.ExternalID != "SM1" {
			t.Errorf("first comment %+v; want the customer's text byte for byte with its MessageSid", c)
		}
		if len(detail.Activity) != 2 || detail.Activity[0].Action != "created" {
			t.Errorf("activity %+v; want created then customer_message", detail.Activity)
		}

		// Text search finds messages and phone numbers.
		e.getJSON(alice, "/api/issues?q=hello%3F%3F", &list)
		if len(list.Issues) != 1 || list.Issues[0].ID != first.ID {
			t.Errorf("q=hello??: got %+v; want issue %d", list.Issues, first.ID)
		}
		e.getJSON(alice, "/api/issues?q=7654321", &list)
		if len(list.Issues) != 1 || list.Issues[0].ID == first.ID {
			t.Errorf("q by phone: got %+v", list.Issues)
		}
	})
}

func TestTwilioWebhookBadInput(t *testing.T) {
	e := start(t, store.SQLite)
	for _, tc := range []struct {
		name string
		form url.Values
		want int
	}{
		{"no sid", url.Values{"From": {"+1555"}, "To": {number}, "Body": {"x"}}, 400},
		{"no from", url.Values{"MessageSid": {"SMx"}, "To": {number}, "Body": {"x"}}, 400},
		{"unknown number", url.Values{"MessageSid": {"SMy"}, "From": {"+15551112222"}, "To": {"+15559999999"}, "Body": {"x"}}, 404},
		{"bad utf-8", url.Values{"MessageSid": {"SMz"}, "From": {"+15551112222"}, "To": {number}, "Body": {"\xff"}}, 400},
	} {
		resp := e.postSMS(tc.form, "good")
		if resp.StatusCode != tc.want {
			t.Errorf("%s: got %d; want %d", tc.name, resp.StatusCode, tc.want)
		}
		resp.Body.Close()
	}
	req, _ := http.NewRequest("POST", e.srv.URL+sms.InboundPath, strings.NewReader(`{"json":true}`))
	req.Header.Set("Content-Type", "application/json")
	resp, _ := http.DefaultClient.Do(req)
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("JSON body: got %d; want 415", resp.StatusCode)
	}
	resp.Body.Close()
}

func TestConcurrentWebhookRetriesMakeOneIssue(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		e := start(t, d.Dialect())
		alice := e.agent("alice", accounts.RoleAgent)
		var wg sync.WaitGroup
		codes := make(chan int, 20)
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Ten copies of one message and ten distinct messages, all from one new customer.
				sid := "SM-same"
				if i%2 == 1 {
					sid = fmt.Sprintf("SM-%d", i)
				}
				resp := e.postSMS(smsForm(sid, "+15550009999", "burst"), "good")
				codes <- resp.StatusCode
				resp.Body.Close()
			}()
		}
		wg.Wait()
		close(codes)
		for c := range codes {
			if c != 200 {
				t.Errorf("got %d; want 200", c)
			}
		}
		var list issueList
		e.getJSON(alice, "/api/issues", &list)
		if len(list.Issues) != 1 {
			t.Fatalf("got %d issues; want 1", len(list.Issues))
		}
		var detail issueDetail
		e.getJSON(alice, fmt.Sprintf("/api/issues/%d", list.Issues[0].ID), &detail)
		if len(detail.Comments) != 11 {
			t.Errorf("got %d comments; want 11 (one per distinct MessageSid)", len(detail.Comments))
		}
	})
}

// wsClient reads frames, splitting coalesced ones.
func dialWS(t *testing.T, e *env, c *http.Client, query string) (*websocket.Conn, chan map[string]any) {
	t.Helper()
	u, _ := url.Parse(e.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+u.Host+"/ws"+query, &websocket.DialOptions{
		HTTPClient: c, HTTPHeader: http.Header{"Origin": {e.srv.URL}}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	in := make(chan map[string]any, 1000)
	go func() {
		defer close(in)
		for {
			_, data, err := ws.Read(context.Background())
			if err != nil {
				in <- map[string]any{"type": "closed", "err": err.Error(), "code": float64(websocket.CloseStatus(err))}
				return
			}
			for _, line := range bytes.Split(data, []byte("\n")) {
				var m map[string]any
				if err := json.Unmarshal(line, &m); err != nil {
					t.Errorf("frame is not JSON: %q", line)
				}
				in <- m
			}
		}
	}()
	return ws, in
}

func next(t *testing.T, in chan map[string]any, typ string) map[string]any {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-in:
			if m["type"] == typ {
				return m
			}
			if m["type"] == "closed" {
				t.Fatalf("connection closed waiting for %s: %v", typ, m)
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s", typ)
		}
	}
}

func TestWebhookReachesTheLiveFeed(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		e := start(t, d.Dialect())
		alice := e.agent("alice", accounts.RoleAgent)
		_, in := dialWS(t, e, alice, "")
		hello := next(t, in, "hello")
		if hello["cursor"] == "" {
			t.Fatal("hello without cursor")
		}
		e.postSMS(smsForm("SM10", "+15551230000", "<script>alert(1)</script>"), "good").Body.Close()
		m := next(t, in, "message.created")
		if m["cursor"] == "" || m["cursor"] == hello["cursor"] {
			t.Errorf("event cursor %v; want a new cursor", m["cursor"])
		}
		msg := m["data"].(map[string]any)["message"].(map[string]any)
		if msg["body"] != "<script>alert(1)</script>" {
			t.Errorf("body %q; want the text byte for byte", msg["body"])
		}
		issue := msg["issue"].(map[string]any)
		if issue["status"] != "open" || issue["assignee_id"] != nil {
			t.Errorf("issue %v; want open and unassigned", issue)
		}

		// Resume: a second message while disconnected arrives on reconnect, once.
		cursor := m["cursor"].(string)
		e.postSMS(smsForm("SM11", "+15551230000", "anyone?"), "good").Body.Close()
		_, in2 := dialWS(t, e, alice, "?cursor="+url.QueryEscape(cursor))
		if h := next(t, in2, "hello"); h["cursor"] != cursor {
			t.Errorf("resumed hello cursor %v; want %v", h["cursor"], cursor)
		}
		m2 := next(t, in2, "message.created")
		if b := m2["data"].(map[string]any)["message"].(map[string]any)["body"]; b != "anyone?" {
			t.Errorf("replayed %v; want the missed message", b)
		}
	})
}

func TestWebSocketNeedsSessionAndOrigin(t *testing.T) {
	e := start(t, store.SQLite)
	u, _ := url.Parse(e.srv.URL)
	ctx := context.Background()
	if _, resp, err := websocket.Dial(ctx, "ws://"+u.Host+"/ws", nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("without a session: got %v %v; want 401", resp, err)
	}
	alice := e.agent("alice", accounts.RoleAgent)
	_, resp, err := websocket.Dial(ctx, "ws://"+u.Host+"/ws", &websocket.DialOptions{
		HTTPClient: alice, HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("foreign origin: got %v; want 403", err)
	}
}

func TestLogoutClosesLiveConnections(t *testing.T) {
	e := start(t, store.SQLite)
	alice := e.agent("alice", accounts.RoleAgent)
	_, in := dialWS(t, e, alice, "")
	next(t, in, "hello")
	if resp := e.do(alice, "DELETE", "/api/session", nil); resp.StatusCode != 204 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	m := next(t, in, "closed")
	if !strings.Contains(fmt.Sprint(m["err"]), "session ended") {
		t.Errorf("got %v; want a close saying the session ended", m)
	}
}

func TestUnreadAndReadMarkers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		e := start(t, d.Dialect())
		alice := e.agent("alice", accounts.RoleAgent)
		for i := range 3 {
			e.postSMS(smsForm(fmt.Sprint("SMu", i), "+15551230000", "m"), "good").Body.Close()
		}
		var chs struct {
			Channels []struct {
				ID       int64  `json:"id"`
				Kind     string `json:"kind"`
				Unread   int64  `json:"unread"`
				LastRead int64  `json:"last_read"`
			} `json:"channels"`
		}
		e.getJSON(alice, "/api/channels", &chs)
		if len(chs.Channels) != 1 || chs.Channels[0].Kind != "sms" || chs.Channels[0].Unread != 3 {
			t.Fatalf("channels %+v; want the SMS channel with 3 unread", chs)
		}
		id := chs.Channels[0].ID
		// A second tab learns of the read marker live.
		_, in := dialWS(t, e, alice, "")
		next(t, in, "hello")
		resp := e.do(alice, "POST", fmt.Sprintf("/api/channels/%d/read", id), map[string]int{"number": 2})
		if resp.StatusCode != 200 {
			t.Fatalf("read: %d %s", resp.StatusCode, body(resp))
		}
		resp.Body.Close()
		m := next(t, in, "channel.read")
		if data := m["data"].(map[string]any); data["last_read"] != float64(2) || data["unread"] != float64(1) || data["as_of"] != float64(3) {
			t.Errorf("channel.read %v; want last_read 2, unread 1 as of message 3", data)
		}
		var msgs struct {
			Messages []struct {
				Number int64 `json:"number"`
			} `json:"messages"`
			LastRead int64 `json:"last_read"`
		}
		e.getJSON(alice, fmt.Sprintf("/api/channels/%d/messages", id), &msgs)
		if len(msgs.Messages) != 3 || msgs.LastRead != 2 || msgs.Messages[0].Number != 1 {
			t.Errorf("messages %+v; want 3 ascending with last_read 2", msgs)
		}
		// The read marker never moves back.
		e.do(alice, "POST", fmt.Sprintf("/api/channels/%d/read", id), map[string]int{"number": 1}).Body.Close()
		e.getJSON(alice, "/api/channels", &chs)
		if chs.Channels[0].LastRead != 2 {
			t.Errorf("last_read moved back to %d", chs.Channels[0].LastRead)
		}
	})
}

func TestHealthzAndMetrics(t *testing.T) {
	e := start(t, store.SQLite)
	resp, err := http.Get(e.srv.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	e.postSMS(smsForm("SMm", "+15551230000", "m"), "good").Body.Close()
	resp, _ = http.Get(e.srv.URL + "/metrics")
	text := body(resp)
	for _, want := range []string{
		`switchboard_webhook_requests_total{endpoint="sms",outcome="accepted"} 1`,
		`switchboard_http_requests_total{code="200",method="GET",route="/healthz"} 1`,
		`switchboard_ws_connections 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	e.s.DB.Close()
	resp, _ = http.Get(e.srv.URL + "/healthz")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("healthz with the database closed: got %d; want 503", resp.StatusCode)
	}
	resp.Body.Close()
}

func TestAPIErrorsAreJSON(t *testing.T) {
	e := start(t, store.SQLite)
	alice := e.agent("alice", accounts.RoleAgent)
	for _, tc := range []struct {
		c      *http.Client
		method string
		path   string
		want   int
	}{
		{http.DefaultClient, "GET", "/api/issues", 401},
		{http.DefaultClient, "GET", "/api/channels", 401},
		{alice, "GET", "/api/issues/999", 404},
		{alice, "GET", "/api/issues?status=bogus", 400},
		{alice, "GET", "/api/nothing", 404},
		{alice, "GET", "/api/channels/999/messages", 404},
	} {
		resp := e.do(tc.c, tc.method, tc.path, nil)
		b := body(resp)
		var v map[string]string
		if resp.StatusCode != tc.want || json.Unmarshal([]byte(b), &v) != nil || v["error"] == "" {
			t.Errorf("%s %s: got %d %s; want %d with {\"error\"}", tc.method, tc.path, resp.StatusCode, b, tc.want)
		}
	}
}

func TestCrossSiteBrowserPostsAreRefusedButTwilioPasses(t *testing.T) {
	e := start(t, store.SQLite)
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/session", strings.NewReader(`{"email":"a@b.c","password":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := body(resp); resp.StatusCode != 403 || !strings.Contains(b, `"error"`) {
		t.Errorf("cross-site POST: got %d %s; want 403 JSON", resp.StatusCode, b)
	}
	// Twilio's posts carry no browser headers.
	if resp := e.postSMS(smsForm("SMx", "+15551230000", "hi"), "good"); resp.StatusCode != 200 {
		t.Errorf("webhook: got %d; want 200", resp.StatusCode)
	}
}

func TestPresenceAPI(t *testing.T) {
	e := start(t, store.SQLite)
	alice := e.agent("alice", accounts.RoleAgent)
	bob := e.agent("bob", accounts.RoleAgent)
	var p struct {
		Presence map[string]string `json:"presence"`
	}
	e.getJSON(bob, "/api/presence", &p)
	if len(p.Presence) != 0 {
		t.Fatalf("presence %v; want nobody online", p.Presence)
	}
	_, in := dialWS(t, e, alice, "")
	next(t, in, "hello")
	me, _ := e.s.Accounts.Users(context.Background())
	var aliceID int64
	for _, u := range me {
		if u.Handle == "alice" {
			aliceID = u.ID
		}
	}
	e.getJSON(bob, "/api/presence", &p)
	if p.Presence[fmt.Sprint(aliceID)] != "online" {
		t.Errorf("presence %v; want alice (%d) online", p.Presence, aliceID)
	}
}

func TestIssueViewFollowsTheIssueTopic(t *testing.T) {
	e := start(t, store.SQLite)
	alice := e.agent("alice", accounts.RoleAgent)
	e.postSMS(smsForm("SMi1", "+15551230000", "first"), "good").Body.Close()
	var list issueList
	e.getJSON(alice, "/api/issues", &list)
	id := list.Issues[0].ID
	ws, in := dialWS(t, e, alice, "")
	next(t, in, "hello")
	ctx := context.Background()
	ws.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`{"type":"subscribe","topic":"issue:%d"}`, id)))
	if m := next(t, in, "subscribed"); m["topic"] != fmt.Sprintf("issue:%d", id) {
		t.Fatalf("got %v", m)
	}
	e.postSMS(smsForm("SMi2", "+15551230000", "second"), "good").Body.Close()
	m := next(t, in, "issue.updated")
	if m["topic"] != fmt.Sprintf("issue:%d", id) {
		t.Errorf("got %v; want the issue topic's event", m)
	}
	ws.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","topic":"issue:99999"}`))
	if m := next(t, in, "error"); !strings.Contains(fmt.Sprint(m["error"]), "not allowed") {
		t.Errorf("got %v; want a refusal", m)
	}
	ws.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","topic":"user:424242"}`))
	if m := next(t, in, "error"); !strings.Contains(fmt.Sprint(m["error"]), "not allowed") {
		t.Errorf("someone else's user topic: got %v; want a refusal", m)
	}
}

func TestOwnMessagesAreNotUnread(t *testing.T) {
	e := start(t, store.SQLite)
	alice := e.agent("alice", accounts.RoleAgent)
	bob := e.agent("bob", accounts.RoleAgent)
	users, _ := e.s.Accounts.Users(context.Background())
	var ids []int64
	for _, u := range users {
		ids = append(ids, u.ID)
	}
	ch, err := e.s.Channels.CreateTeam(context.Background(), "Team", ids)
	if err != nil {
		t.Fatal(err)
	}
	if resp := e.do(alice, "POST", fmt.Sprintf("/api/channels/%d/messages", ch.ID), map[string]string{"body": "hello <team>"}); resp.StatusCode != 201 {
		t.Fatalf("post: %d %s", resp.StatusCode, body(resp))
	}
	unread := func(c *http.Client) int64 {
		var chs struct {
			Channels []struct {
				ID     int64 `json:"id"`
				Unread int64 `json:"unread"`
			} `json:"channels"`
		}
		e.getJSON(c, "/api/channels", &chs)
		for _, x := range chs.Channels {
			if x.ID == ch.ID {
				return x.Unread
			}
		}
		t.Fatalf("team channel missing")
		return -1
	}
	if n := unread(alice); n != 0 {
		t.Errorf("author's unread = %d; want 0", n)
	}
	if n := unread(bob); n != 1 {
		t.Errorf("bob's unread = %d; want 1", n)
	}
	// SMS feeds are read-only for agents.
	var chs struct {
		Channels []struct {
			ID   int64  `json:"id"`
			Kind string `json:"kind"`
		} `json:"channels"`
	}
	e.getJSON(alice, "/api/channels", &chs)
	for _, x := range chs.Channels {
		if x.Kind == "sms" {
			if resp := e.do(alice, "POST", fmt.Sprintf("/api/channels/%d/messages", x.ID), map[string]string{"body": "x"}); resp.StatusCode != 403 {
				t.Errorf("post into SMS feed: got %d; want 403", resp.StatusCode)
			}
		}
	}
}
