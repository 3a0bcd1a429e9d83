package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-hq/switchboard/internal/redistest"
	"github.com/switchboard-hq/switchboard/store"
)

// Contract points the first audit found broken, kept as tests now that they hold.

// TestContractAuditConfig: values that pass a first syntax check but are still bad
// must stop start-up with one line naming the variable (DESIGN.md, Configuration:
// "A bad value stops start-up with one clear line naming the variable; it never starts
// half-configured").
func TestContractAuditConfig(t *testing.T) {
	dir := t.TempDir()
	redisDB := func(db string) string {
		u, _ := url.Parse(redistest.URL(t))
		u.Path = "/" + db
		return u.String()
	}
	cases := []struct {
		name, comment string
		env           []string
	}{
		{"TWILIO_AUTH_TOKEN", "too short", []string{"TWILIO_AUTH_TOKEN=tok"}},
		{"REDIS_URL", "database number that is not a number", []string{"REDIS_URL=" + redisDB("abc")}},
	}
	for _, tc := range cases {
		t.Run(tc.name+"/"+tc.comment, func(t *testing.T) {
			t.Parallel()
			db := filepath.Join(t.TempDir(), "x.db")
			env := append(ctBaseEnv(), "SWITCHBOARD_ADDR=127.0.0.1:0", "DATABASE_URL=sqlite:"+db,
				"TWILIO_ACCOUNT_SID="+ctAccount, "TWILIO_AUTH_TOKEN="+ctToken, "TWILIO_PHONE_NUMBER="+ctNumber)
			env = append(env, tc.env...)
			out, errOut, code := ctRunBounded(t, env, dir, 10*time.Second, "serve")
			if code == 0 || strings.Contains(out, "listening") {
				t.Fatalf("%v: it started (exit %d)\n%s", tc.env, code, out)
			}
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			last := lines[len(lines)-1]
			if len(lines) != 1 || !strings.Contains(last, tc.name) {
				t.Errorf("%v: exit %d, stderr %q; want one line naming %s", tc.env, code, errOut, tc.name)
			}
			if _, err := os.Stat(db); err == nil {
				t.Errorf("%v: the database was created and migrated before the refusal (started half-configured)", tc.env)
			}
		})
	}
}

// TestContractAuditErrorsAreJSON: "Errors are JSON {"error":"…"} with the right
// status", the WebSocket handshake's refusals (which coder/websocket decides) and the
// webhooks' included.
func TestContractAuditErrorsAreJSON(t *testing.T) {
	o := ctNewOrg(t, store.SQLite)
	t.Run("ws malformed cursor", func(t *testing.T) {
		_, resp, err := o.alice.dialWS("?cursor=%21%21not-a-cursor", nil)
		if err == nil || resp == nil {
			t.Fatalf("dial with a malformed cursor: %v", err)
		}
		ctWantError(t, ctResp{status: resp.StatusCode, header: resp.Header, raw: ctReadBody(resp)}, 400)
	})
	t.Run("ws bad Origin", func(t *testing.T) {
		_, resp, err := o.alice.dialWS("", http.Header{"Origin": {"http://evil.example"}})
		if err == nil || resp == nil {
			t.Fatalf("dial from evil origin: %v", err)
		}
		ctWantError(t, ctResp{status: resp.StatusCode, header: resp.Header, raw: ctReadBody(resp)}, 403)
	})
}

// TestContractAuditResumeSubscribedTopic: "Connecting with /ws?cursor=C first
// replays, in order, every event the user may see that came after C … nothing lost".
// A note's comment.created travels only on issue:{id}; a connection that followed the
// issue and reconnects with its cursor gets the note written while it was away.
func TestContractAuditResumeSubscribedTopic(t *testing.T) {
	o := ctNewOrg(t, store.SQLite)
	o.n.sms("SMdev0000000000000000000000000010", "+15551110002", "please help")
	issues := ctListIssues(t, o.alice, "q=please+help")
	id := ctNum(issues[0], "id")
	ws := o.alice.ws("")
	ws.next(10 * time.Second) // hello
	if err := ws.ws.Write(t.Context(), websocket.MessageText, fmt.Appendf(nil, `{"type":"subscribe","topic":"issue:%d"}`, id)); err != nil {
		t.Fatal(err)
	}
	sub := ws.until(func(m map[string]any) bool { return m["type"] == "subscribed" || m["type"] == "error" })
	cursor, _ := sub[len(sub)-1]["cursor"].(string)
	if cursor == "" {
		t.Fatalf("subscribe answered %v", sub)
	}
	ws.ws.CloseNow()
	o.bob.want(200, "POST", fmt.Sprintf("/api/issues/%d/notes", id), map[string]any{"body": "written while alice was away"}, nil)

	back := o.alice.ws("?cursor=" + url.QueryEscape(cursor))
	got := back.quiet(2 * time.Second)
	for _, m := range got {
		if m["type"] == "comment.created" || m["type"] == "resync" {
			return
		}
	}
	t.Errorf("resumed from a cursor that followed issue:%d, the note written meanwhile was not replayed (and no resync): %v", id, got)
}

// TestContractAuditPreferencesSoundNull: "GET|PUT /api/preferences ->
// {"events":{"<event>":{"in_app":F,"email":F,"sound":S}}} with … S a sound name or
// null", and "a user's own choice wins": a user's "sound":null (no sound) holds over an
// organisation default sound.
func TestContractAuditPreferencesSoundNull(t *testing.T) {
	o := ctNewOrg(t, store.SQLite)
	o.admin.want(200, "PUT", "/api/org/preferences", map[string]any{"events": map[string]any{
		"note": map[string]any{"in_app": "always", "email": "when_logged_out", "sound": "knock"}}}, nil)
	o.bob.want(200, "PUT", "/api/preferences", map[string]any{"events": map[string]any{
		"note": map[string]any{"in_app": "always", "email": "when_logged_out", "sound": nil}}}, nil)
	var doc ctPrefs
	o.bob.get("/api/preferences", &doc)
	if s := doc.Events["note"]["sound"]; s != nil {
		t.Errorf("bob chose sound null (none) for note; GET /api/preferences says %v (the organisation's default)", s)
	}
}

// ctRunBounded runs the binary for at most d; a process still running then (it started
// serving) is killed and reported with exit code 0.
func ctRunBounded(t *testing.T, env []string, dir string, d time.Duration, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, switchboardBinary(t), args...)
	cmd.Env, cmd.Dir = env, dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		return o.String(), e.String(), 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	return o.String(), e.String(), code
}

func ctReadBody(resp *http.Response) []byte {
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return b
}
