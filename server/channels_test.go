package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket/wsjson"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/store"
)

type channelView struct {
	ID     int64  `json:"id"`
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	PeerID int64  `json:"peer_id"`
	Unread int64  `json:"unread"`
	Addr   string `json:"address"`
}

// decode reads a JSON answer with the wanted status.
func decode(t *testing.T, resp *http.Response, status int, v any) {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: %d %s; want %d", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, body(resp), status)
	}
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) channelsOf(c *http.Client) map[int64]channelView {
	e.t.Helper()
	var out struct {
		Channels []channelView `json:"channels"`
	}
	e.getJSON(c, "/api/channels", &out)
	m := map[int64]channelView{}
	for _, ch := range out.Channels {
		m[ch.ID] = ch
	}
	return m
}

// status posts and returns only the status code, with the error text for messages.
func (e *env) status(c *http.Client, method, path string, v any) (int, string) {
	e.t.Helper()
	resp := e.do(c, method, path, v)
	return resp.StatusCode, body(resp)
}

func TestDirectMessages(t *testing.T) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			e := start(t, d)
			alice := e.agent("alice", accounts.RoleAgent)
			bob := e.agent("bob", accounts.RoleAgent)
			carol := e.agent("carol", accounts.RoleAgent)
			aliceID, bobID := e.userID("alice"), e.userID("bob")
			bobWS, bobIn := dialWS(t, e, bob, "")
			next(t, bobIn, "hello")

			var opened struct {
				Channel channelView `json:"channel"`
			}
			decode(t, e.do(alice, "POST", "/api/direct", map[string]any{"user_id": bobID}), 200, &opened)
			dm := opened.Channel
			if dm.Kind != "direct" || dm.Name != "Bob" || dm.PeerID != bobID || dm.Addr != "" {
				t.Fatalf("alice's view of the DM = %+v; want kind direct, named Bob, peer %d, no address", dm, bobID)
			}
			// Bob's sidebar learns about it live, named after Alice.
			added := next(t, bobIn, "channel.added")
			ch := added["data"].(map[string]any)["channel"].(map[string]any)
			if int64(ch["id"].(float64)) != dm.ID || ch["name"] != "Alice" || int64(ch["peer_id"].(float64)) != aliceID {
				t.Fatalf("bob's channel.added = %v", ch)
			}
			// Opening it again, from either side, finds the same channel.
			var again struct {
				Channel channelView `json:"channel"`
			}
			decode(t, e.do(bob, "POST", "/api/direct", map[string]any{"user_id": aliceID}), 200, &again)
			if again.Channel.ID != dm.ID || again.Channel.Name != "Alice" {
				t.Fatalf("bob opening the DM = %+v; want channel %d named Alice", again.Channel, dm.ID)
			}

			// Bob follows the new feed on his open connection and sees Alice's message.
			if err := wsjson.Write(context.Background(), bobWS, map[string]any{"type": "subscribe", "topic": fmt.Sprintf("channel:%d", dm.ID)}); err != nil {
				t.Fatal(err)
			}
			next(t, bobIn, "subscribed")
			if code, msg := e.status(alice, "POST", fmt.Sprintf("/api/channels/%d/messages", dm.ID), map[string]string{"body": "<b>psst</b>"}); code != 201 {
				t.Fatalf("post DM: %d %s", code, msg)
			}
			got := next(t, bobIn, "message.created")
			if body := got["data"].(map[string]any)["message"].(map[string]any)["body"]; body != "<b>psst</b>" {
				t.Errorf("bob got body %q", body)
			}
			if v := e.channelsOf(bob)[dm.ID]; v.Unread != 1 || v.Name != "Alice" {
				t.Errorf("bob's sidebar entry = %+v; want unread 1, named Alice", v)
			}
			// Carol is not in it: it does not exist for her.
			if _, ok := e.channelsOf(carol)[dm.ID]; ok {
				t.Error("carol lists alice and bob's DM")
			}
			if code, _ := e.status(carol, "GET", fmt.Sprintf("/api/channels/%d/messages", dm.ID), nil); code != 404 {
				t.Errorf("carol reading the DM: %d; want 404", code)
			}

			for _, tc := range []struct {
				body any
				want string
			}{
				{map[string]any{"user_id": aliceID}, "direct message needs another person"},
				{map[string]any{"user_id": 99999}, "no such user"},
				{map[string]any{}, "user_id must be"},
			} {
				code, msg := e.status(alice, "POST", "/api/direct", tc.body)
				if code != 400 || !strings.Contains(msg, tc.want) {
					t.Errorf("POST /api/direct %v: %d %s; want 400 mentioning %q", tc.body, code, msg, tc.want)
				}
			}
		})
	}
}

