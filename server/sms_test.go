package server_test

// The Twilio connector end to end: inbound webhooks, replies through the outbox to a
// local server speaking Twilio's Messages API, delivery reports, opt-outs, several numbers
// and MMS, all through the HTTP API on both engines. Nothing sleeps: a fake clock drives
// backoffs and every wait polls a condition until a deadline.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/channels/sms"
	"github.com/switchboard-hq/switchboard/internal/outbox"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/server"
	"github.com/switchboard-hq/switchboard/store"
)

const (
	twSID    = "AC0123456789abcdef0123456789abcdef"
	twToken  = "7w70ken07w70ken07w70ken07w70ken0" // twilio-go sends only alphanumeric tokens
	twNumber = "+15550009999"
	customer = "+15557001234"
)

// twReply scripts one answer of the fake Twilio.
type twReply struct {
	status int    // 0: 201 with a new message
	body   string // the body for a non-201 answer
	hang   bool   // never answer (until the test ends)
}

// twRequest is a create-message request the fake Twilio received.
type twRequest struct {
	Account string
	User    string
	Pass    string
	Form    url.Values
}

// fakeTwilio speaks the Messages API: POST /2010-04-01/Accounts/{Sid}/Messages.json,
// answered 201 with snake_case JSON, or a scripted error.
type fakeTwilio struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	script []twReply     // guarded by mu: answers to the next requests, in order
	got    []twRequest   // guarded by mu
	done   chan struct{} // closed at the end of the test: hung answers return
}

func newFakeTwilio(t *testing.T) *fakeTwilio {
	f := &fakeTwilio{t: t, done: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		close(f.done)
		f.srv.Close()
	})
	return f
}

func (f *fakeTwilio) then(r ...twReply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = append(f.script, r...)
}

func (f *fakeTwilio) requests() []twRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]twRequest(nil), f.got...)
}

func (f *fakeTwilio) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(r.URL.Path, "/") // "", "2010-04-01", "Accounts", sid, "Messages.json"
	if r.Method != http.MethodPost || len(parts) != 5 || parts[1] != "2010-04-01" || parts[2] != "Accounts" || parts[4] != "Messages.json" {
		http.Error(w, `{"code":20404,"message":"not found","status":404}`, http.StatusNotFound)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	user, pass, _ := r.BasicAuth()
	f.mu.Lock()
	f.got = append(f.got, twRequest{Account: parts[3], User: user, Pass: pass, Form: r.PostForm})
	n := len(f.got)
	var ans twReply
	if len(f.script) > 0 {
		ans, f.script = f.script[0], f.script[1:]
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case ans.hang:
		select {
		case <-r.Context().Done():
		case <-f.done:
		}
		return
	case ans.status != 0:
		w.WriteHeader(ans.status)
		_, _ = io.WriteString(w, ans.body)
		return
	}
	from := r.PostForm.Get("From")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"sid": fmt.Sprintf("SM%032d", n), "status": "queued", "account_sid": parts[3], "to": r.PostForm.Get("To"),
		"from": from, "body": r.PostForm.Get("Body"), "messaging_service_sid": r.PostForm.Get("MessagingServiceSid"),
		"num_segments": "1", "direction": "outbound-api", "api_version": "2010-04-01", "error_code": nil,
	})
}

// smsClock is the server's time, moved by the test.
type smsClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *smsClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *smsClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// smsEnv is a whole server with its outbox worker running, Twilio pointed at the fake.
type smsEnv struct {
	*env
	tw    *fakeTwilio
	clock *smsClock
	alice *http.Client // agent
	admin *http.Client
}

