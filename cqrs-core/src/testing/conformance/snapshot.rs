//! Snapshots.

use serde_json::json;

use super::{unique_stream, Store};
use crate::Snapshot;

/// A snapshot round-trips exactly; a later one replaces it; an older one does not.
pub async fn snapshots_save_load_and_keep_the_latest<S: Store>(store: S) {
    let stream = unique_stream("account");
    let other = unique_stream("account");
    assert_eq!(store.load_snapshot(&stream).await.expect("load"), None);
    let snapshot = |version: u64, tag: &str| Snapshot {
        stream_version: version,
        schema_version: 3,
        state: json!({ "tag": tag, "nested": { "list": [1, 2.5, null, "é\"'\\"] }, "big": u64::MAX }),
    };
    store
        .save_snapshot(&stream, snapshot(5, "five"))
        .await
        .expect("save");
    assert_eq!(
        store.load_snapshot(&stream).await.expect("load"),
        Some(snapshot(5, "five"))
    );
    store
        .save_snapshot(&stream, snapshot(7, "seven"))
        .await
        .expect("save");
    assert_eq!(
        store.load_snapshot(&stream).await.expect("load"),
        Some(snapshot(7, "seven"))
    );
    store
        .save_snapshot(&stream, snapshot(6, "six"))
        .await
        .expect("an older save is not an error");
    assert_eq!(
        store.load_snapshot(&stream).await.expect("load"),
        Some(snapshot(7, "seven")),
        "an older snapshot must not replace a newer one"
    );
    store
        .save_snapshot(&stream, snapshot(7, "seven again"))
        .await
        .expect("save");
    assert_eq!(
        store.load_snapshot(&stream).await.expect("load"),
        Some(snapshot(7, "seven again")),
        "a snapshot at the same version replaces the stored one"
    );
    assert_eq!(
        store.load_snapshot(&other).await.expect("load"),
        None,
        "snapshots are per stream"
    );
}
