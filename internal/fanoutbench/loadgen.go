package fanoutbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-hq/switchboard/channels/sms"
)

// ServeLoad runs a load generator: it answers the requests read from in (JSON lines) on
// out until in ends or a quit request arrives. `switchboard bench clients` runs it in its
// own process; the benchmark driver starts that process and talks to it.
func ServeLoad(ctx context.Context, in io.Reader, out io.Writer) error {
	if _, _, err := raiseFileLimit(); err != nil {
		return err
	}
	l := &load{}
	defer l.closeAll()
	dec := json.NewDecoder(in)
	enc := json.NewEncoder(out)
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
				return nil
			}
			return fmt.Errorf("fanoutbench: load generator: read request: %w", err)
		}
		resp := response{Op: req.Op}
		var err error
		switch req.Op {
		case "connect":
			if req.Connect == nil {
				err = errors.New("connect needs a spec")
				break
			}
			resp.Connected, err = l.connect(ctx, req.Connect)
		case "run":
			if req.Run == nil {
				err = errors.New("run needs a spec")
				break
			}
			resp.Result, err = l.run(ctx, req.Run)
		case "close":
			l.closeAll()
		case "quit":
			return enc.Encode(resp)
		default:
			err = fmt.Errorf("unknown op %q", req.Op)
		}
		if err != nil {
			resp.Error = err.Error()
		}
		if err := enc.Encode(resp); err != nil {
			return fmt.Errorf("fanoutbench: load generator: write answer: %w", err)
		}
	}
}

// load is the load generator's state: the connected clients and the publisher's position.
type load struct {
	clients []*client
	wg      sync.WaitGroup // client readers
	closing atomic.Bool
	verify  bool
	resume  bool
	spread  int // channels the clients are spread over; 0: every client gets every event
	hc      *http.Client
	groups  int
	stats   atomic.Pointer[runStats]
	next    atomic.Int64 // index of the next event published, across runs
}

// runStats are the figures of one run, shared by every client reader.
type runStats struct {
	commit, send histogram
	byGroup      []*histogram // commit latency per group of clients
	delivered    atomic.Int64
	presence     atomic.Int64
	messages     atomic.Int64
	bytes        atomic.Int64
	errors       atomic.Int64
	firstErr     atomic.Pointer[string]

	resumes     histogram    // resume mode: each client's time from losing its connection to hello
	firstDown   atomic.Int64 // unix ns of the first lost connection
	lastResumed atomic.Int64 // unix ns of the last hello after a reconnect
}

func (st *runStats) down(at time.Time) {
	st.firstDown.CompareAndSwap(0, at.UnixNano())
}

func (st *runStats) resumed(at time.Time, took time.Duration) {
	st.resumes.add(took)
	for {
		last := st.lastResumed.Load()
		if at.UnixNano() <= last || st.lastResumed.CompareAndSwap(last, at.UnixNano()) {
			return
		}
	}
}

func newRunStats(groups int) *runStats {
	st := &runStats{}
	for range groups {
		st.byGroup = append(st.byGroup, &histogram{})
	}
	return st
}

func (st *runStats) fail(msg string) {
	st.errors.Add(1)
	st.firstErr.CompareAndSwap(nil, &msg)
}

// client is one WebSocket connection and what it has seen.
type client struct {
	id      int
	group   int // which URL it connected to
	channel int // spread mode: the one channel (index from 0) whose events it gets
	url     string
	header  http.Header
	ws      atomic.Pointer[websocket.Conn]
	hello   chan struct{} // closed on the first hello
	dead    chan struct{} // closed when the reader ends
	got     atomic.Int64  // events received in this run
	last    atomic.Int64  // unix ns of the last event received
	gone    atomic.Bool   // the connection ended while it should not have

	helloed bool             // owned by the reader
	seqs    map[string]int64 // owned by the reader: last seq per topic, across runs
	cursor  []byte           // owned by the reader: the last cursor received (resume mode)
	downAt  time.Time        // owned by the reader: when the connection ended, until resumed
}

// loopback refuses anything but a loopback host: the benchmark never leaves the machine.
func loopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
		return nil
	}
	return fmt.Errorf("fanoutbench: %s is not a loopback address", raw)
}

func newTransport(conns int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     time.Minute,
	}
}

