//! Executing a command: handle, append, retry on conflict, snapshot, project.

use tracing::Instrument;

use super::{Committed, Engine, EngineError, Loaded};
use crate::codec::{EncodeError, JsonError};
use crate::observe::{metrics, trace};
use crate::{
    codec, unwind, Aggregate, Command, Envelope, ExpectedVersion, Metadata, Snapshot, StoreError,
    StreamId,
};

type Result<T, A> = std::result::Result<T, EngineError<<A as Aggregate>::Error>>;

/// The aggregate a command names, for the `send` methods.
fn aggregate_id<A: Aggregate>(command: &A::Command) -> Result<String, A> {
    command
        .aggregate_id()
        .ok_or(EngineError::MissingAggregateId {
            command: command.command_name(),
        })
}

/// An event that does not encode: [`EngineError::NonFinite`] for a NaN or an infinity
/// (the command's input, most likely), [`EngineError::Encode`] for anything else.
fn unencodable<E: std::error::Error>(stream: &StreamId, error: EncodeError) -> EngineError<E> {
    match error {
        EncodeError::Json {
            event_type,
            source: JsonError::NonFinite { path, value },
        } => {
            tracing::debug!(event_type, %path, value, "event refused: a float is not finite");
            EngineError::NonFinite {
                stream: stream.clone(),
                event_type,
                path,
                value,
            }
        }
        other => EngineError::Encode(other),
    }
}

impl<A: Aggregate> Engine<A> {
    /// Executes `command` against aggregate `id`.
    ///
    /// Returns the committed events, or the aggregate's refusal as
    /// [`EngineError::Rejected`]. Each event gets a correlation id shared by the whole
    /// command; use [`execute_with_metadata`](Self::execute_with_metadata) to pass one in
    /// (with causation, trace context, or application keys).
    pub async fn execute(&self, id: &str, command: A::Command) -> Result<Committed<A::Event>, A> {
        self.execute_with_metadata(id, command, Metadata::default())
            .await
    }

    /// Executes `command` against aggregate `id` only if the aggregate is at `version`:
    /// optimistic concurrency held by the caller across a read and a write. A client that
    /// showed a user the account at version 7 sends the withdrawal with 7; if anything
    /// was written since, the command is not run and the answer is
    /// [`EngineError::UnexpectedVersion`] (an HTTP service answers 409 or, for `If-Match`,
    /// 412). Conflicts are not retried: a retry would decide on a version the caller never
    /// saw. Version 0 means "no events yet".
    pub async fn execute_expecting(
        &self,
        id: &str,
        version: u64,
        command: A::Command,
    ) -> Result<Committed<A::Event>, A> {
        self.execute_traced(id, command, Metadata::default(), Some(version), false)
            .await
    }

    /// Executes a command that names its aggregate ([`Command::aggregate_id`]).
    pub async fn send(&self, command: A::Command) -> Result<Committed<A::Event>, A> {
        let id = aggregate_id::<A>(&command)?;
        self.execute(&id, command).await
    }

    /// Executes a command caused by `cause`, an event seen by a
    /// [process manager](crate::ProcessManager), against aggregate `id`.
    ///
    /// The new events carry the cause's correlation id (or its id, if it had none), its id
    /// as causation id, and its application keys. The command's span is a child of the
    /// current one when that is in a trace (the process manager's `cqrs.process`), else of
    /// the cause's stored trace context: either way a new span in the cause's trace (see
    /// [`observe`](crate::observe)); without OpenTelemetry the events carry the cause's
    /// trace context as it is. The command gets an
    /// id derived from the cause, the aggregate and the command's name, so that the same
    /// event delivered again returns the first outcome instead of acting twice.
    pub async fn execute_caused_by<D>(
        &self,
        id: &str,
        command: A::Command,
        cause: &Envelope<D>,
    ) -> Result<Committed<A::Event>, A> {
        let key = format!("{}/{}/{}", A::TYPE, id, command.command_name());
        let metadata = Metadata {
            correlation_id: Some(cause.metadata.correlation_id.unwrap_or(cause.event_id)),
            causation_id: Some(cause.event_id),
            command_id: Some(uuid::Uuid::new_v5(&cause.event_id, key.as_bytes())),
            traceparent: cause.metadata.traceparent.clone(),
            tracestate: cause.metadata.tracestate.clone(),
            extra: cause.metadata.extra.clone(),
        };
        self.execute_traced(id, command, metadata, None, true).await
    }

