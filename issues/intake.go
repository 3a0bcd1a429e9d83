package issues

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/notify"
	"github.com/switchboard-hq/switchboard/store"
)

// Inbound is a customer's message as a connector received it.
type Inbound struct {
	ChannelID  int64
	Provider   string // "twilio", "email": the namespace of ExternalID
	ExternalID string // the provider's message id; the idempotency key
	Phone      string // E.164, for SMS
	Email      string // for email
	Name       string // the customer's name, when the medium tells it
	Subject    string
	Body       string // stored byte for byte
	ReceivedAt time.Time
	// Email threading: the Message-IDs this mail answers. A match on any of them (our
	// replies' ids or the customer's earlier mails') attaches it to that issue.
	InReplyTo  string
	References []string
}

// Intake reasons: why a message was attached where it was, kept in the activity log.
const (
	ReasonNew         = "new_issue"
	ReasonThread      = "thread_header" // In-Reply-To or References named a message of the issue
	ReasonToken       = "subject_token" // the subject carried [#id]
	ReasonOpenIssue   = "open_issue"
	ReasonReopened    = "reopened"
	ReasonAfterClosed = "new_after_closed"
)

// IntakeResult says what Intake did.
type IntakeResult struct {
	Duplicate bool   // the provider id was seen before; nothing changed
	IssueID   int64  // the issue the message went to
	CommentID int64  // the new comment
	Created   bool   // a new issue was opened
	Reason    string // one of the Reason constants
}

var errDuplicate = errors.New("issues: duplicate inbound message")

// Intake records a customer message: found or new customer, then the customer's
// unresolved issue, a resolved one reopened, a new one linked to a closed one, or a new
// issue. Idempotent by (Provider, ExternalID): a repeat, even a concurrent one, returns
// Duplicate and changes nothing.
func (s *Service) Intake(ctx context.Context, in Inbound) (*IntakeResult, error) {
	if in.Provider == "" || in.ExternalID == "" {
		return nil, errors.New("issues: inbound message needs a provider and an id")
	}
	if (in.Phone == "") == (in.Email == "") {
		return nil, errors.New("issues: inbound message needs exactly one of phone and email")
	}
	var res *IntakeResult
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		res, err = s.intake(ctx, tx, in)
		return err
	})
	if errors.Is(err, errDuplicate) {
		return &IntakeResult{Duplicate: true}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("issues: intake %s %s: %w", in.Provider, in.ExternalID, err)
	}
	return res, nil
}

