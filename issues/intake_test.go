package issues_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/issues"
	"github.com/switchboard-hq/switchboard/store"
)

type fixture struct {
	t     *testing.T
	db    *store.DB
	is    *issues.Service
	sms   *channels.Channel
	email *channels.Channel
	n     int
}

func newFixture(t *testing.T, db *store.DB) *fixture {
	log := hub.NewLog(db, nil)
	ch := channels.New(db, log, channels.Config{})
	is := issues.New(db, log, ch, issues.Config{})
	ch.SetDirectory(is)
	ctx := context.Background()
	sms, err := ch.Ensure(ctx, channels.SMS, "SMS", "+15550001111")
	if err != nil {
		t.Fatal(err)
	}
	email, err := ch.Ensure(ctx, channels.Email, "Mail", "help@example.com")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, db: db, is: is, sms: sms, email: email}
}

// text delivers an SMS from phone.
func (f *fixture) text(phone, body string) *issues.IntakeResult {
	f.t.Helper()
	f.n++
	res, err := f.is.Intake(context.Background(), issues.Inbound{ChannelID: f.sms.ID, Provider: "twilio",
		ExternalID: fmt.Sprint("SM", f.n), Phone: phone, Body: body, ReceivedAt: time.Now()})
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

// mail delivers an email with the given Message-ID and threading headers.
func (f *fixture) mail(from, msgID, subject, inReplyTo string, refs ...string) *issues.IntakeResult {
	f.t.Helper()
	res, err := f.is.Intake(context.Background(), issues.Inbound{ChannelID: f.email.ID, Provider: "email",
		ExternalID: msgID, Email: from, Subject: subject, Body: "mail " + msgID, InReplyTo: inReplyTo, References: refs,
		ReceivedAt: time.Now()})
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

func (f *fixture) setStatus(id int64, st issues.Status) {
	f.t.Helper()
	if _, err := f.db.ExecContext(context.Background(), `UPDATE issues SET status = $1 WHERE id = $2`, string(st), id); err != nil {
		f.t.Fatal(err)
	}
}

func TestIntakeOrder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		ctx := context.Background()

		first := f.text("+15551230001", "hello")
		if !first.Created || first.Reason != issues.ReasonNew {
			t.Fatalf("first message: %+v; want a new issue", first)
		}
		again := f.text("+15551230001", "anyone?")
		if again.Created || again.IssueID != first.IssueID || again.Reason != issues.ReasonOpenIssue {
			t.Fatalf("second message: %+v; want appended to issue %d", again, first.IssueID)
		}

		f.setStatus(first.IssueID, issues.Resolved)
		reopened := f.text("+15551230001", "it broke again")
		if reopened.IssueID != first.IssueID || reopened.Reason != issues.ReasonReopened {
			t.Fatalf("after resolve: %+v; want issue %d reopened", reopened, first.IssueID)
		}
		if got, _ := f.is.Get(ctx, first.IssueID); got.Status != issues.Open {
			t.Errorf("reopened issue status %s; want open", got.Status)
		}

		f.setStatus(first.IssueID, issues.Closed)
		fresh := f.text("+15551230001", "new question")
		if !fresh.Created || fresh.Reason != issues.ReasonAfterClosed {
			t.Fatalf("after close: %+v; want a new issue", fresh)
		}
		if got, _ := f.is.Get(ctx, fresh.IssueID); got.LinkedIssueID == nil || *got.LinkedIssueID != first.IssueID {
			t.Errorf("new issue links to %v; want %d", got.LinkedIssueID, first.IssueID)
		}

		other := f.text("+15551230002", "different person")
		if !other.Created || other.IssueID == fresh.IssueID {
			t.Fatalf("another customer: %+v; want their own issue", other)
		}
	})
}

