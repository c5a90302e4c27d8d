//! Data keys: one per subject, the key that seals its personal fields.

use std::fmt;

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::OsRng;

/// The length of every key here, data key or key-encryption key, in bytes.
pub(crate) const KEY_LEN: usize = 32;

/// A subject's data key: 32 random bytes, the XChaCha20-Poly1305 key that seals its
/// personal fields. A store keeps it wrapped by the application's
/// [`KeyEncryptionKey`](super::KeyEncryptionKey), and forgets the subject by destroying
/// it.
///
/// Its `Debug` shows no byte of it; the bytes are overwritten when it is dropped (a best
/// effort: copies the compiler or the allocator made are out of reach).
///
/// ```
/// use cqrs_core::personal::DataKey;
/// let key = DataKey::generate();
/// assert_eq!(DataKey::from_bytes(*key.as_bytes()), key);
/// assert_eq!(format!("{key:?}"), "DataKey(..)");
/// ```
#[derive(Clone)]
pub struct DataKey([u8; KEY_LEN]);

impl DataKey {
    /// A fresh random key, from the operating system's generator.
    ///
    /// # Panics
    ///
    /// If the operating system's random generator fails, which no supported system does
    /// once booted.
    pub fn generate() -> Self {
        Self(random_key())
    }

    /// The key of these bytes (as a store unwraps them, or in tests).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl PartialEq for DataKey {
    /// Compares every byte whatever the first difference, so that the time taken tells
    /// nothing of where two keys differ.
    fn eq(&self, other: &Self) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl Eq for DataKey {}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// 32 bytes from the operating system's random generator.
pub(crate) fn random_key() -> [u8; KEY_LEN] {
    let mut bytes = [0u8; KEY_LEN];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// Overwrites `bytes` with zeros. A best effort without `unsafe` or another dependency:
/// `black_box` makes the optimiser treat the zeros as read, so it keeps the writes.
pub(crate) fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_differ_and_debug_shows_no_byte() {
        let (a, b) = (DataKey::generate(), DataKey::generate());
        assert_ne!(a, b);
        let key = DataKey::from_bytes([0xab; KEY_LEN]);
        let shown = format!("{key:?} {key:#?}");
        assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
        assert_eq!(key.clone(), key);
    }
}