func TestOpeningADirectMessageConcurrentlyMakesOne(t *testing.T) {
	e := start(t, store.Postgres)
	alice := e.agent("alice", accounts.RoleAgent)
	bob := e.agent("bob", accounts.RoleAgent)
	aliceID, bobID := e.userID("alice"), e.userID("bob")
	var wg sync.WaitGroup
	ids := make([]int64, 12)
	for i := range ids {
		wg.Go(func() {
			c, other := alice, bobID
			if i%2 == 1 {
				c, other = bob, aliceID
			}
			var out struct {
				Channel channelView `json:"channel"`
			}
			resp := e.do(c, "POST", "/api/direct", map[string]any{"user_id": other})
			if resp.StatusCode != 200 {
				t.Errorf("open %d: %d %s", i, resp.StatusCode, body(resp))
				return
			}
			json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			ids[i] = out.Channel.ID
		})
	}
	wg.Wait()
	for i, id := range ids {
		if id != ids[0] || id == 0 {
			t.Fatalf("open %d got channel %d; open 0 got %d", i, id, ids[0])
		}
	}
}

func TestTeamChannelMembership(t *testing.T) {
	e := start(t, store.SQLite)
	admin := e.agent("root", accounts.RoleAdmin)
	alice := e.agent("alice", accounts.RoleAgent)
	bob := e.agent("bob", accounts.RoleAgent)
	carol := e.agent("carol", accounts.RoleAgent)
	bobID, carolID := e.userID("bob"), e.userID("carol")
	_, carolIn := dialWS(t, e, carol, "")
	next(t, carolIn, "hello")
	_, bobIn := dialWS(t, e, bob, "")
	next(t, bobIn, "hello")

	var created struct {
		Channel channelView `json:"channel"`
	}
	decode(t, e.do(alice, "POST", "/api/channels", map[string]any{"name": "  Escalations <b> ", "member_ids": []int64{bobID}}), 201, &created)
	team := created.Channel
	if team.Kind != "team" || team.Name != "Escalations <b>" {
		t.Fatalf("created %+v", team)
	}
	if added := next(t, bobIn, "channel.added"); added["data"].(map[string]any)["channel"].(map[string]any)["name"] != "Escalations <b>" {
		t.Errorf("bob's channel.added = %v", added)
	}
	path := fmt.Sprintf("/api/channels/%d/members", team.ID)
	if code, _ := e.status(carol, "GET", fmt.Sprintf("/api/channels/%d/messages", team.ID), nil); code != 404 {
		t.Errorf("carol reading a team channel she is not in: %d; want 404", code)
	}
	if code, _ := e.status(carol, "PUT", fmt.Sprintf("%s/%d", path, carolID), nil); code != 404 {
		t.Errorf("carol adding herself: %d; want 404 (not a member)", code)
	}
	// A member adds Carol; she hears about it live.
	if code, msg := e.status(bob, "PUT", fmt.Sprintf("%s/%d", path, carolID), nil); code != 204 {
		t.Fatalf("bob adds carol: %d %s", code, msg)
	}
	next(t, carolIn, "channel.added")
	var members struct {
		AllAgents bool    `json:"all_agents"`
		MemberIDs []int64 `json:"member_ids"`
	}
	e.getJSON(carol, path, &members)
	if members.AllAgents || len(members.MemberIDs) != 3 {
		t.Errorf("members = %+v; want alice, bob, carol", members)
	}
	// Only admins remove others; anyone may leave.
	if code, msg := e.status(carol, "DELETE", fmt.Sprintf("%s/%d", path, bobID), nil); code != 403 || !strings.Contains(msg, "only admins") {
		t.Errorf("carol removes bob: %d %s; want 403 naming the rule", code, msg)
	}
	if code, msg := e.status(bob, "DELETE", fmt.Sprintf("%s/%d", path, bobID), nil); code != 204 {
		t.Errorf("bob leaves: %d %s", code, msg)
	}
	if removed := next(t, bobIn, "channel.removed"); int64(removed["data"].(map[string]any)["channel_id"].(float64)) != team.ID {
		t.Errorf("bob's channel.removed = %v", removed)
	}
	if _, ok := e.channelsOf(bob)[team.ID]; ok {
		t.Error("bob still lists the channel he left")
	}
	if code, msg := e.status(admin, "DELETE", fmt.Sprintf("%s/%d", path, carolID), nil); code != 204 {
		t.Errorf("admin removes carol: %d %s", code, msg)
	}
	next(t, carolIn, "channel.removed")

	// SMS channels include every agent; their membership is not edited here.
	for id, ch := range e.channelsOf(alice) {
		if ch.Kind == "sms" {
			if code, msg := e.status(admin, "PUT", fmt.Sprintf("/api/channels/%d/members/%d", id, carolID), nil); code != 403 || !strings.Contains(msg, "only team channels") {
				t.Errorf("adding to an SMS channel: %d %s; want 403", code, msg)
			}
		}
	}
	for _, tc := range []struct {
		body any
		want string
	}{
		{map[string]any{"name": " "}, "name must not be empty"},
		{map[string]any{"name": "a\x07b"}, "control characters"},
		{map[string]any{"name": strings.Repeat("x", 81)}, "longer than 80 bytes"},
		{map[string]any{"name": "ok", "member_ids": []int64{424242}}, "no such user"},
		{map[string]any{"name": "ok", "member_ids": []int64{-1}}, "member_ids must be user ids"},
	} {
		code, msg := e.status(alice, "POST", "/api/channels", tc.body)
		if code != 400 || !strings.Contains(msg, tc.want) {
			t.Errorf("POST /api/channels %v: %d %s; want 400 mentioning %q", tc.body, code, msg, tc.want)
		}
	}
}

