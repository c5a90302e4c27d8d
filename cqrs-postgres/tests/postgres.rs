//! PostgreSQL-specific behaviour: the horizon, concurrency, round trips, bad stored data,
//! faults and guard rails. Each test takes the binary-wide lock (see `common`).

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{exclusive, fresh_pg_store, pool, runtime, Bank};
use cqrs_core::codec::{self, DecodeErrorKind};
use cqrs_core::{
    CheckpointStore, EventFilter, EventLog, ExpectedVersion, Metadata, NewEvent, Position,
    StoreError, StoreHealth, StreamId, StreamStore,
};
use cqrs_postgres::sqlx::postgres::PgConnectOptions;
use cqrs_postgres::sqlx::{self, PgPool, Row};
use cqrs_postgres::{PgStore, SetupError};

fn stream() -> StreamId {
    StreamId::new("account", &uuid::Uuid::now_v7().to_string()).expect("valid stream")
}

fn deposits(count: u64) -> Vec<NewEvent> {
    (0..count)
        .map(|amount| {
            codec::encode(&Bank::Deposited { amount }, Metadata::default()).expect("encode")
        })
        .collect()
}

/// Runs SQL against the store's schema (for corrupting data by hand).
async fn exec(store: &PgStore, sql: &str) {
    let sql = sql.replace("{schema}", &format!("\"{}\"", store.schema()));
    sqlx::query(&sql)
        .execute(store.pool())
        .await
        .expect("manual SQL");
}

#[test]
fn a_transaction_that_commits_late_is_neither_skipped_nor_overtaken() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let store = fresh_pg_store().await;
        let all = EventFilter::all();

        let first = store
            .append(&stream(), ExpectedVersion::NoStream, deposits(1))
            .await
            .expect("append");
        let read = store
            .read_all(Position::START, usize::MAX, &all)
            .await
            .expect("read");
        assert_eq!(read.len(), 1);
        let checkpoint = read[0].position;
        assert_eq!(checkpoint, first[0].position);

        // A writer takes its position, then stays open.
        let mut late_tx = store.pool().begin().await.expect("begin");
        let late_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *late_tx)
            .await
            .expect("pid");
        let late = store
            .append_in(
                &mut late_tx,
                &stream(),
                ExpectedVersion::NoStream,
                deposits(1),
            )
            .await
            .expect("append in the open transaction");
        // A later writer takes a higher position and commits first.
        let early = store
            .append(&stream(), ExpectedVersion::NoStream, deposits(2))
            .await
            .expect("append");
        assert!(
            late[0].position.sequence() < early[0].position.sequence(),
            "the open transaction took the lower sequence number"
        );

        // The reader neither skips the open one nor reads past it.
        let read = store
            .read_all(checkpoint, usize::MAX, &all)
            .await
            .expect("read");
        assert!(
            read.is_empty(),
            "nothing past the horizon is read: {read:?}"
        );
        assert!(!store
            .wait_for_events(checkpoint, Duration::from_millis(50))
            .await
            .expect("wait"));
        let lag = store.horizon_lag().await.expect("lag");
        let holder = lag
            .oldest_transaction
            .expect("an open transaction holds the horizon");
        assert_eq!(holder.pid, late_pid);
        assert_eq!(holder.state.as_deref(), Some("idle in transaction"));
        assert_eq!(
            lag.held_back_events, 2,
            "the two committed events are held back"
        );

        late_tx.commit().await.expect("commit");
        let read = store
            .read_all(checkpoint, usize::MAX, &all)
            .await
            .expect("read");
        let ids: Vec<_> = read.iter().map(|e| e.event_id).collect();
        let expected: Vec<_> = late
            .iter()
            .chain(early.iter())
            .map(|e| e.event_id)
            .collect();
        assert_eq!(
            ids, expected,
            "the late committer comes first, nothing skipped"
        );
        assert!(read.windows(2).all(|w| w[0].position < w[1].position));
        assert!(read[0].position > checkpoint);
        assert_eq!(store.horizon_lag().await.expect("lag").held_back_events, 0);
    });
}

