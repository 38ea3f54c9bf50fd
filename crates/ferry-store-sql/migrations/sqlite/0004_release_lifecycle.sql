-- Releases: a rank key for the version conflict check, an archive flag, and whether the
-- release was ever approved for install. Keep in step with ../postgres/0004_release_lifecycle.sql.
--
-- version_key is Version::rank_key(): versions that compare equal (5, 5.0, 5.0 (Rel)) share it,
-- so the unique index refuses them on one product line whatever the spelling. It is computed
-- in Rust; rows from before this migration are filled in when the store opens (NULLs do not
-- collide in a unique index, so a database that already holds two equal versions still opens).
ALTER TABLE releases ADD COLUMN version_key TEXT;
CREATE UNIQUE INDEX releases_by_version_key ON releases (product, line, version_key);

-- Archived releases are kept (with their content) but offered to no device.
ALTER TABLE releases ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;

-- Set with the first install approval and never cleared: only such a release can have been
-- offered to a device, so only a release without it may be deleted.
ALTER TABLE releases ADD COLUMN ever_approved INTEGER NOT NULL DEFAULT 0;
UPDATE releases SET ever_approved = 1
 WHERE id IN (SELECT release_id FROM approvals WHERE action = 'install');
