-- Service senders, as in ../sqlite/0005_api_keys.sql: one row per API key,
-- only a SHA-256 of the key kept; revoked keys keep their row.
CREATE TABLE api_keys (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    key_hash   TEXT NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- Who sent a notification: a user or a service (an API key id).
ALTER TABLE notifications ADD COLUMN sender_kind TEXT NOT NULL DEFAULT 'user';
