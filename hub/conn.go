package hub

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

var errShuttingDown = errors.New("hub: shutting down")

// Client is who is connecting and what they may follow, as decided by the caller (which
// authenticated the request and knows the user's channels).
type Client struct {
	UserID    int64
	SessionID int64
	// Topics the user may see; their user topic is added if missing.
	Topics []Topic
	// Authorize decides whether the user may follow a topic they ask for later with
	// {"type":"subscribe","topic":…} (an issue they open, a channel they joined). Nil
	// refuses every such request.
	Authorize func(ctx context.Context, t Topic) error
}

// maxFollows bounds the topics one connection may add after it started.
const maxFollows = 64

// conn is one live WebSocket. An idle connection costs one goroutine, its reader; the
// writer runs only while there is something to write (or the socket to close), and pings
// come from a timer. A bounded queue in bytes sits between the fan-out and the writer.
type conn struct {
	h         *Hub
	ws        *websocket.Conn
	userID    int64
	sessionID int64
	topics    []Topic

	mu          sync.Mutex
	started     bool                 // guarded by mu: replay done; live frames go to queue
	writing     bool                 // guarded by mu: a writer goroutine runs
	lingering   bool                 // guarded by mu: the writer waits on wake for more work
	writers     int                  // guarded by mu: writer goroutines started (tests read it)
	wake        chan struct{}        // wakes a lingering writer (capacity 1)
	slots       []connTopic          // guarded by mu: the topics followed, by slot
	held        []item               // guarded by mu: live frames that arrived during replay
	queue       []item               // guarded by mu
	queued      int                  // guarded by mu: bytes in held and queue
	closeCode   websocket.StatusCode // guarded by mu: set once, by shut
	closeReason string               // guarded by mu
	closeLabel  string               // guarded by mu: metrics reason
	ping        *time.Timer          // guarded by mu: the next keepalive ping
	closed      chan struct{}        // closed once the writer has closed the socket

	authorize func(ctx context.Context, t Topic) error
	follows   int // owned by readLoop: topics added after start

	cursor *cursorWriter // owned by the writer (one at a time, ordered by mu)
}

// connTopic is a topic a connection follows, in its slot: a small number the topic has on
// this connection, which the topic's fan-out passes along with each frame, so that the
// per-event work on a connection (dedup here, the cursor in the writer) indexes slices
// instead of hashing the topic into per-connection maps.
type connTopic struct {
	topic   Topic
	seen    int64    // highest seq queued
	joining bool     // being followed: live frames wait until the start position is known
	waiting []*frame // live frames that arrived while joining
}

// item is a queued frame and the slot of its topic (-1 for frames of no topic).
type item struct {
	f    *frame
	slot int32
}

// enqueueLive takes a frame of the topic in slot from the topic's fan-out. It never
// blocks: a client whose queue is over budget is disconnected as slow, and resumes from
// its cursor without loss.
func (c *conn) enqueueLive(f *frame, slot int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enqueueLiveLocked(f, slot)
}

func (c *conn) enqueueLiveLocked(f *frame, slot int32) {
	if c.closeCode != 0 {
		return
	}
	if !c.started {
		c.held = append(c.held, item{f, slot})
		c.addLocked(f.size())
		return
	}
	st := &c.slots[slot]
	if st.joining {
		st.waiting = append(st.waiting, f)
		c.addLocked(f.size())
		return
	}
	if f.ev.Seq <= st.seen {
		return
	}
	st.seen = f.ev.Seq
	c.pushLocked(item{f, slot})
	c.addLocked(f.size())
}

// pushLocked queues f without charging the budget: replay and control frames are bounded
// by MaxReplay and by the client's own requests; only live traffic can grow without end.
func (c *conn) pushLocked(it item) {
	c.queue = append(c.queue, it)
	c.kickLocked()
}

