-- Title, link and actions, as in ../sqlite/0007_title_link_actions.sql.
ALTER TABLE notifications ADD COLUMN title TEXT;
ALTER TABLE notifications ADD COLUMN link TEXT;
ALTER TABLE notifications ADD COLUMN actions TEXT;
