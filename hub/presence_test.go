package hub_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/redistest"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

// clock is a fake time source that tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// presenceOf waits for a presence frame about user and returns its state.
func (c *client) presenceOf(user float64) string {
	c.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				c.t.Fatal("connection ended")
			}
			if m["type"] == "presence" && m["user_id"] == user {
				if m["cursor"] == nil || m["cursor"] == "" {
					c.t.Errorf("presence frame without a cursor: %v", m)
				}
				return m["state"].(string)
			}
		case <-timeout:
			c.t.Fatalf("no presence frame for user %v", user)
		}
	}
}

func TestPresenceOnlineIdleOffline(t *testing.T) {
	clk := &clock{now: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)}
	r := newRig(t, storetest.Open(t, store.SQLite), hub.Config{
		Now: clk.Now, IdleAfter: 5 * time.Minute, PresenceBeat: 20 * time.Millisecond,
	})
	watcher := r.dial("topics=channel:1&user=2")
	if st := watcher.presenceOf(2); st != "online" {
		t.Fatalf("own presence %s; want online", st)
	}
	agent := r.dial("topics=channel:1&user=1")
	if st := watcher.presenceOf(1); st != "online" {
		t.Fatalf("got %s; want online", st)
	}
	if in, _ := r.hub.LoggedIn(context.Background(), 1); !in {
		t.Error("LoggedIn(1) = false while connected and active")
	}
	// Nothing done for longer than IdleAfter: the heartbeat finds user 1 idle.
	clk.Add(6 * time.Minute)
	if st := watcher.presenceOf(1); st != "idle" {
		t.Fatalf("got %s; want idle", st)
	}
	if in, _ := r.hub.LoggedIn(context.Background(), 1); in {
		t.Error("LoggedIn(1) = true while idle; idle counts as logged out")
	}
	// Activity brings them back at once.
	if err := agent.ws.Write(context.Background(), websocket.MessageText, []byte(`{"type":"activity"}`)); err != nil {
		t.Fatal(err)
	}
	if st := watcher.presenceOf(1); st != "online" {
		t.Fatalf("got %s; want online after activity", st)
	}
	agent.ws.Close(websocket.StatusNormalClosure, "")
	if st := watcher.presenceOf(1); st != "offline" {
		t.Fatalf("got %s; want offline after the last connection closed", st)
	}
	if in, _ := r.hub.LoggedIn(context.Background(), 1); in {
		t.Error("LoggedIn(1) = true with no connection")
	}
}

func TestRedisPresenceAcrossNodes(t *testing.T) {
	db := storetest.Open(t, store.Postgres)
	url, prefix := redistest.URL(t), redistest.Prefix(t)
	newPresenceNode := func() *node {
		bus, err := hub.NewRedisBus(url, prefix, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := &node{rig: newRig(t, db, hub.Config{Bus: bus, Presence: bus.Presence(), PresenceBeat: 50 * time.Millisecond}), bus: bus}
		t.Cleanup(func() { bus.Close() })
		return n
	}
	a, b := newPresenceNode(), newPresenceNode()
	waitForSubscription(t, url, prefix+"_presence")
	watcher := b.dial("topics=channel:1&user=2")
	agent := a.dial("topics=channel:1&user=1")
	if st := watcher.presenceOf(1); st != "online" {
		t.Fatalf("node B's client: got %s; want online", st)
	}
	if in, err := b.hub.LoggedIn(context.Background(), 1); err != nil || !in {
		t.Errorf("node B: LoggedIn(1) = %v, %v; want true (connected on node A)", in, err)
	}
	agent.ws.Close(websocket.StatusNormalClosure, "")
	if st := watcher.presenceOf(1); st != "offline" {
		t.Fatalf("got %s; want offline", st)
	}
}

// TestRedisPresenceEntriesExpire shows that a node that stops renewing (it died) stops
// counting: its users go offline after their entries' expiry without anyone calling Leave.
func TestRedisPresenceEntriesExpire(t *testing.T) {
	bus, err := hub.NewRedisBus(redistest.URL(t), redistest.Prefix(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	p := bus.Presence()
	ctx := context.Background()
	now := time.Now()
	if err := p.Touch(ctx, "node-a", map[int64]time.Time{7: now}, now.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := p.Touch(ctx, "node-b", map[int64]time.Time{8: now.Add(-time.Hour)}, now.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		at   time.Time
		user int64
		want hub.PresenceState
	}{
		{now, 7, hub.Online},
		{now, 8, hub.Idle},
		{now.Add(31 * time.Second), 7, hub.Offline},
	}
	for _, tt := range tests {
		states, err := p.States(ctx, tt.at, 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		got := states[tt.user]
		if got == "" {
			got = hub.Offline
		}
		if got != tt.want {
			t.Errorf("user %d at %v: got %s; want %s", tt.user, tt.at.Sub(now), got, tt.want)
		}
	}
	if err := p.Leave(ctx, "node-a", 7); err != nil {
		t.Fatal(err)
	}
	if states, _ := p.States(ctx, now, 10*time.Minute); states[7] != "" {
		t.Errorf("after Leave: %s; want offline", states[7])
	}
}
