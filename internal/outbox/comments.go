package outbox

import (
	"context"
	"fmt"

	"github.com/switchboard-hq/switchboard/store"
)

// setComment mirrors a delivery on its reply comment: delivery_status, and the provider's
// id as external_id once known (a retry keeps the previous id until the new one is known).
//
// This is the outbox's one write to another package's table (issues' comments). The two
// fields are the contract's delivery fields of a reply, and keeping them in the same
// transaction as the outbox row is what makes the comment never disagree with it; issues
// reads them and never writes them after creating the reply.
func setComment(ctx context.Context, tx *store.Tx, commentID int64, status string, externalID *string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE comments SET delivery_status = $1, external_id = COALESCE($2, external_id)
		WHERE id = $3`, status, externalID, commentID); err != nil {
		return fmt.Errorf("outbox: comment %d: %w", commentID, err)
	}
	return nil
}
