package issues

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/switchboard-hq/switchboard/internal/httpx"
	"github.com/switchboard-hq/switchboard/store"
)

// Refusals of customer merges.
var (
	ErrCustomerNotFound = httpx.Errorf(http.StatusNotFound, "no such customer")
	ErrMergeAdminOnly   = httpx.Errorf(http.StatusForbidden, "only admins may merge customers")
	ErrMergeSameOrGone  = httpx.Errorf(http.StatusConflict, "a customer can be merged only into another customer that has not been merged away")
)

// CustomerProfile is a customer with their issues, newest first.
type CustomerProfile struct {
	Customer *Customer `json:"customer"`
	Issues   []*Issue  `json:"issues"`
}

// CustomerView is a customer profile as one user sees it: whether they follow the
// customer, so the View Customer lightbox opens showing the right Follow state.
type CustomerView struct {
	*CustomerProfile
	Following bool `json:"following"`
}

// ProfileFor is Profile as userID sees it. Following is asked of the survivor when the
// customer was merged away, since that is whom Follow follows.
func (s *Service) ProfileFor(ctx context.Context, userID, id int64, channels []int64) (*CustomerView, error) {
	p, err := s.Profile(ctx, id, channels)
	if err != nil {
		return nil, err
	}
	following, err := s.IsFollowing(ctx, userID, p.Customer.ID)
	if err != nil {
		return nil, err
	}
	return &CustomerView{CustomerProfile: p, Following: following}, nil
}

func (s *Service) customer(ctx context.Context, q store.Querier, id int64) (*Customer, *int64, error) {
	c := &Customer{ID: id}
	var merged *int64
	err := q.QueryRowContext(ctx, `SELECT name, phone, email, created_at, merged_into FROM customers WHERE id = $1`, id).
		Scan(&c.Name, &c.Phone, &c.Email, &c.CreatedAt, &merged)
	if errors.Is(store.Err(err), store.ErrNotFound) {
		return nil, nil, ErrCustomerNotFound
	}
	if err != nil {
		return nil, nil, err
	}
	return c, merged, nil
}

// Profile returns a customer and their issues in the given channels. A customer merged
// into another is answered with the survivor.
func (s *Service) Profile(ctx context.Context, id int64, channels []int64) (*CustomerProfile, error) {
	for range 8 { // follow merges, bounded
		c, merged, err := s.customer(ctx, s.db, id)
		if err != nil {
			return nil, err
		}
		if merged != nil {
			id = *merged
			continue
		}
		list, err := s.customerIssues(ctx, id, channels)
		if err != nil {
			return nil, err
		}
		return &CustomerProfile{Customer: c, Issues: list}, nil
	}
	return nil, ErrCustomerNotFound
}

// customerIssues lists a customer's issues in the given channels, newest first, at most
// 200.
func (s *Service) customerIssues(ctx context.Context, customerID int64, channels []int64) ([]*Issue, error) {
	list := []*Issue{}
	if len(channels) == 0 {
		return list, nil
	}
	args := []any{customerID}
	marks := make([]string, len(channels))
	for i, id := range channels {
		args = append(args, id)
		marks[i] = fmt.Sprintf("$%d", i+2)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+issueCols+issueFrom+`WHERE i.customer_id = $1 AND i.channel_id IN (`+
		strings.Join(marks, ",")+`) ORDER BY i.id DESC LIMIT 200`, args...)
	if err != nil {
		return nil, fmt.Errorf("issues: customer %d: %w", customerID, err)
	}
	defer rows.Close()
	for rows.Next() {
		i, err := scanIssue(rows)
		if err != nil {
			return nil, fmt.Errorf("issues: customer %d: %w", customerID, err)
		}
		list = append(list, i)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return list, s.name(ctx, s.db, list)
}

// MergeCustomers folds customer from into customer into (admins only): their issues,
// messages and contacts move over, and later messages from from's phone or address land
// on into.
func (s *Service) MergeCustomers(ctx context.Context, a Actor, from, into int64) (*Customer, error) {
	if !a.Admin {
		return nil, ErrMergeAdminOnly
	}
	if from == into {
		return nil, ErrMergeSameOrGone
	}
	var out *Customer
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		now := s.now()
		for _, id := range []int64{min(from, into), max(from, into)} {
			res, err := tx.ExecContext(ctx, `UPDATE customers SET name = name WHERE id = $1`, id)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return ErrCustomerNotFound
			}
		}
		src, srcMerged, err := s.customer(ctx, tx, from)
		if err != nil {
			return err
		}
		dst, dstMerged, err := s.customer(ctx, tx, into)
		if err != nil {
			return err
		}
		if srcMerged != nil || dstMerged != nil {
			return ErrMergeSameOrGone
		}
		// Contacts the survivor lacks move to it; one it already has of its own kind stays
		// on the merged customer, whose row redirects intake (upsertCustomer).
		movePhone := dst.Phone == nil && src.Phone != nil
		moveEmail := dst.Email == nil && src.Email != nil
		if _, err := tx.ExecContext(ctx, `UPDATE customers SET merged_into = $1,
			phone = CASE WHEN $2 THEN NULL ELSE phone END,
			email = CASE WHEN $3 THEN NULL ELSE email END,
			email_norm = CASE WHEN $3 THEN NULL ELSE email_norm END
			WHERE id = $4`, into, movePhone, moveEmail, from); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE customers SET
			phone = CASE WHEN $1 THEN $2 ELSE phone END,
			email = CASE WHEN $3 THEN $4 ELSE email END,
			email_norm = CASE WHEN $3 THEN LOWER($4) ELSE email_norm END,
			name = CASE WHEN name = '' THEN $5 ELSE name END
			WHERE id = $6`, movePhone, src.Phone, moveEmail, src.Email, src.Name, into); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT id FROM issues WHERE customer_id = $1`, from)
		if err != nil {
			return err
		}
		var moved []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			moved = append(moved, id)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		for _, q := range []string{
			`UPDATE issues SET customer_id = $1 WHERE customer_id = $2`,
			`UPDATE comments SET customer_id = $1 WHERE customer_id = $2`,
			`UPDATE messages SET customer_id = $1 WHERE customer_id = $2`,
			// Followers of either follow the survivor; one who followed both stays once.
			`INSERT INTO customer_followers (customer_id, user_id, created_at)
				SELECT $1, user_id, created_at FROM customer_followers WHERE customer_id = $2
				ON CONFLICT (customer_id, user_id) DO NOTHING`,
		} {
			if _, err := tx.ExecContext(ctx, q, into, from); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM customer_followers WHERE customer_id = $1`, from); err != nil {
			return err
		}
		for _, id := range moved {
			if err := s.addActivity(ctx, tx, id, &a.UserID, "customer_merged",
				map[string]any{"from_customer_id": from, "into_customer_id": into}, now); err != nil {
				return err
			}
		}
		if err := s.emitChanged(ctx, tx, a, "customer_merged", moved...); err != nil {
			return err
		}
		out, _, err = s.customer(ctx, tx, into)
		return err
	})
	if err != nil {
		return nil, s.wrap("merge customer", from, err)
	}
	return out, nil
}