#[test]
fn sixteen_writers_with_random_commit_delays_and_one_reader_lose_nothing() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let pool = PgStore::pool_options()
            .max_connections(20)
            .connect_with(common::connect_options())
            .await
            .expect("pool");
        let store = PgStore::with_pool_and_schema(pool, &common::random_schema()).expect("schema");
        store.migrate().await.expect("migrate");
        let done = Arc::new(AtomicBool::new(false));

        let reader = {
            let store = store.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut checkpoint = Position::START;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let batch = store
                        .read_all(checkpoint, 37, &EventFilter::all())
                        .await
                        .expect("read");
                    for event in &batch {
                        assert!(event.position > checkpoint, "positions grow");
                        checkpoint = event.position;
                        seen.push(event.event_id);
                    }
                    if batch.is_empty() {
                        if finished {
                            return seen;
                        }
                        store
                            .wait_for_events(checkpoint, Duration::from_millis(20))
                            .await
                            .expect("wait");
                    }
                }
            })
        };

        let mut writers = Vec::new();
        for _ in 0..16 {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                let stream = stream();
                let mut written = Vec::new();
                for _ in 0..15 {
                    let random = uuid::Uuid::new_v4().as_u128();
                    let count = 1 + (random % 3) as u64;
                    let delay = Duration::from_millis(((random >> 8) % 12) as u64);
                    let mut tx = store.pool().begin().await.expect("begin");
                    let stored = store
                        .append_in(&mut tx, &stream, ExpectedVersion::Any, deposits(count))
                        .await
                        .expect("append");
                    tokio::time::sleep(delay).await;
                    tx.commit().await.expect("commit");
                    written.extend(stored.iter().map(|e| e.event_id));
                }
                written
            }));
        }
        let mut written = HashSet::new();
        for writer in writers {
            written.extend(writer.await.expect("writer"));
        }
        done.store(true, Ordering::SeqCst);
        let seen = reader.await.expect("reader");
        let unique: HashSet<_> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "no event read twice");
        assert_eq!(unique, written, "every event read exactly once");
    });
}

/// A TCP proxy in front of the server that counts the client's protocol messages, so the
/// test sees the round trips of an append on the wire.
mod wire {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Every typed message the client sent, by type byte (`S` = Sync, `Q` = simple query).
    pub type Sent = Arc<Mutex<Vec<u8>>>;

    pub async fn proxy(host: String, port: u16) -> (u16, Sent) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let local = listener.local_addr().expect("addr").port();
        let sent: Sent = Arc::default();
        let log = sent.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect((host.as_str(), port))
                    .await
                    .expect("connect to the server");
                let log = log.clone();
                tokio::spawn(relay(client, server, log));
            }
        });
        (local, sent)
    }

    async fn relay(client: TcpStream, server: TcpStream, log: Sent) {
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        });
        // The startup message has no type byte; every later one has.
        let mut typed = false;
        loop {
            let mut kind = [0u8; 1];
            if typed && client_read.read_exact(&mut kind).await.is_err() {
                return;
            }
            let mut len = [0u8; 4];
            if client_read.read_exact(&mut len).await.is_err() {
                return;
            }
            let len = u32::from_be_bytes(len) as usize;
            let mut body = vec![0u8; len.saturating_sub(4)];
            if client_read.read_exact(&mut body).await.is_err() {
                return;
            }
            if typed {
                log.lock().expect("log").push(kind[0]);
                if server_write.write_all(&kind).await.is_err() {
                    return;
                }
            }
            let mut frame = (len as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(&body);
            if server_write.write_all(&frame).await.is_err() {
                return;
            }
            typed = true;
        }
    }
}

