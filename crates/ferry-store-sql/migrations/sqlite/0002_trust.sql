-- TUF metadata files, immutable once stored, and each device's director version.
CREATE TABLE tuf_metadata (
    repo       TEXT NOT NULL,
    role       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    bytes      BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (repo, role, version)
);

CREATE TABLE director_state (
    device_id TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    version   INTEGER NOT NULL,
    digest    TEXT NOT NULL,
    issued_at INTEGER NOT NULL
);
