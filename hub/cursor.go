package hub

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"slices"
)

// Cursor is a position in the streams a user follows: for each topic, the seq of the
// last event seen. Because seqs are per topic and commit-ordered, "everything after the
// cursor" is well defined on any node, which a global id is not on PostgreSQL.
type Cursor map[Topic]int64

const cursorVersion = 1

// maxCursorTopics bounds what a client can make the server decode and look up.
const maxCursorTopics = 4096

var errBadCursor = errors.New("hub: malformed cursor")

// Encode renders the cursor as a compact URL-safe string: a version byte, then for each
// topic in a stable order its kind letter, id and seq as varints. Clients treat it as
// opaque.
func (c Cursor) Encode() string {
	type entry struct {
		kind   byte
		id     int64
		seq    int64
		parsed bool
	}
	entries := make([]entry, 0, len(c))
	for t, seq := range c {
		k, id, err := t.parse()
		if err != nil {
			continue
		}
		entries = append(entries, entry{k, id, seq, true})
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if a.kind != b.kind {
			return cmp.Compare(a.kind, b.kind)
		}
		return cmp.Compare(a.id, b.id)
	})
	buf := make([]byte, 0, 1+len(entries)*8)
	buf = append(buf, cursorVersion)
	for _, e := range entries {
		buf = append(buf, e.kind)
		buf = binary.AppendUvarint(buf, uint64(e.id))
		buf = binary.AppendUvarint(buf, uint64(e.seq))
	}
	return base64.RawURLEncoding.EncodeToString(buf)
}

// DecodeCursor parses a string made by Encode.
func DecodeCursor(s string) (Cursor, error) {
	if len(s) > 64<<10 {
		return nil, errBadCursor
	}
	buf, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(buf) == 0 || buf[0] != cursorVersion {
		return nil, errBadCursor
	}
	buf = buf[1:]
	c := Cursor{}
	for len(buf) > 0 {
		if len(c) >= maxCursorTopics {
			return nil, errBadCursor
		}
		kind := buf[0]
		buf = buf[1:]
		id, n := binary.Uvarint(buf)
		if n <= 0 || id > 1<<62 {
			return nil, errBadCursor
		}
		buf = buf[n:]
		seq, n := binary.Uvarint(buf)
		if n <= 0 || seq > 1<<62 {
			return nil, errBadCursor
		}
		buf = buf[n:]
		t, ok := makeTopic(kind, int64(id))
		if !ok {
			return nil, errBadCursor
		}
		c[t] = int64(seq)
	}
	return c, nil
}

// Clone copies the cursor.
func (c Cursor) Clone() Cursor {
	out := make(Cursor, len(c))
	for t, s := range c {
		out[t] = s
	}
	return out
}
