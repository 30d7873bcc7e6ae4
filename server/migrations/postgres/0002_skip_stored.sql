-- A row whose notification is already stored is skipped before it takes
-- its recipient's lock and a number. With a shared store, early delivery
-- writes every send and the consumer group then reads the same records
-- back: without this check each of those rows took the recipient's
-- advisory lock (holding up that user's new notifications on every
-- instance until the consumer's batch committed) and a `seq` only for
-- ON CONFLICT to throw the row away. ON CONFLICT still settles the race
-- of two transactions writing the same notification at once.
CREATE OR REPLACE FUNCTION notifications_take_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM notifications WHERE id = NEW.id) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(NEW.recipient_id);
    NEW.seq := nextval('notifications_seq');
    RETURN NEW;
END $$;
