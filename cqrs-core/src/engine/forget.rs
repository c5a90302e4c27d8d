//! Forgetting a subject of personal data through the engine: in the store, and in the
//! engine's own images.

use super::{Engine, EngineError};
use crate::{Aggregate, StreamId};

impl<A: Aggregate> Engine<A> {
    /// Forgets `subject` in the store ([`StreamStore::forget_subject`](crate::StreamStore::forget_subject))
    /// and drops this engine's images of the streams that held its personal data: their
    /// state was derived from the values now unreadable, and the next load folds the
    /// placeholders instead. Returns those streams. Other engines' image caches (in other
    /// processes) keep theirs until they are evicted or the process restarts: forget
    /// through every engine that caches images of these aggregates, or restart them.
    pub async fn forget(
        &self,
        subject: &crate::personal::Subject,
    ) -> Result<Vec<StreamId>, EngineError<A::Error>> {
        let streams = self.events.forget_subject(subject).await?;
        for stream in &streams {
            self.forget_image(stream);
        }
        Ok(streams)
    }
}
