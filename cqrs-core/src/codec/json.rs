//! Typed values to JSON that every store keeps exactly: [`to_json`].
//!
//! `serde_json::to_value` (and `to_string`) write a NaN or an infinity as `null`, without
//! an error: an event holding one was stored, and no later load could decode it again
//! (`invalid type: null, expected f64`). Once encoded, such a `null` cannot be told from
//! a real one, so the check has to look at the typed value: [`to_json`] first walks it
//! with a serializer that only looks at its floats (it builds nothing, and on success
//! allocates nothing), then encodes it with `serde_json::to_value`. A non-finite float
//! is refused with the path to it (`lines[2].price`); the path is put together only on
//! that failure, each level adding its step on the way out.
//!
//! Why a separate pass rather than a serializer that wraps serde_json's and checks while
//! it encodes: measured, the pass is cheaper (the figures are in docs/src/performance.md).
//! The wrapper has to hand serde_json a wrapped value for every element and field, and
//! serde_json encodes each of them through a call it no longer inlines; the pass builds
//! nothing and inlines. The price of two passes: a hand-written `Serialize` that gives a
//! different result each time it is called (one that reads a clock or a counter) could
//! pass the look with one float and be encoded with another; serde's own impls and the
//! derive's do not.
//!
//! `-0.0` is written as `0.0`: PostgreSQL's `jsonb` keeps numbers as decimals, which have
//! no negative zero, so `-0.0` read back as `0.0` there and as `-0.0` from the memory
//! store. Writing `0.0` everywhere makes the backends agree (`-0.0 == 0.0` in Rust). Every
//! other finite `f32` and `f64` reads back bit for bit on every backend.

use std::fmt;

use serde::ser::{self, Serialize};
use serde_json::Value;

/// Why a value could not be turned into JSON that reads back as it was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// A float (`f32` or `f64`) is NaN, +∞ or −∞. JSON has no such numbers: serde_json
    /// writes `null`, which no later read decodes as a number, so the value is refused.
    #[error("{}", non_finite_message(path, *value))]
    NonFinite {
        /// Where the float is: `amount`, `lines[2].price`, `rates.EUR`; empty for the
        /// whole value.
        path: String,
        /// The float (an `f32` widened to `f64`).
        value: f64,
    },
    /// The value's `Serialize` failed: a failing hand-written implementation, an
    /// integer beyond 64 bits, a map whose keys are not strings, numbers or booleans.
    #[error("{}{source}", At(path))]
    Serialize {
        /// Where it failed, as for [`NonFinite`](Self::NonFinite); empty for the whole
        /// value, and when only serde_json's encoding refused it (a map key).
        path: String,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
}

impl JsonError {
    /// Where in the value it failed (empty for the value itself).
    pub fn path(&self) -> &str {
        match self {
            JsonError::NonFinite { path, .. } | JsonError::Serialize { path, .. } => path,
        }
    }
}

/// For hand-written [`DomainEvent::encode`](crate::DomainEvent::encode) implementations
/// that call serde_json themselves: `Ok(serde_json::to_value(self)?)`. Prefer
/// [`to_json`], which also refuses NaN and infinities.
impl From<serde_json::Error> for JsonError {
    fn from(source: serde_json::Error) -> Self {
        JsonError::Serialize {
            path: String::new(),
            source,
        }
    }
}

/// `value` as JSON, refusing what a store could not give back: a NaN or an infinity
/// anywhere in it is [`JsonError::NonFinite`] with its path. `-0.0` is written as `0.0`.
/// Otherwise the same as `serde_json::to_value`.
///
/// ```
/// use cqrs_core::codec::{to_json, JsonError};
///
/// #[derive(serde::Serialize)]
/// struct Line { price: f64 }
/// #[derive(serde::Serialize)]
/// struct Invoice { lines: Vec<Line> }
///
/// let fine = Invoice { lines: vec![Line { price: 0.1 }] };
/// assert_eq!(to_json(&fine)?, serde_json::json!({ "lines": [{ "price": 0.1 }] }));
///
/// let lines = vec![Line { price: 1.0 }, Line { price: 2.0 }, Line { price: f64::NAN }];
/// match to_json(&Invoice { lines }) {
///     Err(JsonError::NonFinite { path, value }) => {
///         assert_eq!(path, "lines[2].price");
///         assert!(value.is_nan());
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), JsonError>(())
/// ```
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Value, JsonError> {
    encode(value).map_err(|failure| failure.into_error(0))
}

