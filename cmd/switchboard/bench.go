package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-hq/switchboard/internal/fanoutbench"
)

const benchUsage = `Usage:
  switchboard bench fanout [flags]   Switchboard's fan-out against a bare coder/websocket broadcast
  switchboard bench clients          the load generator the fanout benchmark starts (JSON lines on stdin/stdout)

Flags of bench fanout:
`

// benchCommand runs `switchboard bench …`. It reads no environment: the benchmark starts
// its own servers on loopback.
func benchCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fs, _ := benchFlags(stderr)
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "clients":
		if err := fanoutbench.ServeLoad(ctx, stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "switchboard: bench clients: %v\n", err)
			return 1
		}
		return 0
	case "fanout":
		return benchFanout(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "switchboard: bench: unknown benchmark %q\n\n%s", args[0], benchUsage)
		return 2
	}
}

type benchOptions struct {
	cfg       fanoutbench.Config
	rates     string
	paths     string
	baselines string
	inProcess bool
	jsonOut   string
	logLevel  string
}

func benchFlags(stderr io.Writer) (*flag.FlagSet, *benchOptions) {
	o := &benchOptions{}
	fs := flag.NewFlagSet("bench fanout", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &o.cfg
	fs.IntVar(&c.Clients, "clients", 1000, "WebSocket clients (10000 for the 10k mode)")
	fs.IntVar(&c.Channels, "channels", 4, "SMS channels, each its own Twilio number; events are spread over them")
	fs.BoolVar(&c.Spread, "spread", false, "spread the clients over the channels too: agent u is a member of channel u mod channels only, so each event reaches clients/channels clients (default: every agent in every SMS channel, every event to every client)")
	fs.IntVar(&c.Users, "users", 100, "agents the clients log in as (client i is user i mod users)")
	fs.IntVar(&c.Customers, "customers", 50, "distinct senders per channel")
	fs.StringVar(&o.rates, "rate", "100", "fixed-rate phases: events per second, comma-separated (e.g. 0.1,1,10)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "length of each phase")
	fs.BoolVar(&c.SkipMax, "skip-max", false, "skip the closed-loop throughput phase")
	fs.BoolVar(&c.Restart, "restart", false, "also restart the Switchboard node under load (at the first --rate): every client reconnects with its cursor at once")
	fs.IntVar(&c.Window, "window", 100, "closed loop: events published beyond what every client has received")
	fs.IntVar(&c.Publishers, "publishers", 4, "closed loop: concurrent publishers")
	fs.StringVar(&o.paths, "paths", "", "what to measure, comma-separated: switchboard (one node), bare (the baselines), redis (two nodes over Redis) (default switchboard,bare, and redis with --redis)")
	fs.StringVar(&o.baselines, "baselines", "small,real,coalesced", "bare variants: small (one frame per message, --small-bytes objects), real (one frame per message, Switchboard's object size), coalesced (Switchboard's size, queued objects in one frame)")
	fs.IntVar(&c.SmallBytes, "small-bytes", 150, "object size of the small baseline")
	fs.IntVar(&c.RealBytes, "real-bytes", 0, "object size of the real-size baselines (default: measured on Switchboard)")
	fs.IntVar(&c.Parallel, "parallel", 100, "connections dialled at once")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "Switchboard's database: sqlite:PATH or postgres://… (default: SQLite in a temporary directory)")
	fs.StringVar(&c.RedisURL, "redis", "", "redis://127.0.0.1:P/N: also measure two Switchboard nodes over this Redis (share --database-url: PostgreSQL for a real cluster)")
	fs.BoolVar(&c.Verify, "verify", false, "clients decode every object in full and cross-check (slower clients)")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write the server process's CPU profile over the Switchboard phases to this file")
	fs.StringVar(&c.MemProfile, "memprofile", "", "write the server process's heap profile, with the Switchboard clients connected and idle, to this file")
	fs.BoolVar(&o.inProcess, "inprocess", false, "run the clients in this process (CPU and memory figures then include them)")
	fs.StringVar(&o.jsonOut, "json", "", "also write the report as JSON to this file")
	fs.StringVar(&o.logLevel, "log-level", "warn", "level of the Switchboard server's log on stderr")
	return fs, o
}

func benchFanout(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, o := benchFlags(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "switchboard: bench fanout: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg := o.cfg
	cfg.Rates = []float64{}
	for _, s := range splitList(o.rates) {
		r, err := strconv.ParseFloat(s, 64)
		if err != nil || r <= 0 {
			fmt.Fprintf(stderr, "switchboard: bench fanout: --rate: %q is not a positive number\n", s)
			return 2
		}
		cfg.Rates = append(cfg.Rates, r)
	}
	cfg.Paths = splitList(o.paths)
	cfg.Baselines = splitList(o.baselines)
	cfg.Progress = stderr
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel(o.logLevel)}))
	if !o.inProcess {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "switchboard: bench fanout: find this program to start the clients: %v\n", err)
			return 1
		}
		cfg.Loadgen = []string{exe, "bench", "clients"}
	}
	rep, err := fanoutbench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "switchboard: bench fanout: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout)
	if err := rep.WriteTable(stdout); err != nil {
		return 1
	}
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintf(stderr, "switchboard: bench fanout: %v\n", err)
			return 1
		}
	}
	for _, p := range rep.Phases {
		if !p.Valid {
			return 1
		}
	}
	return 0
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
