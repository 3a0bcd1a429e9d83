package email

import (
	"strings"
	"testing"
)

func TestSplitReply(t *testing.T) {
	tests := []struct {
		name, text, want string
		cut              bool
	}{
		{"no history", "Just a question.\n\nThanks", "Just a question.\n\nThanks", false},
		{"signature", "It works now.\n\n-- \nJane Doe\nACME", "It works now.", true},
		{"signature without space", "It works now.\n--\nJane", "It works now.", true},
		{"gmail attribution", "Yes please.\n\nOn Tue, Mar 3, 2026 at 10:00 AM Support <s@example.org> wrote:\n> Shall we?\n", "Yes please.", true},
		{"wrapped attribution", "Yes.\n\nOn Tue, Mar 3, 2026 at 10:00 AM Support Team <support@example.org>\nwrote:\n\n> Shall we?", "Yes.", true},
		{"french", "Oui.\n\nLe mar. 3 mars 2026 à 10:00, Support <s@example.org> a écrit :\n> Bonjour", "Oui.", true},
		{"german", "Ja.\n\nAm 03.03.2026 um 10:00 schrieb Support <s@example.org>:\n> Hallo", "Ja.", true},
		{"original message", "See below.\n\n-----Original Message-----\nFrom: Support\nSent: today\n", "See below.", true},
		{"outlook block", "Correct now.\n\n________________________________\nFrom: Support <s@example.org>\nSent: Tuesday, March 3, 2026 10:00 AM\nTo: Jane\nSubject: Invoice\n\nOld text", "Correct now.", true},
		{"outlook with date", "Ok.\n\nFrom: Support <s@example.org>\nDate: Tuesday, March 3, 2026\nSubject: Invoice\n", "Ok.", true},
		{"trailing quote", "Agreed.\n\n> Shall we meet?\n> At 10?\n", "Agreed.", true},
		{"inline answers kept", "> Which version?\n2.3\n> Which phone?\nPixel 8\n", "> Which version?\n2.3\n> Which phone?\nPixel 8", false},
		{"all quote keeps all", "> only a quote\n", "> only a quote", false},
		{"signature only keeps all", "-- \nJane", "-- \nJane", false},
		{"from line alone is text", "From: my old phone I could call.\nNow nothing.", "From: my old phone I could call.\nNow nothing.", false},
		{"on without wrote", "On Monday it broke.\nPlease help.", "On Monday it broke.\nPlease help.", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, cut := SplitReply(tt.text)
			if got != tt.want || cut != tt.cut {
				t.Errorf("got %q (cut %v); want %q (cut %v)", got, cut, tt.want, tt.cut)
			}
			if !strings.HasPrefix(tt.text, got) {
				t.Errorf("the new text %q is not a prefix of the mail: bytes were changed", got)
			}
		})
	}
}

func TestSplitReplyFiles(t *testing.T) {
	for file, want := range map[string]string{
		"reply_gmail.eml":   "It arrived today, thank you!",
		"reply_outlook.eml": "Thanks, the amount is correct now.\n\nJane",
	} {
		m, err := Parse(readEML(t, file), ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := SplitReply(m.Text); got != want {
			t.Errorf("%s: %q; want %q", file, got, want)
		}
	}
}

func TestHTMLToText(t *testing.T) {
	tests := []struct{ name, html, want string }{
		{"paragraphs and breaks", "<p>One<br>two</p><p>three</p>", "One\ntwo\n\nthree"},
		{"entities and spaces", "<div>a&nbsp;&amp;&lt;b&gt;   c\n d</div>", "a &<b> c d"},
		{"ordered list", "<ol><li>first</li><li>second</li></ol>", "1. first\n2. second"},
		{"link with other text", `<a href="https://x.example/a">here</a>`, "here <https://x.example/a>"},
		{"link showing itself", `<a href="https://x.example/">x.example</a>`, "x.example"},
		{"javascript link", `<a href="javascript:alert(1)">click</a>`, "click"},
		{"blockquote", "<p>Yes.</p><div>On Mon, Jane wrote:</div><blockquote><p>Shall we?</p><p>Ok?</p></blockquote>", "Yes.\n\nOn Mon, Jane wrote:\n\n> Shall we?\n>\n> Ok?"},
		{"skipped", "<head><title>t</title><style>x{}</style></head><script>evil()</script><p>shown</p>", "shown"},
		{"cid image", `<p>see <img src="cid:a@b" alt="logo"> and <img src="https://x/y.png" alt="chart"></p>`, "see and [chart]"},
		{"table", "<table><tr><td>Order</td><td>1234</td></tr><tr><td>Total</td><td>€40</td></tr></table>", "Order  1234\nTotal  €40"},
		{"pre", "<pre>a  b\n  c</pre>", "a  b\n  c"},
		{"broken", "<p>unclosed <b>bold <i>text", "unclosed bold text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := htmlToText(tt.html); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}
