//! Loading an aggregate: snapshot + tail, and state at a past version.

use tracing::Instrument;

use super::{Engine, EngineError, Loaded};
use crate::{codec, unwind, Aggregate, StoreError, StreamId};

type Result<T, A> = std::result::Result<T, EngineError<<A as Aggregate>::Error>>;

impl<A: Aggregate> Engine<A> {
    /// The current state of aggregate `id` (the default state at version 0 if it has no
    /// events).
    pub async fn load(&self, id: &str) -> Result<Loaded<A>, A> {
        let stream = StreamId::new(A::TYPE, id)?;
        self.load_stream(&stream, None).await
    }

    /// The state of aggregate `id` as it was right after event `version` (a temporal
    /// query: "what was the balance before the last withdrawal?").
    ///
    /// Uses a snapshot at or below `version` when there is one. A version the stream has
    /// not reached is [`EngineError::VersionNotFound`].
    pub async fn load_at(&self, id: &str, version: u64) -> Result<Loaded<A>, A> {
        let stream = StreamId::new(A::TYPE, id)?;
        let loaded = self.load_stream(&stream, Some(version)).await?;
        if loaded.version < version {
            return Err(EngineError::VersionNotFound {
                stream,
                requested: version,
                current: loaded.version,
            });
        }
        Ok(loaded)
    }

    /// Folds the latest usable snapshot and the events after it, up to `up_to`.
    pub(super) async fn load_stream(
        &self,
        stream: &StreamId,
        up_to: Option<u64>,
    ) -> Result<Loaded<A>, A> {
        let span = tracing::debug_span!("cqrs.load", cqrs.stream = %stream);
        async {
            let mut loaded = self.load_snapshot(stream, up_to).await?;
            let max_count = match up_to {
                Some(v) => usize::try_from(v.saturating_sub(loaded.version)).unwrap_or(usize::MAX),
                None => usize::MAX,
            };
            if max_count == 0 {
                return Ok(loaded);
            }
            let events = self
                .events
                .read_stream(stream, loaded.version + 1, max_count)
                .await?;
            for stored in &events {
                // First: a purged stream keeps only its tombstone, after a gap.
                if stored.is_tombstone() {
                    return Err(StoreError::StreamDeleted {
                        stream: stream.clone(),
                        version: stored.stream_version,
                    }
                    .into());
                }
                if stored.stream_version != loaded.version + 1 {
                    // A store that breaks contiguity must not silently yield a wrong state.
                    return Err(StoreError::Corrupt {
                        stream: stream.clone(),
                        stream_version: stored.stream_version,
                        reason: format!("expected version {}", loaded.version + 1),
                        event: None,
                    }
                    .into());
                }
                let event = codec::decode_data::<A::Event>(stored)?;
                let state = &mut loaded.state;
                if let Err(panic) = unwind::catch_sync(|| state.apply(&event)) {
                    // The half-folded state is dropped with `loaded`.
                    let version = stored.stream_version;
                    tracing::error!(version, error = %panic, "apply panicked");
                    return Err(EngineError::Panicked {
                        stream: stream.clone(),
                        call: "apply",
                        committed: None,
                        source: panic,
                    });
                }
                loaded.version = stored.stream_version;
            }
            tracing::debug!(version = loaded.version, replayed = events.len(), "loaded");
            Ok(loaded)
        }
        .instrument(span)
        .await
    }

    /// The latest snapshot at or below `up_to`, or the default state. A snapshot of
    /// another schema version, or one that no longer deserialises, is skipped: it is a
    /// cache, and the events rebuild the state.
    async fn load_snapshot(&self, stream: &StreamId, up_to: Option<u64>) -> Result<Loaded<A>, A> {
        let empty = Loaded {
            state: A::default(),
            version: 0,
        };
        let Some((store, _)) = &self.snapshots else {
            return Ok(empty);
        };
        let Some(snapshot) = store.load_snapshot(stream).await? else {
            return Ok(empty);
        };
        if up_to.is_some_and(|v| snapshot.stream_version > v) {
            return Ok(empty);
        }
        if snapshot.schema_version != A::SNAPSHOT_VERSION {
            tracing::debug!(
                stored = snapshot.schema_version,
                current = A::SNAPSHOT_VERSION,
                "snapshot of another schema version ignored"
            );
            return Ok(empty);
        }
        match serde_json::from_value::<A>(snapshot.state) {
            Ok(state) => Ok(Loaded {
                state,
                version: snapshot.stream_version,
            }),
            Err(error) => {
                tracing::warn!(%stream, %error, "unreadable snapshot ignored; replaying events");
                Ok(empty)
            }
        }
    }
}
