//! Personal data in events, kept so that it can be forgotten: crypto-shredding.
//!
//! Events are immutable, and the right to erasure (GDPR article 17 and its kin) still
//! asks that a person's data can be made unreadable. Rewriting history would break
//! every guarantee of an event store (hashes, replicas, read models built from it, the
//! order of the log), so instead each personal field is **sealed** (encrypted and
//! authenticated, XChaCha20-Poly1305) with a key of its own subject, the person it is
//! about. Forgetting the subject is then destroying one key: every copy of its events,
//! in the store, in backups, on a message bus, becomes unreadable at once, and every
//! read shows the placeholder its event type declared instead.
//!
//! What is sealed: the value of each field declared personal (`#[event(personal(subject =
//! customer_id))]` on the field, [`DomainEvent::personal_fields`](crate::DomainEvent::personal_fields)).
//! What stays in plaintext: the rest of the data, the subject id (to find the key), the
//! placeholder (it is what the type declared, not personal), the event type, and the
//! metadata; keep personal data out of those, and out of stream ids.
//!
//! The pieces, all pure (no I/O), which a store puts together:
//! - [`Subject`]: whom data is about;
//! - [`DataKey`]: one subject's key; a store keeps it wrapped by the application's
//!   [`KeyEncryptionKey`] ([`StaticKek`] is provided), and checks at start-up with
//!   [`verify_kek`] that it was given the right one;
//! - [`codec::encode`](crate::codec::encode) takes the personal fields out of an event's
//!   data into [`PersonalValue`]s on the [`NewEvent`](crate::NewEvent); the store seals
//!   them with [`NewEvent::seal`](crate::NewEvent::seal) ([`seal`]) before it writes;
//! - on read, [`sealed_subjects`] says which keys an event needs and [`open`] puts its
//!   fields back (or their placeholders) before the codec decodes it.
//!
//! # The stored form
//!
//! A sealed event's data is its JSON object without its personal fields, plus one block
//! per field under [`PERSONAL_KEY`]:
//!
//! ```json
//! { "customer_id": "c-1", "amount": 10,
//!   "$personal": [ { "field": "name", "subject": "c-1",
//!                    "sealed": "<base64 of nonce (24 bytes) || ciphertext>",
//!                    "forgotten": "[forgotten]" } ] }
//! ```
//!
//! `sealed` is the encryption, under the subject's data key, of the field's JSON value
//! serialised, with associated data `b"cqrs-personal-v1\0" || event id (16 bytes) ||
//! field || b"\0" || subject`: a ciphertext copied to another event, field or subject
//! does not open. `forgotten` is in plaintext so that untyped readers (an export, a bus
//! relay) can show it without the event's Rust type.
//!
//! A wrapped data key ([`StaticKek`]) is `nonce (24 bytes) || ciphertext`, with
//! associated data `b"cqrs-kek-v1\0" || subject`: a wrapped key copied to another
//! subject's row does not unwrap.

mod cipher;
mod error;
mod kek;
mod key;
mod seal;
mod subject;
mod value;

pub use error::PersonalError;
pub use kek::{kek_check, verify_kek, KeyEncryptionKey, StaticKek};
pub use key::DataKey;
pub use seal::{open, seal, sealed_subjects, KeyState, PERSONAL_KEY};
pub use subject::{Subject, KEK_CHECK_SUBJECT};
pub use value::{PersonalField, PersonalValue};

pub(crate) use seal::seal_values;
