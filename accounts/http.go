package accounts

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/switchboard-hq/switchboard/internal/httpx"
)

// Register mounts the accounts routes on r. They read the session that Middleware puts in
// the request context, so r (or what wraps it) must run Middleware first.
//
//	POST   /api/session                          log in
//	DELETE /api/session                          log out this session
//	DELETE /api/sessions                         log out everywhere
//	GET    /api/me                               the logged-in user
//	POST   /api/me/password                      change password, ending other sessions
//	GET    /api/users                            all users (any user: Assign needs them)
//	POST   /api/users                            create a user (admin)
//	PATCH  /api/users/{id}                       rename, change role, disable (admin)
//	GET    /api/teams                            all teams with member ids
//	POST   /api/teams                            create a team (admin)
//	PUT    /api/teams/{id}/members/{userID}      add a member (admin)
//	DELETE /api/teams/{id}/members/{userID}      remove a member (admin)
func (s *Service) Register(r *mux.Router) {
	user := func(h http.HandlerFunc) http.Handler { return RequireUser(h) }
	admin := func(rule error, h http.HandlerFunc) http.Handler { return RequireUser(requireAdmin(rule, h)) }

	r.HandleFunc("/api/session", s.handleLogin).Methods(http.MethodPost)
	r.HandleFunc("/api/session", s.handleLogout).Methods(http.MethodDelete)
	r.Handle("/api/sessions", user(s.handleLogoutEverywhere)).Methods(http.MethodDelete)
	r.Handle("/api/me", user(s.handleMe)).Methods(http.MethodGet)
	r.Handle("/api/me/password", user(s.handleChangePassword)).Methods(http.MethodPost)
	r.Handle("/api/users", user(s.handleUsers)).Methods(http.MethodGet)
	r.Handle("/api/users", admin(ErrNotAdmin, s.handleCreateUser)).Methods(http.MethodPost)
	r.Handle("/api/users/{id:[0-9]+}", admin(ErrNotAdmin, s.handleUpdateUser)).Methods(http.MethodPatch)
	r.Handle("/api/teams", user(s.handleTeams)).Methods(http.MethodGet)
	r.Handle("/api/teams", admin(ErrNotAdminTeams, s.handleCreateTeam)).Methods(http.MethodPost)
	r.Handle("/api/teams/{id:[0-9]+}/members/{userID:[0-9]+}", admin(ErrNotAdminTeams, s.handleAddMember)).Methods(http.MethodPut)
	r.Handle("/api/teams/{id:[0-9]+}/members/{userID:[0-9]+}", admin(ErrNotAdminTeams, s.handleRemoveMember)).Methods(http.MethodDelete)
}

// requireAdmin answers 403 with rule unless the session's user is an admin. It runs
// after RequireUser.
func requireAdmin(rule error, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !SessionFrom(r.Context()).User.IsAdmin() {
			httpx.WriteError(w, r, nil, rule)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	var te *ThrottledError
	if errors.As(err, &te) {
		w.Header().Set("Retry-After", strconv.Itoa(te.retrySeconds()))
	}
	httpx.WriteError(w, r, s.log, err)
}

// pathID reads a numeric path variable; the route's pattern already admits only digits.
func pathID(r *http.Request, name string) (int64, error) {
	id, err := strconv.ParseInt(mux.Vars(r)[name], 10, 64)
	if err != nil {
		return 0, badRequest("%s must be a number", name)
	}
	return id, nil
}

type userBody struct {
	User *User `json:"user"`
}

func (s *Service) handleLogin(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	token, sess, err := s.Login(r.Context(), in.Email, in.Password, r.UserAgent(), s.clientAddr(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.SetCookie(w, s.cookie(token))
	httpx.WriteJSON(w, http.StatusOK, userBody{sess.User})
}

// clientAddr is ClientAddr as text, or the raw peer when it is not an address.
func (s *Service) clientAddr(r *http.Request) string {
	if a := s.ClientAddr(r); a.IsValid() {
		return a.String()
	}
	return r.RemoteAddr
}

// handleLogout is idempotent: without a session it still clears the cookie and succeeds,
// so a client can always get back to a clean state.
func (s *Service) handleLogout(w http.ResponseWriter, r *http.Request) {
	if sess := SessionFrom(r.Context()); sess != nil {
		if err := s.Logout(r.Context(), sess.ID); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	http.SetCookie(w, s.clearCookie())
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) handleLogoutEverywhere(w http.ResponseWriter, r *http.Request) {
	if err := s.LogoutEverywhere(r.Context(), SessionFrom(r.Context()).UserID); err != nil {
		s.fail(w, r, err)
		return
	}
	http.SetCookie(w, s.clearCookie())
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) handleMe(w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, userBody{SessionFrom(r.Context()).User})
}

func (s *Service) handleChangePassword(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.ChangePassword(r.Context(), SessionFrom(r.Context()), in.Current, in.New, s.clientAddr(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) handleUsers(w http.ResponseWriter, r *http.Request) {
	users, err := s.Users(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string][]*User{"users": users})
}

func (s *Service) handleCreateUser(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Email    string `json:"email"`
		Name     string `json:"name"`
		Handle   string `json:"handle"`
		Role     Role   `json:"role"`
		Password string `json:"password"`
	}
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	u, err := s.CreateUser(r.Context(), NewUser{Email: in.Email, Name: in.Name, Handle: in.Handle, Role: in.Role, Password: in.Password})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, userBody{u})
}

func (s *Service) handleUpdateUser(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var in struct {
		Name     *string `json:"name"`
		Role     *Role   `json:"role"`
		Disabled *bool   `json:"disabled"`
	}
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	u, err := s.UpdateUser(r.Context(), id, UserChange{Name: in.Name, Role: in.Role, Disabled: in.Disabled})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, userBody{u})
}

type teamBody struct {
	Team *Team `json:"team"`
}

func (s *Service) handleTeams(w http.ResponseWriter, r *http.Request) {
	teams, err := s.Teams(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string][]*Team{"teams": teams})
}

func (s *Service) handleCreateTeam(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name   string `json:"name"`
		Handle string `json:"handle"`
	}
	if err := httpx.DecodeJSON(w, r, &in); err != nil {
		s.fail(w, r, err)
		return
	}
	t, err := s.CreateTeam(r.Context(), in.Name, in.Handle)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, teamBody{t})
}

func (s *Service) handleAddMember(w http.ResponseWriter, r *http.Request) {
	s.handleMember(w, r, s.AddTeamMember)
}

func (s *Service) handleRemoveMember(w http.ResponseWriter, r *http.Request) {
	s.handleMember(w, r, s.RemoveTeamMember)
}

func (s *Service) handleMember(w http.ResponseWriter, r *http.Request, change func(ctx context.Context, teamID, userID int64) (*Team, error)) {
	teamID, err := pathID(r, "id")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	userID, err := pathID(r, "userID")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	t, err := change(r.Context(), teamID, userID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, teamBody{t})
}
