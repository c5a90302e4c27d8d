//! The checkpoint store trait.

use async_trait::async_trait;

use super::StoreError;
use crate::Position;

/// Keeps the position of each named subscription.
///
/// Names are checked with [`ident::validate`](crate::ident::validate): an invalid name is
/// [`StoreError::InvalidIdentifier`] before any I/O.
#[async_trait]
pub trait CheckpointStore: Send + Sync + 'static {
    /// The saved position of subscription `name`, or `None` if it never saved one.
    async fn load_checkpoint(&self, name: &str) -> Result<Option<crate::Position>, StoreError>;

    /// Saves the position of subscription `name`, replacing the previous one (saving
    /// [`Position::START`] resets it, for a rebuild).
    async fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), StoreError>;
}
