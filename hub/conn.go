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
	"net"
	"net/http"
	"slices"
	"strconv"
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
	seen        map[Topic]int64      // guarded by mu: highest seq queued per topic
	held        []*frame             // guarded by mu: live frames that arrived during replay
	queue       []*frame             // guarded by mu
	queued      int                  // guarded by mu: bytes in held and queue
	closeCode   websocket.StatusCode // guarded by mu: set once, by shut
	closeReason string               // guarded by mu
	closeLabel  string               // guarded by mu: metrics reason
	ping        *time.Timer          // guarded by mu: the next keepalive ping
	closed      chan struct{}        // closed once the writer has closed the socket

	authorize func(ctx context.Context, t Topic) error
	follows   int                // owned by readLoop: topics added after start
	joining   map[Topic][]*frame // guarded by mu: live frames of topics being followed, until their start is known

	cursor *cursorWriter // owned by the writer (one at a time, ordered by mu)
}

// enqueueLive takes a frame from the topic fan-out. It never blocks: a client whose queue
// is over budget is disconnected as slow, and resumes from its cursor without loss.
func (c *conn) enqueueLive(f *frame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enqueueLiveLocked(f)
}

func (c *conn) enqueueLiveLocked(f *frame) {
	if c.closeCode != 0 {
		return
	}
	if !c.started {
		c.held = append(c.held, f)
		c.addLocked(f.size())
		return
	}
	if q, ok := c.joining[f.ev.Topic]; ok {
		c.joining[f.ev.Topic] = append(q, f)
		c.addLocked(f.size())
		return
	}
	if f.ev.Seq <= c.seen[f.ev.Topic] {
		return
	}
	c.seen[f.ev.Topic] = f.ev.Seq
	c.pushLocked(f)
	c.addLocked(f.size())
}

// pushLocked queues f without charging the budget: replay and control frames are bounded
// by MaxReplay and by the client's own requests; only live traffic can grow without end.
func (c *conn) pushLocked(f *frame) {
	c.queue = append(c.queue, f)
	c.kickLocked()
}

// kickLocked starts the writer unless it runs: it writes what is queued, or closes the
// socket once shut, and ends when there is nothing left to do. Frames queued before start
// wait: hello goes first.
func (c *conn) kickLocked() {
	if c.writing || (!c.started && c.closeCode == 0) {
		return
	}
	select {
	case <-c.closed:
		return
	default:
	}
	c.writing = true
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
		c.held = append(c.held, f)
	default:
		c.pushLocked(f)
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
	c.cursor = newCursorWriter(initial)
	c.seen = initial.Clone()
	c.pushLocked(controlFrame(map[string]any{"type": "hello", "cursor": initial.Encode(), "user_id": c.userID}))
	for _, f := range control {
		c.pushLocked(f)
	}
	for _, ev := range replay {
		if ev.Seq > c.seen[ev.Topic] {
			c.seen[ev.Topic] = ev.Seq
			c.pushLocked(newEventFrame(ev))
		}
	}
	held := c.held
	c.held = nil
	c.queued = 0
	c.started = true
	c.kickLocked()
	c.ping = time.AfterFunc(c.h.cfg.PingInterval, c.keepalive)
	for _, f := range held {
		if f.ev == nil {
			c.pushLocked(f)
		} else {
			c.enqueueLiveLocked(f)
		}
	}
}

// maxWrite bounds one coalesced WebSocket message.
const maxWrite = 256 << 10

