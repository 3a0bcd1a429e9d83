package server_test

// Tests of the issue workflow through the HTTP API: statuses and actions, the permission
// rules (one table), replies and notes (with a fake Sender), mentions, the collision
// guard, snooze, lists, viewing, following customers, and the live events they cause.
// Names here start with wf so they stay clear of the other test files of the package.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/issues"
	"github.com/switchboard-hq/switchboard/store"
)

// wfEnv is a server with three agents (alice, bob, carol) and an admin (root).
type wfEnv struct {
	*env
	alice, bob, carol, root *http.Client
	id                      map[string]int64 // user ids by handle
	smsID                   int64            // the Twilio number's channel
	n                       int              // issues made so far
}

func wfStart(t *testing.T, d store.Dialect) *wfEnv {
	t.Helper()
	w := &wfEnv{env: start(t, d), id: map[string]int64{}}
	w.alice = w.agent("alice", accounts.RoleAgent)
	w.bob = w.agent("bob", accounts.RoleAgent)
	w.carol = w.agent("carol", accounts.RoleAgent)
	w.root = w.agent("root", accounts.RoleAdmin)
	for _, h := range []string{"alice", "bob", "carol", "root"} {
		u, err := w.s.Accounts.UserByHandle(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		w.id[h] = u.ID
	}
	ch, err := w.s.Channels.ByAddress(context.Background(), channels.SMS, number)
	if err != nil {
		t.Fatal(err)
	}
	w.smsID = ch.ID
	return w
}

// newIssue makes an issue from a new customer's text and returns its id.
func (w *wfEnv) newIssue() int64 {
	w.t.Helper()
	w.n++
	res, err := w.s.Issues.Intake(context.Background(), issues.Inbound{ChannelID: w.smsID, Provider: "twilio",
		ExternalID: fmt.Sprintf("SMwf%d", w.n), Phone: fmt.Sprintf("+1555700%04d", w.n), Body: "help please",
		ReceivedAt: time.Now()})
	if err != nil {
		w.t.Fatal(err)
	}
	return res.IssueID
}

// as is the service-level actor of a user, for setting up preconditions.
func (w *wfEnv) as(handle string) issues.Actor {
	return issues.Actor{UserID: w.id[handle], Admin: handle == "root"}
}

// call makes a request and returns the status and the body.
func (w *wfEnv) call(c *http.Client, method, path string, v any) (int, string) {
	w.t.Helper()
	resp := w.do(c, method, path, v)
	return resp.StatusCode, body(resp)
}

// must makes a request that must answer want, and decodes the answer into out (if set).
func (w *wfEnv) must(c *http.Client, method, path string, v any, want int, out any) string {
	w.t.Helper()
	code, b := w.call(c, method, path, v)
	if code != want {
		w.t.Fatalf("%s %s: got %d %s; want %d", method, path, code, b, want)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(b), out); err != nil {
			w.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return b
}

type wfIssue struct {
	ID              int64      `json:"id"`
	Status          string     `json:"status"`
	Priority        string     `json:"priority"`
	ChannelID       int64      `json:"channel_id"`
	CustomerID      int64      `json:"customer_id"`
	AssigneeID      *int64     `json:"assignee_id"`
	ResolvedBy      *int64     `json:"resolved_by"`
	FirstResponseAt *time.Time `json:"first_response_at"`
	ResolvedAt      *time.Time `json:"resolved_at"`
	ClosedAt        *time.Time `json:"closed_at"`
	SnoozedUntil    *time.Time `json:"snoozed_until"`
	CreatedAt       time.Time  `json:"created_at"`
}

type wfMention struct {
	Handle    string  `json:"handle"`
	UserID    *int64  `json:"user_id"`
	TeamID    *int64  `json:"team_id"`
	MemberIDs []int64 `json:"member_ids"`
}

type wfComment struct {
	ID             int64       `json:"id"`
	Kind           string      `json:"kind"`
	Body           string      `json:"body"`
	AuthorID       *int64      `json:"author_id"`
	ChannelID      *int64      `json:"channel_id"`
	ExternalID     *string     `json:"external_id"`
	DeliveryStatus *string     `json:"delivery_status"`
	CreatedAt      time.Time   `json:"created_at"`
	Mentions       []wfMention `json:"mentions"`
}

type wfActivity struct {
	Action    string         `json:"action"`
	ActorID   *int64         `json:"actor_id"`
	Details   map[string]any `json:"details"`
	CreatedAt time.Time      `json:"created_at"`
}

type wfDetail struct {
	Issue    wfIssue      `json:"issue"`
	Comments []wfComment  `json:"comments"`
	Activity []wfActivity `json:"activity"`
}

// answer is what an action answers.
type wfAnswer struct {
	Issue   wfIssue    `json:"issue"`
	Comment *wfComment `json:"comment"`
}

func (w *wfEnv) detail(id int64) wfDetail {
	w.t.Helper()
	var d wfDetail
	w.getJSON(w.root, fmt.Sprintf("/api/issues/%d", id), &d)
	return d
}

func (w *wfEnv) listIDs(c *http.Client, query string) []int64 {
	w.t.Helper()
	var l struct {
		Issues []wfIssue `json:"issues"`
	}
	w.getJSON(c, "/api/issues"+query, &l)
	ids := []int64{}
	for _, i := range l.Issues {
		ids = append(ids, i.ID)
	}
	return ids
}

func eqIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// wfNext returns the next frame of type typ for which match holds.
func wfNext(t *testing.T, in chan map[string]any, typ string, match func(m map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-in:
			if m["type"] == "closed" {
				t.Fatalf("connection closed waiting for %s: %v", typ, m)
			}
			if m["type"] == typ && (match == nil || match(m)) {
				return m
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s", typ)
		}
	}
}

func wfData(m map[string]any) map[string]any { d, _ := m["data"].(map[string]any); return d }

func wfSubscribe(t *testing.T, ws *websocket.Conn, in chan map[string]any, topic string) {
	t.Helper()
	if err := ws.Write(context.Background(), websocket.MessageText, []byte(`{"type":"subscribe","topic":"`+topic+`"}`)); err != nil {
		t.Fatal(err)
	}
	wfNext(t, in, "subscribed", func(m map[string]any) bool { return m["topic"] == topic })
}

// The rule texts a 403 must name (DESIGN.md "Issue rules").
const (
	wfErrReassign = "this issue is assigned to someone else; only its assignee or an admin may reassign it"
	wfErrResolve  = "only the assignee or an admin may resolve an issue assigned to someone else"
	wfErrClose    = "only the assignee or an admin may close an issue assigned to someone else"
	wfErrStatus   = "only the issue's assignee or an admin may change its priority or status"
	wfErrSnooze   = "only the issue's assignee or an admin may snooze it or end its snooze"
	wfErrReply    = "only the issue's assignee or an admin may reply to the customer"
	wfErrContact  = "only the issue's assignee or an admin may mark the customer contacted"
)

// TestIssueRules walks every action for each kind of actor (the assignee, another agent,
// an admin) on an unassigned and on an assigned issue, checking the status, the rule a
// 403 names, and that a refusal leaves no trace in the activity log.
func TestIssueRules(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		w := wfStart(t, d.Dialect())
		ctx := context.Background()
		later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		resolved := func(id int64) {
			if _, err := w.s.Issues.Resolve(ctx, w.as("root"), id); err != nil {
				t.Fatal(err)
			}
		}
		snoozed := func(id int64) {
			if _, err := w.s.Issues.Snooze(ctx, w.as("root"), id, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		type action struct {
			setup  func(id int64)
			method string
			path   string // with %d for the issue id
			body   func(assigned bool) any
		}
		fixed := func(v any) func(bool) any { return func(bool) any { return v } }
		actions := map[string]action{
			"take":          {nil, "POST", "/api/issues/%d/take", nil},
			"assign":        {nil, "POST", "/api/issues/%d/assign", func(bool) any { return map[string]int64{"assignee_id": w.id["carol"]} }},
			"unassign":      {nil, "POST", "/api/issues/%d/unassign", nil},
			"resolve":       {nil, "POST", "/api/issues/%d/resolve", nil},
			"close":         {nil, "POST", "/api/issues/%d/close", nil},
			"reopen":        {resolved, "POST", "/api/issues/%d/reopen", nil},
			"priority":      {nil, "PATCH", "/api/issues/%d", fixed(map[string]string{"priority": "urgent"})},
			"status→closed": {nil, "PATCH", "/api/issues/%d", fixed(map[string]string{"status": "closed"})},
			"status→reopen": {resolved, "PATCH", "/api/issues/%d", func(assigned bool) any {
				if assigned {
					return map[string]string{"status": "in_progress"}
				}
				return map[string]string{"status": "open"}
			}},
			"note":      {nil, "POST", "/api/issues/%d/notes", fixed(map[string]string{"body": "internal: check the order"})},
			"reply":     {nil, "POST", "/api/issues/%d/replies", fixed(map[string]string{"body": "We are on it."})},
			"snooze":    {nil, "POST", "/api/issues/%d/snooze", fixed(map[string]string{"until": later})},
			"unsnooze":  {snoozed, "POST", "/api/issues/%d/unsnooze", nil},
			"contacted": {nil, "POST", "/api/issues/%d/contacted", nil},
		}
		const (
			unassigned = false
			assigned   = true // to alice
		)
		// actor: "assignee" is alice (the assignee of assigned issues), "agent" is bob,
		// "admin" is root. noop: allowed, but nothing changes and nothing is logged.
		rows := []struct {
			action   string
			assigned bool
			actor    string
			code     int
			err      string
			noop     bool
		}{
			{"take", unassigned, "agent", 200, "", false},
			{"take", unassigned, "admin", 200, "", false},
			{"take", assigned, "assignee", 200, "", true},
			{"take", assigned, "agent", 403, wfErrReassign, false},
			{"take", assigned, "admin", 200, "", false},

			{"assign", unassigned, "agent", 200, "", false},
			{"assign", unassigned, "admin", 200, "", false},
			{"assign", assigned, "assignee", 200, "", false},
			{"assign", assigned, "agent", 403, wfErrReassign, false},
			{"assign", assigned, "admin", 200, "", false},

			{"unassign", unassigned, "agent", 200, "", true},
			{"unassign", unassigned, "admin", 200, "", true},
			{"unassign", assigned, "assignee", 200, "", false},
			{"unassign", assigned, "agent", 403, wfErrReassign, false},
			{"unassign", assigned, "admin", 200, "", false},

			{"resolve", unassigned, "agent", 200, "", false},
			{"resolve", unassigned, "admin", 200, "", false},
			{"resolve", assigned, "assignee", 200, "", false},
			{"resolve", assigned, "agent", 403, wfErrResolve, false},
			{"resolve", assigned, "admin", 200, "", false},

			{"close", unassigned, "agent", 200, "", false},
			{"close", unassigned, "admin", 200, "", false},
			{"close", assigned, "assignee", 200, "", false},
			{"close", assigned, "agent", 403, wfErrClose, false},
			{"close", assigned, "admin", 200, "", false},

			{"reopen", unassigned, "agent", 403, wfErrStatus, false},
			{"reopen", unassigned, "admin", 200, "", false},
			{"reopen", assigned, "assignee", 200, "", false},
			{"reopen", assigned, "agent", 403, wfErrStatus, false},
			{"reopen", assigned, "admin", 200, "", false},

			{"priority", unassigned, "agent", 403, wfErrStatus, false},
			{"priority", unassigned, "admin", 200, "", false},
			{"priority", assigned, "assignee", 200, "", false},
			{"priority", assigned, "agent", 403, wfErrStatus, false},
			{"priority", assigned, "admin", 200, "", false},

			{"status→closed", unassigned, "agent", 200, "", false},
			{"status→closed", unassigned, "admin", 200, "", false},
			{"status→closed", assigned, "assignee", 200, "", false},
			{"status→closed", assigned, "agent", 403, wfErrClose, false},
			{"status→closed", assigned, "admin", 200, "", false},

			{"status→reopen", unassigned, "agent", 403, wfErrStatus, false},
			{"status→reopen", unassigned, "admin", 200, "", false},
			{"status→reopen", assigned, "assignee", 200, "", false},
			{"status→reopen", assigned, "agent", 403, wfErrStatus, false},
			{"status→reopen", assigned, "admin", 200, "", false},

			{"note", unassigned, "agent", 200, "", false},
			{"note", unassigned, "admin", 200, "", false},
			{"note", assigned, "assignee", 200, "", false},
			{"note", assigned, "agent", 200, "", false},
			{"note", assigned, "admin", 200, "", false},

			{"reply", unassigned, "agent", 200, "", false}, // and takes it
			{"reply", unassigned, "admin", 200, "", false},
			{"reply", assigned, "assignee", 200, "", false},
			{"reply", assigned, "agent", 403, wfErrReply, false},
			{"reply", assigned, "admin", 200, "", false},

			{"snooze", unassigned, "agent", 403, wfErrSnooze, false},
			{"snooze", unassigned, "admin", 200, "", false},
			{"snooze", assigned, "assignee", 200, "", false},
			{"snooze", assigned, "agent", 403, wfErrSnooze, false},
			{"snooze", assigned, "admin", 200, "", false},

			{"unsnooze", unassigned, "agent", 403, wfErrSnooze, false},
			{"unsnooze", unassigned, "admin", 200, "", false},
			{"unsnooze", assigned, "assignee", 200, "", false},
			{"unsnooze", assigned, "agent", 403, wfErrSnooze, false},
			{"unsnooze", assigned, "admin", 200, "", false},

			{"contacted", unassigned, "agent", 200, "", false}, // and takes it
			{"contacted", unassigned, "admin", 200, "", false},
			{"contacted", assigned, "assignee", 200, "", false},
			{"contacted", assigned, "agent", 403, wfErrContact, false},
			{"contacted", assigned, "admin", 200, "", false},
		}
		clients := map[string]*http.Client{"assignee": w.alice, "agent": w.bob, "admin": w.root}
		seen := map[string]bool{}
		for _, row := range rows {
			state := "unassigned"
			if row.assigned {
				state = "assigned"
			}
			name := fmt.Sprintf("%s/%s/%s", row.action, state, row.actor)
			seen[row.action] = true
			act, ok := actions[row.action]
			if !ok {
				t.Fatalf("%s: no such action", name)
			}
			id := w.newIssue()
			if row.assigned {
				if _, err := w.s.Issues.Assign(ctx, w.as("root"), id, w.id["alice"]); err != nil {
					t.Fatal(err)
				}
			}
			if act.setup != nil {
				act.setup(id)
			}
			before := w.detail(id)
			var reqBody any
			if act.body != nil {
				reqBody = act.body(row.assigned)
			}
			code, b := w.call(clients[row.actor], act.method, fmt.Sprintf(act.path, id), reqBody)
			after := w.detail(id)
			if code != row.code {
				t.Errorf("%s: got %d %s; want %d", name, code, b, row.code)
				continue
			}
			switch {
			case row.code == 403:
				var e map[string]string
				if json.Unmarshal([]byte(b), &e) != nil || e["error"] != row.err {
					t.Errorf("%s: got %s; want {\"error\":%q}", name, b, row.err)
				}
				if len(after.Activity) != len(before.Activity) {
					t.Errorf("%s: a refusal was logged: %+v", name, after.Activity[len(before.Activity):])
				}
			case row.noop:
				if len(after.Activity) != len(before.Activity) {
					t.Errorf("%s: a no-op was logged: %+v", name, after.Activity[len(before.Activity):])
				}
			default:
				var ans wfAnswer
				if err := json.Unmarshal([]byte(b), &ans); err != nil || ans.Issue.ID != id {
					t.Errorf("%s: answer %s; want {\"issue\":{\"id\":%d,…}}", name, b, id)
				}
				if len(after.Activity) <= len(before.Activity) {
					t.Errorf("%s: nothing logged", name)
				} else if last := after.Activity[len(after.Activity)-1]; last.ActorID == nil || *last.ActorID != w.id[map[string]string{
					"assignee": "alice", "agent": "bob", "admin": "root"}[row.actor]] {
					t.Errorf("%s: logged %+v; want the actor", name, last)
				}
			}
		}
		for a := range actions {
			if !seen[a] {
				t.Errorf("action %s has no rows", a)
			}
		}
	})
}

// TestConcurrentTakes: two agents take the same issue at once, many times; each time
// exactly one gets it and the other is refused.
func TestConcurrentTakes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		w := wfStart(t, d.Dialect())
		for range 15 {
			id := w.newIssue()
			path := fmt.Sprintf("%s/api/issues/%d/take", w.srv.URL, id)
			var wg sync.WaitGroup
			codes := make([]int, 2)
			bodies := make([]string, 2)
			go1 := make(chan struct{})
			for i, c := range []*http.Client{w.alice, w.bob} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-go1
					resp, err := c.Post(path, "application/json", nil)
					if err != nil {
						t.Error(err)
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					codes[i], bodies[i] = resp.StatusCode, string(b)
				}()
			}
			close(go1)
			wg.Wait()
			winner := ""
			switch {
			case codes[0] == 200 && codes[1] == 403:
				winner = "alice"
			case codes[1] == 200 && codes[0] == 403:
				winner = "bob"
			default:
				t.Fatalf("issue %d: got %d %s and %d %s; want one 200 and one 403", id, codes[0], bodies[0], codes[1], bodies[1])
			}
			loser := bodies[0]
			if winner == "alice" {
				loser = bodies[1]
			}
			if !strings.Contains(loser, wfErrReassign) {
				t.Errorf("refusal %s; want the reassign rule", loser)
			}
			got := w.detail(id)
			if got.Issue.AssigneeID == nil || *got.Issue.AssigneeID != w.id[winner] || got.Issue.Status != "in_progress" {
				t.Errorf("issue %d: %+v; want in progress with %s", id, got.Issue, winner)
			}
			n := 0
			for _, a := range got.Activity {
				if a.Action == "assigned" {
					n++
				}
			}
			if n != 1 {
				t.Errorf("issue %d logged %d assignments; want 1", id, n)
			}
		}
	})
}

