//! The engine's metrics after a scripted run: counts, read as a Prometheus scrape would.

use cqrs_core::{
    codec, Aggregate, DomainEvent, Engine, ExpectedVersion, Metadata, StreamId, StreamStore,
};
use cqrs_memory::MemoryStore;
use metrics_exporter_prometheus::PrometheusBuilder;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = Add, event = Added, error = TooMuch)]
struct Counter {
    total: u64,
}

#[derive(cqrs_core::Command)]
enum Add {
    Add { amount: u64 },
}

#[derive(Debug, Clone, PartialEq, DomainEvent)]
enum Added {
    Added { amount: u64 },
}

#[derive(Debug, thiserror::Error)]
#[error("too much")]
struct TooMuch;

impl Counter {
    async fn handle(&self, command: &Add, _: &()) -> Result<Vec<Added>, TooMuch> {
        let Add::Add { amount } = *command;
        match amount {
            0 => Ok(Vec::new()),
            a if a > 100 => Err(TooMuch),
            a => Ok(vec![Added::Added { amount: a }]),
        }
    }

    fn apply(&mut self, event: &Added) {
        let Added::Added { amount } = event;
        self.total += amount;
    }
}

fn add(amount: u64) -> Add {
    Add::Add { amount }
}

/// The value of `name{labels}` in `text`, 0 when absent.
fn sample(text: &str, name: &str, labels: &str) -> f64 {
    let wanted = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&wanted))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

// One thread: the recorder set for it sees everything the engine does.
#[tokio::test]
async fn the_engine_counts_outcomes_retries_appends_and_its_image_cache() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _recording = metrics::set_default_local_recorder(&recorder);
    let store = MemoryStore::new();
    // Room for one image: a second aggregate evicts the first.
    let engine = Engine::<Counter>::new(store.clone(), ()).with_image_cache(1);

    engine.execute("a", add(1)).await.expect("committed"); // miss
    engine.execute("a", add(2)).await.expect("committed"); // hit
    engine.execute("a", add(0)).await.expect("unchanged"); // hit
    assert!(engine.execute("a", add(500)).await.is_err()); // hit, refused
    engine.execute("b", add(1)).await.expect("committed"); // miss, evicts a
                                                           // Another writer moves `b` behind the engine's image: the next command conflicts
                                                           // on the image's version, reloads and commits on its second attempt.
    let behind = codec::encode(&Added::Added { amount: 5 }, Metadata::default()).expect("encode");
    let b = StreamId::new(Counter::TYPE, "b").expect("valid");
    store
        .append(&b, ExpectedVersion::Exact(1), vec![behind])
        .await
        .expect("append");
    engine
        .execute("b", add(1))
        .await
        .expect("committed after a retry"); // hit, then miss
    engine.execute("a", add(1)).await.expect("committed"); // miss, evicts b
                                                           // Hit, but the image is not at the version asked for: a miss reads the stream, whose
                                                           // version is not either.
    assert!(engine.execute_expecting("a", 1, add(1)).await.is_err());

    let text = handle.render();
    let by = |name: &str, labels: &str| sample(&text, name, labels);
    let outcome = |o: &str| {
        by(
            "cqrs_commands_total",
            &format!("aggregate=\"counter\",outcome=\"{o}\""),
        )
    };
    assert_eq!(outcome("committed"), 5.0, "{text}");
    assert_eq!(outcome("unchanged"), 1.0, "{text}");
    assert_eq!(outcome("refused"), 1.0, "{text}");
    assert_eq!(outcome("conflicted"), 1.0, "{text}");
    assert_eq!(outcome("failed"), 0.0, "{text}");
    let counter = "aggregate=\"counter\"";
    assert_eq!(by("cqrs_command_retries_total", counter), 1.0, "{text}");
    assert_eq!(by("cqrs_events_appended_total", counter), 5.0, "{text}");
    assert_eq!(
        by("cqrs_append_duration_seconds_count", counter),
        5.0,
        "{text}"
    );
    assert_eq!(by("cqrs_image_cache_hits_total", counter), 5.0, "{text}");
    // Counted per attempt: a retry after a conflict and a stale image's reload miss.
    assert_eq!(by("cqrs_image_cache_misses_total", counter), 5.0, "{text}");
    assert_eq!(
        by("cqrs_image_cache_evictions_total", counter),
        2.0,
        "{text}"
    );
}