func TestIntakeEmailThreading(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		a := f.mail("Jane@Example.com", "<a1@mail>", "Invoice", "")
		// Case-insensitive address: the same customer; two issues for her.
		f.setStatus(a.IssueID, issues.InProgress)
		b := f.mail("jane@example.com", "<b1@mail>", "Another thing", "")
		if b.IssueID != a.IssueID {
			t.Fatalf("open issue rule: %d; want %d", b.IssueID, a.IssueID)
		}
		// Give her a second, separate open issue, so threading has something to decide.
		if _, err := db.ExecContext(context.Background(), `UPDATE issues SET status = 'resolved' WHERE id = $1`, a.IssueID); err != nil {
			t.Fatal(err)
		}
		c := f.mail("jane@example.com", "<c1@mail>", "Unrelated", "")
		if c.IssueID != a.IssueID { // reopened
			t.Fatalf("got %d; want %d reopened", c.IssueID, a.IssueID)
		}
		f.setStatus(a.IssueID, issues.Closed)
		d := f.mail("jane@example.com", "<d1@mail>", "Fresh start", "")
		if !d.Created {
			t.Fatalf("after close: %+v; want a new issue", d)
		}
		// Now two issues exist: a (closed) and d (open). A reply to a's thread with an
		// In-Reply-To of a's message goes by the header, ahead of the open-issue rule.
		f.setStatus(a.IssueID, issues.Open)
		e := f.mail("jane@example.com", "<e1@mail>", "Re: Invoice", "<a1@mail>")
		if e.IssueID != a.IssueID || e.Reason != issues.ReasonThread {
			t.Fatalf("In-Reply-To: %+v; want issue %d by thread header", e, a.IssueID)
		}
		g := f.mail("jane@example.com", "<g1@mail>", "Re: Re: Invoice", "<unknown@mail>", "<a1@mail>", "<zzz@mail>")
		if g.IssueID != a.IssueID || g.Reason != issues.ReasonThread {
			t.Fatalf("References: %+v; want issue %d by thread header", g, a.IssueID)
		}
		h := f.mail("jane@example.com", "<h1@mail>", fmt.Sprintf("Re: Fresh start [#%d]", d.IssueID), "")
		if h.IssueID != d.IssueID || h.Reason != issues.ReasonToken {
			t.Fatalf("token: %+v; want issue %d by subject token", h, d.IssueID)
		}
		// Another customer's token or headers never attach to Jane's issues.
		x := f.mail("mallory@example.com", "<x1@mail>", fmt.Sprintf("[#%d]", d.IssueID), "<a1@mail>")
		if x.IssueID == d.IssueID || x.IssueID == a.IssueID || !x.Created {
			t.Fatalf("foreign token/header: %+v; want a new issue of mallory's", x)
		}
	})
}

func TestIntakeIsIdempotent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		in := issues.Inbound{ChannelID: f.sms.ID, Provider: "twilio", ExternalID: "SMdup", Phone: "+15551230009", Body: "x"}
		first, err := f.is.Intake(context.Background(), in)
		if err != nil || first.Duplicate {
			t.Fatalf("first: %+v %v", first, err)
		}
		second, err := f.is.Intake(context.Background(), in)
		if err != nil || !second.Duplicate {
			t.Fatalf("repeat: %+v %v; want Duplicate", second, err)
		}
		comments, _, _ := f.is.Detail(context.Background(), first.IssueID)
		if len(comments) != 1 {
			t.Errorf("%d comments; want 1", len(comments))
		}
	})
}

func TestCustomerMessageWakesASnoozedIssue(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := newFixture(t, db)
		first := f.text("+15551230003", "hello")
		later := time.Now().Add(24 * time.Hour).UTC()
		if _, err := db.ExecContext(context.Background(), `UPDATE issues SET snoozed_until = $1 WHERE id = $2`, later, first.IssueID); err != nil {
			t.Fatal(err)
		}
		again := f.text("+15551230003", "still waiting")
		if again.IssueID != first.IssueID {
			t.Fatalf("went to %d; want %d", again.IssueID, first.IssueID)
		}
		got, err := f.is.Get(context.Background(), first.IssueID)
		if err != nil {
			t.Fatal(err)
		}
		if got.SnoozedUntil != nil {
			t.Errorf("still snoozed until %v after the customer wrote", got.SnoozedUntil)
		}
		_, activity, _ := f.is.Detail(context.Background(), first.IssueID)
		found := false
		for _, a := range activity {
			found = found || a.Action == "unsnoozed"
		}
		if !found {
			t.Error("no unsnoozed entry in the activity log")
		}
	})
}
