package email

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse feeds arbitrary bytes to the MIME reader, the automatic-mail rules and the
// reply splitter: they must never panic, always give valid UTF-8, and keep the new text a
// prefix of the whole. Memory is bounded by the input (go test -fuzz caps inputs, and the
// reader caps headers, parts, depth and text). Seeds: every testdata/*.eml and the
// corpus in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.eml")
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte("From: a@b\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: multipart/alternative; boundary=y\r\n\r\n--y\r\n\r\nt\r\n--y--\r\n--x--\r\n"))
	f.Add([]byte("From: a@b\r\nContent-Type: text/html; charset=x-unknown\r\n\r\n<blockquote><blockquote><ol start=99999999999><li>x"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, herr := ReadHeader(raw)
		if herr == nil {
			_ = Classify(h, "support@example.org")
		}
		m, err := Parse(raw, ParseOptions{MaxAttachment: 1 << 10, Truncated: len(raw)%2 == 0})
		if err != nil {
			return
		}
		for name, s := range map[string]string{"text": m.Text, "subject": m.Subject, "name": m.FromName, "id": m.MessageID} {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
				t.Fatalf("%s is not clean UTF-8: %q", name, s)
			}
		}
		if len(m.Text) > maxTextBytes+len(raw)*4+1024 {
			t.Fatalf("text of %d bytes from %d bytes of mail", len(m.Text), len(raw))
		}
		for _, a := range m.Attachments {
			if a.Data != nil && int64(len(a.Data)) != a.Size {
				t.Fatalf("attachment keeps %d of %d bytes", len(a.Data), a.Size)
			}
			if strings.ContainsAny(a.Filename, "/\x00") || a.Filename == "" {
				t.Fatalf("unsafe filename %q", a.Filename)
			}
		}
		body, _ := SplitReply(m.Text)
		if !strings.HasPrefix(m.Text, body) {
			t.Fatalf("new text %q is not a prefix of %q", body, m.Text)
		}
	})
}

// FuzzHTMLToText checks the HTML converter alone: no panic, valid UTF-8, bounded output.
func FuzzHTMLToText(f *testing.F) {
	f.Add("<p>a<br>b</p><ul><li>x</li></ul><a href='https://e.example'>e</a>")
	f.Add("<blockquote><pre>x\n y</pre></blockquote><table><tr><td>1<td>2</table>")
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		out := htmlToText(s)
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 from %q", s)
		}
		if len(out) > 8*len(s)+1024 {
			t.Fatalf("%d bytes of text from %d bytes of HTML", len(out), len(s))
		}
	})
}