#[test]
fn a_100_event_append_is_one_round_trip_in_an_implicit_transaction() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let migrated = fresh_pg_store().await;
        let options = common::connect_options();
        let (port, sent) = wire::proxy(options.get_host().to_owned(), options.get_port()).await;
        let proxied = options
            .host("127.0.0.1")
            .port(port)
            .ssl_mode(sqlx::postgres::PgSslMode::Disable);
        // Two connections: the one the store keeps between its operations, and one for
        // `append_in`.
        let pool = PgStore::pool_options()
            .max_connections(2)
            .connect_with(proxied)
            .await
            .expect("pool through the proxy");
        let store =
            PgStore::with_pool_and_schema(pool, migrated.schema().as_str()).expect("schema");
        let stream = stream();
        // The first append of each form (one event, a batch) on a connection also
        // prepares its statement: one more round trip, once per connection.
        store
            .append(&stream, ExpectedVersion::NoStream, deposits(1))
            .await
            .expect("warm-up append");
        store
            .append(&stream, ExpectedVersion::Exact(1), deposits(2))
            .await
            .expect("warm-up batch");

        // Through the store (`EventStore::append`): Bind, Execute, Close (of the portal),
        // Sync: one statement, no Parse (prepared and cached on the connection), no
        // BEGIN/COMMIT (implicit transaction). And nothing after it: the store keeps the
        // connection for its next operation, so the pool does not ping it on release.
        let before = sent.lock().expect("log").len();
        let stored = store
            .append(&stream, ExpectedVersion::Exact(3), deposits(100))
            .await
            .expect("append 100");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let messages: Vec<u8> = sent.lock().expect("log")[before..].to_vec();
        assert_eq!(
            messages,
            b"BECS",
            "one round trip, no release ping; messages sent: {:?}",
            String::from_utf8_lossy(&messages)
        );

        // On a connection of the caller (`append_in`): the same one statement.
        let mut conn = store.pool().acquire().await.expect("acquire");
        store
            .append_in(&mut conn, &stream, ExpectedVersion::Exact(103), deposits(2))
            .await
            .expect("warm-up batch on this connection");
        let before = sent.lock().expect("log").len();
        let stored_in = store
            .append_in(
                &mut conn,
                &stream,
                ExpectedVersion::Exact(105),
                deposits(100),
            )
            .await
            .expect("append 100 more");
        let messages: Vec<u8> = sent.lock().expect("log")[before..].to_vec();
        assert_eq!(
            messages,
            b"BECS",
            "one round trip; messages sent: {:?}",
            String::from_utf8_lossy(&messages)
        );
        drop(conn);

        assert_eq!(stored.len(), 100);
        assert_eq!(
            stored.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
            (4..=103).collect::<Vec<_>>()
        );
        assert_eq!(
            stored_in
                .iter()
                .map(|e| e.stream_version)
                .collect::<Vec<_>>(),
            (106..=205).collect::<Vec<_>>()
        );
        let read = migrated
            .read_stream(&stream, 1, usize::MAX)
            .await
            .expect("read");
        assert_eq!(read.len(), 205);
        assert_eq!(
            read.iter().map(|e| e.event_id).collect::<Vec<_>>()[3..103],
            stored.iter().map(|e| e.event_id).collect::<Vec<_>>()[..]
        );
        // Each batch of 100 rows comes from one transaction.
        for batch in [&stored, &stored_in] {
            let distinct = batch
                .iter()
                .map(|e| e.position.commit())
                .collect::<HashSet<_>>();
            assert_eq!(distinct.len(), 1);
        }
    });
}

