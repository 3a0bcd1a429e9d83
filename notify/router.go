package notify

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/store"
)

// What kinds of occurrence the domain packages report.
const (
	// WhatIssueUpdated: an agent acted on an issue (Actions lists the activity entries:
	// "assigned", "unsnoozed", "resolved", …). The new assignee hears "assigned", the
	// assignee of an issue woken early "unsnoozed", followers "followed_customer_issue".
	WhatIssueUpdated = "issue_updated"
	// WhatCustomerMessage: a customer's message landed on an issue (Created: it opened the
	// issue; Unsnoozed: it woke the issue).
	WhatCustomerMessage = "customer_message"
	// WhatNote: an internal note, with its mentions.
	WhatNote = "note"
	// WhatUnsnoozed: a snooze ran out.
	WhatUnsnoozed = "unsnoozed"
	// WhatSLABreached: an SLA clock passed its due time (SLAKind).
	WhatSLABreached = "sla_breached"
)

// Occurrence is what happened, told by the package it happened in, with the people it
// relates to: notify does not read other packages' tables to find them.
type Occurrence struct {
	What      string
	ActorID   int64 // the user who acted; 0: a customer or the system. Never notified.
	IssueID   int64
	ChannelID int64 // the issue's channel, or the channel a customer message came in on
	Subject   string
	Customer  string // the customer's display name
	Text      string // the message or note, for the excerpt
	// Actions are the activity entries of an issue_updated occurrence.
	Actions    []string
	AssigneeID int64 // 0: unassigned
	Followers  []int64
	// Mentioned are users a note names; Teams the teams it names, with their members.
	Mentioned []int64
	Teams     []TeamMention
	Created   bool   // customer_message: the message opened the issue
	Unsnoozed bool   // customer_message: the message woke a snoozed issue
	SLAKind   string // sla_breached: "first_response" or "resolution"
}

// TeamMention is a team a note names.
type TeamMention struct {
	Handle    string
	MemberIDs []int64
}

// rank orders the events by strength: when several relations make one user a recipient
// of one occurrence, the strongest event whose preference delivers anything wins, and the
// user gets one notification. A mention is about you; a direct message is to you;
// assignment, SLA and snooze are about your work; the rest is about things you watch.
var rank = []string{
	EventMentioned, EventTeamMentioned, EventDirectMessage, EventAssigned, EventSLABreached,
	EventUnsnoozed, EventNote, EventIssueMessage, EventFollowedCustomerMessage,
	EventFollowedCustomerIssue, EventIssueCreated, EventCustomerMessage,
}

// relations collects, per user, the events an occurrence means for them.
type relations map[int64][]string

func (r relations) add(ev string, ids ...int64) {
	for _, id := range ids {
		if id > 0 && !slices.Contains(r[id], ev) {
			r[id] = append(r[id], ev)
		}
	}
}

