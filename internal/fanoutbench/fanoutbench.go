// Package fanoutbench measures Switchboard's fan-out against a bare broadcast server
// written directly on coder/websocket, in one run, on loopback.
//
// The driver (Run) hosts the servers under test; a load generator (ServeLoad, normally
// `switchboard bench clients` in a child process) holds the WebSocket clients and the
// publisher, so the server's CPU and memory figures are its own. For each server it
// connects N clients, measures memory per idle connection, then runs fixed-rate phases
// (latency at a known load) and a closed-loop phase (throughput: as fast as the slowest
// client keeps up), checking that every client got every event exactly once, in order.
//
// Switchboard is driven through its real path: Twilio-signed inbound webhooks over HTTP,
// each a database transaction whose event is published after commit on the bus, ordered
// by the hub and fanned out to the connections following the SMS channel.
package fanoutbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

// Paths and baseline variants.
const (
	PathSwitchboard = "switchboard"
	PathBare        = "bare"
	PathRedis       = "redis" // two Switchboard nodes on one database and one Redis

	labelRedis = "switchboard/2 nodes"

	BaselineSmall     = "small"     // one WebSocket message per event, ~SmallBytes objects
	BaselineReal      = "real"      // one message per event, objects the size of Switchboard's
	BaselineCoalesced = "coalesced" // whatever is queued in one message, Switchboard's size
)

