package fanoutbench

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// bareServer is the baseline: a broadcast server written directly on coder/websocket,
// with no database, no bus, no sessions and no cursors. A connection follows every topic,
// or the one it names with ?topic= (spread runs). Each published message is
// encoded once and queued to every connection (a queue bounded in bytes, like the hub's);
// one writer goroutine per connection writes it, either one WebSocket message per event
// or, when coalescing, everything queued as one message of objects separated by "\n".
type bareServer struct {
	coalesce   atomic.Bool
	queueBytes int

	ln  net.Listener
	srv *http.Server
	wg  sync.WaitGroup // connections

	mu    sync.RWMutex
	conns map[string]map[*bareConn]struct{} // guarded by mu: by the topic they follow, "" for all

	seqMu sync.Mutex
	seqs  map[string]int64 // guarded by seqMu

	objects atomic.Int64 // event objects written
	writes  atomic.Int64 // WebSocket messages written
	slow    atomic.Int64 // connections dropped for a full queue
}

type bareConn struct {
	ws    *websocket.Conn
	topic string        // ?topic=: the one topic it follows; "" for every topic
	wake  chan struct{} // capacity 1
	done  chan struct{} // closed when the reader ends

	mu     sync.Mutex
	queue  [][]byte // guarded by mu
	queued int      // guarded by mu: bytes
	slow   bool     // guarded by mu
}

const (
	bareQueueBytes   = 1 << 20
	bareMaxWrite     = 256 << 10
	bareWriteTimeout = 10 * time.Second
)

func startBare() (*bareServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &bareServer{queueBytes: bareQueueBytes, ln: ln, conns: map[string]map[*bareConn]struct{}{}, seqs: map[string]int64{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", b.serveWS)
	mux.HandleFunc("POST /publish", b.publish)
	b.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	return b, nil
}

func (b *bareServer) baseURL() string { return "http://" + b.ln.Addr().String() }

func (b *bareServer) serveWS(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(64 << 10)
	c := &bareConn{ws: ws, topic: r.URL.Query().Get("topic"), wake: make(chan struct{}, 1), done: make(chan struct{})}
	b.wg.Add(1)
	defer b.wg.Done()
	b.mu.Lock()
	if b.conns[c.topic] == nil {
		b.conns[c.topic] = map[*bareConn]struct{}{}
	}
	b.conns[c.topic][c] = struct{}{}
	b.mu.Unlock()
	c.enqueue([]byte(`{"type":"hello"}`), b.queueBytes)

	var writer sync.WaitGroup
	writer.Add(1)
	go func() { defer writer.Done(); b.writeLoop(c) }()
	for {
		if _, _, err := ws.Read(context.Background()); err != nil {
			break
		}
	}
	b.mu.Lock()
	delete(b.conns[c.topic], c)
	b.mu.Unlock()
	close(c.done)
	writer.Wait()
	ws.CloseNow()
}

func (c *bareConn) enqueue(f []byte, budget int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slow {
		return
	}
	if c.queued+len(f) > budget {
		c.slow, c.queue = true, nil
	} else {
		c.queue = append(c.queue, f)
		c.queued += len(f)
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (b *bareServer) writeLoop(c *bareConn) {
	var (
		buf   []byte
		spare [][]byte
	)
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		}
		c.mu.Lock()
		batch, slow := c.queue, c.slow
		c.queue, c.queued = spare[:0], 0
		c.mu.Unlock()
		if slow {
			b.slow.Add(1)
			c.ws.Close(websocket.StatusPolicyViolation, "slow consumer")
			return
		}
		if b.coalesce.Load() {
			for len(batch) > 0 {
				buf = buf[:0]
				n := 0
				for n < len(batch) && (n == 0 || len(buf) < bareMaxWrite) {
					if n > 0 {
						buf = append(buf, '\n')
					}
					buf = append(buf, batch[n]...)
					n++
				}
				if !b.write(c, buf, n) {
					return
				}
				batch = batch[n:]
			}
		} else {
			for _, f := range batch {
				if !b.write(c, f, 1) {
					return
				}
			}
		}
		clear(batch[:cap(batch)])
		spare = batch[:0]
	}
}

func (b *bareServer) write(c *bareConn, p []byte, objects int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), bareWriteTimeout)
	err := c.ws.Write(ctx, websocket.MessageText, p)
	cancel()
	if err != nil {
		c.ws.CloseNow()
		return false
	}
	b.writes.Add(1)
	b.objects.Add(int64(objects))
	return true
}

// publish takes one message (the body) for ?topic=, numbers it, stamps it and fans it out.
func (b *bareServer) publish(w http.ResponseWriter, r *http.Request) {
	topic := r.URL.Query().Get("topic")
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil || topic == "" {
		http.Error(w, "bad publish", http.StatusBadRequest)
		return
	}
	// One publish at a time, so that every connection gets each topic in seq order (the
	// hub keeps that order per topic too).
	b.seqMu.Lock()
	defer b.seqMu.Unlock()
	b.seqs[topic]++
	seq := b.seqs[topic]
	now := time.Now().UTC().Truncate(time.Microsecond)
	f := bareFrame(topic, seq, body, now)

	b.mu.RLock()
	for c := range b.conns[topic] {
		c.enqueue(f, b.queueBytes)
	}
	if topic != "" {
		for c := range b.conns[""] {
			c.enqueue(f, b.queueBytes)
		}
	}
	b.mu.RUnlock()
	w.WriteHeader(http.StatusNoContent)
}

// close stops the server and ends every connection.
func (b *bareServer) close(ctx context.Context) error {
	err := b.srv.Shutdown(ctx)
	b.mu.RLock()
	for _, conns := range b.conns {
		for c := range conns {
			c.ws.CloseNow()
		}
	}
	b.mu.RUnlock()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, ctx.Err())
	}
	return err
}

// bareFrame encodes an event object the way the hub lays its frames out (type, topic,
// seq, data), without the cursor.
func bareFrame(topic string, seq int64, body []byte, now time.Time) []byte {
	qtopic, _ := json.Marshal(topic)
	qbody, _ := json.Marshal(string(body))
	f := make([]byte, 0, len(qbody)+len(qtopic)+120)
	f = append(f, `{"type":"message.created","topic":`...)
	f = append(f, qtopic...)
	f = append(f, `,"seq":`...)
	f = strconv.AppendInt(f, seq, 10)
	f = append(f, `,"data":{"body":`...)
	f = append(f, qbody...)
	f = append(f, `,"created_at":"`...)
	f = now.AppendFormat(f, time.RFC3339Nano)
	return append(f, `"}}`...)
}

// barePad is the body padding that makes bare objects about size bytes long.
func barePad(size int) int {
	body := bodyPrefix + "10000 1700000000000000000 "
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	return max(0, size-len(bareFrame("channel:1", 1000, []byte(body), at)))
}
