package hub

import (
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	tests := []Cursor{
		{},
		{ChannelTopic(1): 0},
		{ChannelTopic(3): 17, UserTopic(7): 2, IssueTopic(1 << 40): 1 << 50},
	}
	for _, c := range tests {
		s := c.Encode()
		got, err := DecodeCursor(s)
		if err != nil {
			t.Fatalf("decode %q: %v", s, err)
		}
		if len(got) != len(c) {
			t.Fatalf("got %v; want %v", got, c)
		}
		for k, v := range c {
			if got[k] != v {
				t.Errorf("topic %s: got %d; want %d", k, got[k], v)
			}
		}
		if again := got.Encode(); again != s {
			t.Errorf("encoding is not stable: %q then %q", s, again)
		}
	}
}

func TestDecodeCursorRejectsGarbage(t *testing.T) {
	for _, s := range []string{"", "!!", "AA", "Ag", "AWM", "AXgBAQ", "AWMAAQ"} {
		if c, err := DecodeCursor(s); err == nil {
			t.Errorf("DecodeCursor(%q) = %v; want an error", s, c)
		}
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add(Cursor{ChannelTopic(3): 17, UserTopic(7): 2}.Encode())
	f.Add("")
	f.Add("AWMDEQ")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := DecodeCursor(s)
		if err != nil {
			return
		}
		again, err := DecodeCursor(c.Encode())
		if err != nil || len(again) != len(c) {
			t.Fatalf("re-encoding %v failed: %v", c, err)
		}
		for k, v := range c {
			if again[k] != v {
				t.Fatalf("topic %s: %d became %d", k, v, again[k])
			}
		}
	})
}

// TestCursorWriterBySlot follows a connection's topics through advances, a subscription
// into a new slot, an unsubscription and the reuse of its slot: after each step the
// writer encodes exactly what Cursor.Encode makes of the same positions.
func TestCursorWriterBySlot(t *testing.T) {
	w := newCursorWriter(Cursor{ChannelTopic(9): 4, UserTopic(2): 1, ChannelTopic(3): 7}, []Topic{ChannelTopic(9), UserTopic(2), ChannelTopic(3)})
	want := Cursor{ChannelTopic(9): 4, UserTopic(2): 1, ChannelTopic(3): 7}
	check := func(step string) {
		t.Helper()
		if got := string(w.appendTo(nil)); got != want.Encode() {
			t.Fatalf("%s: writer encodes %q; want %q (%v)", step, got, want.Encode(), want)
		}
	}
	check("start")
	w.advance(2, 8)
	want[ChannelTopic(3)] = 8
	check("advance slot 2")
	w.add(3, IssueTopic(5), 11)
	want[IssueTopic(5)] = 11
	check("add issue:5 in slot 3")
	if seq, ok := w.seq(3); !ok || seq != 11 {
		t.Fatalf("slot 3: %d, %v; want 11, true", seq, ok)
	}
	w.remove(0)
	delete(want, ChannelTopic(9))
	check("remove slot 0")
	if _, ok := w.seq(0); ok {
		t.Fatal("slot 0 still in use after remove")
	}
	w.advance(0, 99) // a freed slot takes no advance
	check("advance a freed slot")
	w.add(0, ChannelTopic(1), 2)
	want[ChannelTopic(1)] = 2
	check("reuse slot 0 for channel:1")
	w.advance(0, 3)
	want[ChannelTopic(1)] = 3
	check("advance the reused slot")
}
