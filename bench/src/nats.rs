//! Workload 7, the bus: cqrs-core's [`Relay`] publishing through cqrs-nats'
//! [`JetStreamPublisher`], and cqrs-nats' [`JetStreamConsumer`], against a real
//! `nats-server` with JetStream that the benchmark starts itself
//! ([`NatsServer`], feature `testing` of cqrs-nats: 127.0.0.1, a free port, a temporary
//! store directory, killed when done).
//!
//! The events are in a [`MemoryStore`], so that the database is not what is measured:
//! what is left is the relay (read the log, encode CloudEvents, publish, await the acks,
//! save the checkpoint), the consumer (fetch, decode, handle, acknowledge) and JetStream.
//!
//! Three measurements, each repetition on a fresh JetStream stream (a new name, so that
//! nothing is de-duplicated across repetitions, deleted after use so that every stream
//! has the same subjects):
//!
//! 1. **Relay throughput** ([`relay_throughput`]): the relay publishing N stored events,
//!    against the async-nats client publishing the very same messages.
//! 2. **End-to-end latency** ([`latency`]): one append at a time, until the consumer's
//!    projection has it. No raw side.
//! 3. **Consumer throughput** ([`consumer_throughput`]): a consumer reading N messages
//!    already in a stream into a counting projection, against a bare async-nats pull
//!    consumer fetching and acknowledging them.
//!
//! The streams use file storage, as in production (the default of [`EventStream`]; the
//! server's store is in a temporary directory on the local disk): with nats-server's
//! default sync interval that is the page cache, not an fsync per message. Memory
//! storage ([`EventStream::in_memory`]) was tried and gave no steadier figures (two
//! trial runs each on a busy 2-core machine, where the spread came from the machine),
//! so it is not used.
//!
//! The streams have one partition, so that each consumer side is exactly one durable
//! pull consumer (the raw side's shape); more partitions would run one consumer task per
//! partition on the framework's side and would need as many raw consumers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cqrs_core::bus::{BusMessage, ContentMode, HeaderNames, Publisher as _, Relay};
use cqrs_core::subscription::Project;
use cqrs_core::{StoredEvent, Subscription};
use cqrs_memory::MemoryStore;
use cqrs_nats::async_nats;
use cqrs_nats::async_nats::jetstream::consumer::pull::Config as PullConfig;
use cqrs_nats::async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use cqrs_nats::async_nats::jetstream::context::{Context, PublishAckFuture};
use cqrs_nats::async_nats::jetstream::message::PublishMessage;
use cqrs_nats::testing::NatsServer;
use cqrs_nats::{EventStream, JetStreamConsumer, JetStreamPublisher};
use futures::StreamExt as _;

use crate::bus::{
    self, fill, latencies, sides, Counting, Percentiles, Probe, CONSUMER_BATCH, IN_FLIGHT,
    RELAY_BATCH, WAIT, WARM_UP,
};
use crate::report::{self, Row, Samples, Target, Unit};
use crate::{BenchError, Sizes};

const BACKEND: &str = "nats";

/// The subject prefix of every stream. Streams are used one at a time and deleted
/// after use, so they all take the same subjects (JetStream refuses two streams with
/// overlapping subjects).
const PREFIX: &str = "bench";

/// The longest a fetch waits when there is nothing to fetch, on both sides.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// Runs workload 7; returns a description of the server for the header.
pub async fn run(sizes: &Sizes, rows: &mut Vec<Row>) -> Result<String, BenchError> {
    let server = NatsServer::start().await?;
    let client = async_nats::connect(server.url()).await?;
    let version = client.server_info().version;
    let mut bus = Bus {
        jetstream: async_nats::jetstream::new(client),
        next: 0,
    };
    let store = MemoryStore::new();
    let events = fill(&store, sizes.bus_events, sizes.bus_streams).await?;
    let label = format!(
        "7 bus, {} events in {} streams",
        report::count(events.len() as f64),
        sizes.bus_streams
    );
    relay_throughput(&mut bus, &store, &events, sizes.reps, &label, rows).await?;
    latency(&mut bus, sizes, rows).await?;
    consumer_throughput(&mut bus, &store, events.len(), sizes.reps, &label, rows).await?;
    drop(server);
    Ok(format!(
        "nats-server {version} (JetStream, file storage), same machine"
    ))
}

/// The JetStream context, and the number of the next fresh stream.
struct Bus {
    jetstream: Context,
    next: u32,
}