func startSMS(t *testing.T, d store.Dialect) *smsEnv {
	t.Helper()
	tw := newFakeTwilio(t)
	clock := &smsClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	srv := httptest.NewUnstartedServer(nil)
	public, _ := url.Parse("http://" + srv.Listener.Addr().String())
	s, err := server.New(context.Background(), server.Config{
		DatabaseURL: storetest.URL(t, d),
		PublicURL:   public,
		Twilio:      &server.Twilio{AccountSID: twSID, AuthToken: twToken, PhoneNumber: twNumber, APIURL: tw.srv.URL},
		Now:         clock.Now,
		Outbox: outbox.Config{SendTimeout: 500 * time.Millisecond, RetryBase: 10 * time.Second, RetryMax: time.Minute,
			Poll: time.Hour, Jitter: func() float64 { return 0 }},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = s.Handler()
	srv.Start()
	ctx, stop := context.WithCancel(context.Background())
	worker := make(chan struct{})
	go func() {
		defer close(worker)
		s.Outbox.Run(ctx)
	}()
	t.Cleanup(func() {
		stop()
		<-worker
		srv.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Hub.Shutdown(sctx)
		s.Close()
	})
	e := &smsEnv{env: &env{t: t, s: s, srv: srv}, tw: tw, clock: clock}
	e.alice = e.agent("alice", accounts.RoleAgent)
	e.admin = e.agent("root", accounts.RoleAdmin)
	return e
}

// inbound posts a signed inbound SMS to number with token.
func (e *smsEnv) inbound(form url.Values, token string) int {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+sms.InboundPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sms.Sign(token, e.srv.URL+sms.InboundPath, form))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (e *smsEnv) text(sid, from, body string) {
	e.t.Helper()
	f := url.Values{"MessageSid": {sid}, "AccountSid": {twSID}, "From": {from}, "To": {twNumber}, "Body": {body}, "NumMedia": {"0"}}
	if code := e.inbound(f, twToken); code != 200 {
		e.t.Fatalf("inbound %s: %d", sid, code)
	}
}

// status posts a signed delivery report to callback (the StatusCallback Twilio was
// given), as Twilio does.
func (e *smsEnv) status(callback string, form url.Values, token string) int {
	e.t.Helper()
	req, _ := http.NewRequest("POST", callback, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sms.Sign(token, callback, form))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func report(sid, status, code string) url.Values {
	f := url.Values{"MessageSid": {sid}, "SmsSid": {sid}, "MessageStatus": {status}, "SmsStatus": {status},
		"AccountSid": {twSID}, "From": {twNumber}, "To": {customer}, "ApiVersion": {"2010-04-01"}}
	if code != "" {
		f.Set("ErrorCode", code)
	}
	return f
}

// call does a JSON request and returns the status and body.
func (e *smsEnv) call(c *http.Client, method, path string, v any) (int, string) {
	e.t.Helper()
	resp := e.do(c, method, path, v)
	return resp.StatusCode, body(resp)
}

type smsComment struct {
	ID             int64   `json:"id"`
	Kind           string  `json:"kind"`
	Body           string  `json:"body"`
	ExternalID     *string `json:"external_id"`
	DeliveryStatus *string `json:"delivery_status"`
}

func (c smsComment) status() string {
	if c.DeliveryStatus == nil {
		return ""
	}
	return *c.DeliveryStatus
}

func (c smsComment) ext() string {
	if c.ExternalID == nil {
		return ""
	}
	return *c.ExternalID
}

// issueOf returns the id of the customer's open issue.
func (e *smsEnv) issueOf(phone string) int64 {
	e.t.Helper()
	var list issueList
	e.getJSON(e.alice, "/api/issues?q="+url.QueryEscape(phone), &list)
	if len(list.Issues) == 0 {
		e.t.Fatalf("no issue for %s", phone)
	}
	return list.Issues[0].ID
}

// reply posts an agent's reply and returns the comment.
func (e *smsEnv) reply(c *http.Client, issue int64, text string) smsComment {
	e.t.Helper()
	code, b := e.call(c, "POST", fmt.Sprintf("/api/issues/%d/replies", issue), map[string]string{"body": text})
	if code != 200 {
		e.t.Fatalf("reply: %d %s", code, b)
	}
	var out struct {
		Comment smsComment `json:"comment"`
	}
	if err := json.Unmarshal([]byte(b), &out); err != nil {
		e.t.Fatal(err)
	}
	return out.Comment
}

func (e *smsEnv) comment(issue, id int64) smsComment {
	e.t.Helper()
	var d struct {
		Comments []smsComment `json:"comments"`
	}
	e.getJSON(e.alice, fmt.Sprintf("/api/issues/%d", issue), &d)
	for _, c := range d.Comments {
		if c.ID == id {
			return c
		}
	}
	e.t.Fatalf("issue %d has no comment %d", issue, id)
	return smsComment{}
}

// delivery returns the outbox row of a reply, from the issue's deliveries.
func (e *smsEnv) delivery(issue, commentID int64) outbox.Delivery {
	e.t.Helper()
	var out struct {
		Deliveries []outbox.Delivery `json:"deliveries"`
	}
	e.getJSON(e.alice, fmt.Sprintf("/api/issues/%d/deliveries", issue), &out)
	for _, d := range out.Deliveries {
		if d.CommentID != nil && *d.CommentID == commentID {
			return d
		}
	}
	e.t.Fatalf("issue %d has no delivery of comment %d", issue, commentID)
	return outbox.Delivery{}
}

// until polls cond until it holds or 10 s pass.
func (e *smsEnv) until(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *smsEnv) untilStatus(issue, comment int64, want string) smsComment {
	e.t.Helper()
	var c smsComment
	e.until(fmt.Sprintf("comment %d %s", comment, want), func() bool {
		c = e.comment(issue, comment)
		return c.status() == want
	})
	return c
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func TestSMSReplyIsSentAndReportsUpdateIt(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		e := startSMS(t, d.Dialect())
		e.text("SMin1", customer, "Where is my parcel?")
		issue := e.issueOf(customer)
		_, in := dialWS(t, e.env, e.alice, "")
		next(t, in, "hello")

		c := e.reply(e.alice, issue, "It ships today.")
		if c.Kind != "reply" || c.status() != "queued" {
			t.Fatalf("reply %+v; want a queued reply", c)
		}
		e.until("Twilio's request", func() bool { return len(e.tw.requests()) == 1 })
		req := e.tw.requests()[0]
		d0 := e.delivery(issue, c.ID)
		wantCallback := e.srv.URL + sms.StatusPath + fmt.Sprintf("?outbox=%d", d0.ID)
		if req.Account != twSID || req.User != twSID || req.Pass != twToken || req.Form.Get("To") != customer ||
			req.Form.Get("From") != twNumber || req.Form.Get("Body") != "It ships today." || req.Form.Get("StatusCallback") != wantCallback {
			t.Fatalf("Twilio got %+v; want the reply from %s to %s with StatusCallback %s", req, twNumber, customer, wantCallback)
		}
		sid := fmt.Sprintf("SM%032d", 1)
		c = e.untilStatus(issue, c.ID, "queued")
		e.until("the MessageSid stored", func() bool { return e.comment(issue, c.ID).ext() == sid })

		// Reports, signed with the number's token, move it on; a late "sent" after
		// "delivered" does not move it back.
		for _, st := range []string{"sent", "delivered", "sent"} {
			if code := e.status(wantCallback, report(sid, st, ""), twToken); code != http.StatusNoContent {
				t.Fatalf("report %s: %d", st, code)
			}
		}
		if got := e.comment(issue, c.ID); got.status() != "delivered" || got.ext() != sid {
			t.Errorf("after reports: %+v; want delivered with %s", got, sid)
		}
		if code := e.status(wantCallback, report(sid, "failed", ""), "wrong-token-0123456789"); code != http.StatusForbidden {
			t.Errorf("badly signed report: %d; want 403", code)
		}
		// The issue's viewers saw it live.
		ws, in2 := dialWS(t, e.env, e.alice, "")
		next(t, in2, "hello")
		wfSubscribe(t, ws, in2, fmt.Sprintf("issue:%d", issue))

		// A second reply is undelivered: Twilio's code and a readable reason are shown.
		c2 := e.reply(e.alice, issue, "Tracking: 123")
		e.until("second request", func() bool { return len(e.tw.requests()) == 2 })
		sid2 := fmt.Sprintf("SM%032d", 2)
		e.until("second sid", func() bool { return e.comment(issue, c2.ID).ext() == sid2 })
		cb2 := e.tw.requests()[1].Form.Get("StatusCallback")
		e.status(cb2, report(sid2, "undelivered", "30003"), twToken)
		ev := wfNext(t, in2, "comment.delivery", func(m map[string]any) bool {
			return wfData(m)["delivery_status"] == "undelivered"
		})
		if data := wfData(ev); data["error_code"] != "30003" || !strings.Contains(fmt.Sprint(data["error_reason"]), "unreachable") ||
			data["comment_id"] != float64(c2.ID) {
			t.Errorf("event %v; want undelivered with 30003 and a readable reason", data)
		}
		dl := e.delivery(issue, c2.ID)
		if e.comment(issue, c2.ID).status() != "undelivered" || dl.State != outbox.Failed || str(dl.ErrorCode) != "30003" ||
			!strings.Contains(str(dl.ErrorReason), "unreachable") {
			t.Errorf("delivery %+v; want failed/undelivered, 30003, unreachable", dl)
		}
		if n := len(e.tw.requests()); n != 2 {
			t.Errorf("Twilio got %d requests; want 2", n)
		}
	})
}

func TestSMSReplyRetriedAfter503(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		e := startSMS(t, d.Dialect())
		e.tw.then(twReply{status: 503, body: "<html>Service Unavailable</html>"},
			twReply{status: 429, body: `{"code":20429,"message":"Too Many Requests","status":429}`})
		e.text("SMin1", customer, "Hello?")
		issue := e.issueOf(customer)
		c := e.reply(e.alice, issue, "Hi! Looking into it.")

		// 503: kept queued, retried later with the reason shown.
		var dl outbox.Delivery
		e.until("first retry scheduled", func() bool {
			dl = e.delivery(issue, c.ID)
			return dl.State == outbox.Pending && dl.Attempts == 1
		})
		if e.comment(issue, c.ID).status() != "queued" || !strings.Contains(str(dl.ErrorReason), "503") || dl.NextAttemptAt == nil ||
			!dl.NextAttemptAt.Equal(e.clock.Now().Add(5*time.Second)) {
			t.Errorf("after 503: %+v; want queued, reason naming 503, next attempt in 5 s (base 10 s, no jitter)", dl)
		}
		// Not due: a kick changes nothing.
		e.s.Outbox.Kick()
		e.clock.advance(6 * time.Second)
		e.s.Outbox.Kick()
		e.until("second retry scheduled", func() bool {
			dl = e.delivery(issue, c.ID)
			return dl.State == outbox.Pending && dl.Attempts == 2
		})
		if str(dl.ErrorCode) != "20429" || !strings.Contains(str(dl.ErrorReason), "rate") {
			t.Errorf("after 429: %+v; want Twilio's code 20429 and a reason", dl)
		}
		e.clock.advance(11 * time.Second)
		e.s.Outbox.Kick()
		e.untilStatus(issue, c.ID, "queued")
		e.until("sent", func() bool { return e.delivery(issue, c.ID).State == outbox.Sent })
		reqs := e.tw.requests()
		if len(reqs) != 3 {
			t.Fatalf("Twilio got %d requests; want 3 (503, 429, then one message created)", len(reqs))
		}
		sid := fmt.Sprintf("SM%032d", 3)
		got := e.comment(issue, c.ID)
		if got.ext() != sid {
			t.Errorf("comment %+v; want the one created message %s", got, sid)
		}
		e.status(reqs[2].Form.Get("StatusCallback"), report(sid, "delivered", ""), twToken)
		if got := e.comment(issue, c.ID); got.status() != "delivered" {
			t.Errorf("comment %+v; want delivered", got)
		}
		if dl = e.delivery(issue, c.ID); dl.ErrorReason != nil || dl.Attempts != 3 {
			t.Errorf("delivery %+v; want the error cleared after success", dl)
		}
	})
}

