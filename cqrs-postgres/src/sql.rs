//! The statements of a store, built once per schema with the schema as a quoted
//! identifier. Every value is a bind parameter.

use cqrs_core::TOMBSTONE_EVENT_TYPE;

use crate::schema::SchemaName;

/// The columns every read returns, in the order `row_to_event` expects.
const EVENT_COLUMNS: &str = "position, (transaction_id::text)::bigint, stream_type, stream_id, \
     stream_version, event_id, event_type, event_version, data, metadata, recorded_at";

/// The global order, served by the index `events_commit_order`. Qualified: a bare
/// `transaction_id` in `ORDER BY` would name the output column
/// `(transaction_id::text)::bigint` of `EVENT_COLUMNS` (PostgreSQL names a cast after its
/// argument, and `ORDER BY` looks at output names first), and sorting on that cast cannot
/// use the index: every batch of a catch-up scanned and sorted the whole table.
const COMMIT_ORDER: &str = "events.transaction_id, events.position";

/// How many columns `EVENT_COLUMNS` has: further columns of a row start at this index.
pub(crate) const EVENT_COLUMN_COUNT: usize = 11;

/// Only rows of transactions older than every running transaction: those can no longer be
/// joined by an earlier-positioned row that commits later.
const BELOW_HORIZON: &str = "transaction_id < pg_snapshot_xmin(pg_current_snapshot())";

/// How an append checks the stream's version: the three [`ExpectedVersion`]s.
///
/// [`ExpectedVersion`]: cqrs_core::ExpectedVersion
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppendMode {
    /// The stream row must be at `$8`.
    Exact,
    /// The stream row must not exist.
    NoStream,
    /// No check.
    Any,
}

/// Which `append` statement serves a mode and a batch size.
pub(crate) fn append_index(mode: AppendMode, single: bool) -> usize {
    let mode = match mode {
        AppendMode::Exact => 0,
        AppendMode::NoStream => 1,
        AppendMode::Any => 2,
    };
    mode * 2 + usize::from(single)
}

pub(crate) struct Sql {
    /// Indexed by `append_index`.
    pub append: [String; 6],
    /// The stream's version, and whether it was deleted.
    pub stream_version: String,
    /// Closes a stream, in the transaction that wrote its tombstone.
    pub close_stream: String,
    /// Whether a stream is deleted, locking its row for a purge.
    /// The stream row, locked: its version, whether deleted, whether archived.
    pub lock_stream: String,
    /// Moves a stream's events into `events_archive`.
    pub archive_events: String,
    /// Moves them back, at their positions.
    pub unarchive_events: String,
    /// `$3`: archived (true) or not.
    pub set_archived: String,
    pub read_archived_stream: String,
    /// The check value of the key-encryption key, if recorded.
    pub kek_check: String,
    /// Records `$1` as the check value unless one is recorded.
    pub record_kek_check: String,
    /// `$1`: subjects; their wrapped keys (NULL when forgotten).
    pub find_keys: String,
    /// `$1`, `$2`: subjects and wrapped keys; those already there are left alone.
    pub insert_keys: String,
    pub forget_key: String,
    /// `$1`: `[{"subject": ...}]`; the streams holding its sealed fields, in order.
    pub subject_streams: String,
    /// `$1`, `$2`: stream types and ids.
    pub drop_snapshots: String,
    /// The dead letters of a deleted stream's events (but its tombstone's).
    pub purge_letters: String,
    /// A deleted stream's events but its tombstone.
    pub purge_events: String,
    /// A stream's snapshot.
    pub purge_snapshot: String,
    /// The version of a stream's snapshot.
    pub snapshot_version: String,
    /// The dead letters of a stream's events before `$3` (but its last one's).
    pub truncate_letters: String,
    /// A stream's events before `$3`, but its last one.
    pub truncate_events: String,
    /// Records a truncation: the first version kept, `$3`.
    pub truncated: String,
    /// The first version a truncated stream keeps.
    pub truncated_before: String,
    pub read_stream: String,
    /// Indexed by `filter_index`.
    pub read_all: [String; 8],
    /// Indexed by `filter_index`; `$1`, `$2`: the position at or before which to read.
    pub read_all_backwards: [String; 8],
    /// Indexed by `filter_index`.
    pub count_after: [String; 8],
    pub read_by_command: String,
    pub read_stream_backwards: String,
    pub read_by_correlation: String,
    /// Streams of every type after a `(type, id)`; then of one type after an id.
    pub list_streams: [String; 2],
    pub stream_types: String,
    pub has_events_after: String,
    /// The oldest transaction still running (or the next one): everything below it has
    /// ended.
    pub read_horizon: String,
    pub load_snapshot: String,
    pub save_snapshot: String,
    pub load_checkpoint: String,
    pub checkpoints: String,
    pub save_checkpoint: String,
    pub lock_checkpoint: String,
    pub create_checkpoint: String,
    pub park: String,
    /// `$2`: the discarded letters (true) or the others.
    pub parked: String,
    /// Dead letters of events that are not in `events` (parked from a bus); `$2` as in
    /// `parked`.
    pub parked_elsewhere: String,
    pub discard: String,
    pub resolve: String,
    pub request: String,
    pub requests: String,
    pub complete_request: String,
    pub record: String,
    pub records: String,
    /// Records that a bus-fed projection applied a stream version; returns a row only if
    /// that version is above the last one applied.
    pub bus_apply: String,
    pub bus_reset: String,
    pub transaction_ids: String,
    pub horizon_lag: String,
    /// The latest migration applied to the schema.
    pub schema_version: String,
    /// Per subscription, its dead letters that are not discarded.
    pub parked_counts: String,
}

