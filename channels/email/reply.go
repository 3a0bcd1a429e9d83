package email

import (
	"regexp"
	"strings"
)

// SplitReply separates the new text of a reply from the history it quotes and from the
// sender's signature. It returns the new text (a prefix of text, trailing blank lines
// removed) and whether anything was cut. What starts the cut, whichever comes first:
//
//   - a signature delimiter: "-- " (or "--") alone on a line;
//   - an attribution line: "On … wrote:" (also wrapped over up to three lines, and its
//     French, German, Spanish, Dutch, Italian, Portuguese and Swedish forms);
//   - "-----Original Message-----" and its variants;
//   - an Outlook header block: "From: …" followed within a few lines by "Sent: …" or
//     "Date: …", and "To:" or "Subject:" (with the "____" rule above it, when present);
//   - a block of ">"-quoted lines that runs to the end of the text (blank lines and a
//     signature may follow). Quotes with the sender's answers between them (an inline
//     reply) are kept: cutting there would drop what the customer wrote.
//
// When the cut would leave nothing (a mail that is all quote, or starts with its
// signature), the whole text is the new text.
func SplitReply(text string) (string, bool) {
	lines := strings.SplitAfter(text, "\n")
	cut := -1
	for i := range lines {
		if isSigDelimiter(lines[i]) || isOriginalMessage(lines[i]) || isAttribution(lines, i) || isOutlookHeader(lines, i) {
			cut = i
			break
		}
		if isQuoted(lines[i]) && quotedToEnd(lines[i:]) {
			cut = i
			break
		}
	}
	if cut < 0 {
		return strings.TrimRight(text, " \t\n"), false
	}
	// An Outlook "____" rule, or a blank line, just above the cut belongs to the history.
	for cut > 0 && isRule(lines[cut-1]) {
		cut--
	}
	head := strings.TrimRight(strings.Join(lines[:cut], ""), " \t\n")
	if strings.TrimSpace(head) == "" {
		return strings.TrimRight(text, " \t\n"), false
	}
	return head, true
}

func trimLine(l string) string { return strings.TrimRight(l, "\r\n") }

func isSigDelimiter(l string) bool {
	l = trimLine(l)
	return l == "-- " || l == "--" || l == "—" // the last: some clients turn "--" into an em dash
}

var originalRE = regexp.MustCompile(`(?i)^\s*-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|mensaje original|messaggio originale|oorspronkelijk bericht|mensagem original|ursprungligt meddelande)\s*-{2,}\s*$`)

func isOriginalMessage(l string) bool { return originalRE.MatchString(trimLine(l)) }

var (
	// attribution starts: "On", "Le", "Am", "El", "Op", "Il", "Em", "Den", "Dne".
	attributionStartRE = regexp.MustCompile(`^\s*(On|Le|Am|El|Op|Il|Em|Den|Dne)\s`)
	attributionEndRE   = regexp.MustCompile(`(?i)((wrote|a écrit|escribió|ha scritto|escreveu|skrev|napsal)\s*|(schrieb|schreef)\s.*):\s*$`)
)

// isAttribution reports whether an "On … wrote:" line, possibly wrapped over up to three
// lines, starts at i.
func isAttribution(lines []string, i int) bool {
	if !attributionStartRE.MatchString(lines[i]) {
		return false
	}
	joined := ""
	for j := i; j < len(lines) && j < i+3; j++ {
		l := strings.TrimSpace(lines[j])
		if l == "" || isQuoted(lines[j]) {
			break
		}
		joined += " " + l
		if attributionEndRE.MatchString(joined) {
			return len(joined) < 400
		}
	}
	return false
}

var (
	outlookFromRE = regexp.MustCompile(`(?i)^\s*\*?(from|von|de|van|da)\s*:\*?\s+\S`)
	outlookSentRE = regexp.MustCompile(`(?i)^\s*\*?(sent|date|gesendet|envoyé|enviado|verzonden|inviato|datum)\s*:\*?\s+\S`)
	outlookToRE   = regexp.MustCompile(`(?i)^\s*\*?(to|subject|an|betreff|à|objet|para|asunto|aan|onderwerp|a|oggetto)\s*:\*?\s`)
)

// isOutlookHeader reports whether a quoted-message header block, as Outlook writes it,
// starts at i: From, then Sent (or Date), then To or Subject, within five lines.
func isOutlookHeader(lines []string, i int) bool {
	if !outlookFromRE.MatchString(lines[i]) {
		return false
	}
	sent, to := false, false
	for j := i + 1; j < len(lines) && j <= i+5; j++ {
		switch {
		case outlookSentRE.MatchString(lines[j]):
			sent = true
		case outlookToRE.MatchString(lines[j]):
			to = true
		}
	}
	return sent && to
}

func isRule(l string) bool {
	l = strings.TrimSpace(l)
	return l == "" || (len(l) >= 8 && strings.Trim(l, "_") == "") || (len(l) >= 8 && strings.Trim(l, "-") == "")
}

func isQuoted(l string) bool { return strings.HasPrefix(strings.TrimLeft(l, " \t"), ">") }

// quotedToEnd reports whether lines, which start with a quoted line, hold nothing but
// quoted lines, blank lines, and possibly a signature at the end.
func quotedToEnd(lines []string) bool {
	for _, l := range lines {
		if isSigDelimiter(l) {
			return true
		}
		if strings.TrimSpace(l) != "" && !isQuoted(l) {
			return false
		}
	}
	return true
}
