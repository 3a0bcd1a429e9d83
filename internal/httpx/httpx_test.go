package httpx

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDecodeJSON(t *testing.T) {
	type body struct {
		Name string `json:"name"`
		N    int    `json:"n"`
	}
	tests := []struct {
		in, ctype  string
		wantStatus int // 0: success
		wantMsg    string
	}{
		{`{"name":"a","n":1}`, "application/json", 0, ""},
		{`{"name":"a"}`, "", 0, ""},
		{``, "application/json", 400, "empty"},
		{`{"name":`, "application/json", 400, "not valid JSON"},
		{`{"n":"x"}`, "application/json", 400, `field "n"`},
		{`{"other":1}`, "application/json", 400, `unknown field "other"`},
		{`{} {}`, "application/json", 400, "one JSON object"},
		{`{}`, "text/plain", 415, "application/json"},
		{`{"name":"` + strings.Repeat("x", MaxBody) + `"}`, "application/json", 413, "larger"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("POST", "/", strings.NewReader(tt.in))
		if tt.ctype != "" {
			r.Header.Set("Content-Type", tt.ctype)
		}
		var b body
		err := DecodeJSON(httptest.NewRecorder(), r, &b)
		if tt.wantStatus == 0 {
			if err != nil {
				t.Errorf("%.30q: got %v; want success", tt.in, err)
			}
			continue
		}
		var he *Error
		if !errors.As(err, &he) || he.Status != tt.wantStatus || !strings.Contains(he.Message, tt.wantMsg) {
			t.Errorf("%.30q: got %v; want %d containing %q", tt.in, err, tt.wantStatus, tt.wantMsg)
		}
	}
}

func TestWriteErrorHidesInternalErrors(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, httptest.NewRequest("GET", "/", nil), nil, errors.New("pq: secret table"))
	if w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "secret") {
		t.Errorf("got %d %s; want 500 without details", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	WriteError(w, httptest.NewRequest("GET", "/", nil), nil, Errorf(409, "taken by %s", "bo"))
	if w.Code != 409 || strings.TrimSpace(w.Body.String()) != `{"error":"taken by bo"}` {
		t.Errorf("got %d %s", w.Code, w.Body)
	}
}

func TestDecodeOptionalJSON(t *testing.T) {
	type body struct {
		N *int `json:"n"`
	}
	tests := []struct {
		in          string
		chunked     bool
		wantPresent bool
		wantErr     bool
	}{
		{``, false, false, false},
		{``, true, false, false}, // no Content-Length: the body is still found empty
		{`{"n":3}`, false, true, false},
		{`{"n":3}`, true, true, false},
		{`{"n":`, false, true, true},
		{`{"x":1}`, true, true, true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("POST", "/", strings.NewReader(tt.in))
		if tt.chunked {
			r.ContentLength = -1
			r.Body = io.NopCloser(strings.NewReader(tt.in)) // no length known
		}
		var b body
		present, err := DecodeOptionalJSON(httptest.NewRecorder(), r, &b)
		if present != tt.wantPresent || (err != nil) != tt.wantErr {
			t.Errorf("%q chunked=%v: present %v, err %v; want present %v, error %v", tt.in, tt.chunked, present, err, tt.wantPresent, tt.wantErr)
		}
		if tt.wantPresent && !tt.wantErr && (b.N == nil || *b.N != 3) {
			t.Errorf("%q: decoded %+v", tt.in, b)
		}
	}
}
