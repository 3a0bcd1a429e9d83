package issues

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/internal/httpx"
)

// ErrNotAdminSLA refuses SLA settings to agents, naming the rule.
var ErrNotAdminSLA = httpx.Errorf(http.StatusForbidden, "only admins may view or change SLA and auto-close settings")

// MaxStatsRange is the longest range GET /api/stats covers.
const MaxStatsRange = 366 * 24 * time.Hour

// SLAHandler serves SLA policies and settings (admins), an issue's SLA clocks and the
// handling-time figures.
type SLAHandler struct {
	svc      *Service
	channels *channels.Service
	log      *slog.Logger
}

// NewSLAHandler returns the HTTP handlers for SLAs and figures.
func NewSLAHandler(s *Service, ch *channels.Service, log *slog.Logger) *SLAHandler {
	return &SLAHandler{svc: s, channels: ch, log: log}
}

// Register mounts the routes on r, which must already require a session.
//
//	GET|PUT|DELETE /api/channels/{id}/sla   a channel's SLA policy (admins)
//	GET|PUT        /api/settings/sla        alert channel and auto-close (admins)
//	GET            /api/issues/{id}/sla     an issue's SLA clocks now (who may see the issue)
//	GET            /api/stats               handling-time figures and counts (everyone)
func (h *SLAHandler) Register(r *mux.Router) {
	r.Handle("/api/channels/{id:[0-9]+}/sla", h.admin(h.getPolicy)).Methods(http.MethodGet)
	r.Handle("/api/channels/{id:[0-9]+}/sla", h.admin(h.putPolicy)).Methods(http.MethodPut)
	r.Handle("/api/channels/{id:[0-9]+}/sla", h.admin(h.deletePolicy)).Methods(http.MethodDelete)
	r.Handle("/api/settings/sla", h.admin(h.getSettings)).Methods(http.MethodGet)
	r.Handle("/api/settings/sla", h.admin(h.putSettings)).Methods(http.MethodPut)
	r.HandleFunc("/api/issues/{id:[0-9]+}/sla", h.issueSLA).Methods(http.MethodGet)
	r.HandleFunc("/api/stats", h.stats).Methods(http.MethodGet)
}

func (h *SLAHandler) admin(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sess := accounts.SessionFrom(r.Context()); sess == nil || !sess.User.IsAdmin() {
			httpx.WriteError(w, r, h.log, ErrNotAdminSLA)
			return
		}
		next(w, r)
	})
}

func (h *SLAHandler) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, channels.ErrNotFound):
		err = httpx.Errorf(http.StatusNotFound, "no such channel")
	case errors.Is(err, ErrNoSLAPolicy):
		err = httpx.Errorf(http.StatusNotFound, "this channel has no SLA policy")
	case errors.Is(err, ErrNotFound):
		err = httpx.Errorf(http.StatusNotFound, "no such issue")
	}
	httpx.WriteError(w, r, h.log, err)
}

