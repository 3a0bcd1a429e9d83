package hub_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

// rig is a hub on a real database behind a real HTTP server.
type rig struct {
	t   *testing.T
	db  *store.DB
	log *hub.Log
	hub *hub.Hub
	srv *httptest.Server
}

func newRig(t *testing.T, db *store.DB, cfg hub.Config) *rig {
	t.Helper()
	r := &rig{t: t, db: db, log: hub.NewLog(db, nil)}
	cfg.Log = r.log
	r.hub = hub.New(cfg)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var topics []hub.Topic
		for _, s := range strings.Split(req.URL.Query().Get("topics"), ",") {
			if s != "" {
				topics = append(topics, hub.Topic(s))
			}
		}
		user := int64(1)
		if u := req.URL.Query().Get("user"); u != "" {
			user, _ = strconv.ParseInt(u, 10, 64)
		}
		r.hub.Serve(w, req, hub.Client{UserID: user, SessionID: user, Topics: topics,
			Authorize: func(_ context.Context, t hub.Topic) error {
				if t == "issue:666" {
					return errors.New("you may not see issue 666")
				}
				return nil
			}})
	}))
	t.Cleanup(func() {
		r.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.hub.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return r
}

// emit appends one event in its own transaction, published after commit.
func (r *rig) emit(topic hub.Topic, n int) {
	r.t.Helper()
	err := r.db.InTx(context.Background(), func(tx *store.Tx) error {
		_, err := r.log.Append(context.Background(), tx, topic, "test.event", map[string]int{"n": n})
		return err
	})
	if err != nil {
		r.t.Fatal(err)
	}
}

type client struct {
	t  *testing.T
	ws *websocket.Conn
	in chan map[string]any
}

func (r *rig) dial(query string) *client {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(r.srv.URL, "http")+"/?"+query, nil)
	if err != nil {
		r.t.Fatalf("dial: %v", err)
	}
	ws.SetReadLimit(1 << 24)
	c := &client{t: r.t, ws: ws, in: make(chan map[string]any, 10000)}
	go func() {
		defer close(c.in)
		for {
			_, data, err := ws.Read(context.Background())
			if err != nil {
				c.in <- map[string]any{"type": "closed", "code": float64(websocket.CloseStatus(err)), "err": err.Error()}
				return
			}
			for _, line := range bytes.Split(data, []byte("\n")) {
				var m map[string]any
				if err := json.Unmarshal(line, &m); err != nil {
					c.in <- map[string]any{"type": "bad", "raw": string(line)}
					continue
				}
				c.in <- m
			}
		}
	}()
	r.t.Cleanup(func() { ws.CloseNow() })
	return c
}

// next returns the next frame that is not about presence (tests of presence read c.in).
func (c *client) next() map[string]any {
	c.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-c.in:
			if !ok {
				c.t.Fatal("connection ended")
			}
			if m["type"] == "presence" {
				continue
			}
			return m
		case <-timeout:
			c.t.Fatal("timed out waiting for a frame")
		}
	}
}

func (c *client) expectNone() {
	c.t.Helper()
	timeout := time.After(100 * time.Millisecond)
	for {
		select {
		case m := <-c.in:
			if m["type"] != "presence" {
				c.t.Fatalf("unexpected frame %v", m)
			}
		case <-timeout:
			return
		}
	}
}

func nOf(m map[string]any) int {
	d, _ := m["data"].(map[string]any)
	n, _ := d["n"].(float64)
	return int(n)
}

func TestHelloThenLiveEventsWithCursors(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db, hub.Config{})
		c := r.dial("topics=channel:1")
		hello := c.next()
		if hello["type"] != "hello" || hello["cursor"] == "" {
			t.Fatalf("first frame %v; want hello with a cursor", hello)
		}
		r.emit(hub.ChannelTopic(1), 1)
		r.emit(hub.ChannelTopic(2), 99) // not followed
		r.emit(hub.ChannelTopic(1), 2)
		for want := 1; want <= 2; want++ {
			m := c.next()
			if m["type"] != "test.event" || nOf(m) != want || m["topic"] != "channel:1" || m["cursor"] == "" {
				t.Fatalf("got %v; want test.event n=%d with a cursor", m, want)
			}
		}
		c.expectNone()
	})
}

