package issues

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/notify"
	"github.com/switchboard-hq/switchboard/store"
)

// Actor is who performs an action.
type Actor struct {
	UserID int64
	Admin  bool
}

// Rule refusals. Each 403 names the rule, as DESIGN.md's "Issue rules" state it:
//
//   - Taking or reassigning (or unassigning) an issue assigned to someone else is for that
//     assignee or an admin.
//   - An agent may resolve or close only an issue that is unassigned or assigned to them.
//   - Only the assignee changes priority and status (reopen, snooze) or replies to the
//     customer; replying to an unassigned issue (or marking it contacted) takes it.
//   - Admins may do all; anyone may add an internal note.
var (
	ErrAssignedToOther = httpx.Errorf(http.StatusForbidden, "this issue is assigned to someone else; only its assignee or an admin may reassign it")
	ErrResolveOther    = httpx.Errorf(http.StatusForbidden, "only the assignee or an admin may resolve an issue assigned to someone else")
	ErrCloseOther      = httpx.Errorf(http.StatusForbidden, "only the assignee or an admin may close an issue assigned to someone else")
	ErrNotAssignee     = httpx.Errorf(http.StatusForbidden, "only the issue's assignee or an admin may change its priority or status")
	ErrSnoozeOther     = httpx.Errorf(http.StatusForbidden, "only the issue's assignee or an admin may snooze it or end its snooze")
	ErrReplyOther      = httpx.Errorf(http.StatusForbidden, "only the issue's assignee or an admin may reply to the customer")
	ErrContactOther    = httpx.Errorf(http.StatusForbidden, "only the issue's assignee or an admin may mark the customer contacted")
)

// Refusals of transitions the issue's state does not allow.
var (
	ErrAlreadyResolved = httpx.Errorf(http.StatusConflict, "the issue is already resolved or closed")
	ErrAlreadyClosed   = httpx.Errorf(http.StatusConflict, "the issue is already closed")
	ErrNotReopenable   = httpx.Errorf(http.StatusConflict, "only a resolved or closed issue can be reopened")
	ErrNeedsAssignee   = httpx.Errorf(http.StatusConflict, "an issue in progress needs an assignee; take or assign it first")
	ErrSnoozeInactive  = httpx.Errorf(http.StatusConflict, "only an open or in-progress issue can be snoozed")
	ErrBadPriority     = httpx.Errorf(http.StatusBadRequest, "priority must be low, normal, high or urgent")
	ErrBadStatus       = httpx.Errorf(http.StatusBadRequest, "status must be open, in_progress, resolved or closed")
	ErrNothingToChange = httpx.Errorf(http.StatusBadRequest, "nothing to change: send priority or status")
)

// Priorities an issue may have.
var Priorities = []string{"low", "normal", "high", "urgent"}

func validPriority(p string) bool {
	for _, q := range Priorities {
		if p == q {
			return true
		}
	}
	return false
}

// CollisionError refuses a reply or status change because the customer or a colleague
// wrote on the issue after the comment the agent last saw. It is a 409; NewComments are
// what the agent has not seen.
type CollisionError struct {
	NewComments []*Comment
}

func (e *CollisionError) Error() string {
	return "the issue has new messages since the last one you saw; read them before you act"
}

// mayEdit (split.go) is the rule for resolve and close: unassigned or mine; admins any.

// isAssignee is the rule for priority, status, snooze and replies: mine; admins any.
func isAssignee(a Actor, i *Issue) bool {
	return a.Admin || (i.AssigneeID != nil && *i.AssigneeID == a.UserID)
}

// change is one action in progress on a locked issue: fn checks the rules against cur,
// writes, and records what it did; act then logs it and tells every viewer.
type change struct {
	tx    *store.Tx
	actor Actor
	cur   *Issue // as it was when locked, then as the action changes it
	now   time.Time
	log   []logEntry
	quiet bool // the issue itself did not change (a note): no issue.updated
}

type logEntry struct {
	action  string
	details map[string]any
}

// record adds an activity entry.
func (c *change) record(action string, details map[string]any) {
	c.log = append(c.log, logEntry{action, details})
}

