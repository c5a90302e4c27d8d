//! Upcasters: how an event type declares that its old data becomes current data.

use serde_json::Value;

/// Turns the data of one event type at `from_version` into `from_version + 1`.
///
/// Declared with the event type ([`DomainEvent::UPCASTERS`](crate::DomainEvent::UPCASTERS));
/// the [codec](crate::codec) chains them, so data written at version 1 of a type now at version 3 goes
/// through the 1->2 and the 2->3 upcasters. Stored data is never rewritten: upcasting
/// happens on every read, which keeps history exactly as it was written and lets a
/// fixed upcaster repair what a buggy one produced.
///
/// An upcaster runs on whatever is stored, edited rows included: it refuses data of an
/// unexpected shape with an `Err` rather than indexing into it (`data["amount"] = ...`
/// panics when `data` is an array or a number).
///
/// ```
/// use cqrs_core::Upcaster;
/// use serde_json::{json, Value};
///
/// // v1 stored `amount` as a number of cents; v2 has a currency too.
/// fn money_v1_to_v2(mut data: Value) -> Result<Value, String> {
///     let object = data.as_object_mut().ok_or("Deposited v1 is not an object")?;
///     let cents = object.remove("amount").ok_or("Deposited v1 has no amount")?;
///     object.insert("amount".into(), json!({ "cents": cents, "currency": "EUR" }));
///     Ok(data)
/// }
///
/// const UPCASTERS: &[Upcaster] = &[Upcaster::new("Deposited", 1, money_v1_to_v2)];
/// assert_eq!(UPCASTERS[0].from_version, 1);
/// assert!(money_v1_to_v2(json!([1])).is_err());
/// assert_eq!(
///     money_v1_to_v2(json!({ "amount": 5 })),
///     Ok(json!({ "amount": { "cents": 5, "currency": "EUR" } }))
/// );
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    /// The event type it applies to.
    pub event_type: &'static str,
    /// The version it reads; it produces `from_version + 1`.
    pub from_version: u32,
    /// The transformation. An `Err` becomes a decode error naming the event.
    pub upcast: fn(Value) -> Result<Value, String>,
}

impl Upcaster {
    /// Declares an upcaster (usable in a `const`).
    pub const fn new(
        event_type: &'static str,
        from_version: u32,
        upcast: fn(Value) -> Result<Value, String>,
    ) -> Self {
        Self {
            event_type,
            from_version,
            upcast,
        }
    }
}
