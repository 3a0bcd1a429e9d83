package accounts_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

func TestAgentsCannotManage(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		e.user("ann@example.com", "Ann", accounts.RoleAdmin)
		bob := e.user("bob@example.com", "Bob", accounts.RoleAgent)
		team, err := e.svc.CreateTeam(context.Background(), "Billing", "billing")
		if err != nil {
			t.Fatal(err)
		}
		agent := e.client("192.0.2.1:4000")
		agent.mustLogin("bob@example.com")
		anon := e.client("192.0.2.2:4000")

		const users, teams = "only admins may manage users", "only admins may manage teams"
		member := fmt.Sprintf("/api/teams/%d/members/%d", team.ID, bob.ID)
		tests := []struct {
			method, path string
			body         any
			rule         string
		}{
			{http.MethodPost, "/api/users", map[string]string{"email": "c@example.com", "name": "C", "role": "admin", "password": testPassword}, users},
			{http.MethodPatch, fmt.Sprintf("/api/users/%d", bob.ID), map[string]string{"role": "admin"}, users},
			{http.MethodPost, "/api/teams", map[string]string{"name": "Sales", "handle": "sales"}, teams},
			{http.MethodPut, member, nil, teams},
			{http.MethodDelete, member, nil, teams},
		}
		for _, tt := range tests {
			wantError(t, "agent "+tt.method+" "+tt.path, agent.do(tt.method, tt.path, tt.body), http.StatusForbidden, tt.rule)
			wantError(t, "anonymous "+tt.method+" "+tt.path, anon.do(tt.method, tt.path, tt.body), http.StatusUnauthorized, "not logged in")
		}
		// Agents list users and teams: Assign and @mentions need them.
		for _, path := range []string{"/api/users", "/api/teams"} {
			wantStatus(t, "agent GET "+path, agent.do(http.MethodGet, path, nil), http.StatusOK)
			wantStatus(t, "anonymous GET "+path, anon.do(http.MethodGet, path, nil), http.StatusUnauthorized)
		}
		if u, _ := e.svc.User(context.Background(), bob.ID); u.Role != accounts.RoleAgent {
			t.Errorf("the agent promoted himself")
		}
	})
}

func TestAdminManagesUsers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		ann := e.user("ann@example.com", "Ann", accounts.RoleAdmin)
		admin := e.client("192.0.2.1:4000")
		annSess := admin.mustLogin("ann@example.com")

		create := func(body map[string]string) *response { return admin.do(http.MethodPost, "/api/users", body) }
		resp := create(map[string]string{"email": "Carol@Example.com", "name": "Carol", "role": "agent", "password": testPassword})
		wantStatus(t, "create", resp, http.StatusCreated)
		u, _ := resp.body["user"].(map[string]any)
		if u["handle"] != "carol" || u["role"] != "agent" || u["disabled"] != false {
			t.Errorf("created %v; want agent @carol", u)
		}
		carolID := int64(u["id"].(float64))

		wantError(t, "duplicate email in another case",
			create(map[string]string{"email": "CAROL@example.com", "name": "C2", "role": "agent", "password": testPassword}),
			http.StatusConflict, "a user with email CAROL@example.com already exists")
		wantError(t, "bad role", create(map[string]string{"email": "d@example.com", "name": "D", "role": "boss", "password": testPassword}),
			http.StatusBadRequest, `role must be "admin" or "agent"`)
		wantError(t, "unknown field", create(map[string]string{"email": "d@example.com", "name": "D", "role": "agent", "password": testPassword, "admin": "yes"}),
			http.StatusBadRequest, `unknown field "admin"`)

		users := admin.do(http.MethodGet, "/api/users", nil)
		wantStatus(t, "list", users, http.StatusOK)
		if list, _ := users.body["users"].([]any); len(list) != 2 {
			t.Errorf("listed %d users; want 2", len(list))
		}

		// Disabling Carol ends her sessions and keeps her out.
		carol := e.client("192.0.2.3:4000")
		carolSess := carol.mustLogin("carol@example.com")
		patch := func(id int64, body map[string]any) *response {
			return admin.do(http.MethodPatch, fmt.Sprintf("/api/users/%d", id), body)
		}
		resp = patch(carolID, map[string]any{"disabled": true, "name": "Carol C."})
		wantStatus(t, "disable", resp, http.StatusOK)
		if u, _ := resp.body["user"].(map[string]any); u["disabled"] != true || u["name"] != "Carol C." {
			t.Errorf("patched %v; want disabled Carol C.", u)
		}
		if got := e.takeEnded(); !slices.Equal(got, []int64{carolSess.ID}) {
			t.Errorf("SessionsEnded got %v; want Carol's [%d]", got, carolSess.ID)
		}
		wantStatus(t, "disabled user's session", carol.do(http.MethodGet, "/api/me", nil), http.StatusUnauthorized)
		wantError(t, "disabled user's login", carol.login("carol@example.com", testPassword), http.StatusForbidden, "this account is disabled")
		wantStatus(t, "enable", patch(carolID, map[string]any{"disabled": false}), http.StatusOK)
		carol.mustLogin("carol@example.com")

		wantError(t, "missing user", patch(9999, map[string]any{"name": "X"}), http.StatusNotFound, "user not found")
		wantError(t, "empty name", patch(carolID, map[string]any{"name": " "}), http.StatusBadRequest, "name is required")

		// The last admin cannot demote or disable herself; with a second admin she can.
		wantError(t, "demote last admin", patch(ann.ID, map[string]any{"role": "agent"}), http.StatusConflict,
			"the last admin cannot be demoted or disabled")
		wantError(t, "disable last admin", patch(ann.ID, map[string]any{"disabled": true}), http.StatusConflict,
			"the last admin cannot be demoted or disabled")
		wantStatus(t, "promote carol", patch(carolID, map[string]any{"role": "admin"}), http.StatusOK)
		wantStatus(t, "demote ann", patch(ann.ID, map[string]any{"role": "agent"}), http.StatusOK)
		// Ann is an agent now: her (still valid) session loses admin rights at once.
		wantError(t, "demoted ann", patch(carolID, map[string]any{"name": "C"}), http.StatusForbidden, "only admins may manage users")
		if admin.session().ID != annSess.ID {
			t.Errorf("demotion ended Ann's session")
		}
	})
}

