package server

import (
	"context"
	"log/slog"

	"github.com/switchboard-hq/switchboard/hub"
)

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
