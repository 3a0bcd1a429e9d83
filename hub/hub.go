package hub

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Hub. Zero values take the documented defaults.
type Config struct {
	Log    *Log         // required: where events are read back from
	Bus    Bus          // default: a MemoryBus
	Logger *slog.Logger // default: discard

	// QueueBytes bounds what may wait to be written to one connection; a client that
	// lets more pile up is disconnected as slow and resumes from its cursor. Default 1 MiB.
	QueueBytes int
	// WriteTimeout bounds each write to a client. Default 10 s.
	WriteTimeout time.Duration
	// PingInterval is how often an idle connection is pinged. Default 30 s.
	PingInterval time.Duration
	// ReadLimit bounds one client frame. Default 64 KiB.
	ReadLimit int64
	// OriginPatterns are the hosts (host or host:port patterns, as coder/websocket takes
	// them) whose pages may open a WebSocket besides the request's own host.
	OriginPatterns []string
	// GapWait is how long an out-of-order event waits for the missing ones to arrive over
	// the bus before they are read from the database. Default 50 ms.
	GapWait time.Duration
	// MaxReplay bounds the events replayed to one resuming connection; beyond it the client
	// is told to resync. Default 10,000.
	MaxReplay int
	// SweepInterval is how often the node compares the heads of the topics it follows with
	// what it has delivered, and reads from the database what the bus lost: a publish cut
	// short by a crash between commit and publish, or a message dropped while Redis was
	// away. Every bus resubscription triggers a sweep too. Default 2 s.
	SweepInterval time.Duration
	// Presence keeps cluster-wide presence. Default: in-process (one node).
	Presence PresenceStore
	// NodeID names this node in presence entries. Default: random.
	NodeID string
	// IdleAfter is how long a connected user may do nothing before they show as idle and
	// count as logged out for notifications. Default 10 minutes.
	IdleAfter time.Duration
	// PresenceBeat is how often this node renews its presence entries; a node that stops
	// renewing (it died) drops out after three beats. Default 10 s.
	PresenceBeat time.Duration
	// Now is the clock for presence. Default time.Now.
	Now func() time.Time
	// Metrics, when set, receives the hub's collectors.
	Metrics prometheus.Registerer
}

// Hub delivers events to the WebSocket connections of this node.
type Hub struct {
	cfg Config
	log *slog.Logger
	bus Bus

	ctx    context.Context // cancelled by Shutdown; parent of every connection and worker
	cancel context.CancelFunc
	wg     sync.WaitGroup // connections and gap-fill workers
	kick   chan struct{}  // capacity 1: sweep now
	swept  chan struct{}  // closed when the sweep loop ends

	mu        sync.Mutex
	closed    bool                         // guarded by mu
	topics    map[Topic]*topicState        // guarded by mu
	conns     map[*conn]struct{}           // guarded by mu
	bySession map[int64]map[*conn]struct{} // guarded by mu
	byUser    map[int64]map[*conn]struct{} // guarded by mu

	presence *presence
	m        metrics
}

// topicState is this node's view of one topic: the last seq delivered to local
// connections, and events that arrived early, waiting for the ones before them.
type topicState struct {
	topic Topic

	mu      sync.Mutex
	conns   map[*conn]int32  // guarded by mu: the followers, each with the topic's slot on it
	ready   bool             // guarded by mu: last is known
	last    int64            // guarded by mu
	pending map[int64]*frame // guarded by mu
	filling bool             // guarded by mu: a fill worker runs
}

type metrics struct {
	conns      prometheus.Gauge
	frames     prometheus.Counter
	writes     prometheus.Counter
	slow       prometheus.Counter
	gapFills   prometheus.Counter
	recovered  prometheus.Counter
	busErrors  prometheus.Counter
	disconnect *prometheus.CounterVec
}

