package issues_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/issues"
)

func TestParseMentions(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"", nil},
		{"no mentions here", nil},
		{"@alice", []string{"alice"}},
		{"ask @Bob.", []string{"bob"}},
		{"@alice and @support-team, then @alice again", []string{"alice", "support-team"}},
		{"(@j.doe_2) @x", []string{"j.doe_2", "x"}},
		{"mail bob@example.com or @@eve or @-dash or @", nil},
		{"@bob's turn; @carol!", []string{"bob", "carol"}},
		{"@" + strings.Repeat("a", 33), nil}, // longer than any handle
		{"line\n@night-shift\tnext", []string{"night-shift"}},
		{"ünïcode @émile @zoë @zoe", []string{"zoe"}}, // handles are ASCII: @zoë is no mention of @zo
	} {
		if got := issues.ParseMentions(tc.text); !slices.Equal(got, tc.want) {
			t.Errorf("ParseMentions(%q) = %q; want %q", tc.text, got, tc.want)
		}
	}
}
