package fanoutbench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/internal/redistest"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

// loadgenEnv makes the test binary a load generator, so the test runs the benchmark the
// way `switchboard bench fanout` does: clients in a child process.
const loadgenEnv = "FANOUTBENCH_LOADGEN"

func TestMain(m *testing.M) {
	if os.Getenv(loadgenEnv) == "1" {
		if err := ServeLoad(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestFanoutTinyScale runs the whole benchmark at a tiny scale: every path delivers
// every event to every client exactly once, in order, and the figures are sane.
func TestFanoutTinyScale(t *testing.T) {
	rep := runTiny(t, Config{})
	// One Switchboard path and three baselines, each a fixed-rate and a closed-loop phase.
	if got, want := len(rep.Phases), 8; got != want {
		t.Fatalf("got %d phases; want %d", got, want)
	}
	if got := rep.Phases[2].ObjectBytes; got < 140 || got > 160 {
		t.Errorf("small baseline objects are %.0f B; want about 150", got)
	}
	if len(rep.Memory) != 2 {
		t.Fatalf("got %d memory results; want 2", len(rep.Memory))
	}
}

// TestFanoutSpread spreads the clients over the channels: each event reaches only the
// clients of its channel (half of them), on both servers, and no client gets another's.
func TestFanoutSpread(t *testing.T) {
	rep := runTiny(t, Config{Spread: true, Baselines: []string{BaselineSmall}})
	if got, want := len(rep.Phases), 4; got != want {
		t.Fatalf("got %d phases; want %d", got, want)
	}
}

// TestFanoutSpreadThenAllOnOneDatabase: the channels outlive a run in a reused database;
// a run without spread after a spread one still reaches every client.
func TestFanoutSpreadThenAllOnOneDatabase(t *testing.T) {
	url := storetest.URL(t, store.Postgres)
	runTiny(t, Config{Paths: []string{PathSwitchboard}, DatabaseURL: url, Spread: true, SkipMax: true})
	runTiny(t, Config{Paths: []string{PathSwitchboard}, DatabaseURL: url, SkipMax: true})
}

// TestFanoutTwoNodes runs the two-node path: PostgreSQL, Redis, clients on both nodes.
func TestFanoutTwoNodes(t *testing.T) {
	rep := runTiny(t, Config{
		Paths: []string{PathRedis}, DatabaseURL: storetest.URL(t, store.Postgres),
		RedisURL: redistest.URL(t), RedisPrefix: redistest.Prefix(t),
	})
	if got, want := len(rep.Phases), 2; got != want {
		t.Fatalf("got %d phases; want %d", got, want)
	}
	for _, p := range rep.Phases {
		if len(p.CommitByNode) != 2 || p.CommitByNode[1].Samples != p.Commit.Samples/2 {
			t.Errorf("%s: latency by node %+v; want half the %d samples on each of two nodes", p.modeLabel(), p.CommitByNode, p.Commit.Samples)
		}
	}
}

const tinyClients, tinyRate = 20, 40

// runTiny runs cfg at a tiny scale with the clients in a child process and checks every
// phase.
func runTiny(t *testing.T, cfg Config) *Report {
	t.Helper()
	if testing.Short() {
		t.Skip("starts servers and a child process")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg.Clients, cfg.Users, cfg.Channels, cfg.Customers = tinyClients, 4, 2, 5
	cfg.Rates, cfg.Duration, cfg.Window, cfg.Publishers = []float64{tinyRate}, 500*time.Millisecond, 20, 2
	cfg.Settle, cfg.Verify = 200*time.Millisecond, true
	cfg.Loadgen, cfg.LoadgenEnv = []string{exe}, []string{loadgenEnv + "=1"}
	cfg.Progress = testWriter{t}
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := rep.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	for _, p := range rep.Phases {
		name := p.Path + " " + p.modeLabel()
		if !p.Valid {
			t.Errorf("%s: invalid: %s", name, p.Problem)
		}
		perEvent := tinyClients // 4 agents over 2 channels: each channel has half the clients
		if cfg.Spread {
			perEvent = tinyClients / 2
		}
		if p.Published <= 0 || p.PerEvent != float64(perEvent) || p.Delivered != p.Published*int64(perEvent) || p.Expected != p.Delivered {
			t.Errorf("%s: published %d, delivered %d, expected %d, %.0f clients per event; want every event to the %d clients of its channel once",
				name, p.Published, p.Delivered, p.Expected, p.PerEvent, perEvent)
		}
		if p.Mode == modeRate && p.Published != tinyRate/2 {
			t.Errorf("%s: published %d; want %d (%d/s for 0.5 s)", name, p.Published, tinyRate/2, tinyRate)
		}
		if p.Commit.Samples != uint64(p.Delivered) || p.Send.Samples != uint64(p.Delivered) {
			t.Errorf("%s: %d commit and %d send latency samples; want one per delivery (%d)", name, p.Commit.Samples, p.Send.Samples, p.Delivered)
		}
		if !(p.Commit.P50 <= p.Commit.P99 && p.Commit.P99 <= p.Commit.P999 && p.Commit.P999 <= p.Commit.Max) ||
			p.Commit.Max <= 0 || p.Commit.Max > time.Minute {
			t.Errorf("%s: latency %+v is not sane", name, p.Commit)
		}
		if p.DeliveriesPerSec <= 0 || p.CPUPerDelivery <= 0 || p.ObjectsPerWrite < 1 || p.ObjectBytes < 100 {
			t.Errorf("%s: %.0f deliveries/s, %.2f µs CPU/delivery, %.2f objects/write, %.0f B/object; want all positive",
				name, p.DeliveriesPerSec, p.CPUPerDelivery, p.ObjectsPerWrite, p.ObjectBytes)
		}
	}
	for _, m := range rep.Memory {
		if m.Clients != tinyClients || m.GoroutinesPerConn < 1 {
			t.Errorf("%s: memory %+v; want %d clients with at least one goroutine each", m.Path, m, tinyClients)
		}
	}
	if len(rep.Targets) == 0 || !strings.Contains(out.String(), "Issue 3 targets") {
		t.Error("no targets in the report")
	}
	return rep
}

func TestParseEvent(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)
	sb := []byte(`{"type":"message.created","cursor":"AWMBBWMCA3UBAA","topic":"channel:2","seq":17,"data":{"message":{"id":9,"channel_id":2,"number":5,"body":"sb-bench 41 1772600767123456000 xx","author_id":null,"created_at":"2026-03-04T05:06:07.123456Z","issue":{"created_at":"2020-01-01T00:00:00Z"}}}}`)
	bare := bareFrame("channel:2", 17, []byte("sb-bench 41 1772600767123456000 xx"), at)
	for _, tc := range []struct {
		name string
		obj  []byte
	}{{"switchboard", sb}, {"bare", bare}} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := parseEvent(tc.obj)
			if err != nil {
				t.Fatal(err)
			}
			if string(ev.topic) != "channel:2" || ev.seq != 17 || !ev.created.Equal(at) || ev.sent != 1772600767123456000 {
				t.Errorf("got %s/%d at %v sent %d; want channel:2/17 at %v sent 1772600767123456000", ev.topic, ev.seq, ev.created, ev.sent, at)
			}
			if err := verifyEvent(tc.obj, ev); err != nil {
				t.Error(err)
			}
		})
	}
	if _, err := parseEvent([]byte(`{"type":"x"}`)); err == nil {
		t.Error("an object without topic parsed")
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	for us := 1; us <= 10000; us++ {
		h.add(time.Duration(us) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {0.999, 9990 * time.Microsecond}} {
		got := h.quantile(tc.q)
		if diff := got - tc.want; diff < -tc.want/50 || diff > tc.want/50 {
			t.Errorf("q%v: got %v; want %v within 2%%", tc.q, got, tc.want)
		}
	}
	if got := h.summary().Max; got != 10*time.Millisecond {
		t.Errorf("max %v; want 10ms", got)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"ws://127.0.0.1:8080/ws", true},
		{"http://[::1]:80/publish", true},
		{"ws://localhost:1/ws", true},
		{"ws://10.0.0.1:8080/ws", false},
		{"http://example.com/", false},
	} {
		if err := loopback(tc.url); (err == nil) != tc.ok {
			t.Errorf("%s: got %v; want ok=%v", tc.url, err, tc.ok)
		}
	}
}