#[test]
fn a_payload_corrupted_by_hand_is_a_decode_error_naming_stream_version_and_type() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let store = fresh_pg_store().await;
        let stream = stream();
        store
            .append(&stream, ExpectedVersion::NoStream, deposits(3))
            .await
            .expect("append");
        exec(
            &store,
            &format!(
                "UPDATE {{schema}}.events SET data = '{{\"amount\": \"lots\"}}' \
                 WHERE stream_id = '{}' AND stream_version = 2",
                stream.id()
            ),
        )
        .await;
        let read = store
            .read_stream(&stream, 1, usize::MAX)
            .await
            .expect("read");
        assert!(codec::decode::<Bank>(&read[0]).is_ok());
        let error = codec::decode::<Bank>(&read[1]).expect_err("wrong shape");
        assert!(matches!(error.kind, DecodeErrorKind::InvalidData(_)));
        assert_eq!(error.stream, stream);
        assert_eq!(error.stream_version, 2);
        assert_eq!(error.event_type, "Deposited");
        let message = error.to_string();
        assert!(
            message.contains(&stream.to_string())
                && message.contains("version 2")
                && message.contains("Deposited"),
            "{message}"
        );

        exec(
            &store,
            &format!(
                "UPDATE {{schema}}.events SET event_type = 'Vanished' \
                 WHERE stream_id = '{}' AND stream_version = 3",
                stream.id()
            ),
        )
        .await;
        exec(
            &store,
            &format!(
                "UPDATE {{schema}}.events SET event_version = 7 \
                 WHERE stream_id = '{}' AND stream_version = 1",
                stream.id()
            ),
        )
        .await;
        let read = store
            .read_stream(&stream, 1, usize::MAX)
            .await
            .expect("read");
        let future = codec::decode::<Bank>(&read[0]).expect_err("future version");
        assert!(matches!(
            future.kind,
            DecodeErrorKind::UnknownVersion {
                stored: 7,
                current: 1
            }
        ));
        let unknown = codec::decode::<Bank>(&read[2]).expect_err("unknown type");
        assert!(matches!(unknown.kind, DecodeErrorKind::UnknownEventType));
        assert_eq!(unknown.event_type, "Vanished");
        assert_eq!(unknown.stream_version, 3);
    });
}

#[test]
fn corrupt_stored_metadata_is_a_corrupt_error() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let store = fresh_pg_store().await;
        let stream = stream();
        store
            .append(&stream, ExpectedVersion::NoStream, deposits(2))
            .await
            .expect("append");
        exec(
            &store,
            &format!(
                "UPDATE {{schema}}.events SET metadata = '{{\"correlation_id\": \"nope\"}}' \
                 WHERE stream_id = '{}' AND stream_version = 2",
                stream.id()
            ),
        )
        .await;
        let corrupt = |e: StoreError| match e {
            StoreError::Corrupt {
                stream: s,
                stream_version,
                reason,
                ..
            } => {
                assert_eq!(s, stream);
                assert_eq!(stream_version, 2);
                assert!(reason.contains("metadata"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        };
        corrupt(
            store
                .read_stream(&stream, 1, usize::MAX)
                .await
                .expect_err("corrupt metadata"),
        );
        // A global read returns the events before the unreadable one; the next read,
        // starting at it, fails naming it.
        let before = store
            .read_all(Position::START, usize::MAX, &EventFilter::all())
            .await
            .expect("the events before it");
        assert_eq!(before.len(), 1);
        corrupt(
            store
                .read_all(before[0].position, usize::MAX, &EventFilter::all())
                .await
                .expect_err("corrupt metadata"),
        );
        assert_eq!(
            store
                .read_stream(&stream, 1, 1)
                .await
                .expect("the intact event reads")
                .len(),
            1
        );
    });
}