// act runs one action on a locked issue: fn checks and writes; then the activity entries
// and the issue.updated events every open feed and issue view needs, published after
// commit. Nothing recorded means nothing changed: no log, no event.
func (s *Service) act(ctx context.Context, a Actor, issueID int64, what string, fn func(c *change) error) (*Issue, error) {
	var out *Issue
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		// The row lock first, so the rule is checked on current state: two agents taking
		// at once leave one assignee and the other a refusal.
		cur, err := s.lockedIssue(ctx, tx, issueID)
		if err != nil {
			return err
		}
		c := &change{tx: tx, actor: a, cur: cur, now: s.now()}
		if err := fn(c); err != nil {
			return err
		}
		if len(c.log) == 0 {
			out = cur
			return nil
		}
		actions := make([]string, len(c.log))
		for i, e := range c.log {
			actions[i] = e.action
			if err := s.addActivity(ctx, tx, issueID, &a.UserID, e.action, e.details, c.now); err != nil {
				return err
			}
		}
		if out, err = s.get(ctx, tx, issueID); err != nil {
			return err
		}
		if c.quiet {
			return nil
		}
		if err := s.tell(ctx, tx, out, &notify.Occurrence{What: notify.WhatIssueUpdated, ActorID: a.UserID, Actions: actions}); err != nil {
			return err
		}
		data := map[string]any{"issue": out, "action": actions[0], "actions": actions, "actor_id": a.UserID}
		if _, err := s.log.Append(ctx, tx, hub.ChannelTopic(out.ChannelID), "issue.updated", data); err != nil {
			return err
		}
		_, err = s.log.Append(ctx, tx, hub.IssueTopic(issueID), "issue.updated", data)
		return err
	})
	if err != nil {
		var he *httpx.Error
		var ce *CollisionError
		if errors.As(err, &he) || errors.As(err, &ce) || errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("issues: %s %d: %w", what, issueID, err)
	}
	return out, nil
}

// guard refuses with a CollisionError when someone other than the actor (the customer,
// a colleague) wrote a comment after lastSeen. A nil lastSeen skips the check.
func (s *Service) guard(ctx context.Context, c *change, a Actor, lastSeen *int64) error {
	if lastSeen == nil {
		return nil
	}
	fresh, err := s.comments(ctx, c.tx, c.cur.ID, ` AND id > $2 AND (author_id IS NULL OR author_id <> $3)`, *lastSeen, a.UserID)
	if err != nil {
		return err
	}
	if len(fresh) > 0 {
		return &CollisionError{NewComments: fresh}
	}
	return nil
}

// Take assigns the issue to the actor.
func (s *Service) Take(ctx context.Context, a Actor, issueID int64) (*Issue, error) {
	return s.Assign(ctx, a, issueID, a.UserID)
}

// Assign assigns the issue to assignee. Taking or reassigning an issue already assigned
// to someone else is for that assignee or an admin. An open issue becomes in progress.
// Assigning to the current assignee changes nothing.
func (s *Service) Assign(ctx context.Context, a Actor, issueID, assignee int64) (*Issue, error) {
	return s.act(ctx, a, issueID, "assign", func(c *change) error {
		return s.assign(ctx, c, a, &assignee, "")
	})
}

// Unassign takes the assignee off the issue (the same rule as reassigning). An issue in
// progress goes back to open.
func (s *Service) Unassign(ctx context.Context, a Actor, issueID int64) (*Issue, error) {
	return s.act(ctx, a, issueID, "unassign", func(c *change) error {
		return s.assign(ctx, c, a, nil, "")
	})
}

// assign sets the assignee (nil: nobody) of c's issue after checking the rule; via says
// what caused it when it is not an explicit assignment ("reply", "contacted").
func (s *Service) assign(ctx context.Context, c *change, a Actor, assignee *int64, via string) error {
	cur := c.cur
	if cur.AssigneeID != nil && *cur.AssigneeID != a.UserID && !a.Admin &&
		(assignee == nil || *cur.AssigneeID != *assignee) {
		return ErrAssignedToOther
	}
	if (cur.AssigneeID == nil && assignee == nil) || (cur.AssigneeID != nil && assignee != nil && *cur.AssigneeID == *assignee) {
		return nil // already so: nothing to log
	}
	status := cur.Status
	switch {
	case assignee != nil && status == Open:
		status = InProgress
	case assignee == nil && status == InProgress:
		status = Open
	}
	if _, err := c.tx.ExecContext(ctx, `UPDATE issues SET assignee_id = $1, status = $2, updated_at = $3 WHERE id = $4`,
		assignee, status, c.now, cur.ID); err != nil {
		return err
	}
	details := map[string]any{"assignee_id": assignee, "previous_assignee_id": cur.AssigneeID}
	if via != "" {
		details["via"] = via
	}
	action := "assigned"
	if assignee == nil {
		action = "unassigned"
	}
	c.record(action, details)
	// Later steps of the same action see the new state.
	cur.AssigneeID, cur.Status = assignee, status
	return nil
}

