package notify

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

// Notification is one entry of a user's inbox.
type Notification struct {
	ID        int64      `json:"id"`
	Event     string     `json:"event"`
	Title     string     `json:"title"`
	Body      string     `json:"body"`
	Link      string     `json:"link"` // a frontend path, e.g. #/issues/12
	IssueID   *int64     `json:"issue_id"`
	ChannelID *int64     `json:"channel_id"`
	ActorID   *int64     `json:"actor_id"`
	Sound     *string    `json:"sound"` // the sound chosen for it (played, or held by quiet hours)
	CreatedAt time.Time  `json:"created_at"`
	ReadAt    *time.Time `json:"read_at"`
}

// ErrNotFound answers a notification that does not exist or is someone else's.
var ErrNotFound = httpx.Errorf(http.StatusNotFound, "no such notification")

const notificationCols = `id, event, title, body, link, issue_id, channel_id, actor_id, sound, created_at, read_at`

func scanNotification(row interface{ Scan(...any) error }) (*Notification, error) {
	var n Notification
	if err := row.Scan(&n.ID, &n.Event, &n.Title, &n.Body, &n.Link, &n.IssueID, &n.ChannelID, &n.ActorID, &n.Sound,
		&n.CreatedAt, &n.ReadAt); err != nil {
		return nil, err
	}
	return &n, nil
}

func countUnread(ctx context.Context, q store.Querier, userID int64) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND in_app AND read_at IS NULL`,
		userID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("notify: unread count: %w", err)
	}
	return n, nil
}

// Page is one page of a user's inbox, newest first.
type Page struct {
	Notifications []*Notification `json:"notifications"`
	Unread        int64           `json:"unread"`
	HasMore       bool            `json:"has_more"`
}

// List returns up to limit in-app notifications of a user with id < before (0: the
// newest), newest first, with the unread count.
func (s *Service) List(ctx context.Context, userID, before int64, limit int) (*Page, error) {
	if limit <= 0 {
		limit = 50
	}
	if before <= 0 {
		before = 1 << 62
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+notificationCols+` FROM notifications
		WHERE user_id = $1 AND in_app AND id < $2 ORDER BY id DESC LIMIT $3`, userID, before, limit+1)
	if err != nil {
		return nil, fmt.Errorf("notify: list: %w", err)
	}
	defer rows.Close()
	p := &Page{Notifications: []*Notification{}}
	for rows.Next() {
		n, err := scanNotification(rows)
		if err != nil {
			return nil, fmt.Errorf("notify: list: %w", err)
		}
		p.Notifications = append(p.Notifications, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("notify: list: %w", err)
	}
	if len(p.Notifications) > limit {
		p.Notifications, p.HasMore = p.Notifications[:limit], true
	}
	if p.Unread, err = countUnread(ctx, s.db, userID); err != nil {
		return nil, err
	}
	return p, nil
}

// MarkRead marks one of the user's notifications read and tells all their tabs
// (notification.read). Marking a read one again changes nothing and sends nothing.
func (s *Service) MarkRead(ctx context.Context, userID, id int64) (*Notification, int64, error) {
	var n *Notification
	var unread int64
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		now := s.now()
		res, err := tx.ExecContext(ctx, `UPDATE notifications SET read_at = $1, sound_held = FALSE
			WHERE id = $2 AND user_id = $3 AND in_app AND read_at IS NULL`, now, id, userID)
		if err != nil {
			return err
		}
		changed, _ := res.RowsAffected()
		if n, err = scanNotification(tx.QueryRowContext(ctx, `SELECT `+notificationCols+` FROM notifications
			WHERE id = $1 AND user_id = $2 AND in_app`, id, userID)); err != nil {
			if errors.Is(store.Err(err), store.ErrNotFound) {
				return ErrNotFound
			}
			return err
		}
		if unread, err = countUnread(ctx, tx, userID); err != nil {
			return err
		}
		if changed == 0 {
			return nil
		}
		_, err = s.log.Append(ctx, tx, hub.UserTopic(userID), "notification.read", map[string]any{
			"ids": []int64{id}, "unread": unread, "read_at": now})
		return err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("notify: mark read: %w", err)
	}
	return n, unread, nil
}

// ReadAll is the answer of MarkAllRead.
type ReadAll struct {
	Read   int64 `json:"read"`   // how many were unread and are now read
	UpTo   int64 `json:"up_to"`  // the newest notification id marked: newer ones stay unread
	Unread int64 `json:"unread"` // what is left unread (0, unless one arrived meanwhile)
}

// MarkAllRead marks every unread notification of the user read and tells all their tabs
// (notification.read with "all": true and "up_to").
func (s *Service) MarkAllRead(ctx context.Context, userID int64) (*ReadAll, error) {
	out := &ReadAll{}
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		*out = ReadAll{}
		now := s.now()
		var upTo *int64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(id) FROM notifications WHERE user_id = $1 AND in_app AND read_at IS NULL`,
			userID).Scan(&upTo); err != nil {
			return err
		}
		if upTo == nil {
			return nil // nothing unread: nothing to tell
		}
		out.UpTo = *upTo
		res, err := tx.ExecContext(ctx, `UPDATE notifications SET read_at = $1, sound_held = FALSE
			WHERE user_id = $2 AND in_app AND read_at IS NULL AND id <= $3`, now, userID, out.UpTo)
		if err != nil {
			return err
		}
		out.Read, _ = res.RowsAffected()
		if out.Unread, err = countUnread(ctx, tx, userID); err != nil {
			return err
		}
		_, err = s.log.Append(ctx, tx, hub.UserTopic(userID), "notification.read", map[string]any{
			"all": true, "up_to": out.UpTo, "unread": out.Unread, "read_at": now})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("notify: mark all read: %w", err)
	}
	return out, nil
}

// Prune deletes notifications created before olderThan that need nothing more: read (or
// never shown in the app) and with no email waiting. Unread ones stay however old: the
// badge counts them. It reports how many went.
func (s *Service) Prune(ctx context.Context, olderThan time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM notifications WHERE created_at < $1
		AND (read_at IS NOT NULL OR NOT in_app) AND email_state IN ('none', 'sent', 'dropped')`, olderThan.UTC())
	if err != nil {
		return 0, fmt.Errorf("notify: prune: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
