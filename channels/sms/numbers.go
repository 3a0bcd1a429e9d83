package sms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/store"
)

// Store keeps the connector's own tables: the connected numbers with their credentials,
// opt-outs, and MMS media.
type Store struct {
	db       *store.DB
	channels *channels.Service
	now      func() time.Time
	def      atomic.Pointer[Number] // the default account (TWILIO_*), or nil
}

// NewStore returns the connector's store. now defaults to time.Now.
func NewStore(db *store.DB, ch *channels.Service, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{db: db, channels: ch, now: now}
}

func (s *Store) time() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Number is a Twilio number connected as an SMS channel, with the credentials of the
// account (or subaccount) that owns it. The auth token is never served.
type Number struct {
	ChannelID           int64     `json:"id"`
	Number              string    `json:"number"`
	Name                string    `json:"name"`
	AccountSID          string    `json:"account_sid"`
	MessagingServiceSID *string   `json:"messaging_service_sid"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
	AuthToken           string    `json:"-"`
}

// NewNumber is what an admin (or the environment) gives to connect a number.
type NewNumber struct {
	Number              string `json:"number"`                // E.164
	Name                string `json:"name"`                  // optional; default "SMS <number>"
	AccountSID          string `json:"account_sid"`           // AC…
	AuthToken           string `json:"auth_token"`            // the account's auth token: signs webhooks, authenticates sends
	MessagingServiceSID string `json:"messaging_service_sid"` // optional MG…: send through the service, match its inbound
}

var (
	e164RE       = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	accountRE    = regexp.MustCompile(`^AC[0-9A-Za-z]{32}$`)
	serviceRE    = regexp.MustCompile(`^MG[0-9A-Za-z]{32}$`)
	authTokenRE  = regexp.MustCompile(`^[!-~]{8,128}$`) // Twilio's are 32 hex digits
	errNoNumber  = httpx.Errorf(http.StatusNotFound, "no such SMS number")
	errMGTaken   = httpx.Errorf(http.StatusConflict, "another number is already connected with this messaging_service_sid")
	errAdminOnly = httpx.Errorf(http.StatusForbidden, "only admins may manage SMS numbers")
)

// ValidAccountSID reports whether s has the form of a Twilio account SID; the
// configuration checks TWILIO_ACCOUNT_SID with the same rule as the numbers API.
func ValidAccountSID(s string) bool { return accountRE.MatchString(s) }

// ValidAuthToken reports whether s can be an auth token (8 to 128 visible characters).
func ValidAuthToken(s string) bool { return authTokenRE.MatchString(s) }

// ErrNoNumber is returned when no connected number matches.
var ErrNoNumber = errNoNumber

func (n NewNumber) validate() error {
	switch {
	case !e164RE.MatchString(n.Number):
		return httpx.Errorf(http.StatusBadRequest, "number must be in E.164 form, like +15551234567")
	case !accountRE.MatchString(n.AccountSID):
		return httpx.Errorf(http.StatusBadRequest, "account_sid must be an account SID: AC followed by 32 letters or digits")
	case !authTokenRE.MatchString(n.AuthToken):
		return httpx.Errorf(http.StatusBadRequest, "auth_token must be the account's auth token (8 to 128 visible characters)")
	case n.MessagingServiceSID != "" && !serviceRE.MatchString(n.MessagingServiceSID):
		return httpx.Errorf(http.StatusBadRequest, "messaging_service_sid must be MG followed by 32 letters or digits, or empty")
	case len(n.Name) > 200:
		return httpx.Errorf(http.StatusBadRequest, "name is longer than 200 characters")
	}
	return nil
}

// Connect connects a number: its SMS channel (created when new, kept with its history
// when the number was connected before) and its credentials, replacing earlier ones.
func (s *Store) Connect(ctx context.Context, n NewNumber) (*Number, error) {
	n.Number, n.Name = strings.TrimSpace(n.Number), strings.TrimSpace(n.Name)
	if err := n.validate(); err != nil {
		return nil, err
	}
	if n.Name == "" {
		n.Name = "SMS " + n.Number
	}
	ch, err := s.channels.Ensure(ctx, channels.SMS, n.Name, n.Number)
	if err != nil {
		return nil, err
	}
	var mg *string
	if n.MessagingServiceSID != "" {
		mg = &n.MessagingServiceSID
	}
	now := s.time()
	_, err = s.db.ExecContext(ctx, `INSERT INTO sms_numbers (channel_id, number, account_sid, auth_token, messaging_service_sid,
		created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)
		ON CONFLICT (channel_id) DO UPDATE SET account_sid = excluded.account_sid, auth_token = excluded.auth_token,
			messaging_service_sid = excluded.messaging_service_sid, updated_at = excluded.updated_at, disconnected_at = NULL`,
		ch.ID, n.Number, n.AccountSID, n.AuthToken, mg, now)
	if errors.Is(err, store.ErrConflict) {
		return nil, errMGTaken
	}
	if err != nil {
		return nil, fmt.Errorf("sms: connect %s: %w", n.Number, err)
	}
	return s.ByChannel(ctx, ch.ID)
}

// SetDefault makes n (the environment's number, connected) the default account: SMS
// channels with no credentials of their own (made before numbers were managed here, or by
// tools) use its account SID and auth token, as a single-account setup always did.
func (s *Store) SetDefault(n *Number) { s.def.Store(n) }

// Disconnect disconnects a number: its webhooks are refused and nothing more is sent
// from it (it does not fall back to the default account). The channel and its issues
// stay; connecting the number again resumes it.
func (s *Store) Disconnect(ctx context.Context, channelID int64) error {
	res, err := s.db.ExecContext(ctx, `UPDATE sms_numbers SET disconnected_at = $1, updated_at = $1, messaging_service_sid = NULL
		WHERE channel_id = $2 AND disconnected_at IS NULL`, s.time(), channelID)
	if err != nil {
		return fmt.Errorf("sms: disconnect %d: %w", channelID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errNoNumber
	}
	return nil
}

const numberCols = `channel_id, number, account_sid, auth_token, messaging_service_sid, created_at, updated_at, disconnected_at`

// numbers reads rows, disconnected ones included; gone says which are disconnected.
func (s *Store) numbers(ctx context.Context, where string, args ...any) ([]*Number, []bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+numberCols+` FROM sms_numbers `+where+` ORDER BY channel_id`, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("sms: numbers: %w", err)
	}
	defer rows.Close()
	list, gone := []*Number{}, []bool{}
	for rows.Next() {
		var n Number
		var disconnected *time.Time
		if err := rows.Scan(&n.ChannelID, &n.Number, &n.AccountSID, &n.AuthToken, &n.MessagingServiceSID, &n.CreatedAt, &n.UpdatedAt,
			&disconnected); err != nil {
			return nil, nil, fmt.Errorf("sms: numbers: %w", err)
		}
		list, gone = append(list, &n), append(gone, disconnected != nil)
	}
	return list, gone, rows.Err()
}

// connected keeps the rows that are not disconnected.
func connected(list []*Number, gone []bool) []*Number {
	out := []*Number{}
	for i, n := range list {
		if !gone[i] {
			out = append(out, n)
		}
	}
	return out
}

// one finds a number by a row of its own, else, for an SMS channel that has none, with
// the default account's credentials. A disconnected number is not found.
func (s *Store) one(ctx context.Context, where string, arg any, channel func() (*channels.Channel, error)) (*Number, error) {
	list, gone, err := s.numbers(ctx, where, arg)
	if err != nil {
		return nil, err
	}
	if len(list) > 0 {
		if gone[0] {
			return nil, errNoNumber
		}
		return list[0], nil
	}
	def := s.def.Load()
	if def == nil || channel == nil {
		return nil, errNoNumber
	}
	ch, err := channel()
	if errors.Is(err, channels.ErrNotFound) || (err == nil && ch.Kind != channels.SMS) {
		return nil, errNoNumber
	}
	if err != nil {
		return nil, err
	}
	return &Number{ChannelID: ch.ID, Number: ch.Address, Name: ch.Name, AccountSID: def.AccountSID, AuthToken: def.AuthToken,
		CreatedAt: ch.CreatedAt, UpdatedAt: ch.CreatedAt}, nil
}

// List returns every connected number with its channel's name.
func (s *Store) List(ctx context.Context) ([]*Number, error) {
	list, gone, err := s.numbers(ctx, "")
	if err != nil {
		return nil, err
	}
	list = connected(list, gone)
	for _, n := range list {
		if err := s.name(ctx, n); err != nil {
			return nil, err
		}
	}
	return list, nil
}

func (s *Store) name(ctx context.Context, n *Number) error {
	ch, err := s.channels.Get(ctx, n.ChannelID)
	if err != nil {
		return err
	}
	n.Name = ch.Name
	return nil
}

// ByChannel returns the number of an SMS channel.
func (s *Store) ByChannel(ctx context.Context, channelID int64) (*Number, error) {
	n, err := s.one(ctx, `WHERE channel_id = $1`, channelID, func() (*channels.Channel, error) {
		return s.channels.Get(ctx, channelID)
	})
	if err != nil {
		return nil, err
	}
	return n, s.name(ctx, n)
}

// ByNumber returns the connected number with this E.164 address.
func (s *Store) ByNumber(ctx context.Context, number string) (*Number, error) {
	return s.one(ctx, `WHERE number = $1`, number, func() (*channels.Channel, error) {
		return s.channels.ByAddress(ctx, channels.SMS, number)
	})
}

// ByMessagingService returns the number connected with this Messaging Service.
func (s *Store) ByMessagingService(ctx context.Context, sid string) (*Number, error) {
	return s.one(ctx, `WHERE messaging_service_sid = $1`, sid, nil)
}

// candidates are the numbers whose tokens may have signed a webhook that names no
// connected number: those of its account, and the default account's.
func (s *Store) candidates(ctx context.Context, accountSID string) ([]*Number, error) {
	list, err := s.ByAccount(ctx, accountSID)
	if err != nil {
		return nil, err
	}
	if def := s.def.Load(); def != nil {
		list = append(list, def)
	}
	return list, nil
}

// ByAccount returns the connected numbers of one account.
func (s *Store) ByAccount(ctx context.Context, accountSID string) ([]*Number, error) {
	list, gone, err := s.numbers(ctx, `WHERE account_sid = $1`, accountSID)
	if err != nil {
		return nil, err
	}
	list = connected(list, gone)
	if def := s.def.Load(); def != nil && def.AccountSID == accountSID && len(list) == 0 {
		list = append(list, def)
	}
	return list, nil
}

// NumbersHandler serves the admins' API for numbers.
type NumbersHandler struct {
	store     *Store
	publicURL string
	log       *slog.Logger
}

// NewNumbersHandler returns the numbers API; publicURL is SWITCHBOARD_PUBLIC_URL, for the
// webhook addresses to paste into Twilio.
func NewNumbersHandler(s *Store, publicURL string, log *slog.Logger) *NumbersHandler {
	return &NumbersHandler{store: s, publicURL: strings.TrimRight(publicURL, "/"), log: log}
}

// Register mounts the routes on r, which must already require a session. All are for
// admins:
//
//	GET    /api/sms/numbers        the connected numbers and the webhook URLs to paste into Twilio
//	POST   /api/sms/numbers        connect (or update) a number
//	DELETE /api/sms/numbers/{id}   disconnect a number (its channel and history stay)
func (h *NumbersHandler) Register(r *mux.Router) {
	r.HandleFunc("/api/sms/numbers", h.admin(h.list)).Methods(http.MethodGet)
	r.HandleFunc("/api/sms/numbers", h.admin(h.connect)).Methods(http.MethodPost)
	r.HandleFunc("/api/sms/numbers/{id:[0-9]+}", h.admin(h.disconnect)).Methods(http.MethodDelete)
}

func (h *NumbersHandler) admin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if sess := accounts.SessionFrom(r.Context()); sess == nil || !sess.User.IsAdmin() {
			httpx.WriteError(w, r, h.log, errAdminOnly)
			return
		}
		next(w, r)
	}
}

// Webhooks are the addresses to give Twilio for a number.
type Webhooks struct {
	// Inbound goes in the number's (or its Messaging Service's) "A message comes in"
	// field, method HTTP POST.
	Inbound string `json:"inbound"`
	// Status receives delivery reports. Switchboard sets it on every message it sends,
	// so nothing needs pasting; it is shown for reference.
	Status string `json:"status"`
}

type numberView struct {
	*Number
	Webhooks Webhooks `json:"webhooks"`
}

func (h *NumbersHandler) view(n *Number) numberView {
	return numberView{Number: n, Webhooks: Webhooks{Inbound: h.publicURL + InboundPath, Status: h.publicURL + StatusPath}}
}

func (h *NumbersHandler) list(w http.ResponseWriter, r *http.Request) {
	list, err := h.store.List(r.Context())
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	out := make([]numberView, len(list))
	for i, n := range list {
		out[i] = h.view(n)
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"numbers": out,
		"webhooks": Webhooks{Inbound: h.publicURL + InboundPath, Status: h.publicURL + StatusPath}})
}

func (h *NumbersHandler) connect(w http.ResponseWriter, r *http.Request) {
	var in NewNumber
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	n, err := h.store.Connect(r.Context(), in)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	h.log.InfoContext(r.Context(), "sms number connected", "number", n.Number, "channel", n.ChannelID,
		"by", accounts.SessionFrom(r.Context()).UserID)
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"number": h.view(n)})
}

func (h *NumbersHandler) disconnect(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err := h.store.Disconnect(r.Context(), id); err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	h.log.InfoContext(r.Context(), "sms number disconnected", "channel", id, "by", accounts.SessionFrom(r.Context()).UserID)
	w.WriteHeader(http.StatusNoContent)
}
