//! Personal data on PostgreSQL, checked with plain SQL: no table the store owns holds a
//! forgotten subject's values; a ciphertext changed or moved to another event is a typed
//! error naming the stream and version; a wrong or missing key-encryption key is refused
//! at start-up.

mod common;

use std::convert::Infallible;

use common::{exclusive, fresh_pg_store, runtime};
use cqrs_core::personal::{PersonalError, StaticKek, Subject};
use cqrs_core::{
    Aggregate, Command, DomainEvent, Engine, SnapshotPolicy, StoreError, StreamId, StreamStore,
    SubscriptionName,
};
use cqrs_postgres::sqlx;
use cqrs_postgres::{PgStore, SetupError};

/// Found in no table once its subject is forgotten.
const MARKER: &str = "Grace-Hopper-7f3a";

#[derive(Debug, Clone, PartialEq, DomainEvent)]
enum PatientEvent {
    Admitted {
        patient_id: String,
        #[event(personal(subject = patient_id, forgotten = "[forgotten]"))]
        name: String,
        #[event(personal(subject = patient_id))]
        notes: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Patient {
    name: String,
    notes: String,
}

struct Admit {
    id: String,
    name: String,
}

impl Command for Admit {
    fn command_name(&self) -> &'static str {
        "Admit"
    }
}

impl Aggregate for Patient {
    const TYPE: &'static str = "patient";
    type Command = Admit;
    type Event = PatientEvent;
    type Error = Infallible;
    type Services = ();

    async fn handle(&self, command: &Admit, _: &()) -> Result<Vec<PatientEvent>, Infallible> {
        Ok(vec![PatientEvent::Admitted {
            patient_id: command.id.clone(),
            name: command.name.clone(),
            notes: format!("notes on {}", command.name),
        }])
    }

    fn apply(&mut self, event: &PatientEvent) {
        let PatientEvent::Admitted { name, notes, .. } = event;
        self.name = name.clone();
        self.notes = notes.clone();
    }
}

/// A store in a fresh schema with a key-encryption key, checked; and the key's bytes.
async fn store_with_key() -> (PgStore, [u8; 32]) {
    let mut key = [0; 32];
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let store = fresh_pg_store()
        .await
        .with_key_encryption_key(StaticKek::from_bytes(key));
    store.check().await.expect("check");
    (store, key)
}

/// The store's schema, quoted (the tests' schema names need no escaping).
fn schema(store: &PgStore) -> String {
    format!("\"{}\"", store.schema().as_str())
}

/// Rows of every table of the store's schema whose text holds `needle`, per table.
async fn tables_holding(store: &PgStore, needle: &str) -> Vec<(String, i64)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .bind(store.schema().as_str())
    .fetch_all(store.pool())
    .await
    .expect("tables");
    assert!(tables.len() >= 10, "every table of the schema: {tables:?}");
    let mut holding = Vec::new();
    for table in tables {
        let count: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {}.\"{table}\" t WHERE t::text LIKE '%' || $1 || '%'",
            schema(store)
        ))
        .bind(needle)
        .fetch_one(store.pool())
        .await
        .expect("scan");
        if count > 0 {
            holding.push((table, count));
        }
    }
    holding
}

#[test]
fn after_forget_no_table_of_the_store_holds_the_values() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let (store, _) = store_with_key().await;
        let engine = Engine::<Patient>::new(store.clone(), ())
            .with_snapshots(store.clone(), SnapshotPolicy::EveryEvents(1));
        let id = uuid::Uuid::now_v7().to_string();
        engine
            .execute(
                &id,
                Admit {
                    id: id.clone(),
                    name: MARKER.to_owned(),
                },
            )
            .await
            .expect("admit");
        let stream = StreamId::new("patient", &id).expect("valid");
        let stored = store.read_stream(&stream, 1, 10).await.expect("read");
        assert_eq!(stored[0].data["name"], MARKER, "read back in plaintext");
        // A dead letter and a checkpoint of it, as a failing subscription leaves them.
        let letters = SubscriptionName::new("patients").expect("valid");
        use cqrs_core::CheckpointStore;
        store
            .park(&letters, &stored[0], "failed")
            .await
            .expect("park");
        store
            .save_checkpoint(&letters, stored[0].position)
            .await
            .expect("checkpoint");

        // Sealed where it is stored; the snapshot, state derived from it, is plaintext
        // until the subject is forgotten (which is what makes this scan able to fail).
        assert_eq!(
            tables_holding(&store, MARKER).await,
            [("snapshots".to_owned(), 1)]
        );
        let subject = Subject::new(id.as_str()).expect("valid");
        assert_eq!(
            engine.forget(&subject).await.expect("forget"),
            std::slice::from_ref(&stream)
        );
        assert_eq!(tables_holding(&store, MARKER).await, []);
        let forgotten: String = sqlx::query_scalar(&format!(
            "SELECT (wrapped IS NULL AND forgotten_at IS NOT NULL)::text FROM {}.subject_keys \
             WHERE subject = $1",
            schema(&store)
        ))
        .bind(&id)
        .fetch_one(store.pool())
        .await
        .expect("key row");
        assert_eq!(forgotten, "true", "the key itself is gone");
        let loaded = engine.load(&id).await.expect("still loads");
        assert_eq!(loaded.state.name, "[forgotten]");
        let parked = store.parked(&letters).await.expect("parked");
        assert_eq!(parked[0].event.data["name"], "[forgotten]");
    });
}

