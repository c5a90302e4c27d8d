//! Sealing personal fields into an event's data and opening them (pure: no I/O). The
//! stored form is described in the [module](super) documentation.
//!
//! The associated data ends with the subject, which holds no NUL, so the associated data
//! of two different (event, field, subject) triples never coincide.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::key::wipe;
use super::subject::kind;
use super::{cipher, DataKey, PersonalError, PersonalValue, Subject};

/// The reserved key of a sealed event's data that holds its sealed personal fields.
pub const PERSONAL_KEY: &str = "$personal";

/// Prefix of the associated data of a sealed field: the format's name and version.
const AAD_PREFIX: &[u8] = b"cqrs-personal-v1\0";

/// Whether a subject's data key can still be had, for [`open`].
#[derive(Debug, Clone, Copy)]
pub enum KeyState<'a> {
    /// The key: its fields open.
    Present(&'a DataKey),
    /// The subject was forgotten (its key destroyed): its fields read as their
    /// placeholders.
    Forgotten,
}

/// Seals `values` into `data`: appends one block per value to `data["$personal"]`
/// (creating it), each encrypted with the key `key_of` gives for its subject and bound to
/// `event_id` and its field. The values must already be out of `data` (as
/// [`codec::encode`](crate::codec::encode) leaves them).
///
/// Refused, with `data` unchanged: data that is not a JSON object, a field that is still
/// in `data`, given twice or named [`PERSONAL_KEY`] ([`PersonalError::Malformed`]); a
/// subject `key_of` has no key for ([`PersonalError::MissingKey`]).
///
/// ```
/// use cqrs_core::personal::{self, DataKey, KeyState, PersonalValue, Subject};
/// use serde_json::json;
///
/// let event_id = uuid::Uuid::now_v7();
/// let subject = Subject::new("c-1")?;
/// let key = DataKey::generate();
/// let mut data = json!({ "customer_id": "c-1" });
/// let name = PersonalValue::new(subject, "name", json!("Ada"), json!("[forgotten]"));
/// personal::seal(event_id, &mut data, vec![name], |_| Some(&key))?;
/// assert!(!data.to_string().contains("Ada"));
///
/// let opened = personal::open(event_id, &data, |_| KeyState::Present(&key))?;
/// assert_eq!(opened, Some(json!({ "customer_id": "c-1", "name": "Ada" })));
/// let forgotten = personal::open(event_id, &data, |_| KeyState::Forgotten)?;
/// assert_eq!(forgotten, Some(json!({ "customer_id": "c-1", "name": "[forgotten]" })));
/// # Ok::<(), personal::PersonalError>(())
/// ```
pub fn seal<'k>(
    event_id: Uuid,
    data: &mut Value,
    values: Vec<PersonalValue>,
    key_of: impl Fn(&Subject) -> Option<&'k DataKey>,
) -> Result<(), PersonalError> {
    seal_values(event_id, data, &values, key_of)
}

