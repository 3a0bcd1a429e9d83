package email_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

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
		if v := r.counter(t, "switchboard_email_received_total", map[string]string{"outcome": "taken"}); v != float64(len(files)) {
			t.Errorf("taken counter %v; want %d", v, len(files))
		}
	})
}
