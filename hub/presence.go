package hub

import (
	"context"
	"encoding/json"
	"maps"
	"sync"
	"time"
)

// PresenceState is what coworkers see of a user.
type PresenceState string

// The presence states.
const (
	Online  PresenceState = "online"  // a live connection somewhere, and recent activity
	Idle    PresenceState = "idle"    // connected, but no activity for IdleAfter
	Offline PresenceState = "offline" // no live connection anywhere in the cluster
)

// PresenceStore keeps cluster-wide presence: which nodes hold live connections of which
// users, until when (a node that dies stops renewing and its entries expire), and each
// user's last activity.
type PresenceStore interface {
	// Touch records that node holds connections of these users until expires, with their
	// last activity times.
	Touch(ctx context.Context, node string, activity map[int64]time.Time, expires time.Time) error
	// Leave records that node holds no connection of user any more.
	Leave(ctx context.Context, node string, userID int64) error
	// States returns the state of every user with a live or recent entry; users absent
	// are offline.
	States(ctx context.Context, now time.Time, idleAfter time.Duration) (map[int64]PresenceState, error)
}

func stateOf(connected bool, activity, now time.Time, idleAfter time.Duration) PresenceState {
	switch {
	case !connected:
		return Offline
	case now.Sub(activity) >= idleAfter:
		return Idle
	default:
		return Online
	}
}

// MemoryPresence is the single-node PresenceStore.
type MemoryPresence struct {
	mu       sync.Mutex
	nodes    map[int64]map[string]time.Time // guarded by mu: user → node → expiry
	activity map[int64]time.Time            // guarded by mu
}

var _ PresenceStore = (*MemoryPresence)(nil)

// NewMemoryPresence returns an in-process PresenceStore.
func NewMemoryPresence() *MemoryPresence {
	return &MemoryPresence{nodes: map[int64]map[string]time.Time{}, activity: map[int64]time.Time{}}
}

// Touch implements PresenceStore.
func (p *MemoryPresence) Touch(_ context.Context, node string, activity map[int64]time.Time, expires time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for uid, at := range activity {
		if p.nodes[uid] == nil {
			p.nodes[uid] = map[string]time.Time{}
		}
		p.nodes[uid][node] = expires
		if at.After(p.activity[uid]) {
			p.activity[uid] = at
		}
	}
	return nil
}

// Leave implements PresenceStore.
func (p *MemoryPresence) Leave(_ context.Context, node string, userID int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.nodes[userID], node)
	if len(p.nodes[userID]) == 0 {
		delete(p.nodes, userID)
	}
	return nil
}

// States implements PresenceStore.
func (p *MemoryPresence) States(_ context.Context, now time.Time, idleAfter time.Duration) (map[int64]PresenceState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[int64]PresenceState{}
	for uid, nodes := range p.nodes {
		connected := false
		for node, exp := range nodes {
			if exp.After(now) {
				connected = true
			} else {
				delete(nodes, node)
			}
		}
		out[uid] = stateOf(connected, p.activity[uid], now, idleAfter)
	}
	return out, nil
}

// presenceTopic carries immediate presence changes between nodes; never in the database.
const presenceTopic Topic = "_presence"

type presenceMessage struct {
	UserID int64         `json:"user_id"`
	State  PresenceState `json:"state"`
}

// localUser is what this node knows of one user's connections.
type localUser struct {
	conns    int
	activity time.Time
}

// presence is the hub's part of presence: local bookkeeping, the heartbeat, and the
// frames that tell clients of changes.
type presence struct {
	h         *Hub
	store     PresenceStore
	node      string
	idleAfter time.Duration
	beat      time.Duration
	now       func() time.Time

	mu    sync.Mutex
	local map[int64]*localUser    // guarded by mu
	known map[int64]PresenceState // guarded by mu: what this node's clients were last told
}

// Presence answers whether a user is logged in right now: a live connection anywhere in
// the cluster and activity within IdleAfter. The notification router uses it for
// "when_logged_out".
func (h *Hub) LoggedIn(ctx context.Context, userID int64) (bool, error) {
	states, err := h.Presence(ctx)
	if err != nil {
		return false, err
	}
	return states[userID] == Online, nil
}

// Presence returns the state of every user who is not offline.
func (h *Hub) Presence(ctx context.Context) (map[int64]PresenceState, error) {
	p := h.presence
	return p.store.States(ctx, p.now(), p.idleAfter)
}

// connected records a new local connection; the user's first one makes them online.
func (p *presence) connected(userID int64) {
	now := p.now()
	p.mu.Lock()
	u := p.local[userID]
	first := u == nil
	if first {
		u = &localUser{}
		p.local[userID] = u
	}
	u.conns++
	u.activity = now
	p.mu.Unlock()
	if err := p.store.Touch(p.h.ctx, p.node, map[int64]time.Time{userID: now}, now.Add(3*p.beat)); err != nil {
		p.h.log.Warn("hub: presence touch failed", "err", err)
	}
	p.announce(userID, Online)
}