func TestResumeReplaysExactlyWhatWasMissed(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db, hub.Config{})
		topics := "topics=channel:1,channel:2"
		c := r.dial(topics)
		c.next() // hello
		r.emit(hub.ChannelTopic(1), 1)
		r.emit(hub.ChannelTopic(2), 2)
		var last string
		for range 2 {
			last = c.next()["cursor"].(string)
		}
		c.ws.Close(websocket.StatusNormalClosure, "")
		for n := 3; n <= 6; n++ {
			r.emit(hub.ChannelTopic(int64(n%2+1)), n)
		}
		c2 := r.dial(topics + "&cursor=" + last)
		if m := c2.next(); m["type"] != "hello" || m["cursor"] != last {
			t.Fatalf("got %v; want hello at the resumed cursor", m)
		}
		for n := 3; n <= 6; n++ {
			if m := c2.next(); nOf(m) != n {
				t.Fatalf("replay: got %v; want n=%d", m, n)
			}
		}
		r.emit(hub.ChannelTopic(1), 7)
		if m := c2.next(); nOf(m) != 7 {
			t.Fatalf("live after replay: got %v; want n=7", m)
		}
		c2.expectNone()
	})
}

func TestResyncWhenCursorIsTooOld(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db, hub.Config{})
		c := r.dial("topics=channel:1")
		cursor := c.next()["cursor"].(string)
		c.ws.Close(websocket.StatusNormalClosure, "")
		for n := range 5 {
			r.emit(hub.ChannelTopic(1), n)
		}
		if _, err := r.log.Prune(context.Background(), time.Now().Add(time.Hour), 2); err != nil {
			t.Fatal(err)
		}
		c2 := r.dial("topics=channel:1&cursor=" + cursor)
		if m := c2.next(); m["type"] != "hello" {
			t.Fatalf("got %v; want hello", m)
		}
		if m := c2.next(); m["type"] != "resync" {
			t.Fatalf("got %v; want resync", m)
		}
		r.emit(hub.ChannelTopic(1), 42)
		if m := c2.next(); nOf(m) != 42 {
			t.Fatalf("live after resync: got %v", m)
		}
	})
}

func TestMalformedCursorIsRefused(t *testing.T) {
	r := newRig(t, storetest.Open(t, store.SQLite), hub.Config{})
	resp, err := http.Get(r.srv.URL + "/?cursor=%21%21")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("got %d; want 400", resp.StatusCode)
	}
}

