//! `streams list`, `streams types`, `stream show`, `events --correlation`: what the log
//! holds.

use std::sync::Arc;

use cqrs_core::{EventLog, Position, StoredEvent, StreamId, StreamStore};
use cqrs_postgres::PgStore;
use serde_json::{json, Value};

use crate::error::CliError;
use crate::output::Output;

/// The most characters of an event's data shown in a table.
const DATA_WIDTH: usize = 60;

/// `cqrs streams list`.
pub async fn list(
    store: &PgStore,
    stream_type: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> Result<Output, CliError> {
    let after = after.map(parse_stream).transpose()?;
    let streams = store
        .list_streams(stream_type, after.as_ref(), limit)
        .await?;
    let next = (streams.len() == limit)
        .then(|| streams.last().map(|s| s.stream.to_string()))
        .flatten();
    let json = json!({
        "streams": streams.iter().map(|s| json!({
            "stream_type": s.stream.stream_type(),
            "stream_id": s.stream.id(),
            "version": s.version,
            "last_position": s.last_position.to_string(),
            "last_recorded_at": s.last_recorded_at.to_rfc3339(),
        })).collect::<Vec<_>>(),
        "next_after": next,
    });
    let rows = streams
        .iter()
        .map(|s| {
            vec![
                s.stream.stream_type().to_owned(),
                s.stream.id().to_owned(),
                s.version.to_string(),
                s.last_position.to_string(),
                s.last_recorded_at.to_rfc3339(),
            ]
        })
        .collect();
    Ok(Output {
        json,
        headers: vec!["TYPE", "ID", "VERSION", "LAST POSITION", "LAST RECORDED"],
        rows,
        footer: next.map(|n| format!("more: --after {n}")),
    })
}

/// `cqrs streams types`.
pub async fn types(store: &PgStore) -> Result<Output, CliError> {
    let types = store.stream_types().await?;
    let json = json!({
        "stream_types": types.iter().map(|t| json!({
            "stream_type": t.stream_type, "streams": t.streams, "events": t.events,
        })).collect::<Vec<_>>(),
    });
    let rows = types
        .iter()
        .map(|t| {
            vec![
                t.stream_type.clone(),
                t.streams.to_string(),
                t.events.to_string(),
            ]
        })
        .collect();
    Ok(Output {
        json,
        headers: vec!["TYPE", "STREAMS", "EVENTS"],
        rows,
        footer: None,
    })
}

/// `cqrs stream show TYPE ID --last N`: the last events, oldest first.
pub async fn show(
    store: &PgStore,
    stream_type: &str,
    id: &str,
    last: usize,
) -> Result<Output, CliError> {
    let stream = StreamId::new(stream_type, id)
        .map_err(|e| CliError::Input(format!("{e}: give the stream's type and id as stored")))?;
    let mut events = store.read_stream_backwards(&stream, u64::MAX, last).await?;
    events.reverse();
    let footer = events
        .is_empty()
        .then(|| format!("stream {stream} has no events"));
    Ok(events_output(&events, footer))
}

/// `cqrs events --correlation ID`.
pub async fn by_correlation(
    store: &PgStore,
    correlation: uuid::Uuid,
    limit: usize,
) -> Result<Output, CliError> {
    let events = store
        .read_by_correlation(correlation, Position::START, limit)
        .await?;
    let footer = events
        .is_empty()
        .then(|| format!("no event carries correlation id {correlation}"));
    Ok(events_output(&events, footer))
}

/// Events as CloudEvents documents (JSON) or one line each (table).
fn events_output(events: &[Arc<StoredEvent>], footer: Option<String>) -> Output {
    let json = json!({
        "events": events.iter().map(|e| e.to_cloudevent()).collect::<Vec<Value>>(),
    });
    let rows = events
        .iter()
        .map(|e| {
            let data = e.data.to_string();
            let data = if data.chars().count() > DATA_WIDTH {
                format!("{}…", data.chars().take(DATA_WIDTH).collect::<String>())
            } else {
                data
            };
            vec![
                e.position.to_string(),
                e.stream.to_string(),
                e.stream_version.to_string(),
                e.event_type.clone(),
                e.recorded_at.to_rfc3339(),
                data,
            ]
        })
        .collect();
    Output {
        json,
        headers: vec!["POSITION", "STREAM", "VERSION", "TYPE", "RECORDED", "DATA"],
        rows,
        footer,
    }
}

/// A stream written `TYPE/ID`.
fn parse_stream(text: &str) -> Result<StreamId, CliError> {
    let (stream_type, id) = text
        .split_once('/')
        .ok_or_else(|| CliError::Input(format!("{text:?} is not a stream: write TYPE/ID")))?;
    StreamId::new(stream_type, id).map_err(|e| CliError::Input(format!("{e}: write TYPE/ID")))
}