func TestSMSReplyToInvalidNumberFailsAtOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		e := startSMS(t, d.Dialect())
		e.tw.then(twReply{status: 400, body: `{"code":21211,"message":"The 'To' number +15557001234 is not a valid phone number.",` +
			`"more_info":"https://www.twilio.com/docs/errors/21211","status":400}`})
		e.text("SMin1", customer, "Hello?")
		issue := e.issueOf(customer)
		c := e.reply(e.alice, issue, "Hi!")
		got := e.untilStatus(issue, c.ID, "failed")
		dl := e.delivery(issue, c.ID)
		if dl.State != outbox.Failed || str(dl.ErrorCode) != "21211" || !strings.Contains(str(dl.ErrorReason), "not a valid phone number") || dl.Attempts != 1 {
			t.Errorf("delivery %+v; want failed at once with 21211 and a readable reason", dl)
		}
		if got.ext() != "" {
			t.Errorf("comment %+v; want no MessageSid", got)
		}
		// Time passes: never retried by itself.
		e.clock.advance(24 * time.Hour)
		e.s.Outbox.Kick()
		c2 := e.reply(e.alice, issue, "Second try from a new reply")
		e.untilStatus(issue, c2.ID, "queued")
		e.until("second reply sent", func() bool { return e.delivery(issue, c2.ID).State == outbox.Sent })
		if n := len(e.tw.requests()); n != 2 {
			t.Errorf("Twilio got %d requests; want 2 (the failed reply was not retried)", n)
		}
	})
}

