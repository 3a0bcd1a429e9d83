package server_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/internal/redistest"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/server"
	"github.com/switchboard-hq/switchboard/store"
)

// A REDIS_URL that Redis refuses (a database index it does not have) stops start-up
// naming REDIS_URL; a Redis that does not answer at all does not: the node starts
// degraded and its bus reconnects later.
func TestRedisURLRefusedByRedisStopsStartUp(t *testing.T) {
	good, _ := url.Parse(redistest.URL(t))
	bad := *good
	bad.Path = "/99"
	public, _ := url.Parse("http://127.0.0.1:1")
	_, err := server.New(context.Background(), server.Config{DatabaseURL: storetest.URL(t, store.SQLite), PublicURL: public, RedisURL: bad.String()})
	if err == nil || !strings.HasPrefix(err.Error(), "REDIS_URL: ") || !strings.Contains(err.Error(), "DB index") {
		t.Fatalf("New with %s: %v; want a refusal naming REDIS_URL and the database index", bad.String(), err)
	}

	s, err := server.New(context.Background(), server.Config{DatabaseURL: storetest.URL(t, store.SQLite), PublicURL: public,
		RedisURL: "redis://127.0.0.1:1/0", RedisPrefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatalf("New with an unreachable Redis: %v; want a degraded start", err)
	}
	s.Close()
}
