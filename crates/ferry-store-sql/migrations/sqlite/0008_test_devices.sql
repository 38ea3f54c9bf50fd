-- Test devices (a pilot ring): a device, or every member of a group, marked `test` is also
-- offered signed releases that no group has approved yet.
ALTER TABLE devices ADD COLUMN test INTEGER NOT NULL DEFAULT 0;
ALTER TABLE groups ADD COLUMN test INTEGER NOT NULL DEFAULT 0;

-- Requests to wake a device's agent now (`ferry device check-now`). Every server polls rows
-- with an id above the last it saw, once a second, and wakes its own waiting devices; a
-- device takes (deletes) its requests when it is told. Rows older than a few minutes are
-- deleted by the next request.
CREATE TABLE wake_requests (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id    TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    requested_at BIGINT NOT NULL
);
CREATE INDEX wake_requests_by_device ON wake_requests (device_id);
CREATE INDEX wake_requests_by_time ON wake_requests (requested_at);
