package email_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

// TestIntakeMIME delivers every shape and charset through a real IMAP server and checks
// the comments, the stored whole text and the attachments, on both engines.
func TestIntakeMIME(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		a := newApp(db)
		ms := newMailServer(t, serverOptions{})
		files := map[string]string{ // file -> comment body
			"plain_utf8_qp.eml":      "Hallo, meine Bestellung ist nicht angekommen. Grüße aus Köln — Jane",
			"latin1_qp.eml":          "J'ai oublié mon mot de passe, déjà essayé deux fois.",
			"windows1252_base64.eml": "Price is €40 — “quoted” and naïve.",
			"undeclared_8bit.eml":    "Café crème, s'il vous plaît.",
			"alternative.eml":        "Where is my parcel? Order #1234.",
			"html_only.eml":          "Hello team,\n\nThe app crashes when I click Settings <https://example.com/settings> & then Save.\n\n- Version 2.3\n- Android 14\n\nThanks,\nJane",
			"mixed_attachment.eml":   "Please find the invoice attached.",
			"related_inline.eml":     "See the error below:\n\nJane",
			"reply_gmail.eml":        "It arrived today, thank you!",
			"reply_outlook.eml":      "Thanks, the amount is correct now.\n\nJane",
		}
		ids := map[string]string{}
		for file := range files {
			raw := eml(t, file)
			ms.deliver(raw)
			h := strings.SplitN(string(raw), "Message-ID: ", 2)[1]
			ids[file] = strings.TrimSpace(strings.SplitN(h, "\n", 2)[0])
		}
		r := start(t, a, ms, runOptions{maxAtt: 200})
		waitFor(t, "every mail taken", func() bool { return customerComments(t, db) == len(files) })

		// All from Jane: one issue, one comment per mail.
		issueID := issueOf(t, db, ids["alternative.eml"])
		bodies := commentsOf(t, a, issueID)
		for file, want := range files {
			if got := bodies[ids[file]]; got != want {
				t.Errorf("%s: comment %q; want %q", file, got, want)
			}
		}
		if n := count(t, db, `SELECT COUNT(*) FROM issues`); n != 1 {
			t.Errorf("%d issues; want 1 (one customer)", n)
		}
		// The whole text, quotes and signature included, is kept beside the comment.
		var full string
		if err := db.QueryRowContext(context.Background(), `SELECT full_body FROM email_messages WHERE message_id = $1`,
			ids["reply_gmail.eml"]).Scan(&full); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(full, "> Your parcel is on its way.") || !strings.Contains(full, "Head of Things") {
			t.Errorf("full body lost the history: %q", full)
		}
		// Attachments: name, type, size; bytes kept up to the limit (200 here).
		rows, err := db.QueryContext(context.Background(), `SELECT a.filename, a.content_type, a.size, a.inline, a.data IS NOT NULL
			FROM email_attachments a JOIN email_messages m ON m.id = a.email_id ORDER BY m.message_id, a.position`)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var name, typ string
			var size int64
			var inline, stored bool
			if err := rows.Scan(&name, &typ, &size, &inline, &stored); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s %s %d %v %v", name, typ, size, inline, stored))
		}
		rows.Close()
		want := []string{
			"invoice.pdf application/pdf 286 false false", // over the 200-byte limit: listed, not stored
			"schön.png image/png 70 false true",
			"page.html text/html 39 false true",
			"shot.png image/png 70 true true",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("attachments:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		// The counter moves just after each mail's commit, so the last one may trail the
		// rows the wait above saw.
		waitFor(t, "the taken counter at every mail", func() bool {
			return r.counter(t, "switchboard_email_received_total", map[string]string{"outcome": "taken"}) == float64(len(files))
		})
	})
}