func TestSMSReplyTimeoutIsUnknownNeverResent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		e := startSMS(t, d.Dialect())
		e.tw.then(twReply{hang: true}, twReply{hang: true})
		e.text("SMin1", customer, "Hello?")
		issue := e.issueOf(customer)
		bob := e.agent("bob", accounts.RoleAgent)
		c := e.reply(e.alice, issue, "On it.")
		got := e.untilStatus(issue, c.ID, "unknown")
		dl := e.delivery(issue, c.ID)
		if dl.State != outbox.Unknown || !strings.Contains(str(dl.ErrorReason), "did not answer") || got.ext() != "" {
			t.Errorf("delivery %+v; want unknown with a reason", dl)
		}
		// However long we wait, it is not sent again; the next reply goes.
		e.clock.advance(48 * time.Hour)
		e.s.Outbox.Kick()
		c2 := e.reply(e.alice, issue, "Also: tracking 123")
		e.untilStatus(issue, c2.ID, "unknown") // the second hangs too
		if n := len(e.tw.requests()); n != 2 {
			t.Fatalf("Twilio got %d requests; want 2 (one per reply, none re-sent)", n)
		}

		// The agent decides. Another agent may not; the assignee may.
		retry := fmt.Sprintf("/api/outbox/%d/retry", dl.ID)
		if code, b := e.call(bob, "POST", retry, nil); code != http.StatusForbidden || !strings.Contains(b, "assignee") {
			t.Errorf("bob retries: %d %s; want 403 naming the rule", code, b)
		}
		if code, b := e.call(e.alice, "POST", retry, nil); code != 200 {
			t.Fatalf("retry: %d %s", code, b)
		}
		e.until("re-sent", func() bool { return e.comment(issue, c.ID).ext() != "" })
		if n := len(e.tw.requests()); n != 3 || e.tw.requests()[2].Form.Get("Body") != "On it." {
			t.Errorf("Twilio got %d requests; want the retried reply third", n)
		}
		if code, _ := e.call(e.alice, "POST", retry, nil); code != http.StatusConflict {
			t.Errorf("retry of a sent message: %d; want 409", code)
		}
		// The second: discarded, it stays unsent.
		d2 := e.delivery(issue, c2.ID)
		if code, b := e.call(e.alice, "POST", fmt.Sprintf("/api/outbox/%d/discard", d2.ID), nil); code != 200 {
			t.Fatalf("discard: %d %s", code, b)
		}
		if got := e.comment(issue, c2.ID); got.status() != "discarded" {
			t.Errorf("discarded reply: %+v", got)
		}
		if code, _ := e.call(e.alice, "POST", "/api/outbox/99999/retry", nil); code != http.StatusNotFound {
			t.Errorf("retry of nothing: %d; want 404", code)
		}
	})
}

