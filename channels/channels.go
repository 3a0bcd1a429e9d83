// Package channels owns channels and their feeds: team, direct, SMS and email channels,
// who is a member, the ordered messages of each feed, read markers and unread counts.
//
// Every message has a number, 1, 2, 3, … per channel, taken from the channel's row inside
// the writing transaction. Unread counts and the "New messages" line compare those numbers
// with the reader's last-read number; they never depend on event seqs, which count other
// things too.
package channels

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/store"
)

// Kind is what a channel carries.
type Kind string

// The kinds of channel.
const (
	Team   Kind = "team"
	Direct Kind = "direct"
	SMS    Kind = "sms"
	Email  Kind = "email"
)

// Channel is a feed.
type Channel struct {
	ID         int64     `json:"id"`
	Kind       Kind      `json:"kind"`
	Name       string    `json:"name"`
	Address    string    `json:"address,omitempty"` // SMS number or mailbox
	AllAgents  bool      `json:"all_agents"`
	LastNumber int64     `json:"last_number"`
	CreatedAt  time.Time `json:"created_at"`
}

// View is a channel as one user sees it.
type View struct {
	Channel
	LastRead int64 `json:"last_read"`
	Unread   int64 `json:"unread"`
	PeerID   int64 `json:"peer_id,omitempty"` // direct channels: the other person
}

// Message is one entry of a feed. The summaries are filled for display by a Directory.
type Message struct {
	ID         int64     `json:"id"`
	ChannelID  int64     `json:"channel_id"`
	Number     int64     `json:"number"`
	Body       string    `json:"body"`
	AuthorID   *int64    `json:"author_id"`
	CustomerID *int64    `json:"customer_id"`
	IssueID    *int64    `json:"issue_id"`
	CommentID  *int64    `json:"comment_id"`
	CreatedAt  time.Time `json:"created_at"`

	Author   *Person `json:"author"`
	Customer *Person `json:"customer"`
	Issue    any     `json:"issue"` // the issue's current summary, from the Directory
}

// Person is the short form of a user or customer shown beside a message.
type Person struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Handle string `json:"handle,omitempty"`
	Phone  string `json:"phone,omitempty"`
	Email  string `json:"email,omitempty"`
}

// Directory fills the summaries of messages for display. The channels package does not
// read other packages' tables; the server wires in an implementation that asks them. q is
// the writing transaction when a message is being appended (its rows are not visible
// elsewhere yet, and on SQLite it holds the only writer connection), else the database.
type Directory interface {
	Describe(ctx context.Context, q store.Querier, msgs []*Message) error
}

// Errors callers branch on.
var (
	ErrNotFound  = errors.New("channels: no such channel")
	ErrNotMember = errors.New("channels: not a member of this channel")
	ErrReadOnly  = errors.New("channels: agents cannot post into SMS or email feeds; reply on an issue")
)

// Config configures a Service.
type Config struct {
	Now       func() time.Time // default time.Now
	Directory Directory        // optional: fills author/customer/issue summaries
	Notifier  Notifier         // optional: told about agents' messages, in their transaction
	People    People           // user look-ups for direct messages and membership changes
	// Revoke, when set, ends a user's live access to a topic after the commit that took
	// it away (hub.Hub.Revoke): a member removed from a channel stops receiving its feed
	// on connections that are open.
	Revoke func(userID int64, t hub.Topic)
}

// Notifier hears about every message an agent posts into a team or direct channel, inside
// the posting transaction, so the notifications it records commit (or roll back) with the
// message. An error rolls the post back. notify.Service implements it.
type Notifier interface {
	ChannelMessage(ctx context.Context, tx *store.Tx, ch *Channel, m *Message) error
}

// Service is the channels API.
type Service struct {
	db  *store.DB
	log *hub.Log
	cfg Config
}

// New returns a Service.
func New(db *store.DB, log *hub.Log, cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{db: db, log: log, cfg: cfg}
}

// SetDirectory sets the Directory after construction (it usually depends on services that
// depend on this one).
func (s *Service) SetDirectory(d Directory) { s.cfg.Directory = d }

// SetNotifier sets the Notifier after construction (notify depends on this service).
func (s *Service) SetNotifier(n Notifier) { s.cfg.Notifier = n }

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

const channelCols = `id, kind, name, COALESCE(address, ''), all_agents, last_number, created_at`

