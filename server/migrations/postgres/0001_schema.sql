-- Herald's schema on PostgreSQL: the tables, columns, indexes and count
-- rules of the SQLite migrations 0001-0004 (../sqlite) in one step, plus
-- what only a store shared by several instances needs: per-user commit
-- order of `seq`, announcements to other instances (LISTEN/NOTIFY) and a
-- shared rate limit. Integers are BIGINT and times RFC 3339 TEXT so both
-- backends read and write through the same queries (sqlx's Any driver).

-- Users who can send and receive notifications; the Go tutorial's four.
CREATE TABLE users (
    id   BIGINT PRIMARY KEY,
    name TEXT NOT NULL
);
INSERT INTO users (id, name) VALUES (1, 'Emma'), (2, 'Bruno'), (3, 'Rick'), (4, 'Lena');

-- Every notification stored, once (`id` is unique, so a redelivered record
-- is ignored). `seq` orders a recipient's notifications; SSE resume and the
-- page cursors use it. It is assigned by the trigger below, not a default.
CREATE SEQUENCE notifications_seq AS BIGINT;
CREATE TABLE notifications (
    seq             BIGINT  PRIMARY KEY,
    id              TEXT    NOT NULL UNIQUE,
    recipient_id    BIGINT  NOT NULL,
    recipient_name  TEXT    NOT NULL,
    sender_id       BIGINT  NOT NULL,
    sender_name     TEXT    NOT NULL,
    message         TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset    BIGINT  NOT NULL,
    category        TEXT    NOT NULL DEFAULT 'info',
    priority        BIGINT  NOT NULL DEFAULT 3,
    read_at         TEXT,
    archived_at     TEXT,
    -- Deleting keeps the row (hidden everywhere), as on SQLite.
    deleted_at      TEXT
);
CREATE INDEX notifications_by_recipient ON notifications (recipient_id, seq);
CREATE INDEX notifications_unread ON notifications (recipient_id, seq)
    WHERE read_at IS NULL AND archived_at IS NULL AND deleted_at IS NULL;
CREATE INDEX notifications_archived ON notifications (recipient_id, seq)
    WHERE archived_at IS NOT NULL AND deleted_at IS NULL;

-- Unread and total per user, changed in the same transaction as the rows.
-- `version` grows with every change.
CREATE TABLE inbox_counts (
    user_id BIGINT PRIMARY KEY,
    unread  BIGINT NOT NULL,
    total   BIGINT NOT NULL,
    version BIGINT NOT NULL
);

-- Per-user commit order of `seq`. A sequence hands out numbers when rows
-- are formed, not when they commit: two instances writing for one user
-- could commit 11 before 10, and a stream that moved on to 11 would never
-- see 10. So a row first locks its recipient's counts row (held until
-- commit) and only then takes its number: for one user, a larger `seq`
-- always commits later. Writers insert rows sorted by recipient, so two
-- transactions never wait on each other in a cycle.
CREATE FUNCTION notifications_take_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inbox_counts (user_id, unread, total, version)
    VALUES (NEW.recipient_id, 0, 0, 0)
    ON CONFLICT (user_id) DO NOTHING;
    PERFORM 1 FROM inbox_counts WHERE user_id = NEW.recipient_id FOR UPDATE;
    NEW.seq := nextval('notifications_seq');
    RETURN NEW;
END $$;
CREATE TRIGGER notifications_take_seq BEFORE INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION notifications_take_seq();

-- Counts follow inserted rows (AFTER: a duplicate skipped by ON CONFLICT
-- never gets here).
CREATE FUNCTION notifications_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE inbox_counts SET
        unread  = unread + (NEW.read_at IS NULL AND NEW.archived_at IS NULL AND NEW.deleted_at IS NULL)::int,
        total   = total + (NEW.archived_at IS NULL AND NEW.deleted_at IS NULL)::int,
        version = version + 1
    WHERE user_id = NEW.recipient_id;
    RETURN NULL;
END $$;
CREATE TRIGGER notifications_count_insert AFTER INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION notifications_count_insert();

CREATE FUNCTION notifications_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE inbox_counts SET
        unread = unread
            + (NEW.read_at IS NULL AND NEW.archived_at IS NULL AND NEW.deleted_at IS NULL)::int
            - (OLD.read_at IS NULL AND OLD.archived_at IS NULL AND OLD.deleted_at IS NULL)::int,
        total = total
            + (NEW.archived_at IS NULL AND NEW.deleted_at IS NULL)::int
            - (OLD.archived_at IS NULL AND OLD.deleted_at IS NULL)::int,
        version = version + 1
    WHERE user_id = NEW.recipient_id;
    RETURN NULL;
END $$;
CREATE TRIGGER notifications_count_update
    AFTER UPDATE OF read_at, archived_at, deleted_at ON notifications
    FOR EACH ROW EXECUTE FUNCTION notifications_count_update();

-- One row rewritten by /api/ready to prove the store takes writes.
CREATE TABLE readiness (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    checked_at TEXT NOT NULL
);

-- Announce a committed change to every instance (LISTEN herald_inbox).
-- Called inside the writing transaction: PostgreSQL delivers it only if
-- the transaction commits, and in commit order. A function so that the
-- statement returns a value every sqlx driver can decode (pg_notify
-- returns void).
CREATE FUNCTION herald_announce(payload TEXT) RETURNS INTEGER LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('herald_inbox', payload);
    RETURN 1;
END $$;

-- The per-sender rate limit shared by all instances (GCRA): `tat` is the
-- theoretical arrival time, in seconds since the epoch of the database's
-- clock (one clock for every instance).
CREATE TABLE send_allowance (
    sender_id BIGINT PRIMARY KEY,
    tat       DOUBLE PRECISION NOT NULL
);
