package email

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	netmail "net/mail"
	"path"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // registers every charset go-message knows (ISO-8859-*, Windows-125x, …)
	"github.com/emersion/go-message/mail"
	"golang.org/x/text/encoding/charmap"
)

// Message is a parsed customer mail.
type Message struct {
	// MessageID is the Message-ID in angle brackets, "<id@host>", as issues' external
	// ids and threading compare it. Synthesized from a hash of the raw message when the
	// mail has none (SynthesizedID).
	MessageID     string
	SynthesizedID bool
	From          string // the sender's address
	FromName      string // the sender's display name, decoded
	Subject       string // decoded
	Date          time.Time
	InReplyTo     string   // "<id>", the first of In-Reply-To
	References    []string // "<id>" each, oldest first
	// Text is the whole readable text, decoded to UTF-8 with line breaks as "\n": the
	// text/plain alternative when there is one, else the HTML converted to text.
	Text string
	// FromHTML says Text was converted from HTML.
	FromHTML    bool
	Attachments []*Attachment
}

// Attachment is a non-text part of a mail: a file, or an image the HTML shows inline.
type Attachment struct {
	Filename    string
	ContentType string // as declared, lower-cased, without parameters
	ContentID   string // without angle brackets; set for inline images
	Inline      bool   // Content-Disposition inline with a Content-ID, or a multipart/related resource
	Size        int64  // decoded size in bytes
	Data        []byte // nil when Size exceeds the limit
}

// ParseOptions bounds what Parse keeps.
type ParseOptions struct {
	// MaxAttachment is the largest attachment whose bytes are kept. Larger ones are
	// recorded with their name, type and size only. Default 10 MiB.
	MaxAttachment int64
	// Truncated says the raw message was cut at a size limit: a part that ends early
	// ends the parse instead of failing it.
	Truncated bool
}

// ErrUnparseable wraps every reason a mail cannot be turned into a Message. Such mail is
// quarantined at once: trying again would give the same answer.
var ErrUnparseable = errors.New("email: cannot parse the message")

// Limits of the MIME walk: deeper or wider structures are not mail a person wrote.
const (
	maxDepth       = 16
	maxParts       = 256
	maxHeaderBytes = 256 << 10
	maxTextBytes   = 4 << 20 // decoded text kept per message
)

func unparseable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnparseable, fmt.Sprintf(format, args...))
}

// ReadHeader parses only the top-level header of a raw message.
func ReadHeader(raw []byte) (mail.Header, error) {
	e, err := message.ReadWithOptions(bytes.NewReader(raw), &message.ReadOptions{MaxHeaderBytes: maxHeaderBytes})
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return mail.Header{}, unparseable("header: %v", err)
	}
	return mail.Header{Header: e.Header}, nil
}

// Parse turns a raw RFC 5322 message into a Message. It never panics; every error wraps
// ErrUnparseable. Memory stays proportional to len(raw).
func Parse(raw []byte, opts ParseOptions) (*Message, error) {
	if opts.MaxAttachment <= 0 {
		opts.MaxAttachment = DefaultMaxAttachment
	}
	e, err := message.ReadWithOptions(bytes.NewReader(raw), &message.ReadOptions{MaxHeaderBytes: maxHeaderBytes})
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, unparseable("header: %v", err)
	}
	h := mail.Header{Header: e.Header}
	m := &Message{}
	if err := m.readHeader(h, raw); err != nil {
		return nil, err
	}
	p := &parser{opts: opts}
	text, isHTML, err := p.walk(e, 0)
	if err != nil {
		return nil, err
	}
	m.Text, m.FromHTML, m.Attachments = text, isHTML, p.atts
	return m, nil
}

