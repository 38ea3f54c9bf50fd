-- The signed files of each device's current director version, served as issued: a device
-- that fetched timestamp N gets exactly snapshot N and targets N, from any server replica.
ALTER TABLE director_state ADD COLUMN targets BYTEA NOT NULL DEFAULT ''::bytea;
ALTER TABLE director_state ADD COLUMN snapshot BYTEA NOT NULL DEFAULT ''::bytea;
ALTER TABLE director_state ADD COLUMN timestamp BYTEA NOT NULL DEFAULT ''::bytea;
