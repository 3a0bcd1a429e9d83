package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisBus carries events between nodes over Redis pub/sub. Each node subscribes only to
// the topics its connections follow (the hub calls Subscribe for the first local follower
// and Unsubscribe after the last). Channel names carry a prefix so several deployments or
// test runs can share one Redis.
//
// Pub/sub is at-most-once: what is published while a node is disconnected is lost to it.
// That is fine here: the database is the truth, and after every (re)subscription the hub
// re-reads the topic's head and fills what it missed.
type RedisBus struct {
	rdb    *redis.Client
	ps     *redis.PubSub
	prefix string
	log    *slog.Logger

	mu sync.Mutex
	h  Handler // guarded by mu; set once before Subscribe

	out     chan outgoing // publishes waiting for the publisher goroutine
	dropped atomic.Int64  // publishes dropped because out was full

	cancel context.CancelFunc
	done   chan struct{} // closed when receive ends
	sent   chan struct{} // closed when publish ends
}

type outgoing struct {
	channel string
	payload []byte
}

// publishQueue bounds the publishes waiting for Redis. Commits never wait on Redis: when
// Redis is slow or away the queue fills, further publishes are dropped (and counted), and
// the other nodes' sweeps read those events from the database.
const publishQueue = 8192

var _ Bus = (*RedisBus)(nil)

// Resubscriber is implemented by handlers that want to know when a topic's subscription
// is (re)confirmed, so they can catch up on what pub/sub may have dropped meanwhile.
type Resubscriber interface {
	Resubscribed(topic Topic)
}

// NewRedisBus connects to the Redis at url (redis://…). It does not fail when Redis is
// down: the client reconnects by itself and Ping reports the outage to /healthz.
func NewRedisBus(url, prefix string, log *slog.Logger) (*RedisBus, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("hub: REDIS_URL: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Short timeouts: a publish happens after commit on a request's path, and a dead
	// Redis must cost milliseconds, not the default seconds.
	opts.DialTimeout = 2 * time.Second
	opts.ReadTimeout = 2 * time.Second
	opts.WriteTimeout = 2 * time.Second
	opts.MaxRetries = 1
	rdb := redis.NewClient(opts)
	b := &RedisBus{rdb: rdb, prefix: prefix, log: log, out: make(chan outgoing, publishQueue),
		done: make(chan struct{}), sent: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.ps = rdb.Subscribe(ctx) // no channels yet; the hub subscribes as clients arrive
	go b.receive(ctx)
	go b.publish(ctx)
	return b, nil
}

// publish sends queued messages in order, pipelining whatever has piled up.
func (b *RedisBus) publish(ctx context.Context) {
	defer close(b.sent)
	var failing bool
	for {
		var first outgoing
		select {
		case <-ctx.Done():
			return
		case first = <-b.out:
		}
		pipe := b.rdb.Pipeline()
		pipe.Publish(ctx, first.channel, first.payload)
	more:
		for n := 1; n < 256; n++ {
			select {
			case m := <-b.out:
				pipe.Publish(ctx, m.channel, m.payload)
			default:
				break more
			}
		}
		_, err := pipe.Exec(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			failing = true
			b.log.Warn("hub: redis publish failing; nodes catch up from the database", "err", err)
		case err == nil && failing:
			failing = false
			b.log.Info("hub: redis publish working again")
		}
	}
}

// receive hands messages to the handler until Close. go-redis reconnects the pub/sub
// connection by itself and resubscribes every channel; each confirmation arrives here as a
// *redis.Subscription and triggers a catch-up of that topic.
func (b *RedisBus) receive(ctx context.Context) {
	defer close(b.done)
	ch := b.ps.ChannelWithSubscriptions(
		redis.WithChannelSize(4096),
		redis.WithChannelHealthCheckInterval(5*time.Second),
	)
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			b.mu.Lock()
			h := b.h
			b.mu.Unlock()
			if h == nil {
				continue
			}
			switch m := m.(type) {
			case *redis.Message:
				h.HandleMessage(Topic(strings.TrimPrefix(m.Channel, b.prefix)), []byte(m.Payload))
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					if r, ok := h.(Resubscriber); ok {
						r.Resubscribed(Topic(strings.TrimPrefix(m.Channel, b.prefix)))
					}
				}
			}
		}
	}
}

// SetHandler implements Bus.
func (b *RedisBus) SetHandler(h Handler) {
	b.mu.Lock()
	b.h = h
	b.mu.Unlock()
}

// Publish implements Bus. It queues the message and returns at once; an error means the
// queue was full and the message was dropped.
func (b *RedisBus) Publish(_ context.Context, topic Topic, payload []byte) error {
	select {
	case b.out <- outgoing{b.prefix + string(topic), payload}:
		return nil
	default:
		if n := b.dropped.Add(1); n == 1 || n%1000 == 0 {
			b.log.Warn("hub: redis publish queue full; dropping (the database still has the events)", "dropped", n)
		}
		return errors.New("hub: redis publish queue full")
	}
}

// Subscribe implements Bus. When Redis is down the subscription is still recorded and
// made when the connection comes back.
func (b *RedisBus) Subscribe(ctx context.Context, topic Topic) error {
	if err := b.ps.Subscribe(ctx, b.prefix+string(topic)); err != nil {
		return fmt.Errorf("hub: redis subscribe %s: %w", topic, err)
	}
	return nil
}

// Unsubscribe implements Bus.
func (b *RedisBus) Unsubscribe(ctx context.Context, topic Topic) error {
	if err := b.ps.Unsubscribe(ctx, b.prefix+string(topic)); err != nil {
		return fmt.Errorf("hub: redis unsubscribe %s: %w", topic, err)
	}
	return nil
}

// Ping checks that Redis answers.
func (b *RedisBus) Ping(ctx context.Context) error {
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// Close stops receiving and closes the connections. It is idempotent.
func (b *RedisBus) Close() error {
	b.cancel()
	err := b.ps.Close()
	<-b.done
	<-b.sent
	if cerr := b.rdb.Close(); cerr != nil && !errors.Is(cerr, redis.ErrClosed) {
		err = errors.Join(err, cerr)
	}
	if errors.Is(err, redis.ErrClosed) {
		err = nil
	}
	return err
}