// wfSender is a Sender that records what it is handed, and marks it sent after commit
// as a connector's outbox would.
type wfSender struct {
	mu   sync.Mutex
	got  []issues.Outbound // guarded by mu
	fail bool              // guarded by mu: refuse, as for an opted-out number
}

func (f *wfSender) Send(ctx context.Context, tx *store.Tx, r *issues.Outbound) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return httpx.Errorf(http.StatusConflict, "the customer opted out of texts")
	}
	f.got = append(f.got, *r)
	_, err := tx.ExecContext(ctx, `UPDATE comments SET delivery_status = 'sent', external_id = $1 WHERE id = $2`,
		fmt.Sprintf("SMout%d", r.CommentID), r.CommentID)
	return err
}

func (f *wfSender) sent() []issues.Outbound {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]issues.Outbound(nil), f.got...)
}

func (f *wfSender) setFail(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = v
}

// TestRepliesAndNotes: a reply is stored, shown in the feed of the channel the customer
// last wrote on and handed to that channel's Sender; without a Sender it stays queued; a
// note is never handed to any Sender and never reaches a channel's feed; its mentions
// are resolved, stored and sent with its event.
func TestRepliesAndNotes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		w := wfStart(t, d.Dialect())
		ctx := context.Background()
		team, err := w.s.Accounts.CreateTeam(ctx, "Support", "support")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.s.Accounts.AddTeamMember(ctx, team.ID, w.id["bob"]); err != nil {
			t.Fatal(err)
		}
		// A second number; the customer texts the first, then the second.
		const number2 = "+15550002222"
		ch2, err := w.s.Channels.Ensure(ctx, channels.SMS, "SMS 2", number2)
		if err != nil {
			t.Fatal(err)
		}
		const phone = "+15557770001"
		w.postSMS(smsForm("SMr1", phone, "my parcel is lost"), "good").Body.Close()
		f2 := smsForm("SMr2", phone, "hello? texting the other number")
		f2.Set("To", number2)
		if resp := w.postSMS(f2, "good"); resp.StatusCode != 200 {
			t.Fatalf("second number: %d %s", resp.StatusCode, body(resp))
		}
		ids := w.listIDs(w.alice, "?q="+url.QueryEscape(phone))
		if len(ids) != 1 {
			t.Fatalf("issues of the customer: %v; want one", ids)
		}
		id := ids[0]
		fake := &wfSender{}
		w.s.Issues.SetSender(channels.SMS, fake)

		ws, in := dialWS(t, w.env, w.carol, "")
		next(t, in, "hello")
		wfSubscribe(t, ws, in, fmt.Sprintf("issue:%d", id))

		// A note from bob, with mentions known and unknown.
		const noteText = "@alice can you look? cc @Support, @nobody and mail bob@example.com"
		var noteAns wfAnswer
		w.must(w.bob, "POST", fmt.Sprintf("/api/issues/%d/notes", id), map[string]string{"body": noteText}, 200, &noteAns)
		note := noteAns.Comment
		if note == nil || note.Kind != "note" || note.Body != noteText || note.DeliveryStatus != nil || note.ChannelID != nil {
			t.Fatalf("note answer %+v; want a note with no channel and no delivery", note)
		}
		if noteAns.Issue.AssigneeID != nil {
			t.Errorf("a note assigned the issue: %+v", noteAns.Issue)
		}
		ev := wfNext(t, in, "comment.created", func(m map[string]any) bool {
			return wfData(m)["comment"].(map[string]any)["kind"] == "note"
		})
		if ev["topic"] != fmt.Sprintf("issue:%d", id) {
			t.Errorf("note event on %v; want the issue topic", ev["topic"])
		}
		var evMentions []wfMention
		b, _ := json.Marshal(wfData(ev)["mentions"])
		_ = json.Unmarshal(b, &evMentions)
		if len(evMentions) != 2 || evMentions[0].Handle != "alice" || evMentions[0].UserID == nil || *evMentions[0].UserID != w.id["alice"] ||
			evMentions[1].Handle != "support" || evMentions[1].TeamID == nil || *evMentions[1].TeamID != team.ID ||
			!eqIDs(evMentions[1].MemberIDs, []int64{w.id["bob"]}) {
			t.Errorf("note event mentions %s; want @alice (user) and @support (team with bob)", b)
		}

		// alice replies: the issue was unassigned, so she takes it.
		var replyAns wfAnswer
		w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/replies", id), map[string]string{"body": "  Found it, it ships today.\n"}, 200, &replyAns)
		reply := replyAns.Comment
		if reply == nil || reply.Kind != "reply" || reply.Body != "Found it, it ships today." || reply.DeliveryStatus == nil ||
			*reply.DeliveryStatus != "queued" || reply.ChannelID == nil || *reply.ChannelID != ch2.ID {
			t.Fatalf("reply answer %+v; want a queued reply on channel %d (the customer's last medium)", reply, ch2.ID)
		}
		if a := replyAns.Issue.AssigneeID; a == nil || *a != w.id["alice"] || replyAns.Issue.Status != "in_progress" || replyAns.Issue.FirstResponseAt == nil {
			t.Errorf("issue after reply %+v; want taken by alice, in progress, first response set", replyAns.Issue)
		}
		if n := len(fake.sent()); n != 1 {
			t.Fatalf("the sender got %d messages; want the reply", n)
		}
		out := fake.sent()[0]
		if out.CommentID != reply.ID || out.ChannelID != ch2.ID || out.ChannelKind != channels.SMS || out.From != number2 ||
			out.To != phone || out.Body != reply.Body || out.InReplyTo != "SMr2" || out.IssueID != id || out.AuthorID != w.id["alice"] {
			t.Errorf("handed %+v; want the reply to %s from %s, answering SMr2", out, phone, number2)
		}
		got := w.detail(id)
		last := got.Comments[len(got.Comments)-1]
		if last.ID != reply.ID || last.DeliveryStatus == nil || *last.DeliveryStatus != "sent" || last.ExternalID == nil || *last.ExternalID != fmt.Sprintf("SMout%d", reply.ID) {
			t.Errorf("stored reply %+v; want sent with the provider's id", last)
		}
		for _, c := range got.Comments {
			if c.ID == note.ID && (len(c.Mentions) != 2 || c.Mentions[0].Handle != "alice" || c.Mentions[1].Handle != "support") {
				t.Errorf("stored note mentions %+v; want alice and support", c.Mentions)
			}
		}
		acts := []string{}
		for _, a := range got.Activity {
			acts = append(acts, a.Action)
		}
		if want := "created,customer_message,note_added,assigned,replied"; strings.Join(acts, ",") != want {
			t.Errorf("activity %v; want %s", acts, want)
		}

		// The feed of the second number shows the reply as alice's message; no feed shows
		// the note.
		var page struct {
			Messages []struct {
				Body     string `json:"body"`
				AuthorID *int64 `json:"author_id"`
			} `json:"messages"`
		}
		w.getJSON(w.carol, fmt.Sprintf("/api/channels/%d/messages", ch2.ID), &page)
		if n := len(page.Messages); n == 0 || page.Messages[n-1].Body != reply.Body || page.Messages[n-1].AuthorID == nil || *page.Messages[n-1].AuthorID != w.id["alice"] {
			t.Errorf("feed of channel %d: %+v; want alice's reply last", ch2.ID, page.Messages)
		}
		for _, ch := range []int64{w.smsID, ch2.ID} {
			w.getJSON(w.carol, fmt.Sprintf("/api/channels/%d/messages", ch), &page)
			for _, m := range page.Messages {
				if strings.Contains(m.Body, "can you look") {
					t.Errorf("the note is in the feed of channel %d", ch)
				}
			}
		}

		// Replies written while no Sender is registered are stored and stay queued.
		w.s.Issues.SetSender(channels.SMS, nil)
		var later wfAnswer
		w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/replies", id), map[string]string{"body": "Tracking: 123"}, 200, &later)
		w.s.Issues.SetSender(channels.SMS, fake)
		w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/notes", id), map[string]string{"body": "second note, also private"}, 200, nil)
		got = w.detail(id)
		if c := got.Comments[len(got.Comments)-2]; c.ID != later.Comment.ID || c.DeliveryStatus == nil || *c.DeliveryStatus != "queued" {
			t.Errorf("reply without a sender: %+v; want queued", c)
		}
		if sent := fake.sent(); len(sent) != 1 {
			t.Errorf("the sender got %+v; want only the first reply (no notes)", sent)
		}

		// A Sender's refusal refuses the reply: nothing is stored, logged or shown.
		fake.setFail(true)
		before := w.detail(id)
		w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/replies", id), map[string]string{"body": "Are you there?"}, 409, nil)
		if after := w.detail(id); len(after.Comments) != len(before.Comments) || len(after.Activity) != len(before.Activity) {
			t.Errorf("a refused reply left a trace: %d→%d comments, %d→%d activity", len(before.Comments), len(after.Comments),
				len(before.Activity), len(after.Activity))
		}
		fake.setFail(false)
		for _, o := range fake.sent() {
			if strings.Contains(o.Body, "note") || strings.Contains(o.Body, "can you look") {
				t.Errorf("a note reached the sender: %+v", o)
			}
		}

		// Every channel-topic frame carol received: none carries a note.
		for {
			select {
			case m := <-in:
				if s, _ := m["topic"].(string); strings.HasPrefix(s, "channel:") {
					b, _ := json.Marshal(m)
					if strings.Contains(string(b), "can you look") || strings.Contains(string(b), "second note") {
						t.Errorf("a note reached a channel topic: %s", b)
					}
				}
				continue
			default:
			}
			break
		}

		// Bad bodies.
		w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/replies", id), map[string]string{"body": "  "}, 400, nil)
		w.must(w.bob, "POST", fmt.Sprintf("/api/issues/%d/notes", id), map[string]string{}, 400, nil)
		w.must(w.bob, "POST", fmt.Sprintf("/api/issues/%d/notes", id), map[string]string{"body": strings.Repeat("x", 20001)}, 400, nil)
	})
}