// Resolve marks the issue resolved. An agent may resolve an issue that is unassigned or
// assigned to them; admins any.
func (s *Service) Resolve(ctx context.Context, a Actor, issueID int64) (*Issue, error) {
	return s.SetStatus(ctx, a, issueID, Resolved, nil)
}

// Close closes the issue (the same rule as resolving). A customer message to a closed
// issue starts a new one.
func (s *Service) Close(ctx context.Context, a Actor, issueID int64) (*Issue, error) {
	return s.SetStatus(ctx, a, issueID, Closed, nil)
}

// Reopen puts a resolved or closed issue back to work: in progress when it has an
// assignee, else open. Only the assignee (or an admin) changes status.
func (s *Service) Reopen(ctx context.Context, a Actor, issueID int64, lastSeen *int64) (*Issue, error) {
	return s.act(ctx, a, issueID, "reopen", func(c *change) error {
		if !isAssignee(a, c.cur) {
			return ErrNotAssignee
		}
		if c.cur.Status != Resolved && c.cur.Status != Closed {
			return ErrNotReopenable
		}
		if err := s.guard(ctx, c, a, lastSeen); err != nil {
			return err
		}
		to := Open
		if c.cur.AssigneeID != nil {
			to = InProgress
		}
		return s.setStatus(ctx, c, to)
	})
}

// SetStatus moves the issue to status to, as the strict one-click actions do: resolving
// (or closing) an issue that is already resolved or closed (closed) is a 409. lastSeen,
// when set, is the collision guard.
func (s *Service) SetStatus(ctx context.Context, a Actor, issueID int64, to Status, lastSeen *int64) (*Issue, error) {
	return s.act(ctx, a, issueID, string(to), func(c *change) error {
		return s.transition(ctx, c, a, to, true, lastSeen)
	})
}

// Update is PATCH: a new priority, a new status, or both, in one transaction. Asking for
// what the issue already has is not an error and changes nothing.
type Update struct {
	Priority          *string
	Status            *Status
	LastSeenCommentID *int64
}

// Update applies u. Only the assignee (or an admin) changes priority and status, except
// that resolving and closing follow their own rule (unassigned or mine).
func (s *Service) Update(ctx context.Context, a Actor, issueID int64, u Update) (*Issue, error) {
	if u.Priority == nil && u.Status == nil {
		return nil, ErrNothingToChange
	}
	if u.Priority != nil && !validPriority(*u.Priority) {
		return nil, ErrBadPriority
	}
	if u.Status != nil && !knownStatus(*u.Status) {
		return nil, ErrBadStatus
	}
	return s.act(ctx, a, issueID, "update", func(c *change) error {
		if u.Priority != nil && !isAssignee(a, c.cur) {
			return ErrNotAssignee
		}
		if u.Status != nil {
			if err := s.checkTransition(a, c.cur, *u.Status, false); err != nil {
				return err
			}
		}
		if err := s.guard(ctx, c, a, u.LastSeenCommentID); err != nil {
			return err
		}
		if u.Priority != nil && *u.Priority != c.cur.Priority {
			if _, err := c.tx.ExecContext(ctx, `UPDATE issues SET priority = $1, updated_at = $2 WHERE id = $3`,
				*u.Priority, c.now, c.cur.ID); err != nil {
				return err
			}
			c.record("priority_changed", map[string]any{"priority": *u.Priority, "previous_priority": c.cur.Priority})
			c.cur.Priority = *u.Priority
		}
		if u.Status != nil && *u.Status != c.cur.Status {
			return s.setStatus(ctx, c, *u.Status)
		}
		return nil
	})
}

func knownStatus(st Status) bool {
	return st == Open || st == InProgress || st == Resolved || st == Closed
}