// New returns a hub. It subscribes to the bus as its handler.
func New(cfg Config) *Hub {
	if cfg.Log == nil {
		panic("hub: Config.Log is required")
	}
	if cfg.Bus == nil {
		cfg.Bus = NewMemoryBus()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = 1 << 20
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 30 * time.Second
	}
	if cfg.ReadLimit <= 0 {
		cfg.ReadLimit = 64 << 10
	}
	if cfg.GapWait <= 0 {
		cfg.GapWait = 50 * time.Millisecond
	}
	if cfg.MaxReplay <= 0 {
		cfg.MaxReplay = 10000
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = 2 * time.Second
	}
	if cfg.Presence == nil {
		cfg.Presence = NewMemoryPresence()
	}
	if cfg.NodeID == "" {
		cfg.NodeID = rand.Text()[:12]
	}
	if cfg.IdleAfter <= 0 {
		cfg.IdleAfter = 10 * time.Minute
	}
	if cfg.PresenceBeat <= 0 {
		cfg.PresenceBeat = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{
		cfg: cfg, log: cfg.Logger, bus: cfg.Bus,
		ctx: ctx, cancel: cancel,
		kick: make(chan struct{}, 1), swept: make(chan struct{}),
		topics:    map[Topic]*topicState{},
		conns:     map[*conn]struct{}{},
		bySession: map[int64]map[*conn]struct{}{},
		byUser:    map[int64]map[*conn]struct{}{},
	}
	h.m = metrics{
		conns:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchboard_ws_connections", Help: "Live WebSocket connections on this node."}),
		frames:     prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_ws_frames_total", Help: "Objects written to WebSocket clients."}),
		writes:     prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_ws_writes_total", Help: "WebSocket messages written (each may carry several objects)."}),
		slow:       prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_ws_slow_disconnects_total", Help: "Clients disconnected because their send queue overflowed."}),
		gapFills:   prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_hub_gap_fills_total", Help: "Events read from the database because the bus delivered them late or not at all."}),
		recovered:  prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_hub_sweep_recovered_total", Help: "Events the bus never delivered, read from the database by the sweep."}),
		busErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "switchboard_hub_bus_errors_total", Help: "Failed publishes and undecodable bus messages."}),
		disconnect: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchboard_ws_disconnects_total", Help: "WebSocket disconnections by reason."}, []string{"reason"}),
	}
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(h.m.conns, h.m.frames, h.m.writes, h.m.slow, h.m.gapFills, h.m.recovered, h.m.busErrors, h.m.disconnect)
	}
	h.presence = &presence{h: h, store: cfg.Presence, node: cfg.NodeID, idleAfter: cfg.IdleAfter,
		beat: cfg.PresenceBeat, now: cfg.Now, local: map[int64]*localUser{}, known: map[int64]PresenceState{}}
	cfg.Bus.SetHandler(h)
	cfg.Log.SetPublisher(h)
	for _, t := range []Topic{controlTopic, presenceTopic} {
		if err := cfg.Bus.Subscribe(ctx, t); err != nil {
			h.log.Warn("hub: bus subscribe failed; will retry with the connection", "topic", t, "err", err)
		}
	}
	go h.sweepLoop()
	h.wg.Add(1)
	go h.presence.heartbeat()
	return h
}

// controlTopic carries node-to-node commands, not events: it is never in the database.
const controlTopic Topic = "_control"

type controlMessage struct {
	CloseSessions []int64      `json:"close_sessions,omitempty"`
	Revoke        []revocation `json:"revoke,omitempty"`
}

// revocation is a topic a user may no longer follow.
type revocation struct {
	UserID int64 `json:"user_id"`
	Topic  Topic `json:"topic"`
}

// Resubscribed implements Resubscriber: after the bus (re)confirms a subscription, what
// was published meanwhile may be lost, so sweep.
func (h *Hub) Resubscribed(Topic) {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

func (h *Hub) sweepLoop() {
	defer close(h.swept)
	t := time.NewTicker(h.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		case <-h.kick:
		}
		if err := h.sweep(h.ctx); err != nil && h.ctx.Err() == nil {
			h.log.Warn("hub: sweep failed; next one retries", "err", err)
		}
	}
}

// sweep reads, for every topic this node follows and has positioned, the events between
// what it delivered and the head in the database, and delivers them. In the steady state
// it is one indexed query that finds nothing.
func (h *Hub) sweep(ctx context.Context) error {
	h.mu.Lock()
	states := make(map[Topic]*topicState, len(h.topics))
	topics := make([]Topic, 0, len(h.topics))
	for t, ts := range h.topics {
		states[t] = ts
		topics = append(topics, t)
	}
	h.mu.Unlock()
	if len(topics) == 0 {
		return nil
	}
	heads, err := h.cfg.Log.heads(ctx, topics)
	if err != nil {
		return err
	}
	for t, ts := range states {
		ts.mu.Lock()
		last, ready := ts.last, ts.ready
		ts.mu.Unlock()
		head := heads[t].seq
		if !ready || head <= last {
			continue
		}
		evs, err := h.cfg.Log.Range(ctx, t, last, head, 1000)
		if err != nil {
			return err
		}
		h.m.recovered.Add(float64(len(evs)))
		for _, ev := range evs {
			h.deliver(ts, newEventFrame(ev))
		}
	}
	return nil
}

