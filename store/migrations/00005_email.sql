-- Email intake (channels/email). This file is a Go template like 00001.

-- +goose Up

-- Where intake stands in each mailbox: the UIDVALIDITY it was read under and the highest
-- UID done with (taken, ignored as automatic, or quarantined). A different UIDVALIDITY
-- means the UIDs were renumbered: intake starts over at 0 and Message-ID deduplication
-- (inbound_receipts) keeps what was already taken from being taken twice.
CREATE TABLE email_mailboxes (
    channel_id   BIGINT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    mailbox      TEXT NOT NULL,                  -- the IMAP folder, such as INBOX
    uid_validity BIGINT NOT NULL,
    last_uid     BIGINT NOT NULL DEFAULT 0,
    updated_at   {{.Time}} NOT NULL,
    PRIMARY KEY (channel_id, mailbox)
);

-- Failed attempts at one message, until it is taken or quarantined.
CREATE TABLE email_failures (
    channel_id   BIGINT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    mailbox      TEXT NOT NULL,
    uid_validity BIGINT NOT NULL,
    uid          BIGINT NOT NULL,
    tries        INTEGER NOT NULL,
    last_error   TEXT NOT NULL,
    updated_at   {{.Time}} NOT NULL,
    PRIMARY KEY (channel_id, mailbox, uid_validity, uid)
);

-- Mail that could not be taken, kept aside for admins instead of blocking the mailbox.
CREATE TABLE email_quarantine (
    id           {{.PK}},
    channel_id   BIGINT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    mailbox      TEXT NOT NULL,
    uid_validity BIGINT NOT NULL,
    uid          BIGINT NOT NULL,
    message_id   TEXT NOT NULL DEFAULT '',
    from_addr    TEXT NOT NULL DEFAULT '',
    subject      TEXT NOT NULL DEFAULT '',
    error        TEXT NOT NULL,
    tries        INTEGER NOT NULL,
    size         BIGINT NOT NULL,
    raw          {{.Bytes}} NOT NULL,            -- the message as fetched (cut at the size limit)
    created_at   {{.Time}} NOT NULL,
    UNIQUE (channel_id, mailbox, uid_validity, uid)
);

-- Every mail taken: the original, its whole text (quoted history and signature included;
-- the comment holds only the new text) and where it came from. message_id is the
-- comment's external_id.
CREATE TABLE email_messages (
    id           {{.PK}},
    message_id   TEXT NOT NULL UNIQUE,
    channel_id   BIGINT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    mailbox      TEXT NOT NULL,
    uid_validity BIGINT NOT NULL,
    uid          BIGINT NOT NULL,
    from_addr    TEXT NOT NULL,
    subject      TEXT NOT NULL,
    full_body    TEXT NOT NULL,
    from_html    BOOLEAN NOT NULL,               -- the text was converted from HTML
    truncated    BOOLEAN NOT NULL,               -- the original was larger than the limit and was cut
    raw          {{.Bytes}} NOT NULL,
    raw_size     BIGINT NOT NULL,                -- the original's size on the server
    received_at  {{.Time}} NOT NULL
);

-- Files and inline images of a mail. data is NULL when the file was larger than the
-- limit: it is listed with its name, type and size but cannot be downloaded.
CREATE TABLE email_attachments (
    id           {{.PK}},
    email_id     BIGINT NOT NULL REFERENCES email_messages(id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    content_id   TEXT NOT NULL DEFAULT '',
    inline       BOOLEAN NOT NULL,
    size         BIGINT NOT NULL,
    data         {{.Bytes}},
    UNIQUE (email_id, position)
);

-- +goose Down
DROP TABLE email_attachments;
DROP TABLE email_messages;
DROP TABLE email_quarantine;
DROP TABLE email_failures;
DROP TABLE email_mailboxes;
