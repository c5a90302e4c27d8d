//! The consumers' side: durable JetStream pull consumers feeding a listener.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::Context;
use async_nats::jetstream::AckKind;
use cqrs_core::bus::{
    serve_requests, HeaderNames, Receive, ReceivePolicy, ReceiveStatus, Received,
};
use cqrs_core::RetryPolicy;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::stream::token;
use crate::{ConsumerError, EventStream};

/// How often a consumer looks for operators' requests to retry its dead letters.
const REQUEST_INTERVAL: Duration = Duration::from_secs(1);

/// Feeds a listener from an [`EventStream`]: the bus side of the same
/// [`Project`](cqrs_core::subscription::Project) or
/// [`React`](cqrs_core::subscription::React) that a subscription would run, on a host
/// that needs only the bus.
///
/// Each partition it serves is one durable pull consumer, named after the listener and
/// its version (`NAME-vVERSION-pPARTITION`), that JetStream remembers across restarts.
/// A task per partition fetches a batch, hands each message to the listener in order
/// ([`Receive::receive`]: decode, handle, retry in place, park what still fails or is not
/// an event), and acknowledges the batch (its last message, with JetStream's "ack all"
/// policy) once every message of it took effect or was parked. Its dead letters are
/// handed to the listener again when an operator asks (`cqrs dead-letters retry`; see
/// [`serve_requests`](cqrs_core::bus::serve_requests)). A process that dies
/// mid-batch leaves the whole batch unacknowledged, and JetStream delivers it again (to
/// this process when it restarts, or to another, after the ack wait): at least once, so
/// a listener sees again what it handled before the crash (a transactional projection
/// recognises it and applies nothing). Keep the ack wait above a batch's handling time.
///
/// **Order.** A consumer allows one batch unacknowledged at a time (its `max_ack_pending`
/// is the batch size, and nothing is acknowledged before the batch ends), and a failing
/// event is retried where it stands, so the events of a stream (all in one partition) are
/// handled in order, also when several processes serve the same partitions: JetStream
/// hands the next batch to whichever asks, never two at once, and redelivers a dead
/// consumer's batch before anything newer. Several processes share the work
/// by partition: give the stream as many partitions as processes you want busy at once.
///
/// **Versions.** A listener whose consumer does not exist yet (a new listener, a new
/// version) is reset first, then fed the stream from its first message that JetStream
/// still keeps.
///
/// ```no_run
/// # async fn demo<P: cqrs_core::Projection + Clone>(view: P) -> Result<(), Box<dyn std::error::Error>> {
/// use cqrs_core::subscription::Project;
/// use cqrs_nats::{EventStream, JetStreamConsumer};
///
/// let client = async_nats::connect("nats://127.0.0.1:4222").await?;
/// let stream = EventStream::new("ORDERS", "orders")?.partitions(4)?;
/// // Dead letters are kept in a checkpoint store of the consumer's own.
/// let dead_letters = cqrs_memory::MemoryStore::new();
/// let running = JetStreamConsumer::new(
///     async_nats::jetstream::new(client),
///     stream,
///     Project::new(view, dead_letters)?,
/// )
/// .start()
/// .await?;
/// // ...
/// running.shutdown().await?;
/// # Ok(()) }
/// ```
pub struct JetStreamConsumer {
    jetstream: Context,
    stream: EventStream,
    receiver: Arc<dyn Receive>,
    policy: ReceivePolicy,
    batch: usize,
    ack_wait: Duration,
    idle_wait: Duration,
    setup_timeout: Duration,
    partitions: Option<Vec<u32>>,
}

impl JetStreamConsumer {
    /// Feeds `receiver` from `stream`, on every partition, with batches of 100, 5 attempts
    /// per failing event (pauses from 100 ms), a delivery limit of 5, and an ack wait of 30
    /// seconds.
    pub fn new(jetstream: Context, stream: EventStream, receiver: impl Receive) -> Self {
        Self {
            jetstream,
            stream,
            receiver: Arc::new(receiver),
            policy: ReceivePolicy::new(HeaderNames::NATS),
            batch: 100,
            ack_wait: Duration::from_secs(30),
            idle_wait: Duration::from_secs(1),
            setup_timeout: Duration::from_secs(30),
            partitions: None,
        }
    }

    /// Messages per fetch, and the most unacknowledged per partition (at least 1).
    pub fn batch_size(mut self, messages: usize) -> Self {
        self.batch = messages.max(1);
        self
    }