func (s *Service) intake(ctx context.Context, tx *store.Tx, in Inbound) (*IntakeResult, error) {
	now := s.now()
	// The receipt first: on PostgreSQL a concurrent copy waits here on the primary key
	// until this transaction ends, then fails as a duplicate.
	if _, err := tx.ExecContext(ctx, `INSERT INTO inbound_receipts (provider, external_id, received_at) VALUES ($1, $2, $3)`,
		in.Provider, in.ExternalID, now); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, errDuplicate
		}
		return nil, err
	}
	cu, err := s.upsertCustomer(ctx, tx, in, now)
	if err != nil {
		return nil, err
	}

	res := &IntakeResult{}
	target, why, err := s.match(ctx, tx, in, cu.ID)
	if err != nil {
		return nil, err
	}
	var latest struct {
		id     int64
		status Status
	}
	if target != 0 {
		latest.id = target
		err = tx.QueryRowContext(ctx, `SELECT status FROM issues WHERE id = $1`, target).Scan(&latest.status)
	} else {
		err = tx.QueryRowContext(ctx, `SELECT id, status FROM issues WHERE customer_id = $1
			ORDER BY CASE WHEN status IN ('open', 'in_progress') THEN 0 ELSE 1 END, id DESC LIMIT 1`, cu.ID).Scan(&latest.id, &latest.status)
	}
	switch {
	case errors.Is(store.Err(err), store.ErrNotFound):
		res.Reason = ReasonNew
	case err != nil:
		return nil, err
	case latest.status == Open || latest.status == InProgress:
		res.IssueID, res.Reason = latest.id, ReasonOpenIssue
		if why != "" {
			res.Reason = why
		}
	case latest.status == Resolved:
		res.IssueID, res.Reason = latest.id, ReasonReopened
	default:
		res.Reason = ReasonAfterClosed
	}

	var linked *int64
	if res.Reason == ReasonAfterClosed {
		linked = &latest.id
	}
	if res.IssueID == 0 {
		res.Created = true
		subject := in.Subject
		if subject == "" {
			subject = firstLine(in.Body, 80)
		}
		err := tx.QueryRowContext(ctx, `INSERT INTO issues (channel_id, customer_id, status, subject, linked_issue_id, created_at, updated_at)
			VALUES ($1, $2, 'open', $3, $4, $5, $5) RETURNING id`, in.ChannelID, cu.ID, subject, linked, now).Scan(&res.IssueID)
		if err != nil {
			return nil, fmt.Errorf("create issue: %w", store.Err(err))
		}
	} else if res.Reason == ReasonReopened {
		// Back to work for whoever had it: in progress when assigned, else open.
		if _, err := tx.ExecContext(ctx, `UPDATE issues SET status = CASE WHEN assignee_id IS NULL THEN 'open' ELSE 'in_progress' END,
			resolved_by = NULL, resolved_at = NULL, updated_at = $2 WHERE id = $1`, res.IssueID, now); err != nil {
			return nil, err
		}
	} else {
		if _, err := tx.ExecContext(ctx, `UPDATE issues SET updated_at = $2 WHERE id = $1`, res.IssueID, now); err != nil {
			return nil, err
		}
	}
	// The customer wrote: a snoozed issue comes back now, not when its snooze ends.
	var snoozed *time.Time
	if !res.Created {
		if err := tx.QueryRowContext(ctx, `SELECT snoozed_until FROM issues WHERE id = $1`, res.IssueID).Scan(&snoozed); err != nil {
			return nil, err
		}
		if snoozed != nil {
			if _, err := tx.ExecContext(ctx, `UPDATE issues SET snoozed_until = NULL WHERE id = $1`, res.IssueID); err != nil {
				return nil, err
			}
			if err := s.addActivity(ctx, tx, res.IssueID, nil, "unsnoozed", map[string]any{"snoozed_until": snoozed, "reason": "customer_message"}, now); err != nil {
				return nil, err
			}
		}
	}

	err = tx.QueryRowContext(ctx, `INSERT INTO comments (issue_id, kind, body, customer_id, channel_id, external_id, created_at)
		VALUES ($1, 'customer', $2, $3, $4, $5, $6) RETURNING id`,
		res.IssueID, in.Body, cu.ID, in.ChannelID, in.ExternalID, now).Scan(&res.CommentID)
	if err != nil {
		return nil, fmt.Errorf("insert comment: %w", store.Err(err))
	}
	if _, err := tx.ExecContext(ctx, `UPDATE inbound_receipts SET comment_id = $1 WHERE provider = $2 AND external_id = $3`,
		res.CommentID, in.Provider, in.ExternalID); err != nil {
		return nil, err
	}
	details := map[string]any{"reason": res.Reason, "comment_id": res.CommentID, "channel_id": in.ChannelID}
	if why != "" && res.Reason != why {
		details["matched_by"] = why // a thread match on a resolved or closed issue
	}
	if linked != nil {
		details["linked_issue_id"] = *linked
	}
	action := "customer_message"
	if res.Created {
		action = "created"
	} else if res.Reason == ReasonReopened {
		action = "reopened"
	}
	if err := s.addActivity(ctx, tx, res.IssueID, nil, action, details, now); err != nil {
		return nil, err
	}

	// The feed shows the message; its event carries the issue as it now stands.
	cid, iid, comment := cu.ID, res.IssueID, res.CommentID
	if _, err := s.channels.Append(ctx, tx, channels.Post{ChannelID: in.ChannelID, Body: in.Body,
		CustomerID: &cid, IssueID: &iid, CommentID: &comment}); err != nil {
		return nil, err
	}
	issue, err := s.get(ctx, tx, res.IssueID)
	if err != nil {
		return nil, err
	}
	if err := s.tell(ctx, tx, issue, &notify.Occurrence{What: notify.WhatCustomerMessage, ChannelID: in.ChannelID,
		Text: in.Body, Created: res.Created, Unsnoozed: snoozed != nil}); err != nil {
		return nil, err
	}
	typ := "issue.updated"
	if res.Created {
		typ = "issue.created"
	}
	// Other channels' feeds that show this issue learn of status changes; the issue's own
	// topic serves an open issue view.
	if issue.ChannelID != in.ChannelID || res.Reason == ReasonReopened {
		if _, err := s.log.Append(ctx, tx, hub.ChannelTopic(issue.ChannelID), "issue.updated", map[string]any{"issue": issue}); err != nil {
			return nil, err
		}
	}
	if snoozed != nil {
		// The same event Unsnooze sends, so the assignee is told the same way.
		data := map[string]any{"issue": issue, "assignee_id": issue.AssigneeID, "action": "unsnoozed", "reason": "customer_message"}
		for _, t := range []hub.Topic{hub.ChannelTopic(issue.ChannelID), hub.IssueTopic(issue.ID)} {
			if _, err := s.log.Append(ctx, tx, t, "issue.unsnoozed", data); err != nil {
				return nil, err
			}
		}
	}
	if _, err := s.log.Append(ctx, tx, hub.IssueTopic(res.IssueID), typ, map[string]any{"issue": issue, "comment_id": res.CommentID}); err != nil {
		return nil, err
	}
	return res, nil
}

