package issues

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/store"
)

// Actor is who performs an action.
type Actor struct {
	UserID int64
	Admin  bool
}

// Rule refusals. Each names the rule, as a 403 must.
var (
	ErrAssignedToOther = httpx.Errorf(http.StatusForbidden, "this issue is assigned to someone else; only its assignee or an admin may reassign it")
	ErrResolveOther    = httpx.Errorf(http.StatusForbidden, "only the assignee or an admin may resolve an issue assigned to someone else")
	ErrAlreadyResolved = httpx.Errorf(http.StatusConflict, "the issue is already resolved or closed")
)

// Take assigns the issue to the actor.
func (s *Service) Take(ctx context.Context, a Actor, issueID int64) (*Issue, error) {
	return s.Assign(ctx, a, issueID, a.UserID)
}

// Assign assigns the issue to assignee. Taking or reassigning an issue already assigned
// to someone else is for that assignee or an admin. The check and the write happen in one
// transaction on the locked issue row, so two agents taking at once leave one assignee and
// the other a refusal.
func (s *Service) Assign(ctx context.Context, a Actor, issueID, assignee int64) (*Issue, error) {
	return s.act(ctx, a, issueID, "assigned", func(tx *store.Tx, cur *Issue, now time.Time) (map[string]any, error) {
		if cur.AssigneeID != nil && *cur.AssigneeID != a.UserID && !a.Admin && *cur.AssigneeID != assignee {
			return nil, ErrAssignedToOther
		}
		if cur.AssigneeID != nil && *cur.AssigneeID == assignee {
			return nil, nil // already so: nothing to log
		}
		status := cur.Status
		if status == Open {
			status = InProgress
		}
		_, err := tx.ExecContext(ctx, `UPDATE issues SET assignee_id = $1, status = $2, updated_at = $3 WHERE id = $4`,
			assignee, status, now, issueID)
		return map[string]any{"assignee_id": assignee, "previous_assignee_id": cur.AssigneeID}, err
	})
}

// Resolve marks the issue resolved. An agent may resolve an issue that is unassigned or
// assigned to them; admins any.
func (s *Service) Resolve(ctx context.Context, a Actor, issueID int64) (*Issue, error) {
	return s.act(ctx, a, issueID, "resolved", func(tx *store.Tx, cur *Issue, now time.Time) (map[string]any, error) {
		if cur.AssigneeID != nil && *cur.AssigneeID != a.UserID && !a.Admin {
			return nil, ErrResolveOther
		}
		if cur.Status == Resolved || cur.Status == Closed {
			return nil, ErrAlreadyResolved
		}
		_, err := tx.ExecContext(ctx, `UPDATE issues SET status = 'resolved', resolved_by = $1, resolved_at = $2, updated_at = $2
			WHERE id = $3`, a.UserID, now, issueID)
		return map[string]any{"previous_status": cur.Status}, err
	})
}

// act runs one action on a locked issue: check and write in fn, then the activity entry
// and the events every open feed and issue view needs, after commit.
func (s *Service) act(ctx context.Context, a Actor, issueID int64, action string,
	fn func(tx *store.Tx, cur *Issue, now time.Time) (map[string]any, error)) (*Issue, error) {
	var out *Issue
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		now := s.now()
		// Lock the row first (a no-op write takes the row lock on PostgreSQL; SQLite
		// transactions are already exclusive), so the rule is checked on current state.
		res, err := tx.ExecContext(ctx, `UPDATE issues SET updated_at = updated_at WHERE id = $1`, issueID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		cur, err := s.get(ctx, tx, issueID)
		if err != nil {
			return err
		}
		details, err := fn(tx, cur, now)
		if err != nil {
			return err
		}
		if details == nil {
			out = cur
			return nil
		}
		if err := s.addActivity(ctx, tx, issueID, &a.UserID, action, details, now); err != nil {
			return err
		}
		if out, err = s.get(ctx, tx, issueID); err != nil {
			return err
		}
		data := map[string]any{"issue": out, "action": action, "actor_id": a.UserID}
		if _, err := s.log.Append(ctx, tx, hub.ChannelTopic(out.ChannelID), "issue.updated", data); err != nil {
			return err
		}
		_, err = s.log.Append(ctx, tx, hub.IssueTopic(issueID), "issue.updated", data)
		return err
	})
	if err != nil {
		var he *httpx.Error
		if errors.As(err, &he) || errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("issues: %s %d: %w", action, issueID, err)
	}
	return out, nil
}
