//! The JetStream stream the relay publishes into, and its subjects.

use std::time::Duration;

use async_nats::jetstream::stream::{Config, StorageType};
use cqrs_core::StreamId;

use crate::error::ConfigError;

/// The JetStream stream of an application's events, as both sides see it: the relay
/// creates or updates it from this value, consumers read from it.
///
/// Each event is published on the subject `PREFIX.PARTITION.TYPE.ID`: its partition (a
/// stable hash of the stream, modulo [`partitions`](Self::partitions)), its stream type
/// and its stream id, each as one subject token (characters other than ASCII letters,
/// digits, `-` and `_` are written `%XX`). All events of one stream share one subject, so
/// JetStream keeps them in order; a partition is the unit a consumer serves in order,
/// and the unit that several consumer processes share out.
///
/// ```
/// use cqrs_nats::EventStream;
/// let stream = EventStream::new("ORDERS", "orders")?.partitions(4)?;
/// let subject = stream.subject(&cqrs_core::StreamId::new("order", "o-1")?);
/// assert!(subject.starts_with("orders.") && subject.ends_with(".order.o-1"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventStream {
    name: String,
    prefix: String,
    partitions: u32,
    replicas: usize,
    max_age: Duration,
    duplicate_window: Duration,
    storage: StorageType,
}

impl EventStream {
    /// The stream `name` (letters, digits, `-`, `_`), on subjects under `prefix` (tokens
    /// of letters, digits, `-`, `_`, separated by dots): one partition, one replica, file
    /// storage, no age limit, a de-duplication window of two minutes (JetStream's
    /// default).
    pub fn new(name: &str, prefix: &str) -> Result<Self, ConfigError> {
        if !is_name(name) {
            return Err(ConfigError::StreamName(name.to_owned()));
        }
        if prefix.is_empty() || !prefix.split('.').all(is_name) {
            return Err(ConfigError::SubjectPrefix(prefix.to_owned()));
        }
        Ok(Self {
            name: name.to_owned(),
            prefix: prefix.to_owned(),
            partitions: 1,
            replicas: 1,
            max_age: Duration::ZERO,
            duplicate_window: Duration::from_secs(120),
            storage: StorageType::File,
        })
    }

    /// Spreads streams over `partitions` (1 to 1024). Changing it later moves streams
    /// to other partitions: drain consumers first.
    pub fn partitions(mut self, partitions: u32) -> Result<Self, ConfigError> {
        if !(1..=1024).contains(&partitions) {
            return Err(ConfigError::Partitions(partitions));
        }
        self.partitions = partitions;
        Ok(self)
    }

    /// Copies of each message in a cluster (1 to 5).
    pub fn replicas(mut self, replicas: usize) -> Result<Self, ConfigError> {
        if !(1..=5).contains(&replicas) {
            return Err(ConfigError::Replicas(replicas));
        }
        self.replicas = replicas;
        Ok(self)
    }

    /// How long messages are kept (zero: for ever). A consumer that is behind by more
    /// loses what expired: keep it longer than a consumer may be down.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// How long JetStream remembers a message id to drop a second publish of it: the
    /// longest relay outage (or restart) after which republished events reach consumers
    /// only once.
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// Keeps messages in memory instead of files (tests, caches).
    pub fn in_memory(mut self) -> Self {
        self.storage = StorageType::Memory;
        self
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of partitions.
    pub fn partition_count(&self) -> u32 {
        self.partitions
    }

    /// The partition of `stream`: a stable hash (FNV-1a of the type and the id), so every
    /// process and every version agrees.
    pub fn partition_of(&self, stream: &StreamId) -> u32 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let bytes = stream
            .stream_type()
            .bytes()
            .chain([0])
            .chain(stream.id().bytes());
        for b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        (hash % u64::from(self.partitions)) as u32
    }

    /// The subject the events of `stream` are published on.
    pub fn subject(&self, stream: &StreamId) -> String {
        format!(
            "{}.{}.{}.{}",
            self.prefix,
            self.partition_of(stream),
            token(stream.stream_type()),
            token(stream.id())
        )
    }

    /// The subjects of one partition, for a consumer's filter.
    pub(crate) fn partition_subjects(&self, partition: u32) -> String {
        format!("{}.{partition}.>", self.prefix)
    }

    /// The JetStream configuration the relay creates or updates.
    pub(crate) fn config(&self) -> Config {
        Config {
            name: self.name.clone(),
            subjects: vec![format!("{}.>", self.prefix)],
            num_replicas: self.replicas,
            max_age: self.max_age,
            duplicate_window: self.duplicate_window,
            storage: self.storage,
            ..Config::default()
        }
    }
}

/// JetStream names and subject tokens as this crate allows them.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `s` as one subject token: ASCII letters, digits, `-` and `_` as they are, every other
/// byte `%XX`, so that no stream id can add a token or a wildcard.
pub(crate) fn token(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_stream_id_is_one_subject_token() {
        let stream = EventStream::new("S", "events").expect("valid");
        let id = StreamId::new("order", "a.b *>\u{e9}").expect("valid");
        let subject = stream.subject(&id);
        assert_eq!(subject, "events.0.order.a%2Eb%20%2A%3E%C3%A9");
        assert_eq!(subject.split('.').count(), 4);
    }

    #[test]
    fn partitions_are_stable_and_spread() {
        let stream = EventStream::new("S", "events")
            .expect("valid")
            .partitions(4)
            .expect("valid");
        let id = StreamId::new("order", "o-1").expect("valid");
        assert_eq!(stream.partition_of(&id), stream.partition_of(&id.clone()));
        let mut used = [0_u32; 4];
        for n in 0..400 {
            let id = StreamId::new("order", &format!("o-{n}")).expect("valid");
            used[stream.partition_of(&id) as usize] += 1;
        }
        assert!(used.iter().all(|&n| n > 50), "{used:?}");
    }

    #[test]
    fn bad_settings_are_refused_where_they_are_given() {
        assert!(EventStream::new("a.b", "events").is_err());
        assert!(EventStream::new("S", "events.*").is_err());
        assert!(EventStream::new("S", "").is_err());
        assert!(EventStream::new("S", "a..b").is_err());
        let stream = EventStream::new("S", "events").expect("valid");
        assert!(stream.clone().partitions(0).is_err());
        assert!(stream.replicas(6).is_err());
    }
}
