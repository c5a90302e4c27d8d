//! Personal data (crypto-shredding): sealed fields read back in plaintext until their
//! subject is forgotten, then as their placeholders everywhere the store hands events
//! out; snapshots of the streams that held them dropped; new personal data refused.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use super::domain::{Member, MemberCommand, MemberEvent, FORGOTTEN_NAME};
use super::subscription::WAIT;
use super::{unique_name, Store};
use crate::personal::{Subject, PERSONAL_KEY};
use crate::subscription::{Project, Subscription};
use crate::{
    Engine, EngineError, Envelope, EventFilter, Listener, Position, Projection, SnapshotPolicy,
    StoreError, StreamId,
};

/// Members' names by id, as a read model keeps them.
#[derive(Clone, Default)]
struct Names<const V: u32>(Arc<Mutex<HashMap<String, String>>>);

impl<const V: u32> Names<V> {
    fn of(&self, id: &str) -> Option<String> {
        self.0.lock().expect("names").get(id).cloned()
    }
}

impl<const V: u32> Listener for Names<V> {
    const NAME: &'static str = "member-names";
    type Event = MemberEvent;
    type Error = Infallible;
}

impl<const V: u32> Projection for Names<V> {
    const VERSION: u32 = V;

    async fn handle(&self, event: &Envelope<MemberEvent>) -> Result<(), Infallible> {
        if let MemberEvent::Joined {
            member_id, name, ..
        }
        | MemberEvent::Renamed { member_id, name } = &event.data
        {
            self.0
                .lock()
                .expect("names")
                .insert(member_id.clone(), name.clone());
        }
        Ok(())
    }

    async fn reset(&self) -> Result<(), Infallible> {
        self.0.lock().expect("names").clear();
        Ok(())
    }
}

/// Runs `names` until it has caught up, then stops it.
async fn project<S: Store, const V: u32>(store: &S, names: &Names<V>) {
    let run = Subscription::new(
        store.clone(),
        Project::new(names.clone(), store.clone()).expect("valid"),
    )
    .start();
    run.caught_up(WAIT).await.expect("caught up");
    run.shutdown().await.expect("shutdown");
}

fn join(member_id: &str, name: &str, email: &str) -> MemberCommand {
    MemberCommand::Join {
        member_id: member_id.to_owned(),
        name: name.to_owned(),
        email: email.to_owned(),
    }
}

/// Until its subject is forgotten, a personal field reads back in plaintext (streams,
/// the log, a projection), never as its sealed form. Once forgotten: its fields read as
/// their placeholders in stream reads, the global read, dead letters and the archive;
/// the aggregate still loads (from the placeholders: its image and its snapshot were
/// dropped, other streams' snapshots kept); a command carrying new personal data about
/// it is `Forgotten`, one without is stored; a rebuilt read model holds only the
/// placeholders; forgetting again changes nothing.
pub async fn a_forgotten_subject_reads_as_its_placeholders<S: Store>(store: S) {
    let engine = Engine::<Member>::new(store.clone(), ())
        .with_image_cache(16)
        .with_snapshots(store.clone(), SnapshotPolicy::EveryEvents(1));
    let ada = uuid::Uuid::now_v7().to_string();
    let bob = uuid::Uuid::now_v7().to_string();
    engine
        .execute(&ada, join(&ada, "Ada Lovelace", "ada@example.org"))
        .await
        .expect("join");
    engine
        .execute(
            &ada,
            MemberCommand::Visit {
                member_id: ada.clone(),
            },
        )
        .await
        .expect("visit");
    engine
        .execute(&bob, join(&bob, "Bob", "bob@example.org"))
        .await
        .expect("join");
    let stream = StreamId::new("member", &ada).expect("valid");
    let other = StreamId::new("member", &bob).expect("valid");

    let read = store.read_stream(&stream, 1, 10).await.expect("read");
    assert_eq!(read[0].data["name"], "Ada Lovelace");
    assert_eq!(read[0].data["email"], "ada@example.org");
    assert!(
        read[0].data.get(PERSONAL_KEY).is_none(),
        "opened: {}",
        read[0].data
    );
    assert!(store.load_snapshot(&stream).await.expect("load").is_some());
    let names = Names::<1>::default();
    project(&store, &names).await;
    assert_eq!(names.of(&ada).as_deref(), Some("Ada Lovelace"));
    let letters = unique_name("member-letters");
    store
        .park(&letters, &read[0], "failed")
        .await
        .expect("park");

    let subject = Subject::new(ada.as_str()).expect("valid");
    assert_eq!(
        engine.forget(&subject).await.expect("forget"),
        std::slice::from_ref(&stream)
    );

    assert!(
        store.load_snapshot(&stream).await.expect("load").is_none(),
        "the snapshot of its state is dropped"
    );
    assert!(store.load_snapshot(&other).await.expect("load").is_some());
    let forgotten = store.read_stream(&stream, 1, 10).await.expect("read");
    assert_eq!(forgotten[0].data["name"], FORGOTTEN_NAME);
    assert_eq!(forgotten[0].data["email"], "");
    assert_eq!(
        forgotten[0].data["member_id"],
        ada.as_str(),
        "the subject id stays"
    );
    assert_eq!(
        forgotten[1].data, read[1].data,
        "an event without personal data"
    );
    let members = EventFilter::all()
        .with_stream_types(["member"])
        .expect("valid");
    let log = store
        .read_all(Position::START, 10_000, &members)
        .await
        .expect("read all");
    let name_in_log = |id: &StreamId| {
        log.iter()
            .find(|e| &e.stream == id && e.event_type == "Joined")
            .map(|e| e.data["name"].clone())
    };
    assert_eq!(name_in_log(&stream), Some(FORGOTTEN_NAME.into()));
    assert_eq!(name_in_log(&other), Some("Bob".into()));
    let parked = store.parked(&letters).await.expect("parked");
    assert_eq!(
        parked[0].event.data["name"], FORGOTTEN_NAME,
        "the dead letter too"
    );

    let loaded = engine.load(&ada).await.expect("still loads");
    assert_eq!(
        (
            loaded.state.name.as_str(),
            loaded.state.email.as_str(),
            loaded.state.visits
        ),
        (FORGOTTEN_NAME, "", 1)
    );
    let fresh = Engine::<Member>::new(store.clone(), ())
        .load(&ada)
        .await
        .expect("load");
    assert_eq!(fresh.state, loaded.state);
    assert_eq!(
        engine.load(&bob).await.expect("load").state.name,
        "Bob",
        "another subject is untouched"
    );

    let renamed = engine
        .execute(
            &ada,
            MemberCommand::Rename {
                member_id: ada.clone(),
                name: "Ada King".to_owned(),
            },
        )
        .await;
    assert!(
        matches!(&renamed, Err(EngineError::Store(StoreError::Forgotten { subject: s })) if *s == subject),
        "{renamed:?}"
    );
    engine
        .execute(
            &ada,
            MemberCommand::Visit {
                member_id: ada.clone(),
            },
        )
        .await
        .expect("no personal data: stored");
    assert_eq!(
        engine.forget(&subject).await.expect("again"),
        std::slice::from_ref(&stream)
    );

    let rebuilt = Names::<2>::default();
    project(&store, &rebuilt).await;
    assert_eq!(rebuilt.of(&ada).as_deref(), Some(FORGOTTEN_NAME));
    assert_eq!(rebuilt.of(&bob).as_deref(), Some("Bob"));

    assert_eq!(store.archive_stream(&stream).await.expect("archive"), 3);
    let archived = store
        .read_archived_stream(&stream, 1, 10)
        .await
        .expect("read the archive");
    assert_eq!(archived[0].data["name"], FORGOTTEN_NAME);
    store.unarchive_stream(&stream).await.expect("unarchive");
}

