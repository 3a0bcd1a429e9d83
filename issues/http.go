package issues

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

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
//
//	GET    /api/issues                  list (filters: status, assignee, channel, priority, q, snoozed; paging), each with its SLA summary
//	GET    /api/issues/{id}             the issue, its comments and activity
//	PATCH  /api/issues/{id}             {"priority"?, "status"?, "last_seen_comment_id"?}
//	POST   /api/issues/{id}/take
//	POST   /api/issues/{id}/assign      {"assignee_id": N | null}
//	POST   /api/issues/{id}/unassign
//	POST   /api/issues/{id}/resolve     optional {"last_seen_comment_id"}
//	POST   /api/issues/{id}/close       optional {"last_seen_comment_id"}
//	POST   /api/issues/{id}/reopen      optional {"last_seen_comment_id"}
//	POST   /api/issues/{id}/notes       {"body"}
//	POST   /api/issues/{id}/replies     {"body", "last_seen_comment_id"?}
//	POST   /api/issues/{id}/snooze      {"until": RFC 3339}
//	POST   /api/issues/{id}/unsnooze
//	POST   /api/issues/{id}/contacted
//	POST   /api/issues/{id}/viewing     optional {"typing": bool}
//	GET    /api/customers/{id}          the customer, their issues and whether I follow them
//	POST   /api/customers/{id}/follow
//	DELETE /api/customers/{id}/follow
func (h *Handler) Register(r *mux.Router) {
	const issue = "/api/issues/{id:[0-9]+}"
	r.HandleFunc("/api/issues", h.list).Methods(http.MethodGet)
	r.HandleFunc(issue, h.get).Methods(http.MethodGet)
	r.HandleFunc(issue, h.update).Methods(http.MethodPatch)
	r.HandleFunc(issue+"/take", h.oneClick(h.svc.Take)).Methods(http.MethodPost)
	r.HandleFunc(issue+"/assign", h.assign).Methods(http.MethodPost)
	r.HandleFunc(issue+"/unassign", h.oneClick(h.svc.Unassign)).Methods(http.MethodPost)
	r.HandleFunc(issue+"/resolve", h.status(Resolved)).Methods(http.MethodPost)
	r.HandleFunc(issue+"/close", h.status(Closed)).Methods(http.MethodPost)
	r.HandleFunc(issue+"/reopen", h.reopen).Methods(http.MethodPost)
	r.HandleFunc(issue+"/notes", h.note).Methods(http.MethodPost)
	r.HandleFunc(issue+"/replies", h.reply).Methods(http.MethodPost)
	r.HandleFunc(issue+"/snooze", h.snooze).Methods(http.MethodPost)
	r.HandleFunc(issue+"/unsnooze", h.oneClick(h.svc.EndSnooze)).Methods(http.MethodPost)
	r.HandleFunc(issue+"/contacted", h.oneClick(h.svc.MarkContacted)).Methods(http.MethodPost)
	r.HandleFunc(issue+"/viewing", h.viewing).Methods(http.MethodPost)
	// Mounted before RegisterSplitMerge's customer route, which it supersedes.
	r.HandleFunc("/api/customers/{id:[0-9]+}", h.customer).Methods(http.MethodGet)
	r.HandleFunc("/api/customers/{id:[0-9]+}/follow", h.follow(true)).Methods(http.MethodPost)
	r.HandleFunc("/api/customers/{id:[0-9]+}/follow", h.follow(false)).Methods(http.MethodDelete)
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
	h.answerWith(w, r, issue, nil, err)
}

// answerWith writes {"issue":…} (and "comment" when c is set), or the error: a collision
// is a 409 that carries the comments the agent has not seen.
func (h *Handler) answerWith(w http.ResponseWriter, r *http.Request, issue *Issue, c *Comment, err error) {
	var ce *CollisionError
	switch {
	case errors.Is(err, ErrNotFound):
		httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusNotFound, "no such issue"))
	case errors.As(err, &ce):
		httpx.WriteJSON(w, http.StatusConflict, map[string]any{"error": ce.Error(), "new_comments": ce.NewComments})
	case err != nil:
		httpx.WriteError(w, r, h.log, err)
	case c != nil:
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"issue": issue, "comment": c})
	default:
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"issue": issue})
	}
}