/// Which `read_all` statement serves a filter: by its stream types, its event types, and
/// whether it reads the archive.
pub(crate) fn filter_index(filter: &cqrs_core::EventFilter) -> usize {
    usize::from(!filter.stream_types().is_empty())
        | (usize::from(!filter.event_types().is_empty()) << 1)
        | (usize::from(filter.includes_archived()) << 2)
}

/// The columns `events` and `events_archive` share, as stored.
const STORED_COLUMNS: &str = "position, transaction_id, stream_type, stream_id, stream_version, \
     event_id, event_type, event_version, data, metadata, recorded_at";

impl Sql {
    pub fn new(schema: &SchemaName) -> Self {
        let s = schema.quoted();
        // Unioned to a read of one stream's events (which an archived stream has none of):
        // the row that says it is archived, with its version, and NULL everywhere else
        // (`row::archived`), so the read needs no second round trip to tell an archived
        // stream from a new one.
        let archived_marker = format!(
            "SELECT NULL::bigint, NULL::bigint, NULL::text, NULL::text, version, NULL::uuid, \
             NULL::text, NULL::int4, NULL::jsonb, NULL::jsonb, NULL::timestamptz \
             FROM {s}.streams WHERE stream_type = $1 AND stream_id = $2 AND archived_at IS NOT NULL"
        );
        // $1, $2: the position after which to read; $3: the limit; $4, $5: the filters.
        let filter = |stream_types: bool, event_types: bool| {
            let mut filter = String::new();
            let mut next = 4;
            if stream_types {
                filter.push_str(&format!(" AND stream_type = ANY(${next})"));
                next += 1;
            }
            if event_types {
                // A stream's deletion notice reaches whoever reads its stream type.
                filter.push_str(&format!(
                    " AND (event_type = ANY(${next}) OR event_type = '{TOMBSTONE_EVENT_TYPE}')"
                ));
            }
            filter
        };
        // The log, or the log and its archive in one order (each with its commit-order
        // index, merged without a sort).
        let events = |archived: bool| {
            if archived {
                format!(
                    "(SELECT {STORED_COLUMNS} FROM {s}.events UNION ALL \
                     SELECT {STORED_COLUMNS} FROM {s}.events_archive) AS events"
                )
            } else {
                format!("{s}.events")
            }
        };
        let read_all = |stream_types: bool, event_types: bool, archived: bool| {
            let filter = filter(stream_types, event_types);
            let events = events(archived);
            format!(
                "SELECT {EVENT_COLUMNS} FROM {events} \
                 WHERE {BELOW_HORIZON} AND (transaction_id, position) > ($1::text::xid8, $2){filter} \
                 ORDER BY {COMMIT_ORDER} LIMIT $3"
            )
        };
        // The same order walked backwards: the index `events_commit_order` serves it too.
        let read_all_backwards = |stream_types: bool, event_types: bool, archived: bool| {
            let filter = filter(stream_types, event_types);
            let events = events(archived);
            format!(
                "SELECT {EVENT_COLUMNS} FROM {events} \
                 WHERE {BELOW_HORIZON} AND (transaction_id, position) <= ($1::text::xid8, $2){filter} \
                 ORDER BY events.transaction_id DESC, events.position DESC LIMIT $3"
            )
        };
        // The append, as one statement in the caller's (usually implicit) transaction:
        // move the stream row, then insert the events numbered from its new version (one
        // statement rather than a PL/pgSQL function, which costs more server CPU: see
        // docs/src/performance.md). The row also records its writer, and only a
        // transaction at least as young as the last writer may move it: the log is in
        // transaction order, so an older one would put its events before the version
        // they follow (migration 0003). If the row did not move (another writer got
        // there first, or this transaction is too old), no event is inserted and no row
        // comes back: the caller reads the stream row and says which.
        //
        // $1, $2: the stream; $3..$7: event ids, types, versions, data, metadata (scalars
        // for one event, arrays for a batch); $8: the expected version (Exact only). The
        // leading comment names the statement in pg_stat_activity and logs.
        let append = |mode: AppendMode, single: bool| {
            let n = if single {
                "1"
            } else {
                "cardinality($3::uuid[])"
            };
            let stream = match mode {
                AppendMode::Exact => format!(
                    "UPDATE {s}.streams SET version = version + {n}, writer = pg_current_xact_id() \
                     WHERE stream_type = $1 AND stream_id = $2 AND version = $8 \
                     AND writer <= pg_current_xact_id() AND deleted_at IS NULL AND archived_at IS NULL \
                     RETURNING version"
                ),
                AppendMode::NoStream => format!(
                    "INSERT INTO {s}.streams (stream_type, stream_id, version, writer) \
                     VALUES ($1, $2, {n}, pg_current_xact_id()) \
                     ON CONFLICT (stream_type, stream_id) DO NOTHING RETURNING version"
                ),
                AppendMode::Any => format!(
                    "INSERT INTO {s}.streams AS st (stream_type, stream_id, version, writer) \
                     VALUES ($1, $2, {n}, pg_current_xact_id()) \
                     ON CONFLICT (stream_type, stream_id) DO UPDATE \
                     SET version = st.version + {n}, writer = excluded.writer \
                     WHERE st.writer <= excluded.writer AND st.deleted_at IS NULL \
                     AND st.archived_at IS NULL \
                     RETURNING st.version"
                ),
            };
            let rows = if single {
                "SELECT $1, $2, stream.version, $3, $4, $5, $6, $7 FROM stream".to_owned()
            } else {
                format!(
                    "SELECT $1, $2, stream.version - {n} + e.ord, \
                            e.event_id, e.event_type, e.event_version, e.data, e.metadata \
                     FROM stream, unnest($3::uuid[], $4::text[], $5::int4[], $6::jsonb[], $7::jsonb[]) \
                          WITH ORDINALITY AS e (event_id, event_type, event_version, data, metadata, ord) \
                     ORDER BY e.ord"
                )
            };
            format!(
                "/* append_events */ WITH stream AS ({stream}) \
                 INSERT INTO {s}.events AS ev \
                 (stream_type, stream_id, stream_version, event_id, event_type, event_version, data, metadata) \
                 {rows} \
                 RETURNING ev.position, (ev.transaction_id::text)::bigint, ev.stream_version, ev.recorded_at"
            )
        };
        // The rows `read_all` filters on, counted where they are, with the LIMIT in the
        // subquery bounding the work on a long backlog. Without the horizon: an event that
        // committed but is held back by an older open transaction is still lag, and a
        // caller that wants to know whether everything committed was delivered must see it.
        let count_after = |stream_types: bool, event_types: bool, archived: bool| {
            let filter = filter(stream_types, event_types);
            let events = events(archived);
            format!(
                "SELECT count(*) FROM (SELECT 1 FROM {events} \
                 WHERE (transaction_id, position) > ($1::text::xid8, $2){filter} \
                 LIMIT $3) counted"
            )
        };
        Self {
            append: [
                append(AppendMode::Exact, false),
                append(AppendMode::Exact, true),
                append(AppendMode::NoStream, false),
                append(AppendMode::NoStream, true),
                append(AppendMode::Any, false),
                append(AppendMode::Any, true),
            ],
            stream_version: format!(
                "SELECT version, deleted_at IS NOT NULL, archived_at IS NOT NULL FROM {s}.streams \
                 WHERE stream_type = $1 AND stream_id = $2"
            ),
            close_stream: format!(
                "UPDATE {s}.streams SET deleted_at = now() \
                 WHERE stream_type = $1 AND stream_id = $2"
            ),
            lock_stream: format!(
                "SELECT version, deleted_at IS NOT NULL, archived_at IS NOT NULL FROM {s}.streams \
                 WHERE stream_type = $1 AND stream_id = $2 FOR UPDATE"
            ),
            archive_events: format!(
                "WITH moved AS (DELETE FROM {s}.events WHERE stream_type = $1 AND stream_id = $2 \
                 RETURNING {STORED_COLUMNS}) \
                 INSERT INTO {s}.events_archive ({STORED_COLUMNS}) SELECT {STORED_COLUMNS} FROM moved"
            ),
            unarchive_events: format!(
                "WITH moved AS (DELETE FROM {s}.events_archive WHERE stream_type = $1 AND stream_id = $2 \
                 RETURNING {STORED_COLUMNS}) \
                 INSERT INTO {s}.events ({STORED_COLUMNS}) OVERRIDING SYSTEM VALUE \
                 SELECT {STORED_COLUMNS} FROM moved"
            ),
            set_archived: format!(
                "UPDATE {s}.streams SET archived_at = CASE WHEN $3 THEN now() END \
                 WHERE stream_type = $1 AND stream_id = $2"
            ),
            kek_check: format!("SELECT check_value FROM {s}.key_check"),
            record_kek_check: format!(
                "INSERT INTO {s}.key_check (check_value) VALUES ($1) ON CONFLICT DO NOTHING"
            ),
            find_keys: format!(
                "SELECT subject, wrapped FROM {s}.subject_keys WHERE subject = ANY($1)"
            ),
            insert_keys: format!(
                "INSERT INTO {s}.subject_keys (subject, wrapped) \
                 SELECT * FROM unnest($1::text[], $2::bytea[]) ON CONFLICT DO NOTHING"
            ),
            forget_key: format!(
                "INSERT INTO {s}.subject_keys AS k (subject, wrapped, forgotten_at) \
                 VALUES ($1, NULL, now()) ON CONFLICT (subject) DO UPDATE \
                 SET wrapped = NULL, forgotten_at = coalesce(k.forgotten_at, now())"
            ),
            // `data ? '$personal'` repeats the predicate of the partial indexes
            // `events_personal` and `events_archive_personal` (migration 0010).
            subject_streams: format!(
                "SELECT stream_type, stream_id FROM ( \
                 SELECT stream_type, stream_id, position FROM {s}.events \
                 WHERE data ? '$personal' AND data -> '$personal' @> $1 \
                 UNION ALL SELECT stream_type, stream_id, position FROM {s}.events_archive \
                 WHERE data ? '$personal' AND data -> '$personal' @> $1) holding \
                 GROUP BY stream_type, stream_id ORDER BY min(position)"
            ),
            drop_snapshots: format!(
                "DELETE FROM {s}.snapshots WHERE (stream_type, stream_id) IN \
                 (SELECT * FROM unnest($1::text[], $2::text[]))"
            ),
            read_archived_stream: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events_archive \
                 WHERE stream_type = $1 AND stream_id = $2 AND stream_version >= $3 \
                 ORDER BY stream_version LIMIT $4"
            ),
            purge_letters: format!(
                "DELETE FROM {s}.dead_letters WHERE event_id IN (SELECT event_id \
                 FROM {s}.events WHERE stream_type = $1 AND stream_id = $2 \
                 AND event_type <> '{TOMBSTONE_EVENT_TYPE}')"
            ),
            purge_events: format!(
                "DELETE FROM {s}.events WHERE stream_type = $1 AND stream_id = $2 \
                 AND event_type <> '{TOMBSTONE_EVENT_TYPE}'"
            ),
            purge_snapshot: format!(
                "DELETE FROM {s}.snapshots WHERE stream_type = $1 AND stream_id = $2"
            ),
            snapshot_version: format!(
                "SELECT stream_version FROM {s}.snapshots WHERE stream_type = $1 AND stream_id = $2"
            ),
            truncate_letters: format!(
                "DELETE FROM {s}.dead_letters WHERE event_id IN (SELECT event_id \
                 FROM {s}.events WHERE stream_type = $1 AND stream_id = $2 \
                 AND stream_version < $3)"
            ),
            truncate_events: format!(
                "DELETE FROM {s}.events WHERE stream_type = $1 AND stream_id = $2 \
                 AND stream_version < $3"
            ),
            truncated: format!(
                "UPDATE {s}.streams SET truncated_before = greatest(coalesce(truncated_before, 0), $3) \
                 WHERE stream_type = $1 AND stream_id = $2"
            ),
            truncated_before: format!(
                "SELECT truncated_before FROM {s}.streams WHERE stream_type = $1 AND stream_id = $2"
            ),
            read_stream: format!(
                "(SELECT {EVENT_COLUMNS} FROM {s}.events \
                 WHERE stream_type = $1 AND stream_id = $2 AND stream_version >= $3 \
                 ORDER BY stream_version LIMIT $4) UNION ALL {archived_marker}"
            ),
            read_all: std::array::from_fn(|i| read_all(i & 1 != 0, i & 2 != 0, i & 4 != 0)),
            read_all_backwards: std::array::from_fn(|i| read_all_backwards(i & 1 != 0, i & 2 != 0, i & 4 != 0)),
            count_after: std::array::from_fn(|i| count_after(i & 1 != 0, i & 2 != 0, i & 4 != 0)),
            // `command_id = $3` implies `command_id IS NOT NULL`, so the partial index
            // `events_command` serves it.
            read_by_command: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events \
                 WHERE stream_type = $1 AND stream_id = $2 AND command_id = $3 \
                 ORDER BY stream_version"
            ),
            read_stream_backwards: format!(
                "(SELECT {EVENT_COLUMNS} FROM {s}.events \
                 WHERE stream_type = $1 AND stream_id = $2 AND stream_version <= $3 \
                 ORDER BY stream_version DESC LIMIT $4) UNION ALL {archived_marker}"
            ),
            // `metadata ? 'correlation_id'` repeats the predicate of the partial index
            // `events_correlation` (migration 0005), so that the planner may use it.
            read_by_correlation: format!(
                "SELECT {EVENT_COLUMNS} FROM {s}.events \
                 WHERE {BELOW_HORIZON} AND metadata ? 'correlation_id' \
                 AND metadata ->> 'correlation_id' = $3 \
                 AND (transaction_id, position) > ($1::text::xid8, $2) \
                 ORDER BY {COMMIT_ORDER} LIMIT $4"
            ),
            // The stream rows in key order, each joined to its last event by the unique
            // index on (stream_type, stream_id, stream_version). Columns as
            // `row_stream` expects them (type and id at 2 and 3).
            list_streams: [
                format!(
                    "SELECT e.position, (e.transaction_id::text)::bigint, s.stream_type, \
                     s.stream_id, s.version, e.recorded_at \
                     FROM {s}.streams s JOIN {s}.events e ON e.stream_type = s.stream_type \
                     AND e.stream_id = s.stream_id AND e.stream_version = s.version \
                     WHERE (s.stream_type, s.stream_id) > ($1, $2) \
                     ORDER BY s.stream_type, s.stream_id LIMIT $3"
                ),
                format!(
                    "SELECT e.position, (e.transaction_id::text)::bigint, s.stream_type, \
                     s.stream_id, s.version, e.recorded_at \
                     FROM {s}.streams s JOIN {s}.events e ON e.stream_type = s.stream_type \
                     AND e.stream_id = s.stream_id AND e.stream_version = s.version \
                     WHERE s.stream_type = $1 AND s.stream_id > $2 \
                     ORDER BY s.stream_id LIMIT $3"
                ),
            ],
            stream_types: format!(
                "SELECT stream_type, count(*), sum(version)::bigint FROM {s}.streams \
                 WHERE archived_at IS NULL GROUP BY stream_type ORDER BY stream_type"
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
            checkpoints: format!(
                "SELECT name, commit_part, seq_part, updated_at FROM {s}.checkpoints ORDER BY name"
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
            // The event's CloudEvent is kept only when the event is not in `events`.
            park: format!(
                "INSERT INTO {s}.dead_letters (subscription, event_id, error, event) \
                 VALUES ($1, $2, $3, CASE WHEN EXISTS \
                     (SELECT 1 FROM {s}.events WHERE event_id = $2) THEN NULL ELSE $4::jsonb END) \
                 ON CONFLICT (subscription, event_id) DO UPDATE SET error = excluded.error, \
                 event = excluded.event, parked_at = now(), discarded_at = NULL, \
                 discard_reason = NULL"
            ),
            discard: format!(
                "UPDATE {s}.dead_letters SET discarded_at = now(), discard_reason = $3 \
                 WHERE subscription = $1 AND event_id = $2 AND discarded_at IS NULL"
            ),
            // `USING (event_id)` merges the two event_id columns, so the unqualified
            // EVENT_COLUMNS stay unambiguous; the order is qualified for the same reason
            // as `read_all`'s.
            parked: format!(
                "SELECT {EVENT_COLUMNS}, error, parked_at, discard_reason, discarded_at \
                 FROM {s}.events JOIN {s}.dead_letters USING (event_id) \
                 WHERE subscription = $1 AND (discarded_at IS NOT NULL) = $2 \
                 ORDER BY {COMMIT_ORDER}"
            ),
            parked_elsewhere: format!(
                "SELECT event, error, parked_at, discard_reason, discarded_at \
                 FROM {s}.dead_letters d \
                 WHERE subscription = $1 AND event IS NOT NULL \
                 AND (discarded_at IS NOT NULL) = $2 \
                 AND NOT EXISTS (SELECT 1 FROM {s}.events e WHERE e.event_id = d.event_id) \
                 ORDER BY parked_at"
            ),
            resolve: format!(
                "DELETE FROM {s}.dead_letters \
                 WHERE subscription = $1 AND event_id = $2 AND discarded_at IS NULL"
            ),
            request: format!(
                "INSERT INTO {s}.subscription_requests \
                 (id, subscription, kind, event_id, commit_part, seq_part) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING requested_at"
            ),
            requests: format!(
                "SELECT id, kind, event_id, commit_part, seq_part, requested_at \
                 FROM {s}.subscription_requests WHERE subscription = $1 \
                 ORDER BY requested_at, id"
            ),
            complete_request: format!(
                "DELETE FROM {s}.subscription_requests WHERE subscription = $1 AND id = $2"
            ),
            record: format!(
                "INSERT INTO {s}.subscription_records AS t \
                 (checkpoint, stream_types, event_types, state, error, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (checkpoint) DO UPDATE SET stream_types = excluded.stream_types, \
                 event_types = excluded.event_types, state = excluded.state, \
                 error = excluded.error, recorded_at = excluded.recorded_at"
            ),
            records: format!(
                "SELECT checkpoint, stream_types, event_types, state, error, recorded_at \
                 FROM {s}.subscription_records ORDER BY checkpoint"
            ),
            bus_apply: format!(
                "INSERT INTO {s}.bus_applied AS t (subscription, stream_type, stream_id, stream_version) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (subscription, stream_type, stream_id) \
                 DO UPDATE SET stream_version = excluded.stream_version \
                 WHERE t.stream_version < excluded.stream_version \
                 RETURNING 1"
            ),
            bus_reset: format!("DELETE FROM {s}.bus_applied WHERE subscription = $1"),
            transaction_ids: format!(
                "SELECT (SELECT (transaction_id::text)::bigint FROM {s}.events \
                         ORDER BY events.transaction_id DESC LIMIT 1), \
                        (pg_snapshot_xmax(pg_current_snapshot())::text)::bigint"
            ),
            schema_version: format!(
                "SELECT max(version) FROM {s}._sqlx_migrations WHERE success"
            ),
            parked_counts: format!(
                "SELECT subscription, count(*) FROM {s}.dead_letters \
                 WHERE discarded_at IS NULL GROUP BY subscription ORDER BY subscription"
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

/// `usize` / `u64` counts and versions to SQL `bigint`, saturating.
pub(crate) fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PgStore;
    use sqlx::Row;

    /// The global reads and the start-up check must be served by their indexes in order,
    /// whatever the table size: with sorting disabled, a plan that still sorts is a
    /// statement whose order the index cannot serve. Needs `DATABASE_URL` (set by
    /// `scripts/test`), like the crate's integration tests.
    #[tokio::test]
    async fn the_global_read_follows_the_commit_order_index_without_sorting() {
        let url = std::env::var("DATABASE_URL")
            .expect("DATABASE_URL is not set: run the tests with scripts/test");
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let store = PgStore::connect(&url)
            .await
            .expect("connect")
            .with_schema(&schema)
            .expect("schema name");
        store.migrate().await.expect("migrate");
        let sql = Sql::new(store.schema());
        let mut conn = store.pool().acquire().await.expect("connection");
        sqlx::query("SET enable_sort = off")
            .execute(&mut *conn)
            .await
            .expect("set");
        for (i, statement) in sql.read_all.iter().enumerate() {
            let text = format!("EXPLAIN {statement}");
            let mut explain = sqlx::query(&text).bind("0").bind(0_i64).bind(100_i64);
            if i & 1 == 1 {
                explain = explain.bind(vec!["account"]);
            }
            if i & 2 == 2 {
                explain = explain.bind(vec!["deposited"]);
            }
            let plan: Vec<String> = explain
                .fetch_all(&mut *conn)
                .await
                .expect("explain")
                .iter()
                .map(|row| row.get(0))
                .collect();
            // A sort node, not a merge's "Sort Key" (the log and its archive are merged
            // in index order).
            let sorts = plan.iter().any(|line| {
                let node = line.trim_start().trim_start_matches("->").trim_start();
                (node.starts_with("Sort ") && !node.starts_with("Sort Key"))
                    || node.starts_with("Incremental Sort")
            });
            let plan = plan.join("\n");
            assert!(plan.contains("events_commit_order"), "{plan}");
            assert!(!sorts, "read_all[{i}] sorts:\n{plan}");
            if i & 4 != 0 {
                assert!(plan.contains("events_archive_commit_order"), "{plan}");
            }
        }
        let plan: Vec<String> = sqlx::query(&format!("EXPLAIN {}", sql.transaction_ids))
            .fetch_all(&mut *conn)
            .await
            .expect("explain")
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert!(!plan.join("\n").contains("Sort"), "{plan:?}");
        drop(conn);
        sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .execute(store.pool())
            .await
            .expect("drop");
    }
}
