// Package sms is the Twilio connector: it accepts Twilio's signed inbound-message
// webhooks and hands each message to issue intake, and accepts delivery-status callbacks
// for outbound replies.
//
// A webhook is answered only after the message is committed, so a failure makes Twilio
// see an error rather than a silent loss; a repeated MessageSid is accepted and ignored.
package sms

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twilio/twilio-go/client"

	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/issues"
)

// Paths of the webhooks (contract).
const (
	InboundPath = "/webhooks/twilio/sms"
	StatusPath  = "/webhooks/twilio/status"
)

// emptyTwiML answers an inbound message without replying to it.
const emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response/>`

// maxForm bounds a webhook body. Twilio's forms are a few KB; 1,600 characters of SMS
// body at most, plus MMS media fields.
const maxForm = 64 << 10

// Intake is what the connector needs from issues.
type Intake interface {
	Intake(ctx context.Context, in issues.Inbound) (*issues.IntakeResult, error)
	SetDeliveryStatus(ctx context.Context, externalID, status, errorCode string) (bool, error)
}

// Channels finds the channel a message was sent to.
type Channels interface {
	ByAddress(ctx context.Context, kind channels.Kind, address string) (*channels.Channel, error)
}

// Config configures the webhook handlers.
type Config struct {
	// PublicURL is the external base URL Twilio calls (SWITCHBOARD_PUBLIC_URL); the
	// signature covers it, so it must match what Twilio was given, scheme included.
	PublicURL string
	// AuthToken is the account's auth token, the signing key.
	AuthToken string
	Intake    Intake
	Channels  Channels
	Log       *slog.Logger
	Now       func() time.Time
	Metrics   prometheus.Registerer
}

// Handler serves Twilio's webhooks.
type Handler struct {
	cfg       Config
	validator client.RequestValidator
	outcomes  *prometheus.CounterVec
}

// NewHandler returns the webhook handlers.
func NewHandler(cfg Config) *Handler {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	h := &Handler{
		cfg:       cfg,
		validator: client.NewRequestValidator(cfg.AuthToken),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_webhook_requests_total",
			Help: "Twilio webhooks by endpoint and outcome.",
		}, []string{"endpoint", "outcome"}),
	}
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(h.outcomes)
	}
	return h
}

// Register mounts the webhooks on r. They authenticate by signature, not by session.
func (h *Handler) Register(r *mux.Router) {
	r.HandleFunc(InboundPath, h.inbound).Methods(http.MethodPost)
	r.HandleFunc(StatusPath, h.status).Methods(http.MethodPost)
}

// webhookError is a refusal with its status and the outcome label for metrics.
type webhookError struct {
	status  int
	outcome string
	msg     string
}

// verify parses the form and checks X-Twilio-Signature over PublicURL + the request URI
// and the POST parameters, as Twilio computes it.
func (h *Handler) verify(w http.ResponseWriter, r *http.Request) (url.Values, *webhookError) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, &webhookError{http.StatusUnsupportedMediaType, "bad_request", "body must be application/x-www-form-urlencoded"}
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return nil, &webhookError{http.StatusBadRequest, "bad_request", "cannot parse the form: " + err.Error()}
	}
	sig := r.Header.Get("X-Twilio-Signature")
	if sig == "" {
		return nil, &webhookError{http.StatusForbidden, "bad_signature", "missing X-Twilio-Signature"}
	}
	if !h.valid(h.cfg.PublicURL+r.URL.RequestURI(), r.PostForm, sig) {
		return nil, &webhookError{http.StatusForbidden, "bad_signature", "X-Twilio-Signature does not match; check SWITCHBOARD_PUBLIC_URL and TWILIO_AUTH_TOKEN"}
	}
	return r.PostForm, nil
}

// valid checks the signature. twilio-go's validator takes one value per key; a form with
// a repeated key is checked here the way Twilio signs it (every value, sorted).
func (h *Handler) valid(fullURL string, form url.Values, sig string) bool {
	single := make(map[string]string, len(form))
	repeated := false
	for k, vs := range form {
		if len(vs) != 1 {
			repeated = true
			break
		}
		single[k] = vs[0]
	}
	if !repeated {
		return h.validator.Validate(fullURL, single, sig)
	}
	return hmac.Equal([]byte(Sign(h.cfg.AuthToken, fullURL, form)), []byte(sig))
}

// Sign computes Twilio's X-Twilio-Signature for a form POST to fullURL: base64 of
// HMAC-SHA1 with the auth token over the URL followed by each key and value, keys sorted
// (and a repeated key's values sorted). Tests and tools use it to sign like Twilio.
func Sign(authToken, fullURL string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(fullURL))
	for _, k := range keys {
		vs := slices.Clone(form[k])
		slices.Sort(vs)
		for _, v := range vs {
			mac.Write([]byte(k))
			mac.Write([]byte(v))
		}
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, endpoint string, e *webhookError) {
	h.outcomes.WithLabelValues(endpoint, e.outcome).Inc()
	h.cfg.Log.WarnContext(r.Context(), "twilio webhook refused", "endpoint", endpoint, "status", e.status, "reason", e.msg)
	http.Error(w, e.msg, e.status)
}

func (h *Handler) inbound(w http.ResponseWriter, r *http.Request) {
	form, werr := h.verify(w, r)
	if werr != nil {
		h.refuse(w, r, "sms", werr)
		return
	}
	sid := form.Get("MessageSid")
	if sid == "" {
		sid = form.Get("SmsSid")
	}
	from, to, body := strings.TrimSpace(form.Get("From")), strings.TrimSpace(form.Get("To")), form.Get("Body")
	switch {
	case sid == "":
		werr = &webhookError{http.StatusBadRequest, "bad_request", "MessageSid is missing"}
	case from == "":
		werr = &webhookError{http.StatusBadRequest, "bad_request", "From is missing"}
	case to == "":
		werr = &webhookError{http.StatusBadRequest, "bad_request", "To is missing"}
	case len(sid) > 64 || len(from) > 64 || len(to) > 64:
		werr = &webhookError{http.StatusBadRequest, "bad_request", "MessageSid, From or To is too long"}
	case !utf8.ValidString(body):
		werr = &webhookError{http.StatusBadRequest, "bad_request", "Body is not UTF-8"}
	}
	if werr != nil {
		h.refuse(w, r, "sms", werr)
		return
	}
	ch, err := h.cfg.Channels.ByAddress(r.Context(), channels.SMS, to)
	if errors.Is(err, channels.ErrNotFound) {
		// Refused, not swallowed: Twilio's debugger shows it and the number can be fixed.
		h.refuse(w, r, "sms", &webhookError{http.StatusNotFound, "unknown_number", "no SMS channel for number " + to})
		return
	}
	if err != nil {
		h.fail(w, r, "sms", err)
		return
	}
	res, err := h.cfg.Intake.Intake(r.Context(), issues.Inbound{
		ChannelID:  ch.ID,
		Provider:   "twilio",
		ExternalID: sid,
		Phone:      from,
		Body:       body,
		ReceivedAt: h.cfg.Now(),
	})
	if err != nil {
		h.fail(w, r, "sms", err)
		return
	}
	outcome := "accepted"
	if res.Duplicate {
		outcome = "duplicate"
	}
	h.outcomes.WithLabelValues("sms", outcome).Inc()
	h.cfg.Log.InfoContext(r.Context(), "sms received", "sid", sid, "channel", ch.ID, "issue", res.IssueID,
		"duplicate", res.Duplicate, "reason", res.Reason)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = w.Write([]byte(emptyTwiML))
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, endpoint string, err error) {
	h.outcomes.WithLabelValues(endpoint, "error").Inc()
	h.cfg.Log.ErrorContext(r.Context(), "twilio webhook failed; Twilio will see a 500", "endpoint", endpoint, "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

// status takes a delivery-status callback for an outbound message.
func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	form, werr := h.verify(w, r)
	if werr != nil {
		h.refuse(w, r, "status", werr)
		return
	}
	sid, st := form.Get("MessageSid"), form.Get("MessageStatus")
	if sid == "" || st == "" || len(sid) > 64 || len(st) > 32 {
		h.refuse(w, r, "status", &webhookError{http.StatusBadRequest, "bad_request", "MessageSid and MessageStatus are required"})
		return
	}
	found, err := h.cfg.Intake.SetDeliveryStatus(r.Context(), sid, st, form.Get("ErrorCode"))
	if err != nil {
		h.fail(w, r, "status", err)
		return
	}
	outcome := "accepted"
	if !found {
		// A callback for a message we do not know: not an error Twilio can fix by retrying.
		outcome = "unknown_message"
	}
	h.outcomes.WithLabelValues("status", outcome).Inc()
	w.WriteHeader(http.StatusNoContent)
}
