package issues

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/store"
)

// Handles resolves the @handles that notes mention. accounts.Service implements it; an
// unknown handle is an error wrapping store.ErrNotFound.
type Handles interface {
	UserByHandle(ctx context.Context, handle string) (*accounts.User, error)
	TeamByHandle(ctx context.Context, handle string) (*accounts.Team, error)
}

// Mention is a user or a team that a note names with @handle. Exactly one of UserID and
// TeamID is set; a team's MemberIDs are its members when the note was written.
type Mention struct {
	Handle    string  `json:"handle"`
	UserID    *int64  `json:"user_id,omitempty"`
	TeamID    *int64  `json:"team_id,omitempty"`
	MemberIDs []int64 `json:"member_ids,omitempty"`
}

// maxMentions bounds the handles looked up for one note.
const maxMentions = 50

// maxHandleLen is the longest handle accounts allows.
const maxHandleLen = 32

func handleChar(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == '-'
}

func alnum(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

// ParseMentions returns the distinct handles a text mentions with @handle, lower-cased,
// in order of first appearance. A handle is what accounts allows: letters, digits, '.',
// '_' and '-', starting and ending with a letter or digit, so "ask @bob." mentions
// "bob". An @ inside a word (an email address such as bob@example.com) is not a mention,
// nor is one running into a non-ASCII letter ("@zoë").
func ParseMentions(text string) []string {
	var out []string
	for i := 0; i < len(text); i++ {
		if text[i] != '@' || (i > 0 && (handleChar(text[i-1]) || text[i-1] == '@')) {
			continue
		}
		j := i + 1
		for j < len(text) && handleChar(text[j]) {
			j++
		}
		if j < len(text) && text[j] >= utf8.RuneSelf {
			i = j // "@zoë" is no handle, and must not mention "@zo"
			continue
		}
		h := strings.ToLower(text[i+1 : j])
		// Trailing punctuation ends a sentence, not a handle.
		for h != "" && !alnum(h[len(h)-1]) {
			h = h[:len(h)-1]
		}
		i = j - 1
		if h == "" || !alnum(h[0]) || len(h) > maxHandleLen || slices.Contains(out, h) {
			continue
		}
		out = append(out, h)
		if len(out) == maxMentions {
			break
		}
	}
	return out
}

// resolveMentions looks up the handles a note mentions: a user (enabled) or a team with
// that handle. Unknown handles are dropped.
func (s *Service) resolveMentions(ctx context.Context, body string) ([]Mention, error) {
	handles := ParseMentions(body)
	out := []Mention{}
	if s.cfg.Handles == nil || len(handles) == 0 {
		return out, nil
	}
	for _, h := range handles {
		u, err := s.cfg.Handles.UserByHandle(ctx, h)
		switch {
		case err == nil:
			if !u.Disabled {
				id := u.ID
				out = append(out, Mention{Handle: h, UserID: &id})
			}
			continue
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("issues: mention @%s: %w", h, err)
		}
		t, err := s.cfg.Handles.TeamByHandle(ctx, h)
		switch {
		case err == nil:
			id := t.ID
			out = append(out, Mention{Handle: h, TeamID: &id, MemberIDs: t.MemberIDs})
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("issues: mention @%s: %w", h, err)
		}
	}
	return out, nil
}

// storeMentions records a note's mentions.
func storeMentions(ctx context.Context, tx *store.Tx, commentID int64, ms []Mention, now time.Time) error {
	for _, m := range ms {
		if _, err := tx.ExecContext(ctx, `INSERT INTO mentions (comment_id, handle, user_id, team_id, created_at)
			VALUES ($1, $2, $3, $4, $5)`, commentID, m.Handle, m.UserID, m.TeamID, now); err != nil {
			return fmt.Errorf("issues: store mention: %w", err)
		}
	}
	return nil
}

// fillMentions sets the mentions of the notes among comments, all of one issue.
func (s *Service) fillMentions(ctx context.Context, q store.Querier, issueID int64, comments []*Comment) error {
	byID := map[int64]*Comment{}
	for _, c := range comments {
		if c.Kind == KindNote {
			byID[c.ID] = c
		}
	}
	if len(byID) == 0 {
		return nil
	}
	rows, err := q.QueryContext(ctx, `SELECT m.comment_id, m.handle, m.user_id, m.team_id FROM mentions m
		JOIN comments c ON c.id = m.comment_id WHERE c.issue_id = $1 ORDER BY m.id`, issueID)
	if err != nil {
		return fmt.Errorf("issues: mentions of %d: %w", issueID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var commentID int64
		var m Mention
		if err := rows.Scan(&commentID, &m.Handle, &m.UserID, &m.TeamID); err != nil {
			return fmt.Errorf("issues: mentions of %d: %w", issueID, err)
		}
		if c := byID[commentID]; c != nil {
			c.Mentions = append(c.Mentions, m)
		}
	}
	return rows.Err()
}
