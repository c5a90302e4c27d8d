//! Decode fuzzing: arbitrary stored events (any type name, any schema
//! version, any JSON, JSON shaped almost like the real thing, and JSON parsed from
//! arbitrary bytes) through the codec and the upcasters of derived event types (enums
//! with unit, named-field and newtype variants, renamed types, a two-step upcaster chain,
//! a struct event type, a flattened enum); and arbitrary input through what reads
//! untrusted stored text (metadata from JSON or from raw bytes as PostgreSQL hands them,
//! the trace context, positions) and through the CloudEvents export.
//!
//! Properties: nothing panics; a failure is a `DecodeError` naming the stored stream,
//! version and type, of the kind the envelope calls for (unknown type, newer version,
//! missing upcaster); a success re-encodes to data that decodes to the same event.
//! `PROPTEST_CASES` sets the cases per property (default 1,000).

use std::collections::BTreeMap;

use cqrs_core::codec::{self, serde_enum, DecodeError, DecodeErrorKind};
use cqrs_core::envelope::TraceParent;
use cqrs_core::{
    DomainEvent, EventTypeInfo, Metadata, NewEvent, PayloadError, Position, StoredEvent, StreamId,
};
use cqrs_reliability::notebook::NoteEvent;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Inner {
    x: i32,
    #[serde(default)]
    label: Option<char>,
}

#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "shape.", rename_all = "snake_case")]
enum Shape {
    Unit,
    Named {
        n: u8,
        name: String,
        tags: Vec<String>,
        inner: Option<Inner>,
        flag: bool,
    },
    Newtype(Inner),
    /// Version 1 had `amount` in cents, version 2 `cents` without a currency.
    #[event(version = 3, upcast(from = 1, with = amount_v1))]
    #[event(upcast(from = 2, with = amount_v2))]
    Amount {
        cents: i64,
        currency: String,
    },
    #[event(name = "legacy-name")]
    Renamed {
        #[serde(rename = "X", default)]
        x: f64,
        #[serde(default)]
        items: BTreeMap<String, u32>,
    },
}

/// v1 -> v2: `amount` becomes `cents`. Written as the docs teach: no indexing that
/// panics on data of the wrong shape.
fn amount_v1(mut data: Value) -> Result<Value, String> {
    let object = data.as_object_mut().ok_or("amount v1 is not an object")?;
    let amount = object.remove("amount").ok_or("amount v1 has no `amount`")?;
    object.insert("cents".into(), amount);
    Ok(data)
}

/// v2 -> v3: a currency, EUR for old data.
fn amount_v2(mut data: Value) -> Result<Value, String> {
    let object = data.as_object_mut().ok_or("amount v2 is not an object")?;
    object
        .entry("currency")
        .or_insert_with(|| Value::from("EUR"));
    Ok(data)
}

/// A struct event type: one type of its own.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(name = "payment.received", version = 2)]
struct PaymentReceived {
    amount: u64,
    reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Currency {
    Eur,
    Usd,
}

/// Written by hand with `serde_enum`, as the docs show for applications without the
/// derive; a field of enum type can hold an unknown variant of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Manual {
    Paid { currency: Currency, cents: u64 },
    Refunded,
}

impl DomainEvent for Manual {
    const EVENT_TYPES: &'static [EventTypeInfo] = &[
        EventTypeInfo {
            name: "Paid",
            version: 1,
        },
        EventTypeInfo {
            name: "Refunded",
            version: 1,
        },
    ];

    fn event_type(&self) -> &'static str {
        match self {
            Manual::Paid { .. } => "Paid",
            Manual::Refunded => "Refunded",
        }
    }

    fn encode(&self) -> Result<Value, cqrs_core::codec::JsonError> {
        serde_enum::encode(self)
    }

    fn decode(event_type: &str, data: &Value) -> Result<Self, PayloadError> {
        serde_enum::decode(event_type, data)
    }
}

/// Two families in one, as an application with several aggregates writes it.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
enum Everything {
    #[event(flatten)]
    Shapes(Shape),
    #[event(flatten)]
    Notes(NoteEvent),
    #[event(flatten)]
    Payments(PaymentReceived),
}

/// Every type name the families know, and some they do not.
const TYPE_NAMES: &[&str] = &[
    "shape.unit",
    "shape.named",
    "shape.newtype",
    "shape.amount",
    "legacy-name",
    "shape.renamed",
    "note.written",
    "note.erased",
    "payment.received",
    "Paid",
    "Refunded",
    "Unit",
    "",
];

/// Keys the event types use, so that generated objects are sometimes almost right.
const KEYS: &[&str] = &[
    "n",
    "name",
    "tags",
    "inner",
    "flag",
    "x",
    "X",
    "label",
    "cents",
    "amount",
    "currency",
    "items",
    "text",
    "words",
    "reference",
];

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn config() -> Config {
    Config {
        cases: cases(1_000),
        // A failure is a bug to fix, not a seed to keep.
        failure_persistence: None,
        ..Config::default()
    }
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-300i32..300).prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "[a-z]{0,2}".prop_map(Value::from),
        prop::sample::select(&["Eur", "Usd", "Gbp", "Paid"][..]).prop_map(Value::from),
    ]
}

