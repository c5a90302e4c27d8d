//! The consumers' side: a consumer group feeding a listener.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cqrs_core::bus::{
    serve_requests, HeaderNames, Receive, ReceivePolicy, ReceiveStatus, Received,
};
use cqrs_core::RetryPolicy;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{ConsumerError, EventTopic};

/// How long a request of the consumer's own (offsets, watermarks, a seek) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a consumer looks for operators' requests to retry its dead letters.
const REQUEST_INTERVAL: Duration = Duration::from_secs(1);

/// Feeds a listener from an [`EventTopic`] as a member of a Kafka consumer group: the
/// bus side of the same [`Project`](cqrs_core::subscription::Project) or
/// [`React`](cqrs_core::subscription::React) that a subscription would run, on a host
/// that needs only the brokers.
///
/// The group is named after the listener and its version (`NAME-vVERSION`): Kafka
/// shares the topic's partitions out among the group's members (processes), and keeps
/// the group's committed offsets across restarts. Each message is handed to the listener
/// in order ([`Receive::receive`]: decode, handle, retry in place, park what still fails
/// or is not an event), then its offset is committed. A failure of the consumer's own
/// store commits nothing and seeks back to the message, which comes again after a pause.
/// Its dead letters are handed to the listener again when an operator asks (`cqrs
/// dead-letters retry`; see [`serve_requests`](cqrs_core::bus::serve_requests)).
///
/// **Order.** A stream's events are in one partition (the key is the stream), and a
/// partition is handled by one member at a time, message after message. When the group
/// rebalances (a member joins or dies), a partition's new owner starts after its last
/// committed offset: what the previous owner handled but had not committed comes again
/// (at least once).
///
/// **Copies.** Kafka's idempotent producer writes a retried send once, within one
/// producer's life; a relay that restarts publishes again what it had not checkpointed,
/// and Kafka keeps those copies. A [`Transactional`](https://docs.rs/cqrs-postgres)
/// projection recognises them (per stream, by version); an in-memory projection sees them
/// again, as it would after any redelivery.
///
/// **Versions.** A group with no committed offset (a new listener, a new version) resets
/// the listener first, then reads the topic from its earliest message that Kafka keeps.
///
/// **Delivery limit.** Kafka does not count deliveries, so an event is parked by its
/// failures in place ([`retry`](Self::retry)), not by how often a consumer died on it.
pub struct KafkaConsumer {
    config: ClientConfig,
    topic: EventTopic,
    receiver: Arc<dyn Receive>,
    policy: ReceivePolicy,
}

impl KafkaConsumer {
    /// Feeds `receiver` from `topic` on the brokers of `bootstrap` (`host:port,...`),
    /// with 5 attempts per failing event (pauses from 100 ms).
    pub fn new(bootstrap: &str, topic: EventTopic, receiver: impl Receive) -> Self {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", bootstrap);
        Self::with_config(config, topic, receiver)
    }

    /// The same, with the client settings of `config` (security, session timeouts), on
    /// which it sets the group and its commits' own (`group.id`, `enable.auto.commit=false`,
    /// `auto.offset.reset=earliest`).
    pub fn with_config(config: ClientConfig, topic: EventTopic, receiver: impl Receive) -> Self {
        Self {
            config,
            topic,
            receiver: Arc::new(receiver),
            policy: ReceivePolicy::new(HeaderNames::KAFKA),
        }
    }

