package channels

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/store"
)

// People looks users up for the channels package, which does not read the users table
// itself. accounts.Service implements it.
type People interface {
	User(ctx context.Context, id int64) (*accounts.User, error)
	Users(ctx context.Context) ([]*accounts.User, error)
}

// SetPeople sets who answers user look-ups (direct-message names, membership checks).
func (s *Service) SetPeople(p People) { s.cfg.People = p }

// Errors of membership changes, for the HTTP layer to word.
var (
	ErrSelfDirect    = errors.New("channels: a direct message needs another person")
	ErrNoSuchUser    = errors.New("channels: no such user")
	ErrFixedMembers  = errors.New("channels: only team channels have members to add or remove; SMS and email channels include every agent and a direct message is between its two people")
	ErrMayNotRemove  = errors.New("channels: only admins may remove someone else from a team channel; anyone may leave")
	ErrTooManyPeople = errors.New("channels: a team channel starts with at most 500 members")
)

// maxInitialMembers bounds the member list of one create request.
const maxInitialMembers = 500

// directAddress names the pair of users a direct channel is between. The smaller id goes
// first, so both people find the same row, and the (kind, address) unique index turns two
// people opening the conversation at once into one channel.
func directAddress(a, b int64) string {
	return fmt.Sprintf("%d:%d", min(a, b), max(a, b))
}

// checkUser reports ErrNoSuchUser for an unknown or disabled user.
func (s *Service) checkUser(ctx context.Context, id int64) (*accounts.User, error) {
	if s.cfg.People == nil {
		return nil, errors.New("channels: no People configured")
	}
	u, err := s.cfg.People.User(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, ErrNoSuchUser
		}
		return nil, err
	}
	if u.Disabled {
		return nil, ErrNoSuchUser
	}
	return u, nil
}

// OpenDirect returns the direct channel between userID and otherID, creating it the first
// time either of them opens it. Creating it tells both people's live connections
// (channel.added on their private topics), so the conversation appears in the other
// person's sidebar at once.
func (s *Service) OpenDirect(ctx context.Context, userID, otherID int64) (*Channel, error) {
	if userID == otherID {
		return nil, ErrSelfDirect
	}
	if _, err := s.checkUser(ctx, otherID); err != nil {
		return nil, err
	}
	addr := directAddress(userID, otherID)
	if ch, err := s.ByAddress(ctx, Direct, addr); err == nil {
		return ch, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	var ch *Channel
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		ch, err = scanChannel(tx.QueryRowContext(ctx, `INSERT INTO channels (kind, name, address, all_agents, created_at)
			VALUES ('direct', '', $1, FALSE, $2)
			ON CONFLICT (kind, address) DO NOTHING
			RETURNING `+channelCols, addr, s.now()))
		if errors.Is(store.Err(err), store.ErrNotFound) {
			// The other person opened it a moment ago: theirs is the channel.
			ch = nil
			return nil
		}
		if err != nil {
			return store.Err(err)
		}
		return s.addMembers(ctx, tx, ch, []int64{userID, otherID})
	})
	if err != nil {
		return nil, fmt.Errorf("channels: open direct message: %w", err)
	}
	if ch == nil {
		return s.ByAddress(ctx, Direct, addr)
	}
	return ch, nil
}

// Peer is the other person of a direct channel, seen from userID (0 when the channel is
// not a direct one or userID is not in it).
func Peer(ch *Channel, userID int64) int64 {
	if ch.Kind != Direct {
		return 0
	}
	a, b, ok := strings.Cut(ch.Address, ":")
	if !ok {
		return 0
	}
	var x, y int64
	if _, err := fmt.Sscan(a, &x); err != nil {
		return 0
	}
	if _, err := fmt.Sscan(b, &y); err != nil {
		return 0
	}
	switch userID {
	case x:
		return y
	case y:
		return x
	}
	return 0
}

