package issues

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/store"
)

// Handler serves the issues API.
type Handler struct {
	svc      *Service
	channels *channels.Service
	log      *slog.Logger
}

// NewHandler returns the HTTP handlers for s.
func NewHandler(s *Service, ch *channels.Service, log *slog.Logger) *Handler {
	return &Handler{svc: s, channels: ch, log: log}
}

// Register mounts the routes on r, which must already require a session.
func (h *Handler) Register(r *mux.Router) {
	r.HandleFunc("/api/issues", h.list).Methods(http.MethodGet)
	r.HandleFunc("/api/issues/{id:[0-9]+}", h.get).Methods(http.MethodGet)
	r.HandleFunc("/api/issues/{id:[0-9]+}/take", h.take).Methods(http.MethodPost)
	r.HandleFunc("/api/issues/{id:[0-9]+}/assign", h.assign).Methods(http.MethodPost)
	r.HandleFunc("/api/issues/{id:[0-9]+}/resolve", h.resolve).Methods(http.MethodPost)
}

// visibleIssue loads the issue named in the path if the user may see it.
func (h *Handler) visibleIssue(w http.ResponseWriter, r *http.Request) (*Issue, bool) {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		httpx.WriteError(w, r, h.log, httpx.ErrNotFound)
		return nil, false
	}
	issue, err := h.svc.Get(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusNotFound, "no such issue"))
		return nil, false
	}
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return nil, false
	}
	ok, err := h.channels.IsMember(r.Context(), accounts.SessionFrom(r.Context()).UserID, issue.ChannelID)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return nil, false
	}
	if !ok {
		httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusNotFound, "no such issue"))
		return nil, false
	}
	return issue, true
}

func actorOf(r *http.Request) Actor {
	sess := accounts.SessionFrom(r.Context())
	return Actor{UserID: sess.UserID, Admin: sess.User != nil && sess.User.IsAdmin()}
}

func (h *Handler) answer(w http.ResponseWriter, r *http.Request, issue *Issue, err error) {
	if errors.Is(err, ErrNotFound) {
		err = httpx.Errorf(http.StatusNotFound, "no such issue")
	}
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"issue": issue})
}

func (h *Handler) take(w http.ResponseWriter, r *http.Request) {
	issue, ok := h.visibleIssue(w, r)
	if !ok {
		return
	}
	updated, err := h.svc.Take(r.Context(), actorOf(r), issue.ID)
	h.answer(w, r, updated, err)
}

func (h *Handler) resolve(w http.ResponseWriter, r *http.Request) {
	issue, ok := h.visibleIssue(w, r)
	if !ok {
		return
	}
	updated, err := h.svc.Resolve(r.Context(), actorOf(r), issue.ID)
	h.answer(w, r, updated, err)
}

func (h *Handler) assign(w http.ResponseWriter, r *http.Request) {
	issue, ok := h.visibleIssue(w, r)
	if !ok {
		return
	}
	var body struct {
		AssigneeID int64 `json:"assignee_id"`
	}
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	if body.AssigneeID <= 0 {
		httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusBadRequest, "assignee_id must be a user id"))
		return
	}
	updated, err := h.svc.Assign(r.Context(), actorOf(r), issue.ID, body.AssigneeID)
	if errors.Is(err, store.ErrForeignKey) {
		err = httpx.Errorf(http.StatusBadRequest, "no user %d", body.AssigneeID)
	}
	h.answer(w, r, updated, err)
}

// visibleChannels lists the channels whose issues the user may see.
func (h *Handler) visibleChannels(r *http.Request) ([]int64, error) {
	views, err := h.channels.ForUser(r.Context(), accounts.SessionFrom(r.Context()).UserID)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(views))
	for i, v := range views {
		ids[i] = v.ID
	}
	return ids, nil
}

var validStatus = map[string]Status{"open": Open, "in_progress": InProgress, "resolved": Resolved, "closed": Closed}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := Filter{Query: q.Get("q")}
	bad := func(format string, args ...any) {
		httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusBadRequest, format, args...))
	}
	if s := q.Get("status"); s != "" {
		for part := range strings.SplitSeq(s, ",") {
			st, ok := validStatus[strings.TrimSpace(part)]
			if !ok {
				bad("unknown status %q; want open, in_progress, resolved or closed", part)
				return
			}
			f.Statuses = append(f.Statuses, st)
		}
	}
	switch a := q.Get("assignee"); a {
	case "":
	case "me":
		id := accounts.SessionFrom(r.Context()).UserID
		f.AssigneeID = &id
	case "none":
		f.Unassigned = true
	default:
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id <= 0 {
			bad("assignee must be me, none or a user id")
			return
		}
		f.AssigneeID = &id
	}
	for name, dst := range map[string]*int64{"channel": &f.ChannelID, "before": &f.Before} {
		if s := q.Get(name); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n <= 0 {
				bad("%s must be a positive id", name)
				return
			}
			*dst = n
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			bad("limit must be between 1 and 200")
			return
		}
		f.Limit = n
	}
	var err error
	if f.Channels, err = h.visibleChannels(r); err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	list, more, err := h.svc.List(r.Context(), f)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	out := map[string]any{"issues": list, "has_more": more}
	if more {
		out["next_before"] = list[len(list)-1].ID
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	issue, ok := h.visibleIssue(w, r)
	if !ok {
		return
	}
	comments, activity, err := h.svc.Detail(r.Context(), issue.ID)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"issue": issue, "comments": comments, "activity": activity})
}