// kickLocked starts the writer unless it runs: it writes what is queued, or closes the
// socket once shut, and ends when there is nothing left to do. Frames queued before start
// wait: hello goes first.
func (c *conn) kickLocked() {
	if c.writing {
		if c.lingering {
			select {
			case c.wake <- struct{}{}:
			default: // a wake-up is pending already
			}
		}
		return
	}
	if !c.started && c.closeCode == 0 {
		return
	}
	select {
	case <-c.closed:
		return
	default:
	}
	c.writing = true
	c.writers++
	go c.writeLoop()
}

func (c *conn) addLocked(n int) {
	c.queued += n
	if c.queued > c.h.cfg.QueueBytes && c.closeCode == 0 {
		c.h.m.slow.Inc()
		c.shutLocked(websocket.StatusPolicyViolation,
			fmt.Sprintf("slow consumer: more than %d bytes queued; reconnect with your cursor", c.h.cfg.QueueBytes), "slow")
	}
}

// send queues a control or presence frame for this connection only. Before start they
// wait with the held events: hello is always first.
func (c *conn) send(f *frame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closeCode != 0:
	case !c.started:
		c.held = append(c.held, item{f, -1})
	default:
		c.pushLocked(item{f, -1})
	}
}

// shut asks the writer to close the connection with code and reason. The first call wins.
func (c *conn) shut(code websocket.StatusCode, reason, label string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shutLocked(code, reason, label)
}

func (c *conn) shutLocked(code websocket.StatusCode, reason, label string) {
	if c.closeCode != 0 {
		return
	}
	c.closeCode, c.closeReason, c.closeLabel = code, reason, label
	c.queue, c.held = nil, nil
	if c.ping != nil {
		c.ping.Stop()
	}
	c.kickLocked()
}

// start ends the replay phase: hello, then any control frames, then the replayed events,
// then the live events held meanwhile that the replay did not already cover.
func (c *conn) start(initial Cursor, control []*frame, replay []*Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeCode != 0 {
		return
	}
	topics := make([]Topic, len(c.slots))
	for i := range c.slots {
		topics[i] = c.slots[i].topic
		c.slots[i].seen = initial[topics[i]]
	}
	c.cursor = newCursorWriter(initial, topics)
	c.pushLocked(item{controlFrame(map[string]any{"type": "hello", "cursor": initial.Encode(), "user_id": c.userID}), -1})
	for _, f := range control {
		c.pushLocked(item{f, -1})
	}
	slotOf := func(t Topic) int32 { return int32(slices.Index(topics, t)) }
	if len(replay) > 64 && len(topics) > 8 {
		index := make(map[Topic]int32, len(topics))
		for i, t := range topics {
			index[t] = int32(i)
		}
		slotOf = func(t Topic) int32 {
			if i, ok := index[t]; ok {
				return i
			}
			return -1
		}
	}
	for _, ev := range replay {
		slot := slotOf(ev.Topic)
		if slot >= 0 && ev.Seq > c.slots[slot].seen {
			c.slots[slot].seen = ev.Seq
			c.pushLocked(item{newEventFrame(ev), slot})
		}
	}
	held := c.held
	c.held = nil
	c.queued = 0
	c.started = true
	c.kickLocked()
	c.ping = time.AfterFunc(c.h.cfg.PingInterval, c.keepalive)
	for _, it := range held {
		if it.f.ev == nil {
			c.pushLocked(it)
		} else {
			c.enqueueLiveLocked(it.f, it.slot)
		}
	}
}

// maxWrite bounds one coalesced WebSocket message.
const maxWrite = 256 << 10

// writerLinger is how long a writer with nothing left to write waits for more before it
// ends. A connection receiving a steady stream keeps one writer, instead of starting a
// goroutine (and growing its stack) for every burst; an idle one still has none.
const writerLinger = 100 * time.Millisecond

