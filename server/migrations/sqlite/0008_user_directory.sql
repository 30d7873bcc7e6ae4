-- The user directory as an application's identity provider fills it
-- (`PUT /api/users/{id}`, auto-provisioning): millions of rows, searched by
-- name prefix for the composer, deactivated instead of deleted (their
-- notifications keep naming them and their inbox stays readable).
--
-- `search_key` is the name lowercased by Herald (Unicode rules, in Rust) and
-- compared bytewise (SQLite's default BINARY collation), so a prefix search
-- is one range scan of the index below on both backends.
ALTER TABLE users ADD COLUMN search_key TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN deactivated_at TEXT;
UPDATE users SET search_key = lower(name);
CREATE INDEX users_by_search_key ON users (search_key, id) WHERE deactivated_at IS NULL;
