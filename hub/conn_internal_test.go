package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

// TestWriterFillsAHoleBelowALiveEvent: a connection whose cursor is below the first live
// event it gets (it registered while its node was first learning the topic's position)
// reads the hole from the database and writes it, in order, before that event.
func TestWriterFillsAHoleBelowALiveEvent(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	log := NewLog(db, nil)
	h := New(Config{Log: log})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.Shutdown(ctx)
	})
	topic := ChannelTopic(4)
	var events []*Event
	for n := 1; n <= 8; n++ {
		err := db.InTx(context.Background(), func(tx *store.Tx) error {
			ev, err := log.Append(context.Background(), tx, topic, "test.event", map[string]int{"n": n})
			events = append(events, ev)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	ws, client := socketPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c := &conn{h: h, ws: ws, userID: 1, topics: []Topic{topic}, closed: make(chan struct{}), wake: make(chan struct{}, 1),
		slots: []connTopic{{topic: topic}}}
	c.start(Cursor{topic: 5}, nil, nil)
	// The node delivers 8 as the next event; 6 and 7 never reached this connection.
	c.enqueueLive(newEventFrame(events[7]), 0)

	var got []int
	for len(got) < 3 {
		_, data, err := client.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v (got %v so far)", err, got)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var m struct {
				Type string
				Seq  int
			}
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if m.Type == "test.event" {
				got = append(got, m.Seq)
			}
		}
	}
	if want := []int{6, 7, 8}; !slices.Equal(got, want) {
		t.Fatalf("got seqs %v; want %v", got, want)
	}
	c.shut(websocket.StatusNormalClosure, "", "test")
}

// TestWriterLingersThenEnds: a writer that has emptied the queue waits writerLinger for
// more, so a steady stream is written by one goroutine, and then ends, so an idle
// connection has none.
func TestWriterLingersThenEnds(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	log := NewLog(db, nil)
	h := New(Config{Log: log})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h.Shutdown(ctx)
	})
	topic := ChannelTopic(9)
	var events []*Event
	for n := 1; n <= 2; n++ {
		if err := db.InTx(context.Background(), func(tx *store.Tx) error {
			ev, err := log.Append(context.Background(), tx, topic, "test.event", map[string]int{"n": n})
			events = append(events, ev)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	ws, client := socketPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &conn{h: h, ws: ws, userID: 1, topics: []Topic{topic}, closed: make(chan struct{}), wake: make(chan struct{}, 1),
		slots: []connTopic{{topic: topic}}}
	c.start(Cursor{topic: 0}, nil, nil)

	readSeq := func(want int) {
		t.Helper()
		for {
			_, data, err := client.Read(ctx)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if bytes.Contains(data, []byte(`"seq":`+strconv.Itoa(want)+`,`)) {
				return
			}
		}
	}
	state := func() (writing, lingering bool, writers int) {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.writing, c.lingering, c.writers
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	c.enqueueLive(newEventFrame(events[0]), 0)
	readSeq(1)
	waitFor("the writer lingers", func() bool { w, l, _ := state(); return w && l })
	c.enqueueLive(newEventFrame(events[1]), 0)
	readSeq(2)
	if _, _, n := state(); n != 1 {
		t.Errorf("%d writer goroutines served two events a moment apart; want 1", n)
	}
	waitFor("the writer ends after lingering", func() bool { w, _, _ := state(); return !w })
	c.shut(websocket.StatusNormalClosure, "", "test")
}

// socketPair returns the two ends of one WebSocket: the server's, for a conn, and the
// client's, to read what the conn writes.
func socketPair(t *testing.T) (server, client *websocket.Conn) {
	t.Helper()
	accepted := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		accepted <- ws
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	t.Cleanup(func() {
		client.CloseNow()
		server.CloseNow()
	})
	return server, client
}
