//! What the two bus workloads share (7, NATS JetStream, in `nats.rs`; 8, Kafka, in
//! `kafka.rs`): the settings both sides of each measurement keep, the stored events, the
//! order of the sides, and the two projections the consumers feed.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cqrs_core::{
    Envelope, EventFilter, EventLog as _, ExpectedVersion, Listener, Position, Projection,
    StoredEvent, StreamId, StreamStore as _,
};
use cqrs_memory::MemoryStore;
use tokio::sync::Notify;

use crate::domain::{self, Account};
use crate::memory::account_events;
use crate::report::{Row, Samples, Unit};
use crate::BenchError;

/// The relay's default `max_in_flight`, which the raw publishers keep too.
pub const IN_FLIGHT: usize = 256;

/// The relay's subscription batch: events per read, per publish round and per
/// checkpoint.
pub const RELAY_BATCH: usize = 500;

/// The consumers' batch (NATS: messages per fetch and `max_ack_pending`, on both sides).
pub const CONSUMER_BATCH: usize = 100;

/// How long any wait may take before the benchmark gives up.
pub const WAIT: Duration = Duration::from_secs(600);

/// Events appended, not recorded, before the latency samples: the first fetch, the
/// first relay batch and the connection's buffers are set-up, not the steady state.
pub const WARM_UP: usize = 5;

/// Stores `count` events in `streams` account streams, appended 20 at a time in
/// round-robin over the streams (so that consecutive events of the log are on different
/// subjects, as in an application). Returns them in global order.
pub async fn fill(
    store: &MemoryStore,
    count: usize,
    streams: usize,
) -> Result<Vec<Arc<StoredEvent>>, BenchError> {
    const CHUNK: usize = 20;
    let ids: Vec<StreamId> = (0..streams)
        .map(|n| StreamId::new(<Account as cqrs_core::Aggregate>::TYPE, &format!("bus-{n}")))
        .collect::<Result<_, _>>()?;
    let mut versions = vec![1_u64; streams];
    let mut written = 0;
    let mut n = 0;
    while written < count {
        let size = CHUNK.min(count - written);
        let at = n % streams;
        store
            .append(
                &ids[at],
                ExpectedVersion::Any,
                account_events(versions[at], size as u64)?,
            )
            .await?;
        versions[at] += size as u64;
        written += size;
        n += 1;
    }
    let events = store
        .read_all(Position::START, count + 1, &EventFilter::all())
        .await?;
    if events.len() != count {
        return Err(BenchError::Check(format!(
            "the store holds {} events, not {count}",
            events.len()
        )));
    }
    Ok(events)
}

/// The framework first in even repetitions, the raw side first in odd ones, so that
/// neither always runs on the warmer (or the more loaded) machine. `true` is the
/// framework.
pub fn sides(rep: usize) -> [bool; 2] {
    if rep.is_multiple_of(2) {
        [true, false]
    } else {
        [false, true]
    }
}

/// The p50 and p99 of each repetition's latencies; the rows show the median, min and max
/// of those over the repetitions.
#[derive(Default)]
pub struct Percentiles {
    p50: Samples,
    p99: Samples,
}

impl Percentiles {
    /// One repetition's latencies, in microseconds.
    pub fn add(&mut self, mut latencies: Vec<f64>) {
        latencies.sort_by(f64::total_cmp);
        self.p50.push(percentile(&latencies, 0.50));
        self.p99.push(percentile(&latencies, 0.99));
    }

    /// The p50 and the p99 rows.
    pub fn push_rows(self, label: &str, backend: &'static str, rows: &mut Vec<Row>) {
        for (name, samples) in [
            ("append→handler p50 (no raw)", self.p50),
            ("append→handler p99 (no raw)", self.p99),
        ] {
            rows.push(Row::new(
                label,
                backend,
                name,
                Unit::MicrosPerEvent,
                samples,
            ));
        }
    }
}

/// The nearest-rank percentile `p` (0 to 1) of sorted `samples`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The latencies of one repetition, in microseconds: [`WARM_UP`] then `count` events
/// appended to `store` one after the other, each from the clock read just before its
/// append to the instant `probe`'s handler recorded it. A relay from `store` and a bus
/// consumer feeding `probe` must be running.
pub async fn latencies(
    store: &MemoryStore,
    probe: &Probe,
    count: usize,
) -> Result<Vec<f64>, BenchError> {
    let streams: Vec<StreamId> = (0..10)
        .map(|n| StreamId::new(<Account as cqrs_core::Aggregate>::TYPE, &format!("lat-{n}")))
        .collect::<Result<_, _>>()?;
    let mut latencies = Vec::with_capacity(count);
    for i in 0..WARM_UP + count {
        let events = account_events(2, 1)?;
        let target = &streams[i % streams.len()];
        let start = Instant::now();
        let stored = store.append(target, ExpectedVersion::Any, events).await?;
        let id = stored
            .first()
            .map(|event| event.event_id)
            .ok_or_else(|| BenchError::Check("an append stored nothing".to_owned()))?;
        let handled = probe.wait_for(id).await?;
        if i >= WARM_UP {
            latencies.push(handled.saturating_duration_since(start).as_secs_f64() * 1e6);
        }
    }
    Ok(latencies)
}