func scanChannel(row interface{ Scan(...any) error }) (*Channel, error) {
	var c Channel
	if err := row.Scan(&c.ID, &c.Kind, &c.Name, &c.Address, &c.AllAgents, &c.LastNumber, &c.CreatedAt); err != nil {
		return nil, err
	}
	return &c, nil
}

// Ensure returns the channel of kind at address, creating it with name when missing.
// SMS and email channels start with every agent as a member.
func (s *Service) Ensure(ctx context.Context, kind Kind, name, address string) (*Channel, error) {
	if kind != SMS && kind != Email {
		return nil, fmt.Errorf("channels: Ensure is for sms and email channels, not %q", kind)
	}
	var ch *Channel
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		ch, err = scanChannel(tx.QueryRowContext(ctx, `INSERT INTO channels (kind, name, address, all_agents, created_at)
			VALUES ($1, $2, $3, TRUE, $4)
			ON CONFLICT (kind, address) DO UPDATE SET kind = excluded.kind
			RETURNING `+channelCols, kind, name, address, s.now()))
		return store.Err(err)
	})
	if err != nil {
		return nil, fmt.Errorf("channels: ensure %s %s: %w", kind, address, err)
	}
	return ch, nil
}

// CreateTeam creates a team channel with the given members.
func (s *Service) CreateTeam(ctx context.Context, name string, memberIDs []int64) (*Channel, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, errors.New("channels: a team channel needs a name")
	}
	var ch *Channel
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		ch, err = scanChannel(tx.QueryRowContext(ctx, `INSERT INTO channels (kind, name, all_agents, created_at)
			VALUES ('team', $1, FALSE, $2) RETURNING `+channelCols, name, s.now()))
		if err != nil {
			return store.Err(err)
		}
		for _, uid := range memberIDs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO channel_members (channel_id, user_id, joined_at) VALUES ($1, $2, $3)
				ON CONFLICT (channel_id, user_id) DO NOTHING`, ch.ID, uid, s.now()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("channels: create team channel: %w", err)
	}
	return ch, nil
}

// Get returns a channel.
func (s *Service) Get(ctx context.Context, id int64) (*Channel, error) { return s.GetIn(ctx, s.db, id) }

// GetIn returns a channel, read through q (a caller's transaction, so the read needs no
// second connection).
func (s *Service) GetIn(ctx context.Context, q store.Querier, id int64) (*Channel, error) {
	ch, err := scanChannel(q.QueryRowContext(ctx, `SELECT `+channelCols+` FROM channels WHERE id = $1`, id))
	if err != nil {
		if errors.Is(store.Err(err), store.ErrNotFound) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("channels: get %d: %w", id, err)
	}
	return ch, nil
}

// ByAddress returns the channel of kind at address.
func (s *Service) ByAddress(ctx context.Context, kind Kind, address string) (*Channel, error) {
	ch, err := scanChannel(s.db.QueryRowContext(ctx, `SELECT `+channelCols+` FROM channels WHERE kind = $1 AND address = $2`, kind, address))
	if err != nil {
		if errors.Is(store.Err(err), store.ErrNotFound) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("channels: find %s %s: %w", kind, address, err)
	}
	return ch, nil
}

// memberClause selects the channels user $1 belongs to.
const memberClause = `(c.all_agents OR EXISTS (SELECT 1 FROM channel_members cm WHERE cm.channel_id = c.id AND cm.user_id = $1))`

// ForUser lists the channels a user belongs to, with their read position and unread count
// (their own messages do not count).
func (s *Service) ForUser(ctx context.Context, userID int64) ([]*View, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT c.id, c.kind, c.name, COALESCE(c.address, ''), c.all_agents, c.last_number, c.created_at,
			COALESCE(r.last_read, 0),
			(SELECT COUNT(*) FROM messages m WHERE m.channel_id = c.id AND m.number > COALESCE(r.last_read, 0)
				AND (m.author_id IS NULL OR m.author_id <> $1))
		FROM channels c LEFT JOIN channel_reads r ON r.channel_id = c.id AND r.user_id = $1
		WHERE `+memberClause+`
		ORDER BY CASE c.kind WHEN 'sms' THEN 0 WHEN 'email' THEN 1 WHEN 'team' THEN 2 ELSE 3 END, c.name, c.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("channels: list for user %d: %w", userID, err)
	}
	defer rows.Close()
	var out []*View
	for rows.Next() {
		var v View
		if err := rows.Scan(&v.ID, &v.Kind, &v.Name, &v.Address, &v.AllAgents, &v.LastNumber, &v.CreatedAt, &v.LastRead, &v.Unread); err != nil {
			return nil, fmt.Errorf("channels: list for user %d: %w", userID, err)
		}
		out = append(out, &v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	for _, v := range out {
		if err := s.personalize(ctx, v, userID); err != nil {
			return nil, err
		}
	}
	// Direct channels come last (the ORDER BY) and sort by the other person's name,
	// which only exists per viewer.
	if i := slices.IndexFunc(out, func(v *View) bool { return v.Kind == Direct }); i >= 0 {
		slices.SortStableFunc(out[i:], func(a, b *View) int {
			return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
		})
	}
	return out, nil
}

// IsMember reports whether the user belongs to the channel.
func (s *Service) IsMember(ctx context.Context, userID, channelID int64) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM channels c WHERE c.id = $2 AND `+memberClause, userID, channelID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("channels: membership: %w", err)
	}
	return n > 0, nil
}

