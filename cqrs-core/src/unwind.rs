//! Panics in application code, caught where the framework calls it.
//!
//! A handler that panics (a bug meeting an event it did not expect) must not take the
//! framework down with it, nor leave it in a state that looks healthy. Every call of
//! application code that the framework makes on a task of its own or inside a unit of
//! work it owns goes through [`catch`] (or [`catch_sync`]): the panic becomes a
//! [`Panicked`] error, which is then handled exactly like the handler's own `Err`:
//!
//! - in a subscription ([`Project`](crate::subscription::Project),
//!   [`React`](crate::subscription::React), a backend's transactional projection, and any
//!   other [`Consumer`](crate::subscription::Consumer), whose `deliver` the runner guards
//!   too): the failure of that event, retried, then stopped on or parked by the
//!   subscription's [`FailurePolicy`](crate::subscription::FailurePolicy);
//! - in an inline projection of a store: the append fails and nothing is stored;
//! - in the engine (`handle`, `apply`, projections run after a commit):
//!   [`EngineError::Panicked`](crate::EngineError::Panicked) or
//!   [`EngineError::Projection`](crate::EngineError::Projection).
//!
//! What unwind safety means here: after a panic, the framework drops whatever the call
//! was working on (the aggregate state, the batch, the transaction, which is rolled back)
//! and holds no lock of its own across the call, so nothing it keeps is left half
//! changed. The handler's own state (a view behind a `std::sync::Mutex` that the panic
//! poisoned, say) is the application's: the same value is called again for the next
//! event, so a handler should not leave its data half changed when it panics.
//!
//! Catching needs `panic = "unwind"` (Rust's default). Under `panic = "abort"` a panic
//! ends the process, and nothing here runs.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

/// A panic caught at a call of application code, with its message.
///
/// The source of the failure it caused: a
/// [`DeliveryError::Event`](crate::subscription::DeliveryError::Event) (so its text
/// names the event's stream, version and type, and then this), a
/// [`StoreError::Projection`](crate::StoreError::Projection), or an
/// [`EngineError::Panicked`](crate::EngineError::Panicked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("panicked: {message}")]
#[non_exhaustive]
pub struct Panicked {
    /// The panic's message (its payload when that is a string; a placeholder otherwise).
    pub message: String,
}

impl Panicked {
    /// The panic of `payload`, as [`std::panic::catch_unwind`] or a
    /// [`JoinError`](tokio::task::JoinError) returns it.
    pub fn from_payload(payload: &(dyn Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        Self { message }
    }
}

/// Runs `future` to completion; a panic while it is polled becomes `Err(Panicked)`.
///
/// The future is dropped at the panic, with whatever it held (a transaction rolls back
/// on drop; callers that can should roll back explicitly too).
pub async fn catch<F: Future>(future: F) -> Result<F::Output, Panicked> {
    // Unwind safety is argued per call site (see the module docs): what the future
    // borrows is either dropped after a panic or is the handler's own.
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(|payload| Panicked::from_payload(payload.as_ref()))
}

/// Runs `call`; a panic in it becomes `Err(Panicked)`.
pub fn catch_sync<T>(call: impl FnOnce() -> T) -> Result<T, Panicked> {
    std::panic::catch_unwind(AssertUnwindSafe(call))
        .map_err(|payload| Panicked::from_payload(payload.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_a_future_becomes_an_error_with_its_message() {
        let caught = catch(async { panic!("boom at {}", 5) }).await;
        assert_eq!(
            caught,
            Err::<(), _>(Panicked {
                message: "boom at 5".into()
            })
        );
        let fine = catch(async { 7 }).await;
        assert_eq!(fine, Ok(7));
    }

    #[test]
    fn a_panic_in_a_call_becomes_an_error_with_its_message() {
        let caught = catch_sync(|| -> u8 { panic!("static message") });
        assert_eq!(caught.map_err(|p| p.message), Err("static message".into()));
        let other = catch_sync(|| std::panic::panic_any(42_u32));
        assert_eq!(
            other.map_err(|p| p.to_string()),
            Err("panicked: a panic without a message".into())
        );
        assert_eq!(catch_sync(|| 3), Ok(3));
    }
}