// readHeader fills the envelope fields.
func (m *Message) readHeader(h mail.Header, raw []byte) error {
	from, name, err := sender(h)
	if err != nil {
		return err
	}
	m.From, m.FromName = from, name
	m.Subject = headerText(h, "Subject")
	if d, err := h.Date(); err == nil {
		m.Date = d
	}
	m.MessageID = msgID(h, "Message-Id")
	if m.MessageID == "" {
		sum := sha256.Sum256(raw)
		m.MessageID = "<" + hex.EncodeToString(sum[:16]) + "@switchboard.invalid>"
		m.SynthesizedID = true
	}
	if ids := msgIDs(h, "In-Reply-To"); len(ids) > 0 {
		m.InReplyTo = ids[0]
	}
	m.References = msgIDs(h, "References")
	if len(m.References) > 50 {
		m.References = m.References[len(m.References)-50:] // the nearest ancestors are last
	}
	return nil
}

// headerText decodes an unstructured header field (RFC 2047 words in any charset),
// falling back to the raw value, always valid UTF-8, without line breaks.
func headerText(h mail.Header, key string) string {
	v, err := h.Text(key)
	if err != nil {
		v = h.Get(key)
	}
	v = strings.Join(strings.Fields(toUTF8([]byte(v), "")), " ")
	if len(v) > 998 {
		v = truncateUTF8(v, 998)
	}
	return v
}

var addrRE = regexp.MustCompile(`[^\s<>"'(),;:]+@[^\s<>"'(),;:]+`)

// sender is the From address. A mail without one cannot become an issue: there is no
// customer to attach it to.
func sender(h mail.Header) (addr, name string, err error) {
	if list, err := h.AddressList("From"); err == nil && len(list) > 0 && list[0].Address != "" {
		return strings.TrimSpace(list[0].Address), strings.TrimSpace(list[0].Name), nil
	}
	raw := h.Get("From")
	if a, err := netmail.ParseAddress(raw); err == nil {
		return a.Address, a.Name, nil
	}
	if a := addrRE.FindString(raw); a != "" && len(a) <= 254 {
		name := strings.TrimSpace(strings.Trim(strings.Replace(raw, a, "", 1), " <>\"'\t"))
		if dec, err := (&mime.WordDecoder{CharsetReader: message.CharsetReader}).DecodeHeader(name); err == nil {
			name = dec
		}
		return a, toUTF8([]byte(name), ""), nil
	}
	return "", "", unparseable("no sender address in From: %q", truncateUTF8(toUTF8([]byte(raw), ""), 200))
}

// msgID reads one message id, in angle brackets, tolerating ids that do not follow the
// grammar (they are still someone's idea of an id, and threading compares strings).
func msgID(h mail.Header, key string) string {
	if id, err := h.MessageID(); key == "Message-Id" && err == nil && usableID(id) {
		return "<" + id + ">"
	}
	ids := msgIDs(h, key)
	if len(ids) > 0 {
		return ids[0]
	}
	return ""
}

// msgIDs reads a list of message ids, each in angle brackets.
func msgIDs(h mail.Header, key string) []string {
	if ids, err := h.MsgIDList(key); err == nil && len(ids) > 0 {
		out := make([]string, 0, len(ids))
		for _, id := range ids {
			if usableID(id) {
				out = append(out, "<"+id+">")
			}
		}
		return out
	}
	// Loose fallback: anything between angle brackets, or the bare value.
	raw := strings.TrimSpace(h.Get(key))
	if raw == "" {
		return nil
	}
	var out []string
	for _, f := range strings.Fields(raw) {
		f = strings.Trim(f, "<>,")
		if usableID(f) {
			out = append(out, "<"+f+">")
		}
	}
	return out
}

// usableID reports whether a message id can be stored and compared: text of at most 500
// bytes without control characters (a NUL cannot even be stored in PostgreSQL). Another
// id is synthesized for a message whose own is not usable.
func usableID(id string) bool {
	return id != "" && len(id) <= 500 && utf8.ValidString(id) &&
		!strings.ContainsFunc(id, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) })
}

type parser struct {
	opts  ParseOptions
	atts  []*Attachment
	parts int
	text  int // decoded text bytes kept so far
}

