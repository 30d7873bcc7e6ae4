-- What an application adds to a notification: a title, where a click
-- leads, and up to two buttons (`[{"label","url"}]` as JSON). All checked
-- before they are stored: links are absolute http(s) URLs.
ALTER TABLE notifications ADD COLUMN title TEXT;
ALTER TABLE notifications ADD COLUMN link TEXT;
ALTER TABLE notifications ADD COLUMN actions TEXT;
