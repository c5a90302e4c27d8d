//! What the relay and the consumers will rely on, pinned against a real broker: tansu
//! 0.6.0 (started by `cqrs_kafka::testing`) with rdkafka 0.39 (librdkafka 2.12.1).
//!
//! Every check is on counts and states (partitions, offsets, watermarks, what arrived),
//! never on how long something took; waits have generous deadlines only so that a broken
//! broker fails a test instead of hanging it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cqrs_kafka::testing::{KafkaBroker, Storage};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::Message;
use tokio::time::{sleep, timeout, Instant};

/// Ten keys, as ten event streams.
const KEYS: u32 = 10;
const PARTITIONS: i32 = 3;
/// The longest any single wait may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);

fn config(broker: &KafkaBroker) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", broker.bootstrap());
    config
}

async fn create_topic(broker: &KafkaBroker, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = config(broker).create().expect("admin client");
    let created = admin
        .create_topics(
            &[NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topics");
    assert_eq!(created, vec![Ok(topic.to_owned())]);
}

/// The relay's producer: idempotent, every write acknowledged by all in-sync replicas.
fn producer(broker: &KafkaBroker) -> FutureProducer {
    producer_with(broker, &[])
}

/// [`producer`] with more settings.
fn producer_with(broker: &KafkaBroker, settings: &[(&str, &str)]) -> FutureProducer {
    let mut config = config(broker);
    for (key, value) in settings {
        config.set(*key, *value);
    }
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Long enough to ride out a broker restart in the outage tests.
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer")
}

/// Message `n`: key `k<n % 10>`, payload `<n>`, and CloudEvents attributes as headers.
fn headers_of(n: u32) -> Vec<(String, Vec<u8>)> {
    vec![
        ("ce_specversion".to_owned(), b"1.0".to_vec()),
        ("ce_id".to_owned(), format!("event-{n}").into_bytes()),
        ("ce_type".to_owned(), b"account.opened.v1".to_vec()),
        ("ce_source".to_owned(), b"/cqrs/test".to_vec()),
        // Not UTF-8: headers are bytes.
        ("ce_binary".to_owned(), vec![0, 0xff, 0xfe, n as u8]),
    ]
}

fn key_of(n: u32) -> String {
    format!("k{}", n % KEYS)
}

/// The key, payload and headers of message `n`.
fn record(n: u32) -> (String, String, OwnedHeaders) {
    let headers = headers_of(n)
        .into_iter()
        .fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header {
                key: &key,
                value: Some(&value),
            })
        });
    (key_of(n), n.to_string(), headers)
}

/// Sends message `n` and waits for its acknowledgement: `(partition, offset)`.
async fn send(producer: &FutureProducer, topic: &str, n: u32) -> (i32, i64) {
    let (key, payload, headers) = record(n);
    let delivery = producer
        .send(
            FutureRecord::to(topic)
                .key(&key)
                .payload(&payload)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(error, _)| panic!("message {n}: {error}"));
    (delivery.partition, delivery.offset)
}

async fn send_all(producer: &FutureProducer, topic: &str, messages: std::ops::Range<u32>) {
    for n in messages {
        send(producer, topic, n).await;
    }
}