/// [`to_json`] with the failure's path still in steps.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Value, Failure> {
    let mut seen = Seen::default();
    value.serialize(Look { seen: &mut seen })?;
    let mut json = serde_json::to_value(value).map_err(|source| Failure {
        steps: Vec::new(),
        kind: Kind::Serde(source),
    })?;
    if seen.negative_zero {
        positive_zeros(&mut json);
    }
    Ok(json)
}

/// What the look found that the encoding has to fix.
#[derive(Default)]
struct Seen {
    negative_zero: bool,
}

/// Every `-0.0` of `value` made `0.0`.
fn positive_zeros(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() && n.as_f64() == Some(0.0) => {
            if let Some(zero) = serde_json::Number::from_f64(0.0) {
                *n = zero;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(positive_zeros),
        Value::Object(map) => map.values_mut().for_each(positive_zeros),
        _ => {}
    }
}

/// Why the look failed, with the path still as steps (innermost first).
pub(crate) struct Failure {
    steps: Vec<Step>,
    kind: Kind,
}

enum Kind {
    NonFinite(f64),
    Serde(serde_json::Error),
}

impl Failure {
    /// The public error, leaving out the first `skip` steps of the path (the variant of
    /// an enum whose data is stored without it).
    pub(crate) fn into_error(self, skip: usize) -> JsonError {
        let mut path = String::new();
        for step in self.steps.iter().rev().skip(skip) {
            step.write(&mut path);
        }
        match self.kind {
            Kind::NonFinite(value) => JsonError::NonFinite { path, value },
            Kind::Serde(source) => JsonError::Serialize { path, source },
        }
    }

    /// Whether the outermost step is the variant of an enum.
    pub(crate) fn starts_with_variant(&self) -> bool {
        matches!(self.steps.last(), Some(Step::Variant(_)))
    }

    /// `self` with `step` (and then `variant`, the enum variant the step is in) added on
    /// its way out. Out of line: the success path only tests the result.
    #[cold]
    #[inline(never)]
    fn at(mut self, step: Step, variant: Option<&'static str>) -> Self {
        self.steps.push(step);
        if let Some(variant) = variant {
            self.steps.push(Step::Variant(variant));
        }
        self
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Failure")
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::NonFinite(value) => write!(f, "{} is not a finite number", Shown(*value)),
            Kind::Serde(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Failure {}

impl ser::Error for Failure {
    /// What a hand-written `Serialize` reports.
    fn custom<T: fmt::Display>(message: T) -> Self {
        Failure {
            steps: Vec::new(),
            kind: Kind::Serde(<serde_json::Error as ser::Error>::custom(message)),
        }
    }
}

/// One step of a path.
enum Step {
    Field(&'static str),
    Variant(&'static str),
    Index(usize),
    Key(String),
}

impl Step {
    fn write(&self, path: &mut String) {
        use fmt::Write as _;
        let name = |path: &mut String, name: &str| {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(name);
        };
        match self {
            Step::Field(field) | Step::Variant(field) => name(path, field),
            Step::Key(key) if is_plain(key) => name(path, key),
            Step::Key(key) => {
                let _ = write!(path, "[{key:?}]");
            }
            Step::Index(i) => {
                let _ = write!(path, "[{i}]");
            }
        }
    }
}

/// A key that reads unambiguously after a dot.
fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The text of a map key for a path: what serde_json makes of it.
fn key_text<K: Serialize + ?Sized>(key: &K) -> String {
    match serde_json::to_value(key) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".to_owned(),
    }
}

/// "`lines[2].price` is NaN, which JSON cannot hold (...)": the text of every error about
/// a non-finite float.
pub(crate) fn non_finite_message(path: &str, value: f64) -> String {
    format!(
        "{} is {}, which JSON cannot hold (it would be stored as null and never read back)",
        Place(path),
        Shown(value)
    )
}

struct Place<'a>(&'a str);

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("the value")
        } else {
            write!(f, "`{}`", self.0)
        }
    }
}

/// "`lines[2]`: " before a message, or nothing for the whole value.
struct At<'a>(&'a str);

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "`{}`: ", self.0)
        }
    }
}