func (l *load) connect(ctx context.Context, spec *connectSpec) (*connectResult, error) {
	if len(spec.URLs) == 0 || len(spec.Origins) != len(spec.URLs) {
		return nil, errors.New("connect needs URLs, each with its origin")
	}
	for _, u := range spec.URLs {
		if err := loopback(u); err != nil {
			return nil, err
		}
	}
	l.closeAll()
	l.closing.Store(false)
	l.verify, l.resume, l.spread = spec.Verify, spec.Resume, spec.Spread
	if spec.Spread > 0 && spec.Users <= 0 {
		return nil, errors.New("spread clients need the number of users")
	}
	l.groups = len(spec.URLs)
	l.stats.Store(newRunStats(l.groups))
	l.hc = &http.Client{Transport: newTransport(1)}
	start := time.Now()
	l.clients = make([]*client, spec.Clients)
	sem := make(chan struct{}, max(1, spec.Parallel))
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		dialErr error
		failed  atomic.Bool
	)
	for i := range l.clients {
		if failed.Load() {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := l.start(ctx, spec, i)
			if err != nil {
				failed.Store(true)
				errOnce.Do(func() { dialErr = fmt.Errorf("client %d: %w", i, err) })
				return
			}
			l.clients[i] = c
		}()
	}
	wg.Wait()
	if dialErr != nil {
		l.closeAll()
		return nil, dialErr
	}
	return &connectResult{Clients: len(l.clients), Took: time.Since(start)}, nil
}

// start connects client i and waits for the server's first frame.
func (l *load) start(ctx context.Context, spec *connectSpec, i int) (*client, error) {
	group := i % len(spec.URLs)
	c := &client{
		id: i, group: group, url: spec.URLs[group], header: http.Header{"Origin": {spec.Origins[group]}},
		hello: make(chan struct{}), dead: make(chan struct{}), seqs: map[string]int64{},
	}
	if spec.Spread > 0 {
		c.channel = (i % spec.Users) % spec.Spread
		if spec.TopicParam {
			c.url += "?topic=channel:" + strconv.Itoa(c.channel+1)
		}
	}
	if len(spec.Cookies) > 0 {
		c.header.Set("Cookie", spec.Cookies[i%len(spec.Cookies)])
	}
	// Retry a few times: a burst of thousands of dials can overflow the listen backlog.
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = l.dial(ctx, c); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 100 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	l.wg.Add(1)
	go l.read(c)
	select {
	case <-c.hello:
		return c, nil
	case <-c.dead:
		return nil, errors.New("connection ended before hello")
	case <-time.After(30 * time.Second):
		c.ws.Load().CloseNow()
		return nil, errors.New("no hello within 30 s")
	case <-ctx.Done():
		c.ws.Load().CloseNow()
		return nil, ctx.Err()
	}
}