// writeLoop owns every write to the socket while it runs (kickLocked starts at most one):
// it coalesces what is queued into one message of objects separated by "\n", each event
// with the connection's cursor as of that event, until the queue is empty and stays so
// for writerLinger. Once the connection is shut it closes the socket instead.
func (c *conn) writeLoop() {
	bp := writeBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= 4*maxWrite { // do not keep a burst's buffer in the pool
			*bp = buf[:0]
			writeBufs.Put(bp)
		}
	}()
	var linger *time.Timer
	defer func() {
		if linger != nil {
			linger.Stop()
		}
	}()
	lingered := false
	for {
		c.mu.Lock()
		batch, shut := c.queue, c.closeCode != 0
		c.queue = nil
		c.queued = 0
		if len(batch) == 0 && !shut {
			if lingered {
				c.writing = false
				c.mu.Unlock()
				return
			}
			c.lingering = true
			c.mu.Unlock()
			if linger == nil {
				linger = time.NewTimer(writerLinger)
			} else {
				linger.Reset(writerLinger)
			}
			select {
			case <-c.wake:
			case <-linger.C:
				lingered = true
			}
			c.mu.Lock()
			c.lingering = false
			c.mu.Unlock()
			continue
		}
		lingered = false
		c.mu.Unlock()
		if shut {
			c.closeSocket()
			return
		}
		for len(batch) > 0 {
			buf = buf[:0]
			n, objects := 0, 0
			for n < len(batch) && (objects == 0 || len(buf) < maxWrite) {
				it := batch[n]
				n++
				// A hole before this event (see missed) is read and written first.
				if ev := it.f.ev; ev != nil {
					if last, ok := c.cursor.seq(it.slot); ok && ev.Seq > last+1 {
						evs, err := c.missed(ev.Topic, last, ev.Seq-1)
						if err != nil {
							c.h.log.Warn("hub: reading missed events failed; client will resume", "user", c.userID, "err", err)
							c.shut(websocket.StatusTryAgainLater, "temporary failure; reconnect with your cursor", "catch_up_error")
							c.closeSocket()
							return
						}
						for _, m := range evs {
							if objects > 0 {
								buf = append(buf, '\n')
							}
							buf = c.appendFrame(buf, item{newEventFrame(m), it.slot})
							objects++
						}
					}
				}
				if objects > 0 {
					buf = append(buf, '\n')
				}
				buf = c.appendFrame(buf, it)
				objects++
			}
			batch = batch[n:]
			// A context of its own: a cancelled context kills a coder/websocket connection,
			// and shut must not cut a write in half; the loop stops after it.
			wctx, cancel := context.WithTimeout(context.Background(), c.h.cfg.WriteTimeout)
			err := c.ws.Write(wctx, websocket.MessageText, buf)
			cancel()
			if err != nil {
				c.shut(websocket.StatusGoingAway, "write failed", "write_error")
				c.closeSocket()
				return
			}
			c.h.m.writes.Inc()
			c.h.m.frames.Add(float64(objects))
		}
	}
}

// writeBufs holds the writers' buffers between bursts, so an idle connection keeps none.
var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// missed reads the events of topic in (after, upto] from the database. The node delivers
// each topic in order, but a connection that registered while the node was first learning
// a topic's position can start below it; the hole shows as a seq beyond cursor+1.
func (c *conn) missed(topic Topic, after, upto int64) ([]*Event, error) {
	ctx, cancel := context.WithTimeout(c.h.ctx, 10*time.Second)
	defer cancel()
	evs, err := c.h.cfg.Log.Range(ctx, topic, after, upto, int(upto-after))
	if err != nil {
		return nil, err
	}
	c.h.m.gapFills.Add(float64(len(evs)))
	return evs, nil
}

func (c *conn) appendFrame(buf []byte, it item) []byte {
	f := it.f
	if f.raw != nil {
		return append(buf, f.raw...)
	}
	if fc := f.follow; fc != nil {
		typ := `{"type":"subscribed","topic":"`
		switch {
		case fc.confirm:
		case fc.add:
			c.cursor.add(it.slot, fc.topic, fc.seq)
		default:
			typ = `{"type":"unsubscribed","topic":"`
			c.cursor.remove(it.slot)
		}
		buf = append(buf, typ...)
		buf = append(buf, fc.topic...)
		buf = append(buf, `","cursor":"`...)
		buf = c.cursor.appendTo(buf)
		return append(buf, `"}`...)
	}
	if m := f.presence; m != nil {
		buf = append(buf, `{"type":"presence","cursor":"`...)
		buf = c.cursor.appendTo(buf)
		buf = append(buf, `","user_id":`...)
		buf = strconv.AppendInt(buf, m.UserID, 10)
		buf = append(buf, `,"state":"`...)
		buf = append(buf, m.State...)
		return append(buf, `"}`...)
	}
	c.cursor.advance(it.slot, f.ev.Seq)
	buf = append(buf, f.head...)
	buf = c.cursor.appendTo(buf)
	return append(buf, f.tail...)
}

