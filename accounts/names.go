package accounts

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/switchboard-hq/switchboard/store"
)

// Names returns the display names of the given users, read through q (a transaction when
// the caller is inside one). Unknown ids are absent from the map.
func (s *Service) Names(ctx context.Context, q store.Querier, ids []int64) (map[int64]string, error) {
	out := make(map[int64]string, len(ids))
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	for chunk := range slices.Chunk(ids, 500) {
		marks := make([]string, len(chunk))
		args := make([]any, len(chunk))
		for i, id := range chunk {
			marks[i], args[i] = fmt.Sprintf("$%d", i+1), id
		}
		rows, err := q.QueryContext(ctx, `SELECT id, name FROM users WHERE id IN (`+strings.Join(marks, ",")+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("accounts: names: %w", err)
		}
		for rows.Next() {
			var id int64
			var name string
			if err := rows.Scan(&id, &name); err != nil {
				rows.Close()
				return nil, fmt.Errorf("accounts: names: %w", err)
			}
			out[id] = name
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("accounts: names: %w", err)
		}
	}
	return out, nil
}

// UsersIn returns the users with the given ids (all users when ids is nil), read through
// q. Callers inside a transaction pass it, so the look-up needs no second connection: on
// PostgreSQL, transactions that each wait for a pooled connection could otherwise use up
// the pool and wait on each other.
func (s *Service) UsersIn(ctx context.Context, q store.Querier, ids []int64) (map[int64]*User, error) {
	out := make(map[int64]*User, len(ids))
	collect := func(query string, args ...any) error {
		rows, err := q.QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("accounts: users: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			u, err := scanUser(rows)
			if err != nil {
				return fmt.Errorf("accounts: users: %w", err)
			}
			out[u.ID] = u
		}
		return rows.Err()
	}
	if ids == nil {
		return out, collect(`SELECT ` + userColumns + ` FROM users`)
	}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	for chunk := range slices.Chunk(ids, 500) {
		marks := make([]string, len(chunk))
		args := make([]any, len(chunk))
		for i, id := range chunk {
			marks[i], args[i] = fmt.Sprintf("$%d", i+1), id
		}
		if err := collect(`SELECT `+userColumns+` FROM users WHERE id IN (`+strings.Join(marks, ",")+`)`, args...); err != nil {
			return nil, err
		}
	}
	return out, nil
}