    /// Attempts at a failing event, in place, before it is parked.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.policy.retry = retry;
        self
    }

    /// The consumer group's id.
    pub fn group(&self) -> String {
        let identity = self.receiver.identity();
        format!("{}-v{}", identity.name(), identity.version())
    }

    /// Creates the topic if it is missing, joins the group (resetting the listener when
    /// the group has committed nothing yet), and starts consuming.
    pub async fn start(self) -> Result<KafkaConsumerHandle, ConsumerError> {
        let group = self.group();
        let mut config = self.config.clone();
        config
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false");
        let consumer: StreamConsumer = config.create().map_err(ConsumerError::kafka("consumer"))?;
        let consumer = Arc::new(consumer);
        let lookup = Arc::clone(&consumer);
        self.topic
            .ensure(
                move |name, timeout| lookup.fetch_metadata(Some(name), timeout),
                &config,
            )
            .await
            .map_err(ConsumerError::kafka(format!("topic {}", self.topic.name())))?;
        let committed = committed(&consumer, &self.topic).await?;
        if committed.iter().all(|offset| offset.is_none()) {
            self.receiver.reset().await.map_err(ConsumerError::Reset)?;
        }
        consumer
            .subscribe(&[self.topic.name()])
            .map_err(ConsumerError::kafka(format!(
                "subscribe to {}",
                self.topic.name()
            )))?;
        let (stop, stopped) = watch::channel(false);
        let status = Arc::new(Mutex::new(ReceiveStatus::default()));
        let task = tokio::spawn(
            Member {
                consumer: Arc::clone(&consumer),
                receiver: Arc::clone(&self.receiver),
                policy: self.policy,
                status: Arc::clone(&status),
            }
            .run(stopped),
        );
        let requests = tokio::spawn(serve_requests(
            Arc::clone(&self.receiver),
            REQUEST_INTERVAL,
            stop.subscribe(),
        ));
        Ok(KafkaConsumerHandle {
            stop,
            task,
            requests,
            consumer,
            topic: self.topic,
            status,
        })
    }
}

/// The group's committed offset of each partition of `topic` (`None`: nothing
/// committed), asked on a blocking thread: the client's call waits for the broker.
async fn committed(
    consumer: &Arc<StreamConsumer>,
    topic: &EventTopic,
) -> Result<Vec<Option<i64>>, ConsumerError> {
    let consumer = Arc::clone(consumer);
    let (name, partitions) = (topic.name().to_owned(), topic.partition_count());
    tokio::task::spawn_blocking(move || {
        let mut list = TopicPartitionList::new();
        for partition in 0..partitions {
            list.add_partition(&name, partition);
        }
        let committed = consumer
            .committed_offsets(list, REQUEST_TIMEOUT)
            .map_err(ConsumerError::kafka("committed offsets"))?;
        Ok((0..partitions)
            .map(
                |p| match committed.find_partition(&name, p).map(|e| e.offset()) {
                    Some(Offset::Offset(offset)) => Some(offset),
                    _ => None,
                },
            )
            .collect())
    })
    .await
    .map_err(|e| ConsumerError::Task(e.to_string()))?
}

/// A running [`KafkaConsumer`].
pub struct KafkaConsumerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// Serves operators' requests to retry dead letters.
    requests: JoinHandle<()>,
    consumer: Arc<StreamConsumer>,
    topic: EventTopic,
    status: Arc<Mutex<ReceiveStatus>>,
}

impl KafkaConsumerHandle {
    /// What it did so far.
    pub fn status(&self) -> ReceiveStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until the group has committed every partition up to its end (read-your-
    /// writes for tests, a drain before a deploy). Gives up after `timeout`.
    pub async fn caught_up(&self, timeout: Duration) -> Result<(), ConsumerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let committed = committed(&self.consumer, &self.topic).await?;
            let consumer = Arc::clone(&self.consumer);
            let (name, partitions) = (self.topic.name().to_owned(), self.topic.partition_count());
            let ends = tokio::task::spawn_blocking(move || {
                (0..partitions)
                    .map(|p| {
                        consumer
                            .fetch_watermarks(&name, p, REQUEST_TIMEOUT)
                            .map(|(_, high)| high)
                    })
                    .collect::<Result<Vec<i64>, _>>()
            })
            .await
            .map_err(|e| ConsumerError::Task(e.to_string()))?
            .map_err(ConsumerError::kafka("watermarks"))?;
            let done = ends
                .iter()
                .zip(&committed)
                .all(|(&end, committed)| end == 0 || committed.is_some_and(|c| c >= end));
            if done {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ConsumerError::NotCaughtUp(timeout));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops after the message it is on, commits what it handled, and leaves the group:
    /// its partitions go to the other members.
    pub async fn shutdown(self) -> Result<(), ConsumerError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|e| ConsumerError::Task(e.to_string()))?;
        self.requests
            .await
            .map_err(|e| ConsumerError::Task(e.to_string()))?;
        let consumer = Arc::clone(&self.consumer);
        tokio::task::spawn_blocking(move || consumer.commit_consumer_state(CommitMode::Sync))
            .await
            .map_err(|e| ConsumerError::Task(e.to_string()))?
            .or_else(|e| match e.rdkafka_error_code() {
                // Nothing consumed since the last commit.
                Some(rdkafka::types::RDKafkaErrorCode::NoOffset) => Ok(()),
                _ => Err(e),
            })
            .map_err(ConsumerError::kafka("final commit"))?;
        self.consumer.unsubscribe();
        Ok(())
    }
}

