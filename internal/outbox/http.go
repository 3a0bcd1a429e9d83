package outbox

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/switchboard-hq/switchboard/internal/httpx"
)

// Access decides whether the request's user may see (act false) or retry and discard
// (act true) the deliveries of an issue; issueID 0 is a message of no issue. It returns
// an *httpx.Error to refuse.
type Access func(r *http.Request, issueID int64, act bool) error

// Handler serves the outbox's API.
type Handler struct {
	svc    *Service
	access Access
	log    *slog.Logger
}

// NewHandler returns the outbox's HTTP handlers.
func NewHandler(s *Service, access Access, log *slog.Logger) *Handler {
	return &Handler{svc: s, access: access, log: log}
}

// Register mounts the routes on r, which must already require a session:
//
//	GET  /api/issues/{id}/deliveries   the issue's outbound messages, oldest first
//	GET  /api/outbox/{id}              one message
//	POST /api/outbox/{id}/retry        send a failed or unknown message again
//	POST /api/outbox/{id}/discard      give up on a waiting, failed or unknown message
func (h *Handler) Register(r *mux.Router) {
	r.HandleFunc("/api/issues/{id:[0-9]+}/deliveries", h.forIssue).Methods(http.MethodGet)
	r.HandleFunc("/api/outbox/{id:[0-9]+}", h.get).Methods(http.MethodGet)
	r.HandleFunc("/api/outbox/{id:[0-9]+}/retry", h.act(h.svc.Retry)).Methods(http.MethodPost)
	r.HandleFunc("/api/outbox/{id:[0-9]+}/discard", h.act(h.svc.Discard)).Methods(http.MethodPost)
}

func pathID(r *http.Request) int64 {
	id, _ := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	return id
}

func (h *Handler) forIssue(w http.ResponseWriter, r *http.Request) {
	id := pathID(r)
	if err := h.access(r, id, false); err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	list, err := h.svc.ForIssue(r.Context(), id)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"deliveries": list})
}

// visible loads the row named in the path if the user may see (or act on) it. A row
// the user may not see is answered as missing.
func (h *Handler) visible(w http.ResponseWriter, r *http.Request, act bool) (*Delivery, bool) {
	d, err := h.svc.Get(r.Context(), pathID(r))
	if err == nil {
		var issue int64
		if d.IssueID != nil {
			issue = *d.IssueID
		}
		err = h.access(r, issue, act)
		var he *httpx.Error
		if errors.As(err, &he) && he.Status == http.StatusNotFound {
			err = ErrNotFound
		}
	}
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return nil, false
	}
	return d, true
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	if d, ok := h.visible(w, r, false); ok {
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"delivery": d})
	}
}

func (h *Handler) act(fn func(ctx context.Context, id int64) (*Delivery, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		d, ok := h.visible(w, r, true)
		if !ok {
			return
		}
		d, err := fn(r.Context(), d.ID)
		if err != nil {
			httpx.WriteError(w, r, h.log, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"delivery": d})
	}
}
