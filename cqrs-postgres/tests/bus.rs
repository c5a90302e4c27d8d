//! A transactional projection fed from a bus (a real nats-server, started here): each
//! event takes effect once, when its consumer dies mid-batch and when the relay
//! publishes everything again; and its dead letters keep what came from elsewhere.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{fresh_pg_store, runtime, Bank};
use cqrs_core::bus::Relay;
use cqrs_core::{
    codec, CheckpointStore, Envelope, ExpectedVersion, Metadata, StreamId, StreamStore,
    Subscription, SubscriptionName,
};
use cqrs_nats::testing::NatsServer;
use cqrs_nats::{async_nats, EventStream, JetStreamConsumer, JetStreamPublisher};
use cqrs_postgres::sqlx::{self, PgConnection};
use cqrs_postgres::{PgProjection, PgStore};

const WAIT: Duration = Duration::from_secs(30);

/// Deposits per account, in table `deposits` of its store: one row per applied event, so
/// a second application would show as a second row.
#[derive(Clone, PgProjection)]
#[pg_projection(event = Bank, error = sqlx::Error)]
struct Deposits {
    schema: String,
    /// Events handled so far; the handler stalls for ever once it reaches `stall_at`.
    handled: Arc<AtomicUsize>,
    stall_at: usize,
    /// Events of this amount fail until `cured`.
    poison: Option<u64>,
    cured: Arc<AtomicBool>,
}

impl Deposits {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        event: &Envelope<Bank>,
    ) -> Result<(), sqlx::Error> {
        if self.handled.fetch_add(1, Ordering::SeqCst) + 1 >= self.stall_at {
            std::future::pending::<()>().await;
        }
        let Bank::Deposited { amount } = event.data;
        if self.poison == Some(amount) && !self.cured.load(Ordering::SeqCst) {
            return Err(sqlx::Error::Protocol(format!("amount {amount} is poison")));
        }
        sqlx::query(&format!(
            "INSERT INTO {}.deposits (event_id, account, amount) VALUES ($1, $2, $3)",
            self.schema
        ))
        .bind(event.event_id)
        .bind(event.stream.id())
        .bind(amount as i64)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn reset(&self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query(&format!("DELETE FROM {}.deposits", self.schema))
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

/// The read model's store, with its table: another schema than the events', as another
/// service's database would be.
async fn read_model() -> PgStore {
    let store = fresh_pg_store().await;
    sqlx::query(&format!(
        "CREATE TABLE {}.deposits (event_id uuid NOT NULL, account text NOT NULL, amount bigint NOT NULL)",
        store.schema()
    ))
    .execute(store.pool())
    .await
    .expect("table");
    store
}

async fn rows(store: &PgStore) -> (i64, i64, i64) {
    sqlx::query_as(&format!(
        "SELECT count(*), count(DISTINCT event_id), coalesce(sum(amount), 0)::bigint FROM {}.deposits",
        store.schema()
    ))
    .fetch_one(store.pool())
    .await
    .expect("rows")
}

async fn jetstream(url: &str) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(url).await.expect("connect"))
}

fn consumer(
    js: async_nats::jetstream::Context,
    store: &PgStore,
    view: Deposits,
) -> JetStreamConsumer {
    let stream = EventStream::new("BANK", "bank").expect("valid");
    JetStreamConsumer::new(js, stream, store.transactional(view).expect("valid"))
        .batch_size(10)
        .ack_wait(Duration::from_secs(1))
        .idle_wait(Duration::from_millis(100))
}