/// Trace context is for following a request, not worth an event: a malformed
/// `traceparent` or `tracestate` in stored metadata is dropped when read (with a warning),
/// and the rest of the metadata reads as stored.
#[test]
fn malformed_stored_trace_context_is_dropped_and_the_event_reads() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let store = fresh_pg_store().await;
        let stream = stream();
        store
            .append(&stream, ExpectedVersion::NoStream, deposits(1))
            .await
            .expect("append");
        exec(
            &store,
            &format!(
                "UPDATE {{schema}}.events SET metadata = '{{\"traceparent\": \"nope\", \
                 \"tracestate\": 7, \"extra\": {{\"user\": \"ada\"}}}}' \
                 WHERE stream_id = '{}'",
                stream.id()
            ),
        )
        .await;
        let read = store.read_stream(&stream, 1, 1).await.expect("it reads");
        assert_eq!(read[0].metadata.traceparent, None);
        assert_eq!(read[0].metadata.tracestate, None);
        assert_eq!(read[0].metadata.extra["user"], "ada");
    });
}

#[test]
fn an_invalid_schema_name_is_refused_before_any_sql() {
    runtime().block_on(async {
        // A pool that could not connect anyway: the refusal must come first.
        let pool = PgPool::connect_lazy_with(
            PgConnectOptions::new()
                .host("127.0.0.1")
                .port(closed_port()),
        );
        for bad in [
            "",
            "Events",
            "x; DROP TABLE y",
            "a\"b",
            "pg_toast",
            &"a".repeat(64),
        ] {
            match PgStore::with_pool_and_schema(pool.clone(), bad) {
                Err(SetupError::InvalidSchemaName(e)) => assert_eq!(e.name, bad),
                other => panic!("{bad:?}: expected InvalidSchemaName, got {other:?}"),
            }
        }
        assert!(PgStore::new(pool).with_schema("ok_name_1").is_ok());
    });
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

#[test]
fn a_database_that_cannot_be_reached_is_unavailable_and_the_password_is_not_shown() {
    runtime().block_on(async {
        let port = closed_port();
        let pool = PgStore::pool_options()
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy_with(
                PgConnectOptions::new()
                    .host("127.0.0.1")
                    .port(port)
                    .password("s3cret-pw"),
            );
        let store = PgStore::new(pool);
        let error = store
            .append(&stream(), ExpectedVersion::NoStream, deposits(1))
            .await
            .expect_err("no server");
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        assert!(error.is_retriable());
        let error = store
            .read_all(Position::START, 10, &EventFilter::all())
            .await
            .expect_err("no server");
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        let error = store
            .load_checkpoint(&subscription_name("sub"))
            .await
            .expect_err("no server");
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");

        let url = format!("postgres://app:s3cret-pw@127.0.0.1:{port}/app");
        let error = PgStore::connect(&url).await.expect_err("no server");
        assert!(
            matches!(error, SetupError::Store(StoreError::Unavailable(_))),
            "{error:?}"
        );
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("s3cret-pw"), "password leaked: {shown}");
        let error = PgStore::connect("postgres://app:s3cret-pw@127.0.0.1:notaport/app")
            .await
            .expect_err("bad url");
        let shown = format!("{error} {error:?}");
        assert!(matches!(error, SetupError::InvalidUrl(_)), "{shown}");
        assert!(!shown.contains("s3cret-pw"), "password leaked: {shown}");
    });
}

#[test]
fn health_says_when_the_database_is_down_never_migrated_or_behind_this_build() {
    runtime().block_on(async {
        let _turn = exclusive().await;
        let nowhere = PgStore::pool_options()
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy_with(
                PgConnectOptions::new()
                    .host("127.0.0.1")
                    .port(closed_port())
                    .password("s3cret-pw"),
            );
        let down = PgStore::new(nowhere).health(Duration::from_secs(5)).await;
        assert!(!down.reachable && !down.is_healthy(), "{down:?}");
        assert_eq!(down.problems.len(), 1, "{down:?}");
        assert!(!down.problems[0].contains("s3cret-pw"), "{down:?}");

        let never = PgStore::new(pool().await)
            .with_schema(&common::random_schema())
            .expect("schema");
        let report = never.health(Duration::from_secs(5)).await;
        assert!(report.reachable && !report.is_healthy(), "{report:?}");
        assert!(
            report.problems[0].contains("was never migrated"),
            "{report:?}"
        );

        let behind = fresh_pg_store().await;
        exec(
            &behind,
            "DELETE FROM {schema}._sqlx_migrations WHERE version = \
             (SELECT max(version) FROM {schema}._sqlx_migrations)",
        )
        .await;
        let report = behind.health(Duration::from_secs(5)).await;
        assert!(report.reachable && !report.is_healthy(), "{report:?}");
        assert!(
            report.schema_version < report.expected_schema_version,
            "{report:?}"
        );
        assert!(
            report.problems[0].contains("this build expects"),
            "{report:?}"
        );
    });
}

