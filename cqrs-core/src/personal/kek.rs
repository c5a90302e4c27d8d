//! Key-encryption keys: what wraps the data keys before a store keeps them, and the
//! start-up check that a store was given the right one.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::key::{random_key, wipe, KEY_LEN};
use super::{cipher, DataKey, PersonalError, Subject};

/// The application's key-encryption key (KEK): it wraps each subject's [`DataKey`] before
/// a store keeps it, and unwraps it when the store reads it back. Personal data is then
/// only as safe as this key, and lost with it.
///
/// [`StaticKek`] is the one provided (a 32-byte key from the environment). An
/// application with a key service (a cloud KMS, Vault) implements this trait with two
/// calls to it; `subject` is there to be bound to the wrapped key, so that a wrapped key
/// copied to another subject's row does not unwrap.
pub trait KeyEncryptionKey: Send + Sync + 'static {
    /// `key` wrapped for `subject`: what the store keeps.
    fn wrap(&self, subject: &Subject, key: &DataKey) -> Result<Vec<u8>, PersonalError>;

    /// The data key that [`wrap`](Self::wrap) wrapped for `subject`. Bytes wrapped by
    /// another KEK, for another subject, or changed since are
    /// [`PersonalError::Unwrap`].
    fn unwrap(&self, subject: &Subject, wrapped: &[u8]) -> Result<DataKey, PersonalError>;
}

/// Prefix of the associated data of a wrapped key: the format's name and version.
const AAD_PREFIX: &[u8] = b"cqrs-kek-v1\0";

/// The KEK provided: XChaCha20-Poly1305 under a 32-byte key. A wrapped key is `nonce (24
/// bytes) || ciphertext (32 + 16 bytes)`, with the subject id as associated data.
///
/// Its `Debug` shows no byte of the key; the bytes are overwritten when it is dropped (a
/// best effort).
///
/// ```
/// use cqrs_core::personal::{DataKey, KeyEncryptionKey, StaticKek, Subject};
/// let kek = StaticKek::generate();
/// let subject = Subject::new("customer-17")?;
/// let key = DataKey::generate();
/// let wrapped = kek.wrap(&subject, &key)?;
/// assert_eq!(kek.unwrap(&subject, &wrapped)?, key);
/// assert!(StaticKek::generate().unwrap(&subject, &wrapped).is_err());
/// # Ok::<(), cqrs_core::personal::PersonalError>(())
/// ```
pub struct StaticKek {
    key: [u8; KEY_LEN],
}

impl StaticKek {
    /// The KEK of these 32 bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self { key: bytes }
    }

    /// A fresh random KEK (for tests and tools: a KEK has to outlive every data key it
    /// wrapped, so a real one is made once and kept, see [`to_base64`](Self::to_base64)).
    ///
    /// # Panics
    ///
    /// If the operating system's random generator fails.
    pub fn generate() -> Self {
        Self { key: random_key() }
    }

    /// The KEK in the environment variable `var`: the standard base64 (with padding) of
    /// exactly 32 bytes, as `head -c 32 /dev/urandom | base64` makes. Whitespace around it
    /// is ignored. A variable that is not set is [`PersonalError::MissingKek`]; one that
    /// is not such base64 is [`PersonalError::MalformedKek`] (neither message holds the
    /// value).
    pub fn from_env(var: &str) -> Result<Self, PersonalError> {
        Self::from_env_value(var, std::env::var(var))
    }

    /// [`from_env`](Self::from_env) of what `std::env::var` returned.
    fn from_env_value(
        var: &str,
        value: Result<String, std::env::VarError>,
    ) -> Result<Self, PersonalError> {
        let malformed = |reason: String| PersonalError::MalformedKek {
            var: var.to_owned(),
            reason,
        };
        let mut text = match value {
            Ok(text) => text,
            Err(std::env::VarError::NotPresent) => {
                return Err(PersonalError::MissingKek {
                    var: var.to_owned(),
                })
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(malformed("it is not valid UTF-8".to_owned()))
            }
        };
        let decoded = STANDARD.decode(text.trim());
        wipe_string(&mut text);
        // The decoder's own message names the offending character: a piece of the key.
        let mut bytes =
            decoded.map_err(|_| malformed("it is not valid standard base64".to_owned()))?;
        let key = <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
            malformed(format!(
                "it decodes to {} bytes instead of {KEY_LEN}",
                bytes.len()
            ))
        });
        wipe(&mut bytes);
        Ok(Self { key: key? })
    }

    /// The key as standard base64, the form [`from_env`](Self::from_env) reads (for
    /// tests and tools that make a key to keep).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.key)
    }

    /// The associated data binding a wrapped key to its subject.
    fn aad(subject: &Subject) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD_PREFIX.len() + subject.as_str().len());
        aad.extend_from_slice(AAD_PREFIX);
        aad.extend_from_slice(subject.as_str().as_bytes());
        aad
    }
}