// Publish sends a committed event to every node. It implements Publisher for the Log and
// runs after commit; a publish that fails is recovered by gap fill and resume.
func (h *Hub) Publish(ev *Event) {
	payload, err := json.Marshal(ev)
	if err != nil {
		h.m.busErrors.Inc()
		h.log.Error("hub: encode event", "topic", ev.Topic, "seq", ev.Seq, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	if err := h.bus.Publish(ctx, ev.Topic, payload); err != nil {
		h.m.busErrors.Inc()
		h.log.Warn("hub: publish failed; followers will catch up from the database", "topic", ev.Topic, "seq", ev.Seq, "err", err)
	}
}

// HandleMessage receives an event from the bus. It implements Handler.
func (h *Hub) HandleMessage(topic Topic, payload []byte) {
	if topic == presenceTopic {
		h.presence.received(payload)
		return
	}
	if topic == controlTopic {
		var m controlMessage
		if err := json.Unmarshal(payload, &m); err != nil {
			h.m.busErrors.Inc()
			return
		}
		if len(m.CloseSessions) > 0 {
			h.closeLocalSessions(m.CloseSessions)
		}
		for _, r := range m.Revoke {
			h.revokeLocal(r.UserID, r.Topic)
		}
		return
	}
	h.mu.Lock()
	ts := h.topics[topic]
	h.mu.Unlock()
	if ts == nil {
		return
	}
	var ev Event
	if err := json.Unmarshal(payload, &ev); err != nil || ev.Topic != topic || ev.Seq <= 0 {
		h.m.busErrors.Inc()
		h.log.Warn("hub: undecodable bus message", "topic", topic, "err", err)
		return
	}
	h.deliver(ts, newEventFrame(&ev))
}

// deliver puts f in seq order for the topic and fans out what is ready.
func (h *Hub) deliver(ts *topicState, f *frame) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	seq := f.ev.Seq
	switch {
	case !ts.ready:
		ts.pending[seq] = f
	case seq <= ts.last:
		// Already delivered: a duplicate from the bus or a gap fill that raced it.
	case seq == ts.last+1:
		h.fanOutLocked(ts, f)
		h.drainLocked(ts)
	default:
		ts.pending[seq] = f
	}
	h.startFillLocked(ts)
}

// drainLocked delivers pending frames that are now next in line.
func (h *Hub) drainLocked(ts *topicState) {
	for {
		f, ok := ts.pending[ts.last+1]
		if !ok {
			break
		}
		delete(ts.pending, ts.last+1)
		h.fanOutLocked(ts, f)
	}
	for seq := range ts.pending {
		if seq <= ts.last {
			delete(ts.pending, seq)
		}
	}
}

func (h *Hub) fanOutLocked(ts *topicState, f *frame) {
	ts.last = f.ev.Seq
	for c, slot := range ts.conns {
		c.enqueueLive(f, slot)
	}
}

// startFillLocked starts the topic's fill worker when events wait for earlier ones.
func (h *Hub) startFillLocked(ts *topicState) {
	if ts.filling || !ts.ready || len(ts.pending) == 0 {
		return
	}
	h.mu.Lock()
	closed := h.closed
	if !closed {
		h.wg.Add(1)
	}
	h.mu.Unlock()
	if closed {
		return
	}
	ts.filling = true
	go h.fill(ts)
}

// fill reads from the database whatever the bus has not brought within GapWait. The
// per-topic commit order guarantees that when seq N is visible, every seq below it is
// committed, so the read finds the missing ones (unless they were pruned, in which case
// they are skipped).
func (h *Hub) fill(ts *topicState) {
	defer h.wg.Done()
	backoff := 100 * time.Millisecond
	for {
		ts.mu.Lock()
		if !ts.ready || len(ts.pending) == 0 {
			ts.filling = false
			ts.mu.Unlock()
			return
		}
		ts.mu.Unlock()

		select {
		case <-h.ctx.Done():
			h.stopFill(ts)
			return
		case <-time.After(h.cfg.GapWait):
		}

		ts.mu.Lock()
		from := ts.last
		to := int64(-1)
		for seq := range ts.pending {
			if to < 0 || seq < to {
				to = seq
			}
		}
		ts.mu.Unlock()
		if to <= from+1 {
			continue // filled meanwhile
		}
		evs, err := h.cfg.Log.Range(h.ctx, ts.topic, from, to-1, 1000)
		if err != nil {
			h.log.Warn("hub: reading a gap from the database failed; retrying", "topic", ts.topic, "err", err)
			select {
			case <-h.ctx.Done():
				h.stopFill(ts)
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		h.m.gapFills.Add(float64(len(evs)))
		for _, ev := range evs {
			h.deliver(ts, newEventFrame(ev))
		}
		ts.mu.Lock()
		if len(evs) == 0 && ts.last == from {
			// Nothing to read: the missing events were pruned. Skip the hole.
			h.log.Warn("hub: events missing from the database; skipping", "topic", ts.topic, "from", from+1, "to", to-1)
			ts.last = to - 1
			h.drainLocked(ts)
		}
		ts.mu.Unlock()
	}
}

// prime tells the topics this node has not positioned yet where they stand: the heads a
// new connection just read, after registering. Events that reached the node before that
// and are at or below the head were committed before it and are covered by the
// connection's own start position; a connection that registered earlier with a lower
// position finds the hole itself and reads it (see conn.catchUp).
func (h *Hub) prime(heads Cursor) {
	h.mu.Lock()
	states := make([]*topicState, 0, len(heads))
	for t := range heads {
		if ts := h.topics[t]; ts != nil {
			states = append(states, ts)
		}
	}
	h.mu.Unlock()
	for _, ts := range states {
		ts.mu.Lock()
		if !ts.ready {
			ts.ready, ts.last = true, heads[ts.topic]
			h.drainLocked(ts)
			h.startFillLocked(ts)
		}
		ts.mu.Unlock()
	}
}

func (h *Hub) stopFill(ts *topicState) {
	ts.mu.Lock()
	ts.filling = false
	ts.mu.Unlock()
}

// register adds c to the hub and to its topics.
func (h *Hub) register(c *conn) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errShuttingDown
	}
	h.conns[c] = struct{}{}
	h.wg.Add(1) // done when the connection's reader has taken it off the hub
	addTo(h.bySession, c.sessionID, c)
	addTo(h.byUser, c.userID, c)
	h.mu.Unlock()
	h.m.conns.Inc()
	ts := make([]topicSlot, len(c.topics))
	for i, t := range c.topics {
		ts[i] = topicSlot{t, int32(i)}
	}
	h.attach(c, ts)
	return nil
}

// topicSlot is a topic a connection follows and its slot there.
type topicSlot struct {
	topic Topic
	slot  int32
}

// attach adds c to the topics' states, subscribing the bus to topics new on this node.
// The connection joins each state under the hub lock, so a concurrent detach of the last
// other follower cannot drop the state from under it.
func (h *Hub) attach(c *conn, topics []topicSlot) {
	var fresh []Topic
	h.mu.Lock()
	for _, x := range topics {
		t := x.topic
		ts := h.topics[t]
		if ts == nil {
			ts = &topicState{topic: t, conns: map[*conn]int32{}, pending: map[int64]*frame{}}
			h.topics[t] = ts
			fresh = append(fresh, t)
		}
		ts.mu.Lock()
		ts.conns[c] = x.slot
		ts.mu.Unlock()
	}
	h.mu.Unlock()
	for _, t := range fresh {
		if err := h.bus.Subscribe(h.ctx, t); err != nil {
			// The topic still works: the sweep reads from the database, and the Redis bus
			// resubscribes by itself.
			h.log.Warn("hub: bus subscribe failed", "topic", t, "err", err)
		}
	}
}

func (h *Hub) unregister(c *conn) {
	h.mu.Lock()
	delete(h.conns, c)
	removeFrom(h.bySession, c.sessionID, c)
	removeFrom(h.byUser, c.userID, c)
	h.mu.Unlock()
	h.m.conns.Dec()
	h.detach(c, c.topics)
}

// detach removes c from the topics' states; a state left without followers is dropped
// and its bus subscription ended.
func (h *Hub) detach(c *conn, topics []Topic) {
	var gone []Topic
	h.mu.Lock()
	for _, t := range topics {
		ts := h.topics[t]
		if ts == nil {
			continue
		}
		ts.mu.Lock()
		delete(ts.conns, c)
		if len(ts.conns) == 0 {
			delete(h.topics, t)
			gone = append(gone, t)
		}
		ts.mu.Unlock()
	}
	h.mu.Unlock()
	for _, t := range gone {
		if err := h.bus.Unsubscribe(h.ctx, t); err != nil && !errors.Is(err, context.Canceled) {
			h.log.Warn("hub: bus unsubscribe failed", "topic", t, "err", err)
		}
		// A connection may have followed t again while we were unsubscribing, and its
		// SUBSCRIBE may have reached the bus before our UNSUBSCRIBE: subscribe again.
		h.mu.Lock()
		back := h.topics[t] != nil
		h.mu.Unlock()
		if back {
			if err := h.bus.Subscribe(h.ctx, t); err != nil {
				h.log.Warn("hub: bus subscribe failed", "topic", t, "err", err)
			}
		}
	}
}

func addTo(m map[int64]map[*conn]struct{}, k int64, c *conn) {
	s := m[k]
	if s == nil {
		s = map[*conn]struct{}{}
		m[k] = s
	}
	s[c] = struct{}{}
}

func removeFrom(m map[int64]map[*conn]struct{}, k int64, c *conn) {
	if s := m[k]; s != nil {
		delete(s, c)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}

// CloseSessions closes the live connections of the given sessions on every node, telling
// the clients why. Accounts call it when sessions end (logout, password change). This
// node closes its own at once; the others hear it over the bus. Should the bus lose the
// message, a connection of an ended session lives on only until it reconnects, which its
// cookie no longer allows.
func (h *Hub) CloseSessions(ids []int64) {
	if len(ids) == 0 {
		return
	}
	h.closeLocalSessions(ids)
	payload, _ := json.Marshal(controlMessage{CloseSessions: ids})
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	if err := h.bus.Publish(ctx, controlTopic, payload); err != nil {
		h.m.busErrors.Inc()
		h.log.Warn("hub: could not tell other nodes to close sessions", "sessions", ids, "err", err)
	}
}

func (h *Hub) closeLocalSessions(ids []int64) {
	h.mu.Lock()
	var victims []*conn
	for _, id := range ids {
		for c := range h.bySession[id] {
			victims = append(victims, c)
		}
	}
	h.mu.Unlock()
	for _, c := range victims {
		c.shut(websocket.StatusPolicyViolation, "session ended", "session_ended")
	}
}

// StatusRevoked closes a connection that follows a topic its user may no longer follow.
// The client reconnects with its cursor, and the resumed connection follows only what
// the user may see now.
const StatusRevoked websocket.StatusCode = 4001

// Revoke ends userID's access to topic on live connections, on every node: connections
// that follow it are closed with StatusRevoked so they resume without it (a connection
// cannot drop a topic from under its reader without a reconnect, and membership changes
// are rare). Call it after the change that revoked the access has committed. Should the
// bus lose the message, other nodes' connections keep the topic until they reconnect.
func (h *Hub) Revoke(userID int64, t Topic) {
	h.revokeLocal(userID, t)
	payload, _ := json.Marshal(controlMessage{Revoke: []revocation{{userID, t}}})
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	if err := h.bus.Publish(ctx, controlTopic, payload); err != nil {
		h.m.busErrors.Inc()
		h.log.Warn("hub: could not tell other nodes to revoke a topic", "user", userID, "topic", t, "err", err)
	}
}

func (h *Hub) revokeLocal(userID int64, t Topic) {
	h.mu.Lock()
	var victims []*conn
	for c := range h.byUser[userID] {
		victims = append(victims, c)
	}
	h.mu.Unlock()
	for _, c := range victims {
		if c.isFollowing(t) {
			c.shut(StatusRevoked, "no longer allowed to follow "+string(t)+"; reconnect with your cursor", "revoked")
		}
	}
}

// Connected reports whether the user has a live connection on this node.
func (h *Hub) Connected(userID int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.byUser[userID]) > 0
}

// Shutdown refuses new connections, closes every live one with "going away" so clients
// reconnect (to another node) at once, and waits for them and the workers to finish or
// for ctx to end. It is idempotent. http.Server.Shutdown does not close hijacked
// connections, so call this after it.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.shut(websocket.StatusGoingAway, "server shutting down", "shutdown")
	}
	// Workers stop now; connections finish their close handshakes on their own timers.
	h.cancel()
	<-h.swept
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