// dial connects c, resuming from its cursor when it has one.
func (l *load) dial(ctx context.Context, c *client) error {
	u := c.url
	if len(c.cursor) > 0 {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "cursor=" + url.QueryEscape(string(c.cursor))
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(dctx, u, &websocket.DialOptions{HTTPClient: l.hc, HTTPHeader: c.header})
	if err != nil {
		return err
	}
	ws.SetReadLimit(-1) // coalesced writes can be large
	c.ws.Store(ws)
	return nil
}

func (l *load) closeAll() {
	l.closing.Store(true)
	for _, c := range l.clients {
		if c != nil {
			c.ws.Load().CloseNow()
		}
	}
	l.wg.Wait()
	l.clients = nil
}

// read is a client's reader: it splits each WebSocket message into objects and checks
// and times every event. In resume mode a connection that ends is dialled again with the
// last cursor received, as the web app does.
func (l *load) read(c *client) {
	defer l.wg.Done()
	defer close(c.dead)
	var buf bytes.Buffer
	for {
		err := l.readConn(c, &buf)
		if l.closing.Load() {
			return
		}
		if !l.resume {
			c.gone.Store(true)
			l.stats.Load().fail(fmt.Sprintf("client %d disconnected: %v", c.id, err))
			return
		}
		c.ws.Load().CloseNow()
		c.downAt = time.Now()
		l.stats.Load().down(c.downAt)
		if err := l.redial(c); err != nil {
			if !l.closing.Load() {
				c.gone.Store(true)
				l.stats.Load().fail(fmt.Sprintf("client %d could not reconnect: %v", c.id, err))
			}
			return
		}
	}
}

// redial reconnects c with backoff and jitter until it succeeds, the load generator
// closes, or a minute passes.
func (l *load) redial(c *client) error {
	deadline := time.Now().Add(time.Minute)
	backoff := 100 * time.Millisecond
	for {
		// Jitter first: thousands of clients lose their node at the same instant.
		time.Sleep(time.Duration(rand.Int64N(int64(backoff))))
		if l.closing.Load() {
			return errors.New("closing")
		}
		err := l.dial(context.Background(), c)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (l *load) readConn(c *client, buf *bytes.Buffer) error {
	ws := c.ws.Load()
	for {
		_, rd, err := ws.Reader(context.Background())
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(rd)
		}
		if err != nil {
			return err
		}
		now := time.Now()
		st := l.stats.Load()
		st.messages.Add(1)
		data := buf.Bytes()
		for len(data) > 0 {
			obj, rest, _ := bytes.Cut(data, []byte{'\n'})
			data = rest
			l.handle(c, st, obj, now)
		}
	}
}

var typePrefix = []byte(`{"type":"`)

// objectType reads an object's type: from the front where the servers put it first
// (event frames), else by decoding (the hub's control frames have sorted keys).
func objectType(obj []byte) []byte {
	if rest, ok := bytes.CutPrefix(obj, typePrefix); ok {
		if j := bytes.IndexByte(rest, '"'); j >= 0 {
			return rest[:j]
		}
	}
	var v struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(obj, &v)
	return []byte(v.Type)
}

var keyCursor = []byte(`"cursor":"`)

func (l *load) handle(c *client, st *runStats, obj []byte, now time.Time) {
	if l.resume {
		if i := bytes.Index(obj, keyCursor); i >= 0 {
			rest := obj[i+len(keyCursor):]
			if j := bytes.IndexByte(rest, '"'); j >= 0 {
				c.cursor = append(c.cursor[:0], rest[:j]...)
			}
		}
	}
	switch typ := objectType(obj); string(typ) {
	case "hello":
		if !c.helloed {
			c.helloed = true
			close(c.hello)
		}
		if !c.downAt.IsZero() {
			st.resumed(now, now.Sub(c.downAt))
			c.downAt = time.Time{}
		}
		return
	case "pong":
		return
	case "presence":
		// Coworkers coming online: not events of the run, but the server's work; counted.
		st.presence.Add(1)
		return
	case "", "error", "resync", "subscribed", "unsubscribed":
		st.fail(fmt.Sprintf("client %d: unexpected object: %.200s", c.id, obj))
		return
	}
	ev, err := parseEvent(obj)
	if err == nil && l.verify {
		err = verifyEvent(obj, ev)
	}
	if err != nil {
		st.fail(fmt.Sprintf("client %d: %v: %.200s", c.id, err, obj))
		return
	}
	if last, ok := c.seqs[string(ev.topic)]; ok && ev.seq != last+1 {
		what := "gap"
		if ev.seq <= last {
			what = "duplicate or reordered event"
		}
		st.fail(fmt.Sprintf("client %d: %s on %s: seq %d after %d", c.id, what, ev.topic, ev.seq, last))
	}
	c.seqs[string(ev.topic)] = ev.seq
	c.got.Add(1)
	c.last.Store(now.UnixNano())
	st.delivered.Add(1)
	st.bytes.Add(int64(len(obj)))
	if !ev.created.IsZero() {
		st.commit.add(now.Sub(ev.created))
		st.byGroup[c.group].add(now.Sub(ev.created))
	}
	if ev.sent > 0 {
		st.send.add(time.Duration(now.UnixNano() - ev.sent))
	}
}

// event is what the fast parser takes from an event object.
type event struct {
	topic   []byte
	seq     int64
	created time.Time // data.created_at or data.message.created_at: written by the server
	body    []byte
	sent    int64 // unix ns the publisher wrote into the body; 0 when the body is not ours
}

var (
	keyTopic   = []byte(`"topic":"`)
	keySeq     = []byte(`"seq":`)
	keyData    = []byte(`"data":`)
	keyBody    = []byte(`"body":"`)
	keyCreated = []byte(`"created_at":"`)
)

// parseEvent reads an event object without decoding it. It relies on the field order
// both servers write: type, cursor, topic, seq, then data, in which the message's body
// and created_at come before any nested object. Strings it reads are bench-generated or
// timestamps, never escaped; verifyEvent cross-checks it with a full decode.
func parseEvent(obj []byte) (event, error) {
	var ev event
	i := bytes.Index(obj, keyTopic)
	if i < 0 {
		return ev, errors.New("no topic")
	}
	rest := obj[i+len(keyTopic):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ev, errors.New("bad topic")
	}
	ev.topic = rest[:j]
	i = bytes.Index(obj, keySeq)
	if i < 0 {
		return ev, errors.New("no seq")
	}
	rest = obj[i+len(keySeq):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		ev.seq = ev.seq*10 + int64(rest[n]-'0')
		n++
	}
	if n == 0 {
		return ev, errors.New("bad seq")
	}
	i = bytes.Index(obj, keyData)
	if i < 0 {
		return ev, errors.New("no data")
	}
	data := obj[i:]
	if i = bytes.Index(data, keyBody); i >= 0 {
		rest = data[i+len(keyBody):]
		if j = bytes.IndexByte(rest, '"'); j >= 0 {
			ev.body = rest[:j]
			ev.sent = bodySent(ev.body)
		}
	}
	if i = bytes.Index(data, keyCreated); i >= 0 {
		rest = data[i+len(keyCreated):]
		if j = bytes.IndexByte(rest, '"'); j >= 0 {
			t, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
			if err != nil {
				return ev, fmt.Errorf("bad created_at: %w", err)
			}
			ev.created = t
		}
	}
	return ev, nil
}

// bodyPrefix starts every body the publisher writes: "sb-bench <index> <unix ns> <padding>".
const bodyPrefix = "sb-bench "

func bodySent(body []byte) int64 {
	rest, ok := bytes.CutPrefix(body, []byte(bodyPrefix))
	if !ok {
		return 0
	}
	_, rest, _ = bytes.Cut(rest, []byte{' '})
	ns, _, _ := bytes.Cut(rest, []byte{' '})
	v, err := strconv.ParseInt(string(ns), 10, 64)
	if err != nil {
		return 0
	}
	return v
}

// verifyEvent decodes obj fully and checks that the fast parser read the same.
func verifyEvent(obj []byte, ev event) error {
	type msg struct {
		Body      string    `json:"body"`
		CreatedAt time.Time `json:"created_at"`
	}
	var full struct {
		Type   string `json:"type"`
		Cursor string `json:"cursor"`
		Topic  string `json:"topic"`
		Seq    int64  `json:"seq"`
		Data   struct {
			msg
			Message *msg `json:"message"`
		} `json:"data"`
	}
	if err := json.Unmarshal(obj, &full); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	m := full.Data.msg
	if full.Data.Message != nil {
		m = *full.Data.Message
	}
	switch {
	case full.Type == "":
		return errors.New("no type")
	case full.Topic != string(ev.topic) || full.Seq != ev.seq:
		return fmt.Errorf("fast parse read %s/%d; JSON says %s/%d", ev.topic, ev.seq, full.Topic, full.Seq)
	case m.Body != string(ev.body) || !m.CreatedAt.Equal(ev.created):
		return fmt.Errorf("fast parse read body %q at %v; JSON says %q at %v", ev.body, ev.created, m.Body, m.CreatedAt)
	case !strings.HasPrefix(m.Body, bodyPrefix):
		return fmt.Errorf("body %q is not one the publisher wrote", m.Body)
	}
	return nil
}

// run publishes as spec says, waits until every client has every event (or the drain
// time passes) and reports.
func (l *load) run(ctx context.Context, spec *runSpec) (*runResult, error) {
	if err := loopback(spec.Pub.URL); err != nil {
		return nil, err
	}
	if len(l.clients) == 0 {
		return nil, errors.New("no clients connected")
	}
	if spec.Pub.Channels <= 0 {
		return nil, errors.New("publish spec needs channels")
	}
	if spec.Pub.Kind == pubTwilio && len(spec.Pub.Numbers) != spec.Pub.Channels {
		return nil, errors.New("twilio publish spec needs one number per channel")
	}
	st := newRunStats(l.groups)
	l.stats.Store(st)
	for _, c := range l.clients {
		c.got.Store(0)
		c.last.Store(0)
	}
	if l.spread > 0 && l.spread != spec.Pub.Channels {
		return nil, fmt.Errorf("clients are spread over %d channels; the publisher writes to %d", l.spread, spec.Pub.Channels)
	}
	p := &publisher{spec: spec.Pub, l: l, hc: &http.Client{Transport: newTransport(256), Timeout: 30 * time.Second},
		okCh: make([]atomic.Int64, spec.Pub.Channels), startedCh: make([]atomic.Int64, spec.Pub.Channels),
		failedCh: make([]atomic.Int64, spec.Pub.Channels)}
	defer p.hc.CloseIdleConnections()
	cpu0 := cpuTime()
	start := time.Now()
	if spec.Retry {
		p.retryUntil = start.Add(spec.Duration + spec.Drain)
	}
	switch spec.Mode {
	case modeRate:
		if spec.Rate <= 0 {
			return nil, errors.New("rate mode needs a rate")
		}
		p.runRate(ctx, spec, start)
	case modeMax:
		p.runMax(ctx, spec, start)
	default:
		return nil, fmt.Errorf("unknown mode %q", spec.Mode)
	}
	res := &runResult{PublishTook: time.Since(start), Published: p.ok.Load(), PubFailed: p.failed.Load(), PubLag: time.Duration(p.lag.Load()), PubRetries: p.retries.Load()}

	// Drain: wait for every live client to have every accepted event it follows.
	deadline := time.Now().Add(spec.Drain)
	for {
		done := true
		for _, c := range l.clients {
			if !c.gone.Load() && c.got.Load() < p.expected(c) {
				done = false
				break
			}
		}
		if done || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	var lastNS int64
	for _, c := range l.clients {
		if c.gone.Load() {
			res.Disconnects++
		}
		if c.got.Load() != p.expected(c) {
			res.Incomplete++
		}
		res.Expected += p.expected(c)
		lastNS = max(lastNS, c.last.Load())
	}
	if lastNS > 0 {
		res.Elapsed = time.Duration(lastNS - start.UnixNano())
	}
	res.ClientCPU = cpuTime() - cpu0
	if l.spread > 0 {
		res.PerEvent = float64(len(l.clients)) / float64(l.spread)
	} else {
		res.PerEvent = float64(len(l.clients))
	}
	res.Delivered = st.delivered.Load()
	res.Messages = st.messages.Load()
	res.Presence = st.presence.Load()
	res.Bytes = st.bytes.Load()
	res.Errors = st.errors.Load()
	if e := st.firstErr.Load(); e != nil {
		res.FirstError = *e
	}
	res.Commit = st.commit.summary()
	res.Resumes = st.resumes.summary()
	if first, last := st.firstDown.Load(), st.lastResumed.Load(); first > 0 && last > first {
		res.AllResumed = time.Duration(last - first)
	}
	if len(st.byGroup) > 1 {
		for _, h := range st.byGroup {
			res.GroupCommit = append(res.GroupCommit, h.summary())
		}
	}
	res.Send = st.send.summary()
	return res, ctx.Err()
}

// publisher posts events: signed Twilio webhooks, or bare publishes.
type publisher struct {
	spec    publishSpec
	l       *load
	hc      *http.Client
	ok      atomic.Int64
	failed  atomic.Int64
	started atomic.Int64 // closed loop

	// Per channel (index from 0): events accepted, started and failed.
	okCh, startedCh, failedCh []atomic.Int64

	retryUntil time.Time // zero: no retries
	retries    atomic.Int64
	lag        atomic.Int64 // ns
	pad        string
	once       sync.Once
}

func (p *publisher) post(ctx context.Context, idx int64) error {
	p.once.Do(func() { p.pad = strings.Repeat("x", max(0, p.spec.Pad)) })
	ch := int(idx % int64(p.spec.Channels))
	body := bodyPrefix + strconv.FormatInt(idx, 10) + " " + strconv.FormatInt(time.Now().UnixNano(), 10) + " " + p.pad
	var (
		req  *http.Request
		err  error
		want int
	)
	switch p.spec.Kind {
	case pubTwilio:
		customer := (idx / int64(p.spec.Channels)) % int64(max(1, p.spec.Customers))
		sid := fmt.Sprintf("SM%s%012d", p.spec.RunID, idx)
		form := url.Values{
			"MessageSid": {sid}, "SmsSid": {sid}, "AccountSid": {p.spec.AccountSID},
			"From": {fmt.Sprintf("+1555%03d%04d", ch, customer)}, "To": {p.spec.Numbers[ch]},
			"Body": {body}, "NumMedia": {"0"},
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, p.spec.URL, strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", sms.Sign(p.spec.AuthToken, p.spec.SignURL, form))
		want = http.StatusOK
	case pubBare:
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, p.spec.URL+"?topic=channel:"+strconv.Itoa(ch+1), strings.NewReader(body))
		if err != nil {
			return err
		}
		want = http.StatusNoContent
	default:
		return fmt.Errorf("unknown publisher %q", p.spec.Kind)
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("publish: %s: %.200s", resp.Status, b)
	}
	return nil
}

func (p *publisher) record(ctx context.Context, idx int64) {
	for {
		err := p.post(ctx, idx)
		if err == nil {
			p.ok.Add(1)
			p.okCh[idx%int64(p.spec.Channels)].Add(1)
			return
		}
		// Retrying is safe: the same index is the same MessageSid, which the server
		// accepts once (Twilio retries the same way).
		if p.retryUntil.IsZero() || time.Now().After(p.retryUntil) || ctx.Err() != nil {
			p.failed.Add(1)
			p.failedCh[idx%int64(p.spec.Channels)].Add(1)
			p.l.stats.Load().fail(fmt.Sprintf("event %d: %v", idx, err))
			return
		}
		p.retries.Add(1)
		time.Sleep(50 * time.Millisecond)
	}
}

// runRate publishes Rate events per second for Duration, open loop: late answers do not
// slow the schedule (up to 1,024 publishes in flight).
func (p *publisher) runRate(ctx context.Context, spec *runSpec, start time.Time) {
	interval := time.Duration(float64(time.Second) / spec.Rate)
	n := max(1, int(spec.Duration/interval))
	sem := make(chan struct{}, 1024)
	var wg sync.WaitGroup
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		} else if int64(-d) > p.lag.Load() {
			p.lag.Store(int64(-d))
		}
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		idx := p.l.next.Add(1) - 1
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p.record(ctx, idx)
		}()
	}
	wg.Wait()
}

