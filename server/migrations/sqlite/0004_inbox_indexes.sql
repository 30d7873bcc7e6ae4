-- Indexes for the filtered views, so "unread" and "archived" stay fast in a
-- large inbox (the default view uses notifications_by_recipient). Partial:
-- each holds only the rows its view can show.
CREATE INDEX notifications_unread ON notifications (recipient_id, seq)
    WHERE read_at IS NULL AND archived_at IS NULL AND deleted_at IS NULL;
CREATE INDEX notifications_archived ON notifications (recipient_id, seq)
    WHERE archived_at IS NOT NULL AND deleted_at IS NULL;