// closeSocket runs on the writer, after shut: it sends the close frame with the reason,
// frees the socket and lets the reader finish.
func (c *conn) closeSocket() {
	c.mu.Lock()
	code, reason, label := c.closeCode, c.closeReason, c.closeLabel
	c.mu.Unlock()
	if code == 0 {
		code, reason, label = websocket.StatusGoingAway, "closing", "closed"
	}
	c.h.m.disconnect.WithLabelValues(label).Inc()
	// Close waits for the peer's close frame up to 5 s; CloseNow after it frees the
	// socket either way.
	_ = c.ws.Close(code, reason)
	_ = c.ws.CloseNow()
	close(c.closed)
}

// keepalive pings the client: it keeps idle connections alive through proxies and
// notices dead peers. It runs on its own timer's goroutine, which exists only while a ping
// waits for its pong (the reader takes the pong), so an idle connection pays for no
// goroutine and no ticker; a data write in progress does not delay it, nor it the writes.
func (c *conn) keepalive() {
	ctx, cancel := context.WithTimeout(context.Background(), c.h.cfg.WriteTimeout)
	err := c.ws.Ping(ctx)
	timedOut := ctx.Err() != nil
	cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err != nil && timedOut:
		c.shutLocked(websocket.StatusGoingAway, "ping timeout", "ping_timeout")
		return
	case err != nil:
		c.shutLocked(websocket.StatusGoingAway, "ping failed", "write_error")
		return
	}
	if c.closeCode == 0 {
		c.ping.Reset(c.h.cfg.PingInterval)
	}
}

// clientMessage is what a browser may send.
type clientMessage struct {
	Type  string  `json:"type"`
	Topic *string `json:"topic"`
}

// readLoop handles client frames until the connection ends. Bad frames are answered with
// an error object; the connection stays up.
func (c *conn) readLoop() {
	for {
		// Not c.ctx: cancelling a Read closes the socket at once, before the writer
		// can send the close frame that tells the client why. Read ends when it closes.
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusMessageTooBig {
				c.shut(websocket.StatusMessageTooBig, "frame too large", "too_big")
			} else {
				c.shut(websocket.StatusNormalClosure, "", "client_closed")
			}
			return
		}
		if typ != websocket.MessageText {
			c.send(controlFrame(map[string]string{"type": "error", "error": "frames must be text holding a JSON object"}))
			continue
		}
		var m clientMessage
		if err := json.Unmarshal(data, &m); err != nil || m.Type == "" {
			c.send(controlFrame(map[string]string{"type": "error", "error": "frame is not a JSON object with a \"type\""}))
			continue
		}
		switch m.Type {
		case "ping":
			c.send(controlFrame(map[string]string{"type": "pong"}))
		case "activity":
			// The user did something (typed, clicked, focused the tab): not idle.
			c.h.presence.active(c.userID)
		case "subscribe", "unsubscribe":
			var t Topic
			if m.Topic != nil {
				t = Topic(*m.Topic)
			}
			if _, _, err := t.parse(); err != nil {
				c.send(controlFrame(map[string]string{"type": "error", "error": fmt.Sprintf("%s needs a topic such as \"issue:12\"", m.Type)}))
				continue
			}
			if m.Type == "subscribe" {
				c.follow(t)
			} else {
				c.unfollow(t)
			}
		default:
			c.send(controlFrame(map[string]string{"type": "error", "error": fmt.Sprintf("unknown message type %q", m.Type)}))
		}
	}
}

