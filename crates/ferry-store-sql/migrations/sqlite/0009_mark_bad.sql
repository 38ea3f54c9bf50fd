-- Releases an administrator marked bad: withdrawn from every offer, and the devices running one
-- are told (in their signed director metadata) to go back to the version they kept. Set once,
-- never cleared: there is no undo, a fixed release replaces a bad one.
-- Keep in step with ../postgres/0009_mark_bad.sql.
ALTER TABLE releases ADD COLUMN bad_at INTEGER;
ALTER TABLE releases ADD COLUMN bad_reason TEXT;
ALTER TABLE releases ADD COLUMN bad_by TEXT;