// tokenRE finds a "[#123]" issue token in a subject.
var tokenRE = regexp.MustCompile(`\[#([0-9]{1,18})\]`)

// match finds the issue an email answers: by its thread headers, then by a [#id] subject
// token. Only the customer's own issues match, so a forged header or token cannot attach
// a message to someone else's conversation. It returns 0 when nothing matches.
func (s *Service) match(ctx context.Context, tx *store.Tx, in Inbound, customerID int64) (int64, string, error) {
	ids := make([]string, 0, 1+len(in.References))
	if in.InReplyTo != "" {
		ids = append(ids, in.InReplyTo)
	}
	// The nearest ancestors are last in References: try them first.
	for i := len(in.References) - 1; i >= 0 && len(ids) < 20; i-- {
		if r := in.References[i]; r != "" && r != in.InReplyTo {
			ids = append(ids, r)
		}
	}
	for _, id := range ids {
		var issueID int64
		err := tx.QueryRowContext(ctx, `SELECT c.issue_id FROM comments c JOIN issues i ON i.id = c.issue_id
			WHERE c.external_id = $1 AND i.customer_id = $2 ORDER BY c.id DESC LIMIT 1`, id, customerID).Scan(&issueID)
		if err == nil {
			return issueID, ReasonThread, nil
		}
		if !errors.Is(store.Err(err), store.ErrNotFound) {
			return 0, "", err
		}
	}
	for _, m := range tokenRE.FindAllStringSubmatch(in.Subject, 3) {
		id, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			continue
		}
		var owner int64
		err = tx.QueryRowContext(ctx, `SELECT customer_id FROM issues WHERE id = $1`, id).Scan(&owner)
		if err == nil && owner == customerID {
			return id, ReasonToken, nil
		}
		if err != nil && !errors.Is(store.Err(err), store.ErrNotFound) {
			return 0, "", err
		}
	}
	return 0, "", nil
}

