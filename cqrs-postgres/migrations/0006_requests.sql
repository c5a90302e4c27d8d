-- What operators ask of a running subscription, and what its runner says of itself.
--
-- Run like 0001 with `search_path` set to the store's schema: nothing here may name a
-- schema.

-- Operators' requests (`CheckpointStore::request`): stored by whoever asks (the `cqrs`
-- command line), applied by the runner that holds the subscription's lease between two
-- batches, then deleted (`complete_request`). Keyed by the subscription's name (its lease's
-- key), not its checkpoint's: whichever version runs applies it.
CREATE TABLE subscription_requests (
    id           uuid        PRIMARY KEY,
    subscription text        NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('retry', 'retry-all', 'reset', 'rebuild')),
    event_id     uuid,
    commit_part  bigint,
    seq_part     bigint,
    requested_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'retry') = (event_id IS NOT NULL)),
    CHECK ((kind = 'reset') = (commit_part IS NOT NULL AND seq_part IS NOT NULL))
);
CREATE INDEX subscription_requests_by_subscription
    ON subscription_requests (subscription, requested_at, id);

-- What each subscription's runner last recorded (`CheckpointStore::record`), by checkpoint
-- key: its filter (so that its lag can be counted without its code) and how its last run
-- stands. Written when a runner becomes active and when it ends: never on the delivery path.
CREATE TABLE subscription_records (
    checkpoint   text        PRIMARY KEY,
    stream_types text[]      NOT NULL,
    event_types  text[]      NOT NULL,
    state        text        NOT NULL CHECK (state IN ('running', 'stopped', 'failed')),
    error        text,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'failed') = (error IS NOT NULL))
);
