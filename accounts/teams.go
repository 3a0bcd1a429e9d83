package accounts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-hq/switchboard/store"
)

// Team is a group of users that a note can mention at once with @handle.
type Team struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Handle    string    `json:"handle"`
	MemberIDs []int64   `json:"member_ids"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateTeam stores a new team with no members. An empty handle defaults to one derived
// from the name; a handle already used by a user or a team is a 409.
func (s *Service) CreateTeam(ctx context.Context, name, handle string) (*Team, error) {
	name = strings.TrimSpace(name)
	handle = strings.ToLower(strings.TrimSpace(handle))
	if err := validName(name); err != nil {
		return nil, err
	}
	explicit := handle != ""
	if explicit {
		if err := validHandle(handle); err != nil {
			return nil, err
		}
	}
	for attempt := 1; ; attempt++ {
		t := &Team{Name: name, MemberIDs: []int64{}, CreatedAt: s.timestamp()}
		err := s.db.InTx(ctx, func(tx *store.Tx) error {
			t.Handle = handle
			if !explicit {
				var err error
				if t.Handle, err = freeHandle(ctx, tx, defaultHandle(name)); err != nil {
					return err
				}
			} else if taken, err := handleTaken(ctx, tx, handle); err != nil {
				return err
			} else if taken {
				return handleConflict(handle)
			}
			return store.Err(tx.QueryRowContext(ctx,
				`INSERT INTO teams (name, handle, created_at) VALUES ($1, $2, $3) RETURNING id`,
				t.Name, t.Handle, t.CreatedAt).Scan(&t.ID))
		})
		if errors.Is(err, store.ErrConflict) && attempt < insertAttempts {
			continue // a concurrent writer took the handle; the next check says so
		}
		if err != nil {
			return nil, fmt.Errorf("accounts: create team: %w", err)
		}
		return t, nil
	}
}

// Teams returns every team with its members, sorted by name.
func (s *Service) Teams(ctx context.Context) ([]*Team, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, handle, created_at FROM teams ORDER BY lower(name), id`)
	if err != nil {
		return nil, err
	}
	teams := []*Team{}
	byID := map[int64]*Team{}
	for rows.Next() {
		t := &Team{MemberIDs: []int64{}}
		if err := rows.Scan(&t.ID, &t.Name, &t.Handle, &t.CreatedAt); err != nil {
			rows.Close()
			return nil, store.Err(err)
		}
		t.CreatedAt = t.CreatedAt.UTC()
		teams = append(teams, t)
		byID[t.ID] = t
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, store.Err(err)
	}
	rows, err = s.db.QueryContext(ctx, `SELECT team_id, user_id FROM team_members ORDER BY team_id, user_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var teamID, userID int64
		if err := rows.Scan(&teamID, &userID); err != nil {
			return nil, store.Err(err)
		}
		// A team created between the two queries has no entry; it shows next time.
		if t := byID[teamID]; t != nil {
			t.MemberIDs = append(t.MemberIDs, userID)
		}
	}
	return teams, store.Err(rows.Err())
}

// Team returns one team with its members; the error wraps store.ErrNotFound (and a 404)
// when there is none.
func (s *Service) Team(ctx context.Context, id int64) (*Team, error) {
	return s.team(ctx, s.db, `id = $1`, id)
}

// TeamByHandle returns the team a @handle mentions; the error wraps store.ErrNotFound
// when no team has it.
func (s *Service) TeamByHandle(ctx context.Context, handle string) (*Team, error) {
	return s.team(ctx, s.db, `handle = $1`, strings.ToLower(handle))
}

func (s *Service) team(ctx context.Context, q store.Querier, where string, arg any) (*Team, error) {
	t := &Team{MemberIDs: []int64{}}
	err := store.Err(q.QueryRowContext(ctx, `SELECT id, name, handle, created_at FROM teams WHERE `+where, arg).
		Scan(&t.ID, &t.Name, &t.Handle, &t.CreatedAt))
	if err != nil {
		return nil, notFound("team", err)
	}
	t.CreatedAt = t.CreatedAt.UTC()
	rows, err := q.QueryContext(ctx, `SELECT user_id FROM team_members WHERE team_id = $1 ORDER BY user_id`, t.ID)
	if err != nil {
		return nil, err
	}
	if t.MemberIDs, err = collectIDs(rows); err != nil {
		return nil, err
	}
	if t.MemberIDs == nil {
		t.MemberIDs = []int64{}
	}
	return t, nil
}

// AddTeamMember puts the user on the team; doing it twice is harmless. It returns the
// team as it now is.
func (s *Service) AddTeamMember(ctx context.Context, teamID, userID int64) (*Team, error) {
	return s.changeMembers(ctx, teamID, userID,
		`INSERT INTO team_members (team_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`)
}

// RemoveTeamMember takes the user off the team; removing a non-member is harmless. It
// returns the team as it now is.
func (s *Service) RemoveTeamMember(ctx context.Context, teamID, userID int64) (*Team, error) {
	return s.changeMembers(ctx, teamID, userID,
		`DELETE FROM team_members WHERE team_id = $1 AND user_id = $2`)
}

func (s *Service) changeMembers(ctx context.Context, teamID, userID int64, query string) (*Team, error) {
	var t *Team
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		// Both rows are checked first so a missing one is a 404 naming it, on both
		// engines, rather than a foreign-key error (or, for DELETE, silence).
		if _, err := s.team(ctx, tx, `id = $1`, teamID); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE id = $1`, userID).Scan(&n); err != nil {
			return store.Err(err)
		} else if n == 0 {
			return notFound("user", store.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, query, teamID, userID); err != nil {
			return err
		}
		var err error
		t, err = s.team(ctx, tx, `id = $1`, teamID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("accounts: team %d members: %w", teamID, err)
	}
	return t, nil
}
