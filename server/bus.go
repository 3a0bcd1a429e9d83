package server

import (
	"context"
	"errors"
	"log/slog"

	"github.com/switchboard-hq/switchboard/hub"
)

// newBus picks the event bus: in-process without REDIS_URL.
func newBus(_ context.Context, cfg Config, _ *slog.Logger) (hub.Bus, error) {
	if cfg.RedisURL == "" {
		return hub.NewMemoryBus(), nil
	}
	return nil, errors.New("server: REDIS_URL: the Redis bus is not built yet; run one node without REDIS_URL")
}
