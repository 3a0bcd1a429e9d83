package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-hq/switchboard/accounts"
	"github.com/switchboard-hq/switchboard/internal/storetest"
	"github.com/switchboard-hq/switchboard/issues"
	"github.com/switchboard-hq/switchboard/store"
)

type fullIssue struct {
	Issue struct {
		ID            int64  `json:"id"`
		Status        string `json:"status"`
		CustomerID    int64  `json:"customer_id"`
		LinkedIssueID *int64 `json:"linked_issue_id"`
	} `json:"issue"`
	Comments []struct {
		ID   int64  `json:"id"`
		Body string `json:"body"`
	} `json:"comments"`
	Activity []struct {
		Action  string         `json:"action"`
		Details map[string]any `json:"details"`
	} `json:"activity"`
}

func (e *env) issue(c *http.Client, id int64) fullIssue {
	e.t.Helper()
	var f fullIssue
	e.getJSON(c, fmt.Sprintf("/api/issues/%d", id), &f)
	return f
}

func (e *env) expect(c *http.Client, method, path string, v any, want int, text string) string {
	e.t.Helper()
	resp := e.do(c, method, path, v)
	b := body(resp)
	if resp.StatusCode != want || !strings.Contains(b, text) {
		e.t.Fatalf("%s %s: got %d %s; want %d containing %q", method, path, resp.StatusCode, b, want, text)
	}
	return b
}

func TestSplitAndMerge(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		e := start(t, d.Dialect())
		alice := e.agent("alice", accounts.RoleAgent)
		bob := e.agent("bob", accounts.RoleAgent)
		e.postSMS(smsForm("SMs1", "+15551230000", "my order is late"), "good").Body.Close()
		e.postSMS(smsForm("SMs2", "+15551230000", "also, how do I reset my password?"), "good").Body.Close()
		var list issueList
		e.getJSON(alice, "/api/issues", &list)
		orig := list.Issues[0].ID
		f := e.issue(alice, orig)
		if len(f.Comments) != 2 {
			t.Fatalf("%d comments; want 2", len(f.Comments))
		}
		second := f.Comments[1].ID

		// Someone else's issue is not mine to split.
		if _, err := e.s.Issues.Take(context.Background(), issues.Actor{UserID: userID(t, e, "bob")}, orig); err != nil {
			t.Fatal(err)
		}
		e.expect(alice, "POST", fmt.Sprintf("/api/issues/%d/split", orig), map[string]int64{"comment_id": second}, 403, "assignee or an admin")

		b := e.expect(bob, "POST", fmt.Sprintf("/api/issues/%d/split", orig), map[string]int64{"comment_id": second}, 201, `"linked_issue_id":`)
		_ = b
		e.getJSON(alice, "/api/issues", &list)
		split := list.Issues[0].ID
		if split == orig {
			t.Fatal("no new issue")
		}
		fs, fo := e.issue(alice, split), e.issue(alice, orig)
		if len(fs.Comments) != 1 || fs.Comments[0].ID != second || len(fo.Comments) != 1 {
			t.Fatalf("after split: new has %v, original has %v", fs.Comments, fo.Comments)
		}
		if fs.Issue.LinkedIssueID == nil || *fs.Issue.LinkedIssueID != orig {
			t.Errorf("split issue links to %v; want %d", fs.Issue.LinkedIssueID, orig)
		}
		if last := fo.Activity[len(fo.Activity)-1]; last.Action != "split" || last.Details["new_issue_id"] != float64(split) {
			t.Errorf("original's activity ends with %+v; want split naming the new issue", last)
		}
		// The only message of an issue cannot be split off.
		e.expect(bob, "POST", fmt.Sprintf("/api/issues/%d/split", split), map[string]int64{"comment_id": second}, 409, "only customer message")

		// Merge the split issue back: its comment returns, it closes with a link.
		e.expect(bob, "POST", fmt.Sprintf("/api/issues/%d/merge", split), map[string]int64{"into_issue_id": orig}, 200, fmt.Sprintf(`"id":%d`, orig))
		fs, fo = e.issue(alice, split), e.issue(alice, orig)
		if len(fo.Comments) != 2 || len(fs.Comments) != 0 || fs.Issue.Status != "closed" {
			t.Fatalf("after merge: original %d comments, merged %d comments status %s", len(fo.Comments), len(fs.Comments), fs.Issue.Status)
		}
		// Issues of different customers do not merge.
		e.postSMS(smsForm("SMs3", "+15559990000", "someone else"), "good").Body.Close()
		e.getJSON(alice, "/api/issues", &list)
		e.expect(bob, "POST", fmt.Sprintf("/api/issues/%d/merge", list.Issues[0].ID), map[string]int64{"into_issue_id": orig}, 409, "same customer")
	})
}

