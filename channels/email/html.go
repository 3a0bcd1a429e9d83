package email

import (
	"strconv"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// htmlToText turns an HTML mail into readable plain text: paragraphs and line breaks
// kept, lists as "- " items, links as "text <url>", blockquotes as "> " quotes (so the
// reply splitter sees quoted history as in a plain-text mail), tables row by row. Head,
// style, script and inline images (cid:) leave nothing. Entities are decoded. It streams
// tokens, never builds a tree, and never fails: any input gives some text.
func htmlToText(src string) string {
	z := html.NewTokenizer(strings.NewReader(src))
	z.SetMaxBuf(1 << 20) // a single token larger than this is dropped, not buffered
	w := &textWriter{}
	skip := 0       // depth inside elements whose content is not text
	var lists []int // per open list: 0 for <ul>, else the next number of an <ol>
	var hrefs []string
	var linkText []int // length of w's output when each open <a> started
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return strings.Trim(w.out.String(), "\n")
		case html.TextToken:
			if skip == 0 {
				w.text(string(z.Text()))
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			a := atom.Lookup(name)
			attrs := map[string]string{}
			for hasAttr {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				switch string(k) {
				case "href", "src", "alt", "start":
					attrs[string(k)] = string(v)
				}
			}
			if skipped[a] {
				if tt == html.StartTagToken && a != atom.Img {
					skip++
				}
				continue
			}
			if skip > 0 {
				continue
			}
			switch a {
			case atom.Br:
				w.newline()
			case atom.Hr:
				w.block()
				w.text("________________________________")
				w.block()
			case atom.P, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Table:
				w.paragraph()
			case atom.Blockquote:
				w.block()
				w.quote++
			case atom.Pre:
				w.block()
				w.pre++
			case atom.Ul:
				w.block()
				lists = append(lists, 0)
			case atom.Ol:
				w.block()
				n := 1
				if s, err := strconv.Atoi(attrs["start"]); err == nil && s > 0 && s < 1e6 {
					n = s
				}
				lists = append(lists, n)
			case atom.Li:
				w.block()
				indent := strings.Repeat("  ", max(len(lists)-1, 0))
				if len(lists) > 0 && lists[len(lists)-1] > 0 {
					w.raw(indent + strconv.Itoa(lists[len(lists)-1]) + ". ")
					lists[len(lists)-1]++
				} else {
					w.raw(indent + "- ")
				}
			case atom.Tr:
				w.block()
			case atom.Td, atom.Th:
				w.cell()
			case atom.A:
				if tt == html.StartTagToken {
					hrefs = append(hrefs, attrs["href"])
					linkText = append(linkText, w.mark())
				}
			case atom.Img:
				// Inline images (cid:) are shown as attachments, not as text; other
				// images say what they are only when their author said so.
				if alt := strings.TrimSpace(attrs["alt"]); alt != "" && !strings.HasPrefix(strings.ToLower(attrs["src"]), "cid:") {
					w.text("[" + alt + "]")
				}
			default:
				if blockElements[a] {
					w.block()
				}
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			if skipped[a] {
				if skip > 0 && a != atom.Img {
					skip--
				}
				continue
			}
			if skip > 0 {
				continue
			}
			switch a {
			case atom.P, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Table:
				w.paragraph()
			case atom.Blockquote:
				w.block()
				if w.quote > 0 {
					w.quote--
				}
			case atom.Pre:
				w.block()
				if w.pre > 0 {
					w.pre--
				}
			case atom.Ul, atom.Ol:
				w.block()
				if len(lists) > 0 {
					lists = lists[:len(lists)-1]
				}
			case atom.A:
				if len(hrefs) > 0 {
					href, start := hrefs[len(hrefs)-1], linkText[len(linkText)-1]
					hrefs, linkText = hrefs[:len(hrefs)-1], linkText[:len(linkText)-1]
					w.link(href, start)
				}
			default:
				if blockElements[a] {
					w.block()
				}
			}
		}
		if w.out.Len() > maxTextBytes {
			return strings.Trim(w.out.String(), "\n")
		}
	}
}

// skipped elements contribute no text.
var skipped = map[atom.Atom]bool{
	atom.Head: true, atom.Title: true, atom.Style: true, atom.Script: true, atom.Template: true,
	atom.Noscript: true, atom.Object: true, atom.Svg: true, atom.Math: true, atom.Select: true,
	atom.Iframe: true,
}

// blockElements start and end on lines of their own.
var blockElements = map[atom.Atom]bool{
	atom.Div: true, atom.Section: true, atom.Article: true, atom.Header: true, atom.Footer: true,
	atom.Address: true, atom.Aside: true, atom.Nav: true, atom.Main: true, atom.Center: true,
	atom.Form: true, atom.Fieldset: true, atom.Dl: true, atom.Dt: true, atom.Dd: true,
	atom.Figure: true, atom.Figcaption: true, atom.Caption: true, atom.Thead: true,
	atom.Tbody: true, atom.Tfoot: true, atom.Details: true, atom.Summary: true,
}

// textWriter assembles plain text. Whitespace is collapsed outside <pre>; lines inside
// blockquotes start with "> " once per level. Line breaks are owed, not written, until
// more text comes, so the text never ends in blank lines.
type textWriter struct {
	out       strings.Builder
	open      bool // the last line of out is still being written
	bol       bool // nothing but its quote prefix or bullet on the open line yet
	breaks    int  // owed before the next text: 1 ends the line, 2 also leaves a blank one
	space     bool // a space is owed before the next word
	quote     int  // blockquote depth
	prevQuote int  // quote depth of the last line written
	pre       int
}

// mark is a position in the output, for links to compare their text with their href.
func (w *textWriter) mark() int { return w.out.Len() }

func (w *textWriter) begin() {
	if w.out.Len() > 0 {
		w.out.WriteByte('\n')
		if w.breaks >= 2 {
			w.out.WriteString(strings.TrimRight(strings.Repeat("> ", min(w.prevQuote, w.quote)), " "))
			w.out.WriteByte('\n')
		}
	}
	w.out.WriteString(strings.Repeat("> ", w.quote))
	w.open, w.bol, w.breaks, w.space = true, true, 0, false
}

// word writes a word, after the owed space.
func (w *textWriter) word(s string) {
	if !w.open {
		w.begin()
	}
	if w.space && !w.bol {
		w.out.WriteByte(' ')
	}
	w.out.WriteString(s)
	w.bol, w.space = false, false
}

// raw writes a bullet or a cell separator.
func (w *textWriter) raw(s string) {
	if !w.open {
		w.begin()
	}
	w.out.WriteString(s)
	w.space = false
}

// text writes character data.
func (w *textWriter) text(s string) {
	if w.pre > 0 {
		for i, part := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
			if i > 0 {
				w.newline()
			}
			if part != "" {
				if !w.open {
					w.begin()
				}
				w.out.WriteString(part)
				w.bol = false
			}
		}
		return
	}
	if s != "" && isSpace(s[0]) {
		w.space = true
	}
	for i, f := range strings.Fields(s) {
		if i > 0 {
			w.space = true
		}
		w.word(f)
	}
	if s != "" && isSpace(s[len(s)-1]) {
		w.space = true
	}
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f' }

// newline ends the line (a <br>); consecutive ones leave a blank line.
func (w *textWriter) newline() {
	if w.open {
		w.open, w.prevQuote, w.breaks = false, w.quote, 1
	} else if w.out.Len() > 0 {
		w.breaks = min(w.breaks+1, 2)
	}
	w.space = false
}

// block ends the current line, if any.
func (w *textWriter) block() {
	if w.open {
		w.open, w.prevQuote = false, w.quote
		w.breaks = max(w.breaks, 1)
	}
	w.space = false
}

// paragraph ends the current line and owes a blank line.
func (w *textWriter) paragraph() {
	w.block()
	if w.out.Len() > 0 {
		w.breaks = 2
	}
}

// cell separates table cells on one line.
func (w *textWriter) cell() {
	if w.open && !w.bol {
		w.out.WriteString("  ")
	}
	w.space = false
}

// link appends " <href>" after a link's text when the href says more than the text.
func (w *textWriter) link(href string, start int) {
	href = strings.TrimSpace(href)
	lower := strings.ToLower(href)
	if !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") && !strings.HasPrefix(lower, "mailto:") {
		return
	}
	text := ""
	if all := w.out.String(); start <= len(all) {
		text = strings.TrimSpace(all[start:])
	}
	shown := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(lower, "mailto:"), "https://"), "http://"), "/")
	if text != "" && strings.Contains(strings.ToLower(text), shown) {
		return
	}
	if text != "" {
		w.space = true
		w.word("<" + href + ">")
		return
	}
	w.word(href)
}
