-- What operators look up: everything one request caused, by its correlation id.
--
-- Run like 0001 with `search_path` set to the store's schema: nothing here may name a
-- schema.
--
-- An expression index on the metadata's text, not a generated uuid column: it needs no
-- table rewrite, and a row whose correlation id is not a valid uuid (written around the
-- store) still stores and is still found by its text. Partial: appends without a
-- correlation id pay nothing for it. Building it locks out writes to `events` while it
-- runs; on a large table, build it first by hand with
-- `CREATE INDEX CONCURRENTLY events_correlation ...` (the same definition), and this
-- migration finds it there.
CREATE INDEX IF NOT EXISTS events_correlation ON events ((metadata ->> 'correlation_id'))
    WHERE metadata ? 'correlation_id';

-- A dead letter an operator discarded (`CheckpointStore::discard`): kept, with the reason
-- and the time, for the record; `parked()` leaves it out. Parking the event again clears
-- both (it is a dead letter again). Nullable columns with no default: no table rewrite.
ALTER TABLE dead_letters ADD COLUMN discarded_at timestamptz;
ALTER TABLE dead_letters ADD COLUMN discard_reason text;
