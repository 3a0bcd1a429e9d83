package issues

import (
	"context"

	"github.com/switchboard-hq/switchboard/notify"
	"github.com/switchboard-hq/switchboard/store"
)

// Notifier hears, inside the writing transaction, what happened to an issue, so the
// notifications it records commit or roll back with the change. notify.Service
// implements it; the server sets it with SetNotifier before serving.
type Notifier interface {
	Notify(ctx context.Context, tx *store.Tx, o *notify.Occurrence) error
}

// SetNotifier sets the Notifier (nil: nobody is told). Call it before serving.
func (s *Service) SetNotifier(n Notifier) { s.cfg.Notifier = n }

// tell fills an occurrence with what this package knows of the issue's people (its
// assignee, the followers of its customer) and hands it to the Notifier. issue is the
// issue as it stands after the change.
func (s *Service) tell(ctx context.Context, tx *store.Tx, issue *Issue, o *notify.Occurrence) error {
	if s.cfg.Notifier == nil {
		return nil
	}
	o.IssueID = issue.ID
	if o.ChannelID == 0 {
		o.ChannelID = issue.ChannelID
	}
	o.Subject = issue.Subject
	if issue.Customer != nil {
		o.Customer = issue.Customer.DisplayName()
	}
	if issue.AssigneeID != nil {
		o.AssigneeID = *issue.AssigneeID
	}
	followers, err := s.Followers(ctx, tx, issue.CustomerID)
	if err != nil {
		return err
	}
	o.Followers = followers
	return s.cfg.Notifier.Notify(ctx, tx, o)
}

// noteOccurrence is the occurrence of a note with its mentions.
func noteOccurrence(actorID int64, body string, mentions []Mention) *notify.Occurrence {
	o := &notify.Occurrence{What: notify.WhatNote, ActorID: actorID, Text: body}
	for _, m := range mentions {
		switch {
		case m.UserID != nil:
			o.Mentioned = append(o.Mentioned, *m.UserID)
		case m.TeamID != nil:
			o.Teams = append(o.Teams, notify.TeamMention{Handle: m.Handle, MemberIDs: m.MemberIDs})
		}
	}
	return o
}
