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

/// Every saved checkpoint is listed, by name, with its last position and when it was
/// saved.
pub async fn saved_checkpoints_are_listed_by_name<S: Store>(store: S) {
    assert!(store.checkpoints().await.expect("list").is_empty());
    let suffix = uuid::Uuid::now_v7();
    let beta = super::named(&format!("beta-{suffix}@v2"));
    let alpha = super::named(&format!("alpha-{suffix}@v1"));
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    store
        .save_checkpoint(&beta, Position::from_parts(4, 9))
        .await
        .expect("save");
    store
        .save_checkpoint(&alpha, Position::from_parts(1, 2))
        .await
        .expect("save");
    store
        .save_checkpoint(&alpha, Position::from_parts(3, 5))
        .await
        .expect("save again");
    let listed = store.checkpoints().await.expect("list");
    let seen: Vec<_> = listed
        .iter()
        .map(|c| (c.name.clone(), c.position))
        .collect();
    assert_eq!(
        seen,
        [
            (alpha, Position::from_parts(3, 5)),
            (beta, Position::from_parts(4, 9))
        ]
    );
    // The database's clock and this process's may differ a little.
    assert!(listed.iter().all(|c| c.saved_at > before), "{listed:?}");
}
