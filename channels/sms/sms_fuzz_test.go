package sms_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/twilio/twilio-go/client"

	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/channels/sms"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/issues"
	"github.com/switchboard-hq/switchboard/store"
)

const (
	token   = "fuzz-token"
	public  = "https://support.example.com"
	number  = "+15550001111"
	account = "AC0123456789abcdef0123456789abcdef"
)

// newWebhook builds the real inbound path: handler, intake, channels, event log, SQLite.
func newWebhook(t testing.TB) (http.Handler, *issues.Service) {
	db := storetest.Open(t, store.SQLite)
	log := hub.NewLog(db, nil)
	h := hub.New(hub.Config{Log: log})
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	ch := channels.New(db, log, channels.Config{})
	is := issues.New(db, log, ch, issues.Config{})
	ch.SetDirectory(is)
	st := sms.NewStore(db, ch, nil)
	if _, err := st.Connect(context.Background(), sms.NewNumber{Number: number, AccountSID: account, AuthToken: token}); err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	sms.NewHandler(sms.Config{PublicURL: public, Store: st, Intake: is}).Register(r)
	return r, is
}

// FuzzInboundWebhook posts arbitrary form bodies, correctly signed so that parsing and
// intake are reached. Whatever the body, the answer is a 2xx or a 4xx, never a 5xx, and
// an accepted message is stored byte for byte.
func FuzzInboundWebhook(f *testing.F) {
	f.Add("MessageSid=SM1&From=%2B15551234567&To=%2B15550001111&Body=hello")
	f.Add("MessageSid=SM2&From=%2B15551234567&To=%2B15550001111&Body=%3Cscript%3E&Body=twice")
	f.Add("MessageSid=&From=&To=")
	f.Add("%zz=1&MessageSid=SM3")
	f.Add("MessageSid=SM4&From=x&To=%2B15550001111&Body=%FF%FE")
	f.Add(strings.Repeat("a=b&", 2000))
	// Keywords, MMS fields, Messaging Services.
	f.Add("MessageSid=SM5&From=%2B15551234567&To=%2B15550001111&Body=+Stop%0A")
	f.Add("MessageSid=SM6&From=%2B15551234567&To=%2B15550001111&Body=&NumMedia=2&MediaUrl0=https%3A%2F%2Fapi.twilio.com%2Fm" +
		"&MediaContentType0=image%2Fjpeg&MediaUrl1=javascript%3Aalert(1)&MediaContentType1=%3B%3B")
	f.Add("MessageSid=SM7&From=%2B15551234567&To=%2B19999999999&MessagingServiceSid=MG1&Body=x&NumMedia=99999999999999999999")
	h, is := newWebhook(f)
	seen := map[string]bool{} // MessageSids accepted before: repeats are ignored by design
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", sms.InboundPath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if form, err := url.ParseQuery(body); err == nil {
			req.Header.Set("X-Twilio-Signature", sms.Sign(token, public+sms.InboundPath, form))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("body %q: got %d %s", body, w.Code, w.Body)
		}
		if w.Code != 200 {
			return
		}
		form, _ := url.ParseQuery(body)
		sid := form.Get("MessageSid")
		if sid == "" {
			sid = form.Get("SmsSid")
		}
		if seen[sid] {
			return
		}
		seen[sid] = true
		list, _, err := is.List(context.Background(), issues.Filter{Channels: []int64{1}, Limit: 200})
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range list {
			comments, _, err := is.Detail(context.Background(), i.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range comments {
				if c.ExternalID != nil && *c.ExternalID == sid {
					if c.Body != form.Get("Body") {
						t.Fatalf("stored %q; received %q", c.Body, form.Get("Body"))
					}
					return
				}
			}
		}
		t.Fatalf("accepted %q but stored nothing", body)
	})
}

func TestSignAgreesWithTwilioGo(t *testing.T) {
	v := client.NewRequestValidator("12345")
	for _, form := range []url.Values{
		{"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+12349013030"}, "Digits": {"1234"}, "From": {"+12349013030"}, "To": {"+18005551212"}},
		{"Body": {"héllo & <b>bye</b>"}, "MessageSid": {"SM1"}},
		{},
	} {
		for _, u := range []string{"https://mycompany.com/myapp.php?foo=1&bar=2", "http://127.0.0.1:8080/webhooks/twilio/sms"} {
			single := map[string]string{}
			for k, vs := range form {
				single[k] = vs[0]
			}
			if sig := sms.Sign("12345", u, form); !v.Validate(u, single, sig) {
				t.Errorf("twilio-go rejects our signature %s for %s %v", sig, u, form)
			}
		}
	}
}