/// The group member's loop.
struct Member {
    consumer: Arc<StreamConsumer>,
    receiver: Arc<dyn Receive>,
    policy: ReceivePolicy,
    status: Arc<Mutex<ReceiveStatus>>,
}

impl Member {
    fn record(&self, update: impl FnOnce(&mut ReceiveStatus)) {
        update(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }

    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut troubles: u32 = 0;
        while !*stopped.borrow() {
            let received = tokio::select! {
                received = self.consumer.recv() => received,
                _ = stopped.changed() => break,
            };
            let message = match received {
                Ok(message) => message,
                Err(error) => {
                    troubles += 1;
                    self.trouble(format!("receiving: {error}"), troubles, &mut stopped)
                        .await;
                    continue;
                }
            };
            if self.one(&message).await {
                troubles = 0;
                continue;
            }
            // Not committed: read it again, after a pause, before anything after it.
            troubles += 1;
            let (topic, partition, offset) = (
                message.topic().to_owned(),
                message.partition(),
                message.offset(),
            );
            drop(message);
            self.trouble("the store failed".to_owned(), troubles, &mut stopped)
                .await;
            if let Err(error) =
                self.consumer
                    .seek(&topic, partition, Offset::Offset(offset), REQUEST_TIMEOUT)
            {
                self.record(|s| s.last_error = Some(format!("seeking back: {error}")));
            }
        }
    }

    /// Hands one message to the listener and commits it; `false` when it must be read
    /// again.
    async fn one(&self, message: &BorrowedMessage<'_>) -> bool {
        let headers: Vec<(String, String)> = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| {
                        let value = h.value.map(String::from_utf8_lossy).unwrap_or_default();
                        (h.key.to_owned(), value.into_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let origin = format!(
            "{}/{}@{}",
            message.topic(),
            message.partition(),
            message.offset()
        );
        let received = Received {
            origin: &origin,
            headers: &headers,
            payload: message.payload().unwrap_or_default(),
            delivered: 1,
        };
        match self.receiver.receive(received, &self.policy).await {
            Ok(settled) => {
                if let Err(error) = self.consumer.commit_message(message, CommitMode::Async) {
                    // Handled but not committed: read again after a restart (at least once).
                    self.record(|s| s.last_error = Some(format!("committing: {error}")));
                }
                self.record(|s| s.settled(&settled));
                true
            }
            Err(error) => {
                tracing::warn!(%error, "store failed: the message will be read again");
                self.record(|s| s.last_error = Some(format!("store: {error}")));
                false
            }
        }
    }

    /// Records a failure and pauses before going on (or until stopped).
    async fn trouble(&self, error: String, troubles: u32, stopped: &mut watch::Receiver<bool>) {
        tracing::warn!(%error, attempt = troubles, "Kafka consumer retrying");
        self.record(|s| s.last_error = Some(error));
        let pause = Duration::from_millis(100)
            .saturating_mul(1 << troubles.min(6))
            .min(Duration::from_secs(5));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopped.changed() => {}
        }
    }
}
