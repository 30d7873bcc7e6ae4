-- `Idempotency-Key`s seen, as in ../sqlite/0006_idempotency.sql.
CREATE TABLE idempotency_keys (
    sender       TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (sender, key)
);