func TestAdminManagesTeams(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		e.user("ann@example.com", "Ann", accounts.RoleAdmin)
		bob := e.user("bob@example.com", "Bob", accounts.RoleAgent)
		admin := e.client("192.0.2.1:4000")
		admin.mustLogin("ann@example.com")

		resp := admin.do(http.MethodPost, "/api/teams", map[string]string{"name": "Billing", "handle": "Billing"})
		wantStatus(t, "create team", resp, http.StatusCreated)
		team, _ := resp.body["team"].(map[string]any)
		if team["handle"] != "billing" || team["name"] != "Billing" {
			t.Errorf("created %v; want Billing @billing", team)
		}
		teamID := int64(team["id"].(float64))
		wantError(t, "team handle taken by a user", admin.do(http.MethodPost, "/api/teams", map[string]string{"name": "Bob's", "handle": "bob"}),
			http.StatusConflict, "handle @bob is taken")
		wantStatus(t, "empty name", admin.do(http.MethodPost, "/api/teams", map[string]string{"name": "", "handle": "x"}), http.StatusBadRequest)

		member := fmt.Sprintf("/api/teams/%d/members/%d", teamID, bob.ID)
		for range 2 { // twice: adding is idempotent
			resp = admin.do(http.MethodPut, member, nil)
			wantStatus(t, "add member", resp, http.StatusOK)
		}
		memberIDs := func() []any {
			list := admin.do(http.MethodGet, "/api/teams", nil)
			wantStatus(t, "list teams", list, http.StatusOK)
			teams, _ := list.body["teams"].([]any)
			if len(teams) != 1 {
				t.Fatalf("listed %v; want one team", teams)
			}
			ids, ok := teams[0].(map[string]any)["member_ids"].([]any)
			if !ok {
				t.Fatalf("member_ids is %v; want an array", teams[0])
			}
			return ids
		}
		if got := memberIDs(); len(got) != 1 || got[0] != float64(bob.ID) {
			t.Errorf("member_ids %v; want [%d]", got, bob.ID)
		}
		wantError(t, "missing user", admin.do(http.MethodPut, fmt.Sprintf("/api/teams/%d/members/999", teamID), nil), http.StatusNotFound, "user not found")
		wantError(t, "missing team", admin.do(http.MethodPut, fmt.Sprintf("/api/teams/999/members/%d", bob.ID), nil), http.StatusNotFound, "team not found")
		wantStatus(t, "remove member", admin.do(http.MethodDelete, member, nil), http.StatusOK)
		if got := memberIDs(); len(got) != 0 {
			t.Errorf("member_ids %v after removal; want []", got)
		}
		if tm, err := e.svc.TeamByHandle(context.Background(), "BILLING"); err != nil || tm.ID != teamID {
			t.Errorf("TeamByHandle: %v, %v", tm, err)
		}
	})
}

