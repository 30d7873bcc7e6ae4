-- The user directory, as in ../sqlite/0008_user_directory.sql. `search_key`
-- is compared bytewise (COLLATE "C") so the prefix range scan orders and
-- matches exactly as on SQLite, whatever the database's locale.
ALTER TABLE users ADD COLUMN search_key TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN deactivated_at TEXT;
UPDATE users SET search_key = lower(name);
CREATE INDEX users_by_search_key ON users (search_key, id) WHERE deactivated_at IS NULL;
