-- Threading and customer merges. This file is a Go template like 00001.

-- +goose Up
ALTER TABLE customers ADD COLUMN merged_into BIGINT REFERENCES customers(id);
-- Email threading looks comments up by Message-ID.
CREATE INDEX comments_external ON comments (external_id);

-- +goose Down
DROP INDEX comments_external;
ALTER TABLE customers DROP COLUMN merged_into;
