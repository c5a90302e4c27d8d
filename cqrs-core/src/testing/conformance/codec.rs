//! The envelope through the store, and the codec over stored data.

use serde_json::json;

use super::domain::{Counter, CounterEvent};
use super::{unique_stream, Store};
use crate::codec::{self, DecodeErrorKind};
use crate::{
    Engine, EngineError, EventFilter, ExpectedVersion, Metadata, NewEvent, Position, StreamId,
};

/// Every envelope field survives the store: ids, types, versions, data, metadata, time.
pub async fn envelope_round_trips<S: Store>(store: S) {
    let stream = unique_stream("account");
    let metadata = Metadata::default()
        .with_correlation_id(uuid::Uuid::now_v7())
        .with_causation_id(uuid::Uuid::now_v7())
        .with_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .expect("valid traceparent"),
        )
        .with_tracestate(
            "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
                .parse()
                .expect("valid tracestate"),
        )
        .with_extra("user", "ådä \"quoted\" 'single'")
        .with_extra("tenant", "acme");
    let data = json!({
        "text": "multi\nline ünïcödé 😀 \"quotes\" \\ back",
        "numbers": [0, -1, 1.5, u64::MAX, i64::MIN],
        "nested": { "empty": {}, "list": [], "null": null, "bool": true },
    });
    let id = uuid::Uuid::now_v7();
    let event = NewEvent::new("Opened", 7, data.clone(), metadata.clone())
        .expect("valid event")
        .with_event_id(id);
    let before = chrono::Utc::now();
    let stored = store
        .append(&stream, ExpectedVersion::NoStream, vec![event])
        .await
        .expect("append");
    let e = &stored[0];
    assert_eq!(e.event_id, id);
    assert_eq!(e.stream, stream);
    assert_eq!(e.stream_version, 1);
    assert_eq!(e.event_type, "Opened");
    assert_eq!(e.event_version, 7);
    assert_eq!(e.data, data);
    assert_eq!(e.metadata, metadata);
    let drift = (e.recorded_at - before).num_seconds().abs();
    assert!(
        drift < 300,
        "recorded_at is the time of the append (drift {drift}s)"
    );
    let read = store.read_stream(&stream, 1, 1).await.expect("read");
    assert_eq!(read[0], *e, "read_stream returns the envelope as appended");
    let all = store
        .read_all(Position::START, usize::MAX, &EventFilter::all())
        .await
        .expect("read all");
    assert_eq!(all[0], *e, "read_all returns the envelope as appended");
    assert_eq!(e.to_cloudevent()["id"], id.to_string());
}

/// Upcasting happens on read: the stored data and version stay as written.
pub async fn stored_data_is_never_rewritten<S: Store>(store: S) {
    let id = uuid::Uuid::now_v7().to_string();
    let stream = StreamId::new("counter", &id).expect("valid");
    let v1 = NewEvent::new("Added", 1, json!({ "n": 5 }), Metadata::default()).expect("valid");
    store
        .append(&stream, ExpectedVersion::NoStream, vec![v1])
        .await
        .expect("append");
    let stored = store.read_stream(&stream, 1, 1).await.expect("read");
    let decoded = codec::decode::<CounterEvent>(&stored[0]).expect("v1 upcasts to v2");
    assert_eq!(decoded.data, CounterEvent::Added { amount: 5 });
    let engine = Engine::<Counter>::new(store.clone(), ());
    let loaded = engine
        .load(&id)
        .await
        .expect("the engine loads through the upcaster");
    assert_eq!(loaded.state.value, 5);
    engine
        .execute(&id, super::domain::Add(1))
        .await
        .expect("execute");
    let again = store
        .read_stream(&stream, 1, usize::MAX)
        .await
        .expect("read");
    assert_eq!(again[0].event_version, 1, "the stored version is unchanged");
    assert_eq!(
        again[0].data,
        json!({ "n": 5 }),
        "the stored data is unchanged"
    );
    assert_eq!(
        again[1].event_version, 2,
        "new events are written at the current version"
    );
}

/// Data that does not fit, an unknown type and a future version are typed errors that
/// name the stream, the version and the type; the engine reports them too.
pub async fn undecodable_events_are_typed_errors<S: Store>(store: S) {
    let cases = [
        (
            "Added",
            2,
            json!({ "amount": "not a number" }),
            "invalid data",
        ),
        ("Exploded", 1, json!({}), "unknown event type"),
        ("Added", 9, json!({ "amount": 1 }), "newer than the current"),
        (
            "Added",
            1,
            json!({ "no_n": 1 }),
            "upcaster from version 1 failed",
        ),
    ];
    for (event_type, version, data, expected) in cases {
        let id = uuid::Uuid::now_v7().to_string();
        let stream = StreamId::new("counter", &id).expect("valid");
        let good =
            NewEvent::new("Added", 2, json!({ "amount": 1 }), Metadata::default()).expect("valid");
        let bad = NewEvent::new(event_type, version, data, Metadata::default()).expect("valid");
        store
            .append(&stream, ExpectedVersion::NoStream, vec![good, bad])
            .await
            .expect("the store takes any JSON");
        let stored = store.read_stream(&stream, 2, 1).await.expect("read");
        let err = codec::decode::<CounterEvent>(&stored[0]).expect_err("undecodable");
        assert_eq!(err.stream, stream);
        assert_eq!(err.stream_version, 2);
        assert_eq!(err.event_type, event_type);
        assert_eq!(err.event_version, version);
        let message = err.to_string();
        assert!(
            message.contains(expected),
            "{message:?} should say {expected:?}"
        );
        assert!(
            message.contains(&id) && message.contains(event_type),
            "{message:?} names the event"
        );
        match (&err.kind, event_type, version) {
            (DecodeErrorKind::InvalidData(_), "Added", 2)
            | (DecodeErrorKind::UnknownEventType, "Exploded", _)
            | (
                DecodeErrorKind::UnknownVersion {
                    stored: 9,
                    current: 2,
                },
                _,
                9,
            )
            | (
                DecodeErrorKind::UpcasterFailed {
                    from_version: 1, ..
                },
                _,
                1,
            ) => {}
            (kind, ..) => panic!("wrong kind {kind:?} for {event_type} v{version}"),
        }
        let engine = Engine::<Counter>::new(store.clone(), ());
        match engine.load(&id).await {
            Err(EngineError::Decode(e)) => assert_eq!(e.stream_version, 2),
            other => panic!("the engine must report the decode error, got {other:?}"),
        }
    }
}