// upsertCustomer finds the customer by phone or (case-insensitive) email, creating them
// when new. The upsert writes the row either way, which takes its lock on PostgreSQL: two
// messages from one customer are threaded one after the other, never into two new issues.
func (s *Service) upsertCustomer(ctx context.Context, tx *store.Tx, in Inbound, now time.Time) (*Customer, error) {
	cu := &Customer{}
	var err error
	if in.Phone != "" {
		err = tx.QueryRowContext(ctx, `INSERT INTO customers (name, phone, created_at, last_message_at) VALUES ($1, $2, $3, $3)
			ON CONFLICT (phone) DO UPDATE SET last_message_at = excluded.last_message_at,
				name = CASE WHEN customers.name = '' THEN excluded.name ELSE customers.name END
			RETURNING id, name, phone, email, created_at`, in.Name, in.Phone, now).
			Scan(&cu.ID, &cu.Name, &cu.Phone, &cu.Email, &cu.CreatedAt)
	} else {
		err = tx.QueryRowContext(ctx, `INSERT INTO customers (name, email, email_norm, created_at, last_message_at) VALUES ($1, $2, $3, $4, $4)
			ON CONFLICT (email_norm) DO UPDATE SET last_message_at = excluded.last_message_at,
				name = CASE WHEN customers.name = '' THEN excluded.name ELSE customers.name END
			RETURNING id, name, phone, email, created_at`, in.Name, in.Email, strings.ToLower(in.Email), now).
			Scan(&cu.ID, &cu.Name, &cu.Phone, &cu.Email, &cu.CreatedAt)
	}
	if err != nil {
		return nil, fmt.Errorf("customer: %w", store.Err(err))
	}
	// A customer merged into another keeps a contact the survivor already had one of;
	// their messages belong to the survivor. Follow the chain (bounded).
	for range 8 {
		var into *int64
		if err := tx.QueryRowContext(ctx, `SELECT merged_into FROM customers WHERE id = $1`, cu.ID).Scan(&into); err != nil {
			return nil, fmt.Errorf("customer: %w", store.Err(err))
		}
		if into == nil {
			return cu, nil
		}
		cu = &Customer{ID: *into}
		if err := tx.QueryRowContext(ctx, `UPDATE customers SET last_message_at = $1 WHERE id = $2
			RETURNING name, phone, email, created_at`, now, cu.ID).Scan(&cu.Name, &cu.Phone, &cu.Email, &cu.CreatedAt); err != nil {
			return nil, fmt.Errorf("customer: %w", store.Err(err))
		}
	}
	return nil, errors.New("issues: customer merge chain too long")
}

func (s *Service) addActivity(ctx context.Context, tx *store.Tx, issueID int64, actor *int64, action string, details map[string]any, at time.Time) error {
	b, err := json.Marshal(details)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO activity (issue_id, actor_id, action, details, created_at) VALUES ($1, $2, $3, $4, $5)`,
		issueID, actor, action, string(b), at)
	return err
}

// firstLine is a subject made from a message: its first line, cut at n runes.
func firstLine(s string, n int) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	r := []rune(s)
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// SetDeliveryStatus records a provider's delivery report for an outbound reply and tells
// the issue's viewers. It reports whether the reply was found.
func (s *Service) SetDeliveryStatus(ctx context.Context, externalID, status, errorCode string) (bool, error) {
	found := false
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var c Comment
		err := tx.QueryRowContext(ctx, `UPDATE comments SET delivery_status = $1 WHERE external_id = $2 AND kind = 'reply'
			RETURNING id, issue_id`, status, externalID).Scan(&c.ID, &c.IssueID)
		if errors.Is(store.Err(err), store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		data := map[string]any{"comment_id": c.ID, "delivery_status": status}
		if errorCode != "" {
			data["error_code"] = errorCode
		}
		_, err = s.log.Append(ctx, tx, hub.IssueTopic(c.IssueID), "comment.delivery", data)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("issues: delivery status of %s: %w", externalID, err)
	}
	return found, nil
}
