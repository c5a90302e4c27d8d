//! Workload 8, the bus on Kafka: cqrs-core's [`Relay`] publishing through cqrs-kafka's
//! [`KafkaPublisher`], and cqrs-kafka's [`KafkaConsumer`], against a real tansu broker
//! (Kafka protocol) that the benchmark starts itself ([`KafkaBroker`], feature `testing`
//! of cqrs-kafka: 127.0.0.1, a free port, a temporary directory, killed when done).
//!
//! The same three measurements as workload 7 (`nats.rs`), on the same stored events
//! ([`fill`]), each repetition on a fresh topic of one partition (so that each consumer
//! side is one group member reading one partition):
//!
//! 1. **Relay throughput** ([`relay_throughput`]): the relay publishing N stored events,
//!    against rdkafka's `FutureProducer` publishing the very same messages.
//! 2. **End-to-end latency** ([`latency`]): one append at a time, until the consumer's
//!    projection has it. No raw side.
//! 3. **Consumer throughput** ([`consumer_throughput`]): a consumer group member reading
//!    N messages already in a topic into a counting projection, against a bare
//!    `StreamConsumer` receiving and committing them.
//!
//! The broker keeps its data in SQLite (`sqlite://`, a file in its temporary directory),
//! as in the tests. Its memory storage was tried: it counts a batch of records as one
//! offset (a topic given 200 messages in a few produce requests had a high watermark of
//! 1), so what it holds cannot be checked. Neither is Kafka's own log, so the absolute
//! figures say more about tansu than about Kafka; the ratios are what the framework
//! adds to the client.
//! Both sides use librdkafka's defaults for what they do not set (linger, batch sizes,
//! fetch waits): the relay's producer differs from a bare one only in what
//! [`KafkaPublisher::with_config`] sets, which the raw producer sets too.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cqrs_core::bus::{BusMessage, ContentMode, HeaderNames, Publisher as _, Relay};
use cqrs_core::subscription::Project;
use cqrs_core::{StoredEvent, Subscription};
use cqrs_kafka::rdkafka::config::ClientConfig;
use cqrs_kafka::rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use cqrs_kafka::rdkafka::error::KafkaError;
use cqrs_kafka::rdkafka::message::{Header, OwnedHeaders};
use cqrs_kafka::rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use cqrs_kafka::testing::{broker_binary, KafkaBroker, Storage};
use cqrs_kafka::{EventTopic, KafkaConsumer, KafkaPublisher};
use cqrs_memory::MemoryStore;

use crate::bus::{
    self, fill, latencies, sides, Counting, Percentiles, Probe, IN_FLIGHT, RELAY_BATCH, WAIT,
};
use crate::report::{self, Row, Samples, Target, Unit};
use crate::{BenchError, Sizes};

const BACKEND: &str = "kafka";

/// How long a metadata request of the benchmark's own may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs workload 8; returns a description of the broker for the header.
pub async fn run(sizes: &Sizes, rows: &mut Vec<Row>) -> Result<String, BenchError> {
    let version = broker_version()?;
    let label = |count: usize| {
        format!(
            "8 bus, {} events in {} streams",
            report::count(count as f64),
            sizes.bus_streams
        )
    };
    // A broker for each measurement: tansu's SQLite storage slows down as it fills (its
    // consumers were seen to stall after the relay measurement's topics), and each
    // measurement is to see the broker as the first one did.
    let (broker, mut bus) = Bus::start().await?;
    let store = MemoryStore::new();
    let events = fill(&store, sizes.kafka_relay_events, sizes.bus_streams).await?;
    let relayed = label(events.len());
    relay_throughput(&mut bus, &store, &events, sizes.reps, &relayed, rows).await?;
    drop(broker);
    let (broker, mut bus) = Bus::start().await?;
    latency(&mut bus, sizes, rows).await?;
    drop(broker);
    let (broker, mut bus) = Bus::start().await?;
    let store = MemoryStore::new();
    let count = fill(&store, sizes.kafka_events, sizes.bus_streams)
        .await?
        .len();
    consumer_throughput(&mut bus, &store, count, sizes.reps, &label(count), rows).await?;
    drop(broker);
    Ok(format!(
        "{version} (Kafka protocol, SQLite storage), same machine"
    ))
}

