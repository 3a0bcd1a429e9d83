package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/channels/sms"
	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/internal/outbox"
	"github.com/switchboard-hq/switchboard/issues"
	"github.com/switchboard-hq/switchboard/store"
)

// setupOutbound builds the outbox, the Twilio connector's store and its sender, connects
// the environment's number (TWILIO_*, reconnected at every start so the environment
// wins), and makes the outbox the Sender of SMS replies.
func (s *Server) setupOutbound(ctx context.Context) error {
	oc := s.cfg.Outbox
	oc.Now, oc.Logger, oc.Metrics = s.cfg.Now, s.log, s.registry
	s.Outbox = outbox.New(s.DB, s.Events, oc)
	s.SMS = sms.NewStore(s.DB, s.Channels, s.cfg.Now)
	var apiURL string
	if t := s.cfg.Twilio; t != nil {
		apiURL = t.APIURL
		n, err := s.SMS.Connect(ctx, sms.NewNumber{Number: t.PhoneNumber, AccountSID: t.AccountSID, AuthToken: t.AuthToken})
		if err != nil {
			return err
		}
		s.SMS.SetDefault(n)
		s.log.Info("sms channel ready", "channel", n.ChannelID, "number", n.Number)
	}
	out, err := sms.NewOutbound(sms.OutboundConfig{APIURL: apiURL, PublicURL: s.cfg.PublicURL.String(), Store: s.SMS, Log: s.log})
	if err != nil {
		return err
	}
	s.Outbox.Register(sms.ConnectorName, out)
	s.Issues.SetSender(channels.SMS, OutboxSender(s.Outbox, sms.ConnectorName))
	return nil
}

// outboundRoutes mounts the Twilio webhooks on r and the numbers, media and delivery APIs
// on authed.
func (s *Server) outboundRoutes(r, authed *mux.Router) {
	public := s.cfg.PublicURL.String()
	sms.NewHandler(sms.Config{
		PublicURL: public,
		Store:     s.SMS,
		Intake:    s.Issues,
		Reports:   s.Outbox,
		Log:       s.log,
		Now:       s.cfg.Now,
		Metrics:   s.registry,
	}).Register(r)
	sms.NewNumbersHandler(s.SMS, public, s.log).Register(authed)
	sms.NewMediaHandler(s.SMS, func(r *http.Request, issueID int64) error {
		_, err := s.visibleIssue(r, issueID)
		return err
	}, s.log).Register(authed)
	outbox.NewHandler(s.Outbox, s.deliveryAccess, s.log).Register(authed)
}

var (
	errNoIssue       = httpx.Errorf(http.StatusNotFound, "no such issue")
	errDeliveryOther = httpx.Errorf(http.StatusForbidden, "only the issue's assignee or an admin may retry or discard the delivery of a reply")
)

// visibleIssue returns the issue if the request's user belongs to its channel.
func (s *Server) visibleIssue(r *http.Request, issueID int64) (*issues.Issue, error) {
	issue, err := s.Issues.Get(r.Context(), issueID)
	if errors.Is(err, issues.ErrNotFound) {
		return nil, errNoIssue
	}
	if err != nil {
		return nil, err
	}
	ok, err := s.Channels.IsMember(r.Context(), accounts.SessionFrom(r.Context()).UserID, issue.ChannelID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errNoIssue
	}
	return issue, nil
}

// deliveryAccess: the issue's viewers see its deliveries; its assignee (anyone, while
// unassigned) and admins retry and discard them, as they reply. A message of no issue is
// for admins.
func (s *Server) deliveryAccess(r *http.Request, issueID int64, act bool) error {
	sess := accounts.SessionFrom(r.Context())
	admin := sess.User.IsAdmin()
	if issueID == 0 {
		if !admin {
			return outbox.ErrNotFound
		}
		return nil
	}
	issue, err := s.visibleIssue(r, issueID)
	if err != nil {
		return err
	}
	if act && !admin && issue.AssigneeID != nil && *issue.AssigneeID != sess.UserID {
		return errDeliveryOther
	}
	return nil
}

// OutboxSender is an issues.Sender that queues replies in the outbox for the named
// connector, in the reply's transaction. The connector's Checker may refuse a reply (an
// opted-out customer: 409). Email can use it too, with its own connector name.
func OutboxSender(ob *outbox.Service, connector string) issues.Sender {
	return outboxSender{ob: ob, connector: connector}
}

type outboxSender struct {
	ob        *outbox.Service
	connector string
}

// ReplyPayload is what a connector finds in Message.Payload for a reply: the parts of
// issues.Outbound that are not columns of the outbox.
type ReplyPayload struct {
	AuthorID  int64  `json:"author_id"`
	Subject   string `json:"subject,omitempty"`
	From      string `json:"from,omitempty"`
	ToName    string `json:"to_name,omitempty"`
	InReplyTo string `json:"in_reply_to,omitempty"`
}

func (o outboxSender) Send(ctx context.Context, tx *store.Tx, r *issues.Outbound) error {
	_, err := o.ob.Enqueue(ctx, tx, outbox.Outgoing{
		CommentID: r.CommentID,
		IssueID:   r.IssueID,
		ChannelID: r.ChannelID,
		Connector: o.connector,
		To:        r.To,
		Body:      r.Body,
		Payload:   ReplyPayload{AuthorID: r.AuthorID, Subject: r.Subject, From: r.From, ToName: r.ToName, InReplyTo: r.InReplyTo},
	})
	return err
}