// decodeOptional reads a JSON object body into v when there is one: an empty body leaves
// v as it is (the one-click actions need no body).
func decodeOptional(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, httpx.MaxBody))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return httpx.Errorf(http.StatusRequestEntityTooLarge, "body is larger than %d bytes", maxErr.Limit)
		}
		return httpx.Errorf(http.StatusBadRequest, "could not read the body")
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return httpx.DecodeJSON(w, r, v)
}

// oneClick serves an action that takes nothing but the issue: take, unassign, unsnooze,
// contacted.
func (h *Handler) oneClick(act func(ctx context.Context, a Actor, issueID int64) (*Issue, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		issue, ok := h.visibleIssue(w, r)
		if !ok {
			return
		}
		updated, err := act(r.Context(), actorOf(r), issue.ID)
		h.answer(w, r, updated, err)
	}
}

// issueAndBody loads the issue named in the path, if the user may see it, and decodes the
// JSON body into v; on failure it has answered and reports false.
func (h *Handler) issueAndBody(w http.ResponseWriter, r *http.Request, v any) (*Issue, bool) {
	issue, ok := h.visibleIssue(w, r)
	if !ok {
		return nil, false
	}
	if err := httpx.DecodeJSON(w, r, v); err != nil {
		httpx.WriteError(w, r, h.log, err)
		return nil, false
	}
	return issue, true
}

// seenBody is the optional body of the one-click status actions.
type seenBody struct {
	LastSeenCommentID *int64 `json:"last_seen_comment_id"`
}

// status serves resolve and close.
func (h *Handler) status(to Status) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		issue, ok := h.visibleIssue(w, r)
		if !ok {
			return
		}
		var body seenBody
		if err := decodeOptional(w, r, &body); err != nil {
			httpx.WriteError(w, r, h.log, err)
			return
		}
		updated, err := h.svc.SetStatus(r.Context(), actorOf(r), issue.ID, to, body.LastSeenCommentID)
		h.answer(w, r, updated, err)
	}
}

func (h *Handler) reopen(w http.ResponseWriter, r *http.Request) {
	issue, ok := h.visibleIssue(w, r)
	if !ok {
		return
	}
	var body seenBody
	if err := decodeOptional(w, r, &body); err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	updated, err := h.svc.Reopen(r.Context(), actorOf(r), issue.ID, body.LastSeenCommentID)
	h.answer(w, r, updated, err)
}

func (h *Handler) assign(w http.ResponseWriter, r *http.Request) {
	var body struct {
		AssigneeID json.RawMessage `json:"assignee_id"`
	}
	issue, ok := h.issueAndBody(w, r, &body)
	if !ok {
		return
	}
	if string(body.AssigneeID) == "null" {
		updated, err := h.svc.Unassign(r.Context(), actorOf(r), issue.ID)
		h.answer(w, r, updated, err)
		return
	}
	var assignee int64
	if err := json.Unmarshal(body.AssigneeID, &assignee); err != nil || assignee <= 0 {
		httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusBadRequest, "assignee_id must be a user id, or null to unassign"))
		return
	}
	updated, err := h.svc.Assign(r.Context(), actorOf(r), issue.ID, assignee)
	if errors.Is(err, store.ErrForeignKey) {
		err = httpx.Errorf(http.StatusBadRequest, "no user %d", assignee)
	}
	h.answer(w, r, updated, err)
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Priority          *string `json:"priority"`
		Status            *string `json:"status"`
		LastSeenCommentID *int64  `json:"last_seen_comment_id"`
	}
	issue, ok := h.issueAndBody(w, r, &body)
	if !ok {
		return
	}
	u := Update{Priority: body.Priority, LastSeenCommentID: body.LastSeenCommentID}
	if body.Status != nil {
		st := Status(*body.Status)
		u.Status = &st
	}
	updated, err := h.svc.Update(r.Context(), actorOf(r), issue.ID, u)
	h.answer(w, r, updated, err)
}

func (h *Handler) note(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Body string `json:"body"`
	}
	issue, ok := h.issueAndBody(w, r, &body)
	if !ok {
		return
	}
	updated, c, err := h.svc.AddNote(r.Context(), actorOf(r), issue.ID, body.Body)
	h.answerWith(w, r, updated, c, err)
}

