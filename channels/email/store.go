package email

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hq/switchboard/store"
)

// repo is the package's SQL: email_mailboxes, email_failures, email_quarantine,
// email_messages and email_attachments.
type repo struct {
	db  *store.DB
	now func() time.Time
}

func newRepo(db *store.DB, now func() time.Time) *repo {
	if now == nil {
		now = time.Now
	}
	return &repo{db: db, now: now}
}

func (r *repo) timestamp() time.Time { return r.now().UTC().Truncate(time.Microsecond) }

// position returns the last UID done with in a mailbox under uidValidity. A mailbox seen
// for the first time starts at 0; one whose UIDVALIDITY changed starts again at 0.
func (r *repo) position(ctx context.Context, channelID int64, mailbox string, uidValidity uint32, log *slog.Logger) (uint32, error) {
	var last uint32
	err := r.db.InTx(ctx, func(tx *store.Tx) error {
		var seen, lastUID int64
		err := tx.QueryRowContext(ctx, `SELECT uid_validity, last_uid FROM email_mailboxes WHERE channel_id = $1 AND mailbox = $2`,
			channelID, mailbox).Scan(&seen, &lastUID)
		switch {
		case errors.Is(store.Err(err), store.ErrNotFound):
			last = 0
			_, err = tx.ExecContext(ctx, `INSERT INTO email_mailboxes (channel_id, mailbox, uid_validity, last_uid, updated_at)
				VALUES ($1, $2, $3, 0, $4)`, channelID, mailbox, int64(uidValidity), r.timestamp())
			return err
		case err != nil:
			return err
		case seen == int64(uidValidity):
			last = uint32(lastUID)
			return nil
		}
		// Renumbered (the mailbox was recreated or restored): read it all again.
		// Message-IDs already taken are recognized by intake and not taken twice.
		tx.AfterCommit(func() {
			log.Warn("email: UIDVALIDITY changed; reading the whole mailbox again (mail already taken is recognized by its Message-ID)",
				"old", seen, "new", uidValidity, "old_last_uid", lastUID)
		})
		last = 0
		if _, err := tx.ExecContext(ctx, `UPDATE email_mailboxes SET uid_validity = $3, last_uid = 0, updated_at = $4
			WHERE channel_id = $1 AND mailbox = $2`, channelID, mailbox, int64(uidValidity), r.timestamp()); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM email_failures WHERE channel_id = $1 AND mailbox = $2 AND uid_validity <> $3`,
			channelID, mailbox, int64(uidValidity))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("email: mailbox position: %w", err)
	}
	return last, nil
}

// advance moves the mailbox position to k's UID (never backwards) and forgets its failures.
func (r *repo) advance(ctx context.Context, k key) error {
	err := r.db.InTx(ctx, func(tx *store.Tx) error {
		return advanceTx(ctx, tx, k, r.timestamp())
	})
	if err != nil {
		return fmt.Errorf("email: advance to uid %d: %w", k.uid, err)
	}
	return nil
}

func advanceTx(ctx context.Context, tx *store.Tx, k key, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `UPDATE email_mailboxes SET last_uid = $4, updated_at = $5
		WHERE channel_id = $1 AND mailbox = $2 AND uid_validity = $3 AND last_uid < $4`,
		k.channelID, k.mailbox, int64(k.uidValidity), int64(k.uid), now); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM email_failures WHERE channel_id = $1 AND mailbox = $2 AND uid_validity = $3 AND uid = $4`,
		k.channelID, k.mailbox, int64(k.uidValidity), int64(k.uid))
	return err
}

// fail counts a failed try at a mail and returns how many there have been.
func (r *repo) fail(ctx context.Context, k key, reason string) (int, error) {
	var tries int
	err := r.db.InTx(ctx, func(tx *store.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO email_failures (channel_id, mailbox, uid_validity, uid, tries, last_error, updated_at)
			VALUES ($1, $2, $3, $4, 1, $5, $6)
			ON CONFLICT (channel_id, mailbox, uid_validity, uid) DO UPDATE SET tries = email_failures.tries + 1,
				last_error = excluded.last_error, updated_at = excluded.updated_at
			RETURNING tries`, k.channelID, k.mailbox, int64(k.uidValidity), int64(k.uid), truncateUTF8(toUTF8([]byte(reason), ""), 2000), r.timestamp()).Scan(&tries)
	})
	if err != nil {
		return 0, fmt.Errorf("email: count a failure: %w", store.Err(err))
	}
	return tries, nil
}

// Quarantined is a mail kept aside.
type Quarantined struct {
	ID          int64     `json:"id"`
	ChannelID   int64     `json:"channel_id"`
	Mailbox     string    `json:"mailbox"`
	UIDValidity uint32    `json:"uid_validity"`
	UID         uint32    `json:"uid"`
	MessageID   string    `json:"message_id"`
	From        string    `json:"from"`
	Subject     string    `json:"subject"`
	Error       string    `json:"error"`
	Tries       int       `json:"tries"`
	Size        int64     `json:"size"`
	CreatedAt   time.Time `json:"created_at"`
	RawURL      string    `json:"raw_url"`
}

// quarantine stores the mail aside and moves the position past it, in one transaction.
func (r *repo) quarantine(ctx context.Context, k key, q *Quarantined, raw []byte) error {
	if raw == nil {
		raw = []byte{}
	}
	now := r.timestamp()
	err := r.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO email_quarantine (channel_id, mailbox, uid_validity, uid, message_id, from_addr,
			subject, error, tries, size, raw, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			ON CONFLICT (channel_id, mailbox, uid_validity, uid) DO NOTHING`,
			k.channelID, k.mailbox, int64(k.uidValidity), int64(k.uid), q.MessageID, q.From, q.Subject, q.Error, q.Tries, q.Size, raw, now); err != nil {
			return err
		}
		// What this very mail stored before failing goes with it.
		if _, err := tx.ExecContext(ctx, `DELETE FROM email_messages WHERE channel_id = $1 AND mailbox = $2 AND uid_validity = $3 AND uid = $4`,
			k.channelID, k.mailbox, int64(k.uidValidity), int64(k.uid)); err != nil {
			return err
		}
		return advanceTx(ctx, tx, k, now)
	})
	if err != nil {
		return fmt.Errorf("email: quarantine uid %d: %w", k.uid, err)
	}
	return nil
}

