//! Requests from the real `cqrs` binary to a subscription that a process (this test)
//! runs against the same PostgreSQL: a parked event retried after its fix reaches a
//! transactional read model once, `reset --to now` skips history, `rebuild --watch`
//! replays it all; unknown subscriptions and letters change nothing.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{cqrs, fails, json, runtime};
use cqrs_core::subscription::{FailurePolicy, Subscription, SubscriptionHandle};
use cqrs_core::{
    codec, CheckpointStore, DomainEvent, Envelope, EventLog, ExpectedVersion, Listener, Metadata,
    RetryPolicy, StreamId, StreamStore, SubscriptionName,
};
use cqrs_postgres::sqlx::{self, PgConnection};
use cqrs_postgres::testing::TempCluster;
use cqrs_postgres::{PgProjection, PgStore};

#[derive(Debug, Clone, PartialEq, DomainEvent)]
enum MailEvent {
    Sent { to: String },
}

#[derive(Debug, thiserror::Error)]
enum MailError {
    #[error("the mail server refused {0}")]
    Refused(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Counts, per event, how often it took effect (`shop.mailed.times`); refuses mail to
/// `bounce@example.com` while `broken`.
#[derive(Clone)]
struct Mailer {
    broken: Arc<AtomicBool>,
}

impl Listener for Mailer {
    const NAME: &'static str = "mailer";
    type Event = MailEvent;
    type Error = MailError;
}

impl PgProjection for Mailer {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        event: &Envelope<MailEvent>,
    ) -> Result<(), MailError> {
        let MailEvent::Sent { to } = &event.data;
        if to == "bounce@example.com" && self.broken.load(Ordering::SeqCst) {
            return Err(MailError::Refused(to.clone()));
        }
        sqlx::query(
            "INSERT INTO shop.mailed AS m (event_id, times) VALUES ($1, 1) \
             ON CONFLICT (event_id) DO UPDATE SET times = m.times + 1",
        )
        .bind(event.event_id)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn reset(&self, tx: &mut PgConnection) -> Result<(), MailError> {
        sqlx::query("DELETE FROM shop.mailed")
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

fn start(store: &PgStore, mailer: &Mailer) -> SubscriptionHandle {
    Subscription::new(
        store.clone(),
        store.transactional(mailer.clone()).expect("valid"),
    )
    .retry(RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(1),
    })
    .on_failure(FailurePolicy::Park)
    .idle_wait(Duration::from_millis(100))
    .start()
}

async fn send(store: &PgStore, to: &[&str]) -> Vec<uuid::Uuid> {
    let stream = StreamId::new("mail", &uuid::Uuid::now_v7().to_string()).expect("valid");
    let events = to
        .iter()
        .map(|to| {
            codec::encode(
                &MailEvent::Sent {
                    to: (*to).to_owned(),
                },
                Metadata::default(),
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .expect("encode");
    store
        .append(&stream, ExpectedVersion::Any, events)
        .await
        .expect("append")
        .iter()
        .map(|e| e.event_id)
        .collect()
}

/// How often each event took effect, by id.
async fn mailed(store: &PgStore) -> Vec<(uuid::Uuid, i32)> {
    sqlx::query_as("SELECT event_id, times FROM shop.mailed ORDER BY event_id")
        .fetch_all(store.pool())
        .await
        .expect("read the model")
}

async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn an_operator_retries_resets_and_rebuilds_a_running_subscription() {
    let cluster = TempCluster::start().expect("a private PostgreSQL cluster starts");
    let url = cluster.url();
    json(&url, &["--schema", "shop", "migrate"]);
    let rt = runtime();
    // Held to the end: the subscriptions start in it, and the store drops in it.
    let _context = rt.enter();
    let broken = Arc::new(AtomicBool::new(true));
    let mailer = Mailer {
        broken: Arc::clone(&broken),
    };
    let store = rt.block_on(async {
        let store = PgStore::connect(&url)
            .await
            .expect("connect")
            .with_schema("shop")
            .expect("schema");
        sqlx::query("CREATE TABLE shop.mailed (event_id uuid PRIMARY KEY, times int NOT NULL)")
            .execute(store.pool())
            .await
            .expect("create the read model");
        store
    });
    let name = SubscriptionName::new("mailer").expect("valid");
    let handle = start(&store, &mailer);
    let sent = rt.block_on(async {
        let sent = send(
            &store,
            &["a@example.com", "bounce@example.com", "c@example.com"],
        )
        .await;
        until("the bounce is parked", || async {
            store.parked(&name).await.expect("parked").len() == 1
        })
        .await;
        handle
            .caught_up(Duration::from_secs(30))
            .await
            .expect("caught up");
        sent
    });
    let bounce = sent[1].to_string();

    let list = json(&url, &["--schema", "shop", "subscriptions", "list"]);
    let row = &list["subscriptions"][0];
    assert_eq!(row["checkpoint"], "mailer@v1", "{list}");
    assert_eq!(row["state"], "caught up", "{list}");
    assert_eq!(row["events_behind"], 0);
    assert_eq!(row["events_behind_filtered"], true);
    assert_eq!(row["dead_letters"], 1);
    assert!(row["lease_holder"]["holder"].is_string(), "{list}");
    let shown = json(
        &url,
        &["--schema", "shop", "subscription", "show", "mailer"],
    );
    assert_eq!(shown["checkpoint"], "mailer@v1");
    assert_eq!(shown["filter"]["event_types"][0], "Sent", "{shown}");
    let letter = json(
        &url,
        &[
            "--schema",
            "shop",
            "dead-letters",
            "show",
            "mailer",
            &bounce,
        ],
    );
    assert!(
        letter["error"]
            .as_str()
            .is_some_and(|e| e.contains("refused bounce@example.com")),
        "{letter}"
    );
    assert_eq!(letter["event"]["data"]["to"], "bounce@example.com");

    // Still broken: it fails again, exit 1, and stays parked.
    let again = cqrs(
        &url,
        &[
            "--schema",
            "shop",
            "dead-letters",
            "retry",
            "mailer",
            &bounce,
            "--json",
        ],
    );
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).expect("json");
    assert_eq!(again["handled"], false, "{again}");
    // Fixed: handled once, the letter gone, nothing else applied twice.
    broken.store(false, Ordering::SeqCst);
    let retried = json(
        &url,
        &[
            "--schema",
            "shop",
            "dead-letters",
            "retry",
            "mailer",
            &bounce,
        ],
    );
    assert_eq!(retried["handled"], true, "{retried}");
    rt.block_on(async {
        assert!(store.parked(&name).await.expect("parked").is_empty());
        let mut expected: Vec<_> = sent.iter().map(|id| (*id, 1)).collect();
        expected.sort();
        assert_eq!(
            mailed(&store).await,
            expected,
            "each event took effect once"
        );
    });
    let none = json(
        &url,
        &["--schema", "shop", "dead-letters", "retry-all", "mailer"],
    );
    assert_eq!(none["handled"], 0);

    // Stopped, history appended, then `reset --to now`: queued, applied at the start, and
    // the history is skipped.
    rt.block_on(async {
        handle.shutdown().await.expect("clean stop");
        until("the lease is released", || async {
            store.lease_holder(&name).await.expect("holder").is_none()
        })
        .await;
    });
    let stopped = json(
        &url,
        &["--schema", "shop", "subscription", "show", "mailer@v1"],
    );
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    let skipped = rt.block_on(send(&store, &["d@example.com", "e@example.com"]));
    let queued = json(
        &url,
        &[
            "--schema",
            "shop",
            "subscription",
            "reset",
            "mailer",
            "--to",
            "now",
        ],
    );
    assert_eq!(queued["applied"], false, "{queued}");
    let handle = start(&store, &mailer);
    let later = rt.block_on(async {
        let later = send(&store, &["f@example.com"]).await;
        handle
            .caught_up(Duration::from_secs(30))
            .await
            .expect("caught up");
        let ids: Vec<_> = mailed(&store).await.into_iter().map(|(id, _)| id).collect();
        assert!(ids.contains(&later[0]));
        assert!(
            !ids.contains(&skipped[0]) && !ids.contains(&skipped[1]),
            "history skipped"
        );
        later
    });

    // A rebuild while it runs: the read model emptied and replayed from the start.
    let rebuilt = json(
        &url,
        &[
            "--schema",
            "shop",
            "subscription",
            "rebuild",
            "mailer",
            "--watch",
        ],
    );
    assert_eq!(rebuilt["applied"], true, "{rebuilt}");
    assert_eq!(rebuilt["caught_up"], true, "{rebuilt}");
    rt.block_on(async {
        let mut expected: Vec<_> = sent
            .iter()
            .chain(&skipped)
            .chain(&later)
            .map(|id| (*id, 1))
            .collect();
        expected.sort();
        assert_eq!(mailed(&store).await, expected, "rebuilt: every event once");
        handle.shutdown().await.expect("clean stop");
    });
}

#[test]
fn unknown_subscriptions_and_letters_are_refused_and_change_nothing() {
    let cluster = TempCluster::start().expect("a private PostgreSQL cluster starts");
    let url = cluster.url();
    json(&url, &["--schema", "shop", "migrate"]);
    let id = uuid::Uuid::now_v7().to_string();
    for args in [
        vec!["subscription", "show", "nobody"],
        vec!["subscription", "rebuild", "nobody"],
        vec!["subscription", "reset", "nobody", "--to", "now"],
        vec!["dead-letters", "retry", "nobody", id.as_str()],
        vec!["dead-letters", "retry-all", "nobody"],
    ] {
        let said = fails(&url, &[&["--schema", "shop"], args.as_slice()].concat(), 1);
        assert!(said.contains("no subscription nobody"), "{args:?}: {said}");
    }
    let rt = runtime();
    let _context = rt.enter();
    let store = rt.block_on(async {
        let store = PgStore::connect(&url)
            .await
            .expect("connect")
            .with_schema("shop")
            .expect("schema");
        let name = SubscriptionName::new("mailer@v1").expect("valid");
        store
            .save_checkpoint(&name, cqrs_core::Position::START)
            .await
            .expect("checkpoint");
        store
    });
    let said = fails(
        &url,
        &["--schema", "shop", "dead-letters", "retry", "mailer", &id],
        1,
    );
    assert!(said.contains("has no parked dead letter"), "{said}");
    let said = fails(
        &url,
        &[
            "--schema",
            "shop",
            "subscription",
            "reset",
            "mailer",
            "--to",
            "12",
        ],
        1,
    );
    assert!(said.contains("not a position"), "{said}");
    let said = fails(
        &url,
        &[
            "--schema",
            "shop",
            "subscription",
            "reset",
            "mailer",
            "--to",
            "999999999.0",
        ],
        1,
    );
    assert!(said.contains("after the head of the log"), "{said}");
    // Dead letters a bus consumer parked (no checkpoint here): no runner would take a
    // request, so none is stored.
    let parked = rt.block_on(async {
        let shipping = SubscriptionName::new("shipping").expect("valid");
        let sent = send(&store, &["x@example.com"]).await;
        let event = store
            .read_all(
                cqrs_core::Position::START,
                10,
                &cqrs_core::EventFilter::all(),
            )
            .await
            .expect("read")
            .into_iter()
            .find(|e| e.event_id == sent[0])
            .expect("the event");
        store
            .park(&shipping, &event, "refused")
            .await
            .expect("park");
        sent[0].to_string()
    });
    let said = fails(
        &url,
        &["--schema", "shop", "subscription", "rebuild", "shipping"],
        1,
    );
    assert!(
        said.contains("only its dead letters can be retried"),
        "{said}"
    );
    rt.block_on(async {
        let name = SubscriptionName::new("mailer").expect("valid");
        assert!(
            store.requests(&name).await.expect("requests").is_empty(),
            "nothing stored"
        );
        let name = SubscriptionName::new("shipping").expect("valid");
        assert!(
            store.requests(&name).await.expect("requests").is_empty(),
            "nothing stored"
        );
    });
    // A retry is for the bus consumers of the name to claim; none runs here, so it is
    // said, and the request stays for them.
    let said = fails(
        &url,
        &[
            "--schema",
            "shop",
            "dead-letters",
            "retry",
            "shipping",
            &parked,
            "--wait",
            "1",
        ],
        1,
    );
    assert!(
        said.contains("no bus consumer of shipping took the retry request"),
        "{said}"
    );
    rt.block_on(async {
        let name = SubscriptionName::new("shipping").expect("valid");
        assert_eq!(
            store.requests(&name).await.expect("requests").len(),
            1,
            "queued"
        );
    });
}
