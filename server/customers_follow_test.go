package server_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/store"
)

// GET /api/customers/{id} says whether the session's user follows the customer, so the
// View Customer lightbox opens in the right state; it follows merges as Follow does.
func TestCustomerProfileFollowing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		e := start(t, d.Dialect())
		admin := e.agent("root", accounts.RoleAdmin)
		alice := e.agent("alice", accounts.RoleAgent)
		bob := e.agent("bob", accounts.RoleAgent)
		for i, from := range []string{"+15551230001", "+15551230002"} {
			if resp := e.postSMS(smsForm(fmt.Sprint("SM-follow-", i), from, "hello"), "good"); resp.StatusCode != 200 {
				t.Fatalf("webhook: %d %s", resp.StatusCode, body(resp))
			}
		}
		var list issueList
		e.getJSON(alice, "/api/issues", &list)
		if len(list.Issues) != 2 {
			t.Fatalf("issues %+v; want 2", list)
		}
		survivor, merged := list.Issues[1].CustomerID, list.Issues[0].CustomerID

		type view struct {
			Customer struct {
				ID int64 `json:"id"`
			} `json:"customer"`
			Issues    []struct{ ID int64 } `json:"issues"`
			Following *bool                `json:"following"`
		}
		get := func(who string, c *http.Client, id, wantID int64, want bool) {
			t.Helper()
			var v view
			e.getJSON(c, fmt.Sprintf("/api/customers/%d", id), &v)
			if v.Following == nil || *v.Following != want || v.Customer.ID != wantID || len(v.Issues) == 0 {
				t.Errorf("%s GET customer %d: customer %d, %d issues, following %v; want customer %d, its issues, following %v",
					who, id, v.Customer.ID, len(v.Issues), v.Following, wantID, want)
			}
		}
		get("alice before following", alice, survivor, survivor, false)
		e.slaMust(alice, "POST", fmt.Sprintf("/api/customers/%d/follow", survivor), nil, 200, nil)
		get("alice after following", alice, survivor, survivor, true)
		get("bob (alice follows)", bob, survivor, survivor, false)
		get("alice, another customer", alice, merged, merged, false)

		// A customer merged away answers as the survivor, with the survivor's follow state.
		e.slaMust(admin, "POST", fmt.Sprintf("/api/customers/%d/merge", merged), map[string]any{"into_customer_id": survivor}, 200, nil)
		get("alice, merged customer", alice, merged, survivor, true)

		e.slaMust(alice, "DELETE", fmt.Sprintf("/api/customers/%d/follow", survivor), nil, 200, nil)
		get("alice after unfollowing", alice, survivor, survivor, false)

		if code, b := e.slaCall(alice, "GET", "/api/customers/999999", nil); code != 404 || b == "" {
			t.Errorf("unknown customer: %d %s; want 404", code, b)
		}
	})
}
