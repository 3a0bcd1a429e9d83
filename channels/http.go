package channels

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/httpx"
)

// MaxBody is the longest message an agent may post, in bytes.
const MaxBody = 16 << 10

// Handler serves the channels API.
type Handler struct {
	svc *Service
	log *slog.Logger
}

// NewHandler returns the HTTP handlers for s.
func NewHandler(s *Service, log *slog.Logger) *Handler { return &Handler{svc: s, log: log} }

// Register mounts the routes on r, which must already require a session.
func (h *Handler) Register(r *mux.Router) {
	r.HandleFunc("/api/channels", h.list).Methods(http.MethodGet)
	r.HandleFunc("/api/channels/{id:[0-9]+}/messages", h.messages).Methods(http.MethodGet)
	r.HandleFunc("/api/channels/{id:[0-9]+}/messages", h.post).Methods(http.MethodPost)
	r.HandleFunc("/api/channels/{id:[0-9]+}/read", h.read).Methods(http.MethodPost)
	r.HandleFunc("/api/channels", h.createTeam).Methods(http.MethodPost)
	r.HandleFunc("/api/channels/{id:[0-9]+}/members", h.members).Methods(http.MethodGet)
	r.HandleFunc("/api/channels/{id:[0-9]+}/members/{user:[0-9]+}", h.addMember).Methods(http.MethodPut)
	r.HandleFunc("/api/channels/{id:[0-9]+}/members/{user:[0-9]+}", h.removeMember).Methods(http.MethodDelete)
	r.HandleFunc("/api/direct", h.openDirect).Methods(http.MethodPost)
	r.HandleFunc("/api/channels/{id:[0-9]+}/access", h.setAccess).Methods(http.MethodPut)
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrNotMember):
		// Not a member looks like not found: channel ids are not to be probed.
		err = httpx.Errorf(http.StatusNotFound, "no such channel")
	case errors.Is(err, ErrReadOnly), errors.Is(err, ErrFixedMembers), errors.Is(err, ErrMayNotRemove),
		errors.Is(err, ErrAccessAdminOnly), errors.Is(err, ErrNotCustomerFeed):
		err = httpx.Errorf(http.StatusForbidden, "%s", strings.TrimPrefix(err.Error(), "channels: "))
	case errors.Is(err, ErrSelfDirect), errors.Is(err, ErrNoSuchUser), errors.Is(err, ErrTooManyPeople):
		err = httpx.Errorf(http.StatusBadRequest, "%s", strings.TrimPrefix(err.Error(), "channels: "))
	}
	httpx.WriteError(w, r, h.log, err)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	sess := accounts.SessionFrom(r.Context())
	views, err := h.svc.ForUser(r.Context(), sess.UserID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if views == nil {
		views = []*View{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"channels": views})
}

// channel parses the id and checks membership.
func (h *Handler) channel(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		h.fail(w, r, ErrNotFound)
		return 0, false
	}
	ok, err := h.svc.IsMember(r.Context(), accounts.SessionFrom(r.Context()).UserID, id)
	if err != nil {
		h.fail(w, r, err)
		return 0, false
	}
	if !ok {
		h.fail(w, r, ErrNotMember)
		return 0, false
	}
	return id, true
}

func (h *Handler) messages(w http.ResponseWriter, r *http.Request) {
	id, ok := h.channel(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	var before int64
	var limit int
	var err error
	if s := q.Get("before"); s != "" {
		if before, err = strconv.ParseInt(s, 10, 64); err != nil || before < 0 {
			h.fail(w, r, httpx.Errorf(http.StatusBadRequest, "before must be a message number"))
			return
		}
	}
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 200 {
			h.fail(w, r, httpx.Errorf(http.StatusBadRequest, "limit must be between 1 and 200"))
			return
		}
	}
	lastRead, err := h.svc.LastRead(r.Context(), accounts.SessionFrom(r.Context()).UserID, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	msgs, more, err := h.svc.Messages(r.Context(), id, before, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if msgs == nil {
		msgs = []*Message{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"messages": msgs, "last_read": lastRead, "has_more": more})
}

func (h *Handler) post(w http.ResponseWriter, r *http.Request) {
	id, ok := h.channel(w, r)
	if !ok {
		return
	}
	var body struct {
		Body string `json:"body"`
	}
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	switch {
	case strings.TrimSpace(body.Body) == "":
		h.fail(w, r, httpx.Errorf(http.StatusBadRequest, "body must not be empty"))
		return
	case len(body.Body) > MaxBody:
		h.fail(w, r, httpx.Errorf(http.StatusBadRequest, "body is longer than %d bytes", MaxBody))
		return
	case !utf8.ValidString(body.Body):
		h.fail(w, r, httpx.Errorf(http.StatusBadRequest, "body must be UTF-8"))
		return
	}
	m, err := h.svc.PostAsUser(r.Context(), accounts.SessionFrom(r.Context()).UserID, id, body.Body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"message": m})
}

func (h *Handler) read(w http.ResponseWriter, r *http.Request) {
	id, ok := h.channel(w, r)
	if !ok {
		return
	}
	var body struct {
		Number *int64 `json:"number"`
	}
	// No body (or no number) marks the whole feed read, up to its newest message.
	if _, err := httpx.DecodeOptionalJSON(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	if body.Number != nil && *body.Number < 0 {
		h.fail(w, r, httpx.Errorf(http.StatusBadRequest, "number must be the number of the last message read"))
		return
	}
	number := int64(math.MaxInt64)
	if body.Number != nil {
		number = *body.Number
	}
	st, err := h.svc.MarkRead(r.Context(), accounts.SessionFrom(r.Context()).UserID, id, number)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, st)
}
