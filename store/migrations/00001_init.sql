-- The first schema. This file is a Go template: the fields PK, Time and Bytes are the only
-- type names that differ between engines; everything else is SQL both engines accept.
-- Times are written by the application in UTC, truncated to microseconds.

-- +goose Up

-- accounts
CREATE TABLE users (
    id            {{.PK}},
    email         TEXT NOT NULL,
    email_norm    TEXT NOT NULL UNIQUE,          -- lower-cased, for case-insensitive login
    name          TEXT NOT NULL,
    handle        TEXT NOT NULL UNIQUE,          -- for @mentions; defaults to the email's local part
    role          TEXT NOT NULL CHECK (role IN ('admin', 'agent')),
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    {{.Time}} NOT NULL
);

CREATE TABLE sessions (
    id           {{.PK}},
    token_hash   {{.Bytes}} NOT NULL UNIQUE,     -- SHA-256 of the cookie token; the token itself is never stored
    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   {{.Time}} NOT NULL,
    expires_at   {{.Time}} NOT NULL,
    last_seen_at {{.Time}} NOT NULL,
    user_agent   TEXT NOT NULL DEFAULT '',
    remote_addr  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE teams (
    id         {{.PK}},
    name       TEXT NOT NULL,
    handle     TEXT NOT NULL UNIQUE,
    created_at {{.Time}} NOT NULL
);

CREATE TABLE team_members (
    team_id BIGINT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);

-- channels and their feeds
CREATE TABLE channels (
    id          {{.PK}},
    kind        TEXT NOT NULL CHECK (kind IN ('team', 'direct', 'sms', 'email')),
    name        TEXT NOT NULL,
    address     TEXT,                            -- sms: E.164 number; email: mailbox address
    all_agents  BOOLEAN NOT NULL DEFAULT FALSE,  -- every user is a member (sms and email channels, until narrowed)
    last_number BIGINT NOT NULL DEFAULT 0,       -- number of the channel's newest message
    created_at  {{.Time}} NOT NULL,
    UNIQUE (kind, address)
);

CREATE TABLE channel_members (
    channel_id BIGINT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    joined_at  {{.Time}} NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX channel_members_user ON channel_members (user_id);

-- Read markers are apart from membership: members of all_agents channels have no
-- membership row, but they do read.
CREATE TABLE channel_reads (
    channel_id BIGINT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    last_read  BIGINT NOT NULL DEFAULT 0,        -- the number of the last message read
    PRIMARY KEY (channel_id, user_id)
);

-- customers and issues
CREATE TABLE customers (
    id              {{.PK}},
    name            TEXT NOT NULL DEFAULT '',
    phone           TEXT UNIQUE,                 -- E.164
    email           TEXT,
    email_norm      TEXT UNIQUE,                 -- lower-cased
    created_at      {{.Time}} NOT NULL,
    last_message_at {{.Time}}
);

CREATE TABLE issues (
    id                {{.PK}},
    channel_id        BIGINT NOT NULL REFERENCES channels(id),
    customer_id       BIGINT NOT NULL REFERENCES customers(id),
    status            TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'in_progress', 'resolved', 'closed')),
    priority          TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    assignee_id       BIGINT REFERENCES users(id),
    resolved_by       BIGINT REFERENCES users(id),
    subject           TEXT NOT NULL DEFAULT '',
    linked_issue_id   BIGINT REFERENCES issues(id),
    created_at        {{.Time}} NOT NULL,
    updated_at        {{.Time}} NOT NULL,
    first_response_at {{.Time}},
    resolved_at       {{.Time}},
    closed_at         {{.Time}}
);
CREATE INDEX issues_customer_status ON issues (customer_id, status);
CREATE INDEX issues_status_created ON issues (status, created_at);
CREATE INDEX issues_channel_created ON issues (channel_id, created_at);

CREATE TABLE comments (
    id              {{.PK}},
    issue_id        BIGINT NOT NULL REFERENCES issues(id),
    kind            TEXT NOT NULL CHECK (kind IN ('customer', 'reply', 'note')),
    body            TEXT NOT NULL,               -- byte for byte as received
    author_id       BIGINT REFERENCES users(id), -- replies and notes
    customer_id     BIGINT REFERENCES customers(id), -- customer messages
    channel_id      BIGINT REFERENCES channels(id),  -- the medium it crossed
    external_id     TEXT,                        -- Twilio MessageSid, email Message-ID
    delivery_status TEXT,                        -- replies: queued, sent, delivered, failed, …
    created_at      {{.Time}} NOT NULL
);
CREATE INDEX comments_issue ON comments (issue_id, id);

CREATE TABLE activity (
    id         {{.PK}},
    issue_id   BIGINT NOT NULL REFERENCES issues(id),
    actor_id   BIGINT REFERENCES users(id),      -- NULL: the customer or the system
    action     TEXT NOT NULL,
    details    TEXT NOT NULL DEFAULT '{}',       -- JSON
    created_at {{.Time}} NOT NULL
);
CREATE INDEX activity_issue ON activity (issue_id, id);

-- The feed: what appears in a channel, in order. number is 1, 2, 3, … per channel; unread
-- counts are last_number minus the reader's last_read, less their own messages.
CREATE TABLE messages (
    id             {{.PK}},
    channel_id     BIGINT NOT NULL REFERENCES channels(id),
    number         BIGINT NOT NULL,
    author_id      BIGINT REFERENCES users(id),
    customer_id    BIGINT REFERENCES customers(id),
    issue_id       BIGINT REFERENCES issues(id),
    comment_id     BIGINT REFERENCES comments(id),
    body           TEXT NOT NULL,
    created_at     {{.Time}} NOT NULL,
    UNIQUE (channel_id, number)
);

-- Inbound idempotency: a provider's message id is recorded in the same transaction as
-- what it caused, so a retried webhook or a re-fetched mail is a no-op, even when two
-- retries race (the primary key decides).
CREATE TABLE inbound_receipts (
    provider    TEXT NOT NULL,                   -- 'twilio', 'email', …
    external_id TEXT NOT NULL,
    comment_id  BIGINT REFERENCES comments(id),
    received_at {{.Time}} NOT NULL,
    PRIMARY KEY (provider, external_id)
);

-- Live events. seq is per topic, taken from topics.seq inside the writing transaction, so
-- the row lock orders commits and seqs alike on PostgreSQL with many writers.
CREATE TABLE topics (
    id             {{.PK}},
    name           TEXT NOT NULL UNIQUE,         -- 'channel:3', 'user:7', 'issue:12'
    seq            BIGINT NOT NULL DEFAULT 0,
    pruned_through BIGINT NOT NULL DEFAULT 0     -- events at or below this seq are gone
);

CREATE TABLE events (
    id         {{.PK}},
    topic_id   BIGINT NOT NULL REFERENCES topics(id),
    seq        BIGINT NOT NULL,
    type       TEXT NOT NULL,
    payload    TEXT NOT NULL,                    -- JSON object
    created_at {{.Time}} NOT NULL,
    UNIQUE (topic_id, seq)
);
CREATE INDEX events_created ON events (created_at);

-- +goose Down
DROP TABLE events;
DROP TABLE topics;
DROP TABLE inbound_receipts;
DROP TABLE messages;
DROP TABLE activity;
DROP TABLE comments;
DROP TABLE issues;
DROP TABLE customers;
DROP TABLE channel_reads;
DROP TABLE channel_members;
DROP TABLE channels;
DROP TABLE team_members;
DROP TABLE teams;
DROP TABLE sessions;
DROP TABLE users;
