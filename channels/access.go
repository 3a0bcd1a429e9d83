package channels

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/store"
)

// Errors of access changes.
var (
	ErrAccessAdminOnly = errors.New("channels: only admins may narrow or widen SMS and email channels")
	ErrNotCustomerFeed = errors.New("channels: access is set on SMS and email channels; team channels have members and a direct message its two people")
)

// Access is who belongs to an SMS or email channel: every agent, or the listed ones.
type Access struct {
	AllAgents bool    `json:"all_agents"`
	MemberIDs []int64 `json:"member_ids"`
}

// SetAccess narrows an SMS or email channel to some agents, or widens it to every agent
// again (DESIGN: every agent is a member of every SMS and email channel unless an admin
// narrows it). Each person who gains the channel hears channel.added; each who loses it
// hears channel.removed, and their open connections resume without it (Config.Revoke).
// Every open connection of a member follows the channel's topic, so revoking that topic
// also ends what they followed of its issues: the resumed connection authorizes those
// again.
func (s *Service) SetAccess(ctx context.Context, actor *accounts.User, channelID int64, a Access) (*Access, error) {
	if !actor.IsAdmin() {
		return nil, ErrAccessAdminOnly
	}
	ch, err := s.Get(ctx, channelID)
	if err != nil {
		return nil, err
	}
	if ch.Kind != SMS && ch.Kind != Email {
		return nil, ErrNotCustomerFeed
	}
	if s.cfg.People == nil {
		return nil, errors.New("channels: no People configured")
	}
	users, err := s.cfg.People.Users(ctx)
	if err != nil {
		return nil, err
	}
	known := map[int64]bool{}
	var everyone []int64
	for _, u := range users {
		known[u.ID] = true
		everyone = append(everyone, u.ID)
	}
	want := everyone
	if !a.AllAgents {
		want = slices.Compact(slices.Sorted(slices.Values(a.MemberIDs)))
		for _, id := range want {
			if !known[id] {
				return nil, fmt.Errorf("%w: %d", ErrNoSuchUser, id)
			}
		}
	}
	var lost []int64
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		lost = nil
		allBefore, before, err := s.MemberIDs(ctx, tx, channelID)
		if err != nil {
			return err
		}
		if allBefore {
			before = everyone
		}
		if _, err := tx.ExecContext(ctx, `UPDATE channels SET all_agents = $1 WHERE id = $2`, a.AllAgents, channelID); err != nil {
			return fmt.Errorf("channels: set access: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM channel_members WHERE channel_id = $1`, channelID); err != nil {
			return fmt.Errorf("channels: set access: %w", err)
		}
		if !a.AllAgents {
			for _, id := range want {
				if _, err := tx.ExecContext(ctx, `INSERT INTO channel_members (channel_id, user_id, joined_at) VALUES ($1, $2, $3)`,
					channelID, id, s.now()); err != nil {
					return fmt.Errorf("channels: set access: %w", store.Err(err))
				}
			}
		}
		ch.AllAgents = a.AllAgents
		for _, id := range want {
			if !slices.Contains(before, id) {
				if err := s.announce(ctx, tx, ch, id); err != nil {
					return err
				}
			}
		}
		for _, id := range before {
			if slices.Contains(want, id) {
				continue
			}
			lost = append(lost, id)
			if _, err := s.log.Append(ctx, tx, hub.UserTopic(id), "channel.removed", map[string]any{"channel_id": channelID}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if s.cfg.Revoke != nil {
		for _, id := range lost {
			s.cfg.Revoke(id, hub.ChannelTopic(channelID))
		}
	}
	out := &Access{AllAgents: a.AllAgents, MemberIDs: []int64{}}
	if !a.AllAgents {
		out.MemberIDs = want
	}
	return out, nil
}
