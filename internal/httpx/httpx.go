// Package httpx holds the small HTTP conventions every Switchboard handler shares: JSON
// bodies in and out, errors as {"error":"…"} with the right status, and request ids.
package httpx

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
)

// Error is an error with an HTTP status, whose message is safe to show to the client.
// Handlers return it (or wrap it) and WriteError renders it; any other error is a 500
// whose details are logged, not shown.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf builds an *Error with a formatted message.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// Common client errors.
var (
	ErrUnauthorized = &Error{Status: http.StatusUnauthorized, Message: "not logged in"}
	ErrNotFound     = &Error{Status: http.StatusNotFound, Message: "not found"}
)

// WriteJSON writes v as a JSON body with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// WriteError renders err as {"error":"…"}: an *Error with its own status and message,
// anything else as a 500 that is logged with the request id.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var he *Error
	if errors.As(err, &he) {
		WriteJSON(w, he.Status, map[string]string{"error": he.Message})
		return
	}
	if log != nil {
		log.ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	WriteJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
}

// MaxBody is the default limit for JSON request bodies.
const MaxBody = 1 << 20

// DecodeJSON reads one JSON object from the request body into v, refusing unknown fields,
// trailing data, bodies over MaxBody and non-JSON content types, with a 400 that says which.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return Errorf(http.StatusUnsupportedMediaType, "body must be application/json")
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var maxErr *http.MaxBytesError
		var syntaxErr *json.SyntaxError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &maxErr):
			return Errorf(http.StatusRequestEntityTooLarge, "body is larger than %d bytes", maxErr.Limit)
		case errors.Is(err, io.EOF):
			return Errorf(http.StatusBadRequest, "body is empty; want a JSON object")
		case errors.As(err, &syntaxErr):
			return Errorf(http.StatusBadRequest, "body is not valid JSON (at byte %d)", syntaxErr.Offset)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return Errorf(http.StatusBadRequest, "body is not valid JSON (it ends too soon)")
		case errors.As(err, &typeErr):
			return Errorf(http.StatusBadRequest, "field %q must be %s", typeErr.Field, typeErr.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return Errorf(http.StatusBadRequest, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return Errorf(http.StatusBadRequest, "bad JSON body: %v", err)
		}
	}
	if dec.More() {
		return Errorf(http.StatusBadRequest, "body must hold one JSON object")
	}
	return nil
}

// DecodeOptionalJSON is DecodeJSON for endpoints whose body may be left out altogether
// (any length, chunked or not): it reports false, and leaves v alone, when the body is
// empty.
func DecodeOptionalJSON(w http.ResponseWriter, r *http.Request, v any) (bool, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return false, nil
	}
	br := bufio.NewReader(r.Body)
	if _, err := br.Peek(1); errors.Is(err, io.EOF) {
		return false, nil
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{br, r.Body}
	return true, DecodeJSON(w, r, v)
}
