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
	// confirm: the topic was followed already (a resumed connection follows the issues its
	// cursor held); answer "subscribed" without changing the cursor, so a client that
	// subscribes again after reconnecting gets its answer like the first time.
	confirm bool
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

// cursorWriter keeps a connection's cursor by topic slot (the small number each topic
// gets on its connection), with the slots in encoding order beside it, so that advancing
// it after each event is an index and re-encoding it costs no sorting, no map lookup and
// no allocation. It is owned by the connection's writer.
type cursorWriter struct {
	entries []cursorEntry // by slot; kind 0: no topic in this slot
	order   []int32       // the slots in use, in encoding order (kind, id)
	scratch []byte
}

type cursorEntry struct {
	kind byte
	id   int64
	seq  int64
}

// newCursorWriter starts from c, whose topics have the slots of their index in topics.
func newCursorWriter(c Cursor, topics []Topic) *cursorWriter {
	w := &cursorWriter{entries: make([]cursorEntry, len(topics))}
	for i, t := range topics {
		k, id, err := t.parse()
		if err == nil {
			w.entries[i] = cursorEntry{k, id, c[t]}
			w.order = append(w.order, int32(i))
		}
	}
	slices.SortFunc(w.order, func(a, b int32) int { return compareEntries(w.entries[a], w.entries[b]) })
	return w
}

// seq returns the seq recorded for the topic in slot, and whether the slot is in use.
func (w *cursorWriter) seq(slot int32) (int64, bool) {
	if slot < 0 || int(slot) >= len(w.entries) || w.entries[slot].kind == 0 {
		return 0, false
	}
	return w.entries[slot].seq, true
}

// advance records seq for the topic in slot. Slots not in use are ignored.
func (w *cursorWriter) advance(slot int32, seq int64) {
	if slot >= 0 && int(slot) < len(w.entries) && w.entries[slot].kind != 0 {
		w.entries[slot].seq = seq
	}
}

// add puts topic in slot at seq, keeping the encoding order.
func (w *cursorWriter) add(slot int32, t Topic, seq int64) {
	k, id, err := t.parse()
	if err != nil || slot < 0 {
		return
	}
	w.remove(slot)
	for int(slot) >= len(w.entries) {
		w.entries = append(w.entries, cursorEntry{})
	}
	w.entries[slot] = cursorEntry{k, id, seq}
	i, _ := slices.BinarySearchFunc(w.order, slot, func(a, b int32) int { return compareEntries(w.entries[a], w.entries[b]) })
	w.order = slices.Insert(w.order, i, slot)
}

// remove drops the topic in slot from the cursor.
func (w *cursorWriter) remove(slot int32) {
	if slot < 0 || int(slot) >= len(w.entries) || w.entries[slot].kind == 0 {
		return
	}
	if i := slices.Index(w.order, slot); i >= 0 {
		w.order = slices.Delete(w.order, i, i+1)
	}
	w.entries[slot] = cursorEntry{}
}

func compareEntries(a, b cursorEntry) int {
	if a.kind != b.kind {
		return int(a.kind) - int(b.kind)
	}
	return cmp.Compare(a.id, b.id)
}

// appendTo appends the encoded cursor (the same string as Cursor.Encode) to dst.
func (w *cursorWriter) appendTo(dst []byte) []byte {
	b := append(w.scratch[:0], cursorVersion)
	for _, slot := range w.order {
		e := &w.entries[slot]
		b = append(b, e.kind)
		b = binary.AppendUvarint(b, uint64(e.id))
		b = binary.AppendUvarint(b, uint64(e.seq))
	}
	w.scratch = b
	return base64.RawURLEncoding.AppendEncode(dst, b)
}