// TestCollisionGuard: a reply or status change that carries the last comment the agent
// saw is refused with 409 and what is new when the customer or a colleague wrote since.
func TestCollisionGuard(t *testing.T) {
	w := wfStart(t, store.SQLite)
	const phone = "+15557770002"
	w.postSMS(smsForm("SMc1", phone, "first question"), "good").Body.Close()
	id := w.listIDs(w.alice, "?q="+url.QueryEscape(phone))[0]
	w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/take", id), nil, 200, nil)
	c1 := w.detail(id).Comments[0].ID

	var r1 wfAnswer
	w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/replies", id), map[string]any{"body": "Looking", "last_seen_comment_id": c1}, 200, &r1)
	// Her own reply since c1 is no collision.
	w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/replies", id), map[string]any{"body": "Still looking", "last_seen_comment_id": c1}, 200, nil)

	w.postSMS(smsForm("SMc2", phone, "never mind, found it"), "good").Body.Close()
	before := len(w.detail(id).Activity)
	var conflict struct {
		Error       string      `json:"error"`
		NewComments []wfComment `json:"new_comments"`
	}
	w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/replies", id), map[string]any{"body": "Here is the answer", "last_seen_comment_id": r1.Comment.ID}, 409, &conflict)
	if conflict.Error == "" || len(conflict.NewComments) != 1 || conflict.NewComments[0].Body != "never mind, found it" {
		t.Errorf("409 %+v; want an error and the customer's new message", conflict)
	}
	c2 := conflict.NewComments[0].ID

	// A colleague's note counts too, for status changes.
	w.must(w.bob, "POST", fmt.Sprintf("/api/issues/%d/notes", id), map[string]string{"body": "customer is a VIP"}, 200, nil)
	w.must(w.alice, "PATCH", fmt.Sprintf("/api/issues/%d", id), map[string]any{"status": "resolved", "last_seen_comment_id": c2}, 409, &conflict)
	if len(conflict.NewComments) != 1 || conflict.NewComments[0].Kind != "note" {
		t.Errorf("409 %+v; want bob's note", conflict)
	}
	w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/resolve", id), map[string]any{"last_seen_comment_id": c2}, 409, nil)
	d := w.detail(id)
	if d.Issue.Status != "in_progress" || len(d.Activity) != before+1 { // +1: bob's note
		t.Errorf("after refusals: %s with %d activity entries; want in_progress and only the note logged", d.Issue.Status, len(d.Activity)-before)
	}
	noteID := d.Comments[len(d.Comments)-1].ID
	w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/resolve", id), map[string]any{"last_seen_comment_id": noteID}, 200, nil)
	// Without the field there is no guard.
	w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/reopen", id), nil, 200, nil)
	w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/resolve", id), map[string]any{"bogus": 1}, 400, nil)
}

