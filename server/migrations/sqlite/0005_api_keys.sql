-- Service senders: one row per API key. Only a SHA-256 of the key is kept
-- (the key itself is shown once, when it is created). A revoked key keeps
-- its row, so its past notifications still name it.
CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    key_hash   TEXT NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- Who sent a notification: a user (`sender_id` is a user id) or a service
-- (`sender_id` is an API key id).
ALTER TABLE notifications ADD COLUMN sender_kind TEXT NOT NULL DEFAULT 'user';
