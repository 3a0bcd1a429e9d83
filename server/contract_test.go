package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/internal/redistest"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

// The contract of DESIGN.md ("Configuration", "HTTP and WebSocket", the notification
// event keys and their factory defaults), checked black-box against the real binary.
// Run: go test -race -count=1 -run 'Contract' ./server/

// TestContractConfigBadValues: a bad value of any contract variable stops start-up with
// one line naming the variable and a non-zero exit, before anything listens.
func TestContractConfigBadValues(t *testing.T) {
	twilio := []string{"TWILIO_ACCOUNT_SID=" + ctAccount, "TWILIO_AUTH_TOKEN=" + ctToken, "TWILIO_PHONE_NUMBER=" + ctNumber}
	cases := []struct {
		name    string // the variable the line must name
		env     []string
		twilio  bool // start from a complete Twilio configuration
		comment string
	}{
		{"SWITCHBOARD_ADDR", []string{"SWITCHBOARD_ADDR=nonsense"}, false, "no port"},
		{"SWITCHBOARD_PUBLIC_URL", []string{"SWITCHBOARD_PUBLIC_URL=ftp://support.example.com"}, false, "not http(s)"},
		{"SWITCHBOARD_PUBLIC_URL", []string{"SWITCHBOARD_PUBLIC_URL=localhost:8080"}, false, "not absolute"},
		{"DATABASE_URL", []string{"DATABASE_URL=mysql://db/x"}, false, "unknown engine"},
		{"DATABASE_URL", []string{"DATABASE_URL=sqlite:"}, false, "no path"},
		{"DATABASE_URL", []string{"DATABASE_URL=postgres://"}, false, "no host"},
		{"REDIS_URL", []string{"REDIS_URL=http://127.0.0.1:6379"}, false, "not redis://"},
		{"TWILIO_ACCOUNT_SID", []string{"TWILIO_ACCOUNT_SID=XX123"}, true, "not an AC sid"},
		{"TWILIO_ACCOUNT_SID", []string{"TWILIO_ACCOUNT_SID="}, true, "missing while the others are set"},
		{"TWILIO_AUTH_TOKEN", []string{"TWILIO_AUTH_TOKEN="}, true, "missing while the others are set"},
		{"TWILIO_PHONE_NUMBER", []string{"TWILIO_PHONE_NUMBER=555-1234"}, true, "not E.164"},
		{"TWILIO_API_URL", []string{"TWILIO_API_URL=ftp://api.twilio.example"}, true, "not http(s)"},
		{"IMAP_URL", []string{"IMAP_URL=http://mail.example.com"}, false, "not imap(s)"},
		{"IMAP_URL", []string{"IMAP_URL=imaps://mail.example.com/INBOX"}, false, "no credentials"},
		{"SMTP_URL", []string{"SMTP_URL=ftp://mail.example.com"}, false, "not smtp(s)"},
		{"EMAIL_FROM", []string{"EMAIL_FROM=<<not an address"}, false, "not an address"},
		{"SWITCHBOARD_ADDR", []string{"SWITCHBOARD_ADDR=127.0.0.1:99999"}, false, "port out of range"},
		{"DATABASE_URL", []string{"DATABASE_URL=sqlite:/proc/no/such/dir/x.db"}, false, "SQLite folder that cannot be made"},
		{"DATABASE_URL", []string{"DATABASE_URL=" + ctMissingPostgresDB()}, false, "PostgreSQL database that does not exist"},
	}
	dir := t.TempDir()
	for _, tc := range cases {
		t.Run(tc.name+"/"+tc.comment, func(t *testing.T) {
			t.Parallel()
			env := append(ctBaseEnv(), "SWITCHBOARD_ADDR=127.0.0.1:0", "DATABASE_URL=sqlite:"+filepath.Join(dir, "never.db"))
			if tc.twilio {
				env = append(env, twilio...)
			}
			env = append(env, tc.env...) // later entries win
			out, errOut, code := ctRun(t, env, dir, "", "serve")
			if code == 0 {
				t.Fatalf("%v: exit 0; want a non-zero exit\n%s%s", tc.env, out, errOut)
			}
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.name) {
				t.Errorf("%v: stderr %q; want one line naming %s", tc.env, errOut, tc.name)
			}
			if strings.Contains(out, "listening") {
				t.Errorf("%v: it listened before refusing: %q", tc.env, out)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "never.db")); err == nil {
		t.Error("a refused configuration still created the database: it started half-configured")
	}
}

// ctMissingPostgresDB is a URL of the test server naming a database that does not exist.
func ctMissingPostgresDB() string {
	u, _ := url.Parse(storetest.PostgresURL())
	u.Path = "/no_such_database_contract"
	return u.String()
}

// TestContractCLI: version, migrate and user add.
func TestContractCLI(t *testing.T) {
	dir := t.TempDir()
	env := append(ctBaseEnv(), "DATABASE_URL=sqlite:"+filepath.Join(dir, "cli.db"))

	out, errOut, code := ctRun(t, env, dir, "", "version")
	if code != 0 || !strings.Contains(out, "switchboard") {
		t.Errorf("version: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	for i := range 2 { // the second run finds nothing to do and still succeeds
		if _, errOut, code := ctRun(t, env, dir, "", "migrate"); code != 0 {
			t.Fatalf("migrate #%d: exit %d: %s", i+1, code, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "cli.db")); err != nil {
		t.Errorf("migrate made no database at DATABASE_URL: %v", err)
	}
	pg := append(ctBaseEnv(), "DATABASE_URL="+storetest.URL(t, store.Postgres))
	for i := range 2 {
		if out, errOut, code := ctRun(t, pg, dir, "", "migrate"); code != 0 {
			t.Fatalf("migrate on PostgreSQL #%d: exit %d: %s%s", i+1, code, out, errOut)
		}
	}

	refused := []struct {
		name, stdin string
		args        []string
	}{
		{"bad role", "password-1\n", []string{"--email", "x@example.com", "--name", "X", "--role", "boss", "--password-stdin"}},
		{"no --password-stdin", "", []string{"--email", "x@example.com", "--name", "X", "--role", "agent"}},
		{"bad email", "password-1\n", []string{"--email", "not-an-email", "--name", "X", "--role", "agent", "--password-stdin"}},
		{"short password", "x\n", []string{"--email", "x@example.com", "--name", "X", "--role", "agent", "--password-stdin"}},
	}
	for _, tc := range refused {
		out, errOut, code := ctRun(t, env, dir, tc.stdin, append([]string{"user", "add"}, tc.args...)...)
		if code == 0 {
			t.Errorf("user add (%s): exit 0; want a refusal\n%s", tc.name, out)
		} else if strings.TrimSpace(errOut) == "" {
			t.Errorf("user add (%s): exit %d without a message", tc.name, code)
		}
	}
	for _, role := range []string{"admin", "agent"} {
		email := role + "@example.com"
		if out, errOut, code := ctRun(t, env, dir, "password-"+role+"\n", "user", "add", "--email", email, "--name", "The "+role, "--role", role, "--password-stdin"); code != 0 {
			t.Fatalf("user add %s: exit %d\n%s%s", role, code, out, errOut)
		}
	}
	if _, _, code := ctRun(t, env, dir, "password-again\n", "user", "add", "--email", "AGENT@example.com", "--name", "Dup", "--role", "agent", "--password-stdin"); code == 0 {
		t.Error("user add with an existing email (other case): exit 0; want a refusal")
	}

	// The users log in, with the role asked for, on a server over the same database.
	n := ctStart(t, append(env, "SWITCHBOARD_ADDR=127.0.0.1:0"), dir)
	if n.adminPassword != "" {
		t.Errorf("an admin existed, yet the first start printed a new admin login for %s", n.adminEmail)
	}
	for _, role := range []string{"admin", "agent"} {
		c := n.login(role+"@example.com", "password-"+role)
		var me struct {
			User map[string]any `json:"user"`
		}
		c.get("/api/me", &me)
		if me.User["role"] != role || me.User["email"] != role+"@example.com" {
			t.Errorf("GET /api/me as the %s: %v", role, me.User)
		}
	}
}

// TestContractDefaults: with no configuration at all the binary listens on :8080, keeps
// its data in ./data/switchboard.db, prints an admin login, and checks Twilio
// signatures against http://localhost:8080.
func TestContractDefaults(t *testing.T) {
	dir := t.TempDir()
	env := ctBaseEnv()
	if _, errOut, code := ctRun(t, env, dir, "", "migrate"); code != 0 {
		t.Fatalf("migrate with no configuration: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "switchboard.db")); err != nil {
		t.Fatalf("the default DATABASE_URL is not ./data/switchboard.db: %v", err)
	}

	// IMAP_URL points at a closed loopback port: its channel exists, named by EMAIL_FROM's
	// default address, while intake retries in the background.
	twilio := []string{"TWILIO_ACCOUNT_SID=" + ctAccount, "TWILIO_AUTH_TOKEN=" + ctToken, "TWILIO_PHONE_NUMBER=" + ctNumber,
		"TWILIO_API_URL=" + newCTTwilio(t).srv.URL, "IMAP_URL=imap://user:password@127.0.0.1:1/INBOX"}
	var n *ctNode
	if ctFreePort(":8080") {
		n = ctStart(t, append(env, twilio...), dir)
		if _, port, _ := strings.Cut(n.addr, "]:"); port != "8080" && !strings.HasSuffix(n.addr, ":8080") {
			t.Errorf("with SWITCHBOARD_ADDR unset it listens on %s; want :8080", n.addr)
		}
	} else {
		// Someone else holds :8080 on this machine: the default must still be :8080, so
		// starting fails on that port; the rest is checked on a free one.
		_, errOut, code := ctRun(t, append(env, twilio...), dir, "", "serve")
		if code == 0 || !strings.Contains(errOut, ":8080") {
			t.Errorf(":8080 is taken; want a start-up failure naming :8080, got exit %d: %s", code, errOut)
		}
		n = ctStart(t, append(env, append(twilio, "SWITCHBOARD_ADDR=127.0.0.1:0")...), dir)
	}
	if n.adminEmail == "" || n.adminPassword == "" {
		t.Fatalf("the first start printed no admin login:\n%s", n.stdout())
	}
	admin := n.login(n.adminEmail, n.adminPassword)
	var chans struct {
		Channels []map[string]any `json:"channels"`
	}
	admin.get("/api/channels", &chans)
	email := false
	for _, ch := range chans.Channels {
		if ch["kind"] == "email" && strings.Contains(fmt.Sprint(ch["name"], ch["address"]), "support@localhost") {
			email = true
		}
	}
	if !email {
		t.Errorf("no email channel for the default EMAIL_FROM support@localhost: %v", chans.Channels)
	}

	form := ctSMSForm("SMdefault0000000000000000000000001", "+15557770001", "hello")
	if r := n.webhook("/webhooks/twilio/sms", form, ctSign(ctToken, "http://localhost:8080/webhooks/twilio/sms", form)); r.status != 200 {
		t.Errorf("a webhook signed for the default public URL http://localhost:8080: %d %s", r.status, r.raw)
	}
}

// TestContractAPI runs the HTTP, webhook and WebSocket contract on each engine.
func TestContractAPI(t *testing.T) {
	for _, d := range storetest.Engines {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctAPI(t, d)
		})
	}
}

// ctOrg is a running node with its people logged in.
type ctOrg struct {
	n                 *ctNode
	tw                *ctTwilio
	admin, alice, bob *ctClient
}

func ctNewOrg(t *testing.T, d store.Dialect, extra ...string) *ctOrg {
	t.Helper()
	tw := newCTTwilio(t)
	env := ctEnvFor(t, d, tw.srv.URL, extra...)
	ctAddUser(t, env, "boss@example.com", "Boss", "admin", "password-boss")
	ctAddUser(t, env, "alice@example.com", "Alice", "agent", "password-alice")
	ctAddUser(t, env, "bob@example.com", "Bob", "agent", "password-bob")
	n := ctStart(t, env, t.TempDir())
	return &ctOrg{n: n, tw: tw,
		admin: n.login("boss@example.com", "password-boss"),
		alice: n.login("alice@example.com", "password-alice"),
		bob:   n.login("bob@example.com", "password-bob")}
}

func ctAPI(t *testing.T, d store.Dialect) {
	o := ctNewOrg(t, d)
	t.Run("Sessions", func(t *testing.T) { ctSessions(t, o) })
	t.Run("Healthz", func(t *testing.T) {
		r := o.n.client().do("GET", "/healthz", nil)
		if r.status != 200 {
			t.Errorf("GET /healthz: %d %s", r.status, r.raw)
		}
	})
	t.Run("Webhooks", func(t *testing.T) { ctWebhooks(t, o) })
	t.Run("Issues", func(t *testing.T) { ctIssues(t, o) })
	t.Run("Channels", func(t *testing.T) { ctChannels(t, o) })
	t.Run("Notifications", func(t *testing.T) { ctNotifications(t, o) })
	t.Run("Preferences", func(t *testing.T) { ctPreferences(t, o) })
	t.Run("WebSocket", func(t *testing.T) { ctWebSocket(t, o) })
}

func ctSessions(t *testing.T, o *ctOrg) {
	anon := o.n.client()
	for _, p := range []string{"/api/me", "/api/issues", "/api/channels", "/api/notifications", "/api/preferences"} {
		ctWantError(t, anon.do("GET", p, nil), 401)
	}
	ctWantError(t, anon.do("POST", "/api/session", map[string]string{"email": "alice@example.com", "password": "wrong-password"}), 401)
	ctWantError(t, anon.do("POST", "/api/session", map[string]string{"email": "nobody@example.com", "password": "password-alice"}), 401)
	ctWantError(t, anon.do("POST", "/api/session", `{"email":`), 400)

	req, _ := http.NewRequest("POST", o.n.base+"/api/issues/1/take", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := o.alice.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ctWantError(t, ctResp{status: resp.StatusCode, header: resp.Header, raw: raw}, 403)

	c := o.n.client()
	r := c.do("POST", "/api/session", map[string]string{"email": "alice@example.com", "password": "password-alice"})
	if r.status != 200 {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	var session *http.Cookie
	for _, ck := range r.resp.Cookies() {
		if ck.Value != "" {
			session = ck
		}
	}
	if session == nil {
		t.Fatalf("login set no cookie: %v", r.header.Values("Set-Cookie"))
	}
	if !session.HttpOnly || session.SameSite != http.SameSiteLaxMode {
		t.Errorf("session cookie %q: HttpOnly=%v SameSite=%v; want HttpOnly and SameSite=Lax", r.header.Values("Set-Cookie"), session.HttpOnly, session.SameSite)
	}
	var me struct {
		User map[string]any `json:"user"`
	}
	c.get("/api/me", &me)
	if me.User["email"] != "alice@example.com" || me.User["role"] != "agent" || ctNum(me.User, "id") == 0 {
		t.Errorf("GET /api/me: %v", me.User)
	}
	if r := c.do("DELETE", "/api/session", nil); r.status/100 != 2 {
		t.Errorf("DELETE /api/session: %d %s", r.status, r.raw)
	}
	ctWantError(t, c.do("GET", "/api/me", nil), 401)
	// The old cookie itself is dead, not only forgotten by this jar.
	req, _ = http.NewRequest("GET", o.n.base+"/api/me", nil)
	req.AddCookie(session)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("GET /api/me with the logged-out cookie: %d; want 401", resp.StatusCode)
	}
}

func ctWebhooks(t *testing.T, o *ctOrg) {
	n := o.n
	const path = "/webhooks/twilio/sms"
	form := ctSMSForm("SMwebhook00000000000000000000000001", "+15553330001", "Where is my parcel?")
	good := ctSign(ctToken, ctPublicURL+path, form)
	for _, tc := range []struct{ name, sig string }{
		{"missing", ""},
		{"wrong token", ctSign("another-token", ctPublicURL+path, form)},
		{"signed for the listen address, not SWITCHBOARD_PUBLIC_URL", ctSign(ctToken, n.base+path, form)},
		{"garbage", "not-a-signature"},
	} {
		t.Run("inbound "+tc.name, func(t *testing.T) { ctWantError(t, n.webhook(path, form, tc.sig), 403) })
	}
	tampered := ctSMSForm("SMwebhook00000000000000000000000001", "+15553330001", "Where is my parcel? (changed)")
	if r := n.webhook(path, tampered, good); r.status != 403 {
		t.Errorf("inbound SMS with a body changed after signing: %d; want 403", r.status)
	}
	if issues := ctListIssues(t, o.admin, "q=parcel"); len(issues) != 0 {
		t.Fatalf("refused webhooks created issues: %v", issues)
	}

	for i := range 3 { // Twilio retries: the same MessageSid is accepted each time
		r := n.webhook(path, form, good)
		if r.status != 200 {
			t.Fatalf("inbound SMS #%d: %d %s", i+1, r.status, r.raw)
		}
		body := strings.TrimSpace(string(r.raw))
		body = strings.TrimSpace(strings.TrimPrefix(body, `<?xml version="1.0" encoding="UTF-8"?>`))
		if body != "<Response/>" && body != "<Response></Response>" {
			t.Errorf("inbound SMS #%d answered %q; want an empty TwiML <Response/>", i+1, r.raw)
		}
		if ct := r.header.Get("Content-Type"); !strings.Contains(ct, "xml") {
			t.Errorf("inbound SMS answer Content-Type %q; want XML", ct)
		}
	}
	// The same MessageSid five times at once: still one message.
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := n.webhook(path, form, good); r.status != 200 {
				t.Errorf("concurrent repeat of a MessageSid: %d %s", r.status, r.raw)
			}
		}()
	}
	wg.Wait()
	issues := ctListIssues(t, o.admin, "q=parcel")
	if len(issues) != 1 {
		t.Fatalf("one SMS sent three times made %d issues; want 1", len(issues))
	}
	detail := ctDetail(t, o.admin, ctNum(issues[0], "id"))
	if len(detail.Comments) != 1 {
		t.Errorf("one SMS sent three times made %d comments; want 1", len(detail.Comments))
	}

	status := url.Values{"MessageSid": {"SMunknown0000000000000000000000001"}, "MessageStatus": {"delivered"},
		"AccountSid": {ctAccount}, "From": {ctNumber}, "To": {"+15553330001"}, "ApiVersion": {"2010-04-01"}}
	const spath = "/webhooks/twilio/status"
	for _, tc := range []struct{ name, sig string }{
		{"missing", ""},
		{"wrong token", ctSign("another-token", ctPublicURL+spath, status)},
		{"signed for the listen address", ctSign(ctToken, n.base+spath, status)},
	} {
		t.Run("status "+tc.name, func(t *testing.T) { ctWantError(t, n.webhook(spath, status, tc.sig), 403) })
	}
	if r := n.webhook(spath, status, ctSign(ctToken, ctPublicURL+spath, status)); r.status/100 != 2 {
		t.Errorf("signed status callback for an unknown message: %d %s; want it accepted", r.status, r.raw)
	}
}

// ctListIssues is GET /api/issues?query, checked for shape.
func ctListIssues(t *testing.T, c *ctClient, query string) []map[string]any {
	t.Helper()
	var got struct {
		Issues []map[string]any `json:"issues"`
	}
	c.get("/api/issues?"+query, &got)
	if got.Issues == nil {
		t.Fatalf("GET /api/issues?%s: no \"issues\" list", query)
	}
	for _, is := range got.Issues {
		ctCheckIssue(t, is)
	}
	return got.Issues
}

// ctCheckIssue checks the fields every issue object must have.
func ctCheckIssue(t *testing.T, is map[string]any) {
	t.Helper()
	for _, k := range []string{"id", "status", "priority", "channel_id", "customer_id", "assignee_id", "created_at"} {
		if _, ok := is[k]; !ok {
			t.Errorf("issue %v has no %q", is["id"], k)
		}
	}
	if !slices.Contains([]string{"open", "in_progress", "resolved", "closed"}, fmt.Sprint(is["status"])) {
		t.Errorf("issue %v status %v", is["id"], is["status"])
	}
	if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(is["created_at"])); err != nil {
		t.Errorf("issue %v created_at %v is not RFC 3339", is["id"], is["created_at"])
	}
	if a, ok := is["assignee_id"]; ok && a != nil {
		if _, num := a.(float64); !num {
			t.Errorf("issue %v assignee_id %v is neither null nor an id", is["id"], a)
		}
	}
}

