package issues

import (
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/httpx"
)

// RegisterSplitMerge mounts split, merge and the customer routes on r, which must already
// require a session.
func (h *Handler) RegisterSplitMerge(r *mux.Router) {
	r.HandleFunc("/api/issues/{id:[0-9]+}/split", h.split).Methods(http.MethodPost)
	r.HandleFunc("/api/issues/{id:[0-9]+}/merge", h.merge).Methods(http.MethodPost)
	r.HandleFunc("/api/customers/{id:[0-9]+}/merge", h.mergeCustomer).Methods(http.MethodPost)
}

func (h *Handler) split(w http.ResponseWriter, r *http.Request) {
	var body struct {
		CommentID int64 `json:"comment_id"`
	}
	issue, ok := h.issueAndBody(w, r, &body)
	if !ok {
		return
	}
	if body.CommentID <= 0 {
		httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusBadRequest, "comment_id must be the id of a customer message of this issue"))
		return
	}
	created, err := h.svc.Split(r.Context(), actorOf(r), issue.ID, body.CommentID)
	if err != nil {
		httpx.WriteError(w, r, h.log, notFoundAsHTTP(err))
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"issue": created})
}

func (h *Handler) merge(w http.ResponseWriter, r *http.Request) {
	var body struct {
		IntoIssueID int64 `json:"into_issue_id"`
	}
	issue, ok := h.issueAndBody(w, r, &body)
	if !ok {
		return
	}
	into, err := h.svc.Get(r.Context(), body.IntoIssueID)
	if err == nil {
		var member bool
		member, err = h.channels.IsMember(r.Context(), accounts.SessionFrom(r.Context()).UserID, into.ChannelID)
		if err == nil && !member {
			err = ErrNotFound
		}
	}
	if err != nil {
		httpx.WriteError(w, r, h.log, notFoundAsHTTP(err))
		return
	}
	merged, err := h.svc.Merge(r.Context(), actorOf(r), issue.ID, into.ID)
	if err != nil {
		httpx.WriteError(w, r, h.log, notFoundAsHTTP(err))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"issue": merged})
}

func (h *Handler) mergeCustomer(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	var body struct {
		IntoCustomerID int64 `json:"into_customer_id"`
	}
	if err := httpx.DecodeJSON(w, r, &body); err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	c, err := h.svc.MergeCustomers(r.Context(), actorOf(r), id, body.IntoCustomerID)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"customer": c})
}

// notFoundAsHTTP turns the service's not-found sentinel into a 404 for clients.
func notFoundAsHTTP(err error) error {
	if err == ErrNotFound {
		return httpx.Errorf(http.StatusNotFound, "no such issue")
	}
	return err
}