#[test]
fn a_transactional_projection_fed_from_a_bus_applies_each_event_once() {
    runtime().block_on(async {
        let server = NatsServer::start().await.expect("nats-server");
        let js = jetstream(&server.url()).await;
        let events = fresh_pg_store().await;
        let mut total = 0;
        for n in 0..4 {
            let stream = StreamId::new("account", &format!("a-{n}")).expect("valid");
            let batch = (1..=25)
                .map(|amount| {
                    total += amount;
                    codec::encode(&Bank::Deposited { amount }, Metadata::default()).expect("encode")
                })
                .collect();
            events
                .append(&stream, ExpectedVersion::NoStream, batch)
                .await
                .expect("append");
        }
        let publisher =
            JetStreamPublisher::new(js.clone(), EventStream::new("BANK", "bank").expect("valid"));
        let relay = Subscription::new(
            events.clone(),
            Relay::new("bank_outbox", publisher, events.clone()).expect("valid"),
        )
        .start();
        relay.caught_up(WAIT).await.expect("relay caught up");

        // The first consumer stalls in its 15th event, mid-batch, holding it
        // unacknowledged; then its process dies (its runtime is dropped).
        let view = read_model().await;
        let stalled = Deposits {
            schema: view.schema().to_string(),
            handled: Arc::new(AtomicUsize::new(0)),
            stall_at: 15,
            poison: None,
            cured: Arc::default(),
        };
        // A process of its own: its own pool and connections, which die with it.
        let (url, schema, first_view) = (server.url(), view.schema().to_string(), stalled.clone());
        std::thread::spawn(move || {
            let first = runtime();
            first.block_on(async {
                let first_store =
                    PgStore::with_pool_and_schema(common::pool().await, &schema).expect("schema");
                let js = jetstream(&url).await;
                let _running = consumer(js, &first_store, first_view.clone())
                    .start()
                    .await
                    .expect("start");
                while first_view.handled.load(Ordering::SeqCst) < 15 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
        })
        .join()
        .expect("first consumer");
        let (applied, _, _) = rows(&view).await;
        assert_eq!(applied, 14, "the 15th never committed");

        // Another process takes over: the unacknowledged events come again; those the
        // first one committed are recognised, the rest applied.
        let healthy = Deposits {
            schema: view.schema().to_string(),
            handled: Arc::new(AtomicUsize::new(0)),
            stall_at: usize::MAX,
            poison: None,
            cured: Arc::default(),
        };
        let running = consumer(js.clone(), &view, healthy.clone())
            .start()
            .await
            .expect("start");
        running.caught_up(WAIT).await.expect("caught up");
        assert_eq!(rows(&view).await, (100, 100, total as i64));
        assert!(
            running.status().skipped >= 1,
            "a redelivered event was recognised"
        );

        // Everything published again (de-duplicated by JetStream; and were it not, the
        // projection would recognise each copy).
        relay.rebuild();
        relay.caught_up(WAIT).await.expect("relay caught up again");
        running.caught_up(WAIT).await.expect("caught up again");
        assert_eq!(rows(&view).await, (100, 100, total as i64));

        // A message from a foreign publisher is parked in the read model's store, whole.
        js.publish("bank.0.x.y", "not an event".into())
            .await
            .expect("publish")
            .await
            .expect("ack");
        running.caught_up(WAIT).await.expect("caught up");
        let name = SubscriptionName::new("deposits").expect("valid");
        let parked = view.parked(&name).await.expect("parked");
        assert_eq!(parked.len(), 1);
        assert_eq!(parked[0].event.event_type, "foreign");
        assert_eq!(parked[0].event.data["body"], "not an event");
        running.shutdown().await.expect("shutdown");
        relay.shutdown().await.expect("relay");
    });
}

/// A parked event retried at an operator's request after its fix takes effect once, in
/// the read model's transaction, although later versions of its stream were applied
/// after it was parked (the bus's per-stream check would take it for applied).
#[test]
fn a_parked_event_retried_after_its_fix_is_applied_once() {
    runtime().block_on(async {
        let server = NatsServer::start().await.expect("nats-server");
        let js = jetstream(&server.url()).await;
        let events = fresh_pg_store().await;
        let stream = StreamId::new("account", "a-1").expect("valid");
        let batch = (1..=5)
            .map(|amount| codec::encode(&Bank::Deposited { amount }, Metadata::default()))
            .collect::<Result<Vec<_>, _>>()
            .expect("encode");
        let stored = events
            .append(&stream, ExpectedVersion::NoStream, batch)
            .await
            .expect("append");
        let publisher =
            JetStreamPublisher::new(js.clone(), EventStream::new("BANK", "bank").expect("valid"));
        let relay = Subscription::new(
            events.clone(),
            Relay::new("bank_outbox", publisher, events.clone()).expect("valid"),
        )
        .start();
        relay.caught_up(WAIT).await.expect("relay caught up");

        let view = read_model().await;
        let deposits = Deposits {
            schema: view.schema().to_string(),
            handled: Arc::new(AtomicUsize::new(0)),
            stall_at: usize::MAX,
            poison: Some(3),
            cured: Arc::default(),
        };
        let running = consumer(js.clone(), &view, deposits.clone())
            .retry(cqrs_core::RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::from_millis(1),
            })
            .start()
            .await
            .expect("start");
        running.caught_up(WAIT).await.expect("caught up");
        let name = SubscriptionName::new("deposits").expect("valid");
        let parked = view.parked(&name).await.expect("parked");
        assert_eq!(parked.len(), 1);
        assert_eq!(parked[0].event.event_id, stored[2].event_id);
        assert_eq!(
            rows(&view).await,
            (4, 4, 12),
            "versions 4 and 5 applied after it"
        );

        deposits.cured.store(true, Ordering::SeqCst);
        view.request(
            &name,
            cqrs_core::SubscriptionRequest::RetryDeadLetter(stored[2].event_id),
        )
        .await
        .expect("request");
        let deadline = tokio::time::Instant::now() + WAIT;
        while !view.parked(&name).await.expect("parked").is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "not retried");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(rows(&view).await, (5, 5, 15), "applied once");
        running.shutdown().await.expect("shutdown");
        relay.shutdown().await.expect("relay");
    });
}