// follow adds a topic to a live connection, from its current head: the client loads the
// topic's state itself (it just opened the issue) and then gets every later event once.
// The topic joins the connection's cursor with a "subscribed" object. A topic followed
// this way is not resumed by a later connection; the client subscribes again.
func (c *conn) follow(t Topic) {
	refuse := func(msg string) {
		c.send(controlFrame(map[string]string{"type": "error", "topic": string(t), "error": msg}))
	}
	if slices.Contains(c.topics, t) {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i := range c.slots {
			if c.slots[i].topic == t {
				c.pushLocked(item{&frame{follow: &followChange{topic: t, confirm: true}}, int32(i)})
				return
			}
		}
		refuse("already subscribed to " + string(t))
		return
	}
	if c.follows >= maxFollows {
		refuse(fmt.Sprintf("at most %d subscriptions per connection; unsubscribe from one first", maxFollows))
		return
	}
	ctx, cancel := context.WithTimeout(c.h.ctx, 10*time.Second)
	defer cancel()
	if c.authorize == nil {
		refuse("not allowed to follow " + string(t))
		return
	}
	if err := c.authorize(ctx, t); err != nil {
		refuse(err.Error())
		return
	}
	c.mu.Lock()
	slot := c.freeSlotLocked()
	c.slots[slot] = connTopic{topic: t, joining: true}
	c.mu.Unlock()
	c.topics = append(c.topics, t)
	c.follows++
	c.h.attach(c, []topicSlot{{t, slot}}) // from here, live frames of t wait in the slot
	head, err := c.h.cfg.Log.Head(ctx, t)
	if err != nil {
		c.h.log.Warn("hub: subscribe failed", "topic", t, "err", err)
		c.unfollow(t)
		refuse("temporary failure; try again")
		return
	}
	c.h.prime(Cursor{t: head})
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &c.slots[slot]
	waiting := st.waiting
	st.joining, st.waiting, st.seen = false, nil, head
	c.pushLocked(item{&frame{follow: &followChange{topic: t, seq: head, add: true}}, slot})
	for _, f := range waiting {
		c.enqueueLiveLocked(f, slot)
	}
}

// freeSlotLocked returns a slot for a new topic: one a topic left, or a new one. Reusing a
// slot is safe: the topic that left was detached from the fan-out before its slot was
// freed, and the writer drops it from the cursor (the "unsubscribed" frame) before it
// sees the new topic's frames, which are queued after.
func (c *conn) freeSlotLocked() int32 {
	for i := range c.slots {
		if c.slots[i].topic == "" {
			return int32(i)
		}
	}
	c.slots = append(c.slots, connTopic{})
	return int32(len(c.slots) - 1)
}

// isFollowing reports whether the connection follows t. Any goroutine may ask: the slots
// are guarded by mu, unlike topics, which belong to the reader.
func (c *conn) isFollowing(t Topic) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.slots {
		if c.slots[i].topic == t {
			return true
		}
	}
	return false
}

// unfollow removes a topic added by follow.
func (c *conn) unfollow(t Topic) {
	i := slices.Index(c.topics, t)
	if i < 0 {
		c.send(controlFrame(map[string]string{"type": "error", "topic": string(t), "error": "not subscribed to " + string(t)}))
		return
	}
	c.topics = slices.Delete(c.topics, i, i+1)
	c.follows--
	c.h.detach(c, []Topic{t})
	c.mu.Lock()
	defer c.mu.Unlock()
	slot := int32(-1)
	for j := range c.slots {
		if c.slots[j].topic == t {
			slot = int32(j)
			c.slots[j] = connTopic{}
			break
		}
	}
	c.pushLocked(item{&frame{follow: &followChange{topic: t}}, slot})
}

