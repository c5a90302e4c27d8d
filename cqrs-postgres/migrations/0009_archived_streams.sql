-- Archived streams (`StreamStore::archive_stream`): a stream's events moved out of the hot
-- table into `events_archive`, with the same columns (but `command_id`, which only serves
-- the engine's idempotency check, and an archived stream takes no commands). `archived_at`
-- on the stream row says where they are: the append statements move only rows where it is
-- null (an append is `StoreError::Archived`), and `read_stream` finds it with the stream's
-- events in the same statement. `unarchive_stream` moves them back, at their positions.
--
-- Run like 0001 with `search_path` set to the store's schema: nothing here may name a
-- schema. A nullable column with no default: no table rewrite.
ALTER TABLE streams ADD COLUMN archived_at timestamptz;

CREATE TABLE events_archive (
    position       bigint      PRIMARY KEY,
    transaction_id xid8        NOT NULL,
    stream_type    text        NOT NULL,
    stream_id      text        NOT NULL,
    stream_version bigint      NOT NULL,
    event_id       uuid        NOT NULL,
    event_type     text        NOT NULL,
    event_version  integer     NOT NULL,
    data           jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    recorded_at    timestamptz NOT NULL,
    CONSTRAINT events_archive_stream_version_unique UNIQUE (stream_type, stream_id, stream_version)
);

-- Serves a global read that includes the archive (`EventFilter::including_archived`), in
-- the log's order.
CREATE INDEX events_archive_commit_order ON events_archive (transaction_id, position);
