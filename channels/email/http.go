package email

import (
	"context"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/issues"
	"github.com/switchboard-hq/switchboard/store"
)

// IssueReader is what the HTTP handlers need from issues to authorize and list.
type IssueReader interface {
	Get(ctx context.Context, id int64) (*issues.Issue, error)
	Detail(ctx context.Context, id int64) ([]*issues.Comment, []*issues.Activity, error)
}

// Members answers whether a user belongs to a channel: who may see an issue.
type Members interface {
	IsMember(ctx context.Context, userID, channelID int64) (bool, error)
}

// Handler serves stored mail to agents and quarantined mail to admins.
type Handler struct {
	repo    *repo
	issues  IssueReader
	members Members
	log     *slog.Logger
}

// NewHandler returns the HTTP handlers. They serve mail stored by any Service on db,
// whether or not a mailbox is configured now.
func NewHandler(db *store.DB, is IssueReader, members Members, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{repo: newRepo(db, nil), issues: is, members: members, log: log}
}

// ErrNotAdmin refuses the quarantine to agents.
var ErrNotAdmin = httpx.Errorf(http.StatusForbidden, "only admins may see and handle quarantined mail")

// Register mounts the routes on r, which must already require a session.
//
//	GET    /api/issues/{id}/email            the issue's mails: whole text, original, attachments
//	GET    /api/attachments/{id}             an attachment, always as a download
//	GET    /api/email/messages/{id}/raw      a mail's original (.eml), as a download
//	GET    /api/email/quarantine             quarantined mail (admins)
//	GET    /api/email/quarantine/{id}/raw    a quarantined mail's bytes (admins)
//	DELETE /api/email/quarantine/{id}        dismiss a quarantined mail (admins)
func (h *Handler) Register(r *mux.Router) {
	r.HandleFunc("/api/issues/{id:[0-9]+}/email", h.issueMail).Methods(http.MethodGet)
	r.HandleFunc("/api/attachments/{id:[0-9]+}", h.attachment).Methods(http.MethodGet)
	r.HandleFunc("/api/email/messages/{id:[0-9]+}/raw", h.raw).Methods(http.MethodGet)
	r.HandleFunc("/api/email/quarantine", h.admin(h.quarantine)).Methods(http.MethodGet)
	r.HandleFunc("/api/email/quarantine/{id:[0-9]+}/raw", h.admin(h.quarantinedRaw)).Methods(http.MethodGet)
	r.HandleFunc("/api/email/quarantine/{id:[0-9]+}", h.admin(h.dismiss)).Methods(http.MethodDelete)
}

func (h *Handler) admin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if sess := accounts.SessionFrom(r.Context()); sess == nil || !sess.User.IsAdmin() {
			httpx.WriteError(w, r, h.log, ErrNotAdmin)
			return
		}
		next(w, r)
	}
}

func pathID(r *http.Request) int64 {
	id, _ := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	return id
}

// mayView loads an issue if the session's user may see it (a member of its channel).
// Refusals do not say whether the issue exists.
func (h *Handler) mayView(r *http.Request, issueID int64) (*issues.Issue, error) {
	issue, err := h.issues.Get(r.Context(), issueID)
	if errors.Is(err, issues.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	sess := accounts.SessionFrom(r.Context())
	if sess == nil {
		return nil, httpx.ErrUnauthorized
	}
	ok, err := h.members.IsMember(r.Context(), sess.UserID, issue.ChannelID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	return issue, nil
}

// mayViewMail authorizes access to a stored mail by the issue its comment is in now.
func (h *Handler) mayViewMail(r *http.Request, messageID string) error {
	issueID, err := h.repo.issueOf(r.Context(), messageID)
	if err != nil {
		return err
	}
	_, err = h.mayView(r, issueID)
	return err
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error, what string) {
	if errors.Is(err, ErrNotFound) {
		err = httpx.Errorf(http.StatusNotFound, "no such %s", what)
	}
	httpx.WriteError(w, r, h.log, err)
}

// issueMail answers {"messages":[…]}: for each customer comment of the issue that came by
// email, its mail's whole text (full_body), links to the original and the attachments.
func (h *Handler) issueMail(w http.ResponseWriter, r *http.Request) {
	issue, err := h.mayView(r, pathID(r))
	if err != nil {
		h.fail(w, r, err, "issue")
		return
	}
	comments, _, err := h.issues.Detail(r.Context(), issue.ID)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	var ids []string
	for _, c := range comments {
		if c.Kind == issues.KindCustomer && c.ExternalID != nil {
			ids = append(ids, *c.ExternalID)
		}
	}
	stored, err := h.repo.messages(r.Context(), ids)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	out := []*Stored{}
	for _, c := range comments {
		if c.Kind != issues.KindCustomer || c.ExternalID == nil {
			continue
		}
		if m, ok := stored[*c.ExternalID]; ok {
			m.CommentID = c.ID
			out = append(out, m)
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"messages": out})
}

func (h *Handler) attachment(w http.ResponseWriter, r *http.Request) {
	a, data, msgID, err := h.repo.attachment(r.Context(), pathID(r))
	if err == nil {
		err = h.mayViewMail(r, msgID)
	}
	if err != nil {
		h.fail(w, r, err, "attachment")
		return
	}
	if data == nil {
		httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusNotFound,
			"attachment %q (%d bytes) was larger than the size limit and was not stored", a.Filename, a.Size))
		return
	}
	serveDownload(w, a.Filename, a.ContentType, data)
}