/// A member of `group` reading `topic` from the earliest offset, committing by hand.
fn consumer(broker: &KafkaBroker, group: &str, topic: &str) -> StreamConsumer {
    let consumer: StreamConsumer = config(broker)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

/// A message as received.
#[derive(Debug, Clone, PartialEq)]
struct Received {
    n: u32,
    key: String,
    partition: i32,
    offset: i64,
    headers: Vec<(String, Vec<u8>)>,
}

impl Received {
    fn of(message: &BorrowedMessage<'_>) -> Self {
        let payload = std::str::from_utf8(message.payload().expect("a payload")).expect("utf-8");
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| {
                        (
                            header.key.to_owned(),
                            header.value.expect("a header value").to_vec(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            n: payload.parse().expect("a number"),
            key: String::from_utf8(message.key().expect("a key").to_vec()).expect("utf-8"),
            partition: message.partition(),
            offset: message.offset(),
            headers,
        }
    }
}

/// Receives `count` messages; with `commit`, commits each one's offset (synchronously)
/// after "handling" it, as the framework's consumers will.
async fn receive(consumer: &StreamConsumer, count: usize, commit: bool) -> Vec<Received> {
    let mut received = Vec::with_capacity(count);
    let deadline = Instant::now() + DEADLINE;
    while received.len() < count {
        let message = timeout(
            deadline.saturating_duration_since(Instant::now()),
            consumer.recv(),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "received {} of {count} messages before the deadline",
                received.len()
            )
        })
        .expect("receive");
        received.push(Received::of(&message));
        if commit {
            consumer
                .commit_message(&message, CommitMode::Sync)
                .expect("commit");
        }
    }
    received
}

fn numbers(received: &[Received]) -> BTreeSet<u32> {
    received.iter().map(|message| message.n).collect()
}

/// Asserts that each message arrived once, with its key and headers, and that the
/// messages of each key arrived in the order they were sent.
fn assert_once_in_key_order(received: &[Received], expected: impl Iterator<Item = u32>) {
    let expected: Vec<u32> = expected.collect();
    let mut got: Vec<u32> = received.iter().map(|message| message.n).collect();
    got.sort_unstable();
    assert_eq!(got, expected, "each message exactly once");
    let mut per_key: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for message in received {
        assert_eq!(message.key, key_of(message.n));
        assert_eq!(message.headers, headers_of(message.n), "headers survive");
        per_key.entry(&message.key).or_default().push(message.n);
    }
    for (key, sent) in per_key {
        let mut in_order = sent.clone();
        in_order.sort_unstable();
        assert_eq!(sent, in_order, "the messages of {key} in the order sent");
    }
}

fn partition_count(producer: &FutureProducer, topic: &str) -> Result<usize, RDKafkaErrorCode> {
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let topic = metadata
        .topics()
        .iter()
        .find(|found| found.name() == topic)
        .expect("the topic in the answer");
    match topic.error() {
        Some(error) => Err(error.into()),
        None => Ok(topic.partitions().len()),
    }
}

/// The high watermark of each partition: how many messages it holds (nothing is deleted).
fn high_watermarks(producer: &FutureProducer, topic: &str) -> Vec<i64> {
    (0..PARTITIONS)
        .map(|partition| {
            producer
                .client()
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect()
}

/// The offsets `group` committed, per partition (`None`: nothing committed).
fn committed(consumer: &StreamConsumer, topic: &str) -> Vec<Option<i64>> {
    let mut partitions = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        partitions.add_partition(topic, partition);
    }
    let committed = consumer
        .committed_offsets(partitions, Duration::from_secs(10))
        .expect("committed offsets");
    (0..PARTITIONS)
        .map(|partition| {
            match committed
                .find_partition(topic, partition)
                .expect("asked for")
                .offset()
            {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            }
        })
        .collect()
}

fn some(offsets: Vec<i64>) -> Vec<Option<i64>> {
    offsets.into_iter().map(Some).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_topic_is_created_with_its_partitions_and_never_by_itself() {
    let broker = KafkaBroker::start().await.expect("broker");
    create_topic(&broker, "events").await;
    let producer = producer(&broker);
    assert_eq!(partition_count(&producer, "events"), Ok(3));

    let admin: AdminClient<DefaultClientContext> = config(&broker).create().expect("admin");
    let again = admin
        .create_topics(
            &[NewTopic::new("events", 5, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topics");
    assert_eq!(
        again,
        vec![Err((
            "events".to_owned(),
            RDKafkaErrorCode::TopicAlreadyExists
        ))]
    );
    assert_eq!(partition_count(&producer, "events"), Ok(3), "unchanged");

    // No auto-creation: asking for a topic's metadata (what a producer does before its
    // first send) does not create it, however often.
    for _ in 0..2 {
        assert_eq!(
            partition_count(&producer, "never-created"),
            Err(RDKafkaErrorCode::UnknownTopicOrPartition)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotent_producer_keeps_each_key_in_one_partition_in_order() {
    let broker = KafkaBroker::start().await.expect("broker");
    create_topic(&broker, "events").await;
    let producer = producer(&broker);
    let mut partitions_of_key: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for n in 0..100 {
        let (partition, offset) = send(&producer, "events", n).await;
        partitions_of_key
            .entry(key_of(n))
            .or_default()
            .insert(partition);
        offsets.entry(partition).or_default().push(offset);
    }
    assert_eq!(partitions_of_key.len(), 10);
    for (key, partitions) in &partitions_of_key {
        assert_eq!(
            partitions.len(),
            1,
            "{key} in one partition: {partitions:?}"
        );
    }
    assert_eq!(
        offsets.len(),
        3,
        "ten keys spread over the three partitions"
    );
    for (partition, offsets) in &offsets {
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            offsets, &expected,
            "partition {partition}: 0, 1, 2, ... in sending order"
        );
    }
    // Stored once each: the partitions hold exactly the 100 acknowledged messages.
    assert_eq!(
        high_watermarks(&producer, "events").iter().sum::<i64>(),
        100
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_member_committing_by_hand_gets_each_message_once_per_key_in_order() {
    let broker = KafkaBroker::start().await.expect("broker");
    create_topic(&broker, "events").await;
    let producer = producer(&broker);
    send_all(&producer, "events", 0..100).await;

    let consumer = consumer(&broker, "projection", "events");
    let received = receive(&consumer, 100, true).await;
    assert_once_in_key_order(&received, 0..100);
    // Every partition's committed offset is its end: nothing is left to deliver.
    let ends = high_watermarks(&producer, "events");
    assert_eq!(committed(&consumer, "events"), some(ends));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_consumer_resumes_after_its_committed_offsets() {
    let broker = KafkaBroker::start().await.expect("broker");
    create_topic(&broker, "events").await;
    let producer = producer(&broker);
    send_all(&producer, "events", 0..100).await;

    let first = consumer(&broker, "projection", "events");
    let handled = receive(&first, 40, true).await;
    // One more arrives but the consumer dies before committing it.
    let lost = receive(&first, 1, false).await;
    drop(first);

    let second = consumer(&broker, "projection", "events");
    let rest = receive(&second, 60, true).await;
    assert!(
        numbers(&handled).is_disjoint(&numbers(&rest)),
        "nothing committed comes again"
    );
    assert!(
        numbers(&rest).contains(&lost[0].n),
        "the uncommitted one comes again"
    );
    let all: Vec<Received> = handled.into_iter().chain(rest).collect();
    assert_once_in_key_order(&all, 0..100);
    assert_eq!(
        committed(&second, "events"),
        some(high_watermarks(&producer, "events"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_members_of_a_group_share_the_partitions_and_each_message_once() {
    let broker = KafkaBroker::start().await.expect("broker");
    create_topic(&broker, "events").await;
    let producer = producer(&broker);
    let members = [
        consumer(&broker, "projection", "events"),
        consumer(&broker, "projection", "events"),
    ];
    // Poll both (the topic is empty) until the group has given each member a share.
    let assigned = |member: &StreamConsumer| -> BTreeSet<i32> {
        member
            .assignment()
            .expect("assignment")
            .elements()
            .iter()
            .map(|element| element.partition())
            .collect()
    };
    let deadline = Instant::now() + DEADLINE;
    let shares = loop {
        for member in &members {
            let polled = timeout(Duration::from_millis(50), member.recv()).await;
            assert!(polled.is_err(), "nothing to receive yet: {polled:?}");
        }
        let shares = [assigned(&members[0]), assigned(&members[1])];
        if !shares[0].is_empty() && !shares[1].is_empty() {
            break shares;
        }
        assert!(
            Instant::now() < deadline,
            "no share for each member: {shares:?}"
        );
        sleep(Duration::from_millis(50)).await;
    };
    assert!(shares[0].is_disjoint(&shares[1]), "{shares:?}");
    assert_eq!(
        shares[0].union(&shares[1]).count(),
        3,
        "every partition has a member: {shares:?}"
    );

    send_all(&producer, "events", 0..60).await;
    let ends = high_watermarks(&producer, "events");
    let expected = |share: &BTreeSet<i32>| -> usize {
        share
            .iter()
            .map(|partition| ends[*partition as usize] as usize)
            .sum()
    };
    let (a, b) = tokio::join!(
        receive(&members[0], expected(&shares[0]), true),
        receive(&members[1], expected(&shares[1]), true),
    );
    assert!(a
        .iter()
        .all(|message| shares[0].contains(&message.partition)));
    assert!(b
        .iter()
        .all(|message| shares[1].contains(&message.partition)));
    let all: Vec<Received> = a.into_iter().chain(b).collect();
    assert_once_in_key_order(&all, 0..60);
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_storage_keeps_topics_messages_offsets_and_queued_sends_over_a_stop_and_a_kill() {
    let mut broker = KafkaBroker::start_with(Storage::Sqlite)
        .await
        .expect("broker");
    create_topic(&broker, "events").await;
    let producer = producer(&broker);
    send_all(&producer, "events", 0..50).await;
    let consumer_before = consumer(&broker, "projection", "events");
    let handled = receive(&consumer_before, 50, true).await;
    assert_once_in_key_order(&handled, 0..50);
    drop(consumer_before);

    broker.stop().await;
    // A send during the outage is queued by the producer, not failed...
    let queued = {
        let producer = producer.clone();
        tokio::spawn(async move { send(&producer, "events", 50).await })
    };
    sleep(Duration::from_millis(500)).await; // room for a wrong early failure to show
    assert!(
        !queued.is_finished(),
        "nothing delivered or failed while stopped"
    );
    broker.restart().await.expect("restart");
    // ...and delivered once the broker is back, by the same producer (same producer id).
    queued.await.expect("the queued send");
    send_all(&producer, "events", 51..60).await;
    assert_eq!(partition_count(&producer, "events"), Ok(3));
    assert_eq!(high_watermarks(&producer, "events").iter().sum::<i64>(), 60);

    let consumer_after = consumer(&broker, "projection", "events");
    let rest = receive(&consumer_after, 10, true).await;
    assert_once_in_key_order(&rest, 50..60);
    drop(consumer_after);

    // A kill (no clean shutdown) keeps what was acknowledged and committed as well.
    broker.kill().await;
    broker.restart().await.expect("restart after a kill");
    assert_eq!(high_watermarks(&producer, "events").iter().sum::<i64>(), 60);
    let consumer_killed = consumer(&broker, "projection", "events");
    assert_eq!(
        committed(&consumer_killed, "events"),
        some(high_watermarks(&producer, "events"))
    );
    let newcomer = consumer(&broker, "audit", "events");
    let everything = receive(&newcomer, 60, false).await;
    assert_once_in_key_order(&everything, 0..60);
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_storage_comes_back_empty_after_a_restart() {
    let mut broker = KafkaBroker::start_with(Storage::Memory)
        .await
        .expect("broker");
    create_topic(&broker, "events").await;
    // A topic that disappears is waited for this long (librdkafka's default: 30 s)
    // before the send fails.
    let producer = producer_with(&broker, &[("topic.metadata.propagation.max.ms", "1000")]);
    send_all(&producer, "events", 0..10).await;
    assert_eq!(high_watermarks(&producer, "events").iter().sum::<i64>(), 10);

    broker.restart().await.expect("restart");
    assert_eq!(
        partition_count(&producer, "events"),
        Err(RDKafkaErrorCode::UnknownTopicOrPartition),
        "the topic is gone"
    );
    let (key, payload, headers) = record(10);
    let failed = producer
        .send(
            FutureRecord::to("events")
                .key(&key)
                .payload(&payload)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await;
    match failed {
        Err((KafkaError::MessageProduction(code), _)) => assert!(
            matches!(
                code,
                RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::UnknownPartition
                    | RDKafkaErrorCode::UnknownTopicOrPartition
            ),
            "{code:?}"
        ),
        other => panic!("a send to the forgotten topic: {other:?}"),
    }
    // It can be created anew, empty.
    create_topic(&broker, "events").await;
    assert_eq!(high_watermarks(&producer, "events"), vec![0, 0, 0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn compressed_batches_round_trip() {
    let broker = KafkaBroker::start().await.expect("broker");
    for codec in ["gzip", "lz4", "snappy"] {
        let topic = format!("events-{codec}");
        create_topic(&broker, &topic).await;
        let producer: FutureProducer = config(&broker)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", codec)
            .create()
            .expect("producer");
        send_all(&producer, &topic, 0..20).await;
        let consumer = consumer(&broker, &format!("reader-{codec}"), &topic);
        let received = receive(&consumer, 20, true).await;
        assert_once_in_key_order(&received, 0..20);
    }
}

/// Not a fact to rely on but one to know: tansu 0.6.0 offers no EndTxn, so a
/// transactional producer cannot commit. The relay must not need transactions (it does
/// not: consumers drop duplicates by event id). If this starts failing, tansu grew them.
#[tokio::test(flavor = "multi_thread")]
async fn transactions_cannot_be_committed() {
    let broker = KafkaBroker::start().await.expect("broker");
    create_topic(&broker, "events").await;
    let producer: FutureProducer = config(&broker)
        .set("transactional.id", "relay")
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init transactions (InitProducerId) works");
    producer.begin_transaction().expect("begin");
    send_all(&producer, "events", 0..3).await;
    let commit = producer.commit_transaction(Duration::from_secs(30));
    let error = commit.expect_err("commit fails").to_string();
    assert!(error.contains("EndTxn"), "{error}");
}