// A timeout whose message Twilio did create: its report, addressed to the outbox id,
// resolves the unknown outcome without anyone re-sending it.
func TestSMSUnknownResolvedByReport(t *testing.T) {
	e := startSMS(t, store.SQLite)
	e.tw.then(twReply{hang: true})
	e.text("SMin1", customer, "Hello?")
	issue := e.issueOf(customer)
	c := e.reply(e.alice, issue, "On it.")
	e.untilStatus(issue, c.ID, "unknown")
	cb := e.tw.requests()[0].Form.Get("StatusCallback")
	if code := e.status(cb, report("SMcreatedanyway", "delivered", ""), twToken); code != http.StatusNoContent {
		t.Fatalf("report: %d", code)
	}
	got := e.comment(issue, c.ID)
	if got.status() != "delivered" || got.ext() != "SMcreatedanyway" || e.delivery(issue, c.ID).State != outbox.Sent {
		t.Errorf("comment %+v; want delivered with the reported MessageSid", got)
	}
}

func TestSMSOptOut(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		e := startSMS(t, d.Dialect())
		e.text("SMin1", customer, "Hello")
		issue := e.issueOf(customer)
		e.text("SMin2", customer, "  Stop \n")
		before := len(e.tw.requests())
		code, b := e.call(e.alice, "POST", fmt.Sprintf("/api/issues/%d/replies", issue), map[string]string{"body": "Sorry to see you go"})
		if code != http.StatusConflict || !strings.Contains(b, "opted out") || !strings.Contains(b, "START") {
			t.Fatalf("reply to an opted-out customer: %d %s; want 409 saying so", code, b)
		}
		var detail struct {
			Comments []smsComment `json:"comments"`
		}
		e.getJSON(e.alice, fmt.Sprintf("/api/issues/%d", issue), &detail)
		for _, c := range detail.Comments {
			if c.Kind == "reply" {
				t.Errorf("a refused reply was stored: %+v", c)
			}
		}
		if last := detail.Comments[len(detail.Comments)-1]; last.Body != "  Stop \n" {
			t.Errorf("the STOP message is not in the conversation: %+v", last)
		}
		// Notes are still fine.
		if code, b := e.call(e.alice, "POST", fmt.Sprintf("/api/issues/%d/notes", issue), map[string]string{"body": "they stopped"}); code != 200 {
			t.Errorf("note: %d %s", code, b)
		}
		// START lifts it; a retried old STOP webhook does not put it back.
		e.text("SMin3", customer, "start")
		e.text("SMin2", customer, "  Stop \n")
		c := e.reply(e.alice, issue, "Welcome back")
		e.until("sent", func() bool { return e.delivery(issue, c.ID).State == outbox.Sent })
		if n := len(e.tw.requests()); n != before+1 {
			t.Errorf("Twilio got %d requests; want %d", n, before+1)
		}
		// Other keywords, any case.
		for i, w := range []string{"UNSUBSCRIBE", "cancel", "End", "quit", "STOPALL"} {
			e.text(fmt.Sprintf("SMo%d", i), customer, w)
			if code, _ := e.call(e.alice, "POST", fmt.Sprintf("/api/issues/%d/replies", issue), map[string]string{"body": "x"}); code != http.StatusConflict {
				t.Errorf("after %q: reply %d; want 409", w, code)
			}
			e.text(fmt.Sprintf("SMi%d", i), customer, []string{"YES", "unstop", "Start", "START", "yes"}[i])
		}
		// "stop it please" is a message, not a keyword.
		e.text("SMx", customer, "stop it please")
		e.reply(e.alice, issue, "ok")
	})
}

func TestSMSNumbersAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		e := startSMS(t, d.Dialect())
		const (
			subSID   = "ACfedcba9876543210fedcba9876543210"
			subToken = "5ub70ken5ub70ken5ub70ken5ub70ken"
			mgSID    = "MG0123456789abcdef0123456789abcdef"
			second   = "+15550008888"
		)
		// Admins only; the token is never served.
		if code, _ := e.call(e.alice, "GET", "/api/sms/numbers", nil); code != http.StatusForbidden {
			t.Errorf("agent lists numbers: %d; want 403", code)
		}
		newNumber := map[string]string{"number": second, "account_sid": subSID, "auth_token": subToken, "messaging_service_sid": mgSID, "name": "Billing SMS"}
		if code, _ := e.call(e.alice, "POST", "/api/sms/numbers", newNumber); code != http.StatusForbidden {
			t.Errorf("agent connects a number: %d; want 403", code)
		}
		for _, bad := range []map[string]string{
			{"number": "555", "account_sid": subSID, "auth_token": subToken},
			{"number": second, "account_sid": "AC1", "auth_token": subToken},
			{"number": second, "account_sid": subSID, "auth_token": ""},
			{"number": second, "account_sid": subSID, "auth_token": subToken, "messaging_service_sid": "MG1"},
		} {
			if code, b := e.call(e.admin, "POST", "/api/sms/numbers", bad); code != http.StatusBadRequest {
				t.Errorf("connect %v: %d %s; want 400", bad, code, b)
			}
		}
		code, b := e.call(e.admin, "POST", "/api/sms/numbers", newNumber)
		if code != http.StatusCreated || strings.Contains(b, subToken) || !strings.Contains(b, e.srv.URL+sms.InboundPath) {
			t.Fatalf("connect: %d %s; want 201 with the webhook URL and no token", code, b)
		}
		var created struct {
			Number struct {
				ID       int64  `json:"id"`
				Name     string `json:"name"`
				Webhooks struct {
					Inbound string `json:"inbound"`
				} `json:"webhooks"`
			} `json:"number"`
		}
		_ = json.Unmarshal([]byte(b), &created)
		chID := created.Number.ID
		if created.Number.Name != "Billing SMS" || created.Number.Webhooks.Inbound != e.srv.URL+sms.InboundPath {
			t.Errorf("created %+v", created)
		}
		code, b = e.call(e.admin, "GET", "/api/sms/numbers", nil)
		if code != 200 || strings.Count(b, `"number":"+`) != 2 || strings.Contains(b, twToken) || strings.Contains(b, subToken) {
			t.Errorf("list: %d %s; want both numbers, no tokens", code, b)
		}

		// Inbound to the new number is checked with the subaccount's token, not the default.
		f := url.Values{"MessageSid": {"SMsub1"}, "AccountSid": {subSID}, "From": {customer}, "To": {second}, "Body": {"billing question"}}
		if code := e.inbound(f, twToken); code != http.StatusForbidden {
			t.Errorf("signed with another account's token: %d; want 403", code)
		}
		if code := e.inbound(f, subToken); code != 200 {
			t.Fatalf("signed with the number's token: %d", code)
		}
		// Through the Messaging Service: To is a pool number we do not know.
		f2 := url.Values{"MessageSid": {"SMsub2"}, "AccountSid": {subSID}, "MessagingServiceSid": {mgSID}, "From": {"+15557002222"},
			"To": {"+15550007777"}, "Body": {"via the service"}}
		if code := e.inbound(f2, subToken); code != 200 {
			t.Fatalf("messaging service: %d", code)
		}
		var list issueList
		e.getJSON(e.alice, fmt.Sprintf("/api/issues?channel=%d", chID), &list)
		if len(list.Issues) != 2 {
			t.Fatalf("issues of the new channel: %+v; want 2", list.Issues)
		}

		// A reply leaves through the subaccount and its Messaging Service.
		c := e.reply(e.alice, list.Issues[0].ID, "Billing here")
		e.until("sent", func() bool { return e.delivery(list.Issues[0].ID, c.ID).State == outbox.Sent })
		req := e.tw.requests()[0]
		if req.Account != subSID || req.User != subSID || req.Pass != subToken || req.Form.Get("MessagingServiceSid") != mgSID ||
			req.Form.Get("From") != "" || req.Form.Get("To") != "+15557002222" {
			t.Errorf("Twilio got %+v; want the subaccount's credentials and the Messaging Service", req)
		}
		// Its reports are checked with the subaccount's token.
		cb := req.Form.Get("StatusCallback")
		rep := url.Values{"MessageSid": {fmt.Sprintf("SM%032d", 1)}, "MessageStatus": {"delivered"}, "AccountSid": {subSID},
			"MessagingServiceSid": {mgSID}, "From": {"+15550007777"}, "To": {"+15557002222"}}
		if code := e.status(cb, rep, twToken); code != http.StatusForbidden {
			t.Errorf("report signed by the default account: %d; want 403", code)
		}
		if code := e.status(cb, rep, subToken); code != http.StatusNoContent {
			t.Errorf("report: %d; want 204", code)
		}
		e.untilStatus(list.Issues[0].ID, c.ID, "delivered")

		// Disconnected: refused, nothing stored; replies on it fail with a reason.
		if code, _ := e.call(e.admin, "DELETE", fmt.Sprintf("/api/sms/numbers/%d", chID), nil); code != http.StatusNoContent {
			t.Fatalf("disconnect: %d", code)
		}
		if code, _ := e.call(e.admin, "DELETE", fmt.Sprintf("/api/sms/numbers/%d", chID), nil); code != http.StatusNotFound {
			t.Errorf("disconnect twice: %d; want 404", code)
		}
		f["MessageSid"] = []string{"SMsub3"}
		if code := e.inbound(f, subToken); code == 200 {
			t.Errorf("inbound to a disconnected number: %d; want a refusal", code)
		}
		c2 := e.reply(e.alice, list.Issues[0].ID, "Still there?")
		e.untilStatus(list.Issues[0].ID, c2.ID, "failed")
		if dl := e.delivery(list.Issues[0].ID, c2.ID); !strings.Contains(str(dl.ErrorReason), "disconnected") {
			t.Errorf("delivery %+v; want a reason naming the disconnected number", dl)
		}
		code, b = e.call(e.admin, "GET", "/api/sms/numbers", nil)
		if strings.Contains(b, second) {
			t.Errorf("list after disconnect: %d %s", code, b)
		}
		// Connected again: it works again, same channel.
		code, b = e.call(e.admin, "POST", "/api/sms/numbers", newNumber)
		if code != http.StatusCreated || !strings.Contains(b, fmt.Sprintf(`"id":%d`, chID)) {
			t.Errorf("reconnect: %d %s; want the same channel", code, b)
		}
		if code := e.inbound(f, subToken); code != 200 {
			t.Errorf("inbound after reconnecting: %d", code)
		}
	})
}

