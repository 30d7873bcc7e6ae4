-- Users who can send and receive notifications.
CREATE TABLE users (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL
);

-- The seed users of the Go tutorial.
INSERT INTO users (id, name) VALUES (1, 'Emma'), (2, 'Bruno'), (3, 'Rick'), (4, 'Lena');

-- Every notification the consumer group stored, once.
-- `seq` orders a recipient's notifications by arrival (SSE resume uses it);
-- `id` is unique so a redelivered record is ignored instead of duplicated.
CREATE TABLE notifications (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    recipient_id    INTEGER NOT NULL,
    recipient_name  TEXT    NOT NULL,
    sender_id       INTEGER NOT NULL,
    sender_name     TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset    INTEGER NOT NULL
);

CREATE INDEX notifications_by_recipient ON notifications (recipient_id, seq);