// mediaType is the lower-cased media type of a header, leniently: a malformed parameter
// list still names the type.
func mediaType(h message.Header) (string, map[string]string) {
	v := h.Get("Content-Type")
	if v == "" {
		return "text/plain", map[string]string{}
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil && mt == "" {
		mt, _, _ = strings.Cut(v, ";")
	}
	if params == nil {
		params = map[string]string{}
	}
	return strings.ToLower(strings.TrimSpace(mt)), params
}

// disposition is the lower-cased Content-Disposition and its filename.
func disposition(h message.Header) (disp, filename string) {
	v := h.Get("Content-Disposition")
	if v == "" {
		return "", ""
	}
	d, params, err := mime.ParseMediaType(v)
	if err != nil && d == "" {
		d, _, _ = strings.Cut(v, ";")
	}
	filename = params["filename"]
	return strings.ToLower(strings.TrimSpace(d)), filename
}

// walk returns the readable text of an entity and whether it came from HTML; files and
// inline resources it meets go to p.atts.
func (p *parser) walk(e *message.Entity, depth int) (string, bool, error) {
	p.parts++
	if p.parts > maxParts {
		return "", false, unparseable("more than %d MIME parts", maxParts)
	}
	if depth > maxDepth {
		return "", false, unparseable("MIME parts nested deeper than %d", maxDepth)
	}
	mt, params := mediaType(e.Header)
	if strings.HasPrefix(mt, "multipart/") {
		return p.multipart(e, mt, depth)
	}
	disp, filename := disposition(e.Header)
	if filename == "" {
		filename = params["name"]
	}
	isText := mt == "text/plain" || mt == "text/html"
	if disp == "attachment" || !isText || (filename != "" && disp != "inline") {
		return "", false, p.attach(e, mt, filename, disp, false)
	}
	b, err := p.read(e.Body, maxTextBytes-p.text)
	if err != nil {
		return "", false, err
	}
	p.text += len(b)
	text := toUTF8(b, params["charset"])
	if mt == "text/html" {
		return htmlToText(text), true, nil
	}
	return normalizeNewlines(text), false, nil
}

func (p *parser) multipart(e *message.Entity, mt string, depth int) (string, bool, error) {
	mr := e.MultipartReader()
	if mr == nil {
		return "", false, nil
	}
	type result struct {
		text   string
		isHTML bool
	}
	var results []result
	for i := 0; ; i++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			if p.lenient(err) || errors.Is(err, io.ErrUnexpectedEOF) {
				break // a missing closing boundary: keep what came before
			}
			return "", false, unparseable("multipart: %v", err)
		}
		if mt == "multipart/related" && i > 0 {
			// Resources of the root part (images the HTML shows by cid:).
			pmt, pparams := mediaType(part.Header)
			if !strings.HasPrefix(pmt, "multipart/") {
				_, filename := disposition(part.Header)
				if filename == "" {
					filename = pparams["name"]
				}
				if err := p.attach(part, pmt, filename, "inline", true); err != nil {
					return "", false, err
				}
				continue
			}
		}
		text, isHTML, err := p.walk(part, depth+1)
		if err != nil {
			return "", false, err
		}
		results = append(results, result{text, isHTML})
	}
	switch mt {
	case "multipart/alternative":
		// Prefer the plain text a person's mail program wrote; else the HTML as text.
		for _, r := range results {
			if !r.isHTML && strings.TrimSpace(r.text) != "" {
				return r.text, false, nil
			}
		}
		for i := len(results) - 1; i >= 0; i-- {
			if strings.TrimSpace(results[i].text) != "" {
				return results[i].text, results[i].isHTML, nil
			}
		}
		return "", false, nil
	case "multipart/related":
		if len(results) > 0 {
			return results[0].text, results[0].isHTML, nil
		}
		return "", false, nil
	default: // mixed, signed, digest, unknown: every inline text part, in order
		var texts []string
		isHTML := false
		for _, r := range results {
			if t := strings.Trim(r.text, "\n"); strings.TrimSpace(t) != "" {
				texts = append(texts, t)
				isHTML = isHTML || r.isHTML
			}
		}
		return strings.Join(texts, "\n\n"), isHTML, nil
	}
}