func TestSMSMediaShownToAgents(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		e := startSMS(t, d.Dialect())
		media := "https://api.twilio.com/2010-04-01/Accounts/" + twSID + "/Messages/MM1/Media/ME1"
		f := url.Values{"MessageSid": {"MM1"}, "AccountSid": {twSID}, "From": {customer}, "To": {twNumber}, "Body": {"see photo"},
			"NumMedia": {"3"}, "MediaUrl0": {media}, "MediaContentType0": {"image/jpeg"},
			"MediaUrl1": {"javascript:alert(1)"}, "MediaContentType1": {"text/html"},
			"MediaUrl2": {media + "2"}, "MediaContentType2": {"application/pdf; name=x"}}
		if code := e.inbound(f, twToken); code != 200 {
			t.Fatalf("inbound MMS: %d", code)
		}
		e.inbound(f, twToken) // Twilio retries: nothing twice
		issue := e.issueOf(customer)
		var detail struct {
			Comments []smsComment `json:"comments"`
		}
		e.getJSON(e.alice, fmt.Sprintf("/api/issues/%d", issue), &detail)
		cid := detail.Comments[0].ID
		type item struct {
			CommentID   int64  `json:"comment_id"`
			Position    int    `json:"position"`
			URL         string `json:"url"`
			ContentType string `json:"content_type"`
		}
		var got struct {
			Media []item `json:"media"`
		}
		e.getJSON(e.alice, fmt.Sprintf("/api/comments/%d/media", cid), &got)
		want := []item{{cid, 0, media, "image/jpeg"}, {cid, 2, media + "2", "application/pdf"}}
		if fmt.Sprint(got.Media) != fmt.Sprint(want) {
			t.Errorf("media %+v; want %+v (the javascript: link dropped)", got.Media, want)
		}
		got.Media = nil
		e.getJSON(e.alice, fmt.Sprintf("/api/issues/%d/media", issue), &got)
		if len(got.Media) != 2 {
			t.Errorf("issue media %+v", got.Media)
		}
		if code, _ := e.call(e.alice, "GET", "/api/comments/999999/media", nil); code != http.StatusNotFound {
			t.Errorf("media of no comment: %d", code)
		}
	})
}

// The signature is base64 HMAC-SHA1; a sanity check that the helper signs what the
// handler checks (the query is part of the signed URL).
func TestSMSStatusCallbackSignatureCoversTheQuery(t *testing.T) {
	e := startSMS(t, store.SQLite)
	cb := e.srv.URL + sms.StatusPath + "?outbox=1"
	f := report("SMx", "sent", "")
	req, _ := http.NewRequest("POST", cb, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	sig := sms.Sign(twToken, e.srv.URL+sms.StatusPath, f) // signed without the query
	if _, err := base64.StdEncoding.DecodeString(sig); err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Twilio-Signature", sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("signature without the query: %d; want 403", resp.StatusCode)
	}
}
