package notify

import (
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/httpx"
)

// ErrNotAdmin refuses the organisation's defaults to agents.
var ErrNotAdmin = httpx.Errorf(http.StatusForbidden, "only admins may see or change the organisation's notification defaults")

// Handler serves the notification API.
type Handler struct {
	svc *Service
	log *slog.Logger
}

// NewHandler returns the HTTP handlers of s.
func NewHandler(s *Service, log *slog.Logger) *Handler { return &Handler{svc: s, log: log} }

// Register mounts the routes on r, which must already require a session:
//
//	GET|PUT /api/preferences                  my preferences (resolved; PUT merges a partial document)
//	GET|PUT /api/org/preferences              the organisation's defaults (admins)
//	GET     /api/notifications                my inbox, newest first (?before=ID&limit=N)
//	POST    /api/notifications/{id}/read      mark one read
//	POST    /api/notifications/read-all       mark all read
func (h *Handler) Register(r *mux.Router) {
	r.HandleFunc("/api/preferences", h.getPrefs).Methods(http.MethodGet)
	r.HandleFunc("/api/preferences", h.putPrefs).Methods(http.MethodPut)
	r.HandleFunc("/api/org/preferences", h.admin(h.getOrgPrefs)).Methods(http.MethodGet)
	r.HandleFunc("/api/org/preferences", h.admin(h.putOrgPrefs)).Methods(http.MethodPut)
	r.HandleFunc("/api/notifications", h.list).Methods(http.MethodGet)
	r.HandleFunc("/api/notifications/read-all", h.readAll).Methods(http.MethodPost)
	r.HandleFunc("/api/notifications/{id:[0-9]+}/read", h.read).Methods(http.MethodPost)
}

func (h *Handler) admin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !accounts.SessionFrom(r.Context()).User.IsAdmin() {
			httpx.WriteError(w, r, h.log, ErrNotAdmin)
			return
		}
		next(w, r)
	}
}

func (h *Handler) getPrefs(w http.ResponseWriter, r *http.Request) {
	res, err := h.svc.Preferences(r.Context(), accounts.SessionFrom(r.Context()).UserID)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}

func (h *Handler) putPrefs(w http.ResponseWriter, r *http.Request) {
	var patch map[string]any
	if err := httpx.DecodeJSON(w, r, &patch); err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	res, err := h.svc.SetPreferences(r.Context(), accounts.SessionFrom(r.Context()).UserID, patch)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}

func (h *Handler) getOrgPrefs(w http.ResponseWriter, r *http.Request) {
	res, err := h.svc.OrgPreferences(r.Context(), accounts.SessionFrom(r.Context()).UserID)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}

func (h *Handler) putOrgPrefs(w http.ResponseWriter, r *http.Request) {
	var patch map[string]any
	if err := httpx.DecodeJSON(w, r, &patch); err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	res, err := h.svc.SetOrgPreferences(r.Context(), accounts.SessionFrom(r.Context()).UserID, patch)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}

// maxPage bounds ?limit.
const maxPage = 200

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var before int64
	limit := 50
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusBadRequest, "before: %q is not a notification id", v))
			return
		}
		before = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPage {
			httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusBadRequest, "limit: %q is not a number from 1 to %d", v, maxPage))
			return
		}
		limit = n
	}
	page, err := h.svc.List(r.Context(), accounts.SessionFrom(r.Context()).UserID, before, limit)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, page)
}

func (h *Handler) read(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		httpx.WriteError(w, r, h.log, ErrNotFound)
		return
	}
	n, unread, err := h.svc.MarkRead(r.Context(), accounts.SessionFrom(r.Context()).UserID, id)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"notification": n, "unread": unread})
}

func (h *Handler) readAll(w http.ResponseWriter, r *http.Request) {
	res, err := h.svc.MarkAllRead(r.Context(), accounts.SessionFrom(r.Context()).UserID)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}