// writeLoop owns every write to the socket while it runs (kickLocked starts at most one):
// it coalesces what is queued into one message of objects separated by "\n", each event
// with the connection's cursor as of that event, until the queue is empty. Once the
// connection is shut it closes the socket instead.
func (c *conn) writeLoop() {
	bp := writeBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= 4*maxWrite { // do not keep a burst's buffer in the pool
			*bp = buf[:0]
			writeBufs.Put(bp)
		}
	}()
	for {
		c.mu.Lock()
		batch, shut := c.queue, c.closeCode != 0
		c.queue = nil
		c.queued = 0
		if len(batch) == 0 && !shut {
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if shut {
			c.closeSocket()
			return
		}
		batch, err := c.catchUp(batch)
		if err != nil {
			c.h.log.Warn("hub: reading missed events failed; client will resume", "user", c.userID, "err", err)
			c.shut(websocket.StatusTryAgainLater, "temporary failure; reconnect with your cursor", "catch_up_error")
			c.closeSocket()
			return
		}
		for len(batch) > 0 {
			buf = buf[:0]
			n := 0
			for n < len(batch) && (n == 0 || len(buf) < maxWrite) {
				if n > 0 {
					buf = append(buf, '\n')
				}
				buf = c.appendFrame(buf, batch[n])
				n++
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
			c.h.m.frames.Add(float64(n))
		}
	}
}

// writeBufs holds the writers' buffers between bursts, so an idle connection keeps none.
var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// catchUp fills holes in the batch from the database. The node delivers each topic in
// order, but a connection that registered while the node was first learning a topic's
// position can start below it; the hole shows as a seq beyond cursor+1.
func (c *conn) catchUp(batch []*frame) ([]*frame, error) {
	var out []*frame
	next := map[Topic]int64{} // expected seq per topic, as of the frames before i
	for i, f := range batch {
		if f.ev == nil {
			if fc := f.follow; fc != nil && fc.add {
				next[fc.topic] = fc.seq + 1
			}
			if out != nil {
				out = append(out, f)
			}
			continue
		}
		want, ok := next[f.ev.Topic]
		if !ok {
			want = c.cursor.get(f.ev.Topic) + 1
		}
		next[f.ev.Topic] = f.ev.Seq + 1
		if f.ev.Seq <= want {
			if out != nil {
				out = append(out, f)
			}
			continue
		}
		if out == nil {
			out = append(make([]*frame, 0, len(batch)+8), batch[:i]...)
		}
		ctx, cancel := context.WithTimeout(c.h.ctx, 10*time.Second)
		evs, err := c.h.cfg.Log.Range(ctx, f.ev.Topic, want-1, f.ev.Seq-1, int(f.ev.Seq-want))
		cancel()
		if err != nil {
			return nil, err
		}
		c.h.m.gapFills.Add(float64(len(evs)))
		for _, ev := range evs {
			out = append(out, newEventFrame(ev))
		}
		out = append(out, f)
	}
	if out == nil {
		return batch, nil
	}
	return out, nil
}

func (c *conn) appendFrame(buf []byte, f *frame) []byte {
	if f.raw != nil {
		return append(buf, f.raw...)
	}
	if fc := f.follow; fc != nil {
		typ := `{"type":"subscribed","topic":"`
		if fc.add {
			c.cursor.add(fc.topic, fc.seq)
		} else {
			typ = `{"type":"unsubscribed","topic":"`
			c.cursor.remove(fc.topic)
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
	c.cursor.advance(f.ev.Topic, f.ev.Seq)
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
	if c.joining == nil {
		c.joining = map[Topic][]*frame{}
	}
	c.joining[t] = nil
	c.mu.Unlock()
	c.topics = append(c.topics, t)
	c.follows++
	c.h.attach(c, []Topic{t}) // from here, live frames of t are held in joining
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
	held := c.joining[t]
	delete(c.joining, t)
	c.seen[t] = head
	c.pushLocked(&frame{follow: &followChange{topic: t, seq: head, add: true}})
	for _, f := range held {
		c.enqueueLiveLocked(f)
	}
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
	delete(c.seen, t)
	delete(c.joining, t)
	c.pushLocked(&frame{follow: &followChange{topic: t}})
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
			http.Error(w, `{"error":"malformed cursor; connect without one and reload"}`, http.StatusBadRequest)
			return
		}
	}
	topics := slices.Clone(cl.Topics)
	if !slices.Contains(topics, UserTopic(cl.UserID)) {
		topics = append(topics, UserTopic(cl.UserID))
	}
	ws, err := websocket.Accept(smallReads{w}, r, &websocket.AcceptOptions{OriginPatterns: h.cfg.OriginPatterns})
	if err != nil {
		h.log.Info("hub: websocket handshake refused", "err", err)
		return // Accept has answered the request
	}
	ws.SetReadLimit(h.cfg.ReadLimit)
	c := &conn{
		h: h, ws: ws, userID: cl.UserID, sessionID: cl.SessionID, topics: topics, authorize: cl.Authorize,
		closed: make(chan struct{}),
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

// run is the connection's reader: it handles client frames until the socket ends, waits
// for the writer to have closed it, and takes the connection off the hub.
func (c *conn) run() {
	defer c.h.wg.Done()
	c.readLoop()
	<-c.closed
	c.h.unregister(c)
	c.h.presence.disconnected(c.userID)
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
	var src io.Reader = nc
	if n := brw.Reader.Buffered(); n > 0 {
		// The client wrote before it saw the 101: keep those bytes first.
		early, _ := brw.Reader.Peek(n)
		src = io.MultiReader(bytes.NewReader(bytes.Clone(early)), nc)
	}
	return nc, bufio.NewReadWriter(bufio.NewReaderSize(src, readBufferSize), brw.Writer), nil
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
