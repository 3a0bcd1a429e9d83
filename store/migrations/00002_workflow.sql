-- The issue workflow: snooze, @mentions in notes, customers followed by agents. This file is a Go template like 00001.

-- +goose Up

-- An issue snoozed until a time leaves the active lists; Service.Unsnooze brings it back.
ALTER TABLE issues ADD COLUMN snoozed_until {{.Time}};
CREATE INDEX issues_snoozed ON issues (snoozed_until) WHERE snoozed_until IS NOT NULL;

-- One row per user or team an internal note mentions (unknown handles are not stored).
-- Keyed by comment, not issue, so moving comments between issues (split, merge) keeps them.
CREATE TABLE mentions (
    id         {{.PK}},
    comment_id BIGINT NOT NULL REFERENCES comments(id) ON DELETE CASCADE,
    handle     TEXT NOT NULL,                    -- as written, lower-cased, without the @
    user_id    BIGINT REFERENCES users(id) ON DELETE CASCADE,
    team_id    BIGINT REFERENCES teams(id) ON DELETE CASCADE,
    created_at {{.Time}} NOT NULL,
    CHECK ((user_id IS NULL) <> (team_id IS NULL))
);
CREATE INDEX mentions_comment ON mentions (comment_id);
CREATE INDEX mentions_user ON mentions (user_id);
CREATE INDEX mentions_team ON mentions (team_id);

-- Agents who follow a customer (notifications of their messages and issues).
CREATE TABLE customer_followers (
    customer_id BIGINT NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  {{.Time}} NOT NULL,
    PRIMARY KEY (customer_id, user_id)
);
CREATE INDEX customer_followers_user ON customer_followers (user_id);

-- +goose Down
DROP TABLE customer_followers;
DROP TABLE mentions;
DROP INDEX issues_snoozed;
ALTER TABLE issues DROP COLUMN snoozed_until;
