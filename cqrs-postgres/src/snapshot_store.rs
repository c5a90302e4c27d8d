//! Snapshots on [`PgStore`]: one row per stream, replaced only by a newer one.

use async_trait::async_trait;
use cqrs_core::store::check_snapshot;
use cqrs_core::{Snapshot, SnapshotStore, StoreError, StreamId};
use sqlx::Row;

use crate::error::{backend, map_sqlx};
use crate::PgStore;

#[async_trait]
impl SnapshotStore for PgStore {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let query = sqlx::query(&self.sql.load_snapshot)
            .bind(stream.stream_type())
            .bind(stream.id());
        let row = self.connection().await?.fetch_optional(query).await;
        let Some(row) = row.map_err(map_sqlx)? else {
            return Ok(None);
        };
        let stream_version: i64 = row.try_get(0).map_err(map_sqlx)?;
        let schema_version: i32 = row.try_get(1).map_err(map_sqlx)?;
        Ok(Some(Snapshot {
            stream_version: stream_version as u64,
            schema_version: schema_version as u32,
            state: row.try_get(2).map_err(map_sqlx)?,
        }))
    }

    async fn save_snapshot(&self, stream: &StreamId, snapshot: Snapshot) -> Result<(), StoreError> {
        check_snapshot(stream, &snapshot)?;
        let version = i64::try_from(snapshot.stream_version).map_err(|_| {
            backend(format!(
                "snapshot version {} is out of range",
                snapshot.stream_version
            ))
        })?;
        let query = sqlx::query(&self.sql.save_snapshot)
            .bind(stream.stream_type())
            .bind(stream.id())
            .bind(version)
            // Bit for bit, like checkpoints: u32 -> i32 -> u32 is lossless.
            .bind(snapshot.schema_version as i32)
            .bind(&snapshot.state);
        self.run(query).await?;
        Ok(())
    }
}