#[test]
fn a_connection_killed_mid_append_is_unavailable_and_writes_nothing() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let store = fresh_pg_store().await;
        let stream = stream();
        store
            .append(&stream, ExpectedVersion::NoStream, deposits(1))
            .await
            .expect("append");

        // Hold the stream's row so that the next append blocks inside its statement.
        let mut locker = store.pool().begin().await.expect("begin");
        exec_in(
            &mut locker,
            &format!(
                "SELECT version FROM \"{}\".streams WHERE stream_id = '{}' FOR UPDATE",
                store.schema(),
                stream.id()
            ),
        )
        .await;
        let append = {
            let store = store.clone();
            let stream = stream.clone();
            tokio::spawn(async move {
                store
                    .append(&stream, ExpectedVersion::Exact(1), deposits(5))
                    .await
            })
        };
        let admin = pool().await;
        let pid = loop {
            let pid: Option<i32> = sqlx::query_scalar(
                "SELECT pid FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND query LIKE '%append_events%' \
                 AND query LIKE $1",
            )
            .bind(format!("%{}%", store.schema()))
            .fetch_optional(&admin)
            .await
            .expect("pg_stat_activity");
            if let Some(pid) = pid {
                break pid;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&admin)
            .await
            .expect("terminate");
        assert!(killed);
        let error = append
            .await
            .expect("task")
            .expect_err("the append's connection was killed");
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        locker.rollback().await.expect("rollback");

        let read = store
            .read_stream(&stream, 1, usize::MAX)
            .await
            .expect("read");
        assert_eq!(read.len(), 1, "nothing of the killed append was stored");
        let retried = store
            .append(&stream, ExpectedVersion::Exact(1), deposits(5))
            .await
            .expect("the retry succeeds: the stream is still at version 1");
        assert_eq!(retried.last().map(|e| e.stream_version), Some(6));
    });
}

async fn exec_in(conn: &mut sqlx::PgConnection, sql: &str) {
    sqlx::query(sql).execute(conn).await.expect("SQL");
}

#[test]
fn stored_transaction_ids_ahead_of_the_cluster_fail_the_start_up_check() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let store = fresh_pg_store().await;
        store.check().await.expect("a fresh store passes");
        store
            .append(&stream(), ExpectedVersion::NoStream, deposits(1))
            .await
            .expect("append");
        store.check().await.expect("a normal store passes");
        // What a dump restored into a younger cluster looks like.
        exec(
            &store,
            "INSERT INTO {schema}.events (transaction_id, stream_type, stream_id, stream_version, \
             event_id, event_type, event_version, data) \
             VALUES (((pg_snapshot_xmax(pg_current_snapshot())::text)::bigint + 1000000)::text::xid8, \
             'account', 'restored', 1, gen_random_uuid(), 'Deposited', 1, '{}')",
        )
        .await;
        let error = store.check().await.expect_err("ids ahead");
        match &error {
            SetupError::TransactionIdsAhead { max_stored, next } => assert!(max_stored > next),
            other => panic!("expected TransactionIdsAhead, got {other:?}"),
        }
        let message = error.to_string();
        assert!(message.contains("pg_resetwal") && message.contains("dump"), "{message}");
        assert!(matches!(
            store.migrate().await,
            Err(SetupError::TransactionIdsAhead { .. })
        ));
    });
}