// TestStatusesAndActivity: the status machine through the API, and the log it leaves.
func TestStatusesAndActivity(t *testing.T) {
	w := wfStart(t, store.SQLite)
	id := w.newIssue()
	p := fmt.Sprintf("/api/issues/%d", id)
	var a wfAnswer
	// An unassigned issue cannot be put in progress, even by an admin.
	w.must(w.root, "PATCH", p, map[string]string{"status": "in_progress"}, 409, nil)
	w.must(w.alice, "POST", p+"/take", nil, 200, &a)
	if a.Issue.Status != "in_progress" {
		t.Fatalf("taken: %s; want in_progress", a.Issue.Status)
	}
	w.must(w.alice, "PATCH", p, map[string]string{"priority": "high"}, 200, &a)
	if a.Issue.Priority != "high" {
		t.Errorf("priority %s; want high", a.Issue.Priority)
	}
	w.must(w.alice, "PATCH", p, map[string]string{"priority": "asap"}, 400, nil)
	w.must(w.alice, "PATCH", p, map[string]string{"status": "done"}, 400, nil)
	w.must(w.alice, "PATCH", p, map[string]string{}, 400, nil)
	w.must(w.alice, "PATCH", p, map[string]string{"priority": "high"}, 200, nil) // no change, not logged
	w.must(w.alice, "POST", p+"/resolve", nil, 200, &a)
	if a.Issue.Status != "resolved" || a.Issue.ResolvedBy == nil || *a.Issue.ResolvedBy != w.id["alice"] || a.Issue.ResolvedAt == nil {
		t.Errorf("resolved: %+v", a.Issue)
	}
	w.must(w.alice, "POST", p+"/resolve", nil, 409, nil)
	w.must(w.alice, "POST", p+"/snooze", map[string]string{"until": time.Now().Add(time.Hour).Format(time.RFC3339)}, 409, nil)
	w.must(w.alice, "POST", p+"/close", nil, 200, &a)
	if a.Issue.Status != "closed" || a.Issue.ClosedAt == nil {
		t.Errorf("closed: %+v", a.Issue)
	}
	w.must(w.alice, "POST", p+"/close", nil, 409, nil)
	w.must(w.alice, "PATCH", p, map[string]string{"status": "resolved"}, 409, nil)
	w.must(w.alice, "POST", p+"/reopen", nil, 200, &a)
	if a.Issue.Status != "in_progress" || a.Issue.ClosedAt != nil || a.Issue.ResolvedBy != nil {
		t.Errorf("reopened: %+v; want in progress, not resolved or closed", a.Issue)
	}
	w.must(w.alice, "POST", p+"/reopen", nil, 409, nil)
	w.must(w.alice, "POST", p+"/assign", map[string]any{"assignee_id": nil}, 200, &a)
	if a.Issue.AssigneeID != nil || a.Issue.Status != "open" {
		t.Errorf("unassigned: %+v; want open with nobody", a.Issue)
	}
	w.must(w.alice, "POST", p+"/assign", map[string]any{"assignee_id": 0}, 400, nil)
	w.must(w.alice, "POST", p+"/assign", map[string]any{}, 400, nil)
	w.must(w.alice, "POST", p+"/assign", map[string]any{"assignee_id": 99999}, 400, nil)
	w.must(w.alice, "POST", "/api/issues/99999/take", nil, 404, nil)

	d := w.detail(id)
	var got []string
	for _, e := range d.Activity {
		got = append(got, e.Action)
		if e.Action != "created" && (e.ActorID == nil || *e.ActorID != w.id["alice"]) {
			t.Errorf("%s logged with actor %v; want alice", e.Action, e.ActorID)
		}
		if e.CreatedAt.IsZero() || e.Details == nil {
			t.Errorf("%s logged without time or details: %+v", e.Action, e)
		}
	}
	if want := "created,assigned,priority_changed,resolved,closed,reopened,unassigned"; strings.Join(got, ",") != want {
		t.Errorf("activity %v; want %s", got, want)
	}
	if pc := d.Activity[2].Details; pc["priority"] != "high" || pc["previous_priority"] != "normal" {
		t.Errorf("priority_changed details %v", pc)
	}
}

