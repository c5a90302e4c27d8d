-- The bus: dead letters of events this store never stored, and what transactional
-- projections fed from a bus have applied.
--
-- Run like 0001 with `search_path` set to the store's schema: nothing here may name a
-- schema.

-- A consumer fed from a message bus parks what it received: an event of another
-- service's store, or a message that is not an event at all. Such an event is not in
-- `events`, so the dead letter keeps it whole, as its CloudEvents document; one that is
-- in `events` keeps NULL there and is joined back as before.
ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_event_id_fkey;
ALTER TABLE dead_letters ADD COLUMN event jsonb;

-- Exactly-once effect for a transactional projection fed from a bus: per projection
-- (its checkpoint key, `name@vVERSION`) and stream, the last stream version it applied,
-- updated in the projection's transaction. A bus delivers each stream in order, so an
-- event at or below that version is a redelivery or a republished copy: applied already.
CREATE TABLE bus_applied (
    subscription   text   NOT NULL,
    stream_type    text   NOT NULL,
    stream_id      text   NOT NULL,
    stream_version bigint NOT NULL,
    PRIMARY KEY (subscription, stream_type, stream_id)
);