// Serve upgrades the request to a WebSocket for cl, starts the connection and returns:
// the connection lives on in goroutines of the hub (Shutdown ends them), not in the
// handler's, so an idle connection does not keep the request, its context and the
// middleware's state, nor a goroutine whose stack sits under the whole middleware chain.
// The request and its context must not be used once Serve returns; cl.Authorize gets a
// context of its own. The query parameter "cursor" resumes from a position the client got
// earlier. Serve answers 400 for a malformed cursor and 503 while shutting down; other
// failures are logged.
func (h *Hub) Serve(w http.ResponseWriter, r *http.Request, cl Client) {
	var resumeFrom Cursor
	if s := r.URL.Query().Get("cursor"); s != "" {
		var err error
		if resumeFrom, err = DecodeCursor(s); err != nil {
			writeRefusal(w, http.StatusBadRequest, "malformed cursor; connect without one and reload")
			return
		}
	}
	topics := slices.Clone(cl.Topics)
	if !slices.Contains(topics, UserTopic(cl.UserID)) {
		topics = append(topics, UserTopic(cl.UserID))
	}
	extra := resumedFollows(r.Context(), topics, resumeFrom, cl.Authorize)
	topics = append(topics, extra...)
	ws, err := websocket.Accept(smallReads{&jsonRefusals{ResponseWriter: w}}, r, &websocket.AcceptOptions{OriginPatterns: h.cfg.OriginPatterns})
	if err != nil {
		h.log.Info("hub: websocket handshake refused", "err", err)
		return // Accept has answered the request
	}
	ws.SetReadLimit(h.cfg.ReadLimit)
	c := &conn{
		h: h, ws: ws, userID: cl.UserID, sessionID: cl.SessionID, topics: topics, authorize: cl.Authorize,
		closed: make(chan struct{}), wake: make(chan struct{}, 1), slots: make([]connTopic, len(topics)), follows: len(extra),
	}
	for i, t := range topics {
		c.slots[i].topic = t
	}
	if err := h.register(c); err != nil {
		ws.Close(websocket.StatusTryAgainLater, "server shutting down")
		return
	}
	h.presence.connected(c.userID)
	// h.ctx, not the request's: it ends when the handler returns.
	heads, initial, control, replay, err := h.resume(h.ctx, topics, resumeFrom)
	if err != nil {
		h.log.Error("hub: cannot start connection", "user", cl.UserID, "err", err)
		c.shut(websocket.StatusInternalError, "cannot read events; reconnect", "start_error")
	} else {
		h.prime(heads)
		c.start(initial, control, replay)
	}
	go c.run()
}

// resumedFollows returns the topics of a resume cursor that the connection's own topics
// lack but the user may still follow: an issue the client had subscribed to before it
// lost its connection. Resuming them replays what happened there meanwhile, so the
// cursor's promise (every event after it that the user may see) holds for them too. A
// topic the user may no longer follow (a channel they left) is dropped, as is any
// beyond the per-connection limit of follows.
func resumedFollows(ctx context.Context, own []Topic, from Cursor, authorize func(context.Context, Topic) error) []Topic {
	if len(from) == 0 || authorize == nil {
		return nil
	}
	var extra []Topic
	for _, t := range slices.Sorted(maps.Keys(from)) {
		if len(extra) == maxFollows {
			break
		}
		if slices.Contains(own, t) || authorize(ctx, t) != nil {
			continue
		}
		extra = append(extra, t)
	}
	return extra
}

// run is the connection's reader: it handles client frames until the socket ends, waits
// for the writer to have closed it, and takes the connection off the hub.
func (c *conn) run() {
	defer c.h.wg.Done()
	c.readLoop()
	<-c.closed
	c.h.unregister(c)
	c.h.presence.disconnected(c.userID)
}