    /// [`execute_caused_by`](Self::execute_caused_by) for a command that names its
    /// aggregate ([`Command::aggregate_id`]).
    pub async fn send_caused_by<D>(
        &self,
        command: A::Command,
        cause: &Envelope<D>,
    ) -> Result<Committed<A::Event>, A> {
        let id = aggregate_id::<A>(&command)?;
        self.execute_caused_by(&id, command, cause).await
    }

    /// Executes `command` against aggregate `id`, stamping `metadata` on every event.
    /// A missing correlation id is filled with a fresh one.
    ///
    /// With a [`command_id`](Metadata::command_id), the command is idempotent: if events
    /// with that id are already in the stream, they are returned as the outcome and the
    /// command does not run again (a command that was refused, or wrote nothing, leaves
    /// no trace and runs again).
    ///
    /// A [`traceparent`](Metadata::traceparent) makes the command's span a child of that
    /// context (an HTTP request's, say); without one it is a child of the current span.
    /// With the `opentelemetry` feature, the events then store the command span's own
    /// context (see [`observe`](crate::observe)).
    pub async fn execute_with_metadata(
        &self,
        id: &str,
        command: A::Command,
        metadata: Metadata,
    ) -> Result<Committed<A::Event>, A> {
        self.execute_traced(id, command, metadata, None, false)
            .await
    }