/// [`seal`] of borrowed values, so that a caller keeps them when it fails.
pub(crate) fn seal_values<'k>(
    event_id: Uuid,
    data: &mut Value,
    values: &[PersonalValue],
    key_of: impl Fn(&Subject) -> Option<&'k DataKey>,
) -> Result<(), PersonalError> {
    if values.is_empty() {
        return Ok(());
    }
    let Value::Object(map) = data else {
        return Err(malformed(format!(
            "event data with personal fields must be a JSON object, not {}",
            kind(data)
        )));
    };
    let mut fields: Vec<&str> = match map.get(PERSONAL_KEY) {
        Some(existing) => blocks(existing)?.into_iter().map(|b| b.field).collect(),
        None => Vec::new(),
    };
    let mut sealed = Vec::with_capacity(values.len());
    for value in values {
        let field = value.field.as_str();
        if field == PERSONAL_KEY {
            return Err(malformed(format!(
                "no field may be named {PERSONAL_KEY:?}: the name is reserved"
            )));
        }
        if map.contains_key(field) {
            return Err(malformed(format!(
                "field {field:?} is both in the data and among the personal values"
            )));
        }
        if fields.contains(&field) {
            return Err(malformed(format!(
                "personal field {field:?} is given twice"
            )));
        }
        fields.push(field);
        let key = key_of(&value.subject).ok_or_else(|| PersonalError::MissingKey {
            subject: value.subject.clone(),
        })?;
        let mut plaintext =
            serde_json::to_vec(&value.value).map_err(|e| PersonalError::Encode {
                reason: format!("field {field:?} does not serialise: {e}"),
            })?;
        let ciphertext = cipher::seal(
            key.as_bytes(),
            &aad(event_id, field, &value.subject),
            &plaintext,
        );
        wipe(&mut plaintext);
        let ciphertext = ciphertext.map_err(|reason| PersonalError::Encode {
            reason: format!("field {field:?}: {reason}"),
        })?;
        let mut block = Map::new();
        block.insert("field".to_owned(), Value::from(field));
        block.insert("subject".to_owned(), Value::from(value.subject.as_str()));
        block.insert(
            "sealed".to_owned(),
            Value::from(STANDARD.encode(ciphertext)),
        );
        block.insert("forgotten".to_owned(), value.forgotten.clone());
        sealed.push(Value::Object(block));
    }
    match map
        .entry(PERSONAL_KEY)
        .or_insert_with(|| Value::Array(Vec::new()))
    {
        Value::Array(blocks) => {
            blocks.extend(sealed);
            Ok(())
        }
        // `blocks` above accepted only an array.
        other => Err(malformed(format!(
            "{PERSONAL_KEY:?} must be an array, not {}",
            kind(other)
        ))),
    }
}

/// The distinct subjects whose keys are needed to open `data`, in the order of their
/// first block; empty when `data` has no [`PERSONAL_KEY`] (one map lookup).
pub fn sealed_subjects(data: &Value) -> Result<Vec<Subject>, PersonalError> {
    let Some(found) = data.get(PERSONAL_KEY) else {
        return Ok(Vec::new());
    };
    let mut subjects: Vec<Subject> = Vec::new();
    for block in blocks(found)? {
        if !subjects.contains(&block.subject) {
            subjects.push(block.subject);
        }
    }
    Ok(subjects)
}

/// Opens the personal fields of `data`, sealed by [`seal`] for `event_id`.
///
/// `Ok(None)` when `data` has no [`PERSONAL_KEY`] (the caller keeps `data` as it is: no
/// copy is made). Otherwise the data without the block, each field back at the top
/// level: its value, or its placeholder when `key_of` says its subject is
/// [`Forgotten`](KeyState::Forgotten).
///
/// A field that does not authenticate (changed, or copied from another event, field or
/// subject) is [`PersonalError::Tampered`]; a block not of the shape [`seal`] writes is
/// [`PersonalError::Malformed`]. No input makes it panic.
pub fn open<'k>(
    event_id: Uuid,
    data: &Value,
    key_of: impl Fn(&Subject) -> KeyState<'k>,
) -> Result<Option<Value>, PersonalError> {
    let Some(found) = data.get(PERSONAL_KEY) else {
        return Ok(None);
    };
    let blocks = blocks(found)?;
    let mut out: Map<String, Value> = match data {
        Value::Object(map) => map
            .iter()
            .filter(|(name, _)| name.as_str() != PERSONAL_KEY)
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
        // `get` finds a key in an object only.
        other => {
            return Err(malformed(format!(
                "sealed data must be a JSON object, not {}",
                kind(other)
            )))
        }
    };
    for block in blocks {
        let field = block.field;
        if out.contains_key(field) {
            return Err(malformed(format!(
                "field {field:?} is both in the data and sealed, or sealed twice"
            )));
        }
        let value = match key_of(&block.subject) {
            KeyState::Forgotten => block.forgotten.clone(),
            KeyState::Present(key) => {
                let sealed = STANDARD.decode(block.sealed).map_err(|_| {
                    malformed(format!("the sealed value of {field:?} is not base64"))
                })?;
                let aad = aad(event_id, field, &block.subject);
                let mut plaintext =
                    cipher::open(key.as_bytes(), &aad, &sealed).ok_or_else(|| {
                        PersonalError::Tampered {
                            field: field.to_owned(),
                            subject: block.subject.clone(),
                        }
                    })?;
                let value = serde_json::from_slice::<Value>(&plaintext);
                wipe(&mut plaintext);
                value
                    .map_err(|_| malformed(format!("the opened value of {field:?} is not JSON")))?
            }
        };
        out.insert(field.to_owned(), value);
    }
    Ok(Some(Value::Object(out)))
}