// TestSnoozeListsAndUnsnooze: snoozed issues leave the lists until Unsnooze (the timer)
// wakes them with issue.unsnoozed; the list filters and paging.
func TestSnoozeListsAndUnsnooze(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		w := wfStart(t, d.Dialect())
		ctx := context.Background()
		a, b, c := w.newIssue(), w.newIssue(), w.newIssue()
		w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/take", a), nil, 200, nil)
		w.must(w.alice, "PATCH", fmt.Sprintf("/api/issues/%d", a), map[string]string{"priority": "high"}, 200, nil)
		w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/take", c), nil, 200, nil)

		// Snooze: validation, then out of the lists.
		sp := fmt.Sprintf("/api/issues/%d/snooze", c)
		w.must(w.alice, "POST", sp, map[string]string{"until": "tomorrow"}, 400, nil)
		w.must(w.alice, "POST", sp, map[string]string{"until": time.Now().Add(-time.Minute).Format(time.RFC3339)}, 400, nil)
		until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
		var ans wfAnswer
		w.must(w.alice, "POST", sp, map[string]string{"until": until.Format(time.RFC3339)}, 200, &ans)
		if ans.Issue.SnoozedUntil == nil || !ans.Issue.SnoozedUntil.Equal(until) {
			t.Fatalf("snoozed_until %v; want %v", ans.Issue.SnoozedUntil, until)
		}
		for _, tc := range []struct {
			query string
			want  []int64
		}{
			{"", []int64{b, a}},
			{"?snoozed=1", []int64{c, b, a}},
			{"?snoozed=only", []int64{c}},
			{"?assignee=me", []int64{a}},
			{"?assignee=me&snoozed=1", []int64{c, a}},
			{"?assignee=none", []int64{b}},
			{fmt.Sprintf("?assignee=%d", w.id["alice"]), []int64{a}},
			{"?priority=high", []int64{a}},
			{"?priority=low,normal", []int64{b}},
			{"?status=open", []int64{b}},
			{"?status=in_progress&snoozed=1", []int64{c, a}},
			{fmt.Sprintf("?channel=%d", w.smsID), []int64{b, a}},
			{"?q=" + url.QueryEscape("+15557000002"), []int64{b}},
			{"?limit=1&snoozed=1", []int64{c}},
			{fmt.Sprintf("?limit=1&snoozed=1&before=%d", c), []int64{b}},
		} {
			if got := w.listIDs(w.alice, tc.query); !eqIDs(got, tc.want) {
				t.Errorf("GET /api/issues%s = %v; want %v", tc.query, got, tc.want)
			}
		}
		var page struct {
			HasMore    bool  `json:"has_more"`
			NextBefore int64 `json:"next_before"`
		}
		w.getJSON(w.alice, "/api/issues?limit=1", &page)
		if !page.HasMore || page.NextBefore != b {
			t.Errorf("first page %+v; want more before %d", page, b)
		}
		for _, q := range []string{"?priority=asap", "?snoozed=maybe"} {
			w.must(w.alice, "GET", "/api/issues"+q, nil, 400, nil)
		}

		// The timer: nothing is due yet; an hour later c wakes, once, with an event.
		if n, err := w.s.Issues.Unsnooze(ctx, time.Now()); err != nil || n != 0 {
			t.Fatalf("Unsnooze now = %d, %v; want 0", n, err)
		}
		_, in := dialWS(t, w.env, w.alice, "")
		next(t, in, "hello")
		if n, err := w.s.Issues.Unsnooze(ctx, until.Add(time.Minute)); err != nil || n != 1 {
			t.Fatalf("Unsnooze later = %d, %v; want 1", n, err)
		}
		if n, _ := w.s.Issues.Unsnooze(ctx, until.Add(time.Minute)); n != 0 {
			t.Errorf("second Unsnooze woke %d; want 0", n)
		}
		ev := wfNext(t, in, "issue.unsnoozed", nil)
		if ev["topic"] != fmt.Sprintf("channel:%d", w.smsID) || wfData(ev)["assignee_id"] != float64(w.id["alice"]) ||
			wfData(ev)["issue"].(map[string]any)["id"] != float64(c) || wfData(ev)["issue"].(map[string]any)["snoozed_until"] != nil {
			t.Errorf("event %v; want issue.unsnoozed of %d for alice on the channel topic", ev, c)
		}
		if got := w.listIDs(w.alice, ""); !eqIDs(got, []int64{c, b, a}) {
			t.Errorf("after waking: %v; want c back", got)
		}
		dc := w.detail(c)
		if last := dc.Activity[len(dc.Activity)-1]; last.Action != "unsnoozed" || last.ActorID != nil {
			t.Errorf("last activity %+v; want unsnoozed by the system", last)
		}

		// Snoozing again and ending it by hand.
		w.must(w.alice, "POST", sp, map[string]string{"until": until.Format(time.RFC3339)}, 200, nil)
		w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/unsnooze", c), nil, 200, &ans)
		if ans.Issue.SnoozedUntil != nil {
			t.Errorf("after unsnooze: %v", ans.Issue.SnoozedUntil)
		}
		// Resolving a snoozed issue ends its snooze.
		w.must(w.alice, "POST", sp, map[string]string{"until": until.Format(time.RFC3339)}, 200, nil)
		w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/resolve", c), nil, 200, &ans)
		if ans.Issue.SnoozedUntil != nil {
			t.Errorf("resolved but still snoozed until %v", ans.Issue.SnoozedUntil)
		}
	})
}

