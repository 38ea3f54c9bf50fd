-- Staged rollouts: the plan and state of each, the devices each granted, and the timeline of
-- its state changes. Keep in step with ../postgres/0006_rollouts.sql.
--
-- targets, waves and limits are JSON (a list of group names, ferry_core::rollout::Wave and
-- Limits). period_start/period_grants count grants in the current rate period,
-- open_grants the grants under way (recounted by the server's rollout tick, incremented by
-- every grant), granted_total every grant ever made; the grant transaction decides on them.
CREATE TABLE rollouts (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    release_id          INTEGER NOT NULL REFERENCES releases (id),
    targets             TEXT NOT NULL,
    waves               TEXT NOT NULL,
    limits              TEXT NOT NULL,
    commit_timeout_secs BIGINT NOT NULL,
    emergency           INTEGER NOT NULL,
    state               TEXT NOT NULL,
    wave                BIGINT NOT NULL,
    wave_started_at     BIGINT NOT NULL,
    created_by          TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    revision            BIGINT NOT NULL,
    period_start        BIGINT NOT NULL DEFAULT 0,
    period_grants       BIGINT NOT NULL DEFAULT 0,
    open_grants         BIGINT NOT NULL DEFAULT 0,
    granted_total       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX rollouts_by_release ON rollouts (release_id);
CREATE INDEX rollouts_by_state ON rollouts (state);

CREATE TABLE rollout_grants (
    rollout_id INTEGER NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    wave       BIGINT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (rollout_id, device_id)
);
CREATE INDEX rollout_grants_by_device ON rollout_grants (device_id);

CREATE TABLE rollout_timeline (
    rollout_id INTEGER NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    revision   BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    state      TEXT NOT NULL,
    wave       BIGINT NOT NULL,
    cause      TEXT NOT NULL,
    by_name    TEXT,
    PRIMARY KEY (rollout_id, revision)
);
