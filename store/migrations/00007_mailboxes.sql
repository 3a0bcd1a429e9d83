-- Mailboxes read into email channels (channels/email). This file is a Go template like 00001.

-- +goose Up

-- One row per mailbox read by IMAP, each its own email channel: the first from IMAP_URL
-- (written again at every start), more added by admins through /api/email/mailboxes.
-- Every node reconciles its intake loops with this table; a lease per mailbox
-- (email:<channel id>) makes one node read each. Deleting a row stops intake; the
-- channel and its issues stay.
CREATE TABLE mailboxes (
    channel_id BIGINT PRIMARY KEY REFERENCES channels(id),
    address    TEXT NOT NULL,           -- the mailbox's address, as channels.address
    imap_url   TEXT NOT NULL,           -- imaps://user:password@host/FOLDER; never served by the API
    created_at {{.Time}} NOT NULL,
    updated_at {{.Time}} NOT NULL
);

-- +goose Down
DROP TABLE mailboxes;