struct Shown(f64);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            v if v.is_nan() => f.write_str("NaN"),
            v if v > 0.0 => f.write_str("+infinity"),
            _ => f.write_str("-infinity"),
        }
    }
}

/// The serializer of the look: visits everything serde_json would encode, builds
/// nothing, and fails on a non-finite float (and on an integer serde_json would refuse,
/// so that its error has a path too).
struct Look<'a> {
    seen: &'a mut Seen,
}

/// A compound of the look; `variant` is the enum variant it is the data of, `next` the
/// index of its next element, `key` the text of a key whose value comes next.
struct Compound<'a> {
    seen: &'a mut Seen,
    variant: Option<&'static str>,
    next: usize,
    key: Option<String>,
}

impl<'a> Look<'a> {
    fn compound(self, variant: Option<&'static str>) -> Result<Compound<'a>, Failure> {
        Ok(Compound {
            seen: self.seen,
            variant,
            next: 0,
            key: None,
        })
    }
}

impl Compound<'_> {
    fn look<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failure> {
        value.serialize(Look { seen: self.seen })
    }

    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Failure> {
        let index = self.next;
        self.next += 1;
        match self.look(value) {
            Ok(()) => Ok(()),
            Err(e) => Err(e.at(Step::Index(index), self.variant)),
        }
    }
}

/// "number out of range", as serde_json says it.
fn out_of_range() -> Failure {
    let source = serde_json::to_value(u128::MAX).expect_err("beyond 64 bits");
    Failure {
        steps: Vec::new(),
        kind: Kind::Serde(source),
    }
}

type Looked = Result<(), Failure>;

impl<'a> ser::Serializer for Look<'a> {
    type Ok = ();
    type Error = Failure;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    #[inline]
    fn serialize_f32(self, v: f32) -> Looked {
        self.serialize_f64(f64::from(v))
    }

