package email

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-message/mail"
)

func readEML(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

type wantAtt struct {
	name, typ, cid string
	inline         bool
	size           int64
}

func TestParseShapesAndCharsets(t *testing.T) {
	tests := []struct {
		file     string
		id       string
		subject  string
		text     string // exact, after trimming trailing newlines
		fromHTML bool
		atts     []wantAtt
	}{
		{file: "plain_utf8_qp.eml", id: "<plain-utf8@example.com>", subject: "Bestellung",
			text: "Hallo, meine Bestellung ist nicht angekommen. Grüße aus Köln — Jane"},
		{file: "latin1_qp.eml", id: "<latin1@example.com>", subject: "Problème d'accès",
			text: "J'ai oublié mon mot de passe, déjà essayé deux fois."},
		{file: "windows1252_base64.eml", id: "<cp1252@example.com>", subject: "Invoice",
			text: "Price is €40 — “quoted” and naïve."},
		{file: "undeclared_8bit.eml", id: "<undeclared@example.com>", subject: "Undeclared",
			text: "Café crème, s'il vous plaît."},
		{file: "alternative.eml", id: "<alt@example.com>", subject: "Where is my parcel?",
			text: "Where is my parcel? Order #1234."},
		{file: "html_only.eml", id: "<html-only@example.com>", subject: "App crash", fromHTML: true,
			text: "Hello team,\n\nThe app crashes when I click Settings <https://example.com/settings> & then Save.\n\n- Version 2.3\n- Android 14\n\nThanks,\nJane"},
		{file: "mixed_attachment.eml", id: "<mixed@example.com>", subject: "Invoice attached",
			text: "Please find the invoice attached.",
			atts: []wantAtt{
				{name: "invoice.pdf", typ: "application/pdf", size: 286},
				{name: "schön.png", typ: "image/png", size: 70},
				{name: "page.html", typ: "text/html", size: 39}, // the folders in its name are gone
			}},
		{file: "related_inline.eml", id: "<related@example.com>", subject: "Screenshot", fromHTML: true,
			text: "See the error below:\n\nJane", // the inline image is not text
			atts: []wantAtt{{name: "shot.png", typ: "image/png", cid: "shot@example.com", inline: true, size: 70}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m, err := Parse(readEML(t, tt.file), ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if m.MessageID != tt.id || m.Subject != tt.subject || m.From != "jane@example.com" || m.FromName != "Jane Doe" {
				t.Errorf("header: id %q subject %q from %q name %q; want %q %q jane@example.com \"Jane Doe\"",
					m.MessageID, m.Subject, m.From, m.FromName, tt.id, tt.subject)
			}
			if got := strings.TrimRight(m.Text, "\n"); got != tt.text {
				t.Errorf("text:\n%q\nwant\n%q", got, tt.text)
			}
			if m.FromHTML != tt.fromHTML {
				t.Errorf("FromHTML %v; want %v", m.FromHTML, tt.fromHTML)
			}
			if len(m.Attachments) != len(tt.atts) {
				t.Fatalf("%d attachments; want %d", len(m.Attachments), len(tt.atts))
			}
			for i, w := range tt.atts {
				a := m.Attachments[i]
				if a.Filename != w.name || a.ContentType != w.typ || a.ContentID != w.cid || a.Inline != w.inline || a.Size != w.size {
					t.Errorf("attachment %d: %+v; want %+v", i, a, w)
				}
				if int64(len(a.Data)) != a.Size {
					t.Errorf("attachment %d: %d bytes kept; want all %d", i, len(a.Data), a.Size)
				}
			}
		})
	}
}

func TestParseAttachmentLimit(t *testing.T) {
	m, err := Parse(readEML(t, "mixed_attachment.eml"), ParseOptions{MaxAttachment: 100})
	if err != nil {
		t.Fatal(err)
	}
	pdf, png := m.Attachments[0], m.Attachments[1]
	if pdf.Data != nil || pdf.Size != 286 {
		t.Errorf("pdf over the limit: %d bytes kept, size %d; want none kept, size 286", len(pdf.Data), pdf.Size)
	}
	if png.Data == nil || png.Size != 70 {
		t.Errorf("png under the limit: kept %v, size %d; want kept, 70", png.Data != nil, png.Size)
	}
}

func TestParseThreadingHeaders(t *testing.T) {
	m, err := Parse(readEML(t, "reply_gmail.eml"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.InReplyTo != "<alt@example.com>" || len(m.References) != 2 || m.References[0] != "<first@example.com>" || m.References[1] != "<alt@example.com>" {
		t.Errorf("In-Reply-To %q References %q", m.InReplyTo, m.References)
	}
}

func TestParseSynthesizesMessageID(t *testing.T) {
	raw := readEML(t, "no_message_id.eml")
	a, err := Parse(raw, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Parse(bytes.Clone(raw), ParseOptions{})
	c, _ := Parse(append(bytes.Clone(raw), "more\r\n"...), ParseOptions{})
	if !a.SynthesizedID || !strings.HasSuffix(a.MessageID, "@switchboard.invalid>") {
		t.Fatalf("id %q synthesized %v", a.MessageID, a.SynthesizedID)
	}
	if a.MessageID != b.MessageID || a.MessageID == c.MessageID {
		t.Errorf("ids %q %q %q: want the same for the same bytes, another for other bytes", a.MessageID, b.MessageID, c.MessageID)
	}
}

func TestParseRefusals(t *testing.T) {
	for name, raw := range map[string]string{
		"no sender":     "To: a@example.com\r\nSubject: x\r\n\r\nbody\r\n",
		"bad base64":    "From: a@example.com\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!! not base64 ****\r\n",
		"deep nesting":  "From: a@example.com\r\n" + strings.Repeat("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n", 40),
		"header broken": "From a@example.com\r\nno colon here\r\n\r\nbody",
	} {
		t.Run(name, func(t *testing.T) {
			if m, err := Parse([]byte(raw), ParseOptions{}); err == nil {
				t.Fatalf("parsed: %+v; want ErrUnparseable", m)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	const base = "From: Jane <jane@example.com>\r\nTo: support@example.org\r\nSubject: hi\r\n"
	tests := []struct {
		name, extra, want string
	}{
		{"person", "", ""},
		{"auto-submitted no", "Auto-Submitted: no\r\n", ""},
		{"auto-replied", "Auto-Submitted: auto-replied\r\n", AutoSubmitted},
		{"auto-generated with comment", "Auto-Submitted: auto-generated; foo=bar\r\n", AutoSubmitted},
		{"precedence bulk", "Precedence: bulk\r\n", AutoPrecedence},
		{"precedence junk", "Precedence: junk\r\n", AutoPrecedence},
		{"precedence list", "Precedence: List\r\n", AutoPrecedence},
		{"precedence first-class", "Precedence: first-class\r\n", ""},
		{"x-autoreply", "X-Autoreply: yes\r\n", AutoReplyHdr},
		{"x-autorespond", "X-Autorespond: Out of office\r\n", AutoRespondHdr},
		{"list-id", "List-Id: <news.example.com>\r\n", AutoList},
		{"null return path", "Return-Path: <>\r\n", AutoNullSender},
		{"empty return path", "Return-Path: \r\n", AutoNullSender},
		{"real return path", "Return-Path: <jane@example.com>\r\n", ""},
		{"report", "Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n", AutoReport},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ReadHeader([]byte(base + tt.extra + "\r\nbody\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			if got := Classify(h, "support@example.org"); got != tt.want {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
	for _, from := range []string{"MAILER-DAEMON@mx.example.org", "Mail System <postmaster@example.com>", "Support <SUPPORT@example.org>"} {
		h, _ := ReadHeader([]byte("From: " + from + "\r\n\r\nx"))
		if got := Classify(h, "support@example.org"); got == "" {
			t.Errorf("From %s: not automatic; want it ignored", from)
		}
	}
	h, _ := ReadHeader(readEML(t, "bounce.eml"))
	if got := Classify(h); got == "" {
		t.Error("bounce.eml: not automatic")
	}
	var empty mail.Header
	if got := Classify(empty); got != "" {
		t.Errorf("empty header: %q", got)
	}
}