func (h *Handler) reply(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Body              string `json:"body"`
		LastSeenCommentID *int64 `json:"last_seen_comment_id"`
	}
	issue, ok := h.issueAndBody(w, r, &body)
	if !ok {
		return
	}
	updated, c, err := h.svc.Reply(r.Context(), actorOf(r), issue.ID, body.Body, body.LastSeenCommentID)
	h.answerWith(w, r, updated, c, err)
}

func (h *Handler) snooze(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Until string `json:"until"`
	}
	issue, ok := h.issueAndBody(w, r, &body)
	if !ok {
		return
	}
	until, err := time.Parse(time.RFC3339Nano, body.Until)
	if err != nil {
		httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusBadRequest, "until must be an RFC 3339 time, as in 2026-11-21T09:00:00Z"))
		return
	}
	updated, err := h.svc.Snooze(r.Context(), actorOf(r), issue.ID, until)
	h.answer(w, r, updated, err)
}

// viewing answers 200 with what it sent, or 204 when the rate limit dropped it.
func (h *Handler) viewing(w http.ResponseWriter, r *http.Request) {
	issue, ok := h.visibleIssue(w, r)
	if !ok {
		return
	}
	var body struct {
		Typing bool `json:"typing"`
	}
	if err := decodeOptional(w, r, &body); err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	uid := accounts.SessionFrom(r.Context()).UserID
	sent, err := h.svc.Viewing(r.Context(), uid, issue.ID, body.Typing)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	if !sent {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"viewing": map[string]any{"issue_id": issue.ID, "user_id": uid, "typing": body.Typing}})
}

func (h *Handler) follow(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
		if err != nil {
			httpx.WriteError(w, r, h.log, ErrCustomerNotFound)
			return
		}
		c, err := h.svc.Follow(r.Context(), accounts.SessionFrom(r.Context()).UserID, id, on)
		if err != nil {
			httpx.WriteError(w, r, h.log, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"customer": c, "following": on})
	}
}

// customer answers the customer profile with "following" for the session's user.
func (h *Handler) customer(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		httpx.WriteError(w, r, h.log, ErrCustomerNotFound)
		return
	}
	chans, err := h.visibleChannels(r)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	v, err := h.svc.ProfileFor(r.Context(), accounts.SessionFrom(r.Context()).UserID, id, chans)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, v)
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

// listedIssue is an issue of GET /api/issues: the issue and its SLA summary, so a list
// or the tracker shows every clock without asking for each issue's.
type listedIssue struct {
	*Issue
	SLA SLASummary `json:"sla"`
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := Filter{Query: q.Get("q")}
	bad := func(format string, args ...any) {
		httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusBadRequest, format, args...))
	}
	if s := q.Get("status"); s != "" {
		for part := range strings.SplitSeq(s, ",") {
			st := Status(strings.TrimSpace(part))
			if !knownStatus(st) {
				bad("unknown status %q; want open, in_progress, resolved or closed", part)
				return
			}
			f.Statuses = append(f.Statuses, st)
		}
	}
	if p := q.Get("priority"); p != "" {
		for part := range strings.SplitSeq(p, ",") {
			part = strings.TrimSpace(part)
			if !validPriority(part) {
				bad("unknown priority %q; want low, normal, high or urgent", part)
				return
			}
			f.Priorities = append(f.Priorities, part)
		}
	}
	switch q.Get("snoozed") {
	case "", "0", "false":
	case "1", "true":
		f.Snoozed = SnoozedIncluded
	case "only":
		f.Snoozed = SnoozedOnly
	default:
		bad("snoozed must be 0, 1 or only")
		return
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
	ids := make([]int64, len(list))
	for i, issue := range list {
		ids[i] = issue.ID
	}
	sums, err := h.svc.SLASummaries(r.Context(), ids)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	listed := make([]listedIssue, len(list))
	for i, issue := range list {
		listed[i] = listedIssue{Issue: issue, SLA: sums[issue.ID]}
	}
	out := map[string]any{"issues": listed, "has_more": more}
	if more {
		out["next_before"] = list[len(list)-1].ID
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	visible, ok := h.visibleIssue(w, r)
	if !ok {
		return
	}
	issue, comments, activity, err := h.svc.View(r.Context(), visible.ID)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"issue": issue, "comments": comments, "activity": activity})
}
