package channels

import (
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/httpx"
)

// maxChannelName bounds a team channel's name, in bytes.
const maxChannelName = 80

// view answers one channel as the session's user sees it.
func (h *Handler) view(w http.ResponseWriter, r *http.Request, status int, channelID int64) {
	v, err := h.svc.View(r.Context(), accounts.SessionFrom(r.Context()).UserID, channelID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, status, map[string]any{"channel": v})
}

// openDirect: POST /api/direct {"user_id":N} finds or starts the conversation with N.
func (h *Handler) openDirect(w http.ResponseWriter, r *http.Request) {
	var body struct {
		UserID *int64 `json:"user_id"`
	}
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	if body.UserID == nil || *body.UserID <= 0 {
		h.fail(w, r, httpx.Errorf(http.StatusBadRequest, "user_id must be the id of a user"))
		return
	}
	ch, err := h.svc.OpenDirect(r.Context(), accounts.SessionFrom(r.Context()).UserID, *body.UserID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.view(w, r, http.StatusOK, ch.ID)
}

// createTeam: POST /api/channels {"name","member_ids"} creates a team channel; anyone may,
// and the creator is always a member.
func (h *Handler) createTeam(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name      string  `json:"name"`
		MemberIDs []int64 `json:"member_ids"`
	}
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	name := strings.TrimSpace(body.Name)
	switch {
	case name == "":
		h.fail(w, r, httpx.Errorf(http.StatusBadRequest, "name must not be empty"))
		return
	case !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl):
		h.fail(w, r, httpx.Errorf(http.StatusBadRequest, "name must be UTF-8 text without control characters"))
		return
	case len(name) > maxChannelName:
		h.fail(w, r, httpx.Errorf(http.StatusBadRequest, "name is longer than %d bytes", maxChannelName))
		return
	}
	for _, id := range body.MemberIDs {
		if id <= 0 {
			h.fail(w, r, httpx.Errorf(http.StatusBadRequest, "member_ids must be user ids, not %d", id))
			return
		}
	}
	ch, err := h.svc.CreateTeamBy(r.Context(), accounts.SessionFrom(r.Context()).UserID, name, body.MemberIDs)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.view(w, r, http.StatusCreated, ch.ID)
}

// members: GET /api/channels/{id}/members → {"all_agents":bool,"member_ids":[…]}; for an
// all-agents channel the list is empty and means everyone.
func (h *Handler) members(w http.ResponseWriter, r *http.Request) {
	id, ok := h.channel(w, r)
	if !ok {
		return
	}
	all, ids, err := h.svc.MemberIDs(r.Context(), h.svc.db, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if ids == nil {
		ids = []int64{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"all_agents": all, "member_ids": ids})
}

func (h *Handler) memberVars(w http.ResponseWriter, r *http.Request) (channelID, userID int64, ok bool) {
	channelID, err1 := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	userID, err2 := strconv.ParseInt(mux.Vars(r)["user"], 10, 64)
	if err1 != nil {
		h.fail(w, r, ErrNotFound)
		return 0, 0, false
	}
	if err2 != nil {
		h.fail(w, r, ErrNoSuchUser)
		return 0, 0, false
	}
	return channelID, userID, true
}

// addMember: PUT /api/channels/{id}/members/{user} → 204; members (and admins) add people
// to team channels.
func (h *Handler) addMember(w http.ResponseWriter, r *http.Request) {
	channelID, userID, ok := h.memberVars(w, r)
	if !ok {
		return
	}
	if err := h.svc.AddMember(r.Context(), accounts.SessionFrom(r.Context()).User, channelID, userID); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// removeMember: DELETE /api/channels/{id}/members/{user} → 204; leave, or (admins) remove.
func (h *Handler) removeMember(w http.ResponseWriter, r *http.Request) {
	channelID, userID, ok := h.memberVars(w, r)
	if !ok {
		return
	}
	if err := h.svc.RemoveMember(r.Context(), accounts.SessionFrom(r.Context()).User, channelID, userID); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// setAccess: PUT /api/channels/{id}/access {"all_agents":bool,"member_ids":[…]} (admins)
// narrows an SMS or email channel to some agents or widens it to all.
func (h *Handler) setAccess(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		h.fail(w, r, ErrNotFound)
		return
	}
	var body struct {
		AllAgents *bool   `json:"all_agents"`
		MemberIDs []int64 `json:"member_ids"`
	}
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		h.fail(w, r, err)
		return
	}
	if body.AllAgents == nil {
		h.fail(w, r, httpx.Errorf(http.StatusBadRequest, "all_agents must be true or false"))
		return
	}
	if *body.AllAgents && len(body.MemberIDs) > 0 {
		h.fail(w, r, httpx.Errorf(http.StatusBadRequest, "member_ids goes with all_agents false"))
		return
	}
	a, err := h.svc.SetAccess(r.Context(), accounts.SessionFrom(r.Context()).User, id, Access{AllAgents: *body.AllAgents, MemberIDs: body.MemberIDs})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, a)
}