#[test]
fn migrate_is_idempotent_and_schemas_are_isolated() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let a = fresh_pg_store().await;
        a.migrate().await.expect("again");
        let b = PgStore::new(a.pool().clone())
            .with_schema(&common::random_schema())
            .expect("schema");
        b.migrate().await.expect("migrate b");
        let stream = stream();
        a.append(&stream, ExpectedVersion::NoStream, deposits(2))
            .await
            .expect("append");
        assert!(b
            .read_stream(&stream, 1, usize::MAX)
            .await
            .expect("read")
            .is_empty());
        b.append(&stream, ExpectedVersion::NoStream, deposits(1))
            .await
            .expect("same stream, other schema");
        let migrations: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{}\"._sqlx_migrations",
            b.schema()
        ))
        .fetch_one(b.pool())
        .await
        .expect("each schema has its migration history");
        // Every embedded migration, whatever their number.
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
            .expect("the migrations folder")
            .filter(|f| {
                f.as_ref()
                    .is_ok_and(|f| f.file_name().to_string_lossy().ends_with(".sql"))
            })
            .count();
        assert_eq!(migrations, files as i64);
        let row = sqlx::query("SELECT current_setting('search_path')")
            .fetch_one(a.pool())
            .await
            .expect("search_path");
        let path: String = row.get(0);
        assert!(
            !path.contains(a.schema().as_str()),
            "pooled connections keep their search_path: {path}"
        );
    });
}

#[test]
fn append_and_checkpoint_commit_or_roll_back_with_the_callers_transaction() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let store = fresh_pg_store().await;
        let stream = stream();
        let position = Position::from_parts(u64::MAX, 1 << 63);

        let mut tx = store.pool().begin().await.expect("begin");
        store
            .append_in(&mut tx, &stream, ExpectedVersion::NoStream, deposits(2))
            .await
            .expect("append");
        store
            .save_checkpoint_in(&mut tx, &subscription_name("balances"), position)
            .await
            .expect("checkpoint");
        tx.rollback().await.expect("rollback");
        assert!(store
            .read_stream(&stream, 1, 10)
            .await
            .expect("read")
            .is_empty());
        assert_eq!(
            store
                .load_checkpoint(&subscription_name("balances"))
                .await
                .expect("load"),
            None
        );

        let mut tx = store.pool().begin().await.expect("begin");
        store
            .append_in(&mut tx, &stream, ExpectedVersion::NoStream, deposits(2))
            .await
            .expect("append");
        store
            .save_checkpoint_in(&mut tx, &subscription_name("balances"), position)
            .await
            .expect("checkpoint");
        tx.commit().await.expect("commit");
        assert_eq!(
            store.read_stream(&stream, 1, 10).await.expect("read").len(),
            2
        );
        assert_eq!(
            store
                .load_checkpoint(&subscription_name("balances"))
                .await
                .expect("load"),
            Some(position),
            "both u64 parts round-trip, even above i64::MAX"
        );
    });
}

#[test]
fn out_of_range_numbers_are_clamped_or_refused_never_a_panic() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let store = fresh_pg_store().await;
        let stream = stream();
        store
            .append(&stream, ExpectedVersion::NoStream, deposits(2))
            .await
            .expect("append");
        assert!(store
            .read_stream(&stream, u64::MAX, usize::MAX)
            .await
            .expect("from_version past i64::MAX reads empty")
            .is_empty());
        assert_eq!(
            store
                .read_all(Position::START, usize::MAX, &EventFilter::all())
                .await
                .expect("usize::MAX is clamped to i64::MAX")
                .len(),
            2
        );
        assert!(store
            .read_all(
                Position::from_parts(u64::MAX, u64::MAX),
                10,
                &EventFilter::all()
            )
            .await
            .expect("a position past everything reads empty")
            .is_empty());
        let error = store
            .append(&stream, ExpectedVersion::Exact(u64::MAX), deposits(1))
            .await
            .expect_err("no stream can be at u64::MAX");
        assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
        assert_eq!(
            store
                .read_stream(&stream, 1, usize::MAX)
                .await
                .expect("read")
                .len(),
            2
        );
    });
}

