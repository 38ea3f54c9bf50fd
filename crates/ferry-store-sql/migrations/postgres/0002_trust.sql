-- TUF metadata files, immutable once stored, and each device's director version.
CREATE TABLE tuf_metadata (
    repo       TEXT COLLATE "C" NOT NULL,
    role       TEXT COLLATE "C" NOT NULL,
    version    BIGINT NOT NULL,
    bytes      BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (repo, role, version)
);

CREATE TABLE director_state (
    device_id TEXT COLLATE "C" PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    version   BIGINT NOT NULL,
    digest    TEXT NOT NULL,
    issued_at BIGINT NOT NULL
);