// lenient says whether a read error is the expected end of a truncated message.
func (p *parser) lenient(err error) bool {
	return p.opts.Truncated && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF))
}

// read reads a text part's decoded body, up to limit bytes (the rest is drained).
func (p *parser) read(r io.Reader, limit int) ([]byte, error) {
	if limit < 0 {
		limit = 0
	}
	var buf bytes.Buffer
	_, err := io.Copy(&buf, io.LimitReader(r, int64(limit)))
	if err == nil {
		_, err = io.Copy(io.Discard, r)
	}
	if err != nil && !p.lenient(err) {
		return nil, unparseable("decoding a text part: %v", err)
	}
	return buf.Bytes(), nil
}

// attach records a file part, keeping its bytes when they fit the limit.
func (p *parser) attach(e *message.Entity, mt, filename, disp string, related bool) error {
	a := &Attachment{ContentType: mt}
	if cid := strings.Trim(strings.TrimSpace(e.Header.Get("Content-Id")), "<>"); cid != "" && len(cid) <= 500 {
		a.ContentID = cid
	}
	a.Inline = related || (disp == "inline" && a.ContentID != "")
	if filename != "" {
		if dec, err := (&mime.WordDecoder{CharsetReader: message.CharsetReader}).DecodeHeader(filename); err == nil {
			filename = dec
		}
	}
	a.Filename = safeFilename(toUTF8([]byte(filename), ""), mt, len(p.atts)+1)
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(e.Body, p.opts.MaxAttachment+1))
	if err == nil && n > p.opts.MaxAttachment {
		var rest int64
		rest, err = io.Copy(io.Discard, e.Body)
		n += rest
		buf = bytes.Buffer{}
	} else if err == nil {
		a.Data = buf.Bytes()
		if a.Data == nil {
			a.Data = []byte{}
		}
	}
	if err != nil {
		if !p.lenient(err) {
			return unparseable("decoding attachment %q: %v", a.Filename, err)
		}
		a.Data = nil // cut short: what we have is not the file
	}
	a.Size = n
	p.atts = append(p.atts, a)
	return nil
}

// extensions names files that came without a name.
var extensions = map[string]string{
	"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp",
	"application/pdf": ".pdf", "text/plain": ".txt", "text/html": ".html", "message/rfc822": ".eml",
	"text/calendar": ".ics", "message/delivery-status": ".txt",
}

// safeFilename keeps a file's own name, without folders or control characters, bounded;
// an unnamed part gets "attachment-N" with an extension from its type.
func safeFilename(name, mt string, n int) string {
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base(name)
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' || r == '/' {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "." || name == ".." {
		name = ""
	}
	if name == "" {
		name = fmt.Sprintf("attachment-%d%s", n, extensions[mt])
	}
	return truncateUTF8(name, 200)
}

// toUTF8 decodes b from the declared charset (go-message has already converted declared,
// known charsets; this handles the rest). Undeclared or unknown 8-bit text that is not
// UTF-8 is read as Windows-1252, the superset of ISO-8859-1 that mislabelled mail uses;
// NUL bytes go (no database stores them in text), and the result is always valid UTF-8.
func toUTF8(b []byte, declared string) string {
	if bytes.IndexByte(b, 0) >= 0 {
		b = bytes.ReplaceAll(b, []byte{0}, nil)
	}
	if utf8.Valid(b) {
		return string(b)
	}
	cs := strings.ToLower(strings.TrimSpace(declared))
	if cs == "" || cs == "us-ascii" || cs == "iso-8859-1" || cs == "latin1" || cs == "windows-1252" || cs == "cp1252" ||
		cs == "unknown-8bit" || cs == "x-unknown" {
		if out, err := charmap.Windows1252.NewDecoder().Bytes(b); err == nil && utf8.Valid(out) {
			return string(out)
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// normalizeNewlines turns CRLF and lone CR line breaks into "\n".
func normalizeNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
