package issues

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/store"
)

// Refusals of split and merge.
var (
	ErrSplitKind      = httpx.Errorf(http.StatusBadRequest, "only a customer message can be split out into a new issue")
	ErrSplitOnly      = httpx.Errorf(http.StatusConflict, "this is the issue's only customer message; there is nothing to split it from")
	ErrMergeCustomer  = httpx.Errorf(http.StatusConflict, "only issues of the same customer can be merged")
	ErrMergeSelf      = httpx.Errorf(http.StatusBadRequest, "an issue cannot be merged into itself")
	ErrMergeClosed    = httpx.Errorf(http.StatusConflict, "cannot merge into a closed issue; reopen it first")
	ErrNotYoursToEdit = httpx.Errorf(http.StatusForbidden, "only the assignee or an admin may split or merge an issue assigned to someone else")
	ErrNoComment      = httpx.Errorf(http.StatusNotFound, "no such message in this issue")
)

// mayEdit is the rule for split and merge: as for resolving, an agent may change an issue
// that is unassigned or assigned to them; admins any.
func mayEdit(a Actor, i *Issue) bool {
	return a.Admin || i.AssigneeID == nil || *i.AssigneeID == a.UserID
}

// Split moves a customer message that was threaded into the wrong issue out into a new
// issue of the same customer, with the comments after it that answer it staying put. Both
// issues log it.
func (s *Service) Split(ctx context.Context, a Actor, issueID, commentID int64) (*Issue, error) {
	var out *Issue
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		now := s.now()
		src, err := s.lockedIssue(ctx, tx, issueID)
		if err != nil {
			return err
		}
		if !mayEdit(a, src) {
			return ErrNotYoursToEdit
		}
		var kind string
		var channelID *int64
		err = tx.QueryRowContext(ctx, `SELECT kind, channel_id FROM comments WHERE id = $1 AND issue_id = $2`, commentID, issueID).Scan(&kind, &channelID)
		if errors.Is(store.Err(err), store.ErrNotFound) {
			return ErrNoComment
		}
		if err != nil {
			return err
		}
		if kind != KindCustomer {
			return ErrSplitKind
		}
		var customerMsgs int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM comments WHERE issue_id = $1 AND kind = 'customer'`, issueID).Scan(&customerMsgs); err != nil {
			return err
		}
		if customerMsgs < 2 {
			return ErrSplitOnly
		}
		ch := src.ChannelID
		if channelID != nil {
			ch = *channelID
		}
		var body string
		if err := tx.QueryRowContext(ctx, `SELECT body FROM comments WHERE id = $1`, commentID).Scan(&body); err != nil {
			return err
		}
		var newID int64
		err = tx.QueryRowContext(ctx, `INSERT INTO issues (channel_id, customer_id, status, subject, linked_issue_id, created_at, updated_at)
			VALUES ($1, $2, 'open', $3, $4, $5, $5) RETURNING id`, ch, src.CustomerID, firstLine(body, 80), issueID, now).Scan(&newID)
		if err != nil {
			return err
		}
		for _, q := range []string{
			`UPDATE comments SET issue_id = $1 WHERE id = $2`,
			`UPDATE messages SET issue_id = $1 WHERE comment_id = $2`,
		} {
			if _, err := tx.ExecContext(ctx, q, newID, commentID); err != nil {
				return err
			}
		}
		if err := s.addActivity(ctx, tx, issueID, &a.UserID, "split", map[string]any{"comment_id": commentID, "new_issue_id": newID}, now); err != nil {
			return err
		}
		if err := s.addActivity(ctx, tx, newID, &a.UserID, "created", map[string]any{"reason": "split", "from_issue_id": issueID, "comment_id": commentID}, now); err != nil {
			return err
		}
		if out, err = s.get(ctx, tx, newID); err != nil {
			return err
		}
		return s.emitChanged(ctx, tx, a, "split", issueID, newID)
	})
	if err != nil {
		return nil, s.wrap("split", issueID, err)
	}
	return out, nil
}

// Merge moves every comment of issue from into issue into (same customer) and closes
// from with a link to into. Both issues log it.
func (s *Service) Merge(ctx context.Context, a Actor, from, into int64) (*Issue, error) {
	if from == into {
		return nil, ErrMergeSelf
	}
	var out *Issue
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		now := s.now()
		// Lock in id order so two opposite merges cannot deadlock.
		first, second := min(from, into), max(from, into)
		a1, err := s.lockedIssue(ctx, tx, first)
		if err != nil {
			return err
		}
		a2, err := s.lockedIssue(ctx, tx, second)
		if err != nil {
			return err
		}
		src, dst := a1, a2
		if src.ID != from {
			src, dst = a2, a1
		}
		if !mayEdit(a, src) || !mayEdit(a, dst) {
			return ErrNotYoursToEdit
		}
		if src.CustomerID != dst.CustomerID {
			return ErrMergeCustomer
		}
		if dst.Status == Closed {
			return ErrMergeClosed
		}
		var moved int64
		res, err := tx.ExecContext(ctx, `UPDATE comments SET issue_id = $1 WHERE issue_id = $2`, into, from)
		if err != nil {
			return err
		}
		moved, _ = res.RowsAffected()
		if _, err := tx.ExecContext(ctx, `UPDATE messages SET issue_id = $1 WHERE issue_id = $2`, into, from); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE issues SET status = 'closed', closed_at = $1, updated_at = $1, linked_issue_id = $2 WHERE id = $3`,
			now, into, from); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE issues SET updated_at = $1 WHERE id = $2`, now, into); err != nil {
			return err
		}
		if err := s.addActivity(ctx, tx, from, &a.UserID, "merged_into", map[string]any{"into_issue_id": into, "comments_moved": moved}, now); err != nil {
			return err
		}
		if err := s.addActivity(ctx, tx, into, &a.UserID, "merged", map[string]any{"from_issue_id": from, "comments_moved": moved}, now); err != nil {
			return err
		}
		if out, err = s.get(ctx, tx, into); err != nil {
			return err
		}
		return s.emitChanged(ctx, tx, a, "merge", from, into)
	})
	if err != nil {
		return nil, s.wrap("merge", from, err)
	}
	return out, nil
}

// lockedIssue takes the issue's row lock (a no-op write; SQLite transactions are
// exclusive already) and reads it.
func (s *Service) lockedIssue(ctx context.Context, tx *store.Tx, id int64) (*Issue, error) {
	res, err := tx.ExecContext(ctx, `UPDATE issues SET updated_at = updated_at WHERE id = $1`, id)
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, ErrNotFound
	}
	return s.get(ctx, tx, id)
}

// emitChanged sends issue.updated for each issue to its channel and issue topics.
func (s *Service) emitChanged(ctx context.Context, tx *store.Tx, a Actor, action string, ids ...int64) error {
	for _, id := range ids {
		i, err := s.get(ctx, tx, id)
		if err != nil {
			return err
		}
		data := map[string]any{"issue": i, "action": action, "actor_id": a.UserID}
		if _, err := s.log.Append(ctx, tx, hub.ChannelTopic(i.ChannelID), "issue.updated", data); err != nil {
			return err
		}
		if _, err := s.log.Append(ctx, tx, hub.IssueTopic(id), "issue.updated", data); err != nil {
			return err
		}
	}
	return nil
}

// wrap keeps client errors as they are and adds context to the rest.
func (s *Service) wrap(action string, id int64, err error) error {
	var he *httpx.Error
	if errors.As(err, &he) || errors.Is(err, ErrNotFound) {
		return err
	}
	return fmt.Errorf("issues: %s %d: %w", action, id, err)
}
