-- A group's maintenance window: periods in an IANA time zone, both set or neither. Keep in
-- step with ../sqlite/0010_group_windows.sql.
ALTER TABLE groups ADD COLUMN window_zone TEXT COLLATE "C";
ALTER TABLE groups ADD COLUMN window_periods TEXT COLLATE "C";