// Config is one benchmark run. Zero values take the documented defaults.
type Config struct {
	Clients  int // WebSocket clients; default 1,000
	Channels int // SMS channels (Twilio numbers) the events are spread over; default 4
	// Spread spreads the clients over the channels too: agent u belongs to channel
	// u mod Channels only (Switchboard: an explicit membership; bare: ?topic=), so each
	// event reaches Clients/Channels clients instead of all of them. Off, every agent is
	// in every SMS channel (the product's default) and every event reaches every client.
	Spread    bool
	Users     int           // agents the clients log in as (client i uses user i mod Users); default 100, at most Clients
	Customers int           // distinct senders per channel; default 50
	Rates     []float64     // fixed-rate phases, events per second; default [100]
	Duration  time.Duration // of each phase; default 10 s
	SkipMax   bool          // skip the closed-loop throughput phase
	// Restart adds a phase to the one-node path: events at the first rate while the node
	// restarts a third of the way in; every client reconnects with its cursor at once.
	Restart    bool
	Window     int           // closed loop: events published beyond what every client has; default 100
	Publishers int           // concurrent publishers in the closed loop; default 4
	Paths      []string      // PathSwitchboard, PathBare, PathRedis; default the first two, and PathRedis with RedisURL
	Baselines  []string      // bare variants; default all three
	SmallBytes int           // size of the small baseline's objects; default 150
	RealBytes  int           // size of the "real" baseline objects; default: measured on Switchboard
	Parallel   int           // dials at once; default 100
	Settle     time.Duration // wait after connecting before measuring memory; default 2 s

	// DatabaseURL is Switchboard's database; default a SQLite file in a temporary directory.
	DatabaseURL string
	// RedisURL is the Redis of the two-node path (PathRedis); both nodes run in this
	// process, share DatabaseURL (PostgreSQL in a real cluster) and use a fresh key prefix.
	RedisURL string
	// RedisPrefix starts the two-node path's Redis keys; default a fresh one per run.
	RedisPrefix string
	// Verify decodes every object in full and cross-checks the fast parser (slower clients).
	Verify bool
	// CPUProfile, when set, is written with the driver's CPU profile over the
	// Switchboard phases.
	CPUProfile string
	// MemProfile, when set, is written with the driver's heap profile once the Switchboard
	// clients are connected and idle.
	MemProfile string
	// Loadgen is the argv of the load generator process (which runs ServeLoad on its
	// stdin and stdout); empty runs it in this process, whose CPU and memory figures then
	// include the clients'.
	Loadgen    []string
	LoadgenEnv []string
	// Progress receives a line per step; default discard.
	Progress io.Writer
	// Logger receives the Switchboard server's logs; default discard.
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Clients <= 0 {
		c.Clients = 1000
	}
	if c.Channels <= 0 {
		c.Channels = 4
	}
	if c.Users <= 0 {
		c.Users = 100
	}
	c.Users = min(c.Users, c.Clients)
	if c.Customers <= 0 {
		c.Customers = 50
	}
	if c.Rates == nil {
		c.Rates = []float64{100}
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Window <= 0 {
		c.Window = 100
	}
	if c.Publishers <= 0 {
		c.Publishers = 4
	}
	if len(c.Paths) == 0 {
		c.Paths = []string{PathSwitchboard, PathBare}
		if c.RedisURL != "" {
			c.Paths = append(c.Paths, PathRedis)
		}
	}
	if len(c.Baselines) == 0 {
		c.Baselines = []string{BaselineSmall, BaselineReal, BaselineCoalesced}
	}
	if c.SmallBytes <= 0 {
		c.SmallBytes = 150
	}
	if c.Parallel <= 0 {
		c.Parallel = 100
	}
	if c.Settle <= 0 {
		c.Settle = 2 * time.Second
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	for _, p := range c.Paths {
		switch p {
		case PathSwitchboard, PathBare:
		case PathRedis:
			if c.RedisURL == "" {
				return errors.New("fanoutbench: the two-node path needs a Redis URL")
			}
			if err := loopback(c.RedisURL); err != nil {
				return err
			}
		default:
			return fmt.Errorf("fanoutbench: unknown path %q (want %s, %s or %s)", p, PathSwitchboard, PathBare, PathRedis)
		}
	}
	for _, b := range c.Baselines {
		if b != BaselineSmall && b != BaselineReal && b != BaselineCoalesced {
			return fmt.Errorf("fanoutbench: unknown baseline %q (want %s, %s or %s)", b, BaselineSmall, BaselineReal, BaselineCoalesced)
		}
	}
	for _, r := range c.Rates {
		if r <= 0 {
			return fmt.Errorf("fanoutbench: rate %v is not positive", r)
		}
	}
	if c.Spread && c.Channels > c.Users {
		return fmt.Errorf("fanoutbench: spreading over %d channels needs at least as many users (have %d)", c.Channels, c.Users)
	}
	if len(c.Rates) == 0 && c.SkipMax {
		return errors.New("fanoutbench: no phase to run: no rates and the closed loop skipped")
	}
	return nil
}

// Report is what a run measured.
type Report struct {
	Machine Machine       `json:"machine"`
	Config  ReportConfig  `json:"config"`
	Memory  []MemResult   `json:"memory"`
	Phases  []PhaseResult `json:"phases"`
	Targets []Target      `json:"targets"`
}

// Machine describes where the run happened.
type Machine struct {
	CPU              string `json:"cpu"`
	NumCPU           int    `json:"num_cpu"`
	GOMAXPROCS       int    `json:"gomaxprocs"`
	GoVersion        string `json:"go_version"`
	OS               string `json:"os"`
	FileLimit        uint64 `json:"file_limit"`
	FileLimitHard    uint64 `json:"file_limit_hard"`
	ClientsInProcess bool   `json:"clients_in_process"`
}

// ReportConfig is the part of the Config a reader needs to interpret the figures.
type ReportConfig struct {
	Clients    int       `json:"clients"`
	Channels   int       `json:"channels"`
	Spread     bool      `json:"spread"` // clients spread over the channels: each event reaches Clients/Channels of them
	Users      int       `json:"users"`
	Customers  int       `json:"customers"`
	Rates      []float64 `json:"rates"`
	Duration   string    `json:"duration"`
	Window     int       `json:"window"`
	Publishers int       `json:"publishers"`
	Database   string    `json:"database"`
}

// MemResult is a server's memory with N idle connections, per connection.
type MemResult struct {
	Path              string        `json:"path"`
	Clients           int           `json:"clients"`
	ConnectTook       time.Duration `json:"connect_took"`
	HeapStackPerConn  float64       `json:"heap_stack_per_conn"` // bytes: Go heap in use + goroutine stacks, after GC
	StackPerConn      float64       `json:"stack_per_conn"`      // bytes: the goroutine stacks' part
	RSSPerConn        float64       `json:"rss_per_conn"`        // bytes: resident set after GC and FreeOSMemory
	GoroutinesPerConn float64       `json:"goroutines_per_conn"`
}

// PhaseResult is one phase of one path.
type PhaseResult struct {
	Path             string        `json:"path"` // e.g. "switchboard", "bare/1-frame 150 B"
	Clients          int           `json:"clients"`
	Mode             string        `json:"mode"`      // "rate" or "max"
	Rate             float64       `json:"rate"`      // offered events/s (rate mode)
	PerEvent         float64       `json:"per_event"` // clients each event reaches
	Published        int64         `json:"published"`
	Delivered        int64         `json:"delivered"`
	Expected         int64         `json:"expected"`
	Elapsed          time.Duration `json:"elapsed"`
	DeliveriesPerSec float64       `json:"deliveries_per_sec"`
	Commit           Latency       `json:"commit_latency"`                   // server timestamp (created_at) to client
	CommitByNode     []Latency     `json:"commit_latency_by_node,omitempty"` // several nodes: per node the clients are on (webhooks go to the first)
	Send             Latency       `json:"send_latency"`                     // publisher's send to client
	CPUPerDelivery   float64       `json:"cpu_per_delivery_us"`
	ClientCPUPerDel  float64       `json:"client_cpu_per_delivery_us"`
	ObjectsPerWrite  float64       `json:"objects_per_write"`
	ObjectBytes      float64       `json:"object_bytes"`
	PubLag           time.Duration `json:"pub_lag"`
	OtherLoad        float64       `json:"other_load"`      // CPUs' worth used by other processes during the phase
	PresenceFrames   int64         `json:"presence_frames"` // presence frames the clients got during the phase
	// Restart phase: the node's time away, each client's time from losing its connection
	// to the hello of its resumed one, and the first lost connection to the last resume.
	Downtime   time.Duration `json:"downtime,omitempty"`
	Resumes    Latency       `json:"resumes"`
	AllResumed time.Duration `json:"all_resumed,omitempty"`
	PubRetries int64         `json:"pub_retries,omitempty"`
	Valid      bool          `json:"valid"`
	Problem    string        `json:"problem,omitempty"`
}

// Target is one of issue 3's targets and whether this run met it.
type Target struct {
	Name   string `json:"name"`
	Status string `json:"status"` // met, not met, not measured
	Detail string `json:"detail"`
}

type driver struct {
	cfg Config
	lg  *loadgen
	rep *Report
}

// Run runs the benchmark and returns its report. Every phase stops by itself; ctx ends
// the run early.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	soft, hard, err := raiseFileLimit()
	if err != nil {
		return nil, fmt.Errorf("fanoutbench: raise the open-file limit: %w", err)
	}
	// Each side holds one descriptor per connection, plus a few hundred of its own.
	if need := uint64(cfg.Clients + 512); soft < need {
		return nil, fmt.Errorf("fanoutbench: %d clients need an open-file limit of at least %d; the hard limit is %d (raise it with ulimit -Hn)", cfg.Clients, need, hard)
	}
	d := &driver{cfg: cfg, rep: &Report{
		Machine: Machine{
			CPU: cpuModel(), NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
			GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH,
			FileLimit: soft, FileLimitHard: hard, ClientsInProcess: len(cfg.Loadgen) == 0,
		},
		Config: ReportConfig{
			Clients: cfg.Clients, Channels: cfg.Channels, Spread: cfg.Spread, Users: cfg.Users, Customers: cfg.Customers,
			Rates: cfg.Rates, Duration: cfg.Duration.String(), Window: cfg.Window, Publishers: cfg.Publishers,
			Database: databaseKind(cfg.DatabaseURL),
		},
	}}
	d.logf("machine: %s, %d CPUs (GOMAXPROCS %d), %s, open files %d (hard %d)", d.rep.Machine.CPU,
		d.rep.Machine.NumCPU, d.rep.Machine.GOMAXPROCS, d.rep.Machine.GoVersion, soft, hard)
	if d.lg, err = startLoadgen(ctx, cfg.Loadgen, cfg.LoadgenEnv); err != nil {
		return nil, err
	}
	err = d.run(ctx)
	err = errors.Join(err, d.lg.close())
	if err != nil {
		return nil, err
	}
	d.rep.Targets = evaluate(d.rep)
	return d.rep, nil
}

// spread is the connect spec's Spread: the channels, or 0 when every client gets everything.
func (d *driver) spread() int {
	if d.cfg.Spread {
		return d.cfg.Channels
	}
	return 0
}

func (d *driver) logf(format string, args ...any) {
	fmt.Fprintf(d.cfg.Progress, format+"\n", args...)
}

func (d *driver) run(ctx context.Context) error {
	realBytes := d.cfg.RealBytes
	if slices.Contains(d.cfg.Paths, PathSwitchboard) {
		measured, err := d.runSwitchboard(ctx, PathSwitchboard, 1, "")
		if err != nil {
			return err
		}
		if realBytes <= 0 {
			realBytes = measured
		}
	}
	if slices.Contains(d.cfg.Paths, PathBare) {
		if err := d.runBare(ctx, realBytes); err != nil {
			return err
		}
	}
	if slices.Contains(d.cfg.Paths, PathRedis) {
		if _, err := d.runSwitchboard(ctx, labelRedis, 2, d.cfg.RedisURL); err != nil {
			return err
		}
	}
	return nil
}

// runSwitchboard measures Switchboard on nodes nodes (two or more need Redis) and returns
// the mean size of its event objects. Clients spread over the nodes; webhooks go to the
// first.
func (d *driver) runSwitchboard(ctx context.Context, label string, nodes int, redisURL string) (objectBytes int, err error) {
	d.logf("%s: starting %d node(s) (%s), %d agents, %d SMS channels", label, nodes, d.rep.Config.Database, d.cfg.Users, d.cfg.Channels)
	t, err := startSwitchboard(ctx, d.cfg.DatabaseURL, redisURL, d.cfg.RedisPrefix, nodes, d.cfg.Users, d.cfg.Channels, d.cfg.Spread, d.cfg.Logger)
	if err != nil {
		return 0, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = errors.Join(err, t.close(sctx))
	}()
	profileHeap := d.cfg.MemProfile != "" && nodes == 1
	rate := runtime.MemProfileRate
	if profileHeap {
		// Record every allocation while the clients connect (the per-connection structures
		// are small), and only then: recording costs a stack walk per allocation.
		runtime.MemProfileRate = 1
	}
	err = d.connect(ctx, label, t.connectSpec(d.cfg.Clients, d.spread()))
	if profileHeap {
		if err == nil {
			err = writeHeapProfile(d.cfg.MemProfile)
		}
		runtime.MemProfileRate = rate
	}
	if err != nil {
		return 0, err
	}
	defer func() { _, cerr := d.lg.call(request{Op: "close"}); err = errors.Join(err, cerr) }()

	if d.cfg.CPUProfile != "" && nodes == 1 {
		f, err := os.Create(d.cfg.CPUProfile)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, err
		}
		defer pprof.StopCPUProfile()
	}
	pub := t.publishSpec(d.cfg.Customers)
	counters := func() (int64, int64) { return t.counters(ctx) }
	var bytes, n float64
	for _, ph := range d.phases() {
		r, err := d.phase(ctx, label, ph, pub, counters)
		if err != nil {
			return 0, err
		}
		if r.Delivered > 0 {
			bytes += r.ObjectBytes * float64(r.Delivered)
			n += float64(r.Delivered)
		}
	}
	if n > 0 {
		objectBytes = int(bytes/n + 0.5)
	}
	if d.cfg.Restart && nodes == 1 {
		if err := d.restartPhase(ctx, t, pub, counters); err != nil {
			return 0, err
		}
	}
	return objectBytes, nil
}

