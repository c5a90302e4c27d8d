//! The relay and the consumers against a real nats-server (started by the tests; see
//! `cqrs_nats::testing`): every event reaches a consumer once and in stream order,
//! republishing is de-duplicated, an outage loses nothing, a poison event and foreign
//! messages are parked, a consumer that dies mid-batch gets its events again, and a
//! replicated stream survives the loss of a node.

mod common;

use std::time::Duration;

use common::*;
use cqrs_core::subscription::SubscriptionState;
use cqrs_core::{CheckpointStore, SubscriptionName};
use cqrs_memory::MemoryStore;
use cqrs_nats::async_nats;
use cqrs_nats::testing::{NatsCluster, NatsServer};
use cqrs_nats::EventStream;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn view_name() -> SubscriptionName {
    SubscriptionName::new("ledger_view").expect("valid")
}

/// Messages the JetStream stream holds.
async fn stored(jetstream: &async_nats::jetstream::Context) -> u64 {
    let mut stream = jetstream.get_stream("LEDGER").await.expect("stream");
    stream.info().await.expect("info").state.messages
}

#[test]
fn every_event_reaches_a_consumer_once_and_in_stream_order() {
    runtime().block_on(async {
        let server = NatsServer::start().await.expect("nats-server");
        let js = jetstream(&server.url()).await;
        let store = MemoryStore::new();
        let mut ids = Vec::new();
        for n in 0..6 {
            ids.extend(book(&store, &stream(&format!("s.{n} *>")), 1..=40).await);
        }
        let relay = relay(&store, js.clone(), events_stream());
        let view = LedgerView::default();
        let dead = MemoryStore::new();
        let consuming = consumer(js.clone(), events_stream(), &view, &dead).await;
        relay.caught_up(WAIT).await.expect("relay caught up");
        ids.extend(book(&store, &stream("late"), 1..=10).await);
        relay.caught_up(WAIT).await.expect("relay caught up");
        consuming.caught_up(WAIT).await.expect("consumer caught up");

        view.assert_exactly_once(&ids);
        assert_eq!(
            view.seen(|s| s.resets),
            1,
            "a new consumer resets its view once"
        );
        assert_eq!(stored(&js).await, ids.len() as u64);
        assert_eq!(consuming.status().handled, ids.len() as u64);
        assert!(dead.parked(&view_name()).await.expect("parked").is_empty());
        relay.shutdown().await.expect("relay");
        consuming.shutdown().await.expect("consumer");
    });
}

#[test]
fn a_relay_that_publishes_everything_again_reaches_consumers_once() {
    runtime().block_on(async {
        let server = NatsServer::start().await.expect("nats-server");
        let js = jetstream(&server.url()).await;
        let store = MemoryStore::new();
        let ids = book(&store, &stream("a"), 1..=50).await;
        let relay = relay(&store, js.clone(), events_stream());
        relay.caught_up(WAIT).await.expect("relay caught up");
        // As after a crash before the checkpoint moved: everything again.
        relay.rebuild();
        relay.caught_up(WAIT).await.expect("relay caught up again");
        assert_eq!(relay.status().delivered, 100, "published twice");
        assert_eq!(stored(&js).await, 50, "JetStream dropped the copies");

        let view = LedgerView::default();
        let consuming = consumer(js.clone(), events_stream(), &view, &MemoryStore::new()).await;
        consuming.caught_up(WAIT).await.expect("consumer caught up");
        view.assert_exactly_once(&ids);
        relay.shutdown().await.expect("relay");
        consuming.shutdown().await.expect("consumer");
    });
}

