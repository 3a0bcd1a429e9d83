-- SLAs, timers and auto-close (issues/sla.go, issues/autoclose.go) and the database lease
-- that makes singleton jobs run on one node (internal/lease). A Go template like 00001.

-- +goose Up

-- Singleton jobs: one row per job name. A node holds the job while expires_at is in the
-- future; it renews by the same conditional upsert that takes a free or expired lease.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at {{.Time}} NOT NULL
);

-- A channel's SLA policy. Issues opened in the channel after created_at are held to it;
-- each issue keeps a copy of the targets it opened under (the sla_* columns below), so a
-- later change of policy does not move the due times of issues already open.
CREATE TABLE sla_policies (
    channel_id             BIGINT PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
    first_response_minutes INTEGER NOT NULL,
    resolution_minutes     INTEGER NOT NULL,
    pause_while_waiting    BOOLEAN NOT NULL DEFAULT FALSE,
    warn_percent           INTEGER NOT NULL DEFAULT 80,
    created_at             {{.Time}} NOT NULL,
    updated_at             {{.Time}} NOT NULL
);

-- Organisation-wide SLA settings: at most one row, id 1. No row means the defaults.
CREATE TABLE sla_settings (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    alert_channel_id   BIGINT REFERENCES channels(id) ON DELETE SET NULL, -- where breach alerts are posted; NULL: nowhere
    auto_close_minutes INTEGER NOT NULL DEFAULT 5760,                     -- resolved issues close after this; 0: never
    updated_at         {{.Time}} NOT NULL
);

-- An issue's SLA state. The engine stamps each new issue once with the targets of its
-- channel's policy, or 0 when it has none: sla_first_response_minutes IS NULL means "not
-- looked at yet", 0 "no SLA". Issues that exist now predate every policy.
ALTER TABLE issues ADD COLUMN sla_first_response_minutes INTEGER;
UPDATE issues SET sla_first_response_minutes = 0;
ALTER TABLE issues ADD COLUMN sla_resolution_minutes INTEGER;
ALTER TABLE issues ADD COLUMN sla_warn_percent INTEGER;
ALTER TABLE issues ADD COLUMN sla_pause_while_waiting BOOLEAN NOT NULL DEFAULT FALSE;
-- Due times as of the engine's last look: created_at + target + paused time so far. They
-- only ever move later (a pause adds time), so they are lower bounds of the real ones.
ALTER TABLE issues ADD COLUMN sla_first_response_due {{.Time}};
ALTER TABLE issues ADD COLUMN sla_resolution_due {{.Time}};
ALTER TABLE issues ADD COLUMN sla_paused_seconds BIGINT NOT NULL DEFAULT 0;
-- Periods spent resolved or closed stop both clocks: the finished ones as a JSON list of
-- [start, end] pairs, the current one's start in sla_resolved_since.
ALTER TABLE issues ADD COLUMN sla_resolved_periods TEXT NOT NULL DEFAULT '[]';
ALTER TABLE issues ADD COLUMN sla_resolved_since {{.Time}};
-- Each warning and breach fires once: these are set in the transaction that fires it.
ALTER TABLE issues ADD COLUMN sla_first_response_warned_at {{.Time}};
ALTER TABLE issues ADD COLUMN sla_resolution_warned_at {{.Time}};
ALTER TABLE issues ADD COLUMN sla_first_response_breached_at {{.Time}};
ALTER TABLE issues ADD COLUMN sla_resolution_breached_at {{.Time}};
-- The earliest time anything can happen to this issue's SLA (a lower bound); NULL: nothing
-- pending. The engine looks only at issues whose time has come.
ALTER TABLE issues ADD COLUMN sla_next_check_at {{.Time}};
CREATE INDEX issues_sla_next_check ON issues (sla_next_check_at) WHERE sla_next_check_at IS NOT NULL;
-- Small partial indexes for the engine's other look-ups: issues not stamped yet, and issues
-- with an SLA whose resolved period has not been noted (the open ones, and any just resolved).
CREATE INDEX issues_sla_unstamped ON issues (id) WHERE sla_first_response_minutes IS NULL;
CREATE INDEX issues_sla_unresolved ON issues (status) WHERE sla_first_response_minutes > 0 AND sla_resolved_since IS NULL;

-- +goose Down
DROP INDEX issues_sla_unresolved;
DROP INDEX issues_sla_unstamped;
DROP INDEX issues_sla_next_check;
ALTER TABLE issues DROP COLUMN sla_next_check_at;
ALTER TABLE issues DROP COLUMN sla_resolution_breached_at;
ALTER TABLE issues DROP COLUMN sla_first_response_breached_at;
ALTER TABLE issues DROP COLUMN sla_resolution_warned_at;
ALTER TABLE issues DROP COLUMN sla_first_response_warned_at;
ALTER TABLE issues DROP COLUMN sla_resolved_since;
ALTER TABLE issues DROP COLUMN sla_resolved_periods;
ALTER TABLE issues DROP COLUMN sla_paused_seconds;
ALTER TABLE issues DROP COLUMN sla_resolution_due;
ALTER TABLE issues DROP COLUMN sla_first_response_due;
ALTER TABLE issues DROP COLUMN sla_pause_while_waiting;
ALTER TABLE issues DROP COLUMN sla_warn_percent;
ALTER TABLE issues DROP COLUMN sla_resolution_minutes;
ALTER TABLE issues DROP COLUMN sla_first_response_minutes;
DROP TABLE sla_settings;
DROP TABLE sla_policies;
DROP TABLE leases;
