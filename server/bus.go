package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-hq/switchboard/hub"
)

// checkRedis refuses a REDIS_URL that Redis itself refuses: a database index out of range,
// a wrong password. Those never heal, and a node started with them would serve without
// its bus and answer 503 forever. A Redis that does not answer at all is not refused: the
// node starts degraded and the bus reconnects when it comes.
func checkRedis(ctx context.Context, rawURL string) error {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.MaxRetries = 2*time.Second, 2*time.Second, -1
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var refused redis.Error
	if err := c.Ping(ctx).Err(); errors.As(err, &refused) {
		return fmt.Errorf("REDIS_URL: Redis refuses it: %w", err)
	}
	return nil
}

// newBus picks the event bus: Redis pub/sub when REDIS_URL is set, else in-process (one
// node only).
func newBus(ctx context.Context, cfg Config, log *slog.Logger) (hub.Bus, error) {
	if cfg.RedisURL == "" {
		return hub.NewMemoryBus(), nil
	}
	b, err := hub.NewRedisBus(cfg.RedisURL, cfg.RedisPrefix, log)
	if err != nil {
		return nil, err
	}
	if err := b.Ping(ctx); err != nil {
		// Not fatal: the node serves from the database, /healthz says 503, and the bus
		// reconnects by itself.
		log.Warn("redis is not answering yet; live events between nodes resume when it does", "err", err)
	}
	return b, nil
}
