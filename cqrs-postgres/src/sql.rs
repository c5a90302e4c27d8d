//! The statements of a store, built once per schema with the schema as a quoted
//! identifier. Every value is a bind parameter.

use crate::schema::SchemaName;

/// The columns every read returns, in the order `row_to_event` expects.
const EVENT_COLUMNS: &str = "position, (transaction_id::text)::bigint, stream_type, stream_id, \
     stream_version, event_id, event_type, event_version, data, metadata, recorded_at";

/// How many columns `EVENT_COLUMNS` has: further columns of a row start at this index.
pub(crate) const EVENT_COLUMN_COUNT: usize = 11;

/// Only rows of transactions older than every running transaction: those can no longer be
/// joined by an earlier-positioned row that commits later.
const BELOW_HORIZON: &str = "transaction_id < pg_snapshot_xmin(pg_current_snapshot())";

pub(crate) struct Sql {
    pub append: String,
    pub stream_version: String,
    pub read_stream: String,
    /// Indexed by `filter_index`.
    pub read_all: [String; 4],
    /// Indexed by `filter_index`.
    pub count_after: [String; 4],
    pub read_by_command: String,
    pub has_events_after: String,
    /// The oldest transaction still running (or the next one): everything below it has
    /// ended.
    pub read_horizon: String,
    pub load_snapshot: String,
    pub save_snapshot: String,
    pub load_checkpoint: String,
    pub save_checkpoint: String,
    pub lock_checkpoint: String,
    pub create_checkpoint: String,
    pub park: String,
    pub parked: String,
    pub transaction_ids: String,
    pub horizon_lag: String,
}

/// Which `read_all` statement serves a filter.
pub(crate) fn filter_index(stream_types: bool, event_types: bool) -> usize {
    usize::from(stream_types) | (usize::from(event_types) << 1)
}

impl Sql {
    pub fn new(schema: &SchemaName) -> Self {
        let s = schema.quoted();
        // $1, $2: the position after which to read; $3: the limit; $4, $5: the filters.
        let filter = |stream_types: bool, event_types: bool| {
            let mut filter = String::new();
            let mut next = 4;
            if stream_types {
                filter.push_str(&format!(" AND stream_type = ANY(${next})"));
                next += 1;
            }
            if event_types {
                filter.push_str(&format!(" AND event_type = ANY(${next})"));
            }
            filter
        };
        let read_all = |stream_types: bool, event_types: bool| {
            let filter = filter(stream_types, event_types);
            format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events \
                 WHERE {BELOW_HORIZON} AND (transaction_id, position) > ($1::text::xid8, $2){filter} \
                 ORDER BY transaction_id, position LIMIT $3"
            )
        };
        // The rows `read_all` filters on, counted where they are, with the LIMIT in the
        // subquery bounding the work on a long backlog. Without the horizon: an event that
        // committed but is held back by an older open transaction is still lag, and a
        // caller that wants to know whether everything committed was delivered must see it.
        let count_after = |stream_types: bool, event_types: bool| {
            let filter = filter(stream_types, event_types);
            format!(
                "SELECT count(*) FROM (SELECT 1 FROM {s}.events \
                 WHERE (transaction_id, position) > ($1::text::xid8, $2){filter} \
                 LIMIT $3) counted"
            )
        };
        Self {
            append: format!(
                "SELECT r_position, r_commit, r_version, r_recorded_at \
                 FROM {s}.append_events($1, $2, $3, $4, $5, $6, $7, $8)"
            ),
            stream_version: format!(
                "SELECT version FROM {s}.streams WHERE stream_type = $1 AND stream_id = $2"
            ),
            read_stream: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events \
                 WHERE stream_type = $1 AND stream_id = $2 AND stream_version >= $3 \
                 ORDER BY stream_version LIMIT $4"
            ),
            read_all: [
                read_all(false, false),
                read_all(true, false),
                read_all(false, true),
                read_all(true, true),
            ],
            count_after: [
                count_after(false, false),
                count_after(true, false),
                count_after(false, true),
                count_after(true, true),
            ],
            // `command_id = $3` implies `command_id IS NOT NULL`, so the partial index
            // `events_command` serves it.
            read_by_command: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events \
                 WHERE stream_type = $1 AND stream_id = $2 AND command_id = $3 \
                 ORDER BY stream_version"
            ),
            read_horizon: "SELECT pg_snapshot_xmin(pg_current_snapshot())::text".to_owned(),
            has_events_after: format!(
                "SELECT EXISTS (SELECT 1 FROM {s}.events WHERE {BELOW_HORIZON} \
                 AND (transaction_id, position) > ($1::text::xid8, $2))"
            ),
            load_snapshot: format!(
                "SELECT stream_version, schema_version, state FROM {s}.snapshots \
                 WHERE stream_type = $1 AND stream_id = $2"
            ),
            save_snapshot: format!(
                "INSERT INTO {s}.snapshots AS t \
                 (stream_type, stream_id, stream_version, schema_version, state) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (stream_type, stream_id) DO UPDATE SET \
                 stream_version = excluded.stream_version, schema_version = excluded.schema_version, \
                 state = excluded.state, saved_at = now() \
                 WHERE excluded.stream_version >= t.stream_version"
            ),
            load_checkpoint: format!(
                "SELECT commit_part, seq_part FROM {s}.checkpoints WHERE name = $1"
            ),
            save_checkpoint: format!(
                "INSERT INTO {s}.checkpoints AS t (name, commit_part, seq_part) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET commit_part = excluded.commit_part, \
                 seq_part = excluded.seq_part, updated_at = now()"
            ),
            lock_checkpoint: format!(
                "SELECT commit_part, seq_part FROM {s}.checkpoints WHERE name = $1 FOR UPDATE"
            ),
            create_checkpoint: format!(
                "INSERT INTO {s}.checkpoints (name, commit_part, seq_part) VALUES ($1, 0, 0) \
                 ON CONFLICT (name) DO NOTHING"
            ),
            park: format!(
                "INSERT INTO {s}.dead_letters (subscription, event_id, error) VALUES ($1, $2, $3) \
                 ON CONFLICT (subscription, event_id) DO UPDATE SET error = excluded.error, \
                 parked_at = now()"
            ),
            // `USING (event_id)` merges the two event_id columns, so the unqualified
            // EVENT_COLUMNS stay unambiguous.
            parked: format!(
                "SELECT {EVENT_COLUMNS}, error, parked_at \
                 FROM {s}.events JOIN {s}.dead_letters USING (event_id) \
                 WHERE subscription = $1 ORDER BY transaction_id, position"
            ),
            transaction_ids: format!(
                "SELECT (SELECT (transaction_id::text)::bigint FROM {s}.events \
                         ORDER BY transaction_id DESC LIMIT 1), \
                        (pg_snapshot_xmax(pg_current_snapshot())::text)::bigint"
            ),
            horizon_lag: format!(
                "WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) \
                 SELECT (h.xmin::text)::bigint, \
                        (SELECT count(*) FROM (SELECT 1 FROM {s}.events e \
                                WHERE e.transaction_id >= h.xmin LIMIT 1000000) held), \
                        a.pid, a.datname::text, a.application_name, a.state, \
                        EXTRACT(EPOCH FROM clock_timestamp() - a.xact_start)::float8, \
                        left(a.query, 1000) \
                 FROM h LEFT JOIN LATERAL ( \
                     SELECT * FROM pg_stat_activity \
                     WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() \
                     ORDER BY age(backend_xid) DESC LIMIT 1) a ON true"
            ),
        }
    }
}