// saveMessage stores the original, the whole text and the attachments of a mail, once
// per Message-ID (a repeat, from a re-read or another mailbox, changes nothing).
func (r *repo) saveMessage(ctx context.Context, k key, m *Message, raw []byte, size int64, truncated bool) error {
	err := r.db.InTx(ctx, func(tx *store.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `INSERT INTO email_messages (message_id, channel_id, mailbox, uid_validity, uid, from_addr, subject,
			full_body, from_html, truncated, raw, raw_size, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
			ON CONFLICT (message_id) DO NOTHING RETURNING id`,
			m.MessageID, k.channelID, k.mailbox, int64(k.uidValidity), int64(k.uid), m.From, m.Subject, m.Text, m.FromHTML,
			truncated, raw, size, r.timestamp()).Scan(&id)
		if errors.Is(store.Err(err), store.ErrNotFound) {
			return nil // stored before
		}
		if err != nil {
			return err
		}
		for i, a := range m.Attachments {
			if _, err := tx.ExecContext(ctx, `INSERT INTO email_attachments (email_id, position, filename, content_type, content_id,
				inline, size, data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
				id, i+1, a.Filename, a.ContentType, a.ContentID, a.Inline, a.Size, a.Data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("email: store %s: %w", m.MessageID, err)
	}
	return nil
}

// Stored is a mail as agents see it beside its comment.
type Stored struct {
	ID          int64               `json:"id"`
	MessageID   string              `json:"message_id"`
	CommentID   int64               `json:"comment_id,omitempty"`
	ChannelID   int64               `json:"channel_id"`
	From        string              `json:"from"`
	Subject     string              `json:"subject"`
	FullBody    string              `json:"full_body"`
	FromHTML    bool                `json:"from_html"`
	Truncated   bool                `json:"truncated"`
	Size        int64               `json:"size"`
	ReceivedAt  time.Time           `json:"received_at"`
	RawURL      string              `json:"raw_url"`
	Attachments []*StoredAttachment `json:"attachments"`
}

// StoredAttachment describes an attachment; its bytes are served by URL.
type StoredAttachment struct {
	ID          int64  `json:"id"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	ContentID   string `json:"content_id,omitempty"`
	Inline      bool   `json:"inline"`
	Size        int64  `json:"size"`
	Stored      bool   `json:"stored"` // false: larger than the limit, not downloadable
	URL         string `json:"url,omitempty"`
}

// messages returns the stored mails with the given Message-IDs, with their attachments.
func (r *repo) messages(ctx context.Context, ids []string) (map[string]*Stored, error) {
	out := map[string]*Stored{}
	if len(ids) == 0 {
		return out, nil
	}
	ph := make([]string, len(ids))
	args := make([]any, len(ids))
	for i, id := range ids {
		ph[i] = "$" + strconv.Itoa(i+1)
		args[i] = id
	}
	rows, err := r.db.QueryContext(ctx, `SELECT id, message_id, channel_id, from_addr, subject, full_body, from_html, truncated,
		raw_size, received_at FROM email_messages WHERE message_id IN (`+strings.Join(ph, ", ")+`) ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("email: stored mail: %w", err)
	}
	defer rows.Close()
	byID := map[int64]*Stored{}
	var emailIDs []any
	for rows.Next() {
		var m Stored
		if err := rows.Scan(&m.ID, &m.MessageID, &m.ChannelID, &m.From, &m.Subject, &m.FullBody, &m.FromHTML, &m.Truncated,
			&m.Size, &m.ReceivedAt); err != nil {
			return nil, fmt.Errorf("email: stored mail: %w", err)
		}
		m.RawURL = fmt.Sprintf("/api/email/messages/%d/raw", m.ID)
		m.Attachments = []*StoredAttachment{}
		out[m.MessageID] = &m
		byID[m.ID] = &m
		emailIDs = append(emailIDs, m.ID)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if len(emailIDs) == 0 {
		return out, nil
	}
	ph = ph[:0]
	for i := range emailIDs {
		ph = append(ph, "$"+strconv.Itoa(i+1))
	}
	arows, err := r.db.QueryContext(ctx, `SELECT id, email_id, filename, content_type, content_id, inline, size, data IS NOT NULL
		FROM email_attachments WHERE email_id IN (`+strings.Join(ph, ", ")+`) ORDER BY email_id, position`, emailIDs...)
	if err != nil {
		return nil, fmt.Errorf("email: attachments: %w", err)
	}
	defer arows.Close()
	for arows.Next() {
		var a StoredAttachment
		var emailID int64
		if err := arows.Scan(&a.ID, &emailID, &a.Filename, &a.ContentType, &a.ContentID, &a.Inline, &a.Size, &a.Stored); err != nil {
			return nil, fmt.Errorf("email: attachments: %w", err)
		}
		if a.Stored {
			a.URL = fmt.Sprintf("/api/attachments/%d", a.ID)
		}
		byID[emailID].Attachments = append(byID[emailID].Attachments, &a)
	}
	return out, arows.Err()
}

// ErrNotFound is returned for a missing stored mail, attachment or quarantined mail.
var ErrNotFound = errors.New("email: not found")

// attachment returns an attachment's description, bytes (nil when not stored) and the
// Message-ID of its mail.
func (r *repo) attachment(ctx context.Context, id int64) (*StoredAttachment, []byte, string, error) {
	var a StoredAttachment
	var data []byte
	var msgID string
	err := r.db.QueryRowContext(ctx, `SELECT a.id, a.filename, a.content_type, a.content_id, a.inline, a.size, a.data, m.message_id
		FROM email_attachments a JOIN email_messages m ON m.id = a.email_id WHERE a.id = $1`, id).
		Scan(&a.ID, &a.Filename, &a.ContentType, &a.ContentID, &a.Inline, &a.Size, &data, &msgID)
	if errors.Is(store.Err(err), store.ErrNotFound) {
		return nil, nil, "", ErrNotFound
	}
	if err != nil {
		return nil, nil, "", fmt.Errorf("email: attachment %d: %w", id, err)
	}
	a.Stored = data != nil
	return &a, data, msgID, nil
}

// raw returns a stored mail's original and its Message-ID.
func (r *repo) raw(ctx context.Context, id int64) ([]byte, string, error) {
	var raw []byte
	var msgID string
	err := r.db.QueryRowContext(ctx, `SELECT raw, message_id FROM email_messages WHERE id = $1`, id).Scan(&raw, &msgID)
	if errors.Is(store.Err(err), store.ErrNotFound) {
		return nil, "", ErrNotFound
	}
	if err != nil {
		return nil, "", fmt.Errorf("email: original of %d: %w", id, err)
	}
	return raw, msgID, nil
}

// issueOf finds the issue whose customer comment carries a Message-ID.
//
// This is the one read of another package's table (issues' comments): attachments are
// authorized by the issue their comment belongs to now (after splits and merges), and
// issues has no lookup by external id yet. It belongs in issues as a method; until then
// it is kept to this single query.
func (r *repo) issueOf(ctx context.Context, messageID string) (int64, error) {
	var issueID int64
	err := r.db.QueryRowContext(ctx, `SELECT issue_id FROM comments WHERE external_id = $1 AND kind = 'customer' ORDER BY id LIMIT 1`,
		messageID).Scan(&issueID)
	if errors.Is(store.Err(err), store.ErrNotFound) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("email: issue of %s: %w", messageID, err)
	}
	return issueID, nil
}

// quarantined lists quarantined mail, newest first.
func (r *repo) quarantined(ctx context.Context, limit int) ([]*Quarantined, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT id, channel_id, mailbox, uid_validity, uid, message_id, from_addr, subject, error,
		tries, size, created_at FROM email_quarantine ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("email: quarantine: %w", err)
	}
	defer rows.Close()
	out := []*Quarantined{}
	for rows.Next() {
		var q Quarantined
		var uv, uid int64
		if err := rows.Scan(&q.ID, &q.ChannelID, &q.Mailbox, &uv, &uid, &q.MessageID, &q.From, &q.Subject, &q.Error,
			&q.Tries, &q.Size, &q.CreatedAt); err != nil {
			return nil, fmt.Errorf("email: quarantine: %w", err)
		}
		q.UIDValidity, q.UID = uint32(uv), uint32(uid)
		q.RawURL = fmt.Sprintf("/api/email/quarantine/%d/raw", q.ID)
		out = append(out, &q)
	}
	return out, rows.Err()
}

// quarantinedRaw returns a quarantined mail's bytes.
func (r *repo) quarantinedRaw(ctx context.Context, id int64) ([]byte, error) {
	var raw []byte
	err := r.db.QueryRowContext(ctx, `SELECT raw FROM email_quarantine WHERE id = $1`, id).Scan(&raw)
	if errors.Is(store.Err(err), store.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("email: quarantined %d: %w", id, err)
	}
	return raw, nil
}

// dismiss deletes a quarantined mail.
func (r *repo) dismiss(ctx context.Context, id int64) error {
	res, err := r.db.ExecContext(ctx, `DELETE FROM email_quarantine WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("email: dismiss %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
