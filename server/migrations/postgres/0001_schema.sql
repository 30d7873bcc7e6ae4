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
-- see 10. So a row first takes a transaction-scoped advisory lock on its
-- recipient (held until commit; taking it again in the same transaction
-- costs nothing) and only then its number: for one user, a larger `seq`
-- always commits later. Writers insert rows sorted by recipient, so two
-- transactions never wait on each other in a cycle.
CREATE FUNCTION notifications_take_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(NEW.recipient_id);
    NEW.seq := nextval('notifications_seq');
    RETURN NEW;
END $$;
CREATE TRIGGER notifications_take_seq BEFORE INSERT ON notifications
    FOR EACH ROW EXECUTE FUNCTION notifications_take_seq();

-- Counts follow the rows, once per statement and user (a row-level trigger
-- would update one user's counts row once per notification, and PostgreSQL
-- slows down with every version of one row a transaction piles up). The
-- transition table holds only rows really inserted: a duplicate skipped by
-- ON CONFLICT never counts. `version` grows by one per row, as on SQLite.
--
-- Then the new rows are announced to every instance, one NOTIFY per user
-- (the `Stored` announcement of server/src/bus.rs: the user, the range of
-- new `seq` and the counts after them). Here rather than from Herald: it
-- is the same transaction either way, and a store write stays a single
-- statement, one round trip.
CREATE FUNCTION notifications_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inbox_counts AS c (user_id, unread, total, version)
    SELECT recipient_id,
           count(*) FILTER (WHERE read_at IS NULL AND archived_at IS NULL AND deleted_at IS NULL),
           count(*) FILTER (WHERE archived_at IS NULL AND deleted_at IS NULL),
           count(*)
    FROM inserted GROUP BY recipient_id ORDER BY recipient_id
    ON CONFLICT (user_id) DO UPDATE SET
        unread  = c.unread + excluded.unread,
        total   = c.total + excluded.total,
        version = c.version + excluded.version;
    PERFORM pg_notify('herald_inbox', json_build_object(
                'k', 'n', 'u', a.recipient_id, 'lo', a.lo, 'hi', a.hi,
                'c', json_build_object('unread', c.unread, 'total', c.total, 'version', c.version)
            )::text)
    FROM (SELECT recipient_id, min(seq) AS lo, max(seq) AS hi
          FROM inserted GROUP BY recipient_id) AS a
    JOIN inbox_counts AS c ON c.user_id = a.recipient_id
    ORDER BY a.recipient_id;
    RETURN NULL;
END $$;
CREATE TRIGGER notifications_count_insert AFTER INSERT ON notifications
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION notifications_count_insert();

CREATE FUNCTION notifications_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE inbox_counts AS c SET
        unread  = c.unread + d.unread,
        total   = c.total + d.total,
        version = c.version + d.changed
    FROM (
        SELECT n.recipient_id,
               sum((n.read_at IS NULL AND n.archived_at IS NULL AND n.deleted_at IS NULL)::int
                 - (o.read_at IS NULL AND o.archived_at IS NULL AND o.deleted_at IS NULL)::int) AS unread,
               sum((n.archived_at IS NULL AND n.deleted_at IS NULL)::int
                 - (o.archived_at IS NULL AND o.deleted_at IS NULL)::int) AS total,
               count(*) AS changed
        FROM after_rows n JOIN before_rows o ON o.seq = n.seq
        GROUP BY n.recipient_id
    ) AS d
    WHERE c.user_id = d.recipient_id;
    RETURN NULL;
END $$;
CREATE TRIGGER notifications_count_update AFTER UPDATE ON notifications
    REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notifications_count_update();

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