// restartPhase publishes at the first rate (retrying, as Twilio does, while the node is
// away) and restarts the node a third of the way in.
func (d *driver) restartPhase(ctx context.Context, t *sbTarget, pub publishSpec, counters func() (int64, int64)) error {
	rate := 10.0
	if len(d.cfg.Rates) > 0 {
		rate = d.cfg.Rates[0]
	}
	type outcome struct {
		took time.Duration
		err  error
	}
	done := make(chan outcome, 1)
	timer := time.AfterFunc(d.cfg.Duration/3, func() {
		took, err := t.restart(ctx)
		done <- outcome{took, err}
	})
	r, err := d.phase(ctx, PathSwitchboard, phaseDef{mode: modeRestart, rate: rate}, pub, counters)
	if !timer.Stop() {
		o := <-done
		if o.err != nil {
			return o.err
		}
		if r != nil {
			r.Downtime = o.took
			d.rep.Phases[len(d.rep.Phases)-1].Downtime = o.took
			d.logf("  node away for %v; every client resumed within %v of the first lost connection (per client p50 %v, p99 %v, max %v)",
				o.took.Round(time.Millisecond), r.AllResumed.Round(time.Millisecond), ms(r.Resumes.P50), ms(r.Resumes.P99), ms(r.Resumes.Max))
		}
	}
	return err
}

