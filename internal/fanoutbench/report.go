package fanoutbench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// find returns the phase of path in mode (and rate, for rate mode), or nil.
func (r *Report) find(path, mode string, rate float64) *PhaseResult {
	for i := range r.Phases {
		p := &r.Phases[i]
		if p.Path == path && p.Mode == mode && (mode != modeRate || p.Rate == rate) {
			return p
		}
	}
	return nil
}

func (r *Report) memory(path string) *MemResult {
	for i := range r.Memory {
		if r.Memory[i].Path == path {
			return &r.Memory[i]
		}
	}
	return nil
}

// baselines lists the bare paths present, small one-frame first.
func (r *Report) baselines() []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range r.Phases {
		if strings.HasPrefix(p.Path, PathBare+"/") && !seen[p.Path] {
			seen[p.Path] = true
			out = append(out, p.Path)
		}
	}
	return out
}

// oneFrameSmall is the baseline: one frame per message, the small objects.
func (r *Report) oneFrameSmall() string {
	for _, b := range r.baselines() {
		if strings.HasPrefix(b, "bare/1-frame") {
			return b
		}
	}
	return ""
}

// evaluate checks the run against issue 3's targets.
func evaluate(r *Report) []Target {
	var out []Target
	base := r.oneFrameSmall()

	t := Target{Name: "throughput at 1,000 subscribers ≥ bare one-frame-per-message baseline", Status: "not measured"}
	sb, bare := r.find(PathSwitchboard, modeMax, 0), r.find(base, modeMax, 0)
	if sb != nil && bare != nil {
		ratio := sb.DeliveriesPerSec / bare.DeliveriesPerSec
		t.Detail = fmt.Sprintf("%.0f vs %.0f deliveries/s (%.2f×) at %d clients; %.2f vs %.2f µs server CPU per delivery",
			sb.DeliveriesPerSec, bare.DeliveriesPerSec, ratio, sb.Clients, sb.CPUPerDelivery, bare.CPUPerDelivery)
		if sb.OtherLoad > 0.2 || bare.OtherLoad > 0.2 {
			t.Detail += fmt.Sprintf(" (disturbed: other processes used %.2f and %.2f CPUs)", sb.OtherLoad, bare.OtherLoad)
		}
		switch {
		case !sb.Valid || !bare.Valid:
			t.Detail += "; a phase was invalid"
		case sb.Clients != 1000:
			t.Status = "not measured"
			t.Detail += " (the target is set at 1,000 clients)"
		case ratio >= 1:
			t.Status = "met"
		default:
			t.Status = "not met"
		}
	}
	out = append(out, t)

	t = Target{Name: "p99 commit-to-client < 50 ms with 10,000 connections at 1,000 deliveries/s (one node)", Status: "not measured"}
	var details []string
	for _, p := range r.Phases {
		if p.Path != PathSwitchboard || p.Mode != modeRate {
			continue
		}
		offered := p.Rate * p.PerEvent
		details = append(details, fmt.Sprintf("p99 %v at %.0f deliveries/s, %d clients, %.0f per event", ms(p.Commit.P99), offered, p.Clients, p.PerEvent))
		if p.Clients < 10000 || offered < 1000 || !p.Valid {
			continue
		}
		if p.Commit.P99 < 50*time.Millisecond {
			t.Status = "met"
		} else if t.Status != "met" {
			t.Status = "not met"
		}
	}
	t.Detail = strings.Join(details, "; ")
	out = append(out, t)

	t = Target{Name: "server memory per idle connection ≤ 1.25× the bare baseline's", Status: "not measured"}
	if ms, mb := r.memory(PathSwitchboard), r.memory(PathBare); ms != nil && mb != nil && mb.HeapStackPerConn > 0 {
		ratio := ms.HeapStackPerConn / mb.HeapStackPerConn
		t.Detail = fmt.Sprintf("%.1f vs %.1f KiB heap+stacks (%.2f×); RSS %.1f vs %.1f KiB", ms.HeapStackPerConn/1024,
			mb.HeapStackPerConn/1024, ratio, ms.RSSPerConn/1024, mb.RSSPerConn/1024)
		if r.Machine.ClientsInProcess {
			t.Detail += "; clients ran in the server's process, so these include theirs"
		} else if ratio <= 1.25 {
			t.Status = "met"
		} else {
			t.Status = "not met"
		}
	}
	out = append(out, t)

	t = Target{Name: "p99 commit-to-client < 100 ms across two nodes over Redis (10,000 connections, 1,000 deliveries/s)", Status: "not measured", Detail: "run with --redis"}
	details = nil
	for _, p := range r.Phases {
		if p.Path != labelRedis || p.Mode != modeRate || len(p.CommitByNode) < 2 {
			continue
		}
		far := p.CommitByNode[1] // clients on the node that did not take the webhooks
		details = append(details, fmt.Sprintf("p99 %v for the clients on the other node (%v on the webhook's node) at %.0f deliveries/s, %d clients, %.0f per event",
			ms(far.P99), ms(p.CommitByNode[0].P99), p.Rate*p.PerEvent, p.Clients, p.PerEvent))
		if !p.Valid || p.Clients < 10000 || p.Rate*p.PerEvent < 1000 {
			continue
		}
		if far.P99 < 100*time.Millisecond {
			t.Status = "met"
		} else if t.Status != "met" {
			t.Status = "not met"
		}
	}
	if details != nil {
		t.Detail = strings.Join(details, "; ")
	}
	out = append(out, t)

	t = Target{Name: "10,000 clients reconnecting at once (a node restart) all resumed within 30 s, nothing lost", Status: "not measured", Detail: "run with --restart"}
	if p := r.find(PathSwitchboard, modeRestart, 0); p != nil {
		t.Detail = fmt.Sprintf("%d clients all resumed %v after the first lost connection (node away %v; per client p99 %v); %d events, %s",
			p.Clients, p.AllResumed.Round(time.Millisecond), p.Downtime.Round(time.Millisecond), ms(p.Resumes.P99), p.Published, validText(p))
		switch {
		case !p.Valid || p.AllResumed >= 30*time.Second:
			t.Status = "not met"
		case p.Clients >= 10000:
			t.Status = "met"
		}
	}
	out = append(out, t)
	return out
}

