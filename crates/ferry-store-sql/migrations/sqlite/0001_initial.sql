-- Ferry's schema, SQLite dialect. Times are unix seconds; hashes are lower-case hex; JSON is
-- stored as TEXT. Keep in step with ../postgres/0001_initial.sql.

CREATE TABLE products (
    name        TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE platforms (
    name        TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE content (
    sha256     TEXT PRIMARY KEY NOT NULL,
    length     BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE releases (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    product            TEXT NOT NULL REFERENCES products (name),
    version            TEXT NOT NULL,
    line               TEXT NOT NULL CHECK (line IN ('software', 'config')),
    kind               TEXT NOT NULL,
    required           INTEGER NOT NULL,
    reboot             TEXT NOT NULL,
    classification     TEXT NOT NULL,
    notes              TEXT NOT NULL,
    dependencies       TEXT NOT NULL,
    supersedes         TEXT NOT NULL,
    no_update_versions TEXT NOT NULL,
    applies_to         TEXT,
    counter            BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    UNIQUE (product, line, version),
    UNIQUE (product, counter)
);

CREATE TABLE release_platforms (
    release_id INTEGER NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    platform   TEXT NOT NULL REFERENCES platforms (name),
    ordinal    INTEGER NOT NULL,
    PRIMARY KEY (release_id, platform)
);

CREATE TABLE artifacts (
    release_id INTEGER NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    length     BIGINT NOT NULL,
    sha256     TEXT NOT NULL REFERENCES content (sha256),
    media_type TEXT NOT NULL,
    custom     TEXT NOT NULL,
    ordinal    INTEGER NOT NULL,
    PRIMARY KEY (release_id, name)
);
CREATE INDEX artifacts_by_content ON artifacts (sha256);

CREATE TABLE groups (
    name                  TEXT PRIMARY KEY NOT NULL,
    description           TEXT NOT NULL,
    checkin_interval_secs BIGINT NOT NULL,
    checkin_jitter        REAL NOT NULL,
    enrollment_key_hash   TEXT UNIQUE,
    created_at            BIGINT NOT NULL
);

CREATE TABLE approvals (
    release_id  INTEGER NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    group_name  TEXT NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
    action      TEXT NOT NULL,
    deadline    BIGINT,
    approved_by TEXT NOT NULL,
    approved_at BIGINT NOT NULL,
    PRIMARY KEY (release_id, group_name)
);
CREATE INDEX approvals_by_group ON approvals (group_name, release_id);

CREATE TABLE devices (
    id                 TEXT PRIMARY KEY NOT NULL,
    status             TEXT NOT NULL,
    credential_hash    TEXT UNIQUE,
    platform           TEXT,
    installed          TEXT NOT NULL,
    configs            TEXT NOT NULL,
    attributes         TEXT NOT NULL,
    agent_version      TEXT,
    boot_id            TEXT,
    prev_boot_id       TEXT,
    last_contact       BIGINT,
    enrolled_at        BIGINT NOT NULL,
    identity_conflicts BIGINT NOT NULL DEFAULT 0,
    last_conflict      TEXT,
    last_conflict_at   BIGINT,
    last_event_seq     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX devices_by_status ON devices (status, id);

CREATE TABLE device_groups (
    device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    group_name TEXT NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
    PRIMARY KEY (device_id, group_name)
);
CREATE INDEX device_groups_by_group ON device_groups (group_name, device_id);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    release_id  INTEGER NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    state       TEXT NOT NULL,
    progress    BIGINT,
    error_code  TEXT,
    message     TEXT,
    at          BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    UNIQUE (device_id, seq)
);
CREATE INDEX events_by_device_release ON events (device_id, release_id, seq);

CREATE TABLE device_releases (
    device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    release_id INTEGER NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
    state      TEXT NOT NULL,
    progress   BIGINT,
    error_code TEXT,
    message    TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, release_id)
);

CREATE TABLE admin_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