    /// Attempts at a failing event, in place, before it is parked.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.policy.retry = retry;
        self
    }

    /// Deliveries by JetStream after which an event is parked without another attempt.
    pub fn delivery_limit(mut self, deliveries: u64) -> Self {
        self.policy.delivery_limit = deliveries.max(1);
        self
    }

    /// How long JetStream waits for an acknowledgement before delivering a message again:
    /// the longest a dead consumer holds its partition. Keep it above the retries' total
    /// pause.
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait;
        self
    }

    /// The longest a fetch waits for messages when there are none.
    pub fn idle_wait(mut self, wait: Duration) -> Self {
        self.idle_wait = wait;
        self
    }

    /// How long [`start`](Self::start) keeps trying to set up (30 seconds by default).
    pub fn setup_timeout(mut self, timeout: Duration) -> Self {
        self.setup_timeout = timeout;
        self
    }

    /// Serves only these partitions (the others are left to other processes).
    pub fn only_partitions(mut self, partitions: impl IntoIterator<Item = u32>) -> Self {
        self.partitions = Some(partitions.into_iter().collect());
        self
    }

    /// The durable consumer's name for `partition`.
    fn durable(&self, partition: u32) -> String {
        let identity = self.receiver.identity();
        format!(
            "{}-v{}-p{partition}",
            token(identity.name().as_str()),
            identity.version()
        )
    }

    /// Creates the stream if it is missing, the durable consumers (resetting the listener
    /// when none of them existed yet), and starts a task per partition.
    ///
    /// JetStream requests that fail (a server restarting, a cluster electing a leader)
    /// are tried again with growing pauses for up to
    /// [`setup_timeout`](Self::setup_timeout); then the last error is returned.
    pub async fn start(self) -> Result<ConsumerHandle, ConsumerError> {
        let deadline = tokio::time::Instant::now() + self.setup_timeout;
        let mut attempt = 0;
        let consumers = loop {
            attempt += 1;
            match self.set_up().await {
                Ok(set_up) => break set_up,
                Err(error @ ConsumerError::JetStream { .. })
                    if tokio::time::Instant::now() < deadline =>
                {
                    tracing::warn!(%error, attempt, "bus consumer setting up again");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(error) => return Err(error),
            }
        };
        let (stop, stopped) = watch::channel(false);
        let counts = Arc::new(Mutex::new(ReceiveStatus::default()));
        let mut tasks = JoinSet::new();
        tasks.spawn(serve_requests(
            Arc::clone(&self.receiver),
            REQUEST_INTERVAL,
            stopped.clone(),
        ));
        for consumer in &consumers {
            tasks.spawn(
                Partition {
                    consumer: consumer.clone(),
                    receiver: Arc::clone(&self.receiver),
                    policy: self.policy,
                    batch: self.batch,
                    idle_wait: self.idle_wait,
                    status: Arc::clone(&counts),
                }
                .run(stopped.clone()),
            );
        }
        Ok(ConsumerHandle {
            stop,
            tasks,
            consumers,
            status: counts,
        })
    }

    /// The stream, the reset if due, and one durable consumer per partition served.
    async fn set_up(&self) -> Result<Vec<PullConsumer>, ConsumerError> {
        let jetstream_error =
            |what: String| move |source| ConsumerError::JetStream { what, source };
        // Created here too when the relay has not run yet, with the same settings: the
        // relay updates it later if they differ.
        let stream = self
            .jetstream
            .get_or_create_stream(self.stream.config())
            .await
            .map_err(|e| jetstream_error(format!("stream {}", self.stream.name()))(e.into()))?;
        let partitions = self
            .partitions
            .clone()
            .unwrap_or_else(|| (0..self.stream.partition_count()).collect());
        let mut existing = Vec::new();
        let mut names = stream.consumer_names();
        while let Some(name) = names.next().await {
            existing.push(name.map_err(|e| jetstream_error("consumer names".into())(e.into()))?);
        }
        let ours: Vec<String> = partitions.iter().map(|&p| self.durable(p)).collect();
        if !ours.iter().any(|name| existing.contains(name)) {
            self.receiver.reset().await.map_err(ConsumerError::Reset)?;
        }
        let mut consumers = Vec::new();
        for (&partition, durable) in partitions.iter().zip(ours) {
            let config = PullConfig {
                durable_name: Some(durable.clone()),
                filter_subject: self.stream.partition_subjects(partition),
                ack_policy: AckPolicy::All,
                ack_wait: self.ack_wait,
                max_ack_pending: self.batch as i64,
                deliver_policy: DeliverPolicy::All,
                ..PullConfig::default()
            };
            let consumer: PullConsumer = stream
                .get_or_create_consumer(&durable, config)
                .await
                .map_err(|e| jetstream_error(format!("consumer {durable}"))(e.into()))?;
            consumers.push(consumer);
        }
        Ok(consumers)
    }
}

/// A running [`JetStreamConsumer`].
pub struct ConsumerHandle {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    consumers: Vec<PullConsumer>,
    status: Arc<Mutex<ReceiveStatus>>,
}

