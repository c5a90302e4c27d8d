//! Personal data on PostgreSQL (migration 0010): the subjects' keys in `subject_keys`,
//! wrapped by the store's key-encryption key, written in the transaction of the first
//! event that needs them; reads open what they return with one query for the keys of the
//! events that hold sealed fields (none for the others).

use std::collections::HashMap;
use std::sync::Arc;

use cqrs_core::personal::{self, KeyEncryptionKey, Subject};
use cqrs_core::store::personal_data::{self, SealedBatch, StoredKey};
use cqrs_core::{NewEvent, StoreError, StoredEvent, StreamId};
use sqlx::{PgConnection, Row};

use crate::error::{backend, map_sqlx};
use crate::PgStore;

impl PgStore {
    /// The same store with `kek` as its key-encryption key: it wraps the data keys of the
    /// subjects of [personal data](cqrs_core::personal) that the store keeps. Without
    /// one, appending or reading personal data is
    /// [`StoreError::NoKeyEncryptionKey`].
    ///
    /// The first store that runs with a key records a check value of it; [`check`](Self::check)
    /// (and so [`migrate`](Self::migrate)) then refuses another key at start-up, and
    /// refuses to start without one once a store has run with one. Losing the key
    /// loses every personal field: keep it in a secret store, and back it up.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use cqrs_core::personal::StaticKek;
    /// use cqrs_postgres::PgStore;
    /// let store = PgStore::connect("postgres://app@localhost/app")
    ///     .await?
    ///     .with_key_encryption_key(StaticKek::from_env("CQRS_KEK")?);
    /// store.migrate().await?; // a wrong key is an error here
    /// # Ok(()) }
    /// ```
    pub fn with_key_encryption_key(mut self, kek: impl KeyEncryptionKey) -> Self {
        self.kek = Some(Arc::new(kek));
        self.kek_verified = Arc::default();
        self
    }

    /// Checks the key-encryption key against the check value the store keeps (recording
    /// it on first use). Without a key: an error if a store has run with one here.
    pub(crate) async fn check_key_encryption_key(&self) -> Result<(), StoreError> {
        let Some(kek) = &self.kek else {
            let check: Option<Vec<u8>> = sqlx::query_scalar(&self.sql.kek_check)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_sqlx)?;
            return match check {
                Some(_) => Err(StoreError::NoKeyEncryptionKey),
                None => Ok(()),
            };
        };
        self.kek_verified
            .get_or_try_init(|| async {
                let made = personal::kek_check(kek.as_ref())?;
                sqlx::query(&self.sql.record_kek_check)
                    .bind(&made)
                    .execute(&self.pool)
                    .await
                    .map_err(map_sqlx)?;
                let check: Vec<u8> = sqlx::query_scalar(&self.sql.kek_check)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(map_sqlx)?;
                personal::verify_kek(kek.as_ref(), &check)?;
                Ok::<_, StoreError>(())
            })
            .await?;
        Ok(())
    }

    /// What `subject_keys` holds of `subjects`.
    async fn find_keys(
        &self,
        conn: &mut PgConnection,
        subjects: &[Subject],
    ) -> Result<HashMap<Subject, StoredKey>, StoreError> {
        let names: Vec<&str> = subjects.iter().map(Subject::as_str).collect();
        let rows = sqlx::query(&self.sql.find_keys)
            .bind(&names)
            .fetch_all(conn)
            .await
            .map_err(map_sqlx)?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in rows {
            let subject: String = row.try_get(0).map_err(map_sqlx)?;
            let wrapped: Option<Vec<u8>> = row.try_get(1).map_err(map_sqlx)?;
            let subject = Subject::new(subject)?;
            found.insert(
                subject,
                wrapped.map_or(StoredKey::Forgotten, StoredKey::Wrapped),
            );
        }
        Ok(found)
    }

    /// Seals the personal values of `events` inside the append's transaction `tx`,
    /// writing the keys it makes there. A key that a racing append wrote first (its
    /// insert waited for that append's commit, then did nothing) is read and used
    /// instead. Events without personal values come back as they were.
    pub(crate) async fn seal_in(
        &self,
        tx: &mut PgConnection,
        events: Vec<NewEvent>,
    ) -> Result<(Vec<NewEvent>, SealedBatch), StoreError> {
        let subjects = personal_data::subjects_to_seal(&events);
        if subjects.is_empty() {
            return Ok((events, SealedBatch::default()));
        }
        // The key-encryption key was checked before `tx` began (`append_alone`).
        let kek = self.kek.as_deref();
        for _ in 0..2 {
            let found = self.find_keys(tx, &subjects).await?;
            let mut sealed = events.clone();
            let batch = personal_data::seal_batch(kek, &mut sealed, &found)?;
            if batch.new_keys().is_empty() {
                return Ok((sealed, batch));
            }
            let (names, wrapped): (Vec<&str>, Vec<&[u8]>) = batch
                .new_keys()
                .iter()
                .map(|(subject, wrapped)| (subject.as_str(), wrapped.as_slice()))
                .unzip();
            let inserted = sqlx::query(&self.sql.insert_keys)
                .bind(&names)
                .bind(&wrapped)
                .execute(&mut *tx)
                .await
                .map_err(map_sqlx)?
                .rows_affected();
            if inserted == names.len() as u64 {
                return Ok((sealed, batch));
            }
        }
        Err(backend(
            "the keys of an append's subjects were written and then not found".to_owned(),
        ))
    }

    /// Opens the sealed personal fields of `events` (see
    /// [`open_events`](personal_data::open_events)): one query for the keys of their
    /// subjects, none when no event holds any.
    pub(crate) async fn open(
        &self,
        events: Vec<Arc<StoredEvent>>,
        prefix: bool,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        let subjects = personal_data::subjects_to_open(&events)?;
        if subjects.is_empty() {
            return Ok(events);
        }
        if self.kek.is_none() {
            return Err(StoreError::NoKeyEncryptionKey);
        }
        self.check_key_encryption_key().await?;
        let mut conn = self.connection().await?;
        let found = self.find_keys(&mut conn, &subjects).await?;
        conn.keep();
        personal_data::open_events(self.kek.as_deref(), events, &found, prefix)
    }

    /// `forget_subject`: in one transaction, the key destroyed (or the subject recorded
    /// as forgotten), the streams holding its sealed fields found (by `events_personal`
    /// and its twin on the archive), their snapshots deleted.
    pub(crate) async fn forget(&self, subject: &Subject) -> Result<Vec<StreamId>, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(&self.sql.forget_key)
            .bind(subject.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        let holding = serde_json::json!([{ "subject": subject.as_str() }]);
        let rows = sqlx::query(&self.sql.subject_streams)
            .bind(&holding)
            .fetch_all(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        let mut streams = Vec::with_capacity(rows.len());
        for row in &rows {
            let stream_type: &str = row.try_get(0).map_err(map_sqlx)?;
            let stream_id: &str = row.try_get(1).map_err(map_sqlx)?;
            streams.push(StreamId::new(stream_type, stream_id).map_err(|e| {
                backend(format!(
                    "stored stream id {stream_type:?}/{stream_id:?}: {e}"
                ))
            })?);
        }
        let types: Vec<&str> = streams.iter().map(StreamId::stream_type).collect();
        let ids: Vec<&str> = streams.iter().map(StreamId::id).collect();
        sqlx::query(&self.sql.drop_snapshots)
            .bind(&types)
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        tx.commit().await.map_err(map_sqlx)?;
        Ok(streams)
    }
}
