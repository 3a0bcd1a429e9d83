package hub_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/redistest"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

// node is one hub with its own Redis bus, serving WebSockets, on a shared database.
type node struct {
	*rig
	bus *hub.RedisBus
}

func newNode(t *testing.T, db *store.DB, redisURL, prefix string, cfg hub.Config) *node {
	t.Helper()
	bus, err := hub.NewRedisBus(redisURL, prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Bus = bus
	n := &node{rig: newRig(t, db, cfg), bus: bus}
	t.Cleanup(func() { bus.Close() })
	return n
}

func TestRedisBusCarriesEventsBetweenNodes(t *testing.T) {
	db := storetest.Open(t, store.Postgres)
	url, prefix := redistest.URL(t), redistest.Prefix(t)
	// B never sweeps within the test: what reaches its client came over Redis.
	a := newNode(t, db, url, prefix, hub.Config{})
	b := newNode(t, db, url, prefix, hub.Config{SweepInterval: time.Hour, GapWait: time.Hour})
	c := b.dial("topics=channel:1")
	c.next()
	waitForSubscription(t, url, prefix+"channel:1")
	for n := 1; n <= 3; n++ {
		a.emit(hub.ChannelTopic(1), n) // appended and published by node A
	}
	for n := 1; n <= 3; n++ {
		if m := c.next(); nOf(m) != n {
			t.Fatalf("node B's client got %v; want n=%d", m, n)
		}
	}
}

// waitForSubscription polls Redis until some node subscribes to channel.
func waitForSubscription(t *testing.T, url, channel string) {
	t.Helper()
	opts, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		chans, err := rdb.PubSubChannels(context.Background(), channel).Result()
		if err == nil && slices.Contains(chans, channel) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no subscription to %s", channel)
}

func TestRedisSubscriptionsFollowLocalClients(t *testing.T) {
	db := storetest.Open(t, store.Postgres)
	url, prefix := redistest.URL(t), redistest.Prefix(t)
	a := newNode(t, db, url, prefix, hub.Config{})
	opts, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	channels := func() []string {
		got, err := rdb.PubSubChannels(context.Background(), prefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		return got
	}
	waitFor := func(want []string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := channels()
			if slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("subscribed to %v; want %v", got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor([]string{prefix + "_control", prefix + "_presence"})
	c1 := a.dial("topics=channel:7")
	c1.next()
	c2 := a.dial("topics=channel:7,channel:8")
	c2.next()
	waitFor([]string{prefix + "_control", prefix + "_presence", prefix + "channel:7", prefix + "channel:8", prefix + "user:1"})
	c2.ws.CloseNow()
	waitFor([]string{prefix + "_control", prefix + "_presence", prefix + "channel:7", prefix + "user:1"})
	c1.ws.CloseNow()
	waitFor([]string{prefix + "_control", prefix + "_presence"})
}

// TestRedisRestartUnderTraffic kills Redis while events flow, publishes during the
// outage, then brings up an empty Redis. The nodes resubscribe by themselves and their
// clients receive every event once, in order.
func TestRedisRestartUnderTraffic(t *testing.T) {
	db := storetest.Open(t, store.Postgres)
	url, stop, restart := redistest.StartServer(t)
	prefix := redistest.Prefix(t)
	a := newNode(t, db, url, prefix, hub.Config{SweepInterval: 200 * time.Millisecond})
	b := newNode(t, db, url, prefix, hub.Config{SweepInterval: 200 * time.Millisecond})
	c := b.dial("topics=channel:1")
	c.next()
	waitForSubscription(t, url, prefix+"channel:1")
	const total = 60
	for n := 1; n <= total; n++ {
		switch n {
		case 20:
			stop() // publishes fail or vanish from here
		case 40:
			restart()
		}
		a.emit(hub.ChannelTopic(1), n)
	}
	for n := 1; n <= total; n++ {
		if m := c.next(); nOf(m) != n {
			t.Fatalf("got %v; want n=%d", m, n)
		}
	}
	c.expectNone()
	// And the live path works again: B is subscribed in the new Redis.
	waitForSubscription(t, url, prefix+"channel:1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.bus.Ping(ctx); err != nil {
		t.Fatalf("bus after restart: %v", err)
	}
}

func TestSessionsCloseOnEveryNode(t *testing.T) {
	db := storetest.Open(t, store.Postgres)
	url, prefix := redistest.URL(t), redistest.Prefix(t)
	a := newNode(t, db, url, prefix, hub.Config{})
	b := newNode(t, db, url, prefix, hub.Config{})
	c := b.dial("topics=channel:1")
	c.next()
	waitForSubscription(t, url, prefix+"_control")
	a.hub.CloseSessions([]int64{1}) // the rig's clients all have session 1
	m := c.next()
	if m["type"] != "closed" || !strings.Contains(m["err"].(string), "session ended") {
		t.Fatalf("got %v; want the connection on node B closed: session ended", m)
	}
}

func TestRevokeClosesFollowersOnEveryNode(t *testing.T) {
	db := storetest.Open(t, store.Postgres)
	url, prefix := redistest.URL(t), redistest.Prefix(t)
	a := newNode(t, db, url, prefix, hub.Config{})
	b := newNode(t, db, url, prefix, hub.Config{})
	follower := b.dial("topics=channel:1")
	follower.next()
	other := b.dial("topics=channel:2")
	other.next()
	waitForSubscription(t, url, prefix+"_control")
	a.hub.Revoke(1, hub.ChannelTopic(1)) // the rig's clients are all user 1
	m := follower.next()
	if m["type"] != "closed" || !strings.Contains(m["err"].(string), "no longer allowed to follow channel:1") {
		t.Fatalf("got %v; want the connection following channel:1 on node B closed", m)
	}
	// The connection that does not follow the topic stays.
	a.emit(hub.ChannelTopic(2), 1)
	if m := other.next(); nOf(m) != 1 {
		t.Fatalf("the other connection got %v; want its event", m)
	}
}
