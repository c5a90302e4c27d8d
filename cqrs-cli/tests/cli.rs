//! The real `cqrs` binary against a PostgreSQL cluster of its own: its `--json`, its
//! exit codes, its one-sentence errors.

mod common;

use common::{cqrs, fails, json, runtime};
use cqrs_core::{CheckpointStore, ExpectedVersion, Metadata, NewEvent, StreamId, StreamStore};
use cqrs_postgres::testing::TempCluster;
use cqrs_postgres::PgStore;
use serde_json::Value;

#[test]
fn an_operator_migrates_lists_reads_and_discards() {
    let cluster = TempCluster::start().expect("a private PostgreSQL cluster starts");
    let url = cluster.url();
    let migrated = json(&url, &["--schema", "shop", "migrate"]);
    assert_eq!(migrated["schema"], "shop");
    assert!(migrated["schema_version"].as_i64().is_some_and(|v| v >= 5));
    let health = json(&url, &["--schema", "shop", "health"]);
    assert_eq!(health["healthy"], true, "{health}");
    assert_eq!(json(&url, &["--schema", "shop", "check"])["ok"], true);

    let request = uuid::Uuid::now_v7();
    let runtime = runtime();
    let (stored, name) = runtime.block_on(async {
        let store = PgStore::connect(&url)
            .await
            .expect("connect")
            .with_schema("shop")
            .expect("schema");
        let event = |n: u64| {
            NewEvent::new(
                "order.placed",
                1,
                serde_json::json!({ "n": n }),
                Metadata::default().with_correlation_id(request),
            )
            .expect("valid")
        };
        let mut stored = Vec::new();
        for id in ["o-1", "o-2", "o-3"] {
            let stream = StreamId::new("order", id).expect("valid");
            stored.extend(
                store
                    .append(&stream, ExpectedVersion::Any, vec![event(1), event(2)])
                    .await
                    .expect("append"),
            );
        }
        let name = cqrs_core::SubscriptionName::new("mailer@v1").expect("valid");
        store
            .save_checkpoint(&name, stored[1].position)
            .await
            .expect("checkpoint");
        // Dead letters are kept under the subscription's name, without its version.
        let mailer = cqrs_core::SubscriptionName::new("mailer").expect("valid");
        store
            .park(&mailer, &stored[0], "smtp refused")
            .await
            .expect("park");
        (stored, name)
    });

    let page = json(
        &url,
        &[
            "--schema", "shop", "streams", "list", "--type", "order", "--limit", "2",
        ],
    );
    let ids: Vec<_> = page["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| {
            (
                s["stream_id"].as_str().unwrap_or("").to_owned(),
                s["version"].clone(),
            )
        })
        .collect();
    assert_eq!(ids, [("o-1".into(), 2.into()), ("o-2".into(), 2.into())]);
    assert_eq!(page["next_after"], "order/o-2");
    let rest = json(
        &url,
        &[
            "--schema",
            "shop",
            "streams",
            "list",
            "--after",
            "order/o-2",
        ],
    );
    assert_eq!(rest["streams"][0]["stream_id"], "o-3");
    assert_eq!(rest["next_after"], Value::Null);
    let types = json(&url, &["--schema", "shop", "streams", "types"]);
    assert_eq!(types["stream_types"][0]["events"], 6);

    let shown = json(
        &url,
        &[
            "--schema", "shop", "stream", "show", "order", "o-2", "--last", "1",
        ],
    );
    assert_eq!(shown["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(shown["events"][0]["id"], stored[3].event_id.to_string());
    let caused = json(
        &url,
        &[
            "--schema",
            "shop",
            "events",
            "--correlation",
            &request.to_string(),
        ],
    );
    assert_eq!(caused["events"].as_array().map(Vec::len), Some(6));

    let subs = json(&url, &["--schema", "shop", "subscriptions", "list"]);
    assert_eq!(subs["subscriptions"][0]["checkpoint"], "mailer@v1");
    assert_eq!(subs["subscriptions"][0]["name"], "mailer");
    // No runner recorded its filter here: counted over the whole log, and said so.
    assert_eq!(subs["subscriptions"][0]["events_behind"], 4);
    assert_eq!(subs["subscriptions"][0]["events_behind_filtered"], false);
    assert_eq!(subs["subscriptions"][0]["state"], "not running");
    assert_eq!(subs["subscriptions"][0]["dead_letters"], 1);

    let letters = json(
        &url,
        &["--schema", "shop", "dead-letters", "list", name.as_str()],
    );
    assert_eq!(letters["dead_letters"][0]["error"], "smtp refused");
    let id = stored[0].event_id.to_string();
    let discarded = json(
        &url,
        &[
            "--schema",
            "shop",
            "dead-letters",
            "discard",
            name.as_str(),
            &id,
            "--reason",
            "sent by hand",
        ],
    );
    assert_eq!(discarded["discarded"], true);
    let kept = json(
        &url,
        &[
            "--schema",
            "shop",
            "dead-letters",
            "list",
            name.as_str(),
            "--discarded",
        ],
    );
    assert_eq!(
        kept["dead_letters"][0]["discarded"]["reason"],
        "sent by hand"
    );
    let again = fails(
        &url,
        &[
            "--schema",
            "shop",
            "dead-letters",
            "discard",
            name.as_str(),
            &id,
            "--reason",
            "x",
        ],
        1,
    );
    assert!(again.contains("has no parked dead letter"), "{again}");

    // A table for people.
    let out = cqrs(&url, &["--schema", "shop", "streams", "list"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("TYPE"), "{table}");
    assert!(table.contains("o-3"), "{table}");
}

#[test]
fn bad_input_gets_one_sentence_and_its_exit_code_and_changes_nothing() {
    let mut cluster = TempCluster::start().expect("a private PostgreSQL cluster starts");
    let url = cluster.url();
    let never = fails(&url, &["--schema", "never", "streams", "list"], 1);
    assert!(never.contains("was never migrated"), "{never}");
    let health = cqrs(&url, &["--schema", "never", "health", "--json"]);
    assert_eq!(health.status.code(), Some(1), "unhealthy: {health:?}");
    let bad_schema = fails(&url, &["--schema", "Bad-Name", "health"], 1);
    assert!(bad_schema.contains("invalid schema name"), "{bad_schema}");
    let usage = cqrs(&url, &["streams", "nonsense"]);
    assert_eq!(usage.status.code(), Some(2), "bad usage: {usage:?}");
    json(&url, &["--schema", "shop", "migrate"]);
    let unknown = fails(
        &url,
        &[
            "--schema",
            "shop",
            "dead-letters",
            "discard",
            "nobody@v1",
            &uuid::Uuid::now_v7().to_string(),
            "--reason",
            "r",
        ],
        1,
    );
    assert!(unknown.contains("no subscription nobody@v1"), "{unknown}");
    let empty = fails(
        &url,
        &[
            "--schema",
            "shop",
            "dead-letters",
            "discard",
            "nobody@v1",
            &uuid::Uuid::now_v7().to_string(),
            "--reason",
            " ",
        ],
        1,
    );
    assert!(empty.contains("empty --reason"), "{empty}");
    let nowhere = std::process::Command::new(env!("CARGO_BIN_EXE_cqrs"))
        .env_remove("DATABASE_URL")
        .arg("health")
        .output()
        .expect("the cqrs binary runs");
    assert_eq!(nowhere.status.code(), Some(1), "{nowhere:?}");
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("no database given"));
    let bad_url = fails(
        "postgres://app:s3cret@127.0.0.1:notaport/app",
        &["health"],
        1,
    );
    assert!(!bad_url.contains("s3cret"), "{bad_url}");

    cluster.stop_immediately().expect("stop");
    let down = fails(&url, &["--schema", "shop", "streams", "list"], 1);
    assert!(down.starts_with("cqrs: "), "{down}");
    assert!(!down.contains("panicked"), "{down}");
}