impl Bus {
    /// A stream of a name not used before in this run (`BENCH_<kind>_<n>`), created
    /// (through the publisher's own `prepare`, so with exactly the settings the relay
    /// would give it) before any clock starts.
    async fn fresh_stream(&mut self, kind: &str) -> Result<EventStream, BenchError> {
        self.next += 1;
        let stream = EventStream::new(&format!("BENCH_{kind}_{}", self.next), PREFIX)?;
        JetStreamPublisher::new(self.jetstream.clone(), stream.clone())
            .prepare()
            .await?;
        Ok(stream)
    }

    /// The number of messages `stream` holds.
    async fn stored(&self, stream: &EventStream) -> Result<u64, BenchError> {
        let info = self
            .jetstream
            .get_stream(stream.name())
            .await
            .map_err(nats("get stream"))?
            .get_info()
            .await
            .map_err(nats("stream info"))?;
        Ok(info.state.messages)
    }

    /// Checks that `stream` holds `expected` messages, then deletes it.
    async fn check_and_delete(
        &self,
        stream: &EventStream,
        expected: usize,
    ) -> Result<(), BenchError> {
        let stored = self.stored(stream).await?;
        if stored != expected as u64 {
            return Err(BenchError::Check(format!(
                "stream {} holds {stored} messages, not {expected}",
                stream.name()
            )));
        }
        self.jetstream
            .delete_stream(stream.name())
            .await
            .map_err(nats("delete stream"))?;
        Ok(())
    }