func (d *driver) runBare(ctx context.Context, realBytes int) (err error) {
	d.logf("bare: starting the coder/websocket broadcast server")
	b, err := startBare()
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err = errors.Join(err, b.close(sctx))
	}()
	addr := b.ln.Addr().String()
	spec := connectSpec{URLs: []string{"ws://" + addr + "/ws"}, Origins: []string{b.baseURL()}, Clients: d.cfg.Clients,
		Spread: d.spread(), Users: d.cfg.Users, TopicParam: true}
	if err := d.connect(ctx, PathBare, spec); err != nil {
		return err
	}
	defer func() { _, cerr := d.lg.call(request{Op: "close"}); err = errors.Join(err, cerr) }()

	counters := func() (int64, int64) { return b.objects.Load(), b.writes.Load() }
	for _, variant := range d.cfg.Baselines {
		size, coalesce, name := realBytes, false, ""
		switch variant {
		case BaselineSmall:
			size, name = d.cfg.SmallBytes, fmt.Sprintf("bare/1-frame %d B", d.cfg.SmallBytes)
		case BaselineReal:
			name = fmt.Sprintf("bare/1-frame %d B", realBytes)
		case BaselineCoalesced:
			coalesce, name = true, fmt.Sprintf("bare/coalesced %d B", realBytes)
		}
		if size <= 0 {
			d.logf("bare: skipping the %q baseline: no Switchboard object size measured (run the switchboard path or give RealBytes)", variant)
			continue
		}
		b.coalesce.Store(coalesce)
		pub := publishSpec{Kind: pubBare, URL: b.baseURL() + "/publish", Channels: d.cfg.Channels, Pad: barePad(size)}
		for _, ph := range d.phases() {
			if _, err := d.phase(ctx, name, ph, pub, counters); err != nil {
				return err
			}
		}
	}
	return nil
}