// TestLiveIssueEvents: a feed sees issue.updated with the full issue for every action;
// an issue view sees comment.created for notes and replies.
func TestLiveIssueEvents(t *testing.T) {
	w := wfStart(t, store.SQLite)
	id := w.newIssue()
	_, feed := dialWS(t, w.env, w.bob, "")
	next(t, feed, "hello")
	w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/take", id), nil, 200, nil)
	ev := wfNext(t, feed, "issue.updated", nil)
	issue := wfData(ev)["issue"].(map[string]any)
	if ev["topic"] != fmt.Sprintf("channel:%d", w.smsID) || issue["assignee_id"] != float64(w.id["alice"]) ||
		issue["assignee_name"] != "Alice" || issue["status"] != "in_progress" || wfData(ev)["action"] != "assigned" {
		t.Errorf("feed event %v; want the issue taken by Alice", ev)
	}
	for _, step := range []struct {
		method, path string
		body         any
		action       string
	}{
		{"PATCH", "", map[string]string{"priority": "urgent"}, "priority_changed"},
		{"POST", "/contacted", nil, "contacted"},
		{"POST", "/resolve", nil, "resolved"},
		{"POST", "/reopen", nil, "reopened"},
		{"POST", "/close", nil, "closed"},
	} {
		w.must(w.alice, step.method, fmt.Sprintf("/api/issues/%d%s", id, step.path), step.body, 200, nil)
		ev := wfNext(t, feed, "issue.updated", nil)
		if wfData(ev)["action"] != step.action || wfData(ev)["actor_id"] != float64(w.id["alice"]) {
			t.Errorf("after %s %s: event %v; want action %s by alice", step.method, step.path, wfData(ev), step.action)
		}
	}
}