// channel loads the channel named in the path.
func (h *SLAHandler) channel(w http.ResponseWriter, r *http.Request) (*channels.Channel, bool) {
	id, _ := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	ch, err := h.channels.Get(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	return ch, true
}

func (h *SLAHandler) getPolicy(w http.ResponseWriter, r *http.Request) {
	ch, ok := h.channel(w, r)
	if !ok {
		return
	}
	p, err := h.svc.SLAPolicy(r.Context(), ch.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, p)
}

func (h *SLAHandler) putPolicy(w http.ResponseWriter, r *http.Request) {
	ch, ok := h.channel(w, r)
	if !ok {
		return
	}
	var body struct {
		FirstResponseMinutes *int  `json:"first_response_minutes"`
		ResolutionMinutes    *int  `json:"resolution_minutes"`
		PauseWhileWaiting    *bool `json:"pause_while_waiting"`
		WarnPercent          *int  `json:"warn_percent"`
	}
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	switch {
	case body.FirstResponseMinutes == nil:
		h.fail(w, r, httpx.Errorf(http.StatusBadRequest, "first_response_minutes is required"))
		return
	case body.ResolutionMinutes == nil:
		h.fail(w, r, httpx.Errorf(http.StatusBadRequest, "resolution_minutes is required"))
		return
	}
	p := SLAPolicy{ChannelID: ch.ID, FirstResponseMinutes: *body.FirstResponseMinutes, ResolutionMinutes: *body.ResolutionMinutes,
		WarnPercent: DefaultWarnPercent}
	if body.PauseWhileWaiting != nil {
		p.PauseWhileWaiting = *body.PauseWhileWaiting
	}
	if body.WarnPercent != nil {
		if *body.WarnPercent == 0 {
			h.fail(w, r, httpx.Errorf(http.StatusBadRequest, "warn_percent must be between %d and %d", MinWarnPercent, MaxWarnPercent))
			return
		}
		p.WarnPercent = *body.WarnPercent
	}
	out, err := h.svc.SetSLAPolicy(r.Context(), p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (h *SLAHandler) deletePolicy(w http.ResponseWriter, r *http.Request) {
	ch, ok := h.channel(w, r)
	if !ok {
		return
	}
	if err := h.svc.DeleteSLAPolicy(r.Context(), ch.ID); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *SLAHandler) getSettings(w http.ResponseWriter, r *http.Request) {
	s, err := h.svc.SLASettings(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, s)
}

// putSettings changes the fields sent and keeps the others; "alert_channel_id": null
// turns alerts off.
func (h *SLAHandler) putSettings(w http.ResponseWriter, r *http.Request) {
	var body struct {
		AlertChannelID   json.RawMessage `json:"alert_channel_id"`
		AutoCloseMinutes *int            `json:"auto_close_minutes"`
	}
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	cur, err := h.svc.SLASettings(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	switch raw := bytes.TrimSpace(body.AlertChannelID); {
	case len(raw) == 0: // not sent: keep
	case bytes.Equal(raw, []byte("null")):
		cur.AlertChannelID = nil
	default:
		var id int64
		if err := json.Unmarshal(raw, &id); err != nil || id <= 0 {
			h.fail(w, r, httpx.Errorf(http.StatusBadRequest, "alert_channel_id must be a channel id or null"))
			return
		}
		if _, err := h.channels.Get(r.Context(), id); errors.Is(err, channels.ErrNotFound) {
			h.fail(w, r, httpx.Errorf(http.StatusBadRequest, "alert_channel_id: no channel %d", id))
			return
		} else if err != nil {
			h.fail(w, r, err)
			return
		}
		cur.AlertChannelID = &id
	}
	if body.AutoCloseMinutes != nil {
		cur.AutoCloseMinutes = *body.AutoCloseMinutes
	}
	out, err := h.svc.SetSLASettings(r.Context(), *cur)
	if errors.Is(err, channels.ErrNotFound) {
		err = httpx.Errorf(http.StatusBadRequest, "alert_channel_id: no such channel")
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// issueSLA answers {"sla": {...}} with the issue's clocks now, or {"sla": null} when the
// issue has no SLA. Who may not see the issue gets 404, as for the issue itself.
func (h *SLAHandler) issueSLA(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	issue, err := h.svc.Get(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ok, err := h.channels.IsMember(r.Context(), accounts.SessionFrom(r.Context()).UserID, issue.ChannelID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !ok {
		h.fail(w, r, ErrNotFound)
		return
	}
	sla, err := h.svc.IssueSLA(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"sla": sla})
}

// stats answers GET /api/stats?from=RFC3339&to=RFC3339[&channel=ID]: the figures of the
// issues opened in [from, to) in the channels the reader belongs to. from and to default
// to the last 30 days.
func (h *SLAHandler) stats(w http.ResponseWriter, r *http.Request) {
	bad := func(format string, args ...any) {
		h.fail(w, r, httpx.Errorf(http.StatusBadRequest, format, args...))
	}
	q := r.URL.Query()
	to := h.svc.now()
	if s := q.Get("to"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			bad("to must be an RFC 3339 time, like 2026-03-01T00:00:00Z")
			return
		}
		to = t.UTC()
	}
	from := to.Add(-30 * 24 * time.Hour)
	if s := q.Get("from"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			bad("from must be an RFC 3339 time, like 2026-03-01T00:00:00Z")
			return
		}
		from = t.UTC()
	}
	if !from.Before(to) {
		bad("from must be before to")
		return
	}
	if to.Sub(from) > MaxStatsRange {
		bad("the range from to to may span at most 366 days")
		return
	}
	views, err := h.channels.ForUser(r.Context(), accounts.SessionFrom(r.Context()).UserID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	names := map[int64]string{}
	sq := StatsQuery{From: from, To: to}
	for _, v := range views {
		sq.Channels = append(sq.Channels, v.ID)
		names[v.ID] = v.Name
	}
	if s := q.Get("channel"); s != "" {
		id, err := strconv.ParseInt(s, 10, 64)
		if err != nil || id <= 0 {
			bad("channel must be a positive id")
			return
		}
		if _, ok := names[id]; !ok {
			h.fail(w, r, channels.ErrNotFound)
			return
		}
		sq.ChannelID = id
	}
	st, err := h.svc.Stats(r.Context(), sq)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	for _, c := range st.Channels {
		c.Name = names[c.ChannelID]
	}
	httpx.WriteJSON(w, http.StatusOK, st)
}
