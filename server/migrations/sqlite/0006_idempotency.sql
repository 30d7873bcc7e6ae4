-- `Idempotency-Key`s seen, per sender ("user:2", "key:5"), for as long as
-- a retry may come (HERALD_IDEMPOTENCY_TTL_SECS). Only a hash of the
-- request is kept, to tell a retry from a different request under the
-- same key (422); the notification ids themselves are derived from sender,
-- key and recipient, so the store's unique id does the rest.
CREATE TABLE idempotency_keys (
    sender       TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (sender, key)
);