// personalize fills what depends on who looks: a direct channel is named after the other
// person and carries their id, and its internal address (the pair of ids) is not shown.
func (s *Service) personalize(ctx context.Context, v *View, userID int64) error {
	if v.Kind != Direct {
		return nil
	}
	v.PeerID = Peer(&v.Channel, userID)
	v.Address = ""
	v.Name = "Direct message"
	if s.cfg.People == nil || v.PeerID == 0 {
		return nil
	}
	u, err := s.cfg.People.User(ctx, v.PeerID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	v.Name = u.Name
	return nil
}

// View returns one channel as userID sees it, with their read position.
func (s *Service) View(ctx context.Context, userID, channelID int64) (*View, error) {
	views, err := s.ForUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	for _, v := range views {
		if v.ID == channelID {
			return v, nil
		}
	}
	return nil, ErrNotMember
}

// addMembers makes users members of ch inside tx and announces the channel on each new
// member's private topic. Existing members are left alone and not told again.
func (s *Service) addMembers(ctx context.Context, tx *store.Tx, ch *Channel, userIDs []int64) error {
	for _, uid := range userIDs {
		res, err := tx.ExecContext(ctx, `INSERT INTO channel_members (channel_id, user_id, joined_at) VALUES ($1, $2, $3)
			ON CONFLICT (channel_id, user_id) DO NOTHING`, ch.ID, uid, s.now())
		if err != nil {
			if errors.Is(store.Err(err), store.ErrForeignKey) {
				return ErrNoSuchUser
			}
			return fmt.Errorf("channels: add member: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue
		}
		if err := s.announce(ctx, tx, ch, uid); err != nil {
			return err
		}
	}
	return nil
}

// announce tells uid's connections, inside tx, that they now belong to ch, with their
// unread count above the read marker they kept (if they were a member before).
func (s *Service) announce(ctx context.Context, tx *store.Tx, ch *Channel, uid int64) error {
	v := &View{Channel: *ch}
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE((SELECT last_read FROM channel_reads WHERE channel_id = $1 AND user_id = $2), 0)`,
		ch.ID, uid).Scan(&v.LastRead); err != nil {
		return fmt.Errorf("channels: read marker: %w", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages WHERE channel_id = $1 AND number > $2 AND (author_id IS NULL OR author_id <> $3)`,
		ch.ID, v.LastRead, uid).Scan(&v.Unread); err != nil {
		return fmt.Errorf("channels: count unread: %w", err)
	}
	if err := s.personalize(ctx, v, uid); err != nil {
		return err
	}
	_, err := s.log.Append(ctx, tx, hub.UserTopic(uid), "channel.added", map[string]any{"channel": v})
	return err
}

// CreateTeamBy creates a team channel on behalf of creatorID, who is always a member,
// with the given other members, and announces it to each of them.
func (s *Service) CreateTeamBy(ctx context.Context, creatorID int64, name string, memberIDs []int64) (*Channel, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, errors.New("channels: a team channel needs a name")
	}
	members := append([]int64{creatorID}, memberIDs...)
	slices.Sort(members)
	members = slices.Compact(members)
	if len(members) > maxInitialMembers {
		return nil, ErrTooManyPeople
	}
	for _, id := range members {
		if id == creatorID {
			continue
		}
		if _, err := s.checkUser(ctx, id); err != nil {
			return nil, fmt.Errorf("%w: %d", err, id)
		}
	}
	var ch *Channel
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		ch, err = scanChannel(tx.QueryRowContext(ctx, `INSERT INTO channels (kind, name, all_agents, created_at)
			VALUES ('team', $1, FALSE, $2) RETURNING `+channelCols, name, s.now()))
		if err != nil {
			return store.Err(err)
		}
		return s.addMembers(ctx, tx, ch, members)
	})
	if err != nil {
		return nil, fmt.Errorf("channels: create team channel: %w", err)
	}
	return ch, nil
}

// AddMember adds userID to a team channel on behalf of actor, who must be a member of it
// or an admin (a non-member sees no such channel).
func (s *Service) AddMember(ctx context.Context, actor *accounts.User, channelID, userID int64) error {
	ch, err := s.memberEditable(ctx, actor, channelID)
	if err != nil {
		return err
	}
	if _, err := s.checkUser(ctx, userID); err != nil {
		return err
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error { return s.addMembers(ctx, tx, ch, []int64{userID}) })
}

// RemoveMember takes userID out of a team channel: anyone may leave, only admins remove
// others. The removed person's tabs hear channel.removed, and their open connections that
// follow the channel are made to resume without it (Config.Revoke). Their read marker
// stays, so rejoining picks up where they were.
func (s *Service) RemoveMember(ctx context.Context, actor *accounts.User, channelID, userID int64) error {
	if _, err := s.memberEditable(ctx, actor, channelID); err != nil {
		return err
	}
	if userID != actor.ID && !actor.IsAdmin() {
		return ErrMayNotRemove
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM channel_members WHERE channel_id = $1 AND user_id = $2`, channelID, userID)
		if err != nil {
			return fmt.Errorf("channels: remove member: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		if s.cfg.Revoke != nil {
			tx.AfterCommit(func() { s.cfg.Revoke(userID, hub.ChannelTopic(channelID)) })
		}
		_, err = s.log.Append(ctx, tx, hub.UserTopic(userID), "channel.removed", map[string]any{"channel_id": channelID})
		return err
	})
}

// memberEditable returns the channel when it is a team channel the actor can see (admins
// see all); otherwise ErrNotFound (not a member: ids are not to be probed) or
// ErrFixedMembers.
func (s *Service) memberEditable(ctx context.Context, actor *accounts.User, channelID int64) (*Channel, error) {
	ch, err := s.Get(ctx, channelID)
	if err != nil {
		return nil, err
	}
	if !actor.IsAdmin() {
		ok, err := s.IsMember(ctx, actor.ID, channelID)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ErrNotFound
		}
	}
	if ch.Kind != Team {
		return nil, ErrFixedMembers
	}
	return ch, nil
}