func TestSlowConsumerIsDisconnectedAndResumesWithoutLoss(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	r := newRig(t, db, hub.Config{QueueBytes: 64 << 10})
	ctx := context.Background()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(r.srv.URL, "http")+"/?topics=channel:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 24)
	_, hello, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	json.Unmarshal(bytes.SplitN(hello, []byte("\n"), 2)[0], &h) // a message may carry several objects
	if h["type"] != "hello" {
		t.Fatalf("first object %v; want hello", h)
	}
	// The client now reads nothing while 16 MB is published: more than the kernel's
	// socket buffers hold, so the server's writer blocks and the queue must overflow.
	// The memory bus publishes synchronously, so when InTx returns, the burst has been
	// offered to the connection.
	const events = 2000
	big := strings.Repeat("x", 8<<10)
	err = db.InTx(ctx, func(tx *store.Tx) error {
		for n := range events {
			if _, err := r.log.Append(ctx, tx, hub.ChannelTopic(1), "test.event", map[string]any{"n": n, "pad": big}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Drain: what was already in flight arrives, then the close with its reason.
	var closeErr error
	for closeErr == nil {
		_, _, closeErr = ws.Read(ctx)
	}
	if websocket.CloseStatus(closeErr) != websocket.StatusPolicyViolation || !strings.Contains(closeErr.Error(), "slow consumer") {
		t.Fatalf("got %v; want a policy-violation close saying slow consumer", closeErr)
	}
	// Resuming from the hello cursor delivers every event, in order, once.
	c := r.dial("topics=channel:1&cursor=" + h["cursor"].(string))
	c.next()
	for n := range events {
		if m := c.next(); nOf(m) != n {
			t.Fatalf("got %v; want n=%d", m, n)
		}
	}
	c.expectNone()
}

func TestOutOfOrderPublishIsReorderedFromTheDatabase(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		// A bus that drops the first event: the hub must notice the gap when the second
		// arrives and read the first from the database, delivering both in order.
		bus := &droppingBus{MemoryBus: hub.NewMemoryBus(), drop: 1}
		r := newRig(t, db, hub.Config{Bus: bus, GapWait: 10 * time.Millisecond})
		c := r.dial("topics=channel:1")
		c.next()
		r.emit(hub.ChannelTopic(1), 1)
		r.emit(hub.ChannelTopic(1), 2)
		for want := 1; want <= 2; want++ {
			if m := c.next(); nOf(m) != want {
				t.Fatalf("got %v; want n=%d", m, want)
			}
		}
	})
}

type droppingBus struct {
	*hub.MemoryBus
	drop int
}

func (b *droppingBus) Publish(ctx context.Context, topic hub.Topic, payload []byte) error {
	if b.drop > 0 {
		b.drop--
		return nil
	}
	return b.MemoryBus.Publish(ctx, topic, payload)
}

func TestShutdownSaysGoingAwayAndCloseSessionsSaysWhy(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	r := newRig(t, db, hub.Config{})
	a := r.dial("topics=channel:1")
	a.next()
	r.hub.CloseSessions([]int64{1})
	m := a.next()
	if m["type"] != "closed" || m["code"] != float64(websocket.StatusPolicyViolation) || !strings.Contains(fmt.Sprint(m["err"]), "session ended") {
		t.Fatalf("got %v; want close 1008 session ended", m)
	}
	b := r.dial("topics=channel:1")
	b.next()
	if err := r.hub.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m := b.next(); m["type"] != "closed" || m["code"] != float64(websocket.StatusGoingAway) {
		t.Fatalf("got %v; want close 1001", m)
	}
}

func TestBadClientFramesGetAnErrorNotADisconnect(t *testing.T) {
	r := newRig(t, storetest.Open(t, store.SQLite), hub.Config{})
	c := r.dial("topics=channel:1")
	c.next()
	ctx := context.Background()
	for _, frame := range []string{"not json", `{"no":"type"}`, `{"type":"nope"}`} {
		if err := c.ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			t.Fatal(err)
		}
		if m := c.next(); m["type"] != "error" {
			t.Fatalf("%q: got %v; want an error frame", frame, m)
		}
	}
	c.ws.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`))
	if m := c.next(); m["type"] != "pong" {
		t.Fatalf("got %v; want pong", m)
	}
}

func TestSubscribeToAnIssueTopic(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		r := newRig(t, db, hub.Config{})
		r.emit(hub.IssueTopic(5), 1) // before the subscription: not delivered
		c := r.dial("topics=channel:1")
		hello := c.next()
		ctx := context.Background()
		send := func(s string) {
			if err := c.ws.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
				t.Fatal(err)
			}
		}
		send(`{"type":"subscribe","topic":"issue:5"}`)
		m := c.next()
		if m["type"] != "subscribed" || m["topic"] != "issue:5" {
			t.Fatalf("got %v; want subscribed to issue:5", m)
		}
		cur, err := hub.DecodeCursor(m["cursor"].(string))
		if err != nil || cur[hub.IssueTopic(5)] != 1 || len(cur) != 3 {
			t.Fatalf("cursor %v (%v); want channel:1, user:1 and issue:5 at 1", cur, err)
		}
		r.emit(hub.IssueTopic(5), 2)
		if m := c.next(); nOf(m) != 2 || m["topic"] != "issue:5" {
			t.Fatalf("got %v; want the issue event n=2", m)
		}
		send(`{"type":"subscribe","topic":"issue:666"}`)
		if m := c.next(); m["type"] != "error" || !strings.Contains(m["error"].(string), "may not see") {
			t.Fatalf("got %v; want the refusal", m)
		}
		send(`{"type":"subscribe"}`)
		if m := c.next(); m["type"] != "error" {
			t.Fatalf("got %v; want an error for a missing topic", m)
		}
		send(`{"type":"unsubscribe","topic":"issue:5"}`)
		if m := c.next(); m["type"] != "unsubscribed" {
			t.Fatalf("got %v; want unsubscribed", m)
		}
		r.emit(hub.IssueTopic(5), 3)
		r.emit(hub.ChannelTopic(1), 4)
		if m := c.next(); nOf(m) != 4 {
			t.Fatalf("got %v; want only the channel event after unsubscribing", m)
		}
		_ = hello
	})
}

func TestOversizedClientFrameClosesWithMessageTooBig(t *testing.T) {
	r := newRig(t, storetest.Open(t, store.SQLite), hub.Config{ReadLimit: 1024})
	c := r.dial("topics=channel:1")
	c.next()
	c.ws.Write(context.Background(), websocket.MessageText, []byte(`{"type":"ping","pad":"`+strings.Repeat("x", 2048)+`"}`))
	for {
		m := <-c.in
		if m["type"] == "closed" {
			if m["code"] != float64(websocket.StatusMessageTooBig) {
				t.Fatalf("got %v; want close 1009", m)
			}
			return
		}
	}
}

func TestPingsCloseADeadPeerAndSpareALiveOne(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := newRig(t, storetest.Open(t, store.SQLite), hub.Config{
		PingInterval: 20 * time.Millisecond, WriteTimeout: time.Second, Metrics: reg})
	live := r.dial("topics=channel:1&user=1") // reads all the time, so it answers pings
	live.next()

	// A peer that stops reading never answers a ping: the pong is read by the client's
	// reader like any frame.
	ctx := context.Background()
	dead, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(r.srv.URL, "http")+"/?topics=channel:1&user=2", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dead.CloseNow()
	if _, _, err := dead.Read(ctx); err != nil { // hello
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for disconnects(t, reg, "ping_timeout") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the peer that stopped reading was not closed for a ping timeout")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Reading again, the dead peer finds the close frame with its reason.
	for {
		if _, _, err = dead.Read(ctx); err != nil {
			break
		}
	}
	if websocket.CloseStatus(err) != websocket.StatusGoingAway || !strings.Contains(err.Error(), "ping timeout") {
		t.Fatalf("got %v; want close 1001 ping timeout", err)
	}
	// The live client was pinged every 20 ms all along and is still there.
	r.emit(hub.ChannelTopic(1), 1)
	if m := live.next(); nOf(m) != 1 {
		t.Fatalf("got %v; want the event n=1 on the live connection", m)
	}
	if n := disconnects(t, reg, "ping_timeout"); n != 1 {
		t.Fatalf("%v ping timeouts; want only the dead peer's", n)
	}
}

// disconnects reads switchboard_ws_disconnects_total for a reason.
func disconnects(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "switchboard_ws_disconnects_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestServeReturnsWhileTheConnectionLivesOn(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	log := hub.NewLog(db, nil)
	h := hub.New(hub.Config{Log: log})
	returned := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h.Serve(w, req, hub.Client{UserID: 1, SessionID: 1, Topics: []hub.Topic{hub.ChannelTopic(1)}})
		returned <- struct{}{}
	}))
	defer srv.Close()
	r := &rig{t: t, db: db, log: log, hub: h, srv: srv}
	c := r.dial("")
	if m := c.next(); m["type"] != "hello" {
		t.Fatalf("got %v; want hello", m)
	}
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after starting the connection")
	}
	r.emit(hub.ChannelTopic(1), 7)
	if m := c.next(); nOf(m) != 7 {
		t.Fatalf("got %v; want the event n=7 after the handler returned", m)
	}
	// The hub, not the handler, owns the connection: Shutdown closes it and waits for it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if m := c.next(); m["type"] != "closed" || m["code"] != float64(websocket.StatusGoingAway) {
		t.Fatalf("got %v; want close 1001", m)
	}
	if h.Connected(1) {
		t.Fatal("the connection is still registered after Shutdown returned")
	}
}

// TestFramesSentBeforeTheHandshakeAnswerAreRead: a client may send its first frame right
// behind the upgrade request, before it has read the 101; those bytes arrive with the
// request and must not be lost when the connection gets its own read buffer.
func TestFramesSentBeforeTheHandshakeAnswerAreRead(t *testing.T) {
	r := newRig(t, storetest.Open(t, store.SQLite), hub.Config{})
	nc, err := net.Dial("tcp", strings.TrimPrefix(r.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	payload := []byte(`{"type":"ping"}`)
	mask := [4]byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | byte(len(payload))} // final text frame, masked, short length
	frame = append(frame, mask[:]...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	req := "GET /?topics=channel:1 HTTP/1.1\r\nHost: " + strings.TrimPrefix(r.srv.URL, "http://") +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := nc.Write(append([]byte(req), frame...)); err != nil { // one write: one segment
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	// Server frames are unmasked text frames, each at most a few hundred bytes here.
	var got []string
	for !slices.Contains(got, "pong") {
		var hdr [2]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			t.Fatalf("reading frames: %v (got %v)", err, got)
		}
		n := int(hdr[1] & 0x7f)
		if n == 126 {
			var ext [2]byte
			io.ReadFull(br, ext[:])
			n = int(ext[0])<<8 | int(ext[1])
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatal(err)
		}
		if hdr[0]&0x0f != 1 { // not text: a ping or the like
			continue
		}
		for _, line := range bytes.Split(body, []byte("\n")) {
			var m map[string]any
			json.Unmarshal(line, &m)
			if typ, _ := m["type"].(string); typ != "presence" {
				got = append(got, typ)
			}
		}
	}
	if got[0] != "hello" {
		t.Fatalf("got %v; want hello, then the pong for the early ping", got)
	}
}