#[test]
fn a_relay_killed_mid_stream_and_started_again_loses_nothing_and_duplicates_nothing() {
    runtime().block_on(async {
        let server = NatsServer::start().await.expect("nats-server");
        let js = jetstream(&server.url()).await;
        let store = MemoryStore::new();
        let mut ids = Vec::new();
        for n in 0..20 {
            ids.extend(book(&store, &stream(&format!("s{n}")), 1..=100).await);
        }

        // The first relay's process dies while it publishes: its runtime is dropped in
        // the middle of the log, with publishes in flight and its checkpoint behind.
        let (url, first_store) = (server.url(), store.clone());
        let published_before = std::thread::spawn(move || {
            let first = runtime();
            first.block_on(async {
                let js = jetstream(&url).await;
                let _relay = relay(&first_store, js.clone(), events_stream());
                loop {
                    if let Ok(mut stream) = js.get_stream("LEDGER").await {
                        let held = stream.info().await.map_or(0, |i| i.state.messages);
                        // Mid-way through the second batch of 500: its checkpoint is at 500.
                        if held >= 750 {
                            return held;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        })
        .join()
        .expect("first relay");
        assert!(
            (750..2_000).contains(&published_before),
            "{published_before}"
        );

        let relay = relay(&store, js.clone(), events_stream());
        relay.caught_up(WAIT).await.expect("second relay caught up");
        if published_before < 1_000 {
            // It started from the first one's checkpoint (500): the events between were
            // published again, and JetStream dropped the copies.
            assert_eq!(relay.status().delivered, 1_500);
        }
        assert_eq!(stored(&js).await, 2_000, "every event once on the bus");
        let view = LedgerView::default();
        let consuming = consumer(js.clone(), events_stream(), &view, &MemoryStore::new()).await;
        consuming.caught_up(WAIT).await.expect("consumer caught up");
        view.assert_exactly_once(&ids);
        relay.shutdown().await.expect("relay");
        consuming.shutdown().await.expect("consumer");
    });
}

#[test]
fn the_relay_waits_out_a_broker_outage_and_loses_nothing() {
    runtime().block_on(async {
        let mut server = NatsServer::start().await.expect("nats-server");
        let js = jetstream(&server.url()).await;
        let store = MemoryStore::new();
        let mut ids = book(&store, &stream("a"), 1..=30).await;
        let relay = relay(&store, js.clone(), events_stream());
        relay.caught_up(WAIT).await.expect("relay caught up");

        server.stop().await;
        ids.extend(book(&store, &stream("a"), 31..=60).await);
        // The relay cannot publish: its status says so, and its checkpoint stays.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let status = relay.status();
            if status.state == SubscriptionState::Retrying {
                let error = status.last_error.unwrap_or_default();
                assert!(error.contains("bus unavailable"), "{error}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never retrying: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(relay.status().delivered, 30);

        server.restart().await.expect("restart");
        relay
            .caught_up(WAIT)
            .await
            .expect("relay caught up after the outage");
        let view = LedgerView::default();
        let consuming = consumer(js.clone(), events_stream(), &view, &MemoryStore::new()).await;
        consuming.caught_up(WAIT).await.expect("consumer caught up");
        view.assert_exactly_once(&ids);
        assert_eq!(stored(&js).await, 60);
        relay.shutdown().await.expect("relay");
        consuming.shutdown().await.expect("consumer");
    });
}

#[test]
fn a_poison_event_is_parked_after_its_attempts_the_rest_flows_and_a_retry_after_the_fix_applies_it_once(
) {
    runtime().block_on(async {
        let server = NatsServer::start().await.expect("nats-server");
        let js = jetstream(&server.url()).await;
        let store = MemoryStore::new();
        let ids = book(&store, &stream("a"), 1..=20).await;
        let relay = relay(&store, js.clone(), events_stream());
        let view = LedgerView {
            poison: Some(13),
            ..LedgerView::default()
        };
        let dead = MemoryStore::new();
        let consuming = consumer(js.clone(), events_stream(), &view, &dead).await;
        relay.caught_up(WAIT).await.expect("relay caught up");
        consuming.caught_up(WAIT).await.expect("consumer caught up");

        let parked = dead.parked(&view_name()).await.expect("parked");
        assert_eq!(parked.len(), 1);
        assert_eq!(parked[0].event.event_id, ids[12]);
        assert!(
            parked[0].error.contains("amount 13 is poison"),
            "{}",
            parked[0].error
        );
        let mut rest = ids.clone();
        rest.remove(12);
        view.assert_exactly_once(&rest);
        assert_eq!(consuming.status().parked, 1);
        retried_after_the_fix(&dead, &view, ids[12]).await;
        relay.shutdown().await.expect("relay");
        consuming.shutdown().await.expect("consumer");
    });
}

#[test]
fn foreign_messages_are_parked_with_a_typed_error_and_never_stop_the_consumer() {
    runtime().block_on(async {
        let server = NatsServer::start().await.expect("nats-server");
        let js = jetstream(&server.url()).await;
        let view = LedgerView::default();
        let dead = MemoryStore::new();
        let stream_settings = EventStream::new("LEDGER", "ledger").expect("valid");
        let consuming = consumer(js.clone(), stream_settings.clone(), &view, &dead).await;

        // A plain text message, JSON without CloudEvents headers, a CloudEvent from
        // another publisher, and one of ours of a version the view does not know.
        let subject = "ledger.0.other.x";
        js.publish(subject, "hello".into())
            .await
            .expect("publish")
            .await
            .expect("ack");
        js.publish(subject, r#"{"amount": 1}"#.into())
            .await
            .expect("publish")
            .await
            .expect("ack");
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("ce-specversion", "1.0");
        headers.insert("ce-id", "42");
        headers.insert("ce-type", "com.example.other");
        js.publish_with_headers(subject, headers, "{}".into())
            .await
            .expect("publish")
            .await
            .expect("ack");
        let store = MemoryStore::new();
        let unknown = cqrs_core::NewEvent::new(
            "Booked",
            99,
            serde_json::json!({"amount": 1}),
            cqrs_core::Metadata::default(),
        )
        .expect("valid");
        let written = cqrs_core::StreamStore::append(
            &store,
            &stream("u"),
            cqrs_core::ExpectedVersion::Any,
            vec![unknown],
        )
        .await
        .expect("append");
        let ids = book(&store, &stream("after"), [7]).await;
        let relay = relay(&store, js.clone(), stream_settings);
        relay.caught_up(WAIT).await.expect("relay caught up");
        consuming.caught_up(WAIT).await.expect("consumer caught up");

        let parked = dead.parked(&view_name()).await.expect("parked");
        let errors: Vec<&str> = parked.iter().map(|d| d.error.as_str()).collect();
        let count = |text: &str| errors.iter().filter(|e| e.contains(text)).count();
        assert_eq!(parked.len(), 4, "{errors:?}");
        assert_eq!(count("not a CloudEvent"), 2, "{errors:?}");
        assert_eq!(count("attribute `id` is invalid"), 1, "{errors:?}");
        let ours = parked
            .iter()
            .find(|d| d.event.event_id == written[0].event_id)
            .expect("the unknown version is parked as itself");
        assert!(ours.error.contains("v99"), "{}", ours.error);
        assert_eq!(consuming.status().parked, 4);
        view.assert_exactly_once(&ids);
        relay.shutdown().await.expect("relay");
        consuming.shutdown().await.expect("consumer");
    });
}

#[test]
fn a_consumer_that_dies_mid_batch_has_its_events_delivered_again() {
    runtime().block_on(async {
        let server = NatsServer::start().await.expect("nats-server");
        let js = jetstream(&server.url()).await;
        let store = MemoryStore::new();
        let ids = book(&store, &stream("a"), 1..=100).await;
        let one_partition = || EventStream::new("LEDGER", "ledger").expect("valid");
        let relay = relay(&store, js.clone(), one_partition());
        relay.caught_up(WAIT).await.expect("relay caught up");

        // The first consumer handles a few events, then its process "dies": the
        // runtime it runs on is dropped, with its fetched, unacknowledged messages.
        let view = LedgerView::default();
        let first = runtime();
        let (url, first_view) = (server.url(), view.clone());
        let handled = std::thread::spawn(move || {
            first.block_on(async {
                let js = jetstream(&url).await;
                let consuming = cqrs_nats::JetStreamConsumer::new(
                    js,
                    EventStream::new("LEDGER", "ledger").expect("valid"),
                    cqrs_core::subscription::Project::new(first_view.clone(), MemoryStore::new())
                        .expect("valid"),
                )
                .batch_size(20)
                .ack_wait(Duration::from_secs(1))
                .start()
                .await
                .expect("consumer starts");
                while consuming.status().handled < 10 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                consuming.status().handled
            })
            // `first` is dropped here: its tasks die mid-batch.
        })
        .join()
        .expect("first consumer");
        assert!(handled >= 10);

        let consuming = cqrs_nats::JetStreamConsumer::new(
            js.clone(),
            one_partition(),
            cqrs_core::subscription::Project::new(view.clone(), MemoryStore::new()).expect("valid"),
        )
        .batch_size(20)
        .ack_wait(Duration::from_secs(1))
        .start()
        .await
        .expect("second consumer starts");
        consuming
            .caught_up(WAIT)
            .await
            .expect("second consumer caught up");
        view.seen(|seen| {
            for id in &ids {
                assert!(
                    seen.applied.get(id).is_some_and(|&n| n >= 1),
                    "event {id} lost"
                );
            }
            let twice = seen.applied.values().filter(|&&n| n > 1).count();
            assert!(
                twice <= 20,
                "only the dead consumer's batch comes again: {twice}"
            );
        });
        relay.shutdown().await.expect("relay");
        consuming.shutdown().await.expect("consumer");
    });
}

#[test]
fn a_replicated_stream_loses_nothing_when_a_node_dies() {
    runtime().block_on(async {
        let mut cluster = NatsCluster::start(3).await.expect("cluster");
        let js = jetstream(&cluster.urls().join(",")).await;
        let settings = events_stream().replicas(3).expect("valid");
        let store = MemoryStore::new();
        let mut ids = book(&store, &stream("a"), 1..=50).await;
        let relay = relay(&store, js.clone(), settings.clone());
        relay.caught_up(WAIT).await.expect("relay caught up");

        cluster.kill(0).await;
        ids.extend(book(&store, &stream("a"), 51..=100).await);
        relay
            .caught_up(WAIT)
            .await
            .expect("relay caught up with a node down");
        let view = LedgerView::default();
        let consuming = consumer(js.clone(), settings, &view, &MemoryStore::new()).await;
        consuming.caught_up(WAIT).await.expect("consumer caught up");
        view.assert_exactly_once(&ids);
        relay.shutdown().await.expect("relay");
        consuming.shutdown().await.expect("consumer");
    });
}

#[test]
fn the_relay_publishes_only_what_can_still_be_read_of_personal_data() {
    use cqrs_core::personal::{PersonalValue, Subject};
    use cqrs_core::{ExpectedVersion, Metadata, NewEvent, StreamStore};
    const FORGOTTEN: &str = "Grace-Hopper-7f3a";
    const KEPT: &str = "Ada-Lovelace-5e1c";
    runtime().block_on(async {
        let server = NatsServer::start().await.expect("nats-server");
        let js = jetstream(&server.url()).await;
        let store = MemoryStore::new();
        for (id, name) in [("c-1", FORGOTTEN), ("c-2", KEPT)] {
            let event = NewEvent::new(
                "Registered",
                1,
                serde_json::json!({ "customer_id": id }),
                Metadata::default(),
            )
            .expect("valid")
            .with_personal(PersonalValue::new(
                Subject::new(id).expect("valid"),
                "name",
                serde_json::json!(name),
                serde_json::json!("[forgotten]"),
            ));
            store
                .append(&stream(id), ExpectedVersion::NoStream, vec![event])
                .await
                .expect("append");
        }
        let subject = Subject::new("c-1").expect("valid");
        store.forget_subject(&subject).await.expect("forget");

        let relay = relay(&store, js.clone(), events_stream());
        relay.caught_up(WAIT).await.expect("relay caught up");
        relay.shutdown().await.expect("relay");
        let on_the_bus = js.get_stream("LEDGER").await.expect("stream");
        let mut published = String::new();
        for sequence in 1..=stored(&js).await {
            let message = on_the_bus.get_raw_message(sequence).await.expect("message");
            published.push_str(&String::from_utf8_lossy(&message.payload));
            published.push_str(&format!("{:?}\n", message.headers));
        }
        assert_eq!(stored(&js).await, 2);
        assert!(!published.contains(FORGOTTEN), "{published}");
        assert!(published.contains("[forgotten]"), "{published}");
        assert!(
            published.contains(KEPT),
            "what can still be read is: {published}"
        );
        assert!(
            !published.contains("$personal"),
            "never the sealed form: {published}"
        );
    });
}