/// What the broker binary says of its version (`tansu 0.6.0`).
fn broker_version() -> Result<String, BenchError> {
    let output = std::process::Command::new(broker_binary()?)
        .arg("--version")
        .output()?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// A Kafka request's failure, with what was asked.
fn kafka(what: &'static str) -> impl FnOnce(KafkaError) -> BenchError {
    move |source| BenchError::Kafka { what, source }
}

/// The broker's address, and the number of the next fresh topic.
struct Bus {
    bootstrap: String,
    next: u32,
}

impl Bus {
    /// A fresh broker (SQLite storage), and the bus on it.
    async fn start() -> Result<(KafkaBroker, Self), BenchError> {
        let broker = KafkaBroker::start_with(Storage::Sqlite).await?;
        let bus = Self {
            bootstrap: broker.bootstrap(),
            next: 0,
        };
        Ok((broker, bus))
    }

    /// A topic of a name not used before in this run (`bench-<kind>-<n>`), created
    /// (through the publisher's own `prepare`, so with exactly the settings the relay
    /// would give it) before any clock starts.
    async fn fresh_topic(&mut self, kind: &str) -> Result<EventTopic, BenchError> {
        self.next += 1;
        let topic = EventTopic::new(&format!("bench-{kind}-{}", self.next))?;
        self.publisher(&topic)?.prepare().await?;
        Ok(topic)
    }

    fn publisher(&self, topic: &EventTopic) -> Result<KafkaPublisher, BenchError> {
        KafkaPublisher::new(&self.bootstrap, topic.clone()).map_err(kafka("producer"))
    }

    /// A producer with the settings [`KafkaPublisher`] gives its own (idempotent,
    /// acks=all, the murmur2 partitioner) and nothing else.
    fn raw_producer(&self) -> Result<FutureProducer, BenchError> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .create()
            .map_err(kafka("producer"))
    }

    /// Checks that `topic` (one partition, fresh, nothing deleted) holds `expected`
    /// messages: its high watermark.
    async fn check(&self, topic: &EventTopic, expected: usize) -> Result<(), BenchError> {
        let producer = self.raw_producer()?;
        let name = topic.name().to_owned();
        let (_, high) = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_watermarks(&name, 0, REQUEST_TIMEOUT)
        })
        .await?
        .map_err(kafka("watermarks"))?;
        if high != expected as i64 {
            return Err(BenchError::Check(format!(
                "topic {} holds {high} messages, not {expected}",
                topic.name(),
            )));
        }
        Ok(())
    }

    /// Runs a relay named `name` from the start of `store`'s log into `topic`, from
    /// [`Subscription::start`] until `caught_up` (the lease, the relay's own `prepare`,
    /// every batch's publishes, acks and checkpoint, and the final lag count included),
    /// then shuts it down (not timed). Its producer is created before the clock, as the
    /// raw side's is; both connect inside it. Returns the time.
    async fn relay(
        &self,
        store: &MemoryStore,
        topic: &EventTopic,
        name: &str,
    ) -> Result<Duration, BenchError> {
        let relay = Relay::new(name, self.publisher(topic)?, store.clone())?;
        let subscription = Subscription::new(store.clone(), relay).batch_size(RELAY_BATCH);
        let start = Instant::now();
        let running = subscription.start();
        let caught_up = running.caught_up(WAIT).await;
        let elapsed = start.elapsed();
        let stopped = running.shutdown().await;
        caught_up?;
        stopped?;
        Ok(elapsed)
    }
}

