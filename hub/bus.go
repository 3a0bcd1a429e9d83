package hub

import (
	"context"
	"sync"
)

// Handler receives what a Bus carries: the encoded events of topics this node follows.
type Handler interface {
	HandleMessage(topic Topic, payload []byte)
}

// Bus carries encoded events between the nodes of a deployment. It is the fast path only:
// a message it loses is recovered from the database (gap fill, resume), so a Bus may be
// at-most-once.
type Bus interface {
	// SetHandler is called once, before any Subscribe, by the hub that consumes the bus.
	SetHandler(h Handler)
	// Publish sends payload to every node subscribed to topic, this one included.
	Publish(ctx context.Context, topic Topic, payload []byte) error
	// Subscribe and Unsubscribe are called by the hub when the first local connection
	// follows a topic and when the last one leaves.
	Subscribe(ctx context.Context, topic Topic) error
	Unsubscribe(ctx context.Context, topic Topic) error
	// Close stops the bus.
	Close() error
}

// MemoryBus is the single-process bus: Publish hands the message straight to the handler.
type MemoryBus struct {
	mu sync.RWMutex
	h  Handler // guarded by mu
}

var _ Bus = (*MemoryBus)(nil)

// NewMemoryBus returns an in-process bus.
func NewMemoryBus() *MemoryBus { return &MemoryBus{} }

// SetHandler implements Bus.
func (b *MemoryBus) SetHandler(h Handler) {
	b.mu.Lock()
	b.h = h
	b.mu.Unlock()
}

// Publish implements Bus. The hub ignores topics it does not follow, so no subscription
// bookkeeping is needed here.
func (b *MemoryBus) Publish(_ context.Context, topic Topic, payload []byte) error {
	b.mu.RLock()
	h := b.h
	b.mu.RUnlock()
	if h != nil {
		h.HandleMessage(topic, payload)
	}
	return nil
}

// Subscribe implements Bus.
func (b *MemoryBus) Subscribe(context.Context, Topic) error { return nil }

// Unsubscribe implements Bus.
func (b *MemoryBus) Unsubscribe(context.Context, Topic) error { return nil }

// Close implements Bus.
func (b *MemoryBus) Close() error { return nil }