// connect connects the clients and measures the server's memory per idle connection.
func (d *driver) connect(ctx context.Context, path string, spec connectSpec) error {
	spec.Parallel, spec.Verify = d.cfg.Parallel, d.cfg.Verify
	spec.Resume = d.cfg.Restart && path == PathSwitchboard
	before := sampleMem()
	resp, err := d.lg.call(request{Op: "connect", Connect: &spec})
	if err != nil {
		return err
	}
	// Let the connections settle (handshake garbage, session touches) before measuring.
	select {
	case <-time.After(d.cfg.Settle):
	case <-ctx.Done():
		return ctx.Err()
	}
	after := sampleMem()
	n := float64(resp.Connected.Clients)
	m := MemResult{
		Path: path, Clients: resp.Connected.Clients, ConnectTook: resp.Connected.Took,
		HeapStackPerConn:  (float64(after.heapStack) - float64(before.heapStack)) / n,
		StackPerConn:      (float64(after.stack) - float64(before.stack)) / n,
		RSSPerConn:        (float64(after.rss) - float64(before.rss)) / n,
		GoroutinesPerConn: float64(after.goroutines-before.goroutines) / n,
	}
	d.rep.Memory = append(d.rep.Memory, m)
	d.logf("%s: %d clients connected in %v; idle: %.1f KiB heap+stacks (%.1f KiB stacks), %.1f KiB RSS, %.1f goroutines per connection",
		path, m.Clients, m.ConnectTook.Round(time.Millisecond), m.HeapStackPerConn/1024, m.StackPerConn/1024, m.RSSPerConn/1024, m.GoroutinesPerConn)
	return nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	return errors.Join(pprof.WriteHeapProfile(f), f.Close())
}

