package sms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/switchboard-hq/switchboard/internal/outbox"
	"github.com/switchboard-hq/switchboard/store"
)

// ConnectorName is the outbox connector of SMS replies.
const ConnectorName = "sms"

// OutboundConfig configures the sender of SMS replies.
type OutboundConfig struct {
	// APIURL is the base URL of Twilio's REST API (TWILIO_API_URL): a regional edge, or a
	// test server. Default https://api.twilio.com.
	APIURL string
	// PublicURL is SWITCHBOARD_PUBLIC_URL; StatusCallback is PublicURL + StatusPath.
	PublicURL string
	Store     *Store
	// Transport carries the requests. Default: a clone of http.DefaultTransport.
	Transport http.RoundTripper
	Log       *slog.Logger
}

// Outbound sends SMS replies through Twilio's Messages API with twilio-go. It is the
// outbox's "sms" connector.
type Outbound struct {
	cfg OutboundConfig
	api *url.URL // nil: Twilio's own
}

var (
	_ outbox.Connector = (*Outbound)(nil)
	_ outbox.Checker   = (*Outbound)(nil)
)

// NewOutbound returns the SMS sender.
func NewOutbound(cfg OutboundConfig) (*Outbound, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	o := &Outbound{cfg: cfg}
	if cfg.APIURL != "" {
		u, err := url.Parse(cfg.APIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("sms: API URL %q must be an absolute http(s) URL", cfg.APIURL)
		}
		u.Path = strings.TrimRight(u.Path, "/")
		o.api = u
	}
	return o, nil
}

// Check refuses a reply to a customer who opted out, inside the reply's transaction.
func (o *Outbound) Check(ctx context.Context, q store.Querier, out *outbox.Outgoing) error {
	return o.cfg.Store.CheckOptOut(ctx, q, out.To)
}

// StatusCallback is the delivery-report address of outbox message id: the status webhook,
// with the id so a report is matched even when the answer to the send was lost.
func (o *Outbound) StatusCallback(id int64) string {
	return o.cfg.PublicURL + StatusPath + "?" + outboxParam + "=" + strconv.FormatInt(id, 10)
}

// outboxParam names the outbox id in the status callback's query.
const outboxParam = "outbox"

