//! The envelope around every stored event: ids, stream, versions, position, time,
//! metadata and data.

mod cloudevent;
pub use cloudevent::{Attribute, CloudEventError};
mod id;
mod metadata;
mod position;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::ident::{self, IdentifierError};
use crate::personal::{self, DataKey, PersonalError, PersonalValue, Subject};
use crate::StreamId;

pub(crate) use metadata::parse_or_warn;
pub use metadata::{InvalidTraceParent, InvalidTraceState, Metadata, TraceParent, TraceState};
pub use position::{Position, PositionParseError};

pub(crate) use id::now_v7;

/// One recorded event: the envelope (who, where, when, why) around its data.
///
/// `D` is the data: [`serde_json::Value`] as stored ([`StoredEvent`]), or the
/// application's event type once decoded by the [codec](crate::codec). The envelope
/// fields are the same either way, so a read model sees the stream version, position and
/// metadata of every typed event.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<D> {
    /// Unique id of the event (UUID v7: time-ordered).
    pub event_id: Uuid,
    /// The stream the event belongs to.
    pub stream: StreamId,
    /// 1-based, contiguous version of the event within its stream.
    pub stream_version: u64,
    /// Position in the store-wide commit order.
    pub position: Position,
    /// Stable name of the event type, e.g. `"account.opened"`.
    pub event_type: String,
    /// Schema version of the event type the data was written with.
    pub event_version: u32,
    /// When the store recorded the event.
    pub recorded_at: DateTime<Utc>,
    /// Correlation, causation, trace context and free key/values.
    pub metadata: Metadata,
    /// The event data.
    pub data: D,
}

/// An event as a store holds it: data as JSON, exactly as written (upcasting happens on
/// read, never in storage).
pub type StoredEvent = Envelope<serde_json::Value>;

impl<D> Envelope<D> {
    /// Whether this is the tombstone of a deleted stream ([`TOMBSTONE_EVENT_TYPE`]): its
    /// last event, which a subscription receives as the stream's deletion notice.
    pub fn is_tombstone(&self) -> bool {
        self.event_type == TOMBSTONE_EVENT_TYPE
    }

    /// The same envelope around other data: how a stored event becomes a typed one.
    pub fn with_data<T>(&self, data: T) -> Envelope<T> {
        Envelope {
            event_id: self.event_id,
            stream: self.stream.clone(),
            stream_version: self.stream_version,
            position: self.position,
            event_type: self.event_type.clone(),
            event_version: self.event_version,
            recorded_at: self.recorded_at,
            metadata: self.metadata.clone(),
            data,
        }
    }

    /// Replaces the data, keeping the envelope.
    ///
    /// By value, so nothing is cloned: Rust has no struct update across types, hence the
    /// second field list beside [`with_data`](Self::with_data).
    pub fn map<T>(self, f: impl FnOnce(D) -> T) -> Envelope<T> {
        Envelope {
            event_id: self.event_id,
            stream: self.stream,
            stream_version: self.stream_version,
            position: self.position,
            event_type: self.event_type,
            event_version: self.event_version,
            recorded_at: self.recorded_at,
            metadata: self.metadata,
            data: f(self.data),
        }
    }
}

/// The event type of a tombstone: the last event of a deleted stream, written by the store
/// ([`StreamStore::delete_stream`](crate::StreamStore::delete_stream)). Subscriptions
/// receive it as the stream's deletion notice, whatever their event-type filter; typed
/// listeners are not handed it (it is no event of theirs). An application's event of this
/// type is refused where it is built ([`IdentifierError::Reserved`]).
pub const TOMBSTONE_EVENT_TYPE: &str = "$deleted";

/// An event about to be appended: everything but what the store assigns (stream,
/// version, position and time).
///
/// It may carry [personal values](crate::personal) still to seal, kept out of its data
/// ([`personal`](Self::personal)): a store seals them into the data with
/// [`seal`](Self::seal) before it writes the event.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub(crate) event_id: Uuid,
    pub(crate) event_type: String,
    pub(crate) event_version: u32,
    pub(crate) data: serde_json::Value,
    pub(crate) metadata: Metadata,
    /// Personal values not yet sealed: never in `data` in plaintext.
    personal: Vec<PersonalValue>,
}