    /// Runs a relay named `name` from the start of `store`'s log into `stream`, from
    /// [`Subscription::start`] until `caught_up` (the lease, the relay's own `prepare`,
    /// every batch's publishes, acks and checkpoint, and the final lag count included),
    /// then shuts it down (not timed). Returns the time.
    async fn relay(
        &self,
        store: &MemoryStore,
        stream: &EventStream,
        name: &str,
    ) -> Result<Duration, BenchError> {
        let publisher = JetStreamPublisher::new(self.jetstream.clone(), stream.clone());
        let subscription =
            Subscription::new(store.clone(), Relay::new(name, publisher, store.clone())?)
                .batch_size(RELAY_BATCH);
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

/// A JetStream request's failure, with what was asked.
fn nats<E: Into<async_nats::Error>>(what: &'static str) -> impl FnOnce(E) -> BenchError {
    move |source| BenchError::Nats {
        what,
        source: source.into(),
    }
}

/// Workload 7.1: relay throughput, in events per second.
///
/// **Framework**: [`Bus::relay`] over the N stored events, a relay with the defaults
/// (binary content mode, 256 messages in flight), batches of 500.
///
/// **Raw**, in the same run, repetitions interleaved (and the order alternated): the
/// async-nats client publishing the same N messages, byte for byte: each event encoded
/// with `BusMessage::encode(event, ContentMode::Binary, HeaderNames::NATS)` as the relay
/// does, on `stream.subject(&event.stream)`, with the event id as `Nats-Msg-Id`, at most
/// 256 acknowledgements in flight and every one awaited in publish order (the relay's
/// acknowledgement settings), on the same connection and JetStream context, into a
/// fresh stream with the same settings. The CloudEvents encoding is done before its
/// clock starts; building each client message (header map, payload, id) is inside it,
/// as for any publisher: the raw side is the least a client must do to put those
/// messages into JetStream, so the ratio shows everything the relay adds (reading the
/// log, encoding, its per-batch drain of the acknowledgements, checkpoints, lease and
/// status).
///
/// Both streams are created before the clocks start and checked to hold N messages
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
        .map(|event| BusMessage::encode(event, ContentMode::Binary, HeaderNames::NATS))
        .collect();
    let count = events.len() as f64;
    let mut framework = Samples::default();
    let mut raw = Samples::default();
    for rep in 0..reps {
        for side in sides(rep) {
            if side {
                let stream = bus.fresh_stream("RELAY").await?;
                let name = format!("bench_relay_{}", bus.next);
                let elapsed = bus.relay(store, &stream, &name).await?;
                framework.push(count / elapsed.as_secs_f64());
                bus.check_and_delete(&stream, events.len()).await?;
            } else {
                let stream = bus.fresh_stream("RAW_PUB").await?;
                let elapsed = raw_publish(&bus.jetstream, &stream, &messages).await?;
                raw.push(count / elapsed.as_secs_f64());
                bus.check_and_delete(&stream, events.len()).await?;
            }
        }
    }
    rows.push(
        Row::new(
            label,
            BACKEND,
            "relay store→JetStream",
            Unit::EventsPerSec,
            framework,
        )
        .with_raw(raw)
        .with_target(Target::RawRatio(0.8)),
    );
    Ok(())
}

/// The raw side of 7.1: publishes `messages` into `stream` as any async-nats publisher
/// of them would: it turns each message's headers and payload (given as the text the
/// relay sends, encoded before the clock) into the client's message, publishes it with
/// its `Nats-Msg-Id`, and awaits the acknowledgements, at most 256 in flight. Building
/// the client's message is inside the clock, as it is for every publisher; turning a
/// stored event into that text (the CloudEvents encoding) is not, because that is the
/// framework's work the ratio is meant to show.
async fn raw_publish(
    jetstream: &Context,
    stream: &EventStream,
    messages: &[BusMessage],
) -> Result<Duration, BenchError> {
    let subjects: Vec<String> = messages.iter().map(|m| stream.subject(&m.stream)).collect();
    let ids: Vec<String> = messages.iter().map(|m| m.id.to_string()).collect();
    let start = Instant::now();
    let mut pending: VecDeque<PublishAckFuture> = VecDeque::with_capacity(IN_FLIGHT);
    for ((message, subject), id) in messages.iter().zip(subjects).zip(&ids) {
        if pending.len() >= IN_FLIGHT {
            if let Some(ack) = pending.pop_front() {
                ack.await.map_err(nats("publish ack"))?;
            }
        }
        let mut headers = async_nats::HeaderMap::new();
        for (name, value) in &message.headers {
            headers.insert(name.as_ref(), value.as_str());
        }
        let publish = PublishMessage::build()
            .payload(message.payload.clone().into())
            .headers(headers)
            .message_id(id);
        pending.push_back(
            jetstream
                .send_publish(subject, publish)
                .await
                .map_err(nats("publish"))?,
        );
    }
    while let Some(ack) = pending.pop_front() {
        ack.await.map_err(nats("publish ack"))?;
    }
    Ok(start.elapsed())
}

/// Workload 7.2: end-to-end latency, append → the consumer's handler, in microseconds
/// per event, p50 and p99 of each repetition (the rows show the median, min and max of
/// those over the repetitions).
///
/// Per repetition: a fresh store and stream, a relay (batches of 500) and a
/// [`JetStreamConsumer`] (batches of 100, fetches that wait at most 100 ms) running, a
/// few warm-up events; then M times, one after the other: the event is encoded, the
/// clock read, the event appended to the store, and the time taken when the
/// projection's handler records that event id (inside the handler, so the benchmark's
/// own wake-up is not counted). The memory store wakes the relay on append, so no
/// polling interval is in the figure; everything else (the relay's read, publish and
/// ack, JetStream, the consumer's fetch, decode and handler) is.
///
/// There is no raw side: a raw figure would be a NATS round trip, which is a different
/// thing from a store-to-read-model latency, not a bound on it.
async fn latency(bus: &mut Bus, sizes: &Sizes, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    let mut percentiles = Percentiles::default();
    for _ in 0..sizes.reps {
        percentiles.add(latency_once(bus, sizes.bus_latency_events).await?);
    }
    let label = format!(
        "7 bus, {} appends one at a time",
        report::count(sizes.bus_latency_events as f64)
    );
    percentiles.push_rows(&label, BACKEND, rows);
    Ok(())
}

/// One repetition of 7.2: `count` latencies in microseconds.
async fn latency_once(bus: &mut Bus, count: usize) -> Result<Vec<f64>, BenchError> {
    let store = MemoryStore::new();
    let stream = bus.fresh_stream("LATENCY").await?;
    let publisher = JetStreamPublisher::new(bus.jetstream.clone(), stream.clone());
    let relay = Subscription::new(
        store.clone(),
        Relay::new(
            &format!("bench_relay_{}", bus.next),
            publisher,
            store.clone(),
        )?,
    )
    .batch_size(RELAY_BATCH)
    .start();
    let probe = Probe::default();
    let consumer = JetStreamConsumer::new(
        bus.jetstream.clone(),
        stream.clone(),
        Project::new(probe.clone(), MemoryStore::new())?,
    )
    .batch_size(CONSUMER_BATCH)
    .idle_wait(IDLE_WAIT)
    .start()
    .await?;
    let measured = latencies(&store, &probe, count).await;
    let relay_stopped = relay.shutdown().await;
    let consumer_stopped = consumer.shutdown().await;
    let latencies = measured?;
    relay_stopped?;
    consumer_stopped?;
    bus.check_and_delete(&stream, WARM_UP + count).await?;
    Ok(latencies)
}

/// Workload 7.3: consumer throughput, in events per second.
///
/// Each repetition, each side gets a fresh stream that the relay has filled with the N
/// stored events beforehand (not timed).
///
/// **Framework**: from [`JetStreamConsumer::start`] (which looks the stream up, lists
/// its consumers, resets the projection and creates the durable consumer) with batches
/// of 100, feeding a [`Project`] of a counting projection, until the consumer has
/// handled and acknowledged the N-th message (`status().handled` is N).
///
/// **Raw**, same run, repetitions interleaved: from looking the stream up and creating a
/// durable pull consumer with the same filter (the partition's subjects), explicit
/// acknowledgement, `max_ack_pending` 100 and the same ack wait, fetching batches of 100
/// (waiting at most 100 ms, as the framework's fetches) and acknowledging each message,
/// until the N-th is acknowledged. It decodes nothing: the ratio is what the
/// framework's per-message work (headers, CloudEvent decode, typed event decode, the
/// handler call, the status) costs against the bare protocol.
///
/// Both clocks stop when the client has sent the last acknowledgement; then, not timed,
/// each side checks that JetStream agrees (nothing pending, nothing unacknowledged:
/// `caught_up`, and the same question asked by hand on the raw side). Timing up to that
/// answer instead would add a race of 0 to 20 ms (`caught_up` asks every 20 ms, and
/// JetStream may answer before it has processed the last acknowledgement) to figures
/// of about 300 ms, which the raw side, asking sooner after its last ack, lost more
/// often in trial runs.
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
            let stream = bus.fresh_stream("CONSUME").await?;
            bus.relay(store, &stream, &format!("bench_relay_{}", bus.next))
                .await?;
            let elapsed = if side {
                framework_consume(&bus.jetstream, &stream, count).await?
            } else {
                raw_consume(&bus.jetstream, &stream, count).await?
            };
            let samples = if side { &mut framework } else { &mut raw };
            samples.push(count as f64 / elapsed.as_secs_f64());
            bus.check_and_delete(&stream, count).await?;
        }
    }
    rows.push(
        Row::new(
            label,
            BACKEND,
            "consumer JetStream→projection",
            Unit::EventsPerSec,
            framework,
        )
        .with_raw(raw),
    );
    Ok(())
}

