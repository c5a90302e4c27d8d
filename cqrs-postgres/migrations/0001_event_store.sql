-- Event, snapshot and checkpoint tables of cqrs-postgres.
--
-- This file is run with `search_path` set to the store's schema (see `PgStore::migrate`),
-- so every name below lands in that schema. Nothing here may name a schema.

-- One row per stream: its current version. Appends lock this row, so two appends to one
-- stream serialise here and appends to different streams never wait for each other.
CREATE TABLE streams (
    stream_type text   NOT NULL,
    stream_id   text   NOT NULL,
    version     bigint NOT NULL CHECK (version > 0),
    PRIMARY KEY (stream_type, stream_id)
);

-- The log. `position` is taken at insert time, so positions are NOT visible in order;
-- `transaction_id` (the writer's 64-bit transaction id) is what makes the global read
-- safe: readers only return rows whose transaction is older than every transaction still
-- running (see `read_all`).
CREATE TABLE events (
    position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_type    text        NOT NULL,
    stream_id      text        NOT NULL,
    stream_version bigint      NOT NULL CHECK (stream_version > 0),
    event_id       uuid        NOT NULL,
    event_type     text        NOT NULL,
    event_version  integer     NOT NULL,
    data           jsonb       NOT NULL,
    metadata       jsonb       NOT NULL DEFAULT '{}',
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_event_id_unique UNIQUE (event_id),
    CONSTRAINT events_stream_version_unique UNIQUE (stream_type, stream_id, stream_version)
);

-- Serves the global read in its order, with no sort.
CREATE INDEX events_commit_order ON events (transaction_id, position);

-- The latest snapshot of each stream.
CREATE TABLE snapshots (
    stream_type    text        NOT NULL,
    stream_id      text        NOT NULL,
    stream_version bigint      NOT NULL,
    schema_version integer     NOT NULL,
    state          jsonb       NOT NULL,
    saved_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream_type, stream_id)
);

-- The position of each subscription. The two parts of `Position` are u64 in Rust and are
-- stored bit for bit in bigint (values above i64::MAX read back as negative here).
CREATE TABLE checkpoints (
    name        text        PRIMARY KEY,
    commit_part bigint      NOT NULL,
    seq_part    bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Appends a batch to one stream: the whole append is this one call, so it costs one round
-- trip and runs in the caller's (usually implicit) transaction.
--
-- p_expected: -1 = any version, 0 = no stream, n > 0 = exactly version n.
-- A version mismatch raises SQLSTATE CQ001 with the stream's actual version as DETAIL;
-- the events are never silently dropped.
CREATE FUNCTION append_events(
    p_stream_type    text,
    p_stream_id      text,
    p_expected       bigint,
    p_event_ids      uuid[],
    p_event_types    text[],
    p_event_versions integer[],
    p_data           jsonb[],
    p_metadata       jsonb[]
)
RETURNS TABLE (r_position bigint, r_commit bigint, r_version bigint, r_recorded_at timestamptz)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    n        bigint := coalesce(cardinality(p_event_ids), 0);
    v_new    bigint;
    v_actual bigint;
BEGIN
    IF n = 0 THEN
        RAISE EXCEPTION 'append has no events' USING ERRCODE = 'CQ002';
    END IF;
    IF p_expected < 0 THEN
        INSERT INTO streams AS s (stream_type, stream_id, version)
        VALUES (p_stream_type, p_stream_id, n)
        ON CONFLICT (stream_type, stream_id) DO UPDATE SET version = s.version + n
        RETURNING s.version INTO v_new;
    ELSIF p_expected = 0 THEN
        INSERT INTO streams (stream_type, stream_id, version)
        VALUES (p_stream_type, p_stream_id, n)
        ON CONFLICT (stream_type, stream_id) DO NOTHING
        RETURNING version INTO v_new;
    ELSE
        UPDATE streams SET version = version + n
        WHERE stream_type = p_stream_type AND stream_id = p_stream_id AND version = p_expected
        RETURNING version INTO v_new;
    END IF;
    IF v_new IS NULL THEN
        SELECT version INTO v_actual
        FROM streams WHERE stream_type = p_stream_type AND stream_id = p_stream_id;
        RAISE EXCEPTION 'stream version conflict'
            USING ERRCODE = 'CQ001', DETAIL = coalesce(v_actual, 0)::text;
    END IF;
    RETURN QUERY
    INSERT INTO events AS ev
        (stream_type, stream_id, stream_version, event_id, event_type, event_version, data, metadata)
    SELECT p_stream_type, p_stream_id, v_new - n + e.ord,
           e.event_id, e.event_type, e.event_version, e.data, e.metadata
    FROM unnest(p_event_ids, p_event_types, p_event_versions, p_data, p_metadata)
         WITH ORDINALITY AS e (event_id, event_type, event_version, data, metadata, ord)
    ORDER BY e.ord
    RETURNING ev.position, (ev.transaction_id::text)::bigint, ev.stream_version, ev.recorded_at;
END
$$;