impl ConsumerHandle {
    /// What it did so far.
    pub fn status(&self) -> ReceiveStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until every partition's consumer has nothing left: no message pending in
    /// the stream for it and none unacknowledged (read-your-writes for tests, a drain
    /// before a deploy). Gives up after `timeout`.
    pub async fn caught_up(&self, timeout: Duration) -> Result<(), ConsumerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut done = true;
            for consumer in &self.consumers {
                let info = consumer
                    .get_info()
                    .await
                    .map_err(|e| ConsumerError::JetStream {
                        what: "consumer info".into(),
                        source: e.into(),
                    })?;
                done &= info.num_pending == 0 && info.num_ack_pending == 0;
            }
            if done {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ConsumerError::NotCaughtUp(timeout));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops fetching, finishes the message each partition is on, and waits for the
    /// tasks. Messages fetched and not yet handled stay unacknowledged: JetStream
    /// delivers them again to the next consumer.
    pub async fn shutdown(mut self) -> Result<(), ConsumerError> {
        let _ = self.stop.send(true);
        while let Some(ended) = self.tasks.join_next().await {
            ended.map_err(|e| ConsumerError::Task(e.to_string()))?;
        }
        Ok(())
    }
}

/// One partition's loop.
struct Partition {
    consumer: PullConsumer,
    receiver: Arc<dyn Receive>,
    policy: ReceivePolicy,
    batch: usize,
    idle_wait: Duration,
    status: Arc<Mutex<ReceiveStatus>>,
}

impl Partition {
    fn record(&self, update: impl FnOnce(&mut ReceiveStatus)) {
        update(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }

    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut troubles: u32 = 0;
        while !*stopped.borrow() {
            let fetched = self
                .consumer
                .fetch()
                .max_messages(self.batch)
                .expires(self.idle_wait)
                .messages()
                .await;
            let mut batch = match fetched {
                Ok(batch) => batch,
                Err(error) => {
                    troubles += 1;
                    self.trouble(format!("fetching: {error}"), troubles, &mut stopped)
                        .await;
                    continue;
                }
            };
            // The last message that took effect (or was parked), acknowledged with all
            // before it when the batch ends: acknowledging one by one would free room
            // for newer messages while older ones of a dead consumer's batch still wait
            // for their redelivery, and a stream's events would come out of order.
            let mut settled = None;
            let mut failed = Vec::new();
            loop {
                let next = tokio::select! {
                    next = batch.next() => next,
                    _ = stopped.changed() => None,
                };
                let Some(message) = next else { break };
                let message = match message {
                    Ok(message) => message,
                    Err(error) => {
                        troubles += 1;
                        self.trouble(format!("receiving: {error}"), troubles, &mut stopped)
                            .await;
                        break;
                    }
                };
                if !failed.is_empty() || !self.one(&message).await {
                    // This one and the rest of the batch come again, in order.
                    failed.push(message);
                    continue;
                }
                settled = Some(message);
            }
            if let Some(last) = settled {
                if let Err(error) = last.ack().await {
                    // Handled but not acknowledged: delivered again (at-least-once).
                    self.record(|s| s.last_error = Some(format!("acknowledging: {error}")));
                }
            }
            if failed.is_empty() {
                troubles = 0;
            } else {
                troubles += 1;
                let pause = backoff(troubles);
                for message in failed {
                    let _ = message.ack_with(AckKind::Nak(Some(pause))).await;
                }
            }
        }
    }

    /// Hands one message to the listener; `false` when it must be delivered again.
    async fn one(&self, message: &async_nats::jetstream::Message) -> bool {
        let delivered = message
            .info()
            .map_or(1, |info| info.delivered.max(1) as u64);
        let headers: Vec<(String, String)> = message
            .headers
            .iter()
            .flat_map(|map| map.iter())
            .flat_map(|(name, values)| {
                values
                    .iter()
                    .map(move |value| (name.to_string(), value.as_str().to_owned()))
            })
            .collect();
        let received = Received {
            origin: message.subject.as_str(),
            headers: &headers,
            payload: &message.payload,
            delivered,
        };
        match self.receiver.receive(received, &self.policy).await {
            Ok(settled) => {
                self.record(|s| s.settled(&settled));
                true
            }
            Err(error) => {
                tracing::warn!(%error, "store failed: the message will come again");
                self.record(|s| s.last_error = Some(format!("store: {error}")));
                false
            }
        }
    }

    /// Records a failure of the bus and pauses before trying again (or until stopped).
    async fn trouble(&self, error: String, troubles: u32, stopped: &mut watch::Receiver<bool>) {
        tracing::warn!(%error, attempt = troubles, "bus consumer retrying");
        self.record(|s| s.last_error = Some(error));
        tokio::select! {
            _ = tokio::time::sleep(backoff(troubles)) => {}
            _ = stopped.changed() => {}
        }
    }
}

/// Pauses that grow from 100 ms to 5 s.
fn backoff(troubles: u32) -> Duration {
    Duration::from_millis(100)
        .saturating_mul(1 << troubles.min(6))
        .min(Duration::from_secs(5))
}
