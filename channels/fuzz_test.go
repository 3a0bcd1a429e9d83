package channels_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/channels"
	"github.com/switchboard-hq/switchboard/hub"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

// strictDecode decodes body as httpx.DecodeJSON does (one object, no unknown fields), to
// know what the handler saw.
func strictDecode(body []byte, v any) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v) == nil && !dec.More()
}

// FuzzChannelRequestBodies posts arbitrary bodies to the team-channel and direct-message
// endpoints (POST /api/channels, /api/direct, /api/channels/{id}/messages and /read) as
// alice, through the real handlers on a SQLite database. Every answer is a success or a
// JSON 4xx naming the problem, never a 5xx; what is accepted follows docs/api.md (a team
// channel's name trimmed, 1–80 bytes of text without control characters; a message stored
// byte for byte; a direct message only with another, enabled user; a read marker not
// below 0); and a body that follows those rules is not refused.
func FuzzChannelRequestBodies(f *testing.F) {
	ctx := context.Background()
	db := storetest.Open(f, store.SQLite)
	people := accounts.New(db, accounts.Config{})
	ids := map[string]int64{}
	for _, h := range []string{"alice", "bob", "carol"} {
		u, err := people.CreateUser(ctx, accounts.NewUser{Email: h + "@example.com", Name: h, Role: accounts.RoleAgent, Password: "password-" + h})
		if err != nil {
			f.Fatal(err)
		}
		ids[h] = u.ID
	}
	disabled := true
	if _, err := people.UpdateUser(ctx, ids["carol"], accounts.UserChange{Disabled: &disabled}); err != nil {
		f.Fatal(err)
	}
	alice, err := people.User(ctx, ids["alice"])
	if err != nil {
		f.Fatal(err)
	}
	svc := channels.New(db, hub.NewLog(db, nil), channels.Config{People: people})
	team, err := svc.CreateTeam(ctx, "Ops", []int64{ids["alice"], ids["bob"]})
	if err != nil {
		f.Fatal(err)
	}
	r := mux.NewRouter()
	channels.NewHandler(svc, slog.New(slog.DiscardHandler)).Register(r)
	sessCtx := accounts.WithSession(ctx, &accounts.Session{ID: 1, UserID: alice.ID, User: alice})
	enabled := func(id int64) bool { return id == ids["alice"] || id == ids["bob"] }

	const (
		createTeam = iota
		openDirect
		postMessage
		markRead
		endpoints
	)
	for _, s := range []struct {
		endpoint byte
		body     string
	}{
		{createTeam, `{"name":"Escalations","member_ids":[2]}`},
		{createTeam, `{"name":"  padded  "}`},
		{createTeam, `{"name":"` + strings.Repeat("é", 40) + `"}`},
		{createTeam, `{"name":"","member_ids":[-1]}`},
		{createTeam, `{"name":"a\u0007b"}`},
		{createTeam, `{"name":"a\u0085b"}`}, // NEL, a C1 control character
		{createTeam, `{"name":"x","member_ids":[3,99]}`},
		{openDirect, `{"user_id":2}`},
		{openDirect, `{"user_id":1}`},
		{openDirect, `{"user_id":3}`},
		{openDirect, `{"user_id":0}`},
		{openDirect, `{"user_id":"2"}`},
		{postMessage, `{"body":"deploy at 5 <b>&amp;</b>"}`},
		{postMessage, `{"body":"  \n\t "}`},
		{postMessage, `{"body":"\ud800"}`},
		{markRead, `{"number":1}`},
		{markRead, `{"number":-1}`},
		{markRead, `{}`},
		{createTeam, `not json`},
		{openDirect, `{"user_id":2,"extra":1}`},
		{postMessage, `{"body":"a"} {"body":"b"}`},
	} {
		f.Add(s.endpoint, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, endpoint byte, body []byte) {
		which := int(endpoint) % endpoints
		path := [...]string{"/api/channels", "/api/direct",
			fmt.Sprintf("/api/channels/%d/messages", team.ID), fmt.Sprintf("/api/channels/%d/read", team.ID)}[which]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body)).WithContext(sessCtx)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		out := w.Body.Bytes()

		if w.Code >= 400 {
			var e struct {
				Error string `json:"error"`
			}
			if w.Code >= 500 || json.Unmarshal(out, &e) != nil || e.Error == "" {
				t.Fatalf("POST %s %q: %d %s; want a JSON 4xx with an error", path, body, w.Code, out)
			}
		}
		switch which {
		case createTeam:
			var in struct {
				Name      string  `json:"name"`
				MemberIDs []int64 `json:"member_ids"`
			}
			decoded := strictDecode(body, &in)
			name := strings.TrimSpace(in.Name)
			ok := decoded && name != "" && len(name) <= 80 && !strings.ContainsFunc(name, unicode.IsControl) &&
				!slices.ContainsFunc(in.MemberIDs, func(id int64) bool { return !enabled(id) })
			if w.Code == http.StatusCreated {
				var got struct {
					Channel struct {
						Kind string `json:"kind"`
						Name string `json:"name"`
					} `json:"channel"`
				}
				_ = json.Unmarshal(out, &got)
				if !ok || got.Channel.Kind != "team" || got.Channel.Name != name || !utf8.ValidString(got.Channel.Name) {
					t.Fatalf("created a team channel from %q: %s; want only names of 1–80 bytes of text without control characters, stored trimmed", body, out)
				}
			} else if ok && len(in.MemberIDs) <= 499 {
				t.Fatalf("refused a valid team channel %q: %d %s", body, w.Code, out)
			}
		case openDirect:
			var in struct {
				UserID *int64 `json:"user_id"`
			}
			decoded := strictDecode(body, &in)
			ok := decoded && in.UserID != nil && *in.UserID != ids["alice"] && enabled(*in.UserID)
			if (w.Code == http.StatusOK) != ok {
				t.Fatalf("POST /api/direct %q: %d %s; want 200 only for another, enabled user", body, w.Code, out)
			}
			if ok {
				var got struct {
					Channel struct {
						Kind   string `json:"kind"`
						PeerID int64  `json:"peer_id"`
					} `json:"channel"`
				}
				if json.Unmarshal(out, &got) != nil || got.Channel.Kind != "direct" || got.Channel.PeerID != *in.UserID {
					t.Fatalf("POST /api/direct %q: %s; want the direct channel with %d", body, out, *in.UserID)
				}
			}
		case postMessage:
			var in struct {
				Body string `json:"body"`
			}
			decoded := strictDecode(body, &in)
			ok := decoded && strings.TrimSpace(in.Body) != "" && len(in.Body) <= channels.MaxBody
			if (w.Code == http.StatusCreated) != ok {
				t.Fatalf("POST %s %q: %d %s; want 201 only for a non-blank body of at most %d bytes", path, body, w.Code, out, channels.MaxBody)
			}
			if ok {
				var got struct {
					Message struct {
						Body string `json:"body"`
					} `json:"message"`
				}
				if json.Unmarshal(out, &got) != nil || got.Message.Body != in.Body {
					t.Fatalf("message %q stored as %s; want it byte for byte", in.Body, out)
				}
			}
		case markRead:
			var in struct {
				Number *int64 `json:"number"`
			}
			// Without a number the answer depends on whether the endpoint reads "no number"
			// as "everything"; with one, a number of at least 0 is read and a negative one
			// refused.
			if strictDecode(body, &in) && in.Number != nil && (w.Code == http.StatusOK) != (*in.Number >= 0) {
				t.Fatalf("POST %s %q: %d %s; want 200 for a number of at least 0, 400 for a negative one", path, body, w.Code, out)
			}
		}
	})
}