// TestIntakeThreading: a reply whose In-Reply-To names an earlier mail lands on that
// mail's issue, ahead of the customer's other open issue.
func TestIntakeThreading(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a := newApp(db)
		ms := newMailServer(t, serverOptions{})
		start(t, a, ms, runOptions{})
		ms.deliver(simple("Jane <jane@example.com>", "<first@example.com>", "Invoice", "Where is my invoice?"))
		waitFor(t, "the first mail", func() bool { return customerComments(t, db) == 1 })
		first := issueOf(t, db, "<first@example.com>")
		// Close it, so the next mail opens a second issue; then mark the first resolved.
		if _, err := db.ExecContext(ctx, `UPDATE issues SET status = 'closed' WHERE id = $1`, first); err != nil {
			t.Fatal(err)
		}
		ms.deliver(simple("jane@example.com", "<second@example.com>", "Password", "I cannot log in."))
		waitFor(t, "the second mail", func() bool { return customerComments(t, db) == 2 })
		second := issueOf(t, db, "<second@example.com>")
		if second == first {
			t.Fatal("the mail after a closed issue did not open a new one")
		}
		if _, err := db.ExecContext(ctx, `UPDATE issues SET status = 'resolved' WHERE id = $1`, first); err != nil {
			t.Fatal(err)
		}
		ms.deliver(simple("jane@example.com", "<third@example.com>", "Re: Invoice", "Found it, thanks!\r\n\r\nOn Tue, Support wrote:\r\n> Here it is",
			"In-Reply-To: <first@example.com>", "References: <first@example.com>"))
		waitFor(t, "the reply", func() bool { return customerComments(t, db) == 3 })
		if got := issueOf(t, db, "<third@example.com>"); got != first {
			t.Fatalf("reply landed on issue %d; want %d (its In-Reply-To), not the open issue %d", got, first, second)
		}
		if got := commentsOf(t, a, first)["<third@example.com>"]; got != "Found it, thanks!" {
			t.Errorf("reply comment %q; want only the new text", got)
		}
		is, err := a.issues.Get(ctx, first)
		if err != nil {
			t.Fatal(err)
		}
		if is.Status != "open" {
			t.Errorf("replied-to resolved issue is %s; want reopened (open)", is.Status)
		}
	})
}

// TestIntakeIgnoresAutomaticMail: auto-replies, bounces, lists, reports and our own mail
// never create issues; they are counted by reason.
func TestIntakeIgnoresAutomaticMail(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	a := newApp(db)
	ms := newMailServer(t, serverOptions{})
	auto := []struct {
		reason string
		raw    []byte
	}{
		{"auto_submitted", simple("jane@example.com", "<a1@x>", "Out of office", "Away", "Auto-Submitted: auto-replied")},
		{"precedence", simple("news@example.com", "<a2@x>", "News", "Sale", "Precedence: bulk")},
		{"precedence", simple("junk@example.com", "<a3@x>", "Junk", "x", "Precedence: junk")},
		{"x_autoreply", simple("jane@example.com", "<a4@x>", "Auto", "x", "X-Autoreply: yes")},
		{"x_autorespond", simple("jane@example.com", "<a5@x>", "Auto", "x", "X-Autorespond: yes")},
		{"list", simple("list@example.com", "<a6@x>", "[list] hi", "x", "List-Id: <dev.example.com>")},
		{"null_sender", simple("jane@example.com", "<a7@x>", "Notice", "x", "Return-Path: <>")},
		{"mailer_daemon", simple("MAILER-DAEMON@mx.example.com", "<a8@x>", "Failure", "x")},
		{"mailer_daemon", simple("postmaster@example.com", "<a9@x>", "Failure", "x")},
		{"delivery_report", eml(t, "bounce.eml")},
		{"own_address", simple("Support <"+imapUser+">", "<a10@x>", "Re: ours", "a loop")},
	}
	for _, m := range auto {
		ms.deliver(m.raw)
	}
	ms.deliver(simple("jane@example.com", "<person@x>", "Real", "A person wrote this."))
	r := start(t, a, ms, runOptions{})
	waitFor(t, "the person's mail", func() bool { return customerComments(t, db) == 1 })
	waitFor(t, "every mail handled", func() bool {
		return count(t, db, `SELECT last_uid FROM email_mailboxes`) == len(auto)+1
	})
	if n := count(t, db, `SELECT COUNT(*) FROM issues`); n != 1 {
		t.Errorf("%d issues; want 1", n)
	}
	want := map[string]float64{}
	for _, m := range auto {
		want[m.reason]++
	}
	// The counters move just after the position does.
	for reason, n := range want {
		waitFor(t, fmt.Sprintf("ignored{reason=%s} at %v", reason, n), func() bool {
			return r.counter(t, "switchboard_email_ignored_total", map[string]string{"reason": reason}) == n
		})
	}
}

