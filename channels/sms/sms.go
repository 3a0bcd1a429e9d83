// Package sms is the Twilio connector: it accepts Twilio's signed inbound-message
// webhooks (with MMS media and opt-out keywords) and hands each message to issue intake,
// sends replies through the outbox (Outbound), takes delivery-status callbacks, and keeps
// the connected numbers, each an SMS channel with its own account credentials.
//
// A webhook is found its number by To, or by MessagingServiceSid for numbers in a
// Messaging Service, and its signature is checked with that number's account auth token
// (subaccounts have their own). It is answered only after the message is committed, so a
// failure makes Twilio see an error rather than a silent loss; a repeated MessageSid is
// accepted and ignored.
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
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twilio/twilio-go/client"

	"github.com/switchboard-hq/switchboard/internal/httpx"
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

// Reports takes delivery reports of outbound messages: the outbox.
type Reports interface {
	Report(ctx context.Context, connector string, id int64, externalID, status, code, reason string) (bool, error)
}

// Config configures the webhook handlers.
type Config struct {
	// PublicURL is the external base URL Twilio calls (SWITCHBOARD_PUBLIC_URL); the
	// signature covers it, so it must match what Twilio was given, scheme included.
	PublicURL string
	// Store holds the connected numbers (the signing keys), opt-outs and media.
	Store  *Store
	Intake Intake
	// Reports, when set, takes delivery-status callbacks first; a report it does not
	// know goes to Intake.SetDeliveryStatus.
	Reports Reports
	Log     *slog.Logger
	Now     func() time.Time
	Metrics prometheus.Registerer
}

// Handler serves Twilio's webhooks.
type Handler struct {
	cfg      Config
	outcomes *prometheus.CounterVec
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
		cfg: cfg,
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

// parse reads the form of a webhook, bounded, and requires a signature header. The
// signature is checked once the number it belongs to is known.
func (h *Handler) parse(w http.ResponseWriter, r *http.Request) (url.Values, string, *webhookError) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return nil, "", &webhookError{http.StatusUnsupportedMediaType, "bad_request", "body must be application/x-www-form-urlencoded"}
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return nil, "", &webhookError{http.StatusBadRequest, "bad_request", "cannot parse the form: " + err.Error()}
	}
	sig := r.Header.Get("X-Twilio-Signature")
	if sig == "" {
		return nil, "", &webhookError{http.StatusForbidden, "bad_signature", "missing X-Twilio-Signature"}
	}
	return r.PostForm, sig, nil
}

var errBadSignature = &webhookError{http.StatusForbidden, "bad_signature",
	"X-Twilio-Signature does not match; check SWITCHBOARD_PUBLIC_URL and the number's auth token"}

// signedBy reports whether sig is the signature of the request by one of the numbers'
// auth tokens, over PublicURL + the request URI and the POST parameters.
func (h *Handler) signedBy(r *http.Request, form url.Values, sig string, nums []*Number) bool {
	fullURL := h.cfg.PublicURL + r.URL.RequestURI()
	seen := map[string]bool{}
	for _, n := range nums {
		if n == nil || seen[n.AuthToken] {
			continue
		}
		seen[n.AuthToken] = true
		if valid(n.AuthToken, fullURL, form, sig) {
			return true
		}
	}
	return false
}

// valid checks a signature. twilio-go's validator takes one value per key; a form with a
// repeated key is checked here the way Twilio signs it (every value, sorted).
func valid(authToken, fullURL string, form url.Values, sig string) bool {
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
		v := client.NewRequestValidator(authToken)
		return v.Validate(fullURL, single, sig)
	}
	return hmac.Equal([]byte(Sign(authToken, fullURL, form)), []byte(sig))
}

// lookup returns the connected number with this address, else the one connected with
// this Messaging Service. Neither is nil, not an error.
func (h *Handler) lookup(ctx context.Context, number, service string) (*Number, error) {
	if number != "" {
		n, err := h.cfg.Store.ByNumber(ctx, number)
		if err == nil || !errors.Is(err, ErrNoNumber) {
			return n, err
		}
	}
	if service != "" {
		n, err := h.cfg.Store.ByMessagingService(ctx, service)
		if err == nil || !errors.Is(err, ErrNoNumber) {
			return n, err
		}
	}
	return nil, nil
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
	// Twilio ignores the body, but people reading its debugger and the API's other
	// clients get the same {"error":…} as everywhere else.
	httpx.WriteJSON(w, e.status, map[string]string{"error": e.msg})
}