func (h *Handler) raw(w http.ResponseWriter, r *http.Request) {
	raw, msgID, err := h.repo.raw(r.Context(), pathID(r))
	if err == nil {
		err = h.mayViewMail(r, msgID)
	}
	if err != nil {
		h.fail(w, r, err, "mail")
		return
	}
	serveDownload(w, "message-"+strconv.FormatInt(pathID(r), 10)+".eml", "message/rfc822", raw)
}

func (h *Handler) quarantine(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			httpx.WriteError(w, r, h.log, httpx.Errorf(http.StatusBadRequest, "limit must be between 1 and 1000"))
			return
		}
		limit = n
	}
	list, err := h.repo.quarantined(r.Context(), limit)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"quarantine": list})
}

func (h *Handler) quarantinedRaw(w http.ResponseWriter, r *http.Request) {
	raw, err := h.repo.quarantinedRaw(r.Context(), pathID(r))
	if err != nil {
		h.fail(w, r, err, "quarantined mail")
		return
	}
	serveDownload(w, "quarantined-"+strconv.FormatInt(pathID(r), 10)+".eml", "message/rfc822", raw)
}

func (h *Handler) dismiss(w http.ResponseWriter, r *http.Request) {
	if err := h.repo.dismiss(r.Context(), pathID(r)); err != nil {
		h.fail(w, r, err, "quarantined mail")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// safeTypes are the content types served as themselves; everything else, and above all
// anything a browser would run or render as a page of our origin (HTML, SVG, XML,
// scripts), is served as application/octet-stream.
var safeTypes = map[string]bool{
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true, "image/bmp": true,
	"image/tiff": true, "image/heic": true, "application/pdf": true, "text/plain": true, "text/csv": true,
	"text/calendar": true, "message/rfc822": true, "application/zip": true, "application/gzip": true,
	"application/msword": true, "application/vnd.ms-excel": true, "application/vnd.ms-powerpoint": true,
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document":   true,
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":         true,
	"application/vnd.openxmlformats-officedocument.presentationml.presentation": true,
	"audio/mpeg": true, "audio/ogg": true, "audio/wav": true, "video/mp4": true, "video/quicktime": true,
}

// SafeContentType is the Content-Type an attachment of the declared type is served with.
func SafeContentType(declared string) string {
	mt, _, err := mime.ParseMediaType(declared)
	if err != nil || !safeTypes[mt] {
		return "application/octet-stream"
	}
	return mt
}

// serveDownload sends bytes as a file to save, never as a page: Content-Disposition
// attachment, a safe Content-Type, no sniffing, and a sandboxing CSP should a browser
// render it anyway.
func serveDownload(w http.ResponseWriter, filename, contentType string, data []byte) {
	disp := mime.FormatMediaType("attachment", map[string]string{"filename": filename})
	if disp == "" {
		disp = `attachment; filename="attachment"`
	}
	hdr := w.Header()
	hdr.Set("Content-Type", SafeContentType(contentType))
	hdr.Set("Content-Disposition", disp)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	hdr.Set("Cache-Control", "private, no-store")
	hdr.Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}