// WriteTable prints the results, the ratios against the baselines and the targets.
func (r *Report) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "Machine: %s, %d CPUs (GOMAXPROCS %d), %s, %s; open files %d (hard %d)\n", m.CPU, m.NumCPU, m.GOMAXPROCS, m.GoVersion, m.OS, m.FileLimit, m.FileLimitHard)
	c := r.Config
	fmt.Fprintf(w, "Run: %d clients, %d SMS channels, %d agents, %d senders per channel, %s per phase, closed-loop window %d events with %d publishers; Switchboard on %s\n",
		c.Clients, c.Channels, c.Users, c.Customers, c.Duration, c.Window, c.Publishers, c.Database)
	if c.Spread {
		fmt.Fprintf(w, "Spread: agent u is in channel u mod %d only; each event reaches %d clients.\n", c.Channels, c.Clients/c.Channels)
	} else {
		fmt.Fprintln(w, "Not spread: every agent is in every channel; each event reaches every client.")
	}
	if m.ClientsInProcess {
		fmt.Fprintln(w, "Clients ran in the server's process: CPU and memory figures include the clients'.")
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\tclients\tload\tdeliveries/s\tp50\tp99\tp999\tmax\tCPU µs/delivery\tobjects/write\tB/object\tidle KiB/conn (heap+stacks | RSS)\tother load (CPUs)\tvalid\t")
	for _, p := range r.Phases {
		mem := "-"
		kind := p.Path
		if strings.HasPrefix(kind, PathBare+"/") {
			kind = PathBare
		}
		if mr := r.memory(kind); mr != nil {
			mem = fmt.Sprintf("%.1f | %.1f", mr.HeapStackPerConn/1024, mr.RSSPerConn/1024)
		}
		valid := "yes"
		if !p.Valid {
			valid = "NO"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\t%s\t%s\t%s\t%s\t%.2f\t%.1f\t%.0f\t%s\t%.2f\t%s\t\n", p.Path, p.Clients, p.modeLabel(),
			p.DeliveriesPerSec, ms(p.Commit.P50), ms(p.Commit.P99), ms(p.Commit.P999), ms(p.Commit.Max),
			p.CPUPerDelivery, p.ObjectsPerWrite, p.ObjectBytes, mem, p.OtherLoad, valid)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "Other load: CPUs' worth used by other processes on the machine during the phase (/proc/stat minus this run's two processes); above ~0.2 the latency and throughput figures are disturbed.")
	fmt.Fprintln(w, "Latency: commit→client, from the created_at the server writes (Switchboard: inside the webhook's transaction, just before commit; bare: at publish) to the client's read.")
	for _, p := range r.Phases {
		if !p.Valid {
			fmt.Fprintf(w, "INVALID %s %s: %s\n", p.Path, p.modeLabel(), p.Problem)
		}
	}

	if len(r.baselines()) > 0 && r.memory(PathSwitchboard) != nil {
		fmt.Fprintln(w, "\nSwitchboard / baseline:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "baseline\tload\tdeliveries/s\tp99\tCPU/delivery\tidle heap+stacks/conn\t")
		for _, b := range r.baselines() {
			for _, ph := range r.Phases {
				if ph.Path != PathSwitchboard {
					continue
				}
				o := r.find(b, ph.Mode, ph.Rate)
				if o == nil {
					continue
				}
				mem := "-"
				if ms, mb := r.memory(PathSwitchboard), r.memory(PathBare); ms != nil && mb != nil && mb.HeapStackPerConn > 0 {
					mem = fmt.Sprintf("%.2f×", ms.HeapStackPerConn/mb.HeapStackPerConn)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", b, ph.modeLabel(), ratio(ph.DeliveriesPerSec, o.DeliveriesPerSec),
					ratio(float64(ph.Commit.P99), float64(o.Commit.P99)), ratio(ph.CPUPerDelivery, o.CPUPerDelivery), mem)
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w, "\nIssue 3 targets:")
	for _, t := range r.Targets {
		fmt.Fprintf(w, "  [%s] %s: %s\n", t.Status, t.Name, t.Detail)
	}
	return nil
}

func validText(p *PhaseResult) string {
	if p.Valid {
		return "every one delivered to every client exactly once, in order"
	}
	return "INVALID: " + p.Problem
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}
