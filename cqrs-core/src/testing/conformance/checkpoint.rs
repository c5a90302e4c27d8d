//! Checkpoints.

use super::{unique_name, Store};
use crate::Position;

/// A checkpoint round-trips, is overwritten by the next save, resets to `START`, and is
/// kept per subscription name.
pub async fn checkpoints_save_load_and_reset<S: Store>(store: S) {
    let name = unique_name("balances");
    let other = unique_name("audit");
    assert_eq!(store.load_checkpoint(&name).await.expect("load"), None);
    let far = Position::from_parts(u64::MAX >> 1, u64::MAX >> 1);
    for position in [
        Position::from_parts(3, 7),
        Position::from_parts(2, 9),
        far,
        Position::START,
    ] {
        store.save_checkpoint(&name, position).await.expect("save");
        assert_eq!(
            store.load_checkpoint(&name).await.expect("load"),
            Some(position)
        );
    }
    assert_eq!(
        store.load_checkpoint(&other).await.expect("load"),
        None,
        "checkpoints are per name"
    );
}