func TestHandles(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		if _, err := e.svc.CreateTeam(ctx, "Support", "carol"); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			email, handle, want string
		}{
			{"Bob.Smith+tag@Example.com", "", "bob.smithtag"},
			{"bob@a.example", "", "bob"},
			{"BOB@b.example", "", "bob2"},
			{"bob@c.example", "", "bob3"},
			{"carol@example.com", "", "carol2"}, // a team has @carol
			{"_-_@example.com", "", "user"},
			{"x@example.com", "Chief", "chief"},
			{strings.Repeat("l", 40) + "@example.com", "", strings.Repeat("l", 28)},
		}
		for _, tt := range tests {
			u, err := e.svc.CreateUser(ctx, accounts.NewUser{Email: tt.email, Name: "N", Handle: tt.handle, Role: accounts.RoleAgent, Password: testPassword})
			if err != nil {
				t.Errorf("create %s: %v", tt.email, err)
				continue
			}
			if u.Handle != tt.want {
				t.Errorf("%s got handle %q; want %q", tt.email, u.Handle, tt.want)
			}
		}
		if u, err := e.svc.UserByHandle(ctx, "Bob2"); err != nil || u.Email != "BOB@b.example" {
			t.Errorf("UserByHandle(Bob2): %v, %v", u, err)
		}
		_, err := e.svc.UserByHandle(ctx, "nobody")
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UserByHandle(nobody): %v; want ErrNotFound", err)
		}
	})
}

func TestCreateUserValidates(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		e.user("taken@example.com", "Taken", accounts.RoleAgent)
		ok := accounts.NewUser{Email: "new@example.com", Name: "New", Role: accounts.RoleAgent, Password: testPassword}
		tests := []struct {
			name   string
			change func(*accounts.NewUser)
			status int
		}{
			{"no email", func(u *accounts.NewUser) { u.Email = "" }, http.StatusBadRequest},
			{"no at", func(u *accounts.NewUser) { u.Email = "new.example.com" }, http.StatusBadRequest},
			{"display name", func(u *accounts.NewUser) { u.Email = "New <new@example.com>" }, http.StatusBadRequest},
			{"no name", func(u *accounts.NewUser) { u.Name = "  " }, http.StatusBadRequest},
			{"no role", func(u *accounts.NewUser) { u.Role = "" }, http.StatusBadRequest},
			{"short password", func(u *accounts.NewUser) { u.Password = "1234567" }, http.StatusBadRequest},
			{"bad handle", func(u *accounts.NewUser) { u.Handle = "-bad" }, http.StatusBadRequest},
			{"handle with space", func(u *accounts.NewUser) { u.Handle = "a b" }, http.StatusBadRequest},
			{"duplicate email", func(u *accounts.NewUser) { u.Email = "TAKEN@example.com" }, http.StatusConflict},
			{"handle taken", func(u *accounts.NewUser) { u.Handle = "taken" }, http.StatusConflict},
		}
		for _, tt := range tests {
			nu := ok
			tt.change(&nu)
			_, err := e.svc.CreateUser(context.Background(), nu)
			var he *httpx.Error
			if !errors.As(err, &he) || he.Status != tt.status {
				t.Errorf("%s: got %v; want an error wrapping a %d *httpx.Error", tt.name, err, tt.status)
			}
		}
		if n, _ := e.svc.CountUsers(context.Background()); n != 1 {
			t.Errorf("%d users after failed creates; want 1", n)
		}
	})
}

func TestAdminsDemotingEachOtherKeepOne(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		agent := accounts.RoleAgent
		demote := func(id int64) error {
			_, err := e.svc.UpdateUser(ctx, id, accounts.UserChange{Role: &agent})
			return err
		}
		var survivor *accounts.User
		for round := range 5 {
			a := e.user(fmt.Sprintf("a%d@example.com", round), "A", accounts.RoleAdmin)
			b := e.user(fmt.Sprintf("b%d@example.com", round), "B", accounts.RoleAdmin)
			if survivor != nil { // leave a and b the only admins
				if err := demote(survivor.ID); err != nil {
					t.Fatal(err)
				}
			}
			errs := make(chan error, 2)
			for _, u := range []*accounts.User{a, b} {
				go func() { errs <- demote(u.ID) }()
			}
			refused := 0
			for range 2 {
				if err := <-errs; errors.Is(err, accounts.ErrLastAdmin) {
					refused++
				} else if err != nil {
					t.Fatal(err)
				}
			}
			if refused != 1 {
				t.Fatalf("round %d: %d of two concurrent demotions refused; want exactly 1", round, refused)
			}
			for _, u := range []*accounts.User{a, b} {
				if u, _ := e.svc.User(ctx, u.ID); u.IsAdmin() {
					survivor = u
				}
			}
		}
	})
}
