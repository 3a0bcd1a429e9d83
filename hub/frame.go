package hub

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"slices"
	"strconv"
)

// frame is one object to write to a client. Event frames are encoded once per node and
// shared by every connection: only the cursor differs between connections, so it is
// spliced in between head and tail at write time.
type frame struct {
	ev   *Event // nil for control frames
	head []byte // `{"type":"…","cursor":"`
	tail []byte // `","topic":"…","seq":N,"data":{…}}`
	raw  []byte // control frames: the whole object

	// presence frames report a change without a new position: they carry the
	// connection's cursor as it stands, and are not replayed on resume.
	presence *presenceMessage

	// follow frames change the connection's topics: the writer adds the topic to (or drops
	// it from) the cursor and reports it.
	follow *followChange
}

type followChange struct {
	topic Topic
	seq   int64 // the start position, when adding
	add   bool
}

// size is what the frame costs in a connection's queue.
func (f *frame) size() int {
	if f.presence != nil || f.follow != nil {
		return 128
	}
	if f.raw != nil {
		return len(f.raw)
	}
	return len(f.head) + len(f.tail) + 64
}

func newEventFrame(ev *Event) *frame {
	typ, _ := json.Marshal(ev.Type)
	topic, _ := json.Marshal(string(ev.Topic))
	head := make([]byte, 0, len(typ)+22)
	head = append(head, `{"type":`...)
	head = append(head, typ...)
	head = append(head, `,"cursor":"`...)
	tail := make([]byte, 0, len(topic)+len(ev.Data)+40)
	tail = append(tail, `","topic":`...)
	tail = append(tail, topic...)
	tail = append(tail, `,"seq":`...)
	tail = strconv.AppendInt(tail, ev.Seq, 10)
	tail = append(tail, `,"data":`...)
	tail = append(tail, ev.Data...)
	tail = append(tail, '}')
	return &frame{ev: ev, head: head, tail: tail}
}

func controlFrame(v any) *frame {
	b, err := json.Marshal(v)
	if err != nil {
		panic("hub: control frame does not encode: " + err.Error())
	}
	return &frame{raw: b}
}

// cursorWriter keeps a connection's cursor in encoding order so that re-encoding it after
// each event costs no sorting and no allocation. It is owned by the connection's writer.
type cursorWriter struct {
	entries []cursorEntry
	index   map[Topic]int
	scratch []byte
}

type cursorEntry struct {
	kind byte
	id   int64
	seq  int64
}

func newCursorWriter(c Cursor) *cursorWriter {
	w := &cursorWriter{index: make(map[Topic]int, len(c))}
	for t, seq := range c {
		k, id, err := t.parse()
		if err == nil {
			w.entries = append(w.entries, cursorEntry{k, id, seq})
		}
	}
	slices.SortFunc(w.entries, compareEntries)
	w.reindex()
	return w
}

// advance records seq for topic. Topics outside the cursor are ignored: a connection only
// receives events of topics it was registered for, all of which are in its cursor.
func (w *cursorWriter) advance(t Topic, seq int64) {
	if i, ok := w.index[t]; ok {
		w.entries[i].seq = seq
	}
}

// add puts topic in the cursor at seq, keeping the encoding order.
func (w *cursorWriter) add(t Topic, seq int64) {
	if i, ok := w.index[t]; ok {
		w.entries[i].seq = seq
		return
	}
	k, id, err := t.parse()
	if err != nil {
		return
	}
	e := cursorEntry{k, id, seq}
	i, _ := slices.BinarySearchFunc(w.entries, e, compareEntries)
	w.entries = slices.Insert(w.entries, i, e)
	w.reindex()
}

// remove drops topic from the cursor.
func (w *cursorWriter) remove(t Topic) {
	if i, ok := w.index[t]; ok {
		w.entries = slices.Delete(w.entries, i, i+1)
		w.reindex()
	}
}

func (w *cursorWriter) reindex() {
	clear(w.index)
	for i, e := range w.entries {
		t, _ := makeTopic(e.kind, e.id)
		w.index[t] = i
	}
}

func compareEntries(a, b cursorEntry) int {
	if a.kind != b.kind {
		return int(a.kind) - int(b.kind)
	}
	return cmp.Compare(a.id, b.id)
}

// get returns the seq recorded for topic.
func (w *cursorWriter) get(t Topic) int64 {
	if i, ok := w.index[t]; ok {
		return w.entries[i].seq
	}
	return 0
}

// appendTo appends the encoded cursor (the same string as Cursor.Encode) to dst.
func (w *cursorWriter) appendTo(dst []byte) []byte {
	b := append(w.scratch[:0], cursorVersion)
	for _, e := range w.entries {
		b = append(b, e.kind)
		b = binary.AppendUvarint(b, uint64(e.id))
		b = binary.AppendUvarint(b, uint64(e.seq))
	}
	w.scratch = b
	return base64.RawURLEncoding.AppendEncode(dst, b)
}
