-- Notifications (notify/): preferences, the in-app inbox and the notification email queue.
-- This file is a Go template like 00001.

-- +goose Up

-- Preference documents, as JSON in the shape PUT /api/preferences takes: only what the
-- user (or, in the org row, an admin) chose; everything absent is inherited. JSON rather
-- than one row per setting because the API reads and writes whole documents and a
-- partial PUT is a merge of two of them.
CREATE TABLE notification_prefs (
    user_id    BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    doc        TEXT NOT NULL,
    updated_at {{.Time}} NOT NULL
);

-- The organisation's defaults: at most one row, id 1. No row means the factory defaults.
CREATE TABLE notification_org_prefs (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    doc        TEXT NOT NULL,
    updated_at {{.Time}} NOT NULL
);

-- One row per recipient of one occurrence. in_app rows are the user's inbox; a row may be
-- email only (in_app false), and then it never shows in the list. issue_id, channel_id
-- and actor_id carry no foreign keys: a notification is a record of what was said, and
-- notify does not own those tables.
--
-- email_state:
--   none     no email for this notification
--   held     quiet hours: waits until they end (the worker checks at every pass)
--   pending  goes out with the user's next mail, not before email_next_at
--   sent     the SMTP server accepted the mail that carried it
--   dropped  not sent: the user has no address or was disabled, or retries ran out
CREATE TABLE notifications (
    id             {{.PK}},
    user_id        BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    event          TEXT NOT NULL,
    title          TEXT NOT NULL,
    body           TEXT NOT NULL DEFAULT '',
    link           TEXT NOT NULL DEFAULT '',      -- a frontend path such as #/issues/12
    issue_id       BIGINT,
    channel_id     BIGINT,
    actor_id       BIGINT,
    sound          TEXT,                          -- the sound chosen for it, played or held
    sound_held     BOOLEAN NOT NULL DEFAULT FALSE, -- quiet hours held the sound; released at their end
    in_app         BOOLEAN NOT NULL,
    created_at     {{.Time}} NOT NULL,
    read_at        {{.Time}},
    email_state    TEXT NOT NULL DEFAULT 'none'
                   CHECK (email_state IN ('none', 'held', 'pending', 'sent', 'dropped')),
    email_next_at  {{.Time}},                     -- pending: not before this (the digest window, or a retry)
    email_attempts INTEGER NOT NULL DEFAULT 0,
    email_queued_at {{.Time}},                    -- when it became pending: retries give up long after
    email_sent_at  {{.Time}},
    email_error    TEXT
);
CREATE INDEX notifications_user ON notifications (user_id, id);
CREATE INDEX notifications_unread ON notifications (user_id) WHERE read_at IS NULL;
CREATE INDEX notifications_email ON notifications (email_state, user_id) WHERE email_state IN ('held', 'pending');
CREATE INDEX notifications_sound_held ON notifications (user_id) WHERE sound_held;

-- +goose Down
DROP TABLE notifications;
DROP TABLE notification_org_prefs;
DROP TABLE notification_prefs;