// Notify routes an occurrence inside the caller's transaction. The notifications it
// records commit or roll back with the change; their live frames go out after commit.
func (s *Service) Notify(ctx context.Context, tx *store.Tx, o *Occurrence) error {
	rel := relations{}
	switch o.What {
	case WhatIssueUpdated:
		if slices.Contains(o.Actions, "assigned") {
			rel.add(EventAssigned, o.AssigneeID)
		}
		if slices.Contains(o.Actions, "unsnoozed") {
			rel.add(EventUnsnoozed, o.AssigneeID)
		}
		rel.add(EventFollowedCustomerIssue, o.Followers...)
	case WhatCustomerMessage:
		events := []string{EventCustomerMessage}
		if o.Created {
			events = []string{EventIssueCreated, EventCustomerMessage}
			rel.add(EventFollowedCustomerIssue, o.Followers...)
		} else {
			if o.Unsnoozed {
				rel.add(EventUnsnoozed, o.AssigneeID)
			}
			rel.add(EventIssueMessage, o.AssigneeID)
		}
		rel.add(EventFollowedCustomerMessage, o.Followers...)
		if err := s.addMembers(ctx, tx, rel, o.ChannelID, events...); err != nil {
			return err
		}
	case WhatNote:
		rel.add(EventMentioned, o.Mentioned...)
		for _, t := range o.Teams {
			rel.add(EventTeamMentioned, t.MemberIDs...)
		}
		rel.add(EventNote, o.AssigneeID)
		rel.add(EventNote, o.Followers...)
	case WhatUnsnoozed:
		rel.add(EventUnsnoozed, o.AssigneeID)
	case WhatSLABreached:
		if o.AssigneeID != 0 {
			rel.add(EventSLABreached, o.AssigneeID)
		} else {
			if err := s.addMembers(ctx, tx, rel, o.ChannelID, EventSLABreached); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("notify: unknown occurrence %q", o.What)
	}
	return s.route(ctx, tx, o, rel)
}

// ChannelMessage implements channels.Notifier: an agent's message in a direct channel
// tells the other side (direct_message); in a team channel it is that channel's
// customer_message event ("a new message in this channel"), off unless the user turns it
// on for the channel, or for every channel.
func (s *Service) ChannelMessage(ctx context.Context, tx *store.Tx, ch *channels.Channel, m *channels.Message) error {
	o := &Occurrence{What: "channel_message", ChannelID: ch.ID, Text: m.Body}
	if m.AuthorID != nil {
		o.ActorID = *m.AuthorID
	}
	rel := relations{}
	var err error
	switch ch.Kind {
	case channels.Direct:
		err = s.addMembers(ctx, tx, rel, ch.ID, EventDirectMessage)
	case channels.Team:
		err = s.addMembers(ctx, tx, rel, ch.ID, EventCustomerMessage)
	default:
		return nil
	}
	if err != nil {
		return err
	}
	return s.routeChannel(ctx, tx, o, ch, rel)
}

// addMembers makes the members of a channel recipients of events. Channel events are
// off by default, and an SMS channel's members are every agent: reading every user and
// every preference for each customer message would cost the intake path dearly for
// nothing. So when neither the factory nor the organisation (for this channel) turns any
// of the events on, only users whose own preferences name one of them can want it, and
// only those are considered.
func (s *Service) addMembers(ctx context.Context, tx *store.Tx, rel relations, channelID int64, events ...string) error {
	if channelID == 0 {
		return nil
	}
	org, err := loadOrg(ctx, tx)
	if err != nil {
		return err
	}
	wide := false
	for _, ev := range events {
		if p, _ := eventPref(nil, org, ev, channelID); p.InApp != Never || p.Email != Never {
			wide = true
		}
	}
	var keen map[int64]bool // !wide: the users whose preferences name one of the events
	if !wide {
		if keen, err = usersNaming(ctx, tx, events); err != nil || len(keen) == 0 {
			return err
		}
	}
	all, ids, err := s.cfg.Channels.MemberIDs(ctx, tx, channelID)
	if err != nil {
		return err
	}
	var members []int64
	switch {
	case all && !wide:
		for id := range keen {
			members = append(members, id) // every user is a member; disabled ones are dropped later
		}
	case all:
		users, err := s.cfg.Users.UsersIn(ctx, tx, nil)
		if err != nil {
			return fmt.Errorf("notify: users: %w", err)
		}
		for _, u := range users {
			if !u.Disabled {
				members = append(members, u.ID)
			}
		}
	default:
		for _, id := range ids {
			if wide || keen[id] {
				members = append(members, id)
			}
		}
	}
	for _, ev := range events {
		rel.add(ev, members...)
	}
	return nil
}

// usersNaming returns the users whose preference document names one of the events (as a
// key, anywhere: events or channels).
func usersNaming(ctx context.Context, q store.Querier, events []string) (map[int64]bool, error) {
	conds := make([]string, len(events))
	args := make([]any, len(events))
	for i, ev := range events {
		conds[i] = "doc LIKE $" + strconv.Itoa(i+1)
		args[i] = `%"` + ev + `"%`
	}
	rows, err := q.QueryContext(ctx, `SELECT user_id FROM notification_prefs WHERE `+strings.Join(conds, " OR "), args...)
	if err != nil {
		return nil, fmt.Errorf("notify: preferences naming %v: %w", events, err)
	}
	defer rows.Close()
	out := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}

func (s *Service) route(ctx context.Context, tx *store.Tx, o *Occurrence, rel relations) error {
	return s.routeChannel(ctx, tx, o, nil, rel)
}

// routeChannel decides and records one notification per recipient. ch is the channel
// when the caller has it at hand.
func (s *Service) routeChannel(ctx context.Context, tx *store.Tx, o *Occurrence, ch *channels.Channel, rel relations) error {
	delete(rel, o.ActorID) // nobody is notified of their own action
	if len(rel) == 0 {
		return nil
	}
	byID, err := s.users(ctx, tx, rel)
	if err != nil {
		return err
	}
	ids := make([]int64, 0, len(rel))
	for id := range rel {
		if u := byID[id]; u != nil && !u.Disabled {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	org, docs, err := loadDocs(ctx, tx, ids)
	if err != nil {
		return err
	}
	now := s.now()
	c := &content{s: s, o: o, ch: ch}
	var states map[int64]hub.PresenceState // asked for once, when a preference needs it
	for _, uid := range ids {
		evs := rel[uid]
		slices.SortFunc(evs, func(a, b string) int { return slices.Index(rank, a) - slices.Index(rank, b) })
		quietHours, _ := docs[uid].quiet()
		quiet := quietHours.Active(now)
		for _, ev := range evs {
			pref, _ := eventPref(docs[uid], org, ev, o.ChannelID)
			in := Input{Pref: pref, Quiet: quiet, Mention: isMention(ev), AllowMentions: quietHours.AllowMentions}
			if pref.InApp == WhenLoggedOut || pref.Email == WhenLoggedOut {
				if states == nil {
					states = s.presence(ctx)
				}
				in.LoggedIn = states[uid] == hub.Online
			}
			d := Decide(in)
			if !d.Delivers() {
				continue
			}
			n, err := c.build(ctx, tx, ev)
			if err != nil {
				return err
			}
			if err := s.record(ctx, tx, byID[uid], n, pref.Sound, d, now); err != nil {
				return err
			}
			break
		}
	}
	return nil
}

// users looks up the recipients (to skip disabled users and know who has an address),
// through the writer's transaction.
func (s *Service) users(ctx context.Context, tx *store.Tx, rel relations) (map[int64]*accounts.User, error) {
	ids := make([]int64, 0, len(rel))
	for id := range rel {
		ids = append(ids, id)
	}
	byID, err := s.cfg.Users.UsersIn(ctx, tx, ids)
	if err != nil {
		return nil, fmt.Errorf("notify: users: %w", err)
	}
	return byID, nil
}

// presence returns who is logged in. When it cannot be known (Redis down or slow), it
// degrades to "nobody": when_logged_out then delivers, since a notification twice (in the
// app and by mail) is better than none, and the customer's message or the agent's action
// that caused it must not fail for want of presence.
func (s *Service) presence(ctx context.Context) map[int64]hub.PresenceState {
	if s.cfg.Presence == nil {
		return map[int64]hub.PresenceState{}
	}
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	states, err := s.cfg.Presence.Presence(ctx)
	if err != nil {
		s.cfg.Logger.Warn("notify: presence unknown; treating everyone as logged out", "err", err)
		return map[int64]hub.PresenceState{}
	}
	return states
}

// content builds the words of the notifications of one occurrence, looking names up once.
type content struct {
	s        *Service
	o        *Occurrence
	ch       *channels.Channel
	actor    string
	channel  string
	prepared bool
}

func (c *content) prepare(ctx context.Context, tx *store.Tx) error {
	if c.prepared {
		return nil
	}
	c.prepared = true
	if c.o.ActorID != 0 {
		names, err := c.s.cfg.Users.Names(ctx, tx, []int64{c.o.ActorID})
		if err != nil {
			return err
		}
		c.actor = names[c.o.ActorID]
	}
	if c.actor == "" {
		c.actor = "Someone"
	}
	if c.ch == nil && c.o.ChannelID != 0 {
		ch, err := c.s.cfg.Channels.GetIn(ctx, tx, c.o.ChannelID)
		if err == nil {
			c.ch = ch
		}
	}
	if c.ch != nil {
		c.channel = c.ch.Name
	}
	return nil
}

// build returns the notification of event ev, not yet stored.
func (c *content) build(ctx context.Context, tx *store.Tx, ev string) (*Notification, error) {
	if err := c.prepare(ctx, tx); err != nil {
		return nil, err
	}
	o := c.o
	n := &Notification{Event: ev, Body: excerpt(o.Text, 200)}
	if o.IssueID != 0 {
		id := o.IssueID
		n.IssueID = &id
		n.Link = fmt.Sprintf("#/issues/%d", id)
	}
	if o.ChannelID != 0 {
		id := o.ChannelID
		n.ChannelID = &id
		if n.Link == "" {
			n.Link = fmt.Sprintf("#/channels/%d", id)
		}
	}
	if o.ActorID != 0 {
		id := o.ActorID
		n.ActorID = &id
	}
	issue := fmt.Sprintf("issue #%d", o.IssueID)
	if s := strings.TrimSpace(o.Subject); s != "" {
		issue += " (" + excerpt(s, 80) + ")"
	}
	customer := o.Customer
	if customer == "" {
		customer = "A customer"
	}
	switch ev {
	case EventAssigned:
		n.Title = fmt.Sprintf("%s assigned you %s", c.actor, issue)
		if n.Body == "" {
			n.Body = customer
		}
	case EventUnsnoozed:
		n.Title = fmt.Sprintf("%s is back from snooze", upper(issue))
	case EventSLABreached:
		kind := strings.ReplaceAll(o.SLAKind, "_", " ")
		if kind == "" {
			kind = "SLA"
		}
		n.Title = fmt.Sprintf("SLA breached: %s on %s", kind, issue)
	case EventNote:
		n.Title = fmt.Sprintf("%s added a note on %s", c.actor, issue)
	case EventMentioned:
		n.Title = fmt.Sprintf("%s mentioned you on %s", c.actor, issue)
	case EventTeamMentioned:
		handles := make([]string, len(o.Teams))
		for i, t := range o.Teams {
			handles[i] = "@" + t.Handle
		}
		n.Title = fmt.Sprintf("%s mentioned %s on %s", c.actor, strings.Join(handles, ", "), issue)
	case EventIssueMessage:
		n.Title = fmt.Sprintf("%s wrote on %s", customer, issue)
	case EventFollowedCustomerMessage:
		n.Title = fmt.Sprintf("%s (whom you follow) wrote on %s", customer, issue)
	case EventFollowedCustomerIssue:
		if o.What == WhatCustomerMessage && o.Created {
			n.Title = fmt.Sprintf("%s (whom you follow) opened %s", customer, issue)
		} else {
			n.Title = fmt.Sprintf("%s updated %s of %s, whom you follow", c.actor, issue, customer)
		}
	case EventIssueCreated:
		n.Title = fmt.Sprintf("New %s from %s in %s", issue, customer, c.channel)
	case EventCustomerMessage:
		if o.IssueID != 0 {
			n.Title = fmt.Sprintf("%s wrote in %s (%s)", customer, c.channel, issue)
		} else {
			n.Title = fmt.Sprintf("%s wrote in %s", c.actor, c.channel)
		}
	case EventDirectMessage:
		n.Title = fmt.Sprintf("%s sent you a direct message", c.actor)
	default:
		n.Title = ev
	}
	return n, nil
}

// record stores one notification and, when it shows in the app, pushes it to the user.
func (s *Service) record(ctx context.Context, tx *store.Tx, u *accounts.User, n *Notification, sound *string, d Decision, now time.Time) error {
	n.CreatedAt = now
	n.Sound = sound
	emailState := "none"
	var next, queued *time.Time
	if d.Email && s.cfg.Mailer != nil && u.Email != "" {
		emailState = "pending"
		if d.Hold {
			emailState = "held"
		}
		t := now.Add(s.cfg.EmailWindow)
		next, queued = &t, &now
	}
	held := d.Hold && d.InApp && sound != nil
	err := tx.QueryRowContext(ctx, `INSERT INTO notifications (user_id, event, title, body, link, issue_id, channel_id,
		actor_id, sound, sound_held, in_app, created_at, email_state, email_next_at, email_queued_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id`,
		u.ID, n.Event, n.Title, n.Body, n.Link, n.IssueID, n.ChannelID, n.ActorID, sound, held, d.InApp, now,
		emailState, next, queued).Scan(&n.ID)
	if err != nil {
		return fmt.Errorf("notify: record: %w", store.Err(err))
	}
	if !d.InApp {
		return nil
	}
	unread, err := countUnread(ctx, tx, u.ID)
	if err != nil {
		return err
	}
	_, err = s.log.Append(ctx, tx, hub.UserTopic(u.ID), "notification.created", map[string]any{
		"notification": n, "unread": unread, "sound": d.Sound, "held": d.Hold})
	return err
}

// excerpt is text on one line, cut at n runes.
func excerpt(text string, n int) string {
	text = strings.Join(strings.FieldsFunc(text, unicode.IsSpace), " ")
	r := []rune(text)
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return text
}

func upper(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}