/// Workload 8.1: relay throughput, in events per second.
///
/// **Framework**: [`Bus::relay`] over the N stored events, a relay with the defaults
/// (binary content mode, 256 messages in flight), batches of 500.
///
/// **Raw**, in the same run, repetitions interleaved (and the order alternated): a
/// `FutureProducer` with the relay's producer settings publishing the same N messages,
/// byte for byte (each event encoded with `BusMessage::encode(event,
/// ContentMode::Binary, HeaderNames::KAFKA)` before the clock, as the relay encodes it),
/// keyed by `topic.key(&event.stream)`, at most 256 deliveries in flight and every one
/// awaited in publish order (the relay's acknowledgement settings), into a fresh topic
/// with the same settings. Inside its clock: connecting, the topic's metadata (one
/// request, as the relay's `prepare` makes), building each record and its headers,
/// sending, awaiting the deliveries. The ratio shows everything the relay adds
/// (reading the log, the CloudEvents encoding, its per-batch drain of the deliveries,
/// `prepare`'s admin request, checkpoints, lease and status).
///
/// Both topics are created before the clocks start and checked to hold N messages
/// after.
async fn relay_throughput(
    bus: &mut Bus,
    store: &MemoryStore,
    events: &[Arc<StoredEvent>],
    reps: usize,
    label: &str,
    rows: &mut Vec<Row>,
) -> Result<(), BenchError> {
    let messages: Vec<BusMessage> = events
        .iter()
        .map(|event| BusMessage::encode(event, ContentMode::Binary, HeaderNames::KAFKA))
        .collect();
    let count = events.len() as f64;
    let mut framework = Samples::default();
    let mut raw = Samples::default();
    for rep in 0..reps {
        for side in sides(rep) {
            if side {
                let topic = bus.fresh_topic("relay").await?;
                let name = format!("bench_relay_{}", bus.next);
                let elapsed = bus.relay(store, &topic, &name).await?;
                framework.push(count / elapsed.as_secs_f64());
                bus.check(&topic, events.len()).await?;
            } else {
                let topic = bus.fresh_topic("raw-pub").await?;
                let producer = bus.raw_producer()?;
                let elapsed = raw_publish(&producer, &topic, &messages).await?;
                raw.push(count / elapsed.as_secs_f64());
                bus.check(&topic, events.len()).await?;
            }
        }
    }
    rows.push(
        Row::new(
            label,
            BACKEND,
            "relay store→Kafka",
            Unit::EventsPerSec,
            framework,
        )
        .with_raw(raw)
        .with_target(Target::RawRatio(0.8)),
    );
    Ok(())
}

/// The raw side of 8.1: publishes `messages` into `topic` as any rdkafka publisher of
/// them would, at most 256 deliveries in flight.
async fn raw_publish(
    producer: &FutureProducer,
    topic: &EventTopic,
    messages: &[BusMessage],
) -> Result<Duration, BenchError> {
    let keys: Vec<String> = messages.iter().map(|m| topic.key(&m.stream)).collect();
    let start = Instant::now();
    // The topic's metadata first, as the relay's `prepare` asks for it: without it
    // librdkafka learns the topic from its first send, a wait of its own.
    let (lookup, name) = (producer.clone(), topic.name().to_owned());
    tokio::task::spawn_blocking(move || {
        lookup.client().fetch_metadata(Some(&name), REQUEST_TIMEOUT)
    })
    .await?
    .map_err(kafka("metadata"))?;
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::with_capacity(IN_FLIGHT);
    for (message, key) in messages.iter().zip(&keys) {
        if pending.len() >= IN_FLIGHT {
            if let Some(delivery) = pending.pop_front() {
                delivered(delivery).await?;
            }
        }
        let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
        for (name, value) in &message.headers {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
        let record = FutureRecord::to(topic.name())
            .key(key)
            .payload(&message.payload)
            .headers(headers);
        let delivery = producer
            .send_result(record)
            .map_err(|(error, _)| kafka("send")(error))?;
        pending.push_back(delivery);
    }
    while let Some(delivery) = pending.pop_front() {
        delivered(delivery).await?;
    }
    Ok(start.elapsed())
}

/// Awaits one delivery report.
async fn delivered(delivery: DeliveryFuture) -> Result<(), BenchError> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((error, _))) => Err(kafka("delivery")(error)),
        Err(_) => Err(BenchError::Check(
            "the producer dropped a delivery report".to_owned(),
        )),
    }
}

/// Workload 8.2: end-to-end latency, append → the consumer's handler, in microseconds
/// per event, p50 and p99 of each repetition.
///
/// Per repetition: a fresh store and topic, a relay (batches of 500) and a
/// [`KafkaConsumer`] running, a few warm-up events (which also wait out the consumer's
/// joining its group); then M times, one after the other, as in 7.2 ([`latencies`]).
/// The producer's batching wait (librdkafka's `linger.ms`, 5 ms by default) and the
/// consumer's fetches are in the figure, as a user of the defaults would see them.
async fn latency(bus: &mut Bus, sizes: &Sizes, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    let mut percentiles = Percentiles::default();
    for _ in 0..sizes.reps {
        percentiles.add(latency_once(bus, sizes.kafka_latency_events).await?);
    }
    let label = format!(
        "8 bus, {} appends one at a time",
        report::count(sizes.kafka_latency_events as f64)
    );
    percentiles.push_rows(&label, BACKEND, rows);
    Ok(())
}

