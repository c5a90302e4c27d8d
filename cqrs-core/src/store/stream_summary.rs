//! What an operator sees of the streams a store holds: one line per stream, one per
//! stream type.

use chrono::{DateTime, Utc};

use crate::{Position, StreamId};

/// One stream, as [`EventLog::list_streams`](super::EventLog::list_streams) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamSummary {
    /// The stream.
    pub stream: StreamId,
    /// Its last version. Versions run from 1 without gaps, so this is also how many events
    /// it holds.
    pub version: u64,
    /// Where its last event is in the global order.
    pub last_position: Position,
    /// When its last event was stored.
    pub last_recorded_at: DateTime<Utc>,
}

impl StreamSummary {
    /// A stream whose last event is at `version`, `last_position`, stored at
    /// `last_recorded_at`.
    pub fn new(
        stream: StreamId,
        version: u64,
        last_position: Position,
        last_recorded_at: DateTime<Utc>,
    ) -> Self {
        Self {
            stream,
            version,
            last_position,
            last_recorded_at,
        }
    }
}

/// One stream type, as [`EventLog::stream_types`](super::EventLog::stream_types) counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamTypeSummary {
    /// The stream type (an aggregate's `TYPE`).
    pub stream_type: String,
    /// How many streams of this type hold at least one event.
    pub streams: u64,
    /// How many events were written to them together: their last versions summed
    /// (events removed by a purge or a truncation still count).
    pub events: u64,
}

impl StreamTypeSummary {
    /// `streams` streams of `stream_type`, holding `events` events together.
    pub fn new(stream_type: impl Into<String>, streams: u64, events: u64) -> Self {
        Self {
            stream_type: stream_type.into(),
            streams,
            events,
        }
    }
}
