-- A group's maintenance window: periods in an IANA time zone, both set or neither. Keep in
-- step with ../postgres/0010_group_windows.sql.
ALTER TABLE groups ADD COLUMN window_zone TEXT;
ALTER TABLE groups ADD COLUMN window_periods TEXT;
