package email

import (
	"strings"

	"github.com/emersion/go-message/mail"
)

// Reasons a mail is automatic: it never creates an issue and is never answered, so two
// robots cannot mail each other forever. They label the ignored-mail counter.
const (
	AutoSubmitted  = "auto_submitted"  // Auto-Submitted other than "no" (RFC 3834)
	AutoPrecedence = "precedence"      // Precedence: bulk, junk or list
	AutoReplyHdr   = "x_autoreply"     // X-Autoreply
	AutoRespondHdr = "x_autorespond"   // X-Autorespond
	AutoList       = "list"            // List-Id: mailing-list traffic
	AutoNullSender = "null_sender"     // Return-Path <> (bounces and other notifications)
	AutoDaemon     = "mailer_daemon"   // From MAILER-DAEMON or postmaster
	AutoReport     = "delivery_report" // multipart/report: delivery status and read receipts
	AutoOwnAddress = "own_address"     // From one of our own addresses: a loop
)

// Classify says why a mail is automatic, or "" when a person wrote it. own lists the
// addresses Switchboard itself sends from or receives at (compared case-insensitively).
func Classify(h mail.Header, own ...string) string {
	if v := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))); v != "" {
		if kw, _, _ := strings.Cut(v, ";"); strings.TrimSpace(kw) != "no" {
			return AutoSubmitted
		}
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("Precedence"))) {
	case "bulk", "junk", "list":
		return AutoPrecedence
	}
	if h.Has("X-Autoreply") {
		return AutoReplyHdr
	}
	if h.Has("X-Autorespond") {
		return AutoRespondHdr
	}
	if h.Has("List-Id") {
		return AutoList
	}
	if h.Has("Return-Path") {
		if rp := strings.TrimSpace(h.Get("Return-Path")); rp == "" || strings.ReplaceAll(rp, " ", "") == "<>" {
			return AutoNullSender
		}
	}
	if mt, _ := mediaType(h.Header); mt == "multipart/report" {
		return AutoReport
	}
	if from, _, err := sender(h); err == nil {
		local, _, _ := strings.Cut(strings.ToLower(from), "@")
		if local == "mailer-daemon" || local == "postmaster" {
			return AutoDaemon
		}
		for _, a := range own {
			if a != "" && strings.EqualFold(a, from) {
				return AutoOwnAddress
			}
		}
	} else if strings.Contains(strings.ToLower(h.Get("From")), "mailer-daemon") {
		return AutoDaemon
	}
	return ""
}
