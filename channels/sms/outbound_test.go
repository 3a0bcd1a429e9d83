package sms

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/outbox"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

const (
	testSID   = "AC0123456789abcdef0123456789abcdef"
	testToken = "t0ken0t0ken0t0ken0t0ken0t0ken000"
	testFrom  = "+15550001111"
)

// newOutbound returns a sender against apiURL and the message to send, on SQLite.
func newOutbound(t *testing.T, apiURL string) (*Outbound, *outbox.Message) {
	t.Helper()
	db := storetest.Open(t, store.SQLite)
	st := NewStore(db, channels.New(db, hub.NewLog(db, nil), channels.Config{}), nil)
	n, err := st.Connect(context.Background(), NewNumber{Number: testFrom, AccountSID: testSID, AuthToken: testToken})
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewOutbound(OutboundConfig{APIURL: apiURL, PublicURL: "https://sb.example.com/", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return o, &outbox.Message{ID: 7, ChannelID: n.ChannelID, Connector: ConnectorName, To: "+15557654321", Body: "hi", Attempt: 1}
}

func deliver(t *testing.T, o *Outbound, m *outbox.Message, timeout time.Duration) (*outbox.Receipt, *outbox.Error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rec, err := o.Deliver(ctx, m)
	if err == nil {
		return rec, nil
	}
	var e *outbox.Error
	if !errors.As(err, &e) {
		t.Fatalf("Deliver returned %T %v; want an *outbox.Error", err, err)
	}
	return nil, e
}

func TestDeliverRewritesTheBaseURL(t *testing.T) {
	var got *http.Request
	var form url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		_ = r.ParseForm()
		form = r.PostForm
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"sid":"SM123","status":"accepted"}`)
	}))
	defer srv.Close()
	o, m := newOutbound(t, srv.URL+"/edge/")
	rec, ferr := deliver(t, o, m, 5*time.Second)
	if ferr != nil {
		t.Fatal(ferr)
	}
	if rec.ExternalID != "SM123" || rec.Status != "accepted" {
		t.Errorf("receipt %+v", rec)
	}
	if got.URL.Path != "/edge/2010-04-01/Accounts/"+testSID+"/Messages.json" {
		t.Errorf("path %s", got.URL.Path)
	}
	if u, p, _ := got.BasicAuth(); u != testSID || p != testToken {
		t.Errorf("auth %s:%s", u, p)
	}
	if form.Get("StatusCallback") != "https://sb.example.com/webhooks/twilio/status?outbox=7" || form.Get("From") != testFrom ||
		form.Get("To") != m.To || form.Get("Body") != "hi" {
		t.Errorf("form %v", form)
	}
}

func TestDeliverClassifiesFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    outbox.Outcome
		code    string
		reason  string
		retry   time.Duration
	}{
		{"503 html", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "<html>down</html>", http.StatusServiceUnavailable)
		}, outbox.Transient, "", "temporarily unavailable", 0},
		{"429 with Retry-After", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"code":20429,"message":"Too Many Requests","status":429}`)
		}, outbox.Transient, "20429", "rate-limiting", 30 * time.Second},
		{"500", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, `{"code":20500,"message":"Internal Server Error","status":500}`)
		}, outbox.Transient, "20500", "Internal Server Error", 0},
		{"400 invalid number", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}`)
		}, outbox.Permanent, "21211", "not a valid phone number", 0},
		{"400 unknown code", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"code":29999,"message":"Something new","status":400}`)
		}, outbox.Permanent, "29999", "Twilio error 29999: Something new", 0},
		{"401", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"code":20003,"message":"Authenticate","status":401}`)
		}, outbox.Permanent, "20003", "credentials", 0},
		{"504 from a gateway", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "gateway timeout", http.StatusGatewayTimeout)
		}, outbox.Indeterminate, "", "may or may not", 0},
		{"connection dropped after the request", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body)
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}, outbox.Indeterminate, "", "lost after the message was sent", 0},
		{"no answer in time", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body) // then the server notices the client leaving
			<-r.Context().Done()
		}, outbox.Indeterminate, "", "did not answer in time", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			o, m := newOutbound(t, srv.URL)
			_, e := deliver(t, o, m, 300*time.Millisecond)
			if e == nil {
				t.Fatal("delivered; want a failure")
			}
			if e.Outcome != tc.want || e.Code != tc.code || !strings.Contains(e.Reason, tc.reason) || e.RetryAfter != tc.retry {
				t.Errorf("got outcome %d code %q reason %q retry %s; want %d %q ~%q %s", e.Outcome, e.Code, e.Reason, e.RetryAfter,
					tc.want, tc.code, tc.reason, tc.retry)
			}
		})
	}
}

// A refused connection sends nothing: transient, retried.
func TestDeliverConnectionRefusedIsTransient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	o, m := newOutbound(t, "http://"+addr)
	_, e := deliver(t, o, m, 5*time.Second)
	if e == nil || e.Outcome != outbox.Transient || !strings.Contains(e.Reason, "nothing was sent") {
		t.Fatalf("got %+v; want transient", e)
	}
}

// A 201 whose body cannot be read still counts as sent: the message exists.
func TestDeliverCreatedButUnreadable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"sid":`)
	}))
	defer srv.Close()
	o, m := newOutbound(t, srv.URL)
	rec, e := deliver(t, o, m, 5*time.Second)
	if e != nil || rec == nil || rec.ExternalID != "" || rec.Status != "queued" {
		t.Fatalf("got %+v %+v; want sent without a known sid", rec, e)
	}
}