// disconnected records a closed local connection; after the user's last one on this node
// the cluster decides whether they are offline.
func (p *presence) disconnected(userID int64) {
	p.mu.Lock()
	u := p.local[userID]
	if u == nil {
		p.mu.Unlock()
		return
	}
	u.conns--
	last := u.conns == 0
	if last {
		delete(p.local, userID)
	}
	p.mu.Unlock()
	if !last {
		return
	}
	ctx := context.WithoutCancel(p.h.ctx)
	if err := p.store.Leave(ctx, p.node, userID); err != nil {
		p.h.log.Warn("hub: presence leave failed", "err", err)
		return
	}
	states, err := p.store.States(ctx, p.now(), p.idleAfter)
	if err != nil {
		p.h.log.Warn("hub: presence read failed", "err", err)
		return
	}
	if states[userID] == "" {
		p.announce(userID, Offline)
	}
}

// active records user activity reported by a client; an idle user becomes online.
func (p *presence) active(userID int64) {
	now := p.now()
	p.mu.Lock()
	u := p.local[userID]
	wasIdle := u != nil && now.Sub(u.activity) >= p.idleAfter
	if u != nil {
		u.activity = now
	}
	p.mu.Unlock()
	if u == nil {
		return
	}
	if err := p.store.Touch(p.h.ctx, p.node, map[int64]time.Time{userID: now}, now.Add(3*p.beat)); err != nil {
		p.h.log.Warn("hub: presence touch failed", "err", err)
	}
	if wasIdle {
		p.announce(userID, Online)
	}
}

// announce tells every node, this one included, of an immediate change.
func (p *presence) announce(userID int64, st PresenceState) {
	payload, _ := json.Marshal(presenceMessage{UserID: userID, State: st})
	ctx, cancel := context.WithTimeout(context.WithoutCancel(p.h.ctx), 5*time.Second)
	defer cancel()
	if err := p.h.bus.Publish(ctx, presenceTopic, payload); err != nil {
		p.h.log.Warn("hub: presence announce failed; the heartbeat will catch up", "err", err)
	}
}

// received handles a change announced by any node.
func (p *presence) received(payload []byte) {
	var m presenceMessage
	if err := json.Unmarshal(payload, &m); err != nil || m.UserID <= 0 {
		p.h.m.busErrors.Inc()
		return
	}
	p.tell(map[int64]PresenceState{m.UserID: m.State})
}

// tell sends the changes this node's clients have not been told yet.
func (p *presence) tell(changes map[int64]PresenceState) {
	p.mu.Lock()
	var news []presenceMessage
	for uid, st := range changes {
		if p.known[uid] == st {
			continue
		}
		if st == Offline {
			delete(p.known, uid)
		} else {
			p.known[uid] = st
		}
		news = append(news, presenceMessage{UserID: uid, State: st})
	}
	p.mu.Unlock()
	if len(news) == 0 {
		return
	}
	p.h.mu.Lock()
	conns := make([]*conn, 0, len(p.h.conns))
	for c := range p.h.conns {
		conns = append(conns, c)
	}
	p.h.mu.Unlock()
	for _, m := range news {
		f := &frame{presence: &m}
		for _, c := range conns {
			c.send(f)
		}
	}
}

// heartbeat renews this node's entries and finds the changes no node announced: users
// whose node died (entries expired) and users who went idle.
func (p *presence) heartbeat() {
	defer p.h.wg.Done()
	t := time.NewTicker(p.beat)
	defer t.Stop()
	for {
		select {
		case <-p.h.ctx.Done():
			return
		case <-t.C:
		}
		now := p.now()
		p.mu.Lock()
		activity := make(map[int64]time.Time, len(p.local))
		for uid, u := range p.local {
			activity[uid] = u.activity
		}
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(p.h.ctx, p.beat)
		err := p.store.Touch(ctx, p.node, activity, now.Add(3*p.beat))
		var states map[int64]PresenceState
		if err == nil {
			states, err = p.store.States(ctx, now, p.idleAfter)
		}
		cancel()
		if err != nil {
			if p.h.ctx.Err() == nil {
				p.h.log.Warn("hub: presence heartbeat failed", "err", err)
			}
			continue
		}
		p.mu.Lock()
		changes := maps.Clone(states)
		for uid := range p.known {
			if _, ok := states[uid]; !ok {
				changes[uid] = Offline
			}
		}
		p.mu.Unlock()
		p.tell(changes)
	}
}
