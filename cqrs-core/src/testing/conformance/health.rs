//! The store's report on itself.

use std::time::Duration;

use super::{events, named, unique_stream, Store};
use crate::{
    EventFilter, ExpectedVersion, ParkedCount, RecordedState, StoreHealth, SubscriptionRecord,
};

/// A fresh store is healthy (reachable, its schema the one expected, no horizon held
/// back), and the report counts each subscription's dead letters that are not discarded,
/// and lists the subscriptions whose runner recorded that it stopped on an error.
pub async fn a_store_reports_its_health<S: Store + StoreHealth>(store: S) {
    let report = store.health(Duration::from_secs(10)).await;
    assert!(report.is_healthy(), "{report:?}");
    assert!(report.reachable && report.round_trip.is_some());
    assert_eq!(report.schema_version, report.expected_schema_version);
    assert_eq!(report.horizon_lag, Some(0), "nothing is held back");
    assert!(report.parked.is_empty());
    assert!(report.failed.is_empty());

    let stored = store
        .append(
            &unique_stream("parcel"),
            ExpectedVersion::NoStream,
            events("Shipped", 1, 2),
        )
        .await
        .expect("append");
    let suffix = uuid::Uuid::now_v7();
    let (alpha, beta) = (
        named(&format!("alpha-{suffix}")),
        named(&format!("beta-{suffix}")),
    );
    for (name, event) in [
        (&alpha, &stored[0]),
        (&alpha, &stored[1]),
        (&beta, &stored[1]),
    ] {
        store.park(name, event, "failed").await.expect("park");
    }
    assert!(store
        .discard(&alpha, stored[0].event_id, "handled by hand")
        .await
        .expect("discard"));
    let report = store.health(Duration::from_secs(10)).await;
    assert!(
        report.is_healthy(),
        "dead letters do not make the store unhealthy"
    );
    assert_eq!(
        report.parked,
        [
            ParkedCount::new(alpha.as_str(), 1),
            ParkedCount::new(beta.as_str(), 1)
        ]
    );

    let record = |name: &str, state| {
        SubscriptionRecord::new(named(&format!("{name}@v1")), EventFilter::all(), state)
    };
    let failed = record(
        &format!("gamma-{suffix}"),
        RecordedState::Failed {
            error: "event 7 failed".to_owned(),
        },
    );
    store.record(&failed).await.expect("record");
    let restarted = record(
        &format!("delta-{suffix}"),
        RecordedState::Failed {
            error: "event 8 failed".to_owned(),
        },
    );
    store.record(&restarted).await.expect("record");
    store
        .record(&record(&format!("delta-{suffix}"), RecordedState::Running))
        .await
        .expect("record");
    let report = store.health(Duration::from_secs(10)).await;
    assert!(
        report.is_healthy(),
        "a stopped subscription is its own business"
    );
    let failed_names: Vec<_> = report.failed.iter().map(|r| r.checkpoint.clone()).collect();
    assert_eq!(
        failed_names,
        [failed.checkpoint],
        "started again since: not listed"
    );
}