func TestMarkReadWithoutBodyReadsTheWholeFeed(t *testing.T) {
	e := start(t, store.SQLite)
	alice := e.agent("alice", accounts.RoleAgent)
	for i, text := range []string{"one", "two"} {
		if resp := e.postSMS(smsForm(fmt.Sprintf("SMread%030d", i), "+15551230101", text), "good"); resp.StatusCode != 200 {
			t.Fatalf("webhook: %d %s", resp.StatusCode, body(resp))
		}
	}
	sms := e.smsChannel()
	if v := e.channelsOf(alice)[sms]; v.Unread != 2 {
		t.Fatalf("unread before = %d; want 2", v.Unread)
	}
	var st struct {
		LastRead int64 `json:"last_read"`
		Unread   int64 `json:"unread"`
	}
	decode(t, e.do(alice, "POST", fmt.Sprintf("/api/channels/%d/read", sms), nil), 200, &st)
	if st.LastRead != 2 || st.Unread != 0 {
		t.Errorf("read with no body = %+v; want last_read 2, unread 0", st)
	}
	if code, msg := e.status(alice, "POST", fmt.Sprintf("/api/channels/%d/read", sms), map[string]any{"number": -1}); code != 400 {
		t.Errorf("negative number: %d %s; want 400", code, msg)
	}
}