    #[inline]
    fn serialize_f64(self, v: f64) -> Looked {
        if v == 0.0 {
            self.seen.negative_zero |= v.is_sign_negative();
        } else if !v.is_finite() {
            return Err(Failure {
                steps: Vec::new(),
                kind: Kind::NonFinite(v),
            });
        }
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Looked {
        if i64::try_from(v).is_ok() || u64::try_from(v).is_ok() {
            Ok(())
        } else {
            Err(out_of_range())
        }
    }

    fn serialize_u128(self, v: u128) -> Looked {
        match u64::try_from(v) {
            Ok(_) => Ok(()),
            Err(_) => Err(out_of_range()),
        }
    }

    #[inline]
    fn serialize_bool(self, _: bool) -> Looked {
        Ok(())
    }
    #[inline]
    fn serialize_i8(self, _: i8) -> Looked {
        Ok(())
    }
    #[inline]
    fn serialize_i16(self, _: i16) -> Looked {
        Ok(())
    }
    #[inline]
    fn serialize_i32(self, _: i32) -> Looked {
        Ok(())
    }
    #[inline]
    fn serialize_i64(self, _: i64) -> Looked {
        Ok(())
    }
    #[inline]
    fn serialize_u8(self, _: u8) -> Looked {
        Ok(())
    }
    #[inline]
    fn serialize_u16(self, _: u16) -> Looked {
        Ok(())
    }
    #[inline]
    fn serialize_u32(self, _: u32) -> Looked {
        Ok(())
    }
    #[inline]
    fn serialize_u64(self, _: u64) -> Looked {
        Ok(())
    }
    #[inline]
    fn serialize_char(self, _: char) -> Looked {
        Ok(())
    }
    #[inline]
    fn serialize_str(self, _: &str) -> Looked {
        Ok(())
    }
    #[inline]
    fn serialize_bytes(self, _: &[u8]) -> Looked {
        Ok(())
    }
    #[inline]
    fn serialize_none(self) -> Looked {
        Ok(())
    }
    #[inline]
    fn serialize_unit(self) -> Looked {
        Ok(())
    }
    #[inline]
    fn serialize_unit_struct(self, _: &'static str) -> Looked {
        Ok(())
    }
    #[inline]
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Looked {
        Ok(())
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Looked {
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Looked {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Looked {
        match value.serialize(self) {
            Ok(()) => Ok(()),
            Err(e) => Err(e.at(Step::Variant(variant), None)),
        }
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>, Failure> {
        self.compound(None)
    }

    fn serialize_tuple(self, _: usize) -> Result<Compound<'a>, Failure> {
        self.compound(None)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, Failure> {
        self.compound(None)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Failure> {
        self.compound(Some(variant))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a>, Failure> {
        self.compound(None)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, Failure> {
        self.compound(None)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Failure> {
        self.compound(Some(variant))
    }

    /// Text holds no float: nothing to format.
    #[inline]
    fn collect_str<T: fmt::Display + ?Sized>(self, _: &T) -> Looked {
        Ok(())
    }
}

macro_rules! sequence {
    ($trait:ident, $method:ident) => {
        impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = Failure;

            #[inline]
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Looked {
                self.element(value)
            }

            #[inline]
            fn end(self) -> Looked {
                Ok(())
            }
        }
    };
}

sequence!(SerializeSeq, serialize_element);
sequence!(SerializeTuple, serialize_element);
sequence!(SerializeTupleStruct, serialize_field);
sequence!(SerializeTupleVariant, serialize_field);

macro_rules! structure {
    ($trait:ident) => {
        impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = Failure;

            #[inline]
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Looked {
                match self.look(value) {
                    Ok(()) => Ok(()),
                    Err(e) => Err(e.at(Step::Field(key), self.variant)),
                }
            }

            #[inline]
            fn end(self) -> Looked {
                Ok(())
            }
        }
    };
}

structure!(SerializeStruct);
structure!(SerializeStructVariant);

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Failure;

    // A key and its value one call apart (serde's own maps and `flatten` use
    // `serialize_entry` instead): the key's text is kept for the path of its value.
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Looked {
        let text = key_text(key);
        match self.look(key) {
            Ok(()) => {
                self.key = Some(text);
                Ok(())
            }
            Err(e) => Err(e.at(Step::Key(text), None)),
        }
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Looked {
        let key = self.key.take().unwrap_or_default();
        match self.look(value) {
            Ok(()) => Ok(()),
            Err(e) => Err(e.at(Step::Key(key), None)),
        }
    }

    #[inline]
    fn serialize_entry<K, V>(&mut self, key: &K, value: &V) -> Looked
    where
        K: Serialize + ?Sized,
        V: Serialize + ?Sized,
    {
        match self.look(key).and_then(|()| self.look(value)) {
            Ok(()) => Ok(()),
            // The key's text only when something failed.
            Err(e) => Err(e.at(Step::Key(key_text(key)), None)),
        }
    }

    #[inline]
    fn end(self) -> Looked {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;
    use serde_json::json;

    use super::*;

    #[derive(Serialize)]
    struct Line {
        sku: String,
        price: f64,
    }

    #[derive(Serialize)]
    enum Shape {
        Circle { radius: f32 },
        Pair(f64, f64),
        Scalar(f64),
    }

    #[derive(Serialize)]
    struct Everything {
        amount: f64,
        lines: Vec<Line>,
        rates: BTreeMap<String, f64>,
        shape: Shape,
        maybe: Option<f64>,
        tuple: (u8, f64),
    }

    fn sound() -> Everything {
        Everything {
            amount: 1.5,
            lines: vec![
                Line {
                    sku: "a".into(),
                    price: 2.0,
                },
                Line {
                    sku: "b".into(),
                    price: 0.1 + 0.2,
                },
            ],
            rates: BTreeMap::from([("EUR".to_owned(), 1.1), ("US $".to_owned(), 0.9)]),
            shape: Shape::Circle { radius: 0.5 },
            maybe: Some(-0.0),
            tuple: (1, 5e-324),
        }
    }

    /// A change that puts a bad float somewhere in [`sound`]'s value.
    type Spoil = Box<dyn Fn(&mut Everything)>;

    fn non_finite_at(value: &impl Serialize) -> (String, f64) {
        match to_json(value) {
            Err(JsonError::NonFinite { path, value }) => (path, value),
            other => panic!("expected NonFinite, got {other:?}"),
        }
    }

    #[test]
    fn writes_what_serde_json_writes_for_finite_values() {
        let value = sound();
        let expected = serde_json::to_value(&value).expect("serde_json");
        assert_eq!(to_json(&value).expect("finite"), expected);
        // And the same for serde_json's own Value (its numbers go through the check).
        assert_eq!(to_json(&expected).expect("a Value"), expected);
        assert_eq!(to_json(&json!(null)).expect("null"), json!(null));
    }

    #[test]
    fn negative_zero_is_written_as_zero() {
        for written in [to_json(&-0.0_f64), to_json(&-0.0_f32)] {
            let written = written.expect("finite");
            let back: f64 = serde_json::from_value(written).expect("a number");
            assert_eq!(back.to_bits(), 0.0_f64.to_bits());
        }
        // Inside a value too (`maybe` is `Some(-0.0)`).
        let nested = to_json(&sound()).expect("finite")["maybe"].as_f64();
        assert_eq!(nested.map(f64::to_bits), Some(0.0_f64.to_bits()));
    }

    #[test]
    fn every_non_finite_float_is_refused_with_its_path() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let cases: Vec<(Spoil, &str)> = vec![
                (Box::new(move |e| e.amount = bad), "amount"),
                (Box::new(move |e| e.lines[1].price = bad), "lines[1].price"),
                (
                    Box::new(move |e| {
                        e.rates.insert("EUR".into(), bad);
                    }),
                    "rates.EUR",
                ),
                (
                    Box::new(move |e| {
                        e.rates.insert("US $".into(), bad);
                    }),
                    "rates[\"US $\"]",
                ),
                (
                    Box::new(move |e| e.shape = Shape::Circle { radius: bad as f32 }),
                    "shape.Circle.radius",
                ),
                (
                    Box::new(move |e| e.shape = Shape::Pair(1.0, bad)),
                    "shape.Pair[1]",
                ),
                (
                    Box::new(move |e| e.shape = Shape::Scalar(bad)),
                    "shape.Scalar",
                ),
                (Box::new(move |e| e.maybe = Some(bad)), "maybe"),
                (Box::new(move |e| e.tuple.1 = bad), "tuple[1]"),
            ];
            for (spoil, path) in cases {
                let mut value = sound();
                spoil(&mut value);
                let (at, value) = non_finite_at(&value);
                assert_eq!(at, path);
                assert_eq!(value.is_nan(), bad.is_nan(), "{path}");
                assert!(value.is_nan() || value == bad, "{path}: {value}");
            }
            // The value itself, and an f32.
            assert_eq!(non_finite_at(&bad).0, "");
            assert_eq!(non_finite_at(&vec![1.0, bad as f32]).0, "[1]");
        }
    }

    #[test]
    fn a_serialisation_error_names_its_path_when_the_look_finds_it() {
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("refused"))
            }
        }
        let failing = json_error(&BTreeMap::from([("a b", vec![None, Some(Refuses)])]));
        assert_eq!(failing.path(), "[\"a b\"][1]");
        assert_eq!(failing.to_string(), "`[\"a b\"][1]`: refused");
        let big = json_error(&(0_u128, u128::MAX));
        assert_eq!(big.path(), "[1]");
        assert!(big.to_string().contains("number out of range"), "{big}");
        assert!(json_error(&i128::MIN).path().is_empty());
        assert!(to_json(&(i128::from(i64::MIN), u128::from(u64::MAX))).is_ok());
        // A key serde_json refuses is found by its encoding, not by the look: no path.
        let keys = json_error(&vec![BTreeMap::from([(vec![1_u8], 1_u8)])]);
        assert_eq!(keys.to_string(), "key must be a string");
        assert_eq!(keys.path(), "");
    }

    fn json_error(value: &impl Serialize) -> JsonError {
        match to_json(value) {
            Err(e @ JsonError::Serialize { .. }) => e,
            other => panic!("expected Serialize, got {other:?}"),
        }
    }

    #[test]
    fn messages_say_where_and_what() {
        let mut value = sound();
        value.lines[0].price = f64::NEG_INFINITY;
        let error = to_json(&value).expect_err("infinite");
        assert_eq!(
            error.to_string(),
            "`lines[0].price` is -infinity, which JSON cannot hold (it would be stored as \
             null and never read back)"
        );
        assert!(to_json(&f64::NAN)
            .expect_err("NaN")
            .to_string()
            .starts_with("the value is NaN"));
    }
}