/// Overwrites a string's bytes with zeros (a best effort, as for [`wipe`]).
fn wipe_string(text: &mut String) {
    let mut bytes = std::mem::take(text).into_bytes();
    wipe(&mut bytes);
}

impl KeyEncryptionKey for StaticKek {
    fn wrap(&self, subject: &Subject, key: &DataKey) -> Result<Vec<u8>, PersonalError> {
        cipher::seal(&self.key, &Self::aad(subject), key.as_bytes())
            .map_err(|reason| PersonalError::Encode { reason })
    }

    fn unwrap(&self, subject: &Subject, wrapped: &[u8]) -> Result<DataKey, PersonalError> {
        let refused = || PersonalError::Unwrap {
            subject: subject.clone(),
        };
        let mut plain =
            cipher::open(&self.key, &Self::aad(subject), wrapped).ok_or_else(refused)?;
        let key = <[u8; KEY_LEN]>::try_from(plain.as_slice()).map(DataKey::from_bytes);
        wipe(&mut plain);
        key.map_err(|_| refused())
    }
}

impl fmt::Debug for StaticKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticKek(..)")
    }
}

impl Drop for StaticKek {
    fn drop(&mut self) {
        wipe(&mut self.key);
    }
}

/// The data key that the check value wraps: fixed and known, since the check proves
/// only that the KEK is the same, and must be comparable after unwrapping.
const CHECK_KEY: [u8; KEY_LEN] = *b"cqrs key-encryption-key check v1";

/// A check value for `kek`: a fixed, known data key wrapped under the reserved subject
/// [`KEK_CHECK_SUBJECT`](super::KEK_CHECK_SUBJECT). A store saves it once, when it first
/// wraps a key, and passes it to [`verify_kek`] at every start, so that a wrong KEK is
/// told at once instead of at the first read of a personal field.
pub fn kek_check(kek: &dyn KeyEncryptionKey) -> Result<Vec<u8>, PersonalError> {
    kek.wrap(&Subject::kek_check(), &DataKey::from_bytes(CHECK_KEY))
}

/// Whether `kek` is the KEK that made `check` ([`kek_check`]): `Ok(())`, or
/// [`PersonalError::WrongKek`] when the check does not unwrap under it or unwraps to
/// another key.
///
/// ```
/// use cqrs_core::personal::{kek_check, verify_kek, PersonalError, StaticKek};
/// let kek = StaticKek::generate();
/// let check = kek_check(&kek)?;
/// verify_kek(&kek, &check)?;
/// assert_eq!(verify_kek(&StaticKek::generate(), &check), Err(PersonalError::WrongKek));
/// # Ok::<(), PersonalError>(())
/// ```
pub fn verify_kek(kek: &dyn KeyEncryptionKey, check: &[u8]) -> Result<(), PersonalError> {
    match kek.unwrap(&Subject::kek_check(), check) {
        Ok(key) if key == DataKey::from_bytes(CHECK_KEY) => Ok(()),
        _ => Err(PersonalError::WrongKek),
    }
}

#[cfg(test)]
mod tests {
    use std::env::VarError;

    use super::*;

    fn subject(id: &str) -> Subject {
        Subject::new(id).expect("valid")
    }