// Twilio knows the customer unsubscribed (21610): permanent, and recorded so that later
// replies are refused up front.
func TestDeliverUnsubscribedIsRecorded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"code":21610,"message":"Attempt to send to unsubscribed recipient","status":400}`)
	}))
	defer srv.Close()
	o, m := newOutbound(t, srv.URL)
	_, e := deliver(t, o, m, 5*time.Second)
	if e == nil || e.Outcome != outbox.Permanent || e.Code != "21610" {
		t.Fatalf("got %+v", e)
	}
	err := o.Check(context.Background(), o.cfg.Store.db, &outbox.Outgoing{To: m.To})
	if err == nil || !strings.Contains(err.Error(), "opted out") {
		t.Fatalf("check after 21610: %v; want a refusal", err)
	}
	// Sending is refused before any request too.
	_, e = deliver(t, o, m, 5*time.Second)
	if e == nil || e.Outcome != outbox.Permanent || e.Code != "21610" {
		t.Fatalf("second send: %+v", e)
	}
}

func TestKeyword(t *testing.T) {
	for _, tc := range []struct {
		body   string
		word   string
		optOut bool
		ok     bool
	}{
		{"STOP", "STOP", true, true},
		{"  stop\n", "STOP", true, true},
		{"Unsubscribe", "UNSUBSCRIBE", true, true},
		{"stopall", "STOPALL", true, true},
		{"cancel", "CANCEL", true, true},
		{"END", "END", true, true},
		{"quit", "QUIT", true, true},
		{"start", "START", false, true},
		{"Yes", "YES", false, true},
		{"UNSTOP", "UNSTOP", false, true},
		{"stop please", "", false, false},
		{"STOP.", "", false, false},
		{"ſtop", "", false, false}, // not ASCII STOP
		{"", "", false, false},
	} {
		word, optOut, ok := Keyword(tc.body)
		if word != tc.word || optOut != tc.optOut || ok != tc.ok {
			t.Errorf("Keyword(%q) = %q %v %v; want %q %v %v", tc.body, word, optOut, ok, tc.word, tc.optOut, tc.ok)
		}
	}
}

func TestParseMedia(t *testing.T) {
	form := url.Values{"NumMedia": {"12"}}
	for i, u := range []string{"https://api.twilio.com/m0", "javascript:alert(1)", "http://user:pw@x/y", "/relative",
		"https://api.twilio.com/m4", "https://api.twilio.com/m5", "https://a/6", "https://a/7", "https://a/8", "https://a/9", "https://a/10"} {
		form.Set("MediaUrl"+string(rune('0'+i)), u)
	}
	form.Set("MediaUrl10", "https://a/10")
	form.Set("MediaContentType0", "image/png")
	form.Set("MediaContentType4", "not a type;;")
	got := parseMedia(form)
	if len(got) != 7 || got[0].URL != "https://api.twilio.com/m0" || got[0].ContentType != "image/png" || got[1].Position != 4 ||
		got[1].ContentType != "application/octet-stream" {
		t.Errorf("got %+v; want 7 safe items of the first 10, odd types made octet-stream", got)
	}
	if len(parseMedia(url.Values{"NumMedia": {"x"}, "MediaUrl0": {"https://a"}})) != 0 {
		t.Error("media without a NumMedia count")
	}
}

func TestRetryAfter(t *testing.T) {
	if d := retryAfter("120"); d != 2*time.Minute {
		t.Errorf("seconds: %s", d)
	}
	if d := retryAfter("999999"); d != time.Hour {
		t.Errorf("capped: %s", d)
	}
	if d := retryAfter(time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)); d != 0 {
		t.Errorf("past date: %s", d)
	}
	if d := retryAfter("soon"); d != 0 {
		t.Errorf("garbage: %s", d)
	}
}
