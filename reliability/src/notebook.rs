//! A small domain written with the derives, as an application would: notebooks whose
//! notes are written and erased, an event type at schema version 2 with an upcaster, and
//! a read model that counts what it was fed. The data, input, model and soak tests use
//! it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use cqrs_core::{Aggregate, Command, DomainEvent, Envelope, Projection};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Stored as `note.written` (schema version 2) and `note.erased`.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "note.", rename_all = "snake_case")]
pub enum NoteEvent {
    /// A note was written. Version 1 had no word count.
    #[event(version = 2, upcast(from = 1, with = written_v1))]
    Written {
        /// The note.
        text: String,
        /// Its number of words.
        words: u64,
    },
    /// The last note was erased.
    Erased,
}

/// `note.written` v1 -> v2: counts the words of the text. Refuses data without a text
/// rather than panicking: upcasters run on whatever is stored.
pub fn written_v1(data: Value) -> Result<Value, String> {
    let text = data
        .get("text")
        .and_then(Value::as_str)
        .ok_or("note.written v1 has no string `text`")?;
    Ok(serde_json::json!({ "text": text, "words": words(text) }))
}

/// The number of whitespace-separated words of `text`.
pub fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// What a notebook is asked to do; the id of the notebook is passed to `execute`.
#[derive(Debug, Clone, Command)]
pub enum NoteCommand {
    /// Write a note.
    Write {
        /// The note.
        text: String,
    },
    /// Erase the last note.
    Erase,
}

/// Why a notebook refuses a command.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum NoteError {
    /// `Erase` on an empty notebook.
    #[error("the notebook has no note to erase")]
    Empty,
}

/// A notebook: how many notes it holds and how many words they have in all.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize, Aggregate)]
#[aggregate(command = NoteCommand, event = NoteEvent, error = NoteError)]
pub struct Notebook {
    /// Notes written and not erased.
    pub notes: u64,
    /// Words written, erased notes included.
    pub words: u64,
}

impl Notebook {
    async fn handle(&self, command: &NoteCommand, _: &()) -> Result<Vec<NoteEvent>, NoteError> {
        match command {
            NoteCommand::Write { text } => Ok(vec![NoteEvent::Written {
                text: text.clone(),
                words: words(text),
            }]),
            NoteCommand::Erase if self.notes == 0 => Err(NoteError::Empty),
            NoteCommand::Erase => Ok(vec![NoteEvent::Erased]),
        }
    }

    fn apply(&mut self, event: &NoteEvent) {
        match event {
            NoteEvent::Written { words, .. } => {
                self.notes += 1;
                self.words += words;
            }
            NoteEvent::Erased => self.notes = self.notes.saturating_sub(1),
        }
    }
}

/// A read model fed by a subscription: how many events it took, and the last version it
/// saw of each notebook. Clones share the counts, so a test keeps one clone and hands
/// the other to the subscription. Its memory is bounded by the number of notebooks.
#[derive(Debug, Clone, Default, Projection)]
#[projection(event = NoteEvent)]
pub struct NoteCounts {
    inner: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    events: AtomicU64,
    last_versions: Mutex<HashMap<String, u64>>,
}

impl NoteCounts {
    async fn reset(&self) -> Result<(), std::convert::Infallible> {
        self.inner.events.store(0, Ordering::SeqCst);
        self.versions().clear();
        Ok(())
    }

    /// Idempotent, as delivery is at-least-once: an event at or below the last version
    /// seen of its notebook was handled before.
    async fn handle(&self, event: &Envelope<NoteEvent>) -> Result<(), std::convert::Infallible> {
        let mut versions = self.versions();
        let last = versions.entry(event.stream.id().to_owned()).or_default();
        if event.stream_version > *last {
            *last = event.stream_version;
            self.inner.events.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Events handled since the last reset (each once).
    pub fn events(&self) -> u64 {
        self.inner.events.load(Ordering::SeqCst)
    }

    /// The last version handled of notebook `id`.
    pub fn last_version(&self, id: &str) -> Option<u64> {
        self.versions().get(id).copied()
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.inner
            .last_versions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
