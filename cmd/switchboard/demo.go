package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/issues"
	"github.com/switchboard-hq/switchboard/server"
)

// demo seeds a small, living organisation through the same services the app uses, so
// the data obeys every rule a real one does.
func demo(ctx context.Context, cfg *config, stdout io.Writer) error {
	s, err := server.New(ctx, cfg.Config)
	if err != nil {
		return err
	}
	defer s.Close()
	if email, password, created, err := s.Accounts.EnsureAdmin(ctx); err != nil {
		return err
	} else if created {
		fmt.Fprintf(stdout, "admin   %-22s password %s\n", email, password)
	}

	people := []struct {
		email, name string
		role        accounts.Role
	}{
		{"alice@example.com", "Alice Martin", accounts.RoleAgent},
		{"bob@example.com", "Bob Chen", accounts.RoleAgent},
		{"dana@example.com", "Dana Okafor", accounts.RoleAdmin},
	}
	users := map[string]*accounts.User{}
	for _, p := range people {
		password := rand.Text()[:16]
		u, err := s.Accounts.CreateUser(ctx, accounts.NewUser{Email: p.email, Name: p.name, Role: p.role, Password: password})
		var he *httpx.Error
		if errors.As(err, &he) && he.Status == http.StatusConflict {
			return fmt.Errorf("demo: %s already exists; the demo data set is meant for an empty database", p.email)
		}
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		users[u.Handle] = u
		fmt.Fprintf(stdout, "%-7s %-22s password %s\n", p.role, p.email, password)
	}
	alice, bob, dana := users["alice"], users["bob"], users["dana"]

	support, err := s.Accounts.CreateTeam(ctx, "Support", "support")
	if err != nil {
		return err
	}
	billing, err := s.Accounts.CreateTeam(ctx, "Billing", "billing")
	if err != nil {
		return err
	}
	for _, m := range []struct{ team, user int64 }{{support.ID, alice.ID}, {support.ID, bob.ID}, {billing.ID, bob.ID}, {billing.ID, dana.ID}} {
		if _, err := s.Accounts.AddTeamMember(ctx, m.team, m.user); err != nil {
			return err
		}
	}

	number := "+15550100000"
	if cfg.Twilio != nil {
		number = cfg.Twilio.PhoneNumber
	}
	smsCh, err := s.Channels.Ensure(ctx, channels.SMS, "SMS "+number, number)
	if err != nil {
		return err
	}
	mailCh, err := s.Channels.Ensure(ctx, channels.Email, "Email support@localhost", "support@localhost")
	if err != nil {
		return err
	}
	admins, err := s.Accounts.Users(ctx)
	if err != nil {
		return err
	}
	var everyone []int64
	for _, u := range admins {
		everyone = append(everyone, u.ID)
	}
	general, err := s.Channels.CreateTeam(ctx, "General", everyone)
	if err != nil {
		return err
	}
	for _, m := range []struct {
		who  *accounts.User
		body string
	}{
		{dana, "Morning all! Reminder: the carrier delay affects orders shipped before Tuesday."},
		{alice, "Thanks Dana. I'll take the SMS queue this morning."},
		{bob, "I've got email and billing. Shout if anything urgent comes in."},
	} {
		if _, err := s.Channels.PostAsUser(ctx, m.who.ID, general.ID, m.body); err != nil {
			return err
		}
	}

	n := 0
	in := func(ch *channels.Channel, phone, email, name, subject, body string) (*issues.IntakeResult, error) {
		n++
		return s.Issues.Intake(ctx, issues.Inbound{ChannelID: ch.ID, Provider: "demo", ExternalID: fmt.Sprintf("demo-%d-%d", time.Now().UnixNano(), n),
			Phone: phone, Email: email, Name: name, Subject: subject, Body: body, ReceivedAt: time.Now()})
	}
	steps := []struct {
		ch                       *channels.Channel
		phone, email, name, subj string
		body                     string
		take, resolve            *accounts.User
	}{
		{ch: smsCh, phone: "+15551230001", body: "Hi, my order #1234 still hasn't arrived. It was due Monday."},
		{ch: smsCh, phone: "+15551230002", body: "Can I change the delivery address on order #1250?", take: alice},
		{ch: smsCh, phone: "+15551230002", body: "It should go to 12 Harbour St instead."},
		{ch: smsCh, phone: "+15551230003", body: "Got it, all sorted now. Thanks!", resolve: bob},
		{ch: smsCh, phone: "+15551230004", body: `<script>alert("hi")</script> <b>is this shown as text?</b>`},
		{ch: mailCh, email: "Jane.Doe@example.com", name: "Jane Doe", subj: "Question about my invoice",
			body: "Hello,\n\nInvoice INV-2291 charges me twice for shipping. Could you check?\n\nJane", take: bob},
		{ch: mailCh, email: "jane.doe@example.com", body: "Attaching nothing, but the second charge is on the 3rd."},
	}
	for _, st := range steps {
		res, err := in(st.ch, st.phone, st.email, st.name, st.subj, st.body)
		if err != nil {
			return err
		}
		if st.take != nil {
			if _, err := s.Issues.Take(ctx, issues.Actor{UserID: st.take.ID}, res.IssueID); err != nil {
				return err
			}
		}
		if st.resolve != nil {
			if _, err := s.Issues.Resolve(ctx, issues.Actor{UserID: st.resolve.ID}, res.IssueID); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(stdout, "demo data ready: 2 teams, channels %q, %q and %q, %d customer messages\n", smsCh.Name, mailCh.Name, general.Name, n)
	return nil
}
