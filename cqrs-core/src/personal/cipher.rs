//! The one authenticated encryption used here, for data keys and for fields alike:
//! XChaCha20-Poly1305 with a random 24-byte nonce, stored as `nonce || ciphertext`.
//!
//! The nonce is long enough to be drawn at random for every message without counting
//! them: a collision is negligible far beyond the number of events any store holds.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use super::key::KEY_LEN;

/// The length of the nonce in front of every ciphertext.
pub(crate) const NONCE_LEN: usize = 24;

/// The length of the authentication tag at the end of every ciphertext.
pub(crate) const TAG_LEN: usize = 16;

/// `nonce || ciphertext` of `plaintext` under `key`, bound to `aad`. Fails only for a
/// plaintext beyond the cipher's limit (256 GiB).
pub(crate) fn seal(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| "the value is too large to encrypt".to_owned())?;
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// The plaintext of `nonce || ciphertext` under `key` and `aad`, or `None` when it does
/// not authenticate (another key, other associated data, changed bytes) or is too short
/// to be one.
pub(crate) fn open(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(Key::from_slice(key));
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let key = [7u8; KEY_LEN];
        let sealed = seal(&key, b"ad", b"hello").expect("sealed");
        assert_eq!(sealed.len(), NONCE_LEN + 5 + TAG_LEN);
        assert_eq!(open(&key, b"ad", &sealed).as_deref(), Some(&b"hello"[..]));
        assert_eq!(open(&key, b"other", &sealed), None);
        assert_eq!(open(&[8u8; KEY_LEN], b"ad", &sealed), None);
        assert_eq!(open(&key, b"ad", &sealed[..NONCE_LEN + TAG_LEN - 1]), None);
        assert_ne!(
            seal(&key, b"ad", b"hello").expect("sealed"),
            sealed,
            "fresh nonce"
        );
    }
}
