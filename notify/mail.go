package notify

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/store"
)

// Mail is one notification email to one person. Every message has exactly one
// recipient: far below DESIGN.md's limit of 50, and nobody learns who else was told.
type Mail struct {
	To      mail.Address
	Subject string
	Text    string // text/plain
	HTML    string // text/html; every value in it is escaped
}

// Mailer sends a Mail. A nil error means the SMTP server accepted it; any error is
// retried later with backoff.
type Mailer interface {
	Send(ctx context.Context, m *Mail) error
}

// maxDigest bounds the notifications one mail carries; more wait for the next mail.
const maxDigest = 100

// MailReport says what one pass of the email worker did.
type MailReport struct {
	Leader   bool // this node held the lease and worked
	Released int  // users whose quiet hours ended with something held
	Sent     int  // mails the SMTP server accepted
	Failed   int  // mails that failed and wait for a retry
	Dropped  int  // notifications given up on
}

// RunMail runs the email worker until ctx ends: every Poll it releases what quiet hours
// held for users whose quiet hours are over, and mails what is due. With a Lease, only
// the holder works; it releases the lease on the way out. Without a Mailer it still
// releases held sounds.
func (s *Service) RunMail(ctx context.Context) {
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		rep, err := s.MailTick(ctx, s.cfg.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			s.cfg.Logger.Warn("notify: email worker pass failed", "err", err)
		case rep.Sent+rep.Failed+rep.Dropped > 0:
			s.cfg.Logger.Info("notify: notification email", "sent", rep.Sent, "failed", rep.Failed, "dropped", rep.Dropped)
		}
		select {
		case <-ctx.Done():
			if s.cfg.Lease != nil {
				rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if err := s.cfg.Lease.Release(rctx); err != nil {
					s.cfg.Logger.Warn("notify: releasing the email lease failed", "err", err)
				}
				cancel()
			}
			return
		case <-t.C:
		}
	}
}

