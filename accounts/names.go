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