type ctIssueDetail struct {
	Issue    map[string]any   `json:"issue"`
	Comments []map[string]any `json:"comments"`
	Activity []map[string]any `json:"activity"`
}

func ctDetail(t *testing.T, c *ctClient, id int64) ctIssueDetail {
	t.Helper()
	var d ctIssueDetail
	c.get(fmt.Sprintf("/api/issues/%d", id), &d)
	if d.Issue == nil || d.Comments == nil || d.Activity == nil {
		t.Fatalf("GET /api/issues/%d: want issue, comments and activity", id)
	}
	ctCheckIssue(t, d.Issue)
	for _, cm := range d.Comments {
		for _, k := range []string{"id", "kind", "body", "author_id", "created_at"} {
			if _, ok := cm[k]; !ok {
				t.Errorf("comment %v has no %q", cm["id"], k)
			}
		}
		switch cm["kind"] {
		case "customer":
			if s, _ := cm["external_id"].(string); s == "" {
				t.Errorf("customer comment %v crossed Twilio but has no external_id", cm["id"])
			}
		case "reply":
			if s, _ := cm["delivery_status"].(string); s == "" {
				t.Errorf("reply %v has no delivery_status", cm["id"])
			}
		case "note":
		default:
			t.Errorf("comment %v kind %v", cm["id"], cm["kind"])
		}
	}
	return d
}

