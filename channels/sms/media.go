package sms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/store"
)

// maxMedia is Twilio's limit of media per MMS.
const maxMedia = 10

// Media is one attachment of an inbound MMS: a link to Twilio's copy.
type Media struct {
	CommentID   int64  `json:"comment_id,omitempty"`
	Position    int    `json:"position"`
	URL         string `json:"url"`
	ContentType string `json:"content_type"`
}

// parseMedia reads MediaUrl{N} and MediaContentType{N} for N below NumMedia. Items with
// a URL that is not absolute http(s) are skipped (they would not be links an agent can
// follow, and must never become javascript: links); an odd content type becomes
// application/octet-stream.
func parseMedia(form url.Values) []Media {
	n, err := strconv.Atoi(form.Get("NumMedia"))
	if err != nil || n <= 0 {
		return nil
	}
	var out []Media
	for i := range min(n, maxMedia) {
		raw := form.Get("MediaUrl" + strconv.Itoa(i))
		u, err := url.Parse(raw)
		if err != nil || len(raw) > 2048 || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			continue
		}
		ct := form.Get("MediaContentType" + strconv.Itoa(i))
		if mt, _, err := mime.ParseMediaType(ct); err != nil || len(ct) > 255 {
			ct = "application/octet-stream"
		} else {
			ct = mt
		}
		out = append(out, Media{Position: i, URL: u.String(), ContentType: ct})
	}
	return out
}

// SaveMedia records the media of message sid. Idempotent: a retried webhook adds nothing.
func (s *Store) SaveMedia(ctx context.Context, sid string, media []Media) error {
	if len(media) == 0 {
		return nil
	}
	return s.db.InTx(ctx, func(tx *store.Tx) error {
		for _, m := range media {
			if _, err := tx.ExecContext(ctx, `INSERT INTO sms_media (message_sid, position, url, content_type) VALUES ($1, $2, $3, $4)
				ON CONFLICT (message_sid, position) DO NOTHING`, sid, m.Position, m.URL, m.ContentType); err != nil {
				return fmt.Errorf("sms: media of %s: %w", sid, err)
			}
		}
		return nil
	})
}

// The media of a customer comment are found through its external_id, the MessageSid
// (a read of issues' comments table, which holds that link).
const mediaJoin = ` FROM sms_media m JOIN comments c ON c.external_id = m.message_sid AND c.kind = 'customer' `

func (s *Store) media(ctx context.Context, where string, arg any) ([]Media, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT c.id, m.position, m.url, m.content_type`+mediaJoin+where+` ORDER BY c.id, m.position`, arg)
	if err != nil {
		return nil, fmt.Errorf("sms: media: %w", err)
	}
	defer rows.Close()
	out := []Media{}
	for rows.Next() {
		var m Media
		if err := rows.Scan(&m.CommentID, &m.Position, &m.URL, &m.ContentType); err != nil {
			return nil, fmt.Errorf("sms: media: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// errNoComment refuses a missing or invisible comment alike.
var errNoComment = httpx.Errorf(http.StatusNotFound, "no such comment")

// CommentMedia returns a comment's issue and its media.
func (s *Store) CommentMedia(ctx context.Context, commentID int64) (int64, []Media, error) {
	var issueID int64
	err := s.db.QueryRowContext(ctx, `SELECT issue_id FROM comments WHERE id = $1`, commentID).Scan(&issueID)
	if errors.Is(store.Err(err), store.ErrNotFound) {
		return 0, nil, errNoComment
	}
	if err != nil {
		return 0, nil, fmt.Errorf("sms: comment %d: %w", commentID, err)
	}
	media, err := s.media(ctx, `WHERE c.id = $1`, commentID)
	return issueID, media, err
}

// IssueMedia returns the media of an issue's customer comments.
func (s *Store) IssueMedia(ctx context.Context, issueID int64) ([]Media, error) {
	return s.media(ctx, `WHERE c.issue_id = $1`, issueID)
}

// MediaHandler serves the media of MMS to agents.
type MediaHandler struct {
	store  *Store
	access func(r *http.Request, issueID int64) error
	log    *slog.Logger
}

// NewMediaHandler returns the media API. access refuses (with an *httpx.Error) a user who
// may not see the issue.
func NewMediaHandler(s *Store, access func(r *http.Request, issueID int64) error, log *slog.Logger) *MediaHandler {
	return &MediaHandler{store: s, access: access, log: log}
}

// Register mounts the routes on r, which must already require a session:
//
//	GET /api/comments/{id}/media   {"media":[{"position","url","content_type"}]}
//	GET /api/issues/{id}/media     the same for every customer comment, with comment_id
func (h *MediaHandler) Register(r *mux.Router) {
	r.HandleFunc("/api/comments/{id:[0-9]+}/media", h.comment).Methods(http.MethodGet)
	r.HandleFunc("/api/issues/{id:[0-9]+}/media", h.issue).Methods(http.MethodGet)
}

func (h *MediaHandler) comment(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	issueID, media, err := h.store.CommentMedia(r.Context(), id)
	if err == nil {
		if err = h.access(r, issueID); err != nil {
			var he *httpx.Error
			if errors.As(err, &he) && he.Status == http.StatusNotFound {
				err = errNoComment
			}
		}
	}
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"media": media})
}

func (h *MediaHandler) issue(w http.ResponseWriter, r *http.Request) {
	id, _ := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err := h.access(r, id); err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	media, err := h.store.IssueMedia(r.Context(), id)
	if err != nil {
		httpx.WriteError(w, r, h.log, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"media": media})
}