// An admin narrows the SMS channel to some agents and widens it again: those who lose it
// hear channel.removed and their open connections resume without it; those who gain it
// hear channel.added; new customer messages reach only the members.
func TestNarrowingAndWideningAnSMSChannel(t *testing.T) {
	e := start(t, store.SQLite)
	admin := e.agent("root", accounts.RoleAdmin)
	alice := e.agent("alice", accounts.RoleAgent)
	bob := e.agent("bob", accounts.RoleAgent)
	aliceID, adminID := e.userID("alice"), e.userID("root")
	sms := e.smsChannel()
	path := fmt.Sprintf("/api/channels/%d/access", sms)
	_, bobIn := dialWS(t, e, bob, "")
	bobCursor := next(t, bobIn, "hello")["cursor"].(string)

	if code, msg := e.status(alice, "PUT", path, map[string]any{"all_agents": false, "member_ids": []int64{aliceID}}); code != 403 || !strings.Contains(msg, "only admins") {
		t.Errorf("agent narrowing: %d %s; want 403 naming the rule", code, msg)
	}
	for _, tc := range []struct {
		body any
		want string
	}{
		{map[string]any{"member_ids": []int64{aliceID}}, "all_agents must be"},
		{map[string]any{"all_agents": true, "member_ids": []int64{aliceID}}, "member_ids goes with all_agents false"},
		{map[string]any{"all_agents": false, "member_ids": []int64{987654}}, "no such user"},
	} {
		if code, msg := e.status(admin, "PUT", path, tc.body); code != 400 || !strings.Contains(msg, tc.want) {
			t.Errorf("PUT access %v: %d %s; want 400 mentioning %q", tc.body, code, msg, tc.want)
		}
	}
	var a struct {
		AllAgents bool    `json:"all_agents"`
		MemberIDs []int64 `json:"member_ids"`
	}
	decode(t, e.do(admin, "PUT", path, map[string]any{"all_agents": false, "member_ids": []int64{aliceID, adminID}}), 200, &a)
	if a.AllAgents || len(a.MemberIDs) != 2 {
		t.Fatalf("access = %+v; want alice and the admin", a)
	}
	// Bob's connection closes with 4001 (channel.removed may or may not get out first: the
	// close discards what is queued); resuming from its cursor replays channel.removed.
	if m := next(t, bobIn, "closed"); m["code"] != float64(hub.StatusRevoked) {
		t.Errorf("bob's connection: %v; want closed with %d", m, hub.StatusRevoked)
	}
	_, bobIn = dialWS(t, e, bob, "?cursor="+url.QueryEscape(bobCursor))
	if c, _ := hub.DecodeCursor(next(t, bobIn, "hello")["cursor"].(string)); hasTopic(c, hub.ChannelTopic(sms)) {
		t.Errorf("bob's resumed connection still follows the SMS channel: %v", c)
	}
	if m := next(t, bobIn, "channel.removed"); int64(m["data"].(map[string]any)["channel_id"].(float64)) != sms {
		t.Errorf("bob's channel.removed = %v", m)
	}
	if _, ok := e.channelsOf(bob)[sms]; ok {
		t.Error("bob still lists the narrowed SMS channel")
	}
	if _, ok := e.channelsOf(alice)[sms]; !ok {
		t.Error("alice lost the SMS channel she was kept in")
	}
	if code, _ := e.status(bob, "GET", fmt.Sprintf("/api/channels/%d/messages", sms), nil); code != 404 {
		t.Errorf("bob reading the narrowed feed: %d; want 404", code)
	}
	// Widening again brings bob back, live.
	decode(t, e.do(admin, "PUT", path, map[string]any{"all_agents": true}), 200, &a)
	added := next(t, bobIn, "channel.added")
	if ch := added["data"].(map[string]any)["channel"].(map[string]any); int64(ch["id"].(float64)) != sms || ch["all_agents"] != true {
		t.Errorf("bob's channel.added = %v", ch)
	}
	if _, ok := e.channelsOf(bob)[sms]; !ok {
		t.Error("bob does not list the widened SMS channel")
	}
	// Team channels have members, not access.
	var team struct {
		Channel channelView `json:"channel"`
	}
	decode(t, e.do(admin, "POST", "/api/channels", map[string]any{"name": "Ops"}), 201, &team)
	if code, msg := e.status(admin, "PUT", fmt.Sprintf("/api/channels/%d/access", team.Channel.ID), map[string]any{"all_agents": true}); code != 403 {
		t.Errorf("access on a team channel: %d %s; want 403", code, msg)
	}
}