func (h *Handler) inbound(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	form, sig, werr := h.parse(w, r)
	if werr != nil {
		h.refuse(w, r, "sms", werr)
		return
	}
	to := strings.TrimSpace(form.Get("To"))
	num, err := h.lookup(ctx, to, form.Get("MessagingServiceSid"))
	if err != nil {
		h.fail(w, r, "sms", err)
		return
	}
	if num == nil {
		// No channel for this number. Say so (Twilio's debugger shows a 404, and the number
		// can be fixed) only to a request signed by an account we know; else 403.
		accountNums, err := h.cfg.Store.candidates(ctx, form.Get("AccountSid"))
		if err != nil {
			h.fail(w, r, "sms", err)
			return
		}
		if !h.signedBy(r, form, sig, accountNums) {
			h.refuse(w, r, "sms", errBadSignature)
			return
		}
		h.refuse(w, r, "sms", &webhookError{http.StatusNotFound, "unknown_number", "no SMS channel for number " + to})
		return
	}
	if !h.signedBy(r, form, sig, []*Number{num}) {
		h.refuse(w, r, "sms", errBadSignature)
		return
	}
	sid := form.Get("MessageSid")
	if sid == "" {
		sid = form.Get("SmsSid")
	}
	from, body := strings.TrimSpace(form.Get("From")), form.Get("Body")
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
	// Media and keywords are recorded first, idempotently by MessageSid: if intake then
	// fails, Twilio retries and nothing is lost or applied twice.
	if err := h.cfg.Store.SaveMedia(ctx, sid, parseMedia(form)); err != nil {
		h.fail(w, r, "sms", err)
		return
	}
	word, optOut, isKeyword := Keyword(body)
	if isKeyword {
		if err := h.cfg.Store.RecordKeyword(ctx, sid, from, num.ChannelID, word, optOut); err != nil {
			h.fail(w, r, "sms", err)
			return
		}
	}
	res, err := h.cfg.Intake.Intake(ctx, issues.Inbound{
		ChannelID:  num.ChannelID,
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
	h.cfg.Log.InfoContext(ctx, "sms received", "sid", sid, "channel", num.ChannelID, "issue", res.IssueID,
		"duplicate", res.Duplicate, "reason", res.Reason, "keyword", word)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = w.Write([]byte(emptyTwiML))
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, endpoint string, err error) {
	h.outcomes.WithLabelValues(endpoint, "error").Inc()
	h.cfg.Log.ErrorContext(r.Context(), "twilio webhook failed; Twilio will see a 500", "endpoint", endpoint, "err", err)
	httpx.WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
}

// status takes a delivery-status callback for an outbound message. The signature is
// checked with the token of the number it was sent from (From, or its Messaging
// Service), else of the numbers of its account.
func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	form, sig, werr := h.parse(w, r)
	if werr != nil {
		h.refuse(w, r, "status", werr)
		return
	}
	num, err := h.lookup(ctx, strings.TrimSpace(form.Get("From")), form.Get("MessagingServiceSid"))
	if err != nil {
		h.fail(w, r, "status", err)
		return
	}
	nums := []*Number{num}
	if num == nil {
		if nums, err = h.cfg.Store.candidates(ctx, form.Get("AccountSid")); err != nil {
			h.fail(w, r, "status", err)
			return
		}
	}
	if !h.signedBy(r, form, sig, nums) {
		h.refuse(w, r, "status", errBadSignature)
		return
	}
	sid, st, code := form.Get("MessageSid"), form.Get("MessageStatus"), form.Get("ErrorCode")
	if sid == "" || st == "" || len(sid) > 64 || len(st) > 32 || len(code) > 16 {
		h.refuse(w, r, "status", &webhookError{http.StatusBadRequest, "bad_request", "MessageSid and MessageStatus are required"})
		return
	}
	if code == "0" {
		code = ""
	}
	found := false
	if h.cfg.Reports != nil {
		// The outbox id rides in the callback URL we gave Twilio (and is signed with it).
		id, _ := strconv.ParseInt(r.URL.Query().Get(outboxParam), 10, 64)
		if found, err = h.cfg.Reports.Report(ctx, ConnectorName, id, sid, st, code, Explain(code, form.Get("ErrorMessage"))); err != nil {
			h.fail(w, r, "status", err)
			return
		}
	}
	if !found {
		if found, err = h.cfg.Intake.SetDeliveryStatus(ctx, sid, st, code); err != nil {
			h.fail(w, r, "status", err)
			return
		}
	}
	outcome := "accepted"
	if !found {
		// A callback for a message we do not know: not an error Twilio can fix by retrying.
		outcome = "unknown_message"
	}
	h.outcomes.WithLabelValues("status", outcome).Inc()
	w.WriteHeader(http.StatusNoContent)
}
