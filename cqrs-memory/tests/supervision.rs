//! A subscription whose task is cancelled (its runtime shut down) says so in its status at
//! once, instead of reporting the state it was in when it died.

use std::convert::Infallible;
use std::time::Duration;

use cqrs_core::subscription::{Project, Subscription, SubscriptionError, SubscriptionState};
use cqrs_core::{DomainEvent, Envelope, ExpectedVersion, Metadata, Projection, StreamStore};
use cqrs_memory::MemoryStore;

#[derive(Debug, Clone, PartialEq, DomainEvent)]
enum Tick {
    Ticked,
}

#[derive(Clone, Default, Projection)]
#[projection(event = Tick, error = Infallible)]
struct Ticks;

impl Ticks {
    async fn handle(&self, _: &Envelope<Tick>) -> Result<(), Infallible> {
        Ok(())
    }

    async fn reset(&self) -> Result<(), Infallible> {
        Ok(())
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_subscription_whose_runtime_shuts_down_is_failed_at_once() {
    let store = MemoryStore::new();
    let first = runtime();
    let running = first.block_on(async {
        let stream = cqrs_core::StreamId::new("tick", "1").expect("valid");
        let event = cqrs_core::codec::encode(&Tick::Ticked, Metadata::default()).expect("encode");
        store
            .append(&stream, ExpectedVersion::NoStream, vec![event])
            .await
            .expect("append");
        let running = Subscription::new(
            store.clone(),
            Project::new(Ticks, store.clone()).expect("valid names"),
        )
        .start();
        running
            .caught_up(Duration::from_secs(10))
            .await
            .expect("caught up");
        running
    });
    assert_eq!(running.status().state, SubscriptionState::Live);
    // Shutting the runtime down drops the runner's task where it waits.
    drop(first);

    let status = running.status();
    assert_eq!(status.state, SubscriptionState::Failed);
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("cancelled")),
        "{status:?}"
    );
    runtime().block_on(async {
        let waited = tokio::time::timeout(
            Duration::from_secs(1),
            running.caught_up(Duration::from_secs(10)),
        )
        .await
        .expect("caught_up answers at once");
        assert!(
            matches!(
                waited,
                Err(SubscriptionError::NotRunning {
                    state: SubscriptionState::Failed,
                    ..
                })
            ),
            "{waited:?}"
        );
        match running.shutdown().await {
            Err(SubscriptionError::Aborted { name, message }) => {
                assert_eq!(name, "ticks");
                assert_eq!(message, "cancelled");
            }
            other => panic!("expected the cancellation, got {other:?}"),
        }
    });
}
