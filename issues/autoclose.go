package issues

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/store"
)

// autoClose closes the issues resolved for longer than the settings' AutoCloseMinutes
// (0: never). Each closes in its own transaction, on a conditional update, so an issue
// reopened meanwhile (or closed by someone) is left alone and none closes twice. Like a
// close by hand it logs "closed" (no actor, details {"reason":"auto_close"}) and sends
// issue.updated to the issue's channel and issue topics.
func (e *Engine) autoClose(ctx context.Context, now time.Time, settings *SLASettings) (int, error) {
	if settings.AutoCloseMinutes <= 0 {
		return 0, nil
	}
	cutoff := now.Add(-time.Duration(settings.AutoCloseMinutes) * time.Minute)
	ids, err := e.ids(ctx, `SELECT id FROM issues WHERE status = 'resolved' AND COALESCE(resolved_at, updated_at) <= $1
		ORDER BY id LIMIT $2`, cutoff, e.cfg.Batch)
	if err != nil {
		return 0, fmt.Errorf("issues: auto-close: issues to close: %w", err)
	}
	n := 0
	var errs []error
	for _, id := range ids {
		closed, err := e.closeResolved(ctx, id, now, cutoff)
		if err != nil {
			errs = append(errs, fmt.Errorf("issues: auto-close %d: %w", id, err))
			continue
		}
		if closed {
			n++
		}
	}
	return n, errors.Join(errs...)
}

func (e *Engine) closeResolved(ctx context.Context, id int64, now, cutoff time.Time) (bool, error) {
	s := e.svc
	closed := false
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		closed = false
		res, err := tx.ExecContext(ctx, `UPDATE issues SET status = 'closed', closed_at = $1, updated_at = $1
			WHERE id = $2 AND status = 'resolved' AND COALESCE(resolved_at, updated_at) <= $3`, now, id, cutoff)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // reopened or closed meanwhile
		}
		if err := s.addActivity(ctx, tx, id, nil, "closed", map[string]any{"reason": "auto_close"}, now); err != nil {
			return err
		}
		issue, err := s.get(ctx, tx, id)
		if err != nil {
			return err
		}
		data := map[string]any{"issue": issue, "action": "closed", "actor_id": nil}
		if _, err := s.log.Append(ctx, tx, hub.ChannelTopic(issue.ChannelID), "issue.updated", data); err != nil {
			return err
		}
		if _, err := s.log.Append(ctx, tx, hub.IssueTopic(id), "issue.updated", data); err != nil {
			return err
		}
		closed = true
		return nil
	})
	return closed, err
}