// TestIntakeRestartFetchesNothingTwice: the position survives a restart; the new run
// fetches only the new mail.
func TestIntakeRestartFetchesNothingTwice(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		a := newApp(db)
		ms := newMailServer(t, serverOptions{})
		ms.deliver(simple("a@example.com", "<r1@x>", "one", "one"))
		ms.deliver(simple("b@example.com", "<r2@x>", "two", "two"))
		r := start(t, a, ms, runOptions{})
		waitFor(t, "two mails", func() bool { return customerComments(t, db) == 2 })
		waitFor(t, "the position at 2", func() bool { return count(t, db, `SELECT last_uid FROM email_mailboxes`) == 2 })
		r.stop(t)
		if n := ms.bodies.Load(); n != 2 {
			t.Fatalf("%d bodies fetched in the first run; want 2", n)
		}

		ms.deliver(simple("c@example.com", "<r3@x>", "three", "three"))
		start(t, a, ms, runOptions{})
		waitFor(t, "the third mail", func() bool { return customerComments(t, db) == 3 })
		if n := ms.bodies.Load(); n != 3 {
			t.Errorf("%d bodies fetched in all; want 3: the restart fetched old mail again", n)
		}
		if n := count(t, db, `SELECT COUNT(*) FROM inbound_receipts WHERE provider = 'email'`); n != 3 {
			t.Errorf("%d receipts; want 3", n)
		}
	})
}

// TestIntakeConnectionDroppedMidFetch: the server goes away in the middle of a message
// body; intake reconnects by itself and takes every mail exactly once.
func TestIntakeConnectionDroppedMidFetch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		a := newApp(db)
		ms := newMailServer(t, serverOptions{})
		for i, from := range []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com"} {
			ms.deliver(simple(from, "<d"+string(rune('1'+i))+"@x>", "hello", strings.Repeat("long text ", 500)))
		}
		ms.dropAfter.Store(2) // cut inside the second body of the first fetch
		r := start(t, a, ms, runOptions{})
		waitFor(t, "four mails", func() bool { return customerComments(t, db) == 4 })
		waitFor(t, "the position at 4", func() bool { return count(t, db, `SELECT last_uid FROM email_mailboxes`) == 4 })
		if n := count(t, db, `SELECT COUNT(*) FROM comments`); n != 4 {
			t.Errorf("%d comments; want 4 (no duplicates)", n)
		}
		if n := count(t, db, `SELECT COUNT(*) FROM issues`); n != 4 {
			t.Errorf("%d issues; want 4", n)
		}
		if v := r.counter(t, "switchboard_email_connection_errors_total", nil); v < 1 {
			t.Errorf("connection errors %v; want the drop counted", v)
		}
		if ms.dropAfter.Load() != 0 {
			t.Error("the connection was never cut: the test tested nothing")
		}
	})
}

// TestIntakeUIDValidityChange: the mailbox is recreated (new UIDVALIDITY, UIDs from 1);
// intake reads it again from the start and takes only what it had not taken.
func TestIntakeUIDValidityChange(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		a := newApp(db)
		ms := newMailServer(t, serverOptions{})
		m1 := simple("a@example.com", "<v1@x>", "one", "one")
		m2 := simple("b@example.com", "<v2@x>", "two", "two")
		ms.deliver(m1)
		ms.deliver(m2)
		start(t, a, ms, runOptions{})
		waitFor(t, "two mails", func() bool { return customerComments(t, db) == 2 })
		waitFor(t, "the position at 2", func() bool { return count(t, db, `SELECT last_uid FROM email_mailboxes`) == 2 })
		oldValidity := count(t, db, `SELECT uid_validity FROM email_mailboxes`)

		// Restored from a backup, say: same mail, renumbered, plus one new.
		ms.recreateInbox()
		ms.deliver(m2)
		ms.deliver(m1)
		ms.deliver(simple("c@example.com", "<v3@x>", "three", "three"))
		ms.dropAll() // the server ends sessions on a deleted mailbox
		waitFor(t, "the new mail", func() bool { return customerComments(t, db) == 3 })
		waitFor(t, "the position at 3 under the new UIDVALIDITY", func() bool {
			return count(t, db, `SELECT last_uid FROM email_mailboxes`) == 3 &&
				count(t, db, `SELECT uid_validity FROM email_mailboxes`) != oldValidity
		})
		if n := count(t, db, `SELECT COUNT(*) FROM comments`); n != 3 {
			t.Errorf("%d comments; want 3 (the re-read took nothing twice)", n)
		}
	})
}

