-- Subscriptions: dead letters, and the command id of each event (idempotent commands).
--
-- Run like 0001 with `search_path` set to the store's schema: nothing here may name a
-- schema.

-- Events a subscription could not handle and set aside (`CheckpointStore::park`). One row
-- per (subscription, event): parking the same event again replaces the error and the time.
-- The event itself stays in `events` (it is never copied nor rewritten); `parked()` joins
-- it back.
CREATE TABLE dead_letters (
    subscription text        NOT NULL,
    event_id     uuid        NOT NULL REFERENCES events (event_id),
    error        text        NOT NULL,
    parked_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription, event_id)
);

-- The id of the command that wrote the event (`Metadata::command_id`), for
-- `read_by_command`. A generated column rather than a column filled by `append_events`:
-- the append function stays as it is (any later version of it keeps filling the column
-- without knowing about it), and every row, however inserted, is consistent with its
-- metadata. The cost on the append path is one jsonb field lookup per event. Adding a
-- STORED column rewrites the table once, under an exclusive lock: on a large existing
-- events table, run this migration in a maintenance window.
ALTER TABLE events
    ADD COLUMN command_id uuid GENERATED ALWAYS AS ((metadata ->> 'command_id')::uuid) STORED;

-- Serves `read_by_command(stream, command_id)`. Partial: only events written by a command
-- with an id (process managers, idempotent retries) enter it, so appends without one pay
-- no index maintenance for it.
CREATE INDEX events_command ON events (stream_type, stream_id, command_id)
    WHERE command_id IS NOT NULL;
