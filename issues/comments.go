package issues

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/store"
)

// Replies and internal notes.
//
// A reply is stored with delivery_status "queued", logged and shown in the feed of the
// channel the customer last wrote on (the medium they used), and handed, in that same
// transaction, to the Sender registered for that channel's kind. The Sender queues it
// durably (the outbox) and delivers it after commit, asynchronously, keeping the reply's
// delivery_status current; a Sender's error (an opted-out number) refuses the reply and
// nothing is stored. With no Sender registered for the kind, the reply is stored and
// stays "queued".
//
// Internal notes never leave Switchboard: they are never handed to a Sender, never
// appear in a channel's feed, and their events go only to the issue's topic.

// Sender hands replies on one kind of channel (SMS, email) to its delivery. The
// connectors implement it and register with SetSender. Send runs inside the transaction
// that stores the reply, so a committed reply has always been handed over; it must only
// queue (write through tx, and act after commit with tx.AfterCommit), never call a
// provider. An error aborts the reply; an *httpx.Error reaches the agent as it is.
type Sender interface {
	Send(ctx context.Context, tx *store.Tx, r *Outbound) error
}

// Outbound is a reply on its way to a customer.
type Outbound struct {
	CommentID   int64
	IssueID     int64
	AuthorID    int64
	Body        string
	Subject     string        // the issue's subject (email: the reply's subject)
	ChannelID   int64         // the channel the customer last wrote on: the reply leaves from it
	ChannelKind channels.Kind // sms or email
	From        string        // the channel's address: our SMS number or mailbox
	To          string        // the customer's phone (sms) or email address (email)
	ToName      string        // the customer's name, possibly empty
	// InReplyTo is the provider id of the customer's latest message on this channel
	// (an email's Message-ID, for threading; an SMS MessageSid), or "".
	InReplyTo string
}

// DeliveryQueued is the delivery_status of a reply as it is stored; Senders move it on
// ("sent", "delivered", "failed", …).
const DeliveryQueued = "queued"

// ErrNoAddress refuses a reply when the customer has no address on the reply's medium.
var ErrNoAddress = httpx.Errorf(http.StatusConflict, "the customer has no phone number or email address on this channel to reply to")

// maxBody bounds the text of a reply or note, in bytes.
const maxBody = 20000

// senders holds the registered Senders.
type senders struct {
	mu     sync.RWMutex
	byKind map[channels.Kind]Sender // guarded by mu
}

func (ss *senders) get(kind channels.Kind) Sender {
	ss.mu.RLock()
	defer ss.mu.RUnlock()
	return ss.byKind[kind]
}

// SetSender registers the Sender of replies on channels of kind (nil removes it). Until
// one is registered, replies on such channels are stored and stay queued.
func (s *Service) SetSender(kind channels.Kind, snd Sender) {
	s.senders.mu.Lock()
	defer s.senders.mu.Unlock()
	if s.senders.byKind == nil {
		s.senders.byKind = map[channels.Kind]Sender{}
	}
	if snd == nil {
		delete(s.senders.byKind, kind)
		return
	}
	s.senders.byKind[kind] = snd
}

// handOver gives a stored reply to the Sender of its channel's kind, if there is one.
func (s *Service) handOver(ctx context.Context, tx *store.Tx, issue *Issue, reply *Comment, authorID int64) error {
	ch, err := s.channels.Get(ctx, *reply.ChannelID)
	if err != nil {
		return err
	}
	snd := s.senders.get(ch.Kind)
	if snd == nil {
		return nil
	}
	out := &Outbound{CommentID: reply.ID, IssueID: issue.ID, AuthorID: authorID, Body: reply.Body, Subject: issue.Subject,
		ChannelID: ch.ID, ChannelKind: ch.Kind, From: ch.Address, ToName: issue.Customer.Name}
	switch cu := issue.Customer; ch.Kind {
	case channels.SMS:
		if cu.Phone != nil {
			out.To = *cu.Phone
		}
	case channels.Email:
		if cu.Email != nil {
			out.To = *cu.Email
		}
	}
	if out.To == "" {
		return ErrNoAddress
	}
	var ext *string
	err = tx.QueryRowContext(ctx, `SELECT external_id FROM comments WHERE issue_id = $1 AND kind = 'customer'
		AND channel_id = $2 AND external_id IS NOT NULL ORDER BY id DESC LIMIT 1`, issue.ID, ch.ID).Scan(&ext)
	if err != nil && !errors.Is(store.Err(err), store.ErrNotFound) {
		return err
	}
	if ext != nil {
		out.InReplyTo = *ext
	}
	return snd.Send(ctx, tx, out)
}

// cleanBody checks the text of a reply or note and trims its surrounding space.
func cleanBody(body string) (string, error) {
	body = strings.TrimSpace(body)
	switch {
	case body == "":
		return "", httpx.Errorf(http.StatusBadRequest, "body is required")
	case !utf8.ValidString(body):
		return "", httpx.Errorf(http.StatusBadRequest, "body is not valid UTF-8")
	case len(body) > maxBody:
		return "", httpx.Errorf(http.StatusBadRequest, "body is longer than %d bytes", maxBody)
	}
	return body, nil
}