func ctIDs(issues []map[string]any) []int64 {
	var ids []int64
	for _, is := range issues {
		ids = append(ids, ctNum(is, "id"))
	}
	return ids
}

func ctIssues(t *testing.T, o *ctOrg) {
	n, admin, alice, bob := o.n, o.admin, o.alice, o.bob
	n.sms("SMissue000000000000000000000000001", "+15554440001", "First customer: my order #77 is late")
	n.sms("SMissue000000000000000000000000002", "+15554440002", "Second customer: refund for a zebra mug")
	n.sms("SMissue000000000000000000000000003", "+15554440001", "First customer again, same issue")
	all := ctListIssues(t, admin, "q=customer")
	if len(all) != 2 {
		t.Fatalf("two customers wrote: %d issues; want 2: %v", len(all), ctIDs(all))
	}
	first, second := ctNum(all[1], "id"), ctNum(all[0], "id")
	if first >= second {
		t.Errorf("GET /api/issues is not newest first: %v", ctIDs(all))
	}
	for _, is := range all {
		if is["assignee_id"] != nil || is["status"] != "open" || is["priority"] == nil {
			t.Errorf("a new issue: %v", is)
		}
	}
	d := ctDetail(t, admin, first)
	if len(d.Comments) != 2 || d.Comments[0]["kind"] != "customer" || d.Comments[0]["external_id"] != "SMissue000000000000000000000000001" ||
		d.Comments[0]["author_id"] != nil || d.Comments[1]["body"] != "First customer again, same issue" {
		t.Errorf("issue %d comments: %v", first, d.Comments)
	}
	if len(d.Activity) == 0 {
		t.Errorf("issue %d has no activity", first)
	}

	// Take, and the assignee filters.
	is := ctIssue(t, alice.want(200, "POST", fmt.Sprintf("/api/issues/%d/take", first), nil, nil))
	if ctNum(is, "assignee_id") != alice.id || ctNum(is, "id") != first {
		t.Errorf("take answered %v; want the issue assigned to alice (%d)", is, alice.id)
	}
	for _, tc := range []struct {
		who   *ctClient
		query string
		want  []int64
	}{
		{alice, "q=customer&assignee=me", []int64{first}},
		{bob, "q=customer&assignee=me", nil},
		{bob, "q=customer&assignee=none", []int64{second}},
		{bob, fmt.Sprintf("q=customer&assignee=%d", alice.id), []int64{first}},
		{bob, "q=customer&status=open", []int64{second}},
		{bob, "q=customer&status=in_progress", []int64{first}},
		{bob, "q=customer&status=resolved", nil},
		{bob, "q=zebra", []int64{second}},
		{bob, "q=ZEBRA", []int64{second}},
		{bob, "q=customer&channel=" + fmt.Sprint(ctNum(all[0], "channel_id")), []int64{second, first}},
		{bob, "q=customer&channel=999999", nil},
	} {
		if got := ctIDs(ctListIssues(t, tc.who, tc.query)); !slices.Equal(got, tc.want) {
			t.Errorf("GET /api/issues?%s as user %d: %v; want %v", tc.query, tc.who.id, got, tc.want)
		}
	}
	ctWantError(t, bob.do("GET", "/api/issues?status=done", nil), 400, "status")
	ctWantError(t, bob.do("GET", "/api/issues?assignee=somebody", nil), 400, "assignee")
	ctWantError(t, bob.do("GET", "/api/issues/999999", nil), 404)

	// Someone else's issue: bob may not take, resolve, close, change or reply; he may note.
	path := func(id int64, action string) string { return fmt.Sprintf("/api/issues/%d%s", id, action) }
	for _, tc := range []struct {
		method, action string
		body           any
	}{
		{"POST", "/take", nil},
		{"POST", "/assign", map[string]any{"assignee_id": bob.id}},
		{"POST", "/resolve", nil},
		{"POST", "/close", nil},
		{"PATCH", "", map[string]any{"priority": "high"}},
		{"PATCH", "", map[string]any{"status": "resolved"}},
		{"POST", "/replies", map[string]any{"body": "I am not the assignee"}},
	} {
		ctWantError(t, bob.do(tc.method, path(first, tc.action), tc.body), 403)
	}
	r := bob.want(200, "POST", path(first, "/notes"), map[string]any{"body": "internal: @alice check the courier"}, nil)
	if ctNum(ctIssue(t, r), "assignee_id") != alice.id {
		t.Errorf("a note changed the assignee: %s", r.raw)
	}

	// An admin may reassign; then the new assignee, not alice, rules it.
	is = ctIssue(t, admin.want(200, "POST", path(first, "/assign"), map[string]any{"assignee_id": bob.id}, nil))
	if ctNum(is, "assignee_id") != bob.id {
		t.Errorf("admin assign to bob: %v", is)
	}
	ctWantError(t, alice.do("POST", path(first, "/take"), nil), 403)
	is = ctIssue(t, bob.want(200, "PATCH", path(first, ""), map[string]any{"priority": "high"}, nil))
	if is["priority"] != "high" {
		t.Errorf("PATCH priority: %v", is)
	}
	ctWantError(t, bob.do("PATCH", path(first, ""), map[string]any{"priority": "whenever"}), 400, "priority")
	is = ctIssue(t, bob.want(200, "POST", path(first, "/assign"), map[string]any{"assignee_id": alice.id}, nil))
	if ctNum(is, "assignee_id") != alice.id {
		t.Errorf("the assignee hands the issue to alice: %v", is)
	}

	// Assign It assigns to anyone: an agent hands an unassigned issue to a colleague.
	n.sms("SMissue000000000000000000000000006", "+15554440003", "Third customer: a gift card question")
	gift := ctNum(ctListIssues(t, bob, "q=gift+card")[0], "id")
	if is := ctIssue(t, alice.want(200, "POST", path(gift, "/assign"), map[string]any{"assignee_id": bob.id}, nil)); ctNum(is, "assignee_id") != bob.id {
		t.Errorf("alice assigns an unassigned issue to bob: %v", is)
	}
	// Admins may do all: reply to bob's issue (bob stays its assignee), then resolve it.
	if is := ctIssue(t, admin.want(200, "POST", path(gift, "/replies"), map[string]any{"body": "Gift cards never expire."}, nil)); ctNum(is, "assignee_id") != bob.id {
		t.Errorf("an admin's reply changed the assignee: %v", is)
	}
	if is := ctIssue(t, admin.want(200, "POST", path(gift, "/resolve"), nil, nil)); is["status"] != "resolved" {
		t.Errorf("an admin resolves bob's issue: %v", is)
	}

	// A reply to an unassigned issue takes it, goes out by SMS and reports its delivery.
	r = bob.want(200, "POST", path(second, "/replies"), map[string]any{"body": "We refund the mug today."}, nil)
	if is := ctIssue(t, r); ctNum(is, "assignee_id") != bob.id {
		t.Errorf("replying to an unassigned issue did not take it: %v", is)
	}
	reply := ctLastComment(t, bob, second, "reply")
	if reply["body"] != "We refund the mug today." {
		t.Errorf("reply comment: %v", reply)
	}
	callback := ctWaitSent(t, o.tw, 2) // the admin's gift-card reply was the first
	cb, err := url.Parse(callback.Get("StatusCallback"))
	if err != nil || cb.Path != "/webhooks/twilio/status" || !strings.HasPrefix(callback.Get("StatusCallback"), ctPublicURL) {
		t.Fatalf("the reply's StatusCallback %q is not SWITCHBOARD_PUBLIC_URL/webhooks/twilio/status", callback.Get("StatusCallback"))
	}
	if callback.Get("To") != "+15554440002" || callback.Get("Body") != "We refund the mug today." {
		if first := ctWaitSent(t, o.tw, 1); first.Get("Body") == "We refund the mug today." {
			callback = first // the two replies may leave in either order
		}
	}
	if callback.Get("To") != "+15554440002" || callback.Get("Body") != "We refund the mug today." {
		t.Errorf("the reply went out as %v", callback)
	}
	sid := ctWaitComment(t, bob, second, func(c map[string]any) bool { return c["kind"] == "reply" && c["external_id"] != nil })["external_id"]
	status := url.Values{"MessageSid": {fmt.Sprint(sid)}, "MessageStatus": {"delivered"}, "AccountSid": {ctAccount},
		"From": {ctNumber}, "To": {"+15554440002"}, "ApiVersion": {"2010-04-01"}}
	if r := n.webhook(cb.RequestURI(), status, ""); r.status != 403 {
		t.Errorf("unsigned status callback for our reply: %d; want 403", r.status)
	}
	if r := n.webhook(cb.RequestURI(), status, ctSign(ctToken, ctPublicURL+cb.RequestURI(), status)); r.status/100 != 2 {
		t.Fatalf("status callback: %d %s", r.status, r.raw)
	}
	ctWaitComment(t, bob, second, func(c map[string]any) bool { return c["kind"] == "reply" && c["delivery_status"] == "delivered" })

	// Resolve; the customer writes again: the same issue reopens.
	ctWantError(t, alice.do("POST", path(second, "/resolve"), nil), 403)
	is = ctIssue(t, bob.want(200, "POST", path(second, "/resolve"), nil, nil))
	if is["status"] != "resolved" {
		t.Errorf("resolve: %v", is)
	}
	ctWantError(t, bob.do("POST", path(second, "/resolve"), nil), 409)
	feed := bob.ws("")
	feed.next(10 * time.Second) // hello
	n.sms("SMissue000000000000000000000000004", "+15554440002", "Second customer: the refund did not arrive")
	feed.until(func(m map[string]any) bool {
		data, _ := m["data"].(map[string]any)
		is, _ := data["issue"].(map[string]any)
		return m["type"] == "issue.updated" && ctNum(is, "id") == second && is["status"] != "resolved"
	})
	if got := ctListIssues(t, bob, "q=Second+customer"); len(got) != 1 || ctNum(got[0], "id") != second ||
		(got[0]["status"] != "open" && got[0]["status"] != "in_progress") {
		t.Errorf("a customer reply to a resolved issue: %v; want issue %d reopened", got, second)
	}

	// Close; the customer writes again: a new issue, linked to the closed one.
	is = ctIssue(t, bob.want(200, "POST", path(second, "/close"), nil, nil))
	if is["status"] != "closed" {
		t.Errorf("close: %v", is)
	}
	n.sms("SMissue000000000000000000000000005", "+15554440002", "Second customer: a new question")
	got := ctListIssues(t, bob, "q=Second+customer")
	if len(got) != 2 || ctNum(got[1], "id") != second || got[1]["status"] != "closed" || got[0]["status"] != "open" {
		t.Fatalf("a customer reply to a closed issue: %v; want a new open issue beside closed %d", got, second)
	}
	third := ctNum(got[0], "id")
	if ctNum(got[0], "linked_issue_id") != second {
		t.Errorf("the new issue %d is not linked to closed issue %d: %v", third, second, got[0])
	}
	if ctNum(got[0], "customer_id") != ctNum(got[1], "customer_id") {
		t.Errorf("the new issue has another customer: %v vs %v", got[0]["customer_id"], got[1]["customer_id"])
	}

	// Reopen and PATCH status; an agent may close only an issue unassigned or theirs.
	is = ctIssue(t, bob.want(200, "POST", path(second, "/reopen"), nil, nil))
	if is["status"] == "closed" || is["status"] == "resolved" {
		t.Errorf("reopen: %v", is)
	}
	is = ctIssue(t, bob.want(200, "PATCH", path(second, ""), map[string]any{"status": "resolved"}, nil))
	if is["status"] != "resolved" {
		t.Errorf("PATCH status resolved: %v", is)
	}
	ctWantError(t, bob.do("PATCH", path(second, ""), map[string]any{"status": "finished"}), 400, "status")
	is = ctIssue(t, alice.want(200, "POST", path(third, "/close"), nil, nil))
	if is["status"] != "closed" {
		t.Errorf("an agent closes an unassigned issue: %v", is)
	}
	ctWantError(t, bob.do("POST", path(999999, "/take"), nil), 404)
	ctWantError(t, bob.do("POST", path(first, "/notes"), map[string]any{"body": ""}), 400)
	ctWantError(t, admin.do("POST", path(first, "/assign"), map[string]any{"assignee_id": 999999}), 400)
}

