package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/store"
)

// Twilio's default opt-out and opt-in keywords. A message is a keyword when its whole
// body, trimmed, is one of them, in any letter case.
var (
	optOutWords = []string{"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
	optInWords  = []string{"START", "YES", "UNSTOP"}
)

// Keyword reports whether body is an opt-out (optOut true) or opt-in keyword, and which.
func Keyword(body string) (word string, optOut, ok bool) {
	b := strings.TrimSpace(body)
	if len(b) > 16 {
		return "", false, false
	}
	up := asciiUpper(b)
	for _, w := range optOutWords {
		if up == w {
			return w, true, true
		}
	}
	for _, w := range optInWords {
		if up == w {
			return w, false, true
		}
	}
	return "", false, false
}

// asciiUpper upper-cases ASCII letters only: Twilio matches keywords in ASCII, and full
// Unicode case folding would turn "ſtop" into STOP.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// OptOut is a phone number's standing opt-out.
type OptOut struct {
	Phone     string    `json:"phone"`
	Keyword   string    `json:"keyword"`
	ChannelID *int64    `json:"channel_id"`
	At        time.Time `json:"opted_out_at"`
}

// RecordKeyword applies an opt-out or opt-in keyword received as message sid from phone.
// It is idempotent by sid: a retried webhook does not apply it again (which would undo a
// later START with an old STOP).
func (s *Store) RecordKeyword(ctx context.Context, sid, phone string, channelID int64, word string, optOut bool) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		now := s.time()
		res, err := tx.ExecContext(ctx, `INSERT INTO sms_keywords (message_sid, phone, channel_id, keyword, opt_out, received_at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (message_sid) DO NOTHING`, sid, phone, channelID, word, optOut, now)
		if err != nil {
			return fmt.Errorf("sms: keyword %s: %w", sid, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		return setOptOut(ctx, tx, phone, &channelID, word, sid, optOut, now)
	})
}

func setOptOut(ctx context.Context, tx *store.Tx, phone string, channelID *int64, word, ref string, optOut bool, now time.Time) error {
	var err error
	if optOut {
		_, err = tx.ExecContext(ctx, `INSERT INTO sms_opt_outs (phone, channel_id, keyword, message_sid, opted_out_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (phone) DO UPDATE SET channel_id = excluded.channel_id,
			keyword = excluded.keyword, message_sid = excluded.message_sid, opted_out_at = excluded.opted_out_at`,
			phone, channelID, word, ref, now)
	} else {
		_, err = tx.ExecContext(ctx, `DELETE FROM sms_opt_outs WHERE phone = $1`, phone)
	}
	if err != nil {
		return fmt.Errorf("sms: opt-out of %s: %w", phone, err)
	}
	return nil
}

// markUnsubscribed records that Twilio refused a send because the recipient opted out
// (error 21610), which it may know before we do (a STOP to another number of the same
// Messaging Service): later replies are refused up front.
func (s *Store) markUnsubscribed(ctx context.Context, phone string, channelID int64, ref string) error {
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		var exists int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM sms_opt_outs WHERE phone = $1`, phone).Scan(&exists)
		if err == nil {
			return nil
		}
		if !errors.Is(store.Err(err), store.ErrNotFound) {
			return err
		}
		return setOptOut(ctx, tx, phone, &channelID, "Twilio error 21610", ref, true, s.time())
	})
}

// OptedOut returns the phone's standing opt-out, or nil. q may be a transaction.
func (s *Store) OptedOut(ctx context.Context, q store.Querier, phone string) (*OptOut, error) {
	o := OptOut{Phone: phone}
	err := q.QueryRowContext(ctx, `SELECT keyword, channel_id, opted_out_at FROM sms_opt_outs WHERE phone = $1`, phone).
		Scan(&o.Keyword, &o.ChannelID, &o.At)
	if errors.Is(store.Err(err), store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sms: opt-out of %s: %w", phone, err)
	}
	return &o, nil
}

// OptedOutError is the refusal of an SMS to a customer who opted out (409).
func OptedOutError(o *OptOut) error {
	how := fmt.Sprintf("texted %s", o.Keyword)
	if strings.HasPrefix(o.Keyword, "Twilio") {
		how = "is unsubscribed at Twilio (" + o.Keyword + ")"
	}
	return httpx.Errorf(http.StatusConflict, "this customer (%s) %s on %s and has opted out of SMS: replies by SMS are refused until they text START",
		o.Phone, how, o.At.Format("2006-01-02 15:04 MST"))
}

// CheckOptOut refuses (with a 409) an SMS to phone when it opted out. Reply creation
// calls it, through the outbox, inside the reply's transaction.
func (s *Store) CheckOptOut(ctx context.Context, q store.Querier, phone string) error {
	o, err := s.OptedOut(ctx, q, phone)
	if err != nil {
		return err
	}
	if o != nil {
		return OptedOutError(o)
	}
	return nil
}
