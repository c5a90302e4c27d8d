//! A checkpoint store whose next lease check can be held at a gate, so that a test can
//! act while the subscription runner is at a known point of its loop (between its rebuild
//! check and its read), the window a race would need.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::{CheckpointStore, DeadLetter, Lease, Position, StoreError, StoredEvent};

#[derive(Default)]
struct Gate {
    armed: AtomicBool,
    entered: Notify,
    release: Notify,
}

/// Forwards to `inner`; its leases wait at the gate on the first `is_held` after
/// [`arm`](Self::arm).
#[derive(Clone)]
pub(crate) struct Gated<S> {
    inner: S,
    gate: Arc<Gate>,
}

impl<S> Gated<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            gate: Arc::default(),
        }
    }

    /// Holds the next lease check; returns once the runner is waiting there.
    pub async fn arm(&self) {
        let entered = self.gate.entered.notified();
        self.gate.armed.store(true, Ordering::SeqCst);
        entered.await;
    }

    /// Lets the held lease check go on.
    pub fn release(&self) {
        self.gate.release.notify_one();
    }
}

#[derive(Debug)]
struct GatedLease {
    inner: Box<dyn Lease>,
    gate: Arc<Gate>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gate")
    }
}

#[async_trait]
impl Lease for GatedLease {
    async fn is_held(&self) -> bool {
        if self.gate.armed.swap(false, Ordering::SeqCst) {
            self.gate.entered.notify_one();
            self.gate.release.notified().await;
        }
        self.inner.is_held().await
    }
}

#[async_trait]
impl<S: CheckpointStore> CheckpointStore for Gated<S> {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, StoreError> {
        self.inner.load_checkpoint(name).await
    }

    async fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), StoreError> {
        self.inner.save_checkpoint(name, position).await
    }

    async fn acquire_lease(&self, name: &str) -> Result<Option<Box<dyn Lease>>, StoreError> {
        let lease = self.inner.acquire_lease(name).await?;
        Ok(lease.map(|inner| {
            Box::new(GatedLease {
                inner,
                gate: Arc::clone(&self.gate),
            }) as Box<dyn Lease>
        }))
    }

    async fn park(&self, name: &str, event: &StoredEvent, error: &str) -> Result<(), StoreError> {
        self.inner.park(name, event, error).await
    }

    async fn parked(&self, name: &str) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.parked(name).await
    }
}
