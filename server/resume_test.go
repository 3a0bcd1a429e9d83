package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/store"
)

// A cursor taken while following an issue resumes that issue too: what happened on it
// while the client was away is replayed. A topic the user may no longer follow (a team
// channel they left) is dropped from the resumed connection instead.
func TestResumeCoversSubscribedTopicsTheUserMayStillFollow(t *testing.T) {
	e := start(t, store.SQLite)
	alice := e.agent("alice", accounts.RoleAgent)
	bob := e.agent("bob", accounts.RoleAgent)
	e.postSMS(smsForm("SMres1", "+15551230000", "first"), "good").Body.Close()
	var list issueList
	e.getJSON(alice, "/api/issues", &list)
	id := list.Issues[0].ID
	var team struct {
		Channel channelView `json:"channel"`
	}
	decode(t, e.do(bob, "POST", "/api/channels", map[string]any{"name": "Night shift", "member_ids": []int64{e.userID("alice")}}), 201, &team)

	ws, in := dialWS(t, e, alice, "")
	next(t, in, "hello")
	ctx := context.Background()
	ws.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"type":"subscribe","topic":"issue:%d"}`, id))
	sub := next(t, in, "subscribed")
	cursor := sub["cursor"].(string)
	c, err := hub.DecodeCursor(cursor)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c[hub.IssueTopic(id)]; !ok {
		t.Fatalf("subscribed cursor %v lacks the issue", c)
	}
	if _, ok := c[hub.ChannelTopic(team.Channel.ID)]; !ok {
		t.Fatalf("cursor %v lacks the team channel", c)
	}
	ws.CloseNow()

	// While alice is away: a note on the issue, and she leaves the team channel, in
	// which bob then writes.
	if code, msg := e.status(bob, "POST", fmt.Sprintf("/api/issues/%d/notes", id), map[string]string{"body": "written while alice was away"}); code != 200 {
		t.Fatalf("note: %d %s", code, msg)
	}
	if code, msg := e.status(alice, "DELETE", fmt.Sprintf("/api/channels/%d/members/%d", team.Channel.ID, e.userID("alice")), nil); code != 204 {
		t.Fatalf("leave: %d %s", code, msg)
	}
	if code, msg := e.status(bob, "POST", fmt.Sprintf("/api/channels/%d/messages", team.Channel.ID), map[string]string{"body": "after alice left"}); code != 201 {
		t.Fatalf("post: %d %s", code, msg)
	}
	// A marker on a topic alice follows either way, to know the replay is over.
	e.postSMS(smsForm("SMres2", "+15559870000", "marker"), "good").Body.Close()

	_, back := dialWS(t, e, alice, "?cursor="+url.QueryEscape(cursor))
	hello := next(t, back, "hello")
	hc, err := hub.DecodeCursor(hello["cursor"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := hc[hub.IssueTopic(id)]; !ok {
		t.Errorf("resumed hello cursor %v lacks the followed issue", hc)
	}
	if _, ok := hc[hub.ChannelTopic(team.Channel.ID)]; ok {
		t.Errorf("resumed hello cursor %v still holds the channel alice left", hc)
	}
	var sawNote, sawRemoved bool
	for {
		m := nextAny(t, back)
		if m["type"] == "comment.created" && strings.Contains(fmt.Sprint(m["data"]), "written while alice was away") {
			sawNote = true
		}
		if m["type"] == "channel.removed" {
			sawRemoved = true
		}
		if m["type"] == "message.created" && strings.Contains(fmt.Sprint(m["data"]), "after alice left") {
			t.Errorf("replayed a message of a channel alice left: %v", m)
		}
		if m["type"] == "message.created" && strings.Contains(fmt.Sprint(m["data"]), "marker") {
			break
		}
	}
	if !sawNote || !sawRemoved {
		t.Errorf("replay: note %v, channel.removed %v; want both", sawNote, sawRemoved)
	}
}

// nextAny returns the next object of any type, failing on a closed connection.
func nextAny(t *testing.T, in chan map[string]any) map[string]any {
	t.Helper()
	select {
	case m := <-in:
		if m["type"] == "closed" {
			t.Fatalf("connection closed: %v", m)
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the next object")
		return nil
	}
}

// The handshake's refusals are the API's {"error":…}, whoever decides them: the hub (a
// malformed cursor) or the WebSocket library (a foreign Origin, a plain GET).
func TestWebSocketRefusalsAreJSON(t *testing.T) {
	e := start(t, store.SQLite)
	alice := e.agent("alice", accounts.RoleAgent)
	u, _ := url.Parse(e.srv.URL)
	for _, tc := range []struct {
		name    string
		query   string
		headers map[string]string
		status  int
		want    string
	}{
		{"foreign origin", "", map[string]string{"Origin": "https://evil.example"}, 403, "not authorized"},
		{"not an upgrade", "", nil, 426, "Upgrade"},
		{"malformed cursor", "?cursor=%25%25", map[string]string{"Origin": e.srv.URL}, 400, "malformed cursor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+u.Host+"/ws"+tc.query, nil)
			if tc.name != "not an upgrade" {
				req.Header.Set("Connection", "Upgrade")
				req.Header.Set("Upgrade", "websocket")
				req.Header.Set("Sec-WebSocket-Version", "13")
				req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := alice.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				Error string `json:"error"`
			}
			ct := resp.Header.Get("Content-Type")
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if resp.StatusCode != tc.status || ct != "application/json" || err != nil || !strings.Contains(out.Error, tc.want) {
				t.Errorf("%d %s %q (%v); want %d application/json with an error mentioning %q", resp.StatusCode, ct, out.Error, err, tc.status, tc.want)
			}
		})
	}
}

// A member removed from a channel stops receiving its feed on a connection that is open:
// the connection is closed with 4001 and resumes without the channel.
func TestRemovedMemberLosesTheFeedOnOpenConnections(t *testing.T) {
	e := start(t, store.SQLite)
	admin := e.agent("root", accounts.RoleAdmin)
	alice := e.agent("alice", accounts.RoleAgent)
	bob := e.agent("bob", accounts.RoleAgent)
	var team struct {
		Channel channelView `json:"channel"`
	}
	decode(t, e.do(bob, "POST", "/api/channels", map[string]any{"name": "Ops", "member_ids": []int64{e.userID("alice")}}), 201, &team)
	topic := hub.ChannelTopic(team.Channel.ID)

	_, in := dialWS(t, e, alice, "")
	hello := next(t, in, "hello")
	if c, _ := hub.DecodeCursor(hello["cursor"].(string)); c == nil || !hasTopic(c, topic) {
		t.Fatalf("alice's connection does not follow %s: %v", topic, hello)
	}
	cursor := hello["cursor"].(string)
	if code, msg := e.status(admin, "DELETE", fmt.Sprintf("/api/channels/%d/members/%d", team.Channel.ID, e.userID("alice")), nil); code != 204 {
		t.Fatalf("remove alice: %d %s", code, msg)
	}
	closed := next(t, in, "closed")
	if closed["code"] != float64(hub.StatusRevoked) {
		t.Fatalf("alice's connection: %v; want closed with %d", closed, hub.StatusRevoked)
	}

	_, back := dialWS(t, e, alice, "?cursor="+url.QueryEscape(cursor))
	if c, _ := hub.DecodeCursor(next(t, back, "hello")["cursor"].(string)); hasTopic(c, topic) {
		t.Errorf("the resumed connection still follows %s", topic)
	}
	next(t, back, "channel.removed")
	if code, msg := e.status(bob, "POST", fmt.Sprintf("/api/channels/%d/messages", team.Channel.ID), map[string]string{"body": "secret plans"}); code != 201 {
		t.Fatalf("post: %d %s", code, msg)
	}
	e.postSMS(smsForm("SMrevoke1", "+15559870001", "marker"), "good").Body.Close()
	for {
		m := nextAny(t, back)
		if m["type"] == "message.created" && strings.Contains(fmt.Sprint(m["data"]), "secret plans") {
			t.Fatalf("alice still received the channel she was removed from: %v", m)
		}
		if m["type"] == "message.created" && strings.Contains(fmt.Sprint(m["data"]), "marker") {
			break
		}
	}
}

func hasTopic(c hub.Cursor, t hub.Topic) bool {
	_, ok := c[t]
	return ok
}