// runMax publishes for Duration with Publishers concurrent posters as fast as the slowest
// client keeps up: never more than Window events beyond what every client has received.
func (p *publisher) runMax(ctx context.Context, spec *runSpec, start time.Time) {
	deadline := start.Add(spec.Duration)
	window := int64(max(1, spec.Window))
	// The scanner keeps the largest lag of any live client: the events started on what it
	// follows (every channel, or its one channel when spread) that it has not received.
	var maxLag atomic.Int64
	stop := make(chan struct{})
	var scanner sync.WaitGroup
	scanner.Add(1)
	go func() {
		defer scanner.Done()
		t := time.NewTicker(500 * time.Microsecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			var m int64
			for _, c := range p.l.clients {
				if c.gone.Load() {
					continue
				}
				var lag int64
				if p.l.spread > 0 {
					lag = p.startedCh[c.channel].Load() - p.failedCh[c.channel].Load() - c.got.Load()
				} else {
					lag = p.started.Load() - p.failed.Load() - c.got.Load()
				}
				m = max(m, lag)
			}
			maxLag.Store(m)
		}
	}()
	var wg sync.WaitGroup
	for range max(1, spec.Publishers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if maxLag.Load() >= window {
					time.Sleep(200 * time.Microsecond)
					continue
				}
				idx := p.l.next.Add(1) - 1
				p.started.Add(1)
				p.startedCh[idx%int64(p.spec.Channels)].Add(1)
				// The scanner has not seen this start yet: count it against the window now.
				maxLag.Add(1)
				p.record(ctx, idx)
			}
		}()
	}
	wg.Wait()
	close(stop)
	scanner.Wait()
}

// expected is how many of the accepted events client c should have received.
func (p *publisher) expected(c *client) int64 {
	if p.l.spread > 0 {
		return p.okCh[c.channel].Load()
	}
	return p.ok.Load()
}