// transition checks and applies a move to status to.
func (s *Service) transition(ctx context.Context, c *change, a Actor, to Status, strict bool, lastSeen *int64) error {
	if err := s.checkTransition(a, c.cur, to, strict); err != nil {
		return err
	}
	if err := s.guard(ctx, c, a, lastSeen); err != nil {
		return err
	}
	if to == c.cur.Status {
		return nil
	}
	return s.setStatus(ctx, c, to)
}

// checkTransition is the status machine and its rules, in order: who may (403), then
// whether the issue's state allows it (409). strict refuses a move to the status the
// issue already has where the one-click actions do (resolve, close).
//
//	to resolved: from open or in progress (resolved again: 409 when strict)
//	to closed:   from anything but closed (closed again: 409 when strict)
//	to open or in progress: from resolved or closed (a reopen), or between the two;
//	             in progress needs an assignee
func (s *Service) checkTransition(a Actor, cur *Issue, to Status, strict bool) error {
	switch to {
	case Resolved:
		if !mayEdit(a, cur) {
			return ErrResolveOther
		}
		if cur.Status == Closed || (strict && cur.Status == Resolved) {
			return ErrAlreadyResolved
		}
	case Closed:
		if !mayEdit(a, cur) {
			return ErrCloseOther
		}
		if strict && cur.Status == Closed {
			return ErrAlreadyClosed
		}
	case Open, InProgress:
		if !isAssignee(a, cur) {
			return ErrNotAssignee
		}
		if to == InProgress && cur.AssigneeID == nil {
			return ErrNeedsAssignee
		}
	default:
		return ErrBadStatus
	}
	return nil
}

// setStatus writes a status change that checkTransition allowed and records it.
func (s *Service) setStatus(ctx context.Context, c *change, to Status) error {
	cur := c.cur
	var err error
	details := map[string]any{"status": to, "previous_status": cur.Status}
	action := "status_changed"
	switch {
	case to == Resolved:
		action = "resolved"
		_, err = c.tx.ExecContext(ctx, `UPDATE issues SET status = 'resolved', resolved_by = $1, resolved_at = $2,
			snoozed_until = NULL, updated_at = $2 WHERE id = $3`, c.actor.UserID, c.now, cur.ID)
	case to == Closed:
		action = "closed"
		_, err = c.tx.ExecContext(ctx, `UPDATE issues SET status = 'closed', closed_at = $1, snoozed_until = NULL,
			updated_at = $1 WHERE id = $2`, c.now, cur.ID)
	case cur.Status == Resolved || cur.Status == Closed:
		action = "reopened"
		_, err = c.tx.ExecContext(ctx, `UPDATE issues SET status = $1, resolved_by = NULL, resolved_at = NULL,
			closed_at = NULL, updated_at = $2 WHERE id = $3`, to, c.now, cur.ID)
	default:
		_, err = c.tx.ExecContext(ctx, `UPDATE issues SET status = $1, updated_at = $2 WHERE id = $3`, to, c.now, cur.ID)
	}
	if err != nil {
		return err
	}
	c.record(action, details)
	cur.Status = to
	return nil
}

// Snooze takes an open or in-progress issue out of the active lists until the given time
// (after now); Unsnooze brings it back. Snoozing again moves the time.
func (s *Service) Snooze(ctx context.Context, a Actor, issueID int64, until time.Time) (*Issue, error) {
	until = until.UTC().Truncate(time.Microsecond)
	return s.act(ctx, a, issueID, "snooze", func(c *change) error {
		if !isAssignee(a, c.cur) {
			return ErrSnoozeOther
		}
		if c.cur.Status != Open && c.cur.Status != InProgress {
			return ErrSnoozeInactive
		}
		if !until.After(c.now) {
			return httpx.Errorf(http.StatusBadRequest, "until must be in the future")
		}
		if c.cur.SnoozedUntil != nil && c.cur.SnoozedUntil.Equal(until) {
			return nil
		}
		if _, err := c.tx.ExecContext(ctx, `UPDATE issues SET snoozed_until = $1, updated_at = $2 WHERE id = $3`,
			until, c.now, c.cur.ID); err != nil {
			return err
		}
		c.record("snoozed", map[string]any{"until": until, "previous_until": c.cur.SnoozedUntil})
		return nil
	})
}