func userID(t *testing.T, e *env, handle string) int64 {
	t.Helper()
	u, err := e.s.Accounts.UserByHandle(context.Background(), handle)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

func TestMergeCustomers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, d *store.DB) {
		d.Close()
		e := start(t, d.Dialect())
		alice := e.agent("alice", accounts.RoleAgent)
		admin := e.agent("root", accounts.RoleAdmin)
		mail, err := e.s.Channels.Ensure(context.Background(), "email", "Mail", "help@example.com")
		if err != nil {
			t.Fatal(err)
		}
		e.postSMS(smsForm("SMc1", "+15551230000", "by phone"), "good").Body.Close()
		res, err := e.s.Issues.Intake(context.Background(), issues.Inbound{ChannelID: mail.ID, Provider: "email",
			ExternalID: "<m1@x>", Email: "Pat@Example.com", Name: "Pat", Body: "by mail", ReceivedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		mailIssue := e.issue(alice, res.IssueID)
		var list issueList
		e.getJSON(alice, "/api/issues", &list)
		var phoneCustomer int64
		for _, i := range list.Issues {
			if i.ID != res.IssueID {
				phoneCustomer = i.CustomerID
			}
		}
		// Alice follows the customer that will be merged away; she follows the survivor after.
		e.expect(alice, "POST", fmt.Sprintf("/api/customers/%d/follow", mailIssue.Issue.CustomerID), nil, 200, "")
		path := fmt.Sprintf("/api/customers/%d/merge", mailIssue.Issue.CustomerID)
		e.expect(alice, "POST", path, map[string]int64{"into_customer_id": phoneCustomer}, 403, "only admins")
		e.expect(admin, "POST", path, map[string]int64{"into_customer_id": phoneCustomer}, 200, `"email":"Pat@Example.com"`)

		var p struct {
			Customer struct {
				ID    int64   `json:"id"`
				Name  string  `json:"name"`
				Phone *string `json:"phone"`
				Email *string `json:"email"`
			} `json:"customer"`
			Issues []struct {
				ID int64 `json:"id"`
			} `json:"issues"`
		}
		// The merged customer's profile answers with the survivor and both issues.
		e.getJSON(alice, fmt.Sprintf("/api/customers/%d", mailIssue.Issue.CustomerID), &p)
		if p.Customer.ID != phoneCustomer || len(p.Issues) != 2 || p.Customer.Phone == nil || p.Customer.Email == nil || p.Customer.Name != "Pat" {
			t.Fatalf("profile %+v; want customer %d with phone, email, name Pat and 2 issues", p, phoneCustomer)
		}
		// New mail from the merged address lands on the survivor.
		res2, err := e.s.Issues.Intake(context.Background(), issues.Inbound{ChannelID: mail.ID, Provider: "email",
			ExternalID: "<m2@x>", Email: "pat@example.com", Body: "again", ReceivedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if got := e.issue(alice, res2.IssueID); got.Issue.CustomerID != phoneCustomer {
			t.Errorf("new mail went to customer %d; want %d", got.Issue.CustomerID, phoneCustomer)
		}
		e.expect(admin, "POST", path, map[string]int64{"into_customer_id": phoneCustomer}, 409, "merged away")
		var followers int
		if err := e.s.DB.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM customer_followers WHERE customer_id = $1 AND user_id = $2`,
			phoneCustomer, userID(t, e, "alice")).Scan(&followers); err != nil || followers != 1 {
			t.Errorf("alice follows the survivor %d times (%v); want once", followers, err)
		}
		e.expect(alice, "GET", "/api/customers/999999", nil, 404, "no such customer")
	})
}