/// One block of [`PERSONAL_KEY`], borrowed from the data.
struct Block<'a> {
    field: &'a str,
    subject: Subject,
    sealed: &'a str,
    forgotten: &'a Value,
}

/// The blocks of a [`PERSONAL_KEY`] value, checked for shape.
fn blocks(value: &Value) -> Result<Vec<Block<'_>>, PersonalError> {
    let Value::Array(items) = value else {
        return Err(malformed(format!(
            "{PERSONAL_KEY:?} must be an array, not {}",
            kind(value)
        )));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(block) = item else {
                return Err(malformed(format!(
                    "{PERSONAL_KEY:?}[{i}] must be an object, not {}",
                    kind(item)
                )));
            };
            let text = |key: &str| match block.get(key) {
                Some(Value::String(s)) => Ok(s.as_str()),
                Some(other) => Err(malformed(format!(
                    "{PERSONAL_KEY:?}[{i}].{key} must be a string, not {}",
                    kind(other)
                ))),
                None => Err(malformed(format!("{PERSONAL_KEY:?}[{i}] has no {key}"))),
            };
            let field = text("field")?;
            if field == PERSONAL_KEY {
                return Err(malformed(format!(
                    "{PERSONAL_KEY:?}[{i}] names the reserved field {PERSONAL_KEY:?}"
                )));
            }
            let subject = Subject::new(text("subject")?)
                .map_err(|e| malformed(format!("{PERSONAL_KEY:?}[{i}].subject: {e}")))?;
            let sealed = text("sealed")?;
            let forgotten = block
                .get("forgotten")
                .ok_or_else(|| malformed(format!("{PERSONAL_KEY:?}[{i}] has no forgotten")))?;
            Ok(Block {
                field,
                subject,
                sealed,
                forgotten,
            })
        })
        .collect()
}

/// The associated data that binds a sealed field to its event, field and subject.
fn aad(event_id: Uuid, field: &str, subject: &Subject) -> Vec<u8> {
    let subject = subject.as_str().as_bytes();
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + 16 + field.len() + 1 + subject.len());
    aad.extend_from_slice(AAD_PREFIX);
    aad.extend_from_slice(event_id.as_bytes());
    aad.extend_from_slice(field.as_bytes());
    aad.push(0);
    aad.extend_from_slice(subject);
    aad
}

