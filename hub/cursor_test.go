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