// MailTick is one pass of the email worker as of now. Tests call it with a fake clock.
func (s *Service) MailTick(ctx context.Context, now time.Time) (MailReport, error) {
	now = now.UTC().Truncate(time.Microsecond)
	var rep MailReport
	if s.cfg.Lease != nil {
		ok, err := s.cfg.Lease.Acquire(ctx, now)
		if err != nil || !ok {
			return rep, err
		}
	}
	rep.Leader = true
	var errs []error
	n, err := s.release(ctx, now)
	rep.Released = n
	if err != nil {
		errs = append(errs, err)
	}
	if s.cfg.Mailer != nil {
		if err := s.sendDue(ctx, now, &rep); err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

func (s *Service) userIDs(ctx context.Context, query string, args ...any) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// release ends the hold of users whose quiet hours are over: held email becomes pending
// (due at once: it has waited long enough), and held sounds are released with one
// notification.released frame, so the client plays one sound for all of them.
func (s *Service) release(ctx context.Context, now time.Time) (int, error) {
	ids, err := s.userIDs(ctx, `SELECT user_id FROM notifications WHERE email_state = 'held'
		UNION SELECT user_id FROM notifications WHERE sound_held`)
	if err != nil {
		return 0, fmt.Errorf("notify: held notifications: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	_, docs, err := loadDocs(ctx, s.db, ids)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, uid := range ids {
		if q, _ := docs[uid].quiet(); q.Active(now) {
			continue
		}
		err := s.db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.ExecContext(ctx, `UPDATE notifications SET email_state = 'pending', email_next_at = $1
				WHERE user_id = $2 AND email_state = 'held'`, now, uid); err != nil {
				return err
			}
			rows, err := tx.QueryContext(ctx, `SELECT id, sound FROM notifications WHERE user_id = $1 AND sound_held
				AND read_at IS NULL ORDER BY id`, uid)
			if err != nil {
				return err
			}
			var held []int64
			var sound *string
			for rows.Next() {
				var id int64
				if err := rows.Scan(&id, &sound); err != nil {
					rows.Close()
					return err
				}
				held = append(held, id)
			}
			if err := rows.Err(); err != nil {
				rows.Close()
				return err
			}
			if err := rows.Close(); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE notifications SET sound_held = FALSE WHERE user_id = $1 AND sound_held`, uid); err != nil {
				return err
			}
			if len(held) == 0 {
				return nil
			}
			unread, err := countUnread(ctx, tx, uid)
			if err != nil {
				return err
			}
			// sound is the newest held one's: one sound for the whole quiet period.
			_, err = s.log.Append(ctx, tx, hub.UserTopic(uid), "notification.released", map[string]any{
				"ids": held, "sound": sound, "unread": unread})
			return err
		})
		if err != nil {
			return n, fmt.Errorf("notify: release held notifications of %d: %w", uid, err)
		}
		n++
	}
	return n, nil
}

// pending is a notification waiting in the email queue.
type pending struct {
	Notification
	attempts int
	queued   time.Time
}

// sendDue mails each user whose oldest pending notification is due: everything pending
// for them goes in one mail (a digest when there is more than one). A row becomes sent
// only after the SMTP server accepted the mail; a crash in between sends it again
// (at-least-once).
func (s *Service) sendDue(ctx context.Context, now time.Time, rep *MailReport) error {
	ids, err := s.userIDs(ctx, `SELECT user_id FROM notifications WHERE email_state = 'pending'
		GROUP BY user_id HAVING MIN(email_next_at) <= $1 ORDER BY MIN(email_next_at)`, now)
	if err != nil {
		return fmt.Errorf("notify: due email: %w", err)
	}
	var errs []error
	for _, uid := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := s.mailUser(ctx, uid, now, rep); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Service) mailUser(ctx context.Context, uid int64, now time.Time, rep *MailReport) error {
	rows, err := s.db.QueryContext(ctx, `SELECT `+notificationCols+`, email_attempts, email_queued_at FROM notifications
		WHERE user_id = $1 AND email_state = 'pending' ORDER BY id LIMIT $2`, uid, maxDigest)
	if err != nil {
		return fmt.Errorf("notify: pending email of %d: %w", uid, err)
	}
	var list []*pending
	for rows.Next() {
		var p pending
		var queued *time.Time
		if err := rows.Scan(&p.ID, &p.Event, &p.Title, &p.Body, &p.Link, &p.IssueID, &p.ChannelID, &p.ActorID, &p.Sound,
			&p.CreatedAt, &p.ReadAt, &p.attempts, &queued); err != nil {
			rows.Close()
			return fmt.Errorf("notify: pending email of %d: %w", uid, err)
		}
		if queued != nil {
			p.queued = *queued
		} else {
			p.queued = p.CreatedAt
		}
		list = append(list, &p)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return fmt.Errorf("notify: pending email of %d: %w", uid, err)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if len(list) == 0 {
		return nil
	}
	ids := make([]int64, len(list))
	for i, p := range list {
		ids[i] = p.ID
	}
	u, err := s.cfg.Users.User(ctx, uid)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("notify: recipient %d: %w", uid, err)
	}
	if u == nil || u.Disabled || u.Email == "" {
		rep.Dropped += len(list)
		return s.finishMail(ctx, ids, "dropped", now, "the user has no email address or is disabled")
	}
	m := s.compose(mail.Address{Name: u.Name, Address: u.Email}, list)
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	sendErr := s.cfg.Mailer.Send(sctx, m)
	cancel()
	if sendErr == nil {
		rep.Sent++
		return s.finishMail(ctx, ids, "sent", now, "")
	}
	rep.Failed++
	s.cfg.Logger.Warn("notify: sending notification email failed; will retry", "user", uid, "err", sendErr)
	reason := sendErr.Error()
	if len(reason) > 500 {
		reason = reason[:500]
	}
	oldest := list[0].queued
	for _, p := range list {
		if p.queued.Before(oldest) {
			oldest = p.queued
		}
	}
	if now.Sub(oldest) >= s.cfg.GiveUpAfter {
		rep.Dropped += len(list)
		return s.finishMail(ctx, ids, "dropped", now, "gave up after "+s.cfg.GiveUpAfter.String()+": "+reason)
	}
	attempts := 0
	for _, p := range list {
		attempts = max(attempts, p.attempts)
	}
	next := now.Add(s.backoff(attempts + 1))
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE notifications SET email_attempts = email_attempts + 1, email_next_at = $1,
				email_error = $2 WHERE id = $3 AND email_state = 'pending'`, next, reason, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("notify: schedule email retry: %w", err)
	}
	return nil
}

// backoff is the wait before attempt n (2, 3, …): RetryBase doubled each time, at most
// RetryMax.
func (s *Service) backoff(n int) time.Duration {
	d := s.cfg.RetryBase
	for i := 2; i < n && d < s.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, s.cfg.RetryMax)
}

// finishMail moves the given pending rows to state.
func (s *Service) finishMail(ctx context.Context, ids []int64, state string, now time.Time, reason string) error {
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		for _, id := range ids {
			var why *string
			if reason != "" {
				why = &reason
			}
			if _, err := tx.ExecContext(ctx, `UPDATE notifications SET email_state = $1, email_sent_at = $2, email_error = $3
				WHERE id = $4 AND email_state = 'pending'`, state, now, why, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("notify: mark email %s: %w", state, err)
	}
	return nil
}

// link is an absolute URL into the app for a frontend path such as "#/issues/12".
func (s *Service) link(path string) string {
	base := strings.TrimRight(s.cfg.PublicURL.String(), "/")
	return base + "/" + path
}

// compose writes the mail of one or more notifications: its subject says what happened
// (the one notification's title, or how many there are and the newest one's), the text
// and HTML parts list each with its link, and both end with the link to the preferences.
func (s *Service) compose(to mail.Address, list []*pending) *Mail {
	m := &Mail{To: to}
	newest := list[len(list)-1]
	if len(list) == 1 {
		m.Subject = newest.Title
	} else {
		m.Subject = strconv.Itoa(len(list)) + " notifications: " + newest.Title + ", and more"
	}
	m.Subject = excerpt(m.Subject, 150)
	prefs := s.link("#/preferences")
	var text, h strings.Builder
	h.WriteString("<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"></head><body>\r\n")
	if len(list) > 1 {
		fmt.Fprintf(&text, "%d new notifications in Switchboard:\r\n\r\n", len(list))
		fmt.Fprintf(&h, "<p>%d new notifications in Switchboard:</p>\r\n", len(list))
	}
	h.WriteString("<ul>\r\n")
	for _, p := range list {
		text.WriteString("* " + p.Title + "\r\n")
		h.WriteString("<li><p><strong>" + html.EscapeString(p.Title) + "</strong>")
		if p.Body != "" {
			text.WriteString("  " + p.Body + "\r\n")
			h.WriteString("<br>\r\n" + html.EscapeString(p.Body))
		}
		if p.Link != "" {
			u := s.link(p.Link)
			text.WriteString("  " + u + "\r\n")
			h.WriteString("<br>\r\n<a href=\"" + html.EscapeString(u) + "\">Open in Switchboard</a>")
		}
		text.WriteString("\r\n")
		h.WriteString("</p></li>\r\n")
	}
	h.WriteString("</ul>\r\n")
	text.WriteString("-- \r\nChoose which notifications reach you, and how: " + prefs + "\r\n")
	h.WriteString("<p><small><a href=\"" + html.EscapeString(prefs) + "\">Choose which notifications reach you, and how</a></small></p>\r\n</body></html>\r\n")
	m.Text, m.HTML = text.String(), h.String()
	return m
}