/// The projection of the latency measurements (7.2, 8.2): records when its handler saw each event, and wakes the
/// benchmark.
#[derive(Clone, Default)]
pub struct Probe {
    seen: Arc<Mutex<HashMap<uuid::Uuid, Instant>>>,
    notify: Arc<Notify>,
}

impl Probe {
    /// When the handler saw event `id`: waits for it.
    pub async fn wait_for(&self, id: uuid::Uuid) -> Result<Instant, BenchError> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let seen = self
                .seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
            if let Some(at) = seen {
                return Ok(at);
            }
            // `notify_one` keeps a permit when nobody waits: a handler that ran between
            // the look and this wait is not missed.
            if tokio::time::timeout_at(deadline, self.notify.notified())
                .await
                .is_err()
            {
                return Err(BenchError::Check(format!(
                    "event {id} did not reach the consumer in {WAIT:?}"
                )));
            }
        }
    }
}

impl Listener for Probe {
    const NAME: &'static str = "bench_bus_latency";
    type Event = domain::AccountEvent;
    type Error = std::convert::Infallible;
}

impl Projection for Probe {
    async fn handle(&self, event: &Envelope<Self::Event>) -> Result<(), Self::Error> {
        let now = Instant::now();
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(event.event_id, now);
        self.notify.notify_one();
        Ok(())
    }

    async fn reset(&self) -> Result<(), Self::Error> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        Ok(())
    }
}

/// The projection of the consumer measurements (7.3, 8.3): counts, and wakes the benchmark when it has `target` events,
/// so that the consumer measures the consumer (fetch, decode, deliver, acknowledge)
/// rather than a read model.
#[derive(Clone)]
pub struct Counting {
    count: Arc<AtomicUsize>,
    target: usize,
    done: Arc<Notify>,
}

impl Counting {
    pub fn new(target: usize) -> Self {
        Self {
            count: Arc::new(AtomicUsize::new(0)),
            target,
            done: Arc::new(Notify::new()),
        }
    }

    /// Waits until the handler has counted `target` events.
    pub async fn reached(&self) -> Result<(), BenchError> {
        tokio::time::timeout(WAIT, self.done.notified())
            .await
            .map_err(|_| {
                BenchError::Check(format!(
                    "the consumer handled {} of {} events in {WAIT:?}",
                    self.count.load(Ordering::Relaxed),
                    self.target
                ))
            })
    }
}

impl Listener for Counting {
    const NAME: &'static str = "bench_bus_count";
    type Event = domain::AccountEvent;
    type Error = std::convert::Infallible;
}

impl Projection for Counting {
    async fn handle(&self, _event: &Envelope<Self::Event>) -> Result<(), Self::Error> {
        if self.count.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            // A permit is kept if the benchmark is not waiting yet.
            self.done.notify_one();
        }
        Ok(())
    }

    async fn reset(&self) -> Result<(), Self::Error> {
        self.count.store(0, Ordering::Relaxed);
        Ok(())
    }
}

/// A running bus consumer, as the consumer measurements (7.3, 8.3) use it.
pub(crate) trait Running {
    /// Events handled and settled so far.
    fn handled(&self) -> u64;
    /// Waits until the broker agrees that nothing is left.
    async fn caught_up(&self) -> Result<(), BenchError>;
    /// Stops it.
    async fn shutdown(self) -> Result<(), BenchError>;
}

impl Running for cqrs_nats::ConsumerHandle {
    fn handled(&self) -> u64 {
        self.status().handled
    }
    async fn caught_up(&self) -> Result<(), BenchError> {
        Ok(cqrs_nats::ConsumerHandle::caught_up(self, WAIT).await?)
    }
    async fn shutdown(self) -> Result<(), BenchError> {
        Ok(cqrs_nats::ConsumerHandle::shutdown(self).await?)
    }
}

impl Running for cqrs_kafka::KafkaConsumerHandle {
    fn handled(&self) -> u64 {
        self.status().handled
    }
    async fn caught_up(&self) -> Result<(), BenchError> {
        Ok(cqrs_kafka::KafkaConsumerHandle::caught_up(self, WAIT).await?)
    }
    async fn shutdown(self) -> Result<(), BenchError> {
        Ok(cqrs_kafka::KafkaConsumerHandle::shutdown(self).await?)
    }
}

/// The framework's side of a consumer measurement: the time from calling `start` (the
/// consumer's own start-up included) until the consumer has handled and settled the
/// `count`-th event, which `counting` (the consumer's projection) counts. Then, not
/// timed, that the broker agrees, and that exactly `count` events were handled.
pub async fn framework_consume<R, S>(
    counting: &Counting,
    count: usize,
    start: S,
) -> Result<Duration, BenchError>
where
    R: Running,
    S: Future<Output = Result<R, BenchError>>,
{
    let started = Instant::now();
    let running = start.await?;
    let measured = async {
        counting.reached().await?;
        // The handler has counted the last event; the consumer settles it (ack,
        // commit), then counts it as handled: a few instructions later, without an
        // await that waits for anything but this task's turn.
        while running.handled() < count as u64 {
            tokio::task::yield_now().await;
        }
        let elapsed = started.elapsed();
        running.caught_up().await?;
        Ok::<_, BenchError>(elapsed)
    }
    .await;
    let handled = running.handled();
    running.shutdown().await?;
    let elapsed = measured?;
    if handled != count as u64 {
        return Err(BenchError::Check(format!(
            "the consumer handled {handled} events, not {count}"
        )));
    }
    Ok(elapsed)
}
