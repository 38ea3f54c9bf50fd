-- The signed files of each device's current director version, served as issued: a device
-- that fetched timestamp N gets exactly snapshot N and targets N, from any server replica.
ALTER TABLE director_state ADD COLUMN targets BLOB NOT NULL DEFAULT x'';
ALTER TABLE director_state ADD COLUMN snapshot BLOB NOT NULL DEFAULT x'';
ALTER TABLE director_state ADD COLUMN timestamp BLOB NOT NULL DEFAULT x'';
