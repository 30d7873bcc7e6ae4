-- The inbox: category and priority on a notification, read / archived /
-- deleted state, and per-user counts kept by triggers.

ALTER TABLE notifications ADD COLUMN category TEXT NOT NULL DEFAULT 'info';
ALTER TABLE notifications ADD COLUMN priority INTEGER NOT NULL DEFAULT 3;
ALTER TABLE notifications ADD COLUMN read_at TEXT;
ALTER TABLE notifications ADD COLUMN archived_at TEXT;
-- Deleting keeps the row (hidden everywhere): its id stays taken, so a
-- redelivered Kafka record cannot bring the notification back, and a
-- pagination cursor naming it stays valid.
ALTER TABLE notifications ADD COLUMN deleted_at TEXT;

-- Unread and total per user, changed in the same transaction as the rows
-- (so they are never out of step). `version` grows with every change and
-- lets clients order counts they receive from several places.
CREATE TABLE inbox_counts (
    user_id INTEGER PRIMARY KEY,
    unread  INTEGER NOT NULL,
    total   INTEGER NOT NULL,
    version INTEGER NOT NULL
);

INSERT INTO inbox_counts (user_id, unread, total, version)
SELECT recipient_id, COUNT(*), COUNT(*), COUNT(*) FROM notifications GROUP BY recipient_id;

CREATE TRIGGER notifications_count_insert AFTER INSERT ON notifications
BEGIN
    INSERT INTO inbox_counts (user_id, unread, total, version)
    VALUES (
        NEW.recipient_id,
        NEW.read_at IS NULL AND NEW.archived_at IS NULL AND NEW.deleted_at IS NULL,
        NEW.archived_at IS NULL AND NEW.deleted_at IS NULL,
        1
    )
    ON CONFLICT (user_id) DO UPDATE SET
        unread  = unread + excluded.unread,
        total   = total + excluded.total,
        version = version + 1;
END;

CREATE TRIGGER notifications_count_update
AFTER UPDATE OF read_at, archived_at, deleted_at ON notifications
BEGIN
    UPDATE inbox_counts SET
        unread = unread
            + (NEW.read_at IS NULL AND NEW.archived_at IS NULL AND NEW.deleted_at IS NULL)
            - (OLD.read_at IS NULL AND OLD.archived_at IS NULL AND OLD.deleted_at IS NULL),
        total = total
            + (NEW.archived_at IS NULL AND NEW.deleted_at IS NULL)
            - (OLD.archived_at IS NULL AND OLD.deleted_at IS NULL),
        version = version + 1
    WHERE user_id = NEW.recipient_id;
END;
