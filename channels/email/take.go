package email

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-message/mail"

	"github.com/switchboard-hq/switchboard/issues"
)

// key names one mail in one mailbox.
type key struct {
	channelID   int64
	mailbox     string
	uidValidity uint32
	uid         uint32
}

// take handles one fetched mail: automatic mail is ignored, unparseable mail is
// quarantined, the rest goes to issue intake. It returns nil when the mailbox position
// may move past the mail, and an error when the mail must be tried again.
func (s *Service) take(ctx context.Context, k key, raw []byte, size int64) error {
	truncated := size > int64(len(raw))
	h, err := ReadHeader(raw)
	if err != nil {
		return s.quarantine(ctx, k, raw, size, nil, err, 1)
	}
	if reason := Classify(h, s.own...); reason != "" {
		if err := s.repo.advance(ctx, k); err != nil {
			return err
		}
		s.metrics.ignored.WithLabelValues(reason).Inc()
		s.metrics.received.WithLabelValues("ignored").Inc()
		s.log.Info("email: automatic mail ignored", "reason", reason, "uid", k.uid,
			"from", truncateUTF8(h.Get("From"), 200), "subject", headerText(h, "Subject"))
		return nil
	}
	m, err := Parse(raw, ParseOptions{MaxAttachment: s.cfg.MaxAttachment, Truncated: truncated})
	if err != nil {
		return s.quarantine(ctx, k, raw, size, &h, err, 1)
	}
	res, err := s.deliver(ctx, k, m, raw, size, truncated)
	if err != nil {
		return s.failed(ctx, k, raw, size, &h, err)
	}
	if err := s.repo.advance(ctx, k); err != nil {
		return err
	}
	if res.Duplicate {
		s.metrics.received.WithLabelValues("duplicate").Inc()
		s.log.Debug("email: mail already taken", "uid", k.uid, "message_id", m.MessageID)
		return nil
	}
	s.metrics.received.WithLabelValues("taken").Inc()
	s.log.Info("email: mail taken", "uid", k.uid, "message_id", m.MessageID, "issue", res.IssueID,
		"created", res.Created, "reason", res.Reason, "attachments", len(m.Attachments))
	return nil
}

// deliver stores the mail beside the comment (original, whole text, attachments), then
// hands its new text to issue intake. Both steps are idempotent by Message-ID, so a mail
// taken again after a crash between them is complete and not doubled.
func (s *Service) deliver(ctx context.Context, k key, m *Message, raw []byte, size int64, truncated bool) (*issues.IntakeResult, error) {
	body, _ := SplitReply(m.Text)
	if strings.TrimSpace(body) == "" {
		body = describeEmpty(m)
	}
	if err := s.repo.saveMessage(ctx, k, m, raw, size, truncated); err != nil {
		return nil, err
	}
	return s.cfg.Intake.Intake(ctx, issues.Inbound{
		ChannelID:  k.channelID,
		Provider:   Provider,
		ExternalID: m.MessageID,
		Email:      m.From,
		Name:       truncateUTF8(m.FromName, 200),
		Subject:    m.Subject,
		Body:       body,
		ReceivedAt: s.cfg.Now(),
		InReplyTo:  m.InReplyTo,
		References: m.References,
	})
}

// describeEmpty is the comment of a mail without text: its files' names, so the feed
// shows something a person can act on.
func describeEmpty(m *Message) string {
	var names []string
	for _, a := range m.Attachments {
		if !a.Inline {
			names = append(names, a.Filename)
		}
	}
	if len(names) == 0 {
		return "(no text)"
	}
	return "(no text; attached: " + strings.Join(names, ", ") + ")"
}

// failed counts a failed try at a mail. After MaxTries the mail is quarantined and nil is
// returned (the mailbox goes on); before, the cause is returned (the mail is tried again).
func (s *Service) failed(ctx context.Context, k key, raw []byte, size int64, h *mail.Header, cause error) error {
	tries, err := s.repo.fail(ctx, k, cause.Error())
	if err != nil {
		return errors.Join(cause, err)
	}
	if tries >= s.cfg.MaxTries {
		return s.quarantine(ctx, k, raw, size, h, cause, tries)
	}
	s.metrics.received.WithLabelValues("failed").Inc()
	return fmt.Errorf("try %d of %d: %w", tries, s.cfg.MaxTries, cause)
}

// quarantine keeps a mail aside for admins and moves the mailbox past it.
func (s *Service) quarantine(ctx context.Context, k key, raw []byte, size int64, h *mail.Header, cause error, tries int) error {
	q := &Quarantined{ChannelID: k.channelID, Mailbox: k.mailbox, UIDValidity: k.uidValidity, UID: k.uid,
		Error: truncateUTF8(toUTF8([]byte(cause.Error()), ""), 2000), Tries: tries, Size: size}
	if h != nil {
		q.MessageID = truncateUTF8(msgID(*h, "Message-Id"), 500)
		if from, _, err := sender(*h); err == nil {
			q.From = from
		}
		q.Subject = headerText(*h, "Subject")
	}
	if err := s.repo.quarantine(ctx, k, q, raw); err != nil {
		return errors.Join(cause, err)
	}
	s.metrics.received.WithLabelValues("quarantined").Inc()
	s.log.Warn("email: mail quarantined; an admin can see it at /api/email/quarantine", "uid", k.uid,
		"uidvalidity", k.uidValidity, "tries", tries, "err", cause)
	return nil
}
