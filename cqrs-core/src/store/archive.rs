//! Archiving every stream that has been idle since a position.

use super::{EventStore, StoreError};
use crate::{Position, StreamId};

/// Archives ([`StreamStore::archive_stream`](super::StreamStore::archive_stream)) up to
/// `max_streams` streams whose last event is before `before` in the global order: the
/// streams nobody has written to since then (older than a date, with `before` the
/// position of the first event after it). Returns the streams archived, in listing order
/// (by type, then id); call again for the next ones, as the listing skips archived
/// streams.
///
/// Whole streams move, never part of one: a stream written after `before` stays in the
/// hot path with all its events. Each stream moves in a transaction of its own, so a
/// failure part-way leaves the ones already moved archived and the others untouched. A
/// stream written between the listing and its archiving is archived with that write
/// (the write was acknowledged before the move and moved with it): nothing is lost, but
/// it was not idle. Check a stream's last position first where that matters.
pub async fn archive_streams_before<S: EventStore + ?Sized>(
    store: &S,
    before: Position,
    max_streams: usize,
) -> Result<Vec<StreamId>, StoreError> {
    const PAGE: usize = 500;
    let mut archived = Vec::new();
    let mut after: Option<StreamId> = None;
    while archived.len() < max_streams {
        let page = store.list_streams(None, after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.stream.clone());
        let done = page.len() < PAGE;
        for summary in page {
            if archived.len() == max_streams {
                break;
            }
            if summary.last_position < before && store.archive_stream(&summary.stream).await? > 0 {
                archived.push(summary.stream);
            }
        }
        if done {
            break;
        }
    }
    Ok(archived)
}