/// Any JSON, with objects keyed mostly by the keys the event types use.
fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        let key = prop_oneof![4 => prop::sample::select(KEYS).prop_map(str::to_owned), 1 => any::<String>()];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON parsed from arbitrary bytes, when they parse (and `null` when not).
fn json_from_bytes() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        "[\\[\\]{}\":,0-9a-z .eE+-]{0,48}".prop_map(String::into_bytes),
    ]
    .prop_map(|bytes| serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn stored(event_type: String, event_version: u32, data: Value, metadata: Metadata) -> StoredEvent {
    // The event type went through `NewEvent::new`'s checks when it was written; an empty
    // or NUL-containing one cannot be stored, so it cannot be read either.
    let event_type = if cqrs_core::ident::validate("event type", &event_type).is_ok() {
        event_type
    } else {
        "x".to_owned()
    };
    NewEvent::new(event_type, event_version, data, metadata)
        .expect("a valid event type")
        .into_stored(
            StreamId::new("fuzz", "stream-7").expect("valid"),
            7,
            Position::from_parts(3, 4),
            chrono_now(),
        )
}

fn chrono_now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("a valid time")
}

fn event_type() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(TYPE_NAMES).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn event_version() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0u32..5, 1 => any::<u32>()]
}

/// The properties of one decode: typed failure naming the event, of the kind the
/// envelope calls for; or a success that survives a round trip.
fn check_decode<E: DomainEvent + PartialEq + std::fmt::Debug>(
    stored: &StoredEvent,
) -> Result<(), TestCaseError> {
    match codec::decode::<E>(stored) {
        Ok(envelope) => {
            prop_assert_eq!(envelope.event_type.as_str(), stored.event_type.as_str());
            prop_assert_eq!(envelope.data.event_type(), stored.event_type.as_str());
            let again = codec::encode(&envelope.data, Metadata::default())
                .map_err(|e| TestCaseError::fail(format!("decoded but does not encode: {e}")))?;
            let stored_again = again.into_stored(
                stored.stream.clone(),
                stored.stream_version,
                stored.position,
                stored.recorded_at,
            );
            let decoded_again = codec::decode_data::<E>(&stored_again)
                .map_err(|e| TestCaseError::fail(format!("re-encoded but does not decode: {e}")))?;
            prop_assert_eq!(&decoded_again, &envelope.data);
        }
        Err(error) => check_error::<E>(stored, &error)?,
    }
    Ok(())
}

fn check_error<E: DomainEvent>(
    stored: &StoredEvent,
    error: &DecodeError,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&error.stream, &stored.stream);
    prop_assert_eq!(error.stream_version, stored.stream_version);
    prop_assert_eq!(&error.event_type, &stored.event_type);
    prop_assert_eq!(error.event_version, stored.event_version);
    let message = error.to_string();
    prop_assert!(
        message.contains("fuzz/stream-7") && message.contains("version 7"),
        "{}",
        message
    );
    match (E::version_of(&stored.event_type), &error.kind) {
        (None, DecodeErrorKind::UnknownEventType) => {}
        (
            Some(current),
            DecodeErrorKind::UnknownVersion {
                stored: s,
                current: c,
            },
        ) => {
            prop_assert!(
                stored.event_version > current && *s == stored.event_version && *c == current
            );
        }
        (Some(current), DecodeErrorKind::MissingUpcaster { current: c, .. }) => {
            prop_assert!(stored.event_version < current && *c == current);
        }
        (Some(current), DecodeErrorKind::UpcasterFailed { .. }) => {
            prop_assert!(stored.event_version < current);
        }
        (Some(_), DecodeErrorKind::InvalidData(_)) => {}
        (known, kind) => {
            return Err(TestCaseError::fail(format!(
                "{:?} v{} (known: {known:?}) failed as {kind:?}",
                stored.event_type, stored.event_version
            )))
        }
    }
    Ok(())
}