    /// What every way in shares: the stream, a correlation id where there is none, the
    /// command's span joined to its trace, and the outcome in the span and the metrics.
    async fn execute_traced(
        &self,
        id: &str,
        command: A::Command,
        mut metadata: Metadata,
        expected_version: Option<u64>,
        caused: bool,
    ) -> Result<Committed<A::Event>, A> {
        metadata
            .correlation_id
            .get_or_insert_with(crate::envelope::now_v7);
        let span = tracing::info_span!(
            "cqrs.execute",
            cqrs.stream = tracing::field::Empty,
            cqrs.command = command.command_name(),
            cqrs.expected_version = expected_version,
            cqrs.correlation_id = %metadata.correlation_id.unwrap_or_default(),
            cqrs.outcome = tracing::field::Empty,
            cqrs.version = tracing::field::Empty,
            cqrs.attempts = tracing::field::Empty,
            error.type = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        if caused {
            trace::follow_unless_in_trace(&span, &metadata);
        } else if metadata.traceparent.is_some() {
            trace::follow(&span, &metadata);
        }
        trace::stamp(&span, &mut metadata);
        let mut repeated = false;
        let result = match StreamId::new(A::TYPE, id) {
            Ok(stream) => {
                span.record("cqrs.stream", tracing::field::display(&stream));
                self.execute_inner(stream, command, metadata, expected_version, &mut repeated)
                    .instrument(span.clone())
                    .await
            }
            Err(invalid) => Err(invalid.into()),
        };
        let outcome = match &result {
            Ok(committed) => {
                span.record("cqrs.version", committed.version);
                if repeated {
                    "repeated"
                } else if committed.events.is_empty() {
                    "unchanged"
                } else {
                    "committed"
                }
            }
            Err(EngineError::Rejected(_)) => "refused",
            Err(EngineError::Conflict { .. } | EngineError::UnexpectedVersion { .. }) => {
                "conflicted"
            }
            Err(_) => "failed",
        };
        span.record("cqrs.outcome", outcome);
        if let Err(error) = &result {
            // A refusal is the domain's answer, not the command's failure.
            if outcome != "refused" {
                span.record("otel.status_code", "ERROR");
            }
            span.record("error.type", error.kind());
        }
        metrics::command(A::TYPE, outcome);
        result
    }

    async fn execute_inner(
        &self,
        stream: StreamId,
        command: A::Command,
        metadata: Metadata,
        expected_version: Option<u64>,
        repeated: &mut bool,
    ) -> Result<Committed<A::Event>, A> {
        // A caller's version pins the decision to that version: one attempt.
        let max_attempts = match expected_version {
            Some(_) => 1,
            None => self.retry.max_attempts.max(1),
        };
        let mut attempt = 1;
        loop {
            tracing::Span::current().record("cqrs.attempts", attempt);
            let (loaded, from_image) = self.load_for_command(&stream).await?;
            // Idempotency: a command already recorded returns its outcome. Checked on
            // every attempt and *after* loading: a copy of this command that commits
            // after the check also moved the stream past what was loaded, so this
            // attempt's append conflicts and the next attempt's check finds it.
            if let Some(command_id) = metadata.command_id {
                if let Some(done) = self.already_done(&stream, command_id).await? {
                    tracing::debug!(%command_id, "command already executed; returning its events");
                    *repeated = true;
                    return Ok(done);
                }
            }
            if let Some(expected) = expected_version.filter(|&v| v != loaded.version) {
                if from_image {
                    // The image may be behind the stream (it was taken out of the cache,
                    // so the next load reads the stream itself).
                    continue;
                }
                return Err(EngineError::UnexpectedVersion {
                    stream,
                    expected,
                    actual: loaded.version,
                });
            }
            let handled = unwind::catch(
                loaded
                    .state
                    .handle(&command, &self.services)
                    .instrument(tracing::debug_span!("cqrs.handle")),
            )
            .await;
            let handled = match handled {
                Ok(handled) => handled,
                Err(panic) => {
                    // The state it decided on (an image, maybe) is dropped, not kept: it
                    // may be what the bug tripped on, and the next command loads afresh.
                    tracing::error!(error = %panic, "handle panicked");
                    return Err(EngineError::Panicked {
                        stream,
                        call: "handle",
                        committed: None,
                        source: panic,
                    });
                }
            };
            let events = match handled {
                Ok(events) if !events.is_empty() => events,
                decided => {
                    // Nothing to append, so no optimistic check: a decision made on a
                    // cached image stands only if the stream has not moved since.
                    if !self.decision_stands(&stream, &loaded, from_image).await? {
                        continue;
                    }
                    let version = loaded.version;
                    self.keep_image(&stream, loaded);
                    return match decided {
                        Ok(_) => Ok(Committed {
                            events: Vec::new(),
                            version,
                        }),
                        Err(refusal) => Err(EngineError::Rejected(refusal)),
                    };
                }
            };
            let new_events = events
                .iter()
                .map(|e| codec::encode(e, metadata.clone()).map_err(|e| unencodable(&stream, e)))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let expected = match loaded.version {
                0 => ExpectedVersion::NoStream,
                v => ExpectedVersion::Exact(v),
            };
            let started = std::time::Instant::now();
            let appended = self
                .events
                .append(&stream, expected, new_events)
                .instrument(tracing::debug_span!(
                    "cqrs.append",
                    cqrs.events = events.len()
                ))
                .await;
            match appended {
                Ok(stored) => {
                    metrics::appended(A::TYPE, stored.len(), started.elapsed());
                    return self.after_commit(&stream, loaded, events, stored).await;
                }
                Err(source @ StoreError::Conflict { .. }) => {
                    // Another writer moved the stream: an image of it is stale.
                    self.forget_image(&stream);
                    if let (Some(expected), StoreError::Conflict { actual, .. }) =
                        (expected_version, &source)
                    {
                        return Err(EngineError::UnexpectedVersion {
                            stream,
                            expected,
                            actual: *actual,
                        });
                    }
                    if attempt >= max_attempts {
                        return Err(EngineError::Conflict {
                            stream,
                            attempts: attempt,
                            source,
                        });
                    }
                    tracing::debug!(attempt, "conflict; reloading and retrying");
                    metrics::retried(A::TYPE);
                    tokio::time::sleep(self.retry.pause(attempt)).await;
                    attempt += 1;
                }
                Err(gone @ (StoreError::StreamDeleted { .. } | StoreError::Archived { .. })) => {
                    // Deleted or archived since the image was kept: no state of it is
                    // current.
                    self.forget_image(&stream);
                    return Err(gone.into());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The outcome of command `command_id` if it already wrote events to `stream`.
    async fn already_done(
        &self,
        stream: &StreamId,
        command_id: uuid::Uuid,
    ) -> Result<Option<Committed<A::Event>>, A> {
        let stored = self.events.read_by_command(stream, command_id).await?;
        let Some(version) = stored.last().map(|e| e.stream_version) else {
            return Ok(None);
        };
        let events = stored
            .iter()
            .map(|e| codec::decode::<A::Event>(e))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Some(Committed { events, version }))
    }

    /// Folds the committed events, snapshots by policy, runs inline projections.
    async fn after_commit(
        &self,
        stream: &StreamId,
        loaded: Loaded<A>,
        events: Vec<A::Event>,
        stored: Vec<std::sync::Arc<crate::StoredEvent>>,
    ) -> Result<Committed<A::Event>, A> {
        let before = loaded.version;
        let mut state = loaded.state;
        let folded = unwind::catch_sync(|| {
            for event in &events {
                state.apply(event);
            }
        });
        let version = stored.last().map_or(before, |e| e.stream_version);
        tracing::debug!(version, "committed");

        let panicked = match folded {
            Ok(()) => {
                if let Some((store, policy)) = &self.snapshots {
                    if policy.is_due(before, version) {
                        self.save_snapshot(store.as_ref(), stream, &state, version)
                            .await;
                    }
                }
                self.keep_image(stream, Loaded { state, version });
                None
            }
            Err(panic) => {
                // The half-applied state is dropped: neither cached nor snapshotted. The
                // events are committed all the same, so the projections still get them.
                tracing::error!(version, error = %panic, "apply panicked after the commit");
                drop(state);
                Some(panic)
            }
        };

        let envelopes: Vec<Envelope<A::Event>> = stored
            .iter()
            .zip(events)
            .map(|(s, event)| s.with_data(event))
            .collect();

        let mut failed = None;
        for projection in &self.projections {
            // A panic is the projection's failure, like an `Err` (caught by the run).
            let span = tracing::debug_span!("cqrs.project", cqrs.projection = projection.name());
            if let Err(source) = projection.run(&mut (), &envelopes).instrument(span).await {
                failed = Some(EngineError::Projection {
                    stream: stream.clone(),
                    version,
                    projection: projection.name(),
                    source,
                });
                break;
            }
        }
        if let Some(panic) = panicked {
            // The aggregate's bug comes first; a projection's failure is only logged.
            if let Some(failed) = &failed {
                tracing::error!(error = %failed, "projection failed too");
            }
            return Err(EngineError::Panicked {
                stream: stream.clone(),
                call: "apply",
                committed: Some(version),
                source: panic,
            });
        }
        if let Some(failed) = failed {
            return Err(failed);
        }
        Ok(Committed {
            events: envelopes,
            version,
        })
    }

    /// Saves a snapshot; a failure is logged, because the commit already succeeded and
    /// the next load replays the events instead.
    ///
    /// A state that cannot be stored exactly (a NaN or an infinity in a float, which
    /// serde_json would write as `null`, making the snapshot unreadable) is not saved: a
    /// warning names the stream and the field, and the next load replays the events
    /// (from an older snapshot, if there is one).
    async fn save_snapshot(
        &self,
        store: &dyn crate::SnapshotStore,
        stream: &StreamId,
        state: &A,
        version: u64,
    ) {
        let state = match codec::to_json(state) {
            Ok(state) => state,
            Err(JsonError::NonFinite { path, value }) => {
                tracing::warn!(
                    %stream,
                    version,
                    %path,
                    value,
                    "snapshot not taken: the state holds a float that JSON cannot hold \
                     (NaN or infinity); the next load replays the events"
                );
                return;
            }
            Err(error) => {
                tracing::warn!(%stream, %error, "snapshot not taken: state does not serialise");
                return;
            }
        };
        let snapshot = Snapshot {
            stream_version: version,
            schema_version: A::SNAPSHOT_VERSION,
            state,
        };
        if let Err(error) = store.save_snapshot(stream, snapshot).await {
            tracing::warn!(%stream, %error, "snapshot not saved");
        }
    }
}