// TestContacted: marking the customer contacted freezes the first-response time once.
func TestContacted(t *testing.T) {
	w := wfStart(t, store.SQLite)
	id := w.newIssue()
	var first, second wfAnswer
	w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/contacted", id), nil, 200, &first)
	if first.Issue.FirstResponseAt == nil || first.Issue.AssigneeID == nil || *first.Issue.AssigneeID != w.id["alice"] {
		t.Fatalf("after contacted: %+v; want first response set and alice assigned", first.Issue)
	}
	w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/contacted", id), nil, 200, &second)
	w.must(w.alice, "POST", fmt.Sprintf("/api/issues/%d/replies", id), map[string]string{"body": "as discussed"}, 200, &second)
	if !second.Issue.FirstResponseAt.Equal(*first.Issue.FirstResponseAt) {
		t.Errorf("first response moved from %v to %v", first.Issue.FirstResponseAt, second.Issue.FirstResponseAt)
	}
	d := w.detail(id)
	var got []string
	for _, a := range d.Activity {
		got = append(got, a.Action)
	}
	if want := "created,assigned,contacted,contacted,replied"; strings.Join(got, ",") != want {
		t.Errorf("activity %v; want %s", got, want)
	}
	if d.Activity[2].Details["first_response"] != true || d.Activity[3].Details["first_response"] != false {
		t.Errorf("contacted details %v, %v", d.Activity[2].Details, d.Activity[3].Details)
	}
}