/// One repetition of 8.2: `count` latencies in microseconds.
async fn latency_once(bus: &mut Bus, count: usize) -> Result<Vec<f64>, BenchError> {
    let store = MemoryStore::new();
    let topic = bus.fresh_topic("latency").await?;
    let relay = Relay::new(
        &format!("bench_relay_{}", bus.next),
        bus.publisher(&topic)?,
        store.clone(),
    )?;
    let relay = Subscription::new(store.clone(), relay)
        .batch_size(RELAY_BATCH)
        .start();
    let probe = Probe::default();
    let consumer = KafkaConsumer::new(
        &bus.bootstrap,
        topic.clone(),
        Project::new(probe.clone(), MemoryStore::new())?,
    )
    .start()
    .await?;
    let measured = latencies(&store, &probe, count).await;
    let relay_stopped = relay.shutdown().await;
    let consumer_stopped = consumer.shutdown().await;
    let latencies = measured?;
    relay_stopped?;
    consumer_stopped?;
    bus.check(&topic, crate::bus::WARM_UP + count).await?;
    Ok(latencies)
}

/// Workload 8.3: consumer throughput, in events per second.
///
/// Each repetition, each side gets a fresh topic that the relay has filled with the N
/// stored events beforehand (not timed).
///
/// **Framework**: from [`KafkaConsumer::start`] (which makes sure of the topic, asks
/// the group's committed offsets, resets the projection and subscribes) feeding a
/// [`Project`] of a counting projection, until the consumer has handled the N-th
/// message and committed it (`status().handled` is N).
///
/// **Raw**, same run, repetitions interleaved: from creating a `StreamConsumer` with the
/// settings `KafkaConsumer` gives its own (a group of its own, no auto-commit, from the
/// earliest offset) and subscribing, receiving each message and committing it
/// (asynchronously, as the framework does), until the N-th. It decodes nothing: the
/// ratio is what the framework's per-message work (headers, CloudEvent decode, typed
/// event decode, the handler call, the status) and its start-up requests cost against
/// the bare client.
///
/// Both clocks stop when the client has committed the last message; then, not timed,
/// the framework's side checks that the group agrees (`caught_up`).
async fn consumer_throughput(
    bus: &mut Bus,
    store: &MemoryStore,
    count: usize,
    reps: usize,
    label: &str,
    rows: &mut Vec<Row>,
) -> Result<(), BenchError> {
    let mut framework = Samples::default();
    let mut raw = Samples::default();
    for rep in 0..reps {
        for side in sides(rep) {
            let topic = bus.fresh_topic("consume").await?;
            bus.relay(store, &topic, &format!("bench_relay_{}", bus.next))
                .await?;
            let elapsed = if side {
                framework_consume(&bus.bootstrap, &topic, count).await?
            } else {
                raw_consume(&bus.bootstrap, &topic, bus.next, count).await?
            };
            let samples = if side { &mut framework } else { &mut raw };
            samples.push(count as f64 / elapsed.as_secs_f64());
        }
    }
    rows.push(
        Row::new(
            label,
            BACKEND,
            "consumer Kafka→projection",
            Unit::EventsPerSec,
            framework,
        )
        .with_raw(raw),
    );
    Ok(())
}

/// The framework's side of 8.3.
async fn framework_consume(
    bootstrap: &str,
    topic: &EventTopic,
    count: usize,
) -> Result<Duration, BenchError> {
    let counting = Counting::new(count);
    let consumer = KafkaConsumer::new(
        bootstrap,
        topic.clone(),
        Project::new(counting.clone(), MemoryStore::new())?,
    );
    bus::framework_consume(&counting, count, async { Ok(consumer.start().await?) }).await
}

/// The raw side of 8.3, in the group `bench_raw_consumer-<n>`.
async fn raw_consume(
    bootstrap: &str,
    topic: &EventTopic,
    n: u32,
    count: usize,
) -> Result<Duration, BenchError> {
    let start = Instant::now();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("bench_raw_consumer-{n}"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(kafka("consumer"))?;
    consumer
        .subscribe(&[topic.name()])
        .map_err(kafka("subscribe"))?;
    let mut committed = 0;
    while committed < count {
        let message = tokio::time::timeout(WAIT, consumer.recv())
            .await
            .map_err(|_| {
                BenchError::Check(format!(
                    "the raw consumer received {committed} of {count} messages in {WAIT:?}"
                ))
            })?
            .map_err(kafka("receive"))?;
        consumer
            .commit_message(&message, CommitMode::Async)
            .map_err(kafka("commit"))?;
        committed += 1;
    }
    let elapsed = start.elapsed();
    consumer.unsubscribe();
    Ok(elapsed)
}