#[test]
fn a_changed_or_moved_ciphertext_is_a_typed_error_naming_the_event() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let (store, _) = store_with_key().await;
        let engine = Engine::<Patient>::new(store.clone(), ());
        let subject = uuid::Uuid::now_v7().to_string();
        // Two events about one subject on two streams: the second's ciphertext copied
        // onto the first (same key, same field) must not open there.
        let (a, b) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
        for (id, name) in [(&a, "first"), (&b, "second")] {
            engine
                .execute(
                    id,
                    Admit {
                        id: subject.clone(),
                        name: name.to_owned(),
                    },
                )
                .await
                .expect("admit");
        }
        let table = format!("{}.events", schema(&store));
        sqlx::query(&format!(
            "UPDATE {table} SET data = jsonb_set(data, '{{$personal}}', \
             (SELECT data -> '$personal' FROM {table} WHERE stream_id = $2)) WHERE stream_id = $1"
        ))
        .bind(&a)
        .bind(&b)
        .execute(store.pool())
        .await
        .expect("move");
        let moved = StreamId::new("patient", &a).expect("valid");
        let read = store.read_stream(&moved, 1, 10).await;
        assert!(
            matches!(&read, Err(StoreError::Corrupt { stream, stream_version: 1, reason, .. })
                if *stream == moved && reason.contains("does not open")),
            "{read:?}"
        );
        let loaded = engine.load(&a).await;
        assert!(loaded.is_err(), "never garbage: {loaded:?}");

        // One character of a ciphertext changed.
        let changed = StreamId::new("patient", &b).expect("valid");
        let sealed: String = sqlx::query_scalar(&format!(
            "SELECT data #>> '{{$personal,0,sealed}}' FROM {table} WHERE stream_id = $1"
        ))
        .bind(&b)
        .fetch_one(store.pool())
        .await
        .expect("sealed");
        let mut flipped: Vec<char> = sealed.chars().collect();
        let at = flipped.len() / 2;
        flipped[at] = if flipped[at] == 'A' { 'B' } else { 'A' };
        let flipped: String = flipped.into_iter().collect();
        sqlx::query(&format!(
            "UPDATE {table} SET data = jsonb_set(data, '{{$personal,0,sealed}}', to_jsonb($2::text)) \
             WHERE stream_id = $1"
        ))
        .bind(&b)
        .bind(&flipped)
        .execute(store.pool())
        .await
        .expect("flip");
        let read = store.read_stream(&changed, 1, 10).await;
        assert!(
            matches!(&read, Err(StoreError::Corrupt { stream, stream_version: 1, .. }) if *stream == changed),
            "{read:?}"
        );
    });
}

#[test]
fn a_wrong_or_missing_key_encryption_key_is_refused_at_start_up() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let (store, kek) = store_with_key().await;
        let engine = Engine::<Patient>::new(store.clone(), ());
        let id = uuid::Uuid::now_v7().to_string();
        engine
            .execute(
                &id,
                Admit {
                    id: id.clone(),
                    name: "Ada".to_owned(),
                },
            )
            .await
            .expect("admit");
        let schema = store.schema().as_str().to_owned();
        let other = |kek: Option<StaticKek>| {
            let store =
                PgStore::with_pool_and_schema(store.pool().clone(), &schema).expect("schema");
            match kek {
                Some(kek) => store.with_key_encryption_key(kek),
                None => store,
            }
        };

        let wrong = other(Some(StaticKek::generate())).migrate().await;
        assert!(
            matches!(
                wrong,
                Err(SetupError::Store(StoreError::Personal(
                    PersonalError::WrongKek
                )))
            ),
            "{wrong:?}"
        );
        let missing = other(None).check().await;
        assert!(
            matches!(
                missing,
                Err(SetupError::Store(StoreError::NoKeyEncryptionKey))
            ),
            "{missing:?}"
        );
        let message = missing.expect_err("refused").to_string();
        assert!(message.contains("key-encryption key"), "{message}");
        let stream = StreamId::new("patient", &id).expect("valid");
        let unread = other(None).read_stream(&stream, 1, 10).await;
        assert!(
            matches!(unread, Err(StoreError::NoKeyEncryptionKey)),
            "nothing read without the key: {unread:?}"
        );

        let right = other(Some(StaticKek::from_bytes(kek)));
        right.check().await.expect("the right key");
        let read = right.read_stream(&stream, 1, 10).await.expect("read");
        assert_eq!(read[0].data["name"], "Ada");
    });
}