// MemberIDs lists the users of a channel, given every user's id (for all-agents channels).
func (s *Service) MemberIDs(ctx context.Context, q store.Querier, channelID int64) (allAgents bool, ids []int64, err error) {
	if err := q.QueryRowContext(ctx, `SELECT all_agents FROM channels WHERE id = $1`, channelID).Scan(&allAgents); err != nil {
		return false, nil, fmt.Errorf("channels: members of %d: %w", channelID, store.Err(err))
	}
	if allAgents {
		return true, nil, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT user_id FROM channel_members WHERE channel_id = $1 ORDER BY user_id`, channelID)
	if err != nil {
		return false, nil, fmt.Errorf("channels: members of %d: %w", channelID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return false, nil, err
		}
		ids = append(ids, id)
	}
	return false, ids, rows.Err()
}

// Topics lists the live topics a user may follow: their channels' feeds and their own
// private topic.
func (s *Service) Topics(ctx context.Context, userID int64) ([]hub.Topic, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT c.id FROM channels c WHERE `+memberClause+` ORDER BY c.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("channels: topics of user %d: %w", userID, err)
	}
	defer rows.Close()
	topics := []hub.Topic{hub.UserTopic(userID)}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		topics = append(topics, hub.ChannelTopic(id))
	}
	return topics, rows.Err()
}

// Post is a new feed message.
type Post struct {
	ChannelID  int64
	Body       string
	AuthorID   *int64
	CustomerID *int64
	IssueID    *int64
	CommentID  *int64
}

// Append adds a message to a feed inside the caller's transaction and emits
// "message.created" on the channel's topic, published after commit. The event carries
// the message as Describe renders it, so clients need no extra request.
func (s *Service) Append(ctx context.Context, tx *store.Tx, p Post) (*Message, error) {
	m := &Message{ChannelID: p.ChannelID, Body: p.Body, AuthorID: p.AuthorID, CustomerID: p.CustomerID,
		IssueID: p.IssueID, CommentID: p.CommentID, CreatedAt: s.now()}
	err := tx.QueryRowContext(ctx, `UPDATE channels SET last_number = last_number + 1 WHERE id = $1 RETURNING last_number`,
		p.ChannelID).Scan(&m.Number)
	if err != nil {
		if errors.Is(store.Err(err), store.ErrNotFound) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("channels: number message: %w", err)
	}
	err = tx.QueryRowContext(ctx, `INSERT INTO messages (channel_id, number, author_id, customer_id, issue_id, comment_id, body, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		m.ChannelID, m.Number, m.AuthorID, m.CustomerID, m.IssueID, m.CommentID, m.Body, m.CreatedAt).Scan(&m.ID)
	if err != nil {
		return nil, fmt.Errorf("channels: insert message: %w", store.Err(err))
	}
	if s.cfg.Directory != nil {
		if err := s.cfg.Directory.Describe(ctx, tx, []*Message{m}); err != nil {
			return nil, fmt.Errorf("channels: describe message: %w", err)
		}
	}
	if _, err := s.log.Append(ctx, tx, hub.ChannelTopic(m.ChannelID), "message.created", map[string]any{"message": m}); err != nil {
		return nil, err
	}
	return m, nil
}

// Messages returns up to limit messages of a channel with number < before (0: the
// newest), in ascending order, and whether older ones exist.
func (s *Service) Messages(ctx context.Context, channelID, before int64, limit int) ([]*Message, bool, error) {
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	if before <= 0 {
		before = 1 << 62
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, channel_id, number, body, author_id, customer_id, issue_id, comment_id, created_at
		FROM messages WHERE channel_id = $1 AND number < $2 ORDER BY number DESC LIMIT $3`, channelID, before, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("channels: messages of %d: %w", channelID, err)
	}
	defer rows.Close()
	var out []*Message
	for rows.Next() {
		var m Message
		if err := rows.Scan(&m.ID, &m.ChannelID, &m.Number, &m.Body, &m.AuthorID, &m.CustomerID, &m.IssueID, &m.CommentID, &m.CreatedAt); err != nil {
			return nil, false, fmt.Errorf("channels: messages of %d: %w", channelID, err)
		}
		out = append(out, &m)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if s.cfg.Directory != nil && len(out) > 0 {
		if err := s.cfg.Directory.Describe(ctx, s.db, out); err != nil {
			return nil, false, fmt.Errorf("channels: describe messages: %w", err)
		}
	}
	return out, more, nil
}

// LastRead returns the user's read position in a channel.
func (s *Service) LastRead(ctx context.Context, userID, channelID int64) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT last_read FROM channel_reads WHERE channel_id = $1 AND user_id = $2`, channelID, userID).Scan(&n)
	if err != nil && !errors.Is(store.Err(err), store.ErrNotFound) {
		return 0, fmt.Errorf("channels: read position: %w", err)
	}
	return n, nil
}

// ReadState is a user's position in one channel.
type ReadState struct {
	ChannelID int64 `json:"channel_id"`
	LastRead  int64 `json:"last_read"`
	Unread    int64 `json:"unread"`
	// AsOf is the number of the channel's newest message when Unread was counted. A
	// client that has seen newer messages by the time this answer arrives counts those on
	// top, instead of letting a late answer wipe them out.
	AsOf int64 `json:"as_of"`
}

// MarkRead moves the user's read position in a channel forward to number (never back,
// never past the newest message) and tells all the user's tabs and devices, through their
// private topic, so every badge agrees.
func (s *Service) MarkRead(ctx context.Context, userID, channelID, number int64) (*ReadState, error) {
	st := &ReadState{ChannelID: channelID}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var last int64
		if err := tx.QueryRowContext(ctx, `SELECT last_number FROM channels WHERE id = $1`, channelID).Scan(&last); err != nil {
			if errors.Is(store.Err(err), store.ErrNotFound) {
				return ErrNotFound
			}
			return err
		}
		number = min(number, last)
		st.AsOf = last
		err := tx.QueryRowContext(ctx, `INSERT INTO channel_reads (channel_id, user_id, last_read) VALUES ($1, $2, $3)
			ON CONFLICT (channel_id, user_id) DO UPDATE SET last_read = CASE
				WHEN excluded.last_read > channel_reads.last_read THEN excluded.last_read ELSE channel_reads.last_read END
			RETURNING last_read`, channelID, userID, max(number, 0)).Scan(&st.LastRead)
		if err != nil {
			return store.Err(err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages WHERE channel_id = $1 AND number > $2
			AND (author_id IS NULL OR author_id <> $3)`, channelID, st.LastRead, userID).Scan(&st.Unread); err != nil {
			return err
		}
		_, err = s.log.Append(ctx, tx, hub.UserTopic(userID), "channel.read", st)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("channels: mark read: %w", err)
	}
	return st, nil
}

// PostAsUser adds a user's message to a team or direct channel.
func (s *Service) PostAsUser(ctx context.Context, userID, channelID int64, body string) (*Message, error) {
	ch, err := s.Get(ctx, channelID)
	if err != nil {
		return nil, err
	}
	if ch.Kind != Team && ch.Kind != Direct {
		return nil, ErrReadOnly
	}
	var m *Message
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		m, err = s.Append(ctx, tx, Post{ChannelID: channelID, Body: body, AuthorID: &userID})
		if err != nil {
			return err
		}
		if s.cfg.Notifier != nil {
			if err := s.cfg.Notifier.ChannelMessage(ctx, tx, ch, m); err != nil {
				return err
			}
		}
		// Writing is reading: the author's own position moves past their message.
		_, err = tx.ExecContext(ctx, `INSERT INTO channel_reads (channel_id, user_id, last_read) VALUES ($1, $2, $3)
			ON CONFLICT (channel_id, user_id) DO UPDATE SET last_read = excluded.last_read`, channelID, userID, m.Number)
		return err
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}
