package fanoutbench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// The driver (servers under test) and the load generator (WebSocket clients and the
// publisher) talk in JSON lines: one request, one response. Keeping the clients in their
// own process keeps their memory and CPU out of the server's figures.

type request struct {
	Op      string       `json:"op"` // connect, run, close, quit
	Connect *connectSpec `json:"connect,omitempty"`
	Run     *runSpec     `json:"run,omitempty"`
}

type connectSpec struct {
	URLs     []string `json:"urls"`              // ws://127.0.0.1:P/ws; client i uses URLs[i % len], its group
	Origins  []string `json:"origins"`           // the Origin header for each URL
	Cookies  []string `json:"cookies,omitempty"` // "name=value"; client i uses Cookies[i % len]
	Clients  int      `json:"clients"`
	Parallel int      `json:"parallel"`
	Verify   bool     `json:"verify"` // decode every object fully and cross-check the fast parser
	Resume   bool     `json:"resume"` // reconnect with the last cursor when a connection ends
	// Spread, when above zero, is the number of channels the clients are spread over:
	// client i follows only channel (i mod Users) mod Spread (its agent's one channel), so
	// it expects only that channel's events. Zero: every client gets every event.
	Spread int `json:"spread,omitempty"`
	Users  int `json:"users,omitempty"`
	// TopicParam makes each spread client name its channel in the URL (?topic=channel:N,
	// N from 1), as the bare server takes it; Switchboard knows it from the membership.
	TopicParam bool `json:"topic_param,omitempty"`
}

// Publisher kinds.
const (
	pubTwilio = "twilio" // Twilio-signed inbound SMS webhooks
	pubBare   = "bare"   // POST /publish?topic=… to the bare server
)

type publishSpec struct {
	Kind       string   `json:"kind"`
	URL        string   `json:"url"`      // where to POST
	SignURL    string   `json:"sign_url"` // twilio: the URL the signature covers
	AuthToken  string   `json:"auth_token,omitempty"`
	AccountSID string   `json:"account_sid,omitempty"`
	Numbers    []string `json:"numbers,omitempty"` // twilio: one To number per channel
	Channels   int      `json:"channels"`
	Customers  int      `json:"customers"` // distinct senders per channel
	RunID      string   `json:"run_id"`    // makes MessageSids unique across runs
	Pad        int      `json:"pad"`       // bytes of padding in each body
}

// Publishing modes.
const (
	modeRate = "rate" // open loop, a fixed number of events per second
	modeMax  = "max"  // closed loop: as fast as the slowest client keeps up, Window events ahead
)

type runSpec struct {
	Mode       string        `json:"mode"`
	Rate       float64       `json:"rate"`
	Duration   time.Duration `json:"duration"`
	Window     int           `json:"window"`
	Publishers int           `json:"publishers"`
	Retry      bool          `json:"retry"` // retry a failed publish (same MessageSid) until Drain ends
	Drain      time.Duration `json:"drain"`
	Pub        publishSpec   `json:"pub"`
}

type response struct {
	Op        string         `json:"op"`
	Error     string         `json:"error,omitempty"`
	Connected *connectResult `json:"connected,omitempty"`
	Result    *runResult     `json:"result,omitempty"`
}

type connectResult struct {
	Clients int           `json:"clients"`
	Took    time.Duration `json:"took"`
}

type runResult struct {
	Published   int64         `json:"published"`    // events accepted by the server
	PubFailed   int64         `json:"pub_failed"`   // publishes answered with an error
	PubRetries  int64         `json:"pub_retries"`  // failed attempts retried
	PubLag      time.Duration `json:"pub_lag"`      // rate mode: worst lateness of a publish behind schedule
	Expected    int64         `json:"expected"`     // Σ over clients of the accepted events each follows
	PerEvent    float64       `json:"per_event"`    // clients each event reaches
	Delivered   int64         `json:"delivered"`    // event objects received
	Messages    int64         `json:"messages"`     // WebSocket messages received
	Presence    int64         `json:"presence"`     // presence frames received (not events)
	Bytes       int64         `json:"bytes"`        // bytes of event objects received
	Incomplete  int           `json:"incomplete"`   // clients that did not get every event
	Errors      int64         `json:"errors"`       // gaps, duplicates, bad objects, disconnects
	FirstError  string        `json:"first_error"`  // one example
	Disconnects int           `json:"disconnects"`  // clients whose connection ended
	Elapsed     time.Duration `json:"elapsed"`      // first publish to last delivery
	Commit      Latency       `json:"commit"`       // created_at (server) to client
	GroupCommit []Latency     `json:"group_commit"` // the same per group (URL) of clients
	Resumes     Latency       `json:"resumes"`      // resume mode: lost connection to hello, per reconnect
	AllResumed  time.Duration `json:"all_resumed"`  // resume mode: first lost connection to the last hello
	Send        Latency       `json:"send"`         // publisher's send time to client
	ClientCPU   time.Duration `json:"client_cpu"`   // load generator's CPU during the run
	PublishTook time.Duration `json:"publish_took"` // how long publishing ran
}

// loadgen is the driver's handle on a load generator.
type loadgen struct {
	enc  *json.Encoder
	dec  *json.Decoder
	stop func() error
	mu   sync.Mutex
}

func (l *loadgen) call(req request) (*response, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.enc.Encode(req); err != nil {
		return nil, fmt.Errorf("fanoutbench: load generator: send %s: %w", req.Op, err)
	}
	var resp response
	if err := l.dec.Decode(&resp); err != nil {
		return nil, fmt.Errorf("fanoutbench: load generator: answer to %s: %w", req.Op, err)
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("fanoutbench: load generator: %s: %s", req.Op, resp.Error)
	}
	return &resp, nil
}

func (l *loadgen) close() error {
	_, err := l.call(request{Op: "quit"})
	return errors.Join(err, l.stop())
}

// startLoadgen runs the load generator: argv as a child process (its stderr goes to
// ours), or in this process when argv is empty.
func startLoadgen(ctx context.Context, argv, env []string) (*loadgen, error) {
	if len(argv) == 0 {
		reqR, reqW := io.Pipe()
		respR, respW := io.Pipe()
		done := make(chan error, 1)
		go func() {
			err := ServeLoad(ctx, reqR, respW)
			respW.CloseWithError(io.EOF)
			done <- err
		}()
		return &loadgen{
			enc: json.NewEncoder(reqW), dec: json.NewDecoder(bufio.NewReader(respR)),
			stop: func() error { reqW.Close(); return <-done },
		}, nil
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("fanoutbench: start load generator %q: %w", argv, err)
	}
	return &loadgen{
		enc: json.NewEncoder(in), dec: json.NewDecoder(bufio.NewReader(out)),
		stop: func() error { in.Close(); return cmd.Wait() },
	}, nil
}
