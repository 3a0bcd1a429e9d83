-- Outbound delivery (the durable outbox), Twilio numbers with their own credentials,
-- SMS opt-outs and MMS media. This file is a Go template like 00001.

-- +goose Up

-- The outbox: one row per message to send, inserted in the transaction that creates the
-- reply, delivered by a worker on some node. state:
--   pending    waiting for next_attempt_at: the first try, or after a transient failure
--   sending    claimed by a worker until claimed_until (a lease: one sender at a time)
--   sent       the provider took it (external_id); its reports update provider_status
--   failed     refused for good, or reported failed/undelivered (error_code, error_reason)
--   unknown    the outcome is unknown (a timeout or a connection lost after the request
--              was sent, or a worker that stopped mid-send): never re-sent without an agent
--   discarded  an agent decided not to send it (again)
CREATE TABLE outbox (
    id              {{.PK}},
    comment_id      BIGINT REFERENCES comments(id),
    issue_id        BIGINT REFERENCES issues(id),
    channel_id      BIGINT NOT NULL REFERENCES channels(id),
    connector       TEXT NOT NULL,                 -- 'sms', 'email': who delivers it
    recipient       TEXT NOT NULL,                 -- E.164 number or email address
    body            TEXT NOT NULL,
    payload         TEXT NOT NULL DEFAULT '{}',    -- JSON: the connector's extras
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'unknown', 'discarded')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    queued_at       {{.Time}} NOT NULL,            -- start of the retry window (reset by a manual retry)
    next_attempt_at {{.Time}} NOT NULL,
    claimed_until   {{.Time}},
    claim_token     TEXT,
    external_id     TEXT,                          -- Twilio MessageSid, email Message-ID
    provider_status TEXT,                          -- the provider's latest word: queued, sent, delivered, …
    error_code      TEXT,
    error_reason    TEXT,
    created_at      {{.Time}} NOT NULL,
    updated_at      {{.Time}} NOT NULL
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
-- A lane is one recipient on one channel: its messages go out in order.
CREATE INDEX outbox_lane ON outbox (channel_id, recipient, id);
CREATE INDEX outbox_comment ON outbox (comment_id);
CREATE INDEX outbox_issue ON outbox (issue_id, id);
CREATE INDEX outbox_external ON outbox (connector, external_id);

-- Twilio numbers: each is an SMS channel with its own account (or subaccount) credentials,
-- and optionally the Messaging Service it belongs to. An SMS channel with no row here
-- uses the default account (TWILIO_*); a disconnected number keeps its row, marked, so
-- it is refused rather than falling back to the default account.
CREATE TABLE sms_numbers (
    channel_id            BIGINT PRIMARY KEY REFERENCES channels(id),
    number                TEXT NOT NULL UNIQUE,    -- E.164, as channels.address
    account_sid           TEXT NOT NULL,
    auth_token            TEXT NOT NULL,           -- the signing key of webhooks; never served by the API
    messaging_service_sid TEXT UNIQUE,
    created_at            {{.Time}} NOT NULL,
    updated_at            {{.Time}} NOT NULL,
    disconnected_at       {{.Time}}
);
CREATE INDEX sms_numbers_account ON sms_numbers (account_sid);

-- Opt-outs by the customer's phone number (what carriers and Twilio block on): a row means
-- the number texted STOP (or another opt-out keyword) and has not texted START since.
CREATE TABLE sms_opt_outs (
    phone        TEXT PRIMARY KEY,
    channel_id   BIGINT REFERENCES channels(id),
    keyword      TEXT NOT NULL,
    message_sid  TEXT NOT NULL,
    opted_out_at {{.Time}} NOT NULL
);

-- Every opt-out and opt-in keyword received, by MessageSid: a retried webhook applies it
-- once, and admins can see who stopped or restarted when.
CREATE TABLE sms_keywords (
    message_sid TEXT PRIMARY KEY,
    phone       TEXT NOT NULL,
    channel_id  BIGINT REFERENCES channels(id),
    keyword     TEXT NOT NULL,
    opt_out     BOOLEAN NOT NULL,
    received_at {{.Time}} NOT NULL
);

-- MMS media of inbound messages, by MessageSid (the comment's external_id): links to
-- Twilio's copies, not downloaded.
CREATE TABLE sms_media (
    message_sid  TEXT NOT NULL,
    position     INTEGER NOT NULL,
    url          TEXT NOT NULL,
    content_type TEXT NOT NULL,
    PRIMARY KEY (message_sid, position)
);

-- +goose Down
DROP TABLE sms_media;
DROP TABLE sms_keywords;
DROP TABLE sms_opt_outs;
DROP TABLE sms_numbers;
DROP TABLE outbox;
