-- Dynamic and nested groups. A dynamic group holds the devices its filter (the text of
-- ferry-core's filter language) matches now, so it has no rows in device_groups and no
-- enrollment key. A group's parent passes its approvals down to the group's devices; the
-- server refuses a parent that would close a cycle.
ALTER TABLE groups ADD COLUMN filter TEXT;
ALTER TABLE groups ADD COLUMN parent TEXT COLLATE "C" REFERENCES groups (name) ON DELETE SET NULL;