// EndSnooze brings a snoozed issue back now (the same rule as snoozing). An issue that
// is not snoozed is left as it is.
func (s *Service) EndSnooze(ctx context.Context, a Actor, issueID int64) (*Issue, error) {
	return s.act(ctx, a, issueID, "unsnooze", func(c *change) error {
		if !isAssignee(a, c.cur) {
			return ErrSnoozeOther
		}
		if c.cur.SnoozedUntil == nil {
			return nil
		}
		if _, err := c.tx.ExecContext(ctx, `UPDATE issues SET snoozed_until = NULL, updated_at = $1 WHERE id = $2`,
			c.now, c.cur.ID); err != nil {
			return err
		}
		c.record("unsnoozed", map[string]any{"snoozed_until": c.cur.SnoozedUntil, "early": true})
		return nil
	})
}

// Unsnooze wakes every issue whose snooze ended at or before now: it leaves snooze, the
// activity log says so (no actor: the system), and issue.unsnoozed (with the issue and
// its assignee_id, for the "unsnoozed" notification) goes to the issue's channel and
// issue topics. It reports how many issues woke. Each issue is its own short
// transaction; an issue someone ended the snooze of meanwhile is skipped. It is meant to
// be called from one node's timer loop (the SLA lease holder); running it on two nodes
// at once wakes each issue once.
func (s *Service) Unsnooze(ctx context.Context, now time.Time) (int, error) {
	now = now.UTC().Truncate(time.Microsecond)
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM issues WHERE snoozed_until IS NOT NULL AND snoozed_until <= $1
		ORDER BY snoozed_until, id LIMIT 1000`, now)
	if err != nil {
		return 0, fmt.Errorf("issues: due snoozes: %w", err)
	}
	var due []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("issues: due snoozes: %w", err)
		}
		due = append(due, id)
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("issues: due snoozes: %w", err)
	}
	n := 0
	for _, id := range due {
		woke := false
		err := s.db.InTx(ctx, func(tx *store.Tx) error {
			woke = false
			cur, err := s.lockedIssue(ctx, tx, id)
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if cur.SnoozedUntil == nil || cur.SnoozedUntil.After(now) {
				return nil // woken or snoozed again meanwhile
			}
			if _, err := tx.ExecContext(ctx, `UPDATE issues SET snoozed_until = NULL, updated_at = $1 WHERE id = $2`, now, id); err != nil {
				return err
			}
			if err := s.addActivity(ctx, tx, id, nil, "unsnoozed", map[string]any{"snoozed_until": cur.SnoozedUntil}, now); err != nil {
				return err
			}
			issue, err := s.get(ctx, tx, id)
			if err != nil {
				return err
			}
			if err := s.tell(ctx, tx, issue, &notify.Occurrence{What: notify.WhatUnsnoozed}); err != nil {
				return err
			}
			data := map[string]any{"issue": issue, "assignee_id": issue.AssigneeID, "action": "unsnoozed"}
			if _, err := s.log.Append(ctx, tx, hub.ChannelTopic(issue.ChannelID), "issue.unsnoozed", data); err != nil {
				return err
			}
			if _, err := s.log.Append(ctx, tx, hub.IssueTopic(id), "issue.unsnoozed", data); err != nil {
				return err
			}
			woke = true
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("issues: unsnooze %d: %w", id, err)
		}
		if woke {
			n++
		}
	}
	return n, nil
}

// MarkContacted records that the agent reached the customer outside Switchboard (by
// phone): the first-response time freezes if it was not yet set. The rule is the reply
// rule: the assignee or an admin; marking an unassigned issue takes it.
func (s *Service) MarkContacted(ctx context.Context, a Actor, issueID int64) (*Issue, error) {
	return s.act(ctx, a, issueID, "contacted", func(c *change) error {
		if c.cur.AssigneeID != nil && !isAssignee(a, c.cur) {
			return ErrContactOther
		}
		if c.cur.AssigneeID == nil {
			if err := s.assign(ctx, c, a, &a.UserID, "contacted"); err != nil {
				return err
			}
		}
		first := c.cur.FirstResponseAt == nil
		if _, err := c.tx.ExecContext(ctx, `UPDATE issues SET first_response_at = COALESCE(first_response_at, $1),
			updated_at = $1 WHERE id = $2`, c.now, c.cur.ID); err != nil {
			return err
		}
		c.record("contacted", map[string]any{"method": "phone", "first_response": first})
		return nil
	})
}

// viewKey is one user on one issue.
type viewKey struct{ user, issue int64 }

// limiter lets one issue.viewing event per user and issue through per interval. It is
// per node: behind a load balancer a user may get one per node.
type limiter struct {
	mu   sync.Mutex
	last map[viewKey]time.Time // guarded by mu: when each key last got through
}

// maxViewKeys bounds the limiter's memory; past it, expired entries are dropped.
const maxViewKeys = 10000

func (l *limiter) allow(k viewKey, now time.Time, every time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[viewKey]time.Time{}
	}
	if t, ok := l.last[k]; ok && now.Sub(t) < every && !now.Before(t) {
		return false
	}
	if len(l.last) >= maxViewKeys {
		for key, t := range l.last {
			if now.Sub(t) >= every {
				delete(l.last, key)
			}
		}
	}
	l.last[k] = now
	return true
}

// Viewing tells the issue's viewers that the user has it open, and whether they are
// typing: issue.viewing on the issue topic. At most one event per user and issue per
// Config.ViewingInterval goes out; it reports whether this one did. Clients show a
// viewer until they have not heard of them for a few intervals.
func (s *Service) Viewing(ctx context.Context, userID, issueID int64, typing bool) (bool, error) {
	if !s.viewing.allow(viewKey{userID, issueID}, s.now(), s.cfg.ViewingInterval) {
		return false, nil
	}
	data := map[string]any{"issue_id": issueID, "user_id": userID, "typing": typing}
	if s.cfg.People != nil {
		names, err := s.cfg.People.Names(ctx, s.db, []int64{userID})
		if err != nil {
			return false, fmt.Errorf("issues: viewing: %w", err)
		}
		data["name"] = names[userID]
	}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		_, err := s.log.Append(ctx, tx, hub.IssueTopic(issueID), "issue.viewing", data)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("issues: viewing %d: %w", issueID, err)
	}
	return true, nil
}

// Follow makes the user follow the customer (on) or stop following them, for the
// followed_customer_* notifications. A customer merged into another is followed as the
// survivor. The user's other tabs learn of it by customer.followed on their user topic.
func (s *Service) Follow(ctx context.Context, userID, customerID int64, on bool) (*Customer, error) {
	var out *Customer
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		id := customerID
		for range 8 { // follow merges, bounded
			c, merged, err := s.customer(ctx, tx, id)
			if err != nil {
				return err
			}
			if merged == nil {
				out = c
				break
			}
			id = *merged
		}
		if out == nil {
			return ErrCustomerNotFound
		}
		var err error
		if on {
			_, err = tx.ExecContext(ctx, `INSERT INTO customer_followers (customer_id, user_id, created_at) VALUES ($1, $2, $3)
				ON CONFLICT (customer_id, user_id) DO NOTHING`, out.ID, userID, s.now())
		} else {
			_, err = tx.ExecContext(ctx, `DELETE FROM customer_followers WHERE customer_id = $1 AND user_id = $2`, out.ID, userID)
		}
		if err != nil {
			return err
		}
		_, err = s.log.Append(ctx, tx, hub.UserTopic(userID), "customer.followed", map[string]any{
			"customer_id": out.ID, "following": on})
		return err
	})
	if err != nil {
		var he *httpx.Error
		if errors.As(err, &he) {
			return nil, err
		}
		return nil, fmt.Errorf("issues: follow customer %d: %w", customerID, err)
	}
	return out, nil
}

// Followers returns the ids of the users who follow a customer, read through q.
func (s *Service) Followers(ctx context.Context, q store.Querier, customerID int64) ([]int64, error) {
	rows, err := q.QueryContext(ctx, `SELECT user_id FROM customer_followers WHERE customer_id = $1 ORDER BY user_id`, customerID)
	if err != nil {
		return nil, fmt.Errorf("issues: followers of %d: %w", customerID, err)
	}
	defer rows.Close()
	ids := []int64{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("issues: followers of %d: %w", customerID, err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// IsFollowing reports whether the user follows the customer.
func (s *Service) IsFollowing(ctx context.Context, userID, customerID int64) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM customer_followers WHERE customer_id = $1 AND user_id = $2`,
		customerID, userID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("issues: following %d: %w", customerID, err)
	}
	return n > 0, nil
}