/// The framework's side of 7.3.
async fn framework_consume(
    jetstream: &Context,
    stream: &EventStream,
    count: usize,
) -> Result<Duration, BenchError> {
    let counting = Counting::new(count);
    let consumer = JetStreamConsumer::new(
        jetstream.clone(),
        stream.clone(),
        Project::new(counting.clone(), MemoryStore::new())?,
    )
    .batch_size(CONSUMER_BATCH)
    .idle_wait(IDLE_WAIT);
    bus::framework_consume(&counting, count, async { Ok(consumer.start().await?) }).await
}

/// The raw side of 7.3.
async fn raw_consume(
    jetstream: &Context,
    stream: &EventStream,
    count: usize,
) -> Result<Duration, BenchError> {
    let config = PullConfig {
        durable_name: Some("bench_raw_consumer".to_owned()),
        // The subjects of partition 0, the only one (`PREFIX.PARTITION.TYPE.ID`).
        filter_subject: format!("{PREFIX}.0.>"),
        ack_policy: AckPolicy::Explicit,
        // `JetStreamConsumer`'s default.
        ack_wait: Duration::from_secs(30),
        max_ack_pending: CONSUMER_BATCH as i64,
        deliver_policy: DeliverPolicy::All,
        ..PullConfig::default()
    };
    let start = Instant::now();
    let consumer: PullConsumer = jetstream
        .get_stream(stream.name())
        .await
        .map_err(nats("get stream"))?
        .create_consumer(config)
        .await
        .map_err(nats("create consumer"))?;
    let mut acked = 0;
    while acked < count {
        let mut batch = consumer
            .fetch()
            .max_messages(CONSUMER_BATCH)
            .expires(IDLE_WAIT)
            .messages()
            .await
            .map_err(nats("fetch"))?;
        while let Some(message) = batch.next().await {
            let message = message.map_err(nats("receive"))?;
            message.ack().await.map_err(nats("ack"))?;
            acked += 1;
        }
    }
    let elapsed = start.elapsed();
    // Not timed, as on the framework's side: that JetStream agrees.
    loop {
        let info = consumer.get_info().await.map_err(nats("consumer info"))?;
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            break;
        }
        if start.elapsed() > WAIT {
            return Err(BenchError::Check(format!(
                "the raw consumer was not caught up in {WAIT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(elapsed)
}