type memSample struct {
	heapStack, stack, rss uint64
	goroutines            int
}

func sampleMem() memSample {
	runtime.GC()
	debug.FreeOSMemory() // a second GC, and returns freed pages so RSS means something
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heapStack: ms.HeapInuse + ms.StackInuse, stack: ms.StackInuse, rss: rssBytes(), goroutines: runtime.NumGoroutine()}
}

const modeRestart = "restart"

type phaseDef struct {
	mode string
	rate float64
}

func (d *driver) phases() []phaseDef {
	var out []phaseDef
	for _, r := range d.cfg.Rates {
		out = append(out, phaseDef{modeRate, r})
	}
	if !d.cfg.SkipMax {
		out = append(out, phaseDef{mode: modeMax})
	}
	return out
}

func (d *driver) phase(ctx context.Context, path string, ph phaseDef, pub publishSpec, counters func() (int64, int64)) (*PhaseResult, error) {
	o0, w0 := counters()
	cpu0, busy0, wall0 := cpuTime(), machineBusy(), time.Now()
	spec := &runSpec{
		Mode: ph.mode, Rate: ph.rate, Duration: d.cfg.Duration, Window: d.cfg.Window,
		Publishers: d.cfg.Publishers, Drain: 15 * time.Second, Pub: pub,
	}
	if ph.mode == modeRestart {
		spec.Mode, spec.Retry, spec.Drain = modeRate, true, time.Minute
	}
	resp, err := d.lg.call(request{Op: "run", Run: spec})
	cpu, busy, wall := cpuTime()-cpu0, machineBusy()-busy0, time.Since(wall0)
	if err != nil {
		return nil, err
	}
	o1, w1 := counters()
	res := resp.Result
	r := &PhaseResult{
		Path: path, Clients: d.cfg.Clients, Mode: ph.mode, Rate: ph.rate, PerEvent: res.PerEvent,
		Published: res.Published, Delivered: res.Delivered, Expected: res.Expected, Elapsed: res.Elapsed,
		Commit: res.Commit, CommitByNode: res.GroupCommit, Send: res.Send, PubLag: res.PubLag, PresenceFrames: res.Presence,
		Resumes: res.Resumes, AllResumed: res.AllResumed, PubRetries: res.PubRetries,
	}
	if res.Elapsed > 0 {
		r.DeliveriesPerSec = float64(res.Delivered) / res.Elapsed.Seconds()
	}
	if res.Delivered > 0 {
		r.CPUPerDelivery = float64(cpu.Nanoseconds()) / 1e3 / float64(res.Delivered)
		r.ClientCPUPerDel = float64(res.ClientCPU.Nanoseconds()) / 1e3 / float64(res.Delivered)
		r.ObjectBytes = float64(res.Bytes) / float64(res.Delivered)
	}
	if busy > 0 {
		r.OtherLoad = max(0, (busy-cpu-res.ClientCPU).Seconds()/wall.Seconds())
	}
	if w1 > w0 && o1 > o0 {
		r.ObjectsPerWrite = float64(o1-o0) / float64(w1-w0)
	}
	var problems []string
	if res.Published == 0 {
		problems = append(problems, "nothing published")
	}
	if res.PubFailed > 0 {
		problems = append(problems, fmt.Sprintf("%d publishes failed", res.PubFailed))
	}
	if res.Incomplete > 0 {
		problems = append(problems, fmt.Sprintf("%d clients missed events (%d of %d delivered)", res.Incomplete, res.Delivered, res.Expected))
	}
	if res.Delivered != res.Expected {
		problems = append(problems, fmt.Sprintf("delivered %d; want %d", res.Delivered, res.Expected))
	}
	if res.Disconnects > 0 {
		problems = append(problems, fmt.Sprintf("%d clients disconnected", res.Disconnects))
	}
	switch {
	case ph.mode == modeRestart && res.Resumes.Samples < uint64(d.cfg.Clients):
		problems = append(problems, fmt.Sprintf("%d of %d clients resumed", res.Resumes.Samples, d.cfg.Clients))
	case ph.mode != modeRestart && res.Resumes.Samples > 0:
		problems = append(problems, fmt.Sprintf("%d clients lost their connection and resumed", res.Resumes.Samples))
	}
	if res.Errors > 0 {
		problems = append(problems, fmt.Sprintf("%d errors, e.g. %s", res.Errors, res.FirstError))
	}
	r.Valid = len(problems) == 0
	r.Problem = strings.Join(problems, "; ")
	d.rep.Phases = append(d.rep.Phases, *r)
	d.logf("%s", r.line())
	for i, l := range r.CommitByNode {
		d.logf("  clients on node %d: p50 %v p99 %v p999 %v", i+1, ms(l.P50), ms(l.P99), ms(l.P999))
	}
	if !r.Valid {
		d.logf("  INVALID: %s", r.Problem)
	}
	return r, nil
}

