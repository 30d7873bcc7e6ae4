-- Counts of new notifications are kept per write, not per row: Herald adds
-- a batch's rows to their recipients' counts in the transaction that
-- stores them (`count_new_rows` in server/src/store.rs), as PostgreSQL's
-- statement-level trigger does. A row-level trigger ran its program once
-- per notification, a fifth of the instructions of storing one
-- (docs/bench/cost.md). `version` still grows by one per new row; the
-- counts of read, archived and deleted changes stay with their trigger.
DROP TRIGGER notifications_count_insert;