#[test]
fn the_store_keeps_at_most_all_but_one_connection_and_only_while_busy() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let migrated = fresh_pg_store().await;
        let connect = |max| {
            PgStore::pool_options()
                .max_connections(max)
                .connect_with(common::connect_options())
        };
        let pool = connect(2).await.expect("pool");
        let store = PgStore::with_pool_and_schema(pool.clone(), migrated.schema().as_str())
            .expect("schema");

        // Two appends at once take both connections; afterwards the store keeps one for
        // its next operation and gives the other back.
        let (first, second) = (stream(), stream());
        let (a, b) = tokio::join!(
            store.append(&first, ExpectedVersion::NoStream, deposits(1)),
            store.append(&second, ExpectedVersion::NoStream, deposits(1)),
        );
        a.expect("append");
        b.expect("append");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(pool.size(), 2);
        assert_eq!(
            pool.num_idle(),
            1,
            "one kept by the store, one back in the pool"
        );
        let other = tokio::time::timeout(Duration::from_secs(1), pool.acquire())
            .await
            .expect("another user of the pool is served at once")
            .expect("acquire");
        drop(other);

        // Idle, the store gives its connection back (after about half a second).
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(pool.num_idle(), 2, "a quiet store keeps nothing");

        // On a pool of one connection the store keeps nothing at all.
        let single = connect(1).await.expect("pool");
        let store = PgStore::with_pool_and_schema(single.clone(), migrated.schema().as_str())
            .expect("schema");
        store
            .append(&stream(), ExpectedVersion::NoStream, deposits(1))
            .await
            .expect("append");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(single.num_idle(), 1);
    });
}

/// The subscription name `name`, valid by construction of the test.
fn subscription_name(name: &str) -> cqrs_core::SubscriptionName {
    cqrs_core::SubscriptionName::new(name).expect("a valid subscription name")
}

/// `read_by_correlation` is served by the partial index `events_correlation` (migration
/// 0005), not by a scan of the log: the index's scan count grows when the store's own
/// query runs on a log where few events carry a correlation id.
#[test]
fn events_by_correlation_are_found_with_their_index() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let store = fresh_pg_store().await;
        for _ in 0..40 {
            store
                .append(&stream(), ExpectedVersion::NoStream, deposits(100))
                .await
                .expect("append");
        }
        let request = uuid::Uuid::now_v7();
        let correlated = (0..3)
            .map(|amount| {
                let metadata = Metadata::default().with_correlation_id(request);
                codec::encode(&Bank::Deposited { amount }, metadata).expect("encode")
            })
            .collect();
        store
            .append(&stream(), ExpectedVersion::NoStream, correlated)
            .await
            .expect("append");
        exec(&store, "ANALYZE {schema}.events").await;
        let scans = || async {
            let row = sqlx::query(
                "SELECT coalesce(sum(idx_scan), 0)::bigint FROM pg_stat_user_indexes \
                 WHERE schemaname = $1 AND indexrelname = 'events_correlation'",
            )
            .bind(store.schema().as_str())
            .fetch_one(store.pool())
            .await
            .expect("index statistics");
            row.get::<i64, _>(0)
        };
        // Statistics are flushed by each backend after its transaction, and read as a
        // snapshot per transaction: poll.
        let before = scans().await;
        let found = store
            .read_by_correlation(request, Position::START, 10)
            .await
            .expect("read by correlation");
        assert_eq!(found.len(), 3);
        let mut after = before;
        for _ in 0..100 {
            after = scans().await;
            if after > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            after > before,
            "the query did not use events_correlation ({before} scans before, {after} after)"
        );
    });
}