fn malformed(reason: String) -> PersonalError {
    PersonalError::Malformed { reason }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const MARKER: &str = "Ada-Lovelace-7f3a";

    fn subject(id: &str) -> Subject {
        Subject::new(id).expect("valid")
    }

    fn value(subject_id: &str, field: &str, v: Value) -> PersonalValue {
        PersonalValue::new(subject(subject_id), field, v, json!("[forgotten]"))
    }

    /// `{customer_id, amount}` with `name` and `email` about c-1 and `friend` about c-2.
    fn sealed(event_id: Uuid, k1: &DataKey, k2: &DataKey) -> Value {
        let mut data = json!({ "customer_id": "c-1", "amount": 10 });
        let values = vec![
            value("c-1", "name", json!(MARKER)),
            value(
                "c-1",
                "email",
                json!({ "at": "ada@example.com", "n": [1, 2.5] }),
            ),
            value("c-2", "friend", json!("Babbage")),
        ];
        seal(event_id, &mut data, values, |s| match s.as_str() {
            "c-1" => Some(k1),
            "c-2" => Some(k2),
            _ => None,
        })
        .expect("sealed");
        data
    }

    fn plain() -> Value {
        json!({
            "customer_id": "c-1", "amount": 10, "name": MARKER,
            "email": { "at": "ada@example.com", "n": [1, 2.5] }, "friend": "Babbage",
        })
    }

    fn blocks_mut(data: &mut Value) -> &mut Vec<Value> {
        match data.get_mut(PERSONAL_KEY) {
            Some(Value::Array(blocks)) => blocks,
            other => panic!("no blocks: {other:?}"),
        }
    }

    #[test]
    fn round_trip() {
        let (id, k1, k2) = (Uuid::now_v7(), DataKey::generate(), DataKey::generate());
        let data = sealed(id, &k1, &k2);
        let text = data.to_string();
        assert!(!text.contains(MARKER) && !text.contains("ada@") && !text.contains("Babbage"));
        assert_eq!(data["customer_id"], "c-1");
        assert_eq!(data["amount"], 10);
        assert!(data.get("name").is_none());
        let blocks = blocks_mut(&mut data.clone()).clone();
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0]["field"], "name");
        assert_eq!(blocks[0]["subject"], "c-1");
        assert_eq!(blocks[0]["forgotten"], "[forgotten]");
        assert_eq!(
            sealed_subjects(&data).expect("subjects"),
            [subject("c-1"), subject("c-2")]
        );
        let opened = open(id, &data, |s| {
            KeyState::Present(if s.as_str() == "c-1" { &k1 } else { &k2 })
        });
        assert_eq!(opened.expect("opened"), Some(plain()));
    }

    #[test]
    fn keys_from_a_map_outlive_the_call() {
        // The shape a store calls them with: keys looked up in a map it owns.
        let id = Uuid::now_v7();
        let keys = std::collections::HashMap::from([(subject("c-1"), DataKey::generate())]);
        let mut data = json!({});
        seal(id, &mut data, vec![value("c-1", "name", json!(1))], |s| {
            keys.get(s)
        })
        .expect("sealed");
        let opened = open(id, &data, |s| match keys.get(s) {
            Some(key) => KeyState::Present(key),
            None => KeyState::Forgotten,
        });
        assert_eq!(opened.expect("opened"), Some(json!({ "name": 1 })));
    }

    #[test]
    fn a_forgotten_subject_reads_as_its_placeholders() {
        let (id, k1, k2) = (Uuid::now_v7(), DataKey::generate(), DataKey::generate());
        let data = sealed(id, &k1, &k2);
        let opened = open(id, &data, |s| {
            if s.as_str() == "c-1" {
                KeyState::Forgotten
            } else {
                KeyState::Present(&k2)
            }
        });
        assert_eq!(
            opened.expect("opened"),
            Some(json!({
                "customer_id": "c-1", "amount": 10, "name": "[forgotten]",
                "email": "[forgotten]", "friend": "Babbage",
            }))
        );
        let none = open(id, &data, |_| KeyState::Forgotten).expect("opened");
        assert!(!none
            .map(|v| v.to_string())
            .unwrap_or_default()
            .contains(MARKER));
    }

    fn tampered(result: Result<Option<Value>, PersonalError>, field: &str, subject_id: &str) {
        match result {
            Err(PersonalError::Tampered {
                field: f,
                subject: s,
            }) if f == field && s.as_str() == subject_id => {}
            other => panic!("expected Tampered({field}, {subject_id}), got {other:?}"),
        }
    }

    #[test]
    fn a_ciphertext_moved_or_changed_does_not_open() {
        // One key for every subject: only the associated data tells them apart.
        let (id, key) = (Uuid::now_v7(), DataKey::generate());
        let data = sealed(id, &key, &key);
        let any = |_: &Subject| KeyState::Present(&key);

        // Another event.
        tampered(open(Uuid::now_v7(), &data, any), "name", "c-1");

        // Another field: name's ciphertext in email's block.
        let mut moved = data.clone();
        let blocks = blocks_mut(&mut moved);
        blocks[1]["sealed"] = blocks[0]["sealed"].clone();
        tampered(open(id, &moved, any), "email", "c-1");

        // Another field: the block renamed.
        let mut renamed = data.clone();
        blocks_mut(&mut renamed).truncate(1);
        blocks_mut(&mut renamed)[0]["field"] = json!("nickname");
        tampered(open(id, &renamed, any), "nickname", "c-1");

        // Another subject.
        let mut other = data.clone();
        blocks_mut(&mut other)[0]["subject"] = json!("c-2");
        tampered(open(id, &other, any), "name", "c-2");

        // One flipped byte, anywhere: nonce, ciphertext, tag.
        let sealed_text = data[PERSONAL_KEY][0]["sealed"]
            .as_str()
            .expect("text")
            .to_owned();
        let bytes = STANDARD.decode(&sealed_text).expect("base64");
        for at in [0, cipher::NONCE_LEN, bytes.len() - 1] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x01;
            let mut changed = data.clone();
            blocks_mut(&mut changed)[0]["sealed"] = json!(STANDARD.encode(&flipped));
            tampered(open(id, &changed, any), "name", "c-1");
        }
        // Cut short.
        let mut short = data.clone();
        blocks_mut(&mut short)[0]["sealed"] = json!(STANDARD.encode(&bytes[..20]));
        tampered(open(id, &short, any), "name", "c-1");

        // Another key.
        let other_key = DataKey::generate();
        tampered(
            open(id, &data, |_| KeyState::Present(&other_key)),
            "name",
            "c-1",
        );
    }

    #[test]
    fn no_block_is_none_and_no_subject() {
        for data in [
            json!({ "a": 1 }),
            json!(null),
            json!([1]),
            json!("x"),
            json!(3),
        ] {
            assert_eq!(open(Uuid::nil(), &data, |_| KeyState::Forgotten), Ok(None));
            assert_eq!(sealed_subjects(&data), Ok(Vec::new()));
        }
    }

    #[test]
    fn sealing_refusals_leave_the_data_unchanged() {
        let key = DataKey::generate();
        let id = Uuid::now_v7();
        let cases: Vec<(Value, Vec<PersonalValue>)> = vec![
            (json!([1]), vec![value("c-1", "name", json!(1))]),
            (json!(null), vec![value("c-1", "name", json!(1))]),
            (json!({ "name": 1 }), vec![value("c-1", "name", json!(1))]),
            (json!({}), vec![value("c-1", PERSONAL_KEY, json!(1))]),
            (
                json!({}),
                vec![
                    value("c-1", "name", json!(1)),
                    value("c-1", "name", json!(2)),
                ],
            ),
            (
                json!({ "$personal": 3 }),
                vec![value("c-1", "name", json!(1))],
            ),
        ];
        for (data, values) in cases {
            let mut changed = data.clone();
            let result = seal(id, &mut changed, values, |_| Some(&key));
            assert!(
                matches!(result, Err(PersonalError::Malformed { .. })),
                "{data}: {result:?}"
            );
            assert_eq!(changed, data);
        }
        let mut data = json!({});
        let values = vec![
            value("c-1", "a", json!(1)),
            value("c-2", "b", json!(MARKER)),
        ];
        let result = seal(id, &mut data, values, |s| {
            (s.as_str() == "c-1").then_some(&key)
        });
        assert_eq!(
            result,
            Err(PersonalError::MissingKey {
                subject: subject("c-2")
            })
        );
        assert_eq!(data, json!({}));
        // Nothing to seal: nothing to check, nothing changed.
        let mut data = json!(null);
        assert_eq!(seal(id, &mut data, Vec::new(), |_| None), Ok(()));
        assert_eq!(data, json!(null));
    }

    #[test]
    fn sealing_twice_appends() {
        let (id, key) = (Uuid::now_v7(), DataKey::generate());
        let mut data = json!({});
        seal(id, &mut data, vec![value("c-1", "a", json!(1))], |_| {
            Some(&key)
        })
        .expect("a");
        seal(id, &mut data, vec![value("c-2", "b", json!(2))], |_| {
            Some(&key)
        })
        .expect("b");
        let again = seal(id, &mut data, vec![value("c-2", "a", json!(3))], |_| {
            Some(&key)
        });
        assert!(matches!(again, Err(PersonalError::Malformed { .. })));
        let opened = open(id, &data, |_| KeyState::Present(&key)).expect("opened");
        assert_eq!(opened, Some(json!({ "a": 1, "b": 2 })));
    }

    #[test]
    fn garbage_shapes_are_malformed_never_a_panic() {
        let (id, key) = (Uuid::now_v7(), DataKey::generate());
        let good = sealed(id, &key, &key);
        let good_block = good[PERSONAL_KEY][0].clone();
        let with_block = |f: &dyn Fn(&mut Map<String, Value>)| {
            let mut block = good_block.as_object().cloned().unwrap_or_default();
            f(&mut block);
            json!({ "customer_id": "c-1", "$personal": [Value::Object(block)] })
        };
        let mut cases = vec![
            json!({ "$personal": null }),
            json!({ "$personal": 1 }),
            json!({ "$personal": "x" }),
            json!({ "$personal": {} }),
            json!({ "$personal": [null] }),
            json!({ "$personal": [1] }),
            json!({ "$personal": [[]] }),
            json!({ "$personal": [{}] }),
            json!({ "$personal": [{ "field": "a" }] }),
            json!({ "$personal": [{ "field": 1, "subject": "c", "sealed": "", "forgotten": 0 }] }),
            // The field is also in the plain data.
            json!({ "name": 1, "$personal": [good_block.clone()] }),
            // Sealed twice.
            json!({ "$personal": [good_block.clone(), good_block.clone()] }),
        ];
        for key_name in ["field", "subject", "sealed", "forgotten"] {
            cases.push(with_block(&|b| {
                b.remove(key_name);
            }));
            if key_name != "forgotten" {
                for bad in [json!(null), json!(1), json!([]), json!({})] {
                    cases.push(with_block(&|b| {
                        b.insert(key_name.to_owned(), bad.clone());
                    }));
                }
            }
        }
        for bad_subject in ["", "a\u{0}b", "$kek-check"] {
            cases.push(with_block(&|b| {
                b.insert("subject".to_owned(), json!(bad_subject));
            }));
        }
        cases.push(with_block(&|b| {
            b.insert("field".to_owned(), json!(PERSONAL_KEY));
        }));
        cases.push(with_block(&|b| {
            b.insert("sealed".to_owned(), json!("not base64!"));
        }));
        for data in &cases {
            let opened = open(id, data, |_| KeyState::Present(&key));
            assert!(
                matches!(opened, Err(PersonalError::Malformed { .. })),
                "{data}: {opened:?}"
            );
            let forgotten = open(id, data, |_| KeyState::Forgotten);
            assert!(forgotten.is_err() || data.to_string().contains("not base64"));
            let _ = sealed_subjects(data);
        }
        // Valid JSON shapes whose ciphertext is no ciphertext of this event.
        for sealed_text in ["", "AAAA", &STANDARD.encode([0u8; 100])] {
            let data = with_block(&|b| {
                b.insert("sealed".to_owned(), json!(sealed_text));
            });
            tampered(open(id, &data, |_| KeyState::Present(&key)), "name", "c-1");
        }
        // Extra keys in a block are left alone (a later version may add some).
        let extra = with_block(&|b| {
            b.insert("v".to_owned(), json!(2));
        });
        let opened = open(id, &extra, |_| KeyState::Present(&key)).expect("opens");
        assert_eq!(
            opened,
            Some(json!({ "customer_id": "c-1", "name": MARKER }))
        );
    }

    #[test]
    fn messages_hold_no_plaintext() {
        let (id, key) = (Uuid::now_v7(), DataKey::generate());
        let data = sealed(id, &key, &key);
        let err = open(Uuid::now_v7(), &data, |_| KeyState::Present(&key)).expect_err("moved");
        assert!(!format!("{err} {err:?}").contains(MARKER));
    }
}