/// Appends racing to store the first personal data of one subject, on different streams,
/// all succeed with one key between them: every one reads back, and forgetting the
/// subject makes every one read as its placeholder.
pub async fn racing_first_appends_of_a_subject_share_its_key<S: Store>(store: S) {
    let engine = Engine::<Member>::new(store.clone(), ());
    let subject_id = uuid::Uuid::now_v7().to_string();
    let writers: Vec<_> = (0..8)
        .map(|n| {
            let (engine, subject_id) = (engine.clone(), subject_id.clone());
            tokio::spawn(async move {
                let id = uuid::Uuid::now_v7().to_string();
                let name = format!("name {n}");
                engine
                    .execute(&id, join(&subject_id, &name, "same@example.org"))
                    .await
                    .expect("join");
                (id, name)
            })
        })
        .collect();
    let mut written = Vec::new();
    for writer in writers {
        written.push(writer.await.expect("writer"));
    }
    for (id, name) in &written {
        assert_eq!(&engine.load(id).await.expect("load").state.name, name);
    }
    let subject = Subject::new(subject_id).expect("valid");
    let streams = engine.forget(&subject).await.expect("forget");
    assert_eq!(streams.len(), written.len());
    for (id, _) in &written {
        assert_eq!(
            engine.load(id).await.expect("load").state.name,
            FORGOTTEN_NAME
        );
    }
}

/// A personal value or placeholder that no backend can store (a NUL character) is
/// refused as `Unstorable` before it is sealed, as it would be in plaintext, and nothing
/// is written.
pub async fn unstorable_personal_data_is_refused_before_it_is_sealed<S: Store>(store: S) {
    use crate::personal::PersonalValue;
    use crate::{ExpectedVersion, Metadata, NewEvent};
    let stream = super::unique_stream("member");
    let subject = Subject::new(stream.id()).expect("valid");
    for (value, placeholder) in [("a\0b", "[forgotten]"), ("Ada", "x\0y")] {
        let event = NewEvent::new(
            "Joined",
            1,
            serde_json::json!({ "member_id": stream.id() }),
            Metadata::default(),
        )
        .expect("valid")
        .with_personal(PersonalValue::new(
            subject.clone(),
            "name",
            serde_json::json!(value),
            serde_json::json!(placeholder),
        ));
        let refused = store
            .append(&stream, ExpectedVersion::NoStream, vec![event])
            .await;
        assert!(
            matches!(refused, Err(StoreError::Unstorable { .. })),
            "{refused:?}"
        );
    }
    assert!(store
        .read_stream(&stream, 1, 10)
        .await
        .expect("read")
        .is_empty());
}