// insertComment stores a reply or note and returns it as stored.
func insertComment(ctx context.Context, tx *store.Tx, issueID int64, kind, body string, authorID int64,
	channelID *int64, delivery *string, now time.Time) (*Comment, error) {
	c, err := scanComment(tx.QueryRowContext(ctx, `INSERT INTO comments (issue_id, kind, body, author_id, channel_id,
		delivery_status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING `+commentCols,
		issueID, kind, body, authorID, channelID, delivery, now))
	if err != nil {
		return nil, fmt.Errorf("insert %s: %w", kind, store.Err(err))
	}
	return c, nil
}

// Reply sends body to the issue's customer on the medium they last used. Only the
// assignee (or an admin) replies; a reply to an unassigned issue takes it. The first
// reply freezes the first-response time. lastSeen, when set, is the collision guard.
// The reply is stored queued, shown in that channel's feed as the agent's message, and
// handed to the channel's Sender, all in one transaction.
func (s *Service) Reply(ctx context.Context, a Actor, issueID int64, body string, lastSeen *int64) (*Issue, *Comment, error) {
	body, err := cleanBody(body)
	if err != nil {
		return nil, nil, err
	}
	var reply *Comment
	issue, err := s.act(ctx, a, issueID, "reply", func(c *change) error {
		if c.cur.AssigneeID != nil && !isAssignee(a, c.cur) {
			return ErrReplyOther
		}
		if err := s.guard(ctx, c, a, lastSeen); err != nil {
			return err
		}
		if c.cur.AssigneeID == nil {
			if err := s.assign(ctx, c, a, &a.UserID, "reply"); err != nil {
				return err
			}
		}
		// The medium the customer last used: the channel of their latest message.
		channelID := c.cur.ChannelID
		var last int64
		err := c.tx.QueryRowContext(ctx, `SELECT channel_id FROM comments WHERE issue_id = $1 AND kind = 'customer'
			AND channel_id IS NOT NULL ORDER BY id DESC LIMIT 1`, issueID).Scan(&last)
		switch {
		case err == nil:
			channelID = last
		case !errors.Is(store.Err(err), store.ErrNotFound):
			return err
		}
		queued := DeliveryQueued
		if reply, err = insertComment(ctx, c.tx, issueID, KindReply, body, a.UserID, &channelID, &queued, c.now); err != nil {
			return err
		}
		first := c.cur.FirstResponseAt == nil
		if _, err := c.tx.ExecContext(ctx, `UPDATE issues SET first_response_at = COALESCE(first_response_at, $1),
			updated_at = $1 WHERE id = $2`, c.now, issueID); err != nil {
			return err
		}
		c.record("replied", map[string]any{"comment_id": reply.ID, "channel_id": channelID, "first_response": first})
		// The feed shows the reply as the agent's message in the conversation.
		if _, err := s.channels.Append(ctx, c.tx, channels.Post{ChannelID: channelID, Body: body, AuthorID: &a.UserID,
			IssueID: &issueID, CommentID: &reply.ID}); err != nil {
			return err
		}
		if _, err := s.log.Append(ctx, c.tx, hub.IssueTopic(issueID), "comment.created", map[string]any{
			"comment": reply, "issue_id": issueID}); err != nil {
			return err
		}
		return s.handOver(ctx, c.tx, c.cur, reply, a.UserID)
	})
	if err != nil {
		return nil, nil, err
	}
	return issue, reply, nil
}

// AddNote adds an internal note, which anyone who sees the issue may do. Its @handle
// and @team mentions are resolved (unknown ones ignored), stored, and carried by the
// comment.created event (with the issue's assignee and customer) for notifications. A
// note never reaches the customer and never appears in a channel's feed.
func (s *Service) AddNote(ctx context.Context, a Actor, issueID int64, body string) (*Issue, *Comment, error) {
	body, err := cleanBody(body)
	if err != nil {
		return nil, nil, err
	}
	mentions, err := s.resolveMentions(ctx, body)
	if err != nil {
		return nil, nil, err
	}
	var note *Comment
	issue, err := s.act(ctx, a, issueID, "note", func(c *change) error {
		c.quiet = true // the issue did not change: no issue.updated on the channel's feed
		var err error
		if note, err = insertComment(ctx, c.tx, issueID, KindNote, body, a.UserID, nil, nil, c.now); err != nil {
			return err
		}
		if err := storeMentions(ctx, c.tx, note.ID, mentions, c.now); err != nil {
			return err
		}
		handles := make([]string, len(mentions))
		for i, m := range mentions {
			handles[i] = m.Handle
		}
		note.Mentions = mentions
		c.record("note_added", map[string]any{"comment_id": note.ID, "mentions": handles})
		if err := s.tell(ctx, c.tx, c.cur, noteOccurrence(a.UserID, body, mentions)); err != nil {
			return err
		}
		_, err = s.log.Append(ctx, c.tx, hub.IssueTopic(issueID), "comment.created", map[string]any{
			"comment": note, "issue_id": issueID, "mentions": mentions,
			"assignee_id": c.cur.AssigneeID, "customer_id": c.cur.CustomerID})
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return issue, note, nil
}