fn check_all_families(stored: &StoredEvent) -> Result<(), TestCaseError> {
    check_decode::<Shape>(stored)?;
    check_decode::<NoteEvent>(stored)?;
    check_decode::<PaymentReceived>(stored)?;
    check_decode::<Manual>(stored)?;
    check_decode::<Everything>(stored)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_stored_events_decode_or_fail_typed(
        event_type in event_type(),
        event_version in event_version(),
        data in prop_oneof![3 => json(), 1 => json_from_bytes()],
    ) {
        check_all_families(&stored(event_type, event_version, data, Metadata::default()))?;
    }

    /// Data a derive would write, then spoiled at one place: the nearest misses.
    #[test]
    fn almost_valid_data_decodes_or_fails_typed(
        which in 0usize..7,
        currency in prop::sample::select(&["Eur", "Usd", "Gbp"][..]),
        n in any::<u8>(),
        cents in any::<i64>(),
        text in any::<String>(),
        key in prop::sample::select(KEYS),
        spoil in json(),
        event_version in 1u32..4,
    ) {
        let (event_type, mut data) = match which {
            6 => ("Paid", serde_json::json!({ "currency": currency, "cents": n })),
            0 => ("shape.named", serde_json::json!({ "n": n, "name": text, "tags": [], "inner": null, "flag": true })),
            1 => ("shape.newtype", serde_json::json!({ "x": cents as i32, "label": text.chars().next() })),
            2 => ("shape.amount", serde_json::json!({ "amount": cents, "cents": cents, "currency": text })),
            3 => ("legacy-name", serde_json::json!({ "X": cents as f64, "items": { text.clone(): n } })),
            4 => ("note.written", serde_json::json!({ "text": text, "words": n })),
            _ => ("payment.received", serde_json::json!({ "amount": cents as u64, "reference": text })),
        };
        // Unspoiled, at its current version, it decodes: the success path is exercised.
        let current = Everything::version_of(event_type).or(Manual::version_of(event_type));
        let sound = stored(event_type.to_owned(), current.expect("a known type"), data.clone(), Metadata::default());
        let decoded = codec::decode::<Everything>(&sound).is_ok() || codec::decode::<Manual>(&sound).is_ok();
        prop_assert!(decoded || currency == "Gbp", "{:?}", sound.data);
        if let Some(object) = data.as_object_mut() {
            if n % 3 == 0 {
                object.remove(key);
            } else {
                object.insert(key.to_owned(), spoil);
            }
        }
        check_all_families(&stored(event_type.to_owned(), event_version, data, Metadata::default()))?;
    }

    /// Metadata as PostgreSQL hands it over: raw jsonb bytes read straight into
    /// `Metadata`, or a JSON value. A success round-trips.
    #[test]
    fn metadata_from_arbitrary_input_reads_or_fails_typed(
        value in prop_oneof![json(), json_from_bytes()],
        bytes in prop::collection::vec(any::<u8>(), 0..96),
        correlation in prop_oneof![Just(None), any::<u128>().prop_map(Some)],
    ) {
        let mut value = value;
        if let (Value::Object(map), Some(id)) = (&mut value, correlation) {
            map.insert("correlation_id".into(), Value::from(uuid::Uuid::from_u128(id).to_string()));
        }
        let from_value = serde_json::from_value::<Metadata>(value.clone()).ok();
        let from_text = serde_json::from_slice::<Metadata>(value.to_string().as_bytes()).ok();
        prop_assert_eq!(&from_value, &from_text, "the memory and PostgreSQL paths agree");
        let from_bytes = serde_json::from_slice::<Metadata>(&bytes).ok();
        for metadata in [from_value, from_bytes].into_iter().flatten() {
            let json = serde_json::to_value(&metadata).expect("metadata serialises");
            let again: Metadata = serde_json::from_value(json).expect("and reads back");
            prop_assert_eq!(again, metadata);
        }
        // A position is stored as two integers; anything else is refused.
        let _ = serde_json::from_value::<Position>(value);
    }

    /// The W3C trace context parser never panics, and what it accepts it gives back.
    #[test]
    fn trace_contexts_parse_or_fail_typed(
        text in prop_oneof![
            any::<String>(),
            "[0-9a-fA-F-]{0,60}",
            "00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}",
            "[0-9a-f]{2}-[0-9a-fé]{31,33}-[0-9a-f]{15,17}-[0-9a-f]{1,3}",
        ],
    ) {
        if let Ok(parsed) = text.parse::<TraceParent>() {
            prop_assert_eq!(parsed.as_str(), text.as_str());
            prop_assert_eq!(parsed.trace_id().len(), 32);
            prop_assert_eq!(parsed.parent_id().len(), 16);
            let json = serde_json::to_value(&parsed).expect("serialises");
            prop_assert_eq!(serde_json::from_value::<TraceParent>(json).ok(), Some(parsed));
        }
    }

    /// Any stored event, with any stream id and metadata keys, exports as a CloudEvent
    /// with its core attributes intact.
    #[test]
    fn any_stored_event_exports_as_a_cloudevent(
        stream_type in "[^\u{0}]{1,20}",
        stream_id in "[^\u{0}]{1,40}",
        event_type in event_type(),
        data in json(),
        extra in prop::collection::btree_map(any::<String>(), any::<String>(), 0..4),
    ) {
        let metadata = extra.into_iter().fold(Metadata::default(), |m, (k, v)| m.with_extra(k, v));
        let mut event = stored(event_type, 1, data.clone(), metadata);
        event.stream = StreamId::new(&stream_type, &stream_id).expect("valid");
        let exported = event.to_cloudevent();
        prop_assert_eq!(&exported["specversion"], "1.0");
        prop_assert_eq!(&exported["type"], event.event_type.as_str());
        prop_assert_eq!(&exported["subject"], stream_id.as_str());
        prop_assert_eq!(&exported["data"], &data);
        let source = exported["source"].as_str().unwrap_or_default();
        prop_assert!(source.starts_with('/') && source.is_ascii(), "{}", source);
    }
}