// ctLastComment returns issue id's newest comment of kind.
func ctLastComment(t *testing.T, c *ctClient, id int64, kind string) map[string]any {
	t.Helper()
	d := ctDetail(t, c, id)
	for i := len(d.Comments) - 1; i >= 0; i-- {
		if d.Comments[i]["kind"] == kind {
			return d.Comments[i]
		}
	}
	t.Fatalf("issue %d has no %s comment: %v", id, kind, d.Comments)
	return nil
}

// ctWaitComment polls issue id until one of its comments satisfies ok.
func ctWaitComment(t *testing.T, c *ctClient, id int64, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		d := ctDetail(t, c, id)
		for _, cm := range d.Comments {
			if ok(cm) {
				return cm
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("issue %d: no such comment within 15 s: %v", id, d.Comments)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ctWaitSent waits until the fake Twilio got n messages and returns the nth.
func ctWaitSent(t *testing.T, f *ctTwilio, n int) url.Values {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for f.sentCount() < n {
		if time.Now().After(deadline) {
			t.Fatalf("Twilio got %d messages within 15 s; want %d", f.sentCount(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent[n-1]
}

func ctChannels(t *testing.T, o *ctOrg) {
	type channel = map[string]any
	list := func(c *ctClient) map[string]channel {
		var got struct {
			Channels []channel `json:"channels"`
		}
		c.get("/api/channels", &got)
		m := map[string]channel{}
		for _, ch := range got.Channels {
			for _, k := range []string{"id", "kind", "name", "unread"} {
				if _, ok := ch[k]; !ok {
					t.Errorf("channel %v has no %q", ch["id"], k)
				}
			}
			m[fmt.Sprint(ch["kind"], ":", ch["name"])] = ch
		}
		return m
	}
	var smsCh channel
	for _, ch := range list(o.alice) {
		if ch["kind"] == "sms" {
			smsCh = ch
		}
	}
	if smsCh == nil {
		t.Fatalf("alice is not in the SMS channel of TWILIO_PHONE_NUMBER: %v", list(o.alice))
	}
	smsID := ctNum(smsCh, "id")
	var msgs struct {
		Messages []map[string]any `json:"messages"`
	}
	o.alice.get(fmt.Sprintf("/api/channels/%d/messages", smsID), &msgs)
	if len(msgs.Messages) == 0 {
		t.Fatal("the SMS feed is empty after customers wrote")
	}

	// A team channel: post, the other member's unread count, read.
	var created struct {
		Channel channel `json:"channel"`
	}
	o.alice.want(201, "POST", "/api/channels", map[string]any{"name": "Escalations", "member_ids": []int64{o.bob.id}}, &created)
	id := ctNum(created.Channel, "id")
	before := ctNum(list(o.bob)["team:Escalations"], "unread")
	var posted struct {
		Message map[string]any `json:"message"`
	}
	r := o.alice.do("POST", fmt.Sprintf("/api/channels/%d/messages", id), map[string]any{"body": "<b>not bold</b> & hi"})
	if r.status/100 != 2 {
		t.Fatalf("POST message: %d %s", r.status, r.raw)
	}
	_ = json.Unmarshal(r.raw, &posted)
	o.bob.get(fmt.Sprintf("/api/channels/%d/messages", id), &msgs)
	if len(msgs.Messages) != 1 || msgs.Messages[0]["body"] != "<b>not bold</b> & hi" {
		t.Errorf("team feed: %v", msgs.Messages)
	}
	if got := ctNum(list(o.bob)["team:Escalations"], "unread"); got != before+1 {
		t.Errorf("bob's unread in the team channel: %d; want %d", got, before+1)
	}
	r = o.bob.do("POST", fmt.Sprintf("/api/channels/%d/read", id), map[string]any{"number": ctNum(posted.Message, "number")})
	if r.status != 200 {
		t.Errorf("POST read: %d %s", r.status, r.raw)
	}
	if got := ctNum(list(o.bob)["team:Escalations"], "unread"); got != 0 {
		t.Errorf("bob's unread after reading: %d; want 0", got)
	}
	// The contract names POST …/read without a body: it marks the whole feed read.
	o.n.sms("SMchannel0000000000000000000000001", "+15551110003", "unread one")
	if got := ctNum(list(o.alice)["sms:"+fmt.Sprint(smsCh["name"])], "unread"); got == 0 {
		t.Fatalf("alice has no unread message in the SMS feed after a customer wrote")
	}
	o.alice.want(200, "POST", fmt.Sprintf("/api/channels/%d/read", smsID), nil, nil)
	if got := ctNum(list(o.alice)["sms:"+fmt.Sprint(smsCh["name"])], "unread"); got != 0 {
		t.Errorf("alice's SMS unread after POST read with no body: %d; want 0", got)
	}
	ctWantError(t, o.alice.do("POST", fmt.Sprintf("/api/channels/%d/messages", id), map[string]any{"body": ""}), 400)
	ctWantError(t, o.alice.do("GET", "/api/channels/999999/messages", nil), 404)
}

func ctNotifications(t *testing.T, o *ctOrg) {
	var inbox struct {
		Notifications []map[string]any `json:"notifications"`
		Unread        *int64           `json:"unread"`
	}
	o.alice.get("/api/notifications", &inbox)
	if inbox.Notifications == nil || inbox.Unread == nil {
		t.Fatalf("GET /api/notifications: want notifications and unread")
	}
	before := *inbox.Unread
	// An admin assigns alice an issue: "assigned" is in-app "always" by default.
	o.n.sms("SMnotify00000000000000000000000001", "+15556660001", "Please call me back")
	issues := ctListIssues(t, o.admin, "q=call+me+back")
	if len(issues) != 1 {
		t.Fatalf("issues: %v", issues)
	}
	o.admin.want(200, "POST", fmt.Sprintf("/api/issues/%d/assign", ctNum(issues[0], "id")), map[string]any{"assignee_id": o.alice.id}, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		o.alice.get("/api/notifications", &inbox)
		if *inbox.Unread > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no in-app notification for an assignment within 10 s: %v", inbox.Notifications)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(inbox.Notifications) == 0 {
		t.Fatal("unread rose but the list is empty")
	}
	o.alice.want(200, "POST", "/api/notifications/read-all", nil, nil)
	o.alice.get("/api/notifications", &inbox)
	if *inbox.Unread != 0 {
		t.Errorf("unread after read-all: %d", *inbox.Unread)
	}

	// @handle mentions a user and @team-handle a team; both notify (in-app "always").
	var team struct {
		Team map[string]any `json:"team"`
	}
	o.admin.want(201, "POST", "/api/teams", map[string]any{"name": "Couriers", "handle": "couriers"}, &team)
	o.admin.want(200, "PUT", fmt.Sprintf("/api/teams/%d/members/%d", ctNum(team.Team, "id"), o.bob.id), nil, nil)
	issue := fmt.Sprintf("/api/issues/%d/notes", ctNum(issues[0], "id"))
	o.bob.want(200, "POST", issue, map[string]any{"body": "@alice, the courier called"}, nil)
	ctWaitNotification(t, o.alice, "mentioned")
	o.alice.want(200, "POST", issue, map[string]any{"body": "over to @couriers for this one"}, nil)
	ctWaitNotification(t, o.bob, "team_mentioned")
}

// ctWaitNotification waits until c has an unread notification of event.
func ctWaitNotification(t *testing.T, c *ctClient, event string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var inbox struct {
			Notifications []map[string]any `json:"notifications"`
		}
		c.get("/api/notifications", &inbox)
		for _, n := range inbox.Notifications {
			if n["event"] == event && n["read_at"] == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("user %d got no %q notification within 10 s: %v", c.id, event, inbox.Notifications)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ctFactory is DESIGN.md's table of notification events and their factory defaults.
var ctFactory = map[string][2]string{
	"issue_message":             {"never", "never"},
	"followed_customer_message": {"never", "never"},
	"customer_message":          {"never", "never"},
	"issue_created":             {"never", "never"},
	"assigned":                  {"always", "when_logged_out"},
	"unsnoozed":                 {"always", "always"},
	"note":                      {"always", "when_logged_out"},
	"mentioned":                 {"always", "always"},
	"team_mentioned":            {"always", "when_logged_out"},
	"followed_customer_issue":   {"always", "when_logged_out"},
	"sla_breached":              {"always", "always"},
	"direct_message":            {"always", "when_logged_out"},
}

type ctPrefs struct {
	Events map[string]map[string]any `json:"events"`
}

// ctCheckPrefs checks that doc has the twelve events, each exactly in_app, email and
// sound, and that they equal want (factory defaults with changes).
func ctCheckPrefs(t *testing.T, what string, doc ctPrefs, want map[string][3]any) {
	t.Helper()
	if len(doc.Events) != len(ctFactory) {
		t.Errorf("%s: %d events; want the 12 contract keys", what, len(doc.Events))
	}
	for ev, w := range want {
		got, ok := doc.Events[ev]
		if !ok {
			t.Errorf("%s: no event %q", what, ev)
			continue
		}
		if len(got) != 3 {
			t.Errorf("%s: %s has fields %v; want in_app, email, sound", what, ev, got)
		}
		if got["in_app"] != w[0] || got["email"] != w[1] || got["sound"] != w[2] {
			t.Errorf("%s: %s = %v; want in_app %v, email %v, sound %v", what, ev, got, w[0], w[1], w[2])
		}
		if _, ok := got["sound"]; !ok {
			t.Errorf("%s: %s has no sound (null when off)", what, ev)
		}
	}
}

func ctFactoryWant() map[string][3]any {
	w := map[string][3]any{}
	for ev, f := range ctFactory {
		w[ev] = [3]any{f[0], f[1], nil}
	}
	return w
}

func ctPreferences(t *testing.T, o *ctOrg) {
	var doc ctPrefs
	o.bob.get("/api/preferences", &doc)
	ctCheckPrefs(t, "GET /api/preferences (factory)", doc, ctFactoryWant())
	o.admin.get("/api/org/preferences", &doc)
	ctCheckPrefs(t, "GET /api/org/preferences (factory)", doc, ctFactoryWant())

	ctWantError(t, o.bob.do("GET", "/api/org/preferences", nil), 403)
	ctWantError(t, o.bob.do("PUT", "/api/org/preferences", map[string]any{"events": map[string]any{"note": map[string]any{"in_app": "never"}}}), 403)

	// The user's own choice, in the contract's shape.
	want := ctFactoryWant()
	r := o.bob.do("PUT", "/api/preferences", map[string]any{"events": map[string]any{
		"assigned": map[string]any{"in_app": "never", "email": "always", "sound": "chime"}}})
	if r.status != 200 {
		t.Fatalf("PUT /api/preferences: %d %s", r.status, r.raw)
	}
	want["assigned"] = [3]any{"never", "always", "chime"}
	o.bob.get("/api/preferences", &doc)
	ctCheckPrefs(t, "after PUT", doc, want)

	// The organisation's default reaches users who did not choose; bob's own choice wins.
	o.admin.want(200, "PUT", "/api/org/preferences", map[string]any{"events": map[string]any{
		"note":     map[string]any{"in_app": "never", "email": "never", "sound": "knock"},
		"assigned": map[string]any{"in_app": "always", "email": "never", "sound": "ping"}}}, nil)
	want["note"] = [3]any{"never", "never", "knock"}
	o.bob.get("/api/preferences", &doc)
	ctCheckPrefs(t, "after the org default changed", doc, want)
	orgWant := ctFactoryWant()
	orgWant["note"] = [3]any{"never", "never", "knock"}
	orgWant["assigned"] = [3]any{"always", "never", "ping"}
	o.admin.get("/api/org/preferences", &doc)
	ctCheckPrefs(t, "GET /api/org/preferences after PUT", doc, orgWant)

	// A whole GET document may be sent back as it is.
	var full map[string]any
	o.bob.get("/api/preferences", &full)
	o.bob.want(200, "PUT", "/api/preferences", full, nil)
	o.bob.get("/api/preferences", &doc)
	ctCheckPrefs(t, "after PUT of the GET document", doc, want)

	for _, tc := range []struct {
		body  map[string]any
		words []string
	}{
		{map[string]any{"events": map[string]any{"assigned": map[string]any{"in_app": "sometimes"}}}, []string{"sometimes"}},
		{map[string]any{"events": map[string]any{"assigned": map[string]any{"email": "hourly"}}}, []string{"hourly"}},
		{map[string]any{"events": map[string]any{"assigned": map[string]any{"sound": "gong"}}}, []string{"gong"}},
		{map[string]any{"events": map[string]any{"asigned": map[string]any{"in_app": "always"}}}, []string{"asigned"}},
	} {
		ctWantError(t, o.bob.do("PUT", "/api/preferences", tc.body), 400, tc.words...)
		ctWantError(t, o.admin.do("PUT", "/api/org/preferences", tc.body), 400, tc.words...)
	}
	o.bob.get("/api/preferences", &doc)
	ctCheckPrefs(t, "after refused PUTs", doc, want)
}

// ctEvent is what identifies a change on the live feed.
func ctEvent(m map[string]any) string {
	return fmt.Sprint(m["type"], "@", m["topic"], "#", m["seq"])
}

func ctIsChange(m map[string]any) bool { _, ok := m["seq"]; return ok }

func ctWebSocket(t *testing.T, o *ctOrg) {
	// Authentication and Origin.
	anon := o.n.client()
	if _, resp, err := anon.dialWS("", nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("/ws without a session: err %v, resp %v; want 401", err, resp)
	} else {
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ctWantError(t, ctResp{status: resp.StatusCode, header: resp.Header, raw: raw}, 401)
	}
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"http://evil.example", false},
		{"https://support.contract.test.evil.example", false},
		{ctPublicURL, true},
		{o.n.base, true},
	} {
		ws, resp, err := o.alice.dialWS("", http.Header{"Origin": {tc.origin}})
		switch {
		case tc.ok && err != nil:
			t.Errorf("/ws from Origin %s: %v; want accepted", tc.origin, err)
		case !tc.ok && (err == nil || resp == nil || resp.StatusCode != 403):
			t.Errorf("/ws from Origin %s: err %v; want 403", tc.origin, err)
		}
		if ws != nil {
			ws.ws.CloseNow()
		}
	}

	live := o.alice.ws("")
	hello := live.next(10 * time.Second)
	if hello["type"] != "hello" || fmt.Sprint(hello["cursor"]) == "" || hello["cursor"] == nil {
		t.Fatalf("first object %v; want {\"type\":\"hello\",\"cursor\":…}", hello)
	}
	if _, ok := hello["cursor"].(string); !ok {
		t.Errorf("hello cursor %v is not a string", hello["cursor"])
	}
	for i := 1; i <= 3; i++ {
		o.n.sms(fmt.Sprintf("SMws0000000000000000000000000000%02d", i), "+15558880001", fmt.Sprint("live ", i))
	}
	body := func(m map[string]any) string {
		data, _ := m["data"].(map[string]any)
		msg, _ := data["message"].(map[string]any)
		s, _ := msg["body"].(string)
		return s
	}
	seen := live.until(func(m map[string]any) bool { return body(m) == "live 3" })
	var c1 string
	var after []string // the changes after the first message, as the live client saw them
	for _, m := range seen {
		if m["type"] == nil || m["type"] == "" || m["type"] == "__unparsable__" {
			t.Errorf("object without a type: %v", m)
		}
		if ctIsChange(m) {
			if s, ok := m["cursor"].(string); !ok || s == "" {
				t.Errorf("change %v has no cursor", m)
			}
			if c1 != "" {
				after = append(after, ctEvent(m))
			}
		}
		if body(m) == "live 1" {
			c1 = m["cursor"].(string)
		}
	}
	if c1 == "" || len(after) < 2 {
		t.Fatalf("the live client saw %v", seen)
	}

	// Resume after the first message: exactly what came after it, then live, no repeats.
	back := o.alice.ws("?cursor=" + url.QueryEscape(c1))
	if h := back.next(10 * time.Second); h["type"] != "hello" {
		t.Fatalf("resumed connection's first object %v; want hello", h)
	}
	var replay []string
	for len(replay) < len(after) {
		m := back.next(10 * time.Second)
		if m["type"] == "resync" {
			t.Fatalf("resync for a fresh cursor")
		}
		if ctIsChange(m) {
			replay = append(replay, ctEvent(m))
		}
	}
	if !slices.Equal(replay, after) {
		t.Errorf("replay after cursor:\n got %v\nwant %v (what the live client saw)", replay, after)
	}
	o.n.sms("SMws000000000000000000000000000004", "+15558880001", "live 4")
	got := back.until(func(m map[string]any) bool { return body(m) == "live 4" })
	got = append(got, back.quiet(300*time.Millisecond)...)
	count := map[string]int{}
	for _, e := range replay {
		count[e]++
	}
	for _, m := range got {
		if ctIsChange(m) {
			count[ctEvent(m)]++
		}
	}
	for e, k := range count {
		if k > 1 {
			t.Errorf("resumed connection got %s %d times", e, k)
		}
	}
	// Framing: every line of every frame is one JSON object with a type.
	for {
		select {
		case f := <-back.frames:
			for _, line := range strings.Split(string(f), "\n") {
				if strings.TrimSpace(line) != "" && !strings.HasPrefix(strings.TrimSpace(line), "{") {
					t.Errorf("frame line %q is not a JSON object", line)
				}
			}
			continue
		default:
		}
		break
	}
}

// TestContractWSResync: a cursor the server cannot honour (here one from another
// database, ahead of this one) is answered by hello and {"type":"resync"}.
func TestContractWSResync(t *testing.T) {
	a := ctNewOrg(t, store.SQLite)
	for i := range 3 {
		a.n.sms(fmt.Sprintf("SMresync000000000000000000000000%02d", i), "+15559990001", fmt.Sprint("m ", i))
	}
	ws := a.alice.ws("")
	cursor, _ := ws.next(10 * time.Second)["cursor"].(string)

	b := ctNewOrg(t, store.SQLite)
	fresh := b.alice.ws("?cursor=" + url.QueryEscape(cursor))
	if h := fresh.next(10 * time.Second); h["type"] != "hello" {
		t.Fatalf("first object %v; want hello", h)
	}
	got := fresh.until(func(m map[string]any) bool { return m["type"] == "resync" })
	for _, m := range got[:len(got)-1] {
		if ctIsChange(m) {
			t.Errorf("a change %v before resync", m)
		}
	}
}

// TestContractHealthz: /healthz answers 503 while Redis or the database does not answer,
// and 200 again when they are back.
func TestContractHealthz(t *testing.T) {
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		redisURL, stop, restart := redistest.StartServer(t)
		tw := newCTTwilio(t)
		n := ctStart(t, ctEnvFor(t, store.SQLite, tw.srv.URL, "REDIS_URL="+redisURL), t.TempDir())
		c := n.client()
		ctWaitHealth(t, c, 200)
		stop()
		ctWaitHealth(t, c, 503)
		restart()
		ctWaitHealth(t, c, 200)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		db, _ := url.Parse(storetest.URL(t, store.Postgres))
		p := newCTProxy(t, db.Host)
		db.Host = p.addr
		tw := newCTTwilio(t)
		env := ctEnvFor(t, store.Postgres, tw.srv.URL)
		env = append(env, "DATABASE_URL="+db.String())
		n := ctStart(t, env, t.TempDir())
		c := n.client()
		ctWaitHealth(t, c, 200)
		p.down()
		ctWaitHealth(t, c, 503)
		p.up()
		ctWaitHealth(t, c, 200)
	})
}

// ctWaitHealth polls /healthz until it answers status (within 20 s).
func ctWaitHealth(t *testing.T, c *ctClient, status int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := c.do("GET", "/healthz", nil)
		if r.status == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /healthz: %d %s; want %d", r.status, r.raw, status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestContractPublicURLWithPath: behind a proxy that adds a path prefix, Twilio signs
// SWITCHBOARD_PUBLIC_URL + path, prefix included.
func TestContractPublicURLWithPath(t *testing.T) {
	const public = "https://proxy.contract.test/support"
	tw := newCTTwilio(t)
	n := ctStart(t, ctEnvFor(t, store.SQLite, tw.srv.URL, "SWITCHBOARD_PUBLIC_URL="+public), t.TempDir())
	form := ctSMSForm("SMprefix00000000000000000000000001", "+15552220001", "behind a proxy")
	if r := n.webhook("/webhooks/twilio/sms", form, ctSign(ctToken, "https://proxy.contract.test/webhooks/twilio/sms", form)); r.status != 403 {
		t.Errorf("signed without the public URL's path: %d; want 403", r.status)
	}
	if r := n.webhook("/webhooks/twilio/sms", form, ctSign(ctToken, public+"/webhooks/twilio/sms", form)); r.status != 200 {
		t.Errorf("signed for %s/webhooks/twilio/sms: %d %s; want 200", public, r.status, r.raw)
	}
}

// TestContractWSResumeAfterRestart: the cursor outlives the process: events written
// while a client was away are replayed by a restarted server on the same database.
func TestContractWSResumeAfterRestart(t *testing.T) {
	o := ctNewOrg(t, store.Postgres)
	ws := o.alice.ws("")
	ws.next(10 * time.Second)
	o.n.sms("SMrestart000000000000000000000001", "+15551230009", "before")
	got := ws.until(func(m map[string]any) bool { return m["type"] == "message.created" })
	cursor := got[len(got)-1]["cursor"].(string)
	ws.ws.CloseNow()
	o.n.sms("SMrestart000000000000000000000002", "+15551230009", "while away 1")
	o.n.sms("SMrestart000000000000000000000003", "+15551230009", "while away 2")

	if err := o.n.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-o.n.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop on SIGINT within 20 s")
	}
	n2 := ctStart(t, o.n.env, t.TempDir())
	alice := n2.login("alice@example.com", "password-alice")
	back := alice.ws("?cursor=" + url.QueryEscape(cursor))
	if h := back.next(10 * time.Second); h["type"] != "hello" {
		t.Fatalf("first object %v", h)
	}
	var bodies []string
	for len(bodies) < 2 {
		m := back.next(10 * time.Second)
		if m["type"] == "resync" {
			t.Fatal("resync after a restart on the same database")
		}
		if m["type"] == "message.created" {
			bodies = append(bodies, m["data"].(map[string]any)["message"].(map[string]any)["body"].(string))
		}
	}
	if strings.Join(bodies, "|") != "while away 1|while away 2" {
		t.Errorf("replayed after restart: %v", bodies)
	}
}