func (r *PhaseResult) modeLabel() string {
	switch r.Mode {
	case modeMax:
		return "max"
	case modeRestart:
		return fmt.Sprintf("restart@%g", r.Rate)
	}
	return fmt.Sprintf("%g ev/s", r.Rate)
}

func (r *PhaseResult) line() string {
	return fmt.Sprintf("%-24s %-9s %7.0f deliveries/s  p50 %v p99 %v p999 %v  CPU/delivery %.2f µs server, %.2f µs clients  %.1f objects/write  %.0f B/object  other load %.2f CPUs",
		r.Path, r.modeLabel(), r.DeliveriesPerSec, ms(r.Commit.P50), ms(r.Commit.P99), ms(r.Commit.P999),
		r.CPUPerDelivery, r.ClientCPUPerDel, r.ObjectsPerWrite, r.ObjectBytes, r.OtherLoad)
}

// ms rounds a latency for display.
func ms(d time.Duration) string {
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func databaseKind(u string) string {
	switch {
	case u == "":
		return "SQLite (temporary file)"
	case strings.HasPrefix(u, "postgres"):
		return "PostgreSQL"
	case strings.HasPrefix(u, "sqlite:"):
		return "SQLite (" + strings.TrimPrefix(u, "sqlite:") + ")"
	}
	return "unknown"
}