// Deliver sends one message and classifies a failure for the outbox: transient when
// nothing reached Twilio or it answered 429 or 5xx (504 excepted), permanent for other
// refusals, indeterminate when the request was sent and no answer came (a timeout, a
// dropped connection, a gateway timeout).
func (o *Outbound) Deliver(ctx context.Context, m *outbox.Message) (*outbox.Receipt, error) {
	num, err := o.cfg.Store.ByChannel(ctx, m.ChannelID)
	if errors.Is(err, ErrNoNumber) {
		return nil, &outbox.Error{Outcome: outbox.Permanent,
			Reason: "this channel's Twilio number is disconnected; an admin can connect it again under SMS numbers"}
	}
	if err != nil {
		return nil, &outbox.Error{Outcome: outbox.Transient, Reason: "could not read the number's credentials", Err: err}
	}
	// The customer may have texted STOP since the reply was written.
	if oo, err := o.cfg.Store.OptedOut(ctx, o.cfg.Store.db, m.To); err != nil {
		return nil, &outbox.Error{Outcome: outbox.Transient, Reason: "could not check the opt-out list", Err: err}
	} else if oo != nil {
		return nil, &outbox.Error{Outcome: outbox.Permanent, Code: "21610", Reason: OptedOutError(oo).Error()}
	}

	c := &call{ctx: ctx, base: o.cfg.Transport, api: o.api}
	tc := &client.Client{
		Credentials: client.NewCredentials(num.AccountSID, num.AuthToken),
		HTTPClient: &http.Client{Transport: c, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
	}
	tc.SetAccountSid(num.AccountSID)
	params := &openapi.CreateMessageParams{}
	params.SetTo(m.To)
	params.SetBody(m.Body)
	params.SetStatusCallback(o.StatusCallback(m.ID))
	if num.MessagingServiceSID != nil {
		params.SetMessagingServiceSid(*num.MessagingServiceSID)
	} else {
		params.SetFrom(num.Number)
	}
	msg, err := openapi.NewApiServiceWithClient(tc).CreateMessage(params)
	if err == nil || (c.status >= 200 && c.status < 300) {
		// Created. When the answer could not be read, the id comes with the first report
		// (the callback names the outbox id).
		rec := &outbox.Receipt{Status: "queued"}
		if msg != nil && msg.Sid != nil {
			rec.ExternalID = *msg.Sid
		}
		if msg != nil && msg.Status != nil && *msg.Status != "" {
			rec.Status = *msg.Status
		}
		if err != nil {
			o.cfg.Log.Warn("sms: Twilio created the message but its answer could not be read", "outbox", m.ID, "err", err)
		}
		return rec, nil
	}
	f := classify(err, c)
	if f.Code == "21610" {
		if merr := o.cfg.Store.markUnsubscribed(context.WithoutCancel(ctx), m.To, m.ChannelID, "outbox:"+strconv.FormatInt(m.ID, 10)); merr != nil {
			o.cfg.Log.Warn("sms: recording Twilio's unsubscribed recipient failed", "to", m.To, "err", merr)
		}
	}
	return nil, f
}

// call is the transport of one send: it rewrites Twilio's host to the configured API URL
// (twilio-go's base URL is fixed), gives the request the attempt's context (twilio-go
// makes requests without one), and records whether the request was completely written
// and what status came back, which is what tells "never sent" from "outcome unknown".
type call struct {
	ctx     context.Context
	base    http.RoundTripper
	api     *url.URL
	written atomic.Bool

	// Set by RoundTrip, read after CreateMessage returns, in the same goroutine.
	status     int
	retryAfter string
}

func (c *call) RoundTrip(req *http.Request) (*http.Response, error) {
	trace := &httptrace.ClientTrace{WroteRequest: func(info httptrace.WroteRequestInfo) {
		if info.Err == nil {
			c.written.Store(true)
		}
	}}
	r := req.Clone(httptrace.WithClientTrace(c.ctx, trace))
	if c.api != nil {
		r.URL.Scheme, r.URL.Host = c.api.Scheme, c.api.Host
		r.URL.Path = c.api.Path + r.URL.Path
		if r.URL.RawPath != "" {
			r.URL.RawPath = c.api.Path + r.URL.RawPath
		}
		r.Host = ""
	}
	resp, err := c.base.RoundTrip(r)
	if resp != nil {
		c.status, c.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	}
	return resp, err
}

// classify turns a failed CreateMessage into the outbox's terms.
func classify(err error, c *call) *outbox.Error {
	var te *client.TwilioRestError
	status, code, msg := c.status, "", ""
	if errors.As(err, &te) {
		if te.Code != 0 {
			code = strconv.Itoa(te.Code)
		}
		msg = te.Message
		if status == 0 {
			status = te.Status
		}
	}
	if status == 0 {
		// No answer. twilio-go refuses some credentials before any request.
		if te != nil {
			return &outbox.Error{Outcome: outbox.Permanent, Code: code, Reason: Explain(code, msg), Err: err}
		}
		if !c.written.Load() {
			return &outbox.Error{Outcome: outbox.Transient, Reason: "could not reach Twilio (" + netReason(err) + "); nothing was sent", Err: err}
		}
		reason := "the connection to Twilio was lost after the message was sent (" + netReason(err) + ")"
		if isTimeout(err) {
			reason = "Twilio did not answer in time after the message was sent"
		}
		return &outbox.Error{Outcome: outbox.Indeterminate, Reason: reason + "; it may or may not have been delivered: check, then retry or discard", Err: err}
	}
	reason := Explain(code, msg)
	if reason == "" {
		if reason = reasons[strconv.Itoa(status)]; reason == "" {
			reason = fmt.Sprintf("Twilio answered %d %s", status, http.StatusText(status))
		}
	}
	switch {
	case status == http.StatusGatewayTimeout:
		// A proxy gave up waiting for Twilio, which may have taken the message.
		return &outbox.Error{Outcome: outbox.Indeterminate, Code: code,
			Reason: reason + "; the message may or may not have been sent: check, then retry or discard", Err: err}
	case status == http.StatusTooManyRequests || status >= 500:
		return &outbox.Error{Outcome: outbox.Transient, Code: code, Reason: reason, RetryAfter: retryAfter(c.retryAfter), Err: err}
	default:
		return &outbox.Error{Outcome: outbox.Permanent, Code: code, Reason: reason, Err: err}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// netReason is a short description of a transport error for agents.
func netReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// retryAfter parses a Retry-After header (seconds or an HTTP date), at most an hour.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	return min(max(d, 0), time.Hour)
}

// reasons explains Twilio's common error codes to agents.
var reasons = map[string]string{
	"20003": "Twilio refused the account's credentials (check the number's account SID and auth token)",
	"20404": "Twilio does not know this account or number",
	"20429": "Twilio is rate-limiting this account",
	"21211": "the customer's number is not a valid phone number",
	"21408": "this account may not send SMS to the customer's country or region",
	"21602": "the message is empty",
	"21606": "this number cannot send SMS (it is not SMS-capable, or not owned by the account)",
	"21608": "a trial account can only send to verified numbers",
	"21610": "the customer has unsubscribed (texted STOP); they must text START to receive SMS again",
	"21612": "Twilio cannot route a message from this number to the customer's number",
	"21614": "the customer's number is not a mobile number",
	"21617": "the message is too long (over 1,600 characters)",
	"21703": "the Messaging Service has no numbers to send from",
	"30001": "Twilio's queue for this number overflowed; try again later",
	"30002": "the Twilio account is suspended",
	"30003": "the customer's phone is unreachable (off, or out of coverage)",
	"30004": "the message was blocked (the customer may have blocked this number)",
	"30005": "the customer's number is unknown to their carrier (it may no longer exist)",
	"30006": "the customer's number is a landline or cannot receive SMS",
	"30007": "the customer's carrier filtered the message (seen as spam)",
	"30008": "delivery failed for an unknown reason at the carrier",
	"30010": "the message cost more than the maximum price set",
	"30034": "the message was blocked: the sending number is not registered for A2P 10DLC",
	"30044": "the message was too long for the carrier and was not delivered",
	"429":   "Twilio asked to slow down (429 Too Many Requests)",
	"500":   "Twilio had an internal error (500)",
	"502":   "Twilio could not be reached through its gateway (502)",
	"503":   "Twilio is temporarily unavailable (503)",
	"504":   "Twilio's gateway timed out (504)",
}

// Explain returns a readable reason for a Twilio error code, with Twilio's own message
// when the code is not one we describe.
func Explain(code, twilioMessage string) string {
	if r, ok := reasons[code]; ok {
		return r
	}
	twilioMessage = strings.TrimSpace(twilioMessage)
	if len(twilioMessage) > 300 {
		twilioMessage = twilioMessage[:300] + "…"
	}
	switch {
	case twilioMessage != "" && code != "":
		return fmt.Sprintf("Twilio error %s: %s", code, twilioMessage)
	case twilioMessage != "":
		return "Twilio: " + twilioMessage
	case code != "":
		return "Twilio error " + code + " (see twilio.com/docs/api/errors/" + code + ")"
	}
	return ""
}