// TestIntakeQuarantine: unparseable mail is kept aside at once; mail whose intake keeps
// failing is kept aside after three tries; neither blocks the mail after it.
func TestIntakeQuarantine(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		a := newApp(db)
		ms := newMailServer(t, serverOptions{})
		flaky := &flakyIntake{next: a.issues, fail: map[string]bool{"<poison@x>": true}}
		ms.deliver([]byte("To: support@example.org\r\nSubject: who am I\r\nMessage-ID: <nosender@x>\r\n\r\nno From at all\r\n"))
		ms.deliver(simple("p@example.com", "<poison@x>", "poison", "intake always fails on this one"))
		ms.deliver(simple("q@example.com", "<after@x>", "after", "I come after the bad ones"))
		start(t, a, ms, runOptions{intake: flaky})
		waitFor(t, "the mail after the bad ones", func() bool { return customerComments(t, db) == 1 })
		waitFor(t, "the position at 3", func() bool { return count(t, db, `SELECT last_uid FROM email_mailboxes`) == 3 })

		rows, err := db.QueryContext(context.Background(), `SELECT uid, tries, message_id, error, length(raw) > 0 FROM email_quarantine ORDER BY uid`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var uid, tries int
			var id, msg string
			var hasRaw bool
			if err := rows.Scan(&uid, &tries, &id, &msg, &hasRaw); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%d %d %s %v", uid, tries, id, hasRaw))
			if msg == "" {
				t.Errorf("uid %d quarantined without a reason", uid)
			}
		}
		want := "1 1 <nosender@x> true\n2 3 <poison@x> true"
		if strings.Join(got, "\n") != want {
			t.Errorf("quarantine:\n%s\nwant\n%s", strings.Join(got, "\n"), want)
		}
		if n := flaky.calls.Load(); n != 4 {
			t.Errorf("intake called %d times; want 4 (three tries of the poison, one for the next)", n)
		}
		if n := count(t, db, `SELECT COUNT(*) FROM email_failures`); n != 0 {
			t.Errorf("%d failure rows left; want none", n)
		}
		if n := count(t, db, `SELECT COUNT(*) FROM email_messages WHERE message_id = '<poison@x>'`); n != 0 {
			t.Errorf("the quarantined mail is still stored as taken")
		}
	})
}

// TestIntakeIdleSeesAppend: with IDLE, a new mail is taken at once (no poll is due for a
// minute).
func TestIntakeIdleSeesAppend(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	a := newApp(db)
	ms := newMailServer(t, serverOptions{})
	start(t, a, ms, runOptions{idleRefresh: 10 * time.Minute})
	waitFor(t, "intake to be reading", func() bool { return count(t, db, `SELECT COUNT(*) FROM email_mailboxes`) == 1 })
	bodies := ms.bodies.Load()
	ms.deliver(simple("jane@example.com", "<idle@x>", "hello", "while you were idling"))
	waitFor(t, "the mail", func() bool { return customerComments(t, db) == 1 })
	if ms.bodies.Load() != bodies+1 {
		t.Errorf("%d bodies fetched; want 1", ms.bodies.Load()-bodies)
	}
}

// TestIntakePollsWithoutIdle: a server without IDLE is polled.
func TestIntakePollsWithoutIdle(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	a := newApp(db)
	ms := newMailServer(t, serverOptions{hideIdle: true})
	start(t, a, ms, runOptions{idleRefresh: 10 * time.Minute})
	waitFor(t, "intake to be reading", func() bool { return count(t, db, `SELECT COUNT(*) FROM email_mailboxes`) == 1 })
	ms.deliver(simple("jane@example.com", "<poll@x>", "hello", "polled"))
	waitFor(t, "the mail", func() bool { return customerComments(t, db) == 1 })
}

// TestIntakeReconnects: the server refuses connections for a while, then comes back;
// intake recovers by itself.
func TestIntakeReconnects(t *testing.T) {
	db := storetest.Open(t, store.SQLite)
	a := newApp(db)
	ms := newMailServer(t, serverOptions{})
	ms.down.Store(true)
	r := start(t, a, ms, runOptions{})
	waitFor(t, "a few failed attempts", func() bool {
		return r.counter(t, "switchboard_email_connection_errors_total", nil) >= 3
	})
	ms.deliver(simple("jane@example.com", "<back@x>", "hello", "are you there?"))
	ms.down.Store(false)
	waitFor(t, "the mail after the outage", func() bool { return customerComments(t, db) == 1 })
}