// TestViewing: who views or types on an issue is pushed to its viewers, at most once per
// user and issue every 2 s.
func TestViewing(t *testing.T) {
	w := wfStart(t, store.SQLite)
	id := w.newIssue()
	ws, in := dialWS(t, w.env, w.bob, "")
	next(t, in, "hello")
	wfSubscribe(t, ws, in, fmt.Sprintf("issue:%d", id))
	p := fmt.Sprintf("/api/issues/%d/viewing", id)
	w.must(w.alice, "POST", p, map[string]bool{"typing": true}, 200, nil)
	ev := wfNext(t, in, "issue.viewing", nil)
	if d := wfData(ev); d["user_id"] != float64(w.id["alice"]) || d["typing"] != true || d["name"] != "Alice" {
		t.Errorf("viewing event %v; want alice typing", d)
	}
	w.must(w.alice, "POST", p, map[string]bool{"typing": false}, 204, nil) // too soon: dropped
	w.must(w.carol, "POST", p, nil, 200, nil)
	ev = wfNext(t, in, "issue.viewing", nil)
	if d := wfData(ev); d["user_id"] != float64(w.id["carol"]) || d["typing"] != false {
		t.Errorf("next viewing event %v; want carol viewing (alice's second was dropped)", d)
	}
	w.must(w.alice, "POST", "/api/issues/99999/viewing", nil, 404, nil)
}

// TestFollowCustomer: follow and unfollow a customer.
func TestFollowCustomer(t *testing.T) {
	w := wfStart(t, store.SQLite)
	ctx := context.Background()
	id := w.newIssue()
	cust := w.detail(id).Issue.CustomerID
	_, in := dialWS(t, w.env, w.alice, "")
	next(t, in, "hello")
	p := fmt.Sprintf("/api/customers/%d/follow", cust)
	var ans struct {
		Customer  struct{ ID int64 } `json:"customer"`
		Following bool               `json:"following"`
	}
	w.must(w.alice, "POST", p, nil, 200, &ans)
	w.must(w.alice, "POST", p, nil, 200, &ans) // twice is harmless
	if ans.Customer.ID != cust || !ans.Following {
		t.Errorf("follow answer %+v", ans)
	}
	if ev := wfNext(t, in, "customer.followed", nil); wfData(ev)["customer_id"] != float64(cust) || wfData(ev)["following"] != true {
		t.Errorf("event %v", ev)
	}
	if ids, err := w.s.Issues.Followers(ctx, w.s.DB, cust); err != nil || !eqIDs(ids, []int64{w.id["alice"]}) {
		t.Errorf("followers %v, %v; want alice", ids, err)
	}
	w.must(w.alice, "DELETE", p, nil, 200, &ans)
	if ans.Following {
		t.Errorf("unfollow answer %+v", ans)
	}
	if ids, _ := w.s.Issues.Followers(ctx, w.s.DB, cust); len(ids) != 0 {
		t.Errorf("followers after unfollow: %v", ids)
	}
	w.must(w.alice, "POST", "/api/customers/99999/follow", nil, 404, nil)
}