    #[test]
    fn wraps_and_unwraps_bound_to_the_subject() {
        let kek = StaticKek::generate();
        let key = DataKey::generate();
        let wrapped = kek.wrap(&subject("c-1"), &key).expect("wrapped");
        assert_eq!(wrapped.len(), cipher::NONCE_LEN + KEY_LEN + cipher::TAG_LEN);
        assert_eq!(kek.unwrap(&subject("c-1"), &wrapped), Ok(key));
        assert_eq!(
            kek.unwrap(&subject("c-2"), &wrapped),
            Err(PersonalError::Unwrap {
                subject: subject("c-2")
            })
        );
        let other = StaticKek::generate();
        assert!(matches!(
            other.unwrap(&subject("c-1"), &wrapped),
            Err(PersonalError::Unwrap { .. })
        ));
        let mut flipped = wrapped.clone();
        flipped[30] ^= 1;
        assert!(kek.unwrap(&subject("c-1"), &flipped).is_err());
        assert!(kek.unwrap(&subject("c-1"), &[]).is_err());
        assert!(kek.unwrap(&subject("c-1"), &wrapped[..40]).is_err());
    }

    #[test]
    fn the_check_tells_a_wrong_kek() {
        let kek = StaticKek::from_bytes([3; KEY_LEN]);
        let check = kek_check(&kek).expect("check");
        assert_eq!(verify_kek(&kek, &check), Ok(()));
        let same = StaticKek::from_env_value("K", Ok(kek.to_base64())).expect("same key");
        assert_eq!(verify_kek(&same, &check), Ok(()));
        let wrong = StaticKek::from_bytes([4; KEY_LEN]);
        let refused = verify_kek(&wrong, &check).expect_err("wrong KEK");
        assert_eq!(refused, PersonalError::WrongKek);
        assert!(refused
            .to_string()
            .contains("not the one the store's data keys were wrapped with"));
        assert_eq!(verify_kek(&kek, b"garbage"), Err(PersonalError::WrongKek));
        // A real key wrapped under the check subject is no check value.
        let other = kek
            .wrap(&Subject::kek_check(), &DataKey::from_bytes([9; KEY_LEN]))
            .expect("wrapped");
        assert_eq!(verify_kek(&kek, &other), Err(PersonalError::WrongKek));
    }

    #[test]
    fn from_env_reads_base64_of_32_bytes() {
        let kek = StaticKek::generate();
        let text = kek.to_base64();
        let read = StaticKek::from_env_value("K", Ok(format!(" {text}\n"))).expect("valid");
        assert_eq!(read.key, kek.key);

        let missing = StaticKek::from_env_value("APP_KEK", Err(VarError::NotPresent));
        let missing = missing.expect_err("missing");
        assert_eq!(
            missing,
            PersonalError::MissingKek {
                var: "APP_KEK".into()
            }
        );
        let message = missing.to_string();
        assert!(message.contains("APP_KEK"), "{message}");
        assert!(
            message.contains("head -c 32 /dev/urandom | base64"),
            "{message}"
        );
        let unset = "CQRS_CORE_TEST_KEK_THAT_NO_ONE_SETS_7f3a";
        assert!(matches!(
            StaticKek::from_env(unset),
            Err(PersonalError::MissingKek { var }) if var == unset
        ));

        let secret = "not*base64*secret";
        let bad = StaticKek::from_env_value("K", Ok(secret.into())).expect_err("bad base64");
        assert!(matches!(&bad, PersonalError::MalformedKek { var, .. } if var == "K"));
        assert!(!bad.to_string().contains('*'), "{bad}");
        let short = STANDARD.encode([1u8; 16]);
        let bad = StaticKek::from_env_value("K", Ok(short.clone())).expect_err("16 bytes");
        match &bad {
            PersonalError::MalformedKek { reason, .. } => assert!(reason.contains("16 bytes")),
            other => panic!("{other:?}"),
        }
        assert!(!bad.to_string().contains(&short), "{bad}");
        let long = STANDARD.encode([1u8; 33]);
        assert!(StaticKek::from_env_value("K", Ok(long)).is_err());
        let unpadded = STANDARD
            .encode([1u8; KEY_LEN])
            .trim_end_matches('=')
            .to_owned();
        assert!(StaticKek::from_env_value("K", Ok(unpadded)).is_err());
    }

    #[test]
    fn debug_shows_no_key_byte() {
        let kek = StaticKek::from_bytes([0xcd; KEY_LEN]);
        let shown = format!("{kek:?} {kek:#?}");
        assert!(!shown.contains("cd") && !shown.contains("205"), "{shown}");
        assert!(!shown.contains(&kek.to_base64()), "{shown}");
    }
}