// writeRefusal answers a refused handshake with {"error":…}, as the API answers errors.
func writeRefusal(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// jsonRefusals turns the handshake refusals coder/websocket writes itself (403 for a
// foreign Origin, 426 for a request that is not an upgrade, …) into the API's
// {"error":…} shape. The library writes them with http.Error: headers, the status, then
// the message in one Write. Leaving the checks to the library keeps one definition of
// what is refused.
type jsonRefusals struct {
	http.ResponseWriter
	refusing bool
}

func (j *jsonRefusals) Unwrap() http.ResponseWriter { return j.ResponseWriter }

func (j *jsonRefusals) WriteHeader(status int) {
	if status >= 400 {
		j.refusing = true
		j.Header().Set("Content-Type", "application/json")
		j.Header().Del("Content-Length")
	}
	j.ResponseWriter.WriteHeader(status)
}

func (j *jsonRefusals) Write(p []byte) (int, error) {
	if !j.refusing {
		return j.ResponseWriter.Write(p)
	}
	b, _ := json.Marshal(map[string]string{"error": strings.TrimSpace(string(p))})
	if _, err := j.ResponseWriter.Write(append(b, '\n')); err != nil {
		return 0, err
	}
	return len(p), nil
}

// readBufferSize is the read buffer of a connection: clients send small control objects
// (activity, subscribe, ping), so the 4 KiB that net/http hands over with a hijacked
// connection would mostly sit idle, once per connection. Larger frames are read straight
// into the message, past the buffer.
const readBufferSize = 512

// smallReads hands coder/websocket the hijacked connection with a smaller read buffer.
// The write buffer stays as net/http makes it (4 KiB): a typical event frame fits in it,
// so a message still leaves in one write(2).
type smallReads struct{ http.ResponseWriter }

func (s smallReads) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s smallReads) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	n := brw.Reader.Buffered()
	if n == 0 {
		return nc, bufio.NewReadWriter(bufio.NewReaderSize(nc, readBufferSize), brw.Writer), nil
	}
	// The client wrote before it saw the 101. coder/websocket keeps what the reader it
	// gets has buffered and then reads the connection itself, so those bytes must sit in
	// the new reader's buffer, not behind it.
	early, _ := brw.Reader.Peek(n)
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), nc), max(readBufferSize, n))
	if _, err := br.Peek(n); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, bufio.NewReadWriter(br, brw.Writer), nil
}

var resyncFrame = []byte(`{"type":"resync"}`)

// resume works out where a new connection starts. Without a cursor it starts at the
// topics' heads. With one it replays, per topic, the events after the cursor; when that
// is impossible (pruned, from another database, or too much) it starts at the heads and
// tells the client to resync. The connection is registered before this runs, so every
// event committed after the heads were read reaches it live.
func (h *Hub) resume(ctx context.Context, topics []Topic, from Cursor) (atHeads, initial Cursor, control []*frame, replay []*Event, err error) {
	heads, err := h.cfg.Log.heads(ctx, topics)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	atHeads = make(Cursor, len(topics))
	for _, t := range topics {
		atHeads[t] = heads[t].seq
	}
	if from == nil {
		return atHeads, atHeads, nil, nil, nil
	}
	resync := []*frame{{raw: resyncFrame}}
	initial = make(Cursor, len(topics))
	for _, t := range topics {
		hd := heads[t]
		seq, ok := from[t]
		if !ok {
			// A topic the client did not follow when it got the cursor (a channel it joined
			// since): it loads that channel's state when told of the membership.
			seq = hd.seq
		}
		if seq > hd.seq || seq < hd.pruned {
			return atHeads, atHeads, resync, nil, nil
		}
		initial[t] = seq
	}
	for _, t := range topics {
		if heads[t].seq <= initial[t] {
			continue
		}
		budget := h.cfg.MaxReplay - len(replay)
		if heads[t].seq-initial[t] > int64(budget) {
			return atHeads, atHeads, resync, nil, nil
		}
		evs, err := h.cfg.Log.Range(ctx, t, initial[t], heads[t].seq, budget)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		if int64(len(evs)) != heads[t].seq-initial[t] {
			// Pruned between reading the heads and the events.
			return atHeads, atHeads, resync, nil, nil
		}
		replay = append(replay, evs...)
	}
	// Within a topic, seq order; across topics, commit order is approximated by row id.
	slices.SortStableFunc(replay, func(a, b *Event) int {
		if a.Topic == b.Topic {
			return cmp.Compare(a.Seq, b.Seq)
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return atHeads, initial, nil, replay, nil
}
