//! Why sealing, opening or handling a key failed.

use super::Subject;

/// Why personal data could not be sealed or opened, or a key not made, wrapped or
/// unwrapped.
///
/// No message contains a personal value or key bytes: only subject ids, field names,
/// environment variable names and what is wrong with them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PersonalError {
    /// A subject id that is empty, longer than 255 bytes, holds a control character,
    /// is reserved, or is not a JSON string or integer.
    #[error("invalid subject id: {reason}")]
    InvalidSubject {
        /// What is wrong with it.
        reason: String,
    },
    /// The environment variable meant to hold the key-encryption key is not set.
    #[error(
        "no key-encryption key: the environment variable {var} is not set; make one with \
         `head -c 32 /dev/urandom | base64`, keep it safe (every personal field is lost \
         without it) and set {var} to it"
    )]
    MissingKek {
        /// The variable's name.
        var: String,
    },
    /// The environment variable holds something that is not the standard base64 of
    /// exactly 32 bytes.
    #[error(
        "the key-encryption key in {var} is malformed: {reason}; it must be the standard \
         base64 of 32 bytes, as `head -c 32 /dev/urandom | base64` makes"
    )]
    MalformedKek {
        /// The variable's name.
        var: String,
        /// What is wrong (never the value itself).
        reason: String,
    },
    /// A wrapped data key did not unwrap: another key-encryption key wrapped it, its
    /// bytes were changed, or it was wrapped for another subject.
    #[error(
        "the data key of subject {subject} does not unwrap: it was wrapped with another \
         key-encryption key, for another subject, or its bytes were changed"
    )]
    Unwrap {
        /// The subject whose key it is.
        subject: Subject,
    },
    /// The key-encryption key given is not the one the store's data keys were wrapped
    /// with ([`verify_kek`](super::verify_kek)).
    #[error(
        "wrong key-encryption key: it is not the one the store's data keys were wrapped \
         with, so no personal field could be read; start with the key the store was set \
         up with"
    )]
    WrongKek,
    /// A subject has personal values to seal and no data key was given for it.
    #[error("no data key for subject {subject}: a key is needed to seal its personal data")]
    MissingKey {
        /// The subject.
        subject: Subject,
    },
    /// The authenticated encryption refused a sealed field: its bytes were changed, or it
    /// was moved from another event, field or subject.
    #[error(
        "the personal field {field:?} about subject {subject} does not open: it was \
         changed, or copied from another event, field or subject"
    )]
    Tampered {
        /// The field.
        field: String,
        /// The subject.
        subject: Subject,
    },
    /// The [`$personal`](super::PERSONAL_KEY) block of stored data is not of the shape
    /// [`seal`](super::seal) writes, or sealing was asked for something that cannot be
    /// sealed (data that is not an object, a field given twice).
    #[error("malformed personal data: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// Encryption failed (for a value too large for the cipher).
    #[error("cannot seal: {reason}")]
    Encode {
        /// What failed.
        reason: String,
    },
}