impl NewEvent {
    /// Builds an event with a fresh UUID v7 id, refusing an invalid event type name, the
    /// tombstone's type and data that holds the reserved key
    /// [`PERSONAL_KEY`](crate::personal::PERSONAL_KEY).
    ///
    /// Applications rarely call this: the engine encodes typed events. It is for tools
    /// that write untyped events and for backend tests.
    ///
    /// ```
    /// use cqrs_core::{Metadata, NewEvent};
    /// let event = NewEvent::new("account.opened", 1, serde_json::json!({"owner": "Ada"}), Metadata::default())?;
    /// assert_eq!(event.event_type(), "account.opened");
    /// // Sealed personal fields are the store's to write.
    /// let forged = serde_json::json!({ "$personal": [] });
    /// assert!(NewEvent::new("account.opened", 1, forged, Metadata::default()).is_err());
    /// # Ok::<(), cqrs_core::ident::IdentifierError>(())
    /// ```
    pub fn new(
        event_type: impl Into<String>,
        event_version: u32,
        data: serde_json::Value,
        metadata: Metadata,
    ) -> Result<Self, IdentifierError> {
        let event_type = event_type.into();
        ident::validate("event type", &event_type)?;
        if event_type == TOMBSTONE_EVENT_TYPE {
            return Err(IdentifierError::Reserved {
                what: "event type",
                value: event_type,
            });
        }
        // Sealed personal fields are the store's to write: data that claims to hold some
        // would read as tampered.
        if data.get(personal::PERSONAL_KEY).is_some() {
            return Err(IdentifierError::Reserved {
                what: "data key",
                value: personal::PERSONAL_KEY.to_owned(),
            });
        }
        Ok(Self {
            event_id: id::now_v7(),
            event_type,
            event_version,
            data,
            metadata,
            personal: Vec::new(),
        })
    }

    /// The tombstone that closes a deleted stream
    /// ([`StreamStore::delete_stream`](crate::StreamStore::delete_stream)): event type
    /// [`TOMBSTONE_EVENT_TYPE`], version 1, empty data. For stores: an application
    /// deletes a stream through its store, and cannot append this itself.
    pub fn tombstone(metadata: Metadata) -> Self {
        Self {
            event_id: id::now_v7(),
            event_type: TOMBSTONE_EVENT_TYPE.to_owned(),
            event_version: 1,
            data: serde_json::Value::Object(serde_json::Map::new()),
            metadata,
            personal: Vec::new(),
        }
    }

    /// Replaces the generated event id (to make an append idempotent by id, or in tests).
    /// Sealed personal fields are bound to the id: replace it before [`seal`](Self::seal).
    pub fn with_event_id(mut self, event_id: Uuid) -> Self {
        self.event_id = event_id;
        self
    }

    /// The event id.
    pub fn event_id(&self) -> Uuid {
        self.event_id
    }

    /// The event type name.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The schema version of the data.
    pub fn event_version(&self) -> u32 {
        self.event_version
    }

    /// The data, as JSON.
    pub fn data(&self) -> &serde_json::Value {
        &self.data
    }

    /// The metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Adds a personal value to seal into the data ([`seal`](Self::seal)); it is not in
    /// the data until then. [`codec::encode`](crate::codec::encode) adds those of the
    /// fields the event type declares personal.
    pub fn with_personal(mut self, value: PersonalValue) -> Self {
        self.personal.push(value);
        self
    }

    /// The personal values still to seal (empty once [`seal`](Self::seal) ran).
    pub fn personal(&self) -> &[PersonalValue] {
        &self.personal
    }

    /// Seals the personal values into the data, each under the key `key_of` gives for
    /// its subject and bound to this event's id ([`personal::seal`]); afterwards
    /// [`personal`](Self::personal) is empty. A store calls it before it writes, with
    /// the keys of every subject of [`personal`](Self::personal) (creating those it
    /// lacks). Without personal values it does nothing. On an error the event is left
    /// as it was.
    ///
    /// ```
    /// use cqrs_core::personal::{self, DataKey, KeyState, PersonalValue, Subject};
    /// use cqrs_core::{Metadata, NewEvent};
    /// use serde_json::json;
    ///
    /// let subject = Subject::new("c-1")?;
    /// let name = PersonalValue::new(subject, "name", json!("Ada"), json!("[forgotten]"));
    /// let mut event = NewEvent::new("customer.registered", 1, json!({ "customer_id": "c-1" }), Metadata::default())?
    ///     .with_personal(name);
    /// let key = DataKey::generate();
    /// event.seal(|_| Some(&key))?;
    /// assert!(event.personal().is_empty());
    /// let opened = personal::open(event.event_id(), event.data(), |_| KeyState::Present(&key))?;
    /// assert_eq!(opened, Some(json!({ "customer_id": "c-1", "name": "Ada" })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn seal<'k>(
        &mut self,
        key_of: impl Fn(&Subject) -> Option<&'k DataKey>,
    ) -> Result<(), PersonalError> {
        personal::seal_values(self.event_id, &mut self.data, &self.personal, key_of)?;
        self.personal.clear();
        Ok(())
    }

    /// Turns the event into its stored form, once the store has given it a place.
    /// For backends, which [`seal`](Self::seal) its personal values first: the stored
    /// form has no place for unsealed ones (a debug build asserts there are none).
    pub fn into_stored(
        self,
        stream: StreamId,
        stream_version: u64,
        position: Position,
        recorded_at: DateTime<Utc>,
    ) -> StoredEvent {
        debug_assert!(
            self.personal.is_empty(),
            "NewEvent::into_stored with {} unsealed personal value(s): a store seals them \
             first (NewEvent::seal)",
            self.personal.len()
        );
        Envelope {
            event_id: self.event_id,
            stream,
            stream_version,
            position,
            event_type: self.event_type,
            event_version: self.event_version,
            recorded_at,
            metadata: self.metadata,
            data: self.data,
        }
    }
}
