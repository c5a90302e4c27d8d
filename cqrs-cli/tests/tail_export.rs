//! `cqrs tail` and `cqrs export`, the real binary against a PostgreSQL cluster of its own:
//! the events they stream, their filters and bounds, following the log, and their
//! failures.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cqrs, fails, json, runtime};
use cqrs_core::{
    CheckpointStore, ExpectedVersion, Metadata, NewEvent, StoredEvent, StreamId, StreamStore,
    SubscriptionName,
};
use cqrs_postgres::testing::TempCluster;
use cqrs_postgres::PgStore;
use serde_json::Value;

/// How long a follower has to print an event (generous: the machine may be busy).
const ARRIVAL: Duration = Duration::from_secs(30);

/// The store of schema `shop`.
async fn store(url: &str) -> PgStore {
    PgStore::connect(url)
        .await
        .expect("connect")
        .with_schema("shop")
        .expect("schema")
}

/// Appends one event of `event_type` to `stream_type/id`, in a transaction of its own.
async fn append(
    store: &PgStore,
    stream_type: &str,
    id: &str,
    event_type: &str,
) -> Arc<StoredEvent> {
    let stream = StreamId::new(stream_type, id).expect("valid");
    let event =
        NewEvent::new(event_type, 1, serde_json::json!({}), Metadata::default()).expect("valid");
    store
        .append(&stream, ExpectedVersion::Any, vec![event])
        .await
        .expect("append")
        .remove(0)
}

/// A migrated schema `shop` with seven events of two stream types, in this order, and two
/// checkpoints (after the third and the sixth), so that `tail` has windows to start at.
fn seven_events(url: &str) -> Vec<Arc<StoredEvent>> {
    json(url, &["--schema", "shop", "migrate"]);
    runtime().block_on(async {
        let store = store(url).await;
        let mut stored = Vec::new();
        for (stream_type, id, event_type) in [
            ("order", "o-1", "order.placed"),
            ("order", "o-1", "order.paid"),
            ("customer", "c-1", "customer.registered"),
            ("order", "o-2", "order.placed"),
            ("customer", "c-1", "customer.renamed"),
            ("order", "o-1", "order.shipped"),
            ("order", "o-2", "order.paid"),
        ] {
            stored.push(append(&store, stream_type, id, event_type).await);
        }
        for (name, at) in [("mailer@v1", 2), ("late@v1", 5)] {
            let name = SubscriptionName::new(name).expect("valid");
            store
                .save_checkpoint(&name, stored[at].position)
                .await
                .expect("checkpoint");
        }
        stored
    })
}

/// The JSON lines of a command that succeeded with nothing on stderr (so no progress bar
/// either: stderr is not a terminal here).
fn lines(url: &str, args: &[&str]) -> Vec<Value> {
    let out = cqrs(url, &[&["--schema", "shop"], args].concat());
    assert!(out.status.success(), "{args:?}: {out:?}");
    assert!(out.stderr.is_empty(), "{args:?}: {out:?}");
    parse_lines(&String::from_utf8_lossy(&out.stdout))
}

/// Each line as one JSON document.
fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("one JSON document per line"))
        .collect()
}

/// The CloudEvents ids of `events`, in order.
fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// The event ids of `stored[at]` for each of `at`.
fn stored_ids(stored: &[Arc<StoredEvent>], at: &[usize]) -> Vec<String> {
    at.iter().map(|&i| stored[i].event_id.to_string()).collect()
}

/// A `cqrs tail --follow --json` running in the background, its lines read on a thread.
struct Follower {
    child: Child,
    lines: Receiver<String>,
}

impl Follower {
    fn spawn(url: &str, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cqrs"))
            .env_remove("DATABASE_URL")
            .args([
                "--database-url",
                url,
                "--schema",
                "shop",
                "tail",
                "--follow",
            ])
            .args(["--json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the cqrs binary starts");
        let stdout = child.stdout.take().expect("piped");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// The next line, if one comes within `wait`.
    fn line_within(&self, wait: Duration) -> Option<Value> {
        let line = self.lines.recv_timeout(wait).ok()?;
        Some(serde_json::from_str(&line).expect("one JSON document per line"))
    }

    /// The next line's event id, which must come within [`ARRIVAL`].
    fn next_id(&self) -> String {
        let line = self
            .line_within(ARRIVAL)
            .expect("the follower prints the event in time");
        line["id"].as_str().expect("an id").to_owned()
    }

    /// Sends SIGTERM and waits for the exit; its status, and what it said on stderr.
    fn terminate(mut self) -> (ExitStatus, String) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let deadline = Instant::now() + ARRIVAL;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "tail did not end on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            pipe.read_to_string(&mut stderr).expect("stderr");
        }
        (status, stderr)
    }
}

impl Drop for Follower {
    /// A failed test does not leave the follower running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tail_follow_prints_each_new_matching_event_and_ends_cleanly_on_sigterm() {
    let cluster = TempCluster::start().expect("a private PostgreSQL cluster starts");
    let url = cluster.url();
    json(&url, &["--schema", "shop", "migrate"]);
    let runtime = runtime();
    // The store's pooled connections are given back on its runtime when it is dropped.
    let _context = runtime.enter();
    let store = runtime.block_on(store(&url));
    let first = runtime.block_on(append(&store, "order", "o-1", "order.placed"));

    // Its last event printed, it is following.
    let follower = Follower::spawn(&url, &["--last", "1", "--type", "order"]);
    assert_eq!(follower.next_id(), first.event_id.to_string());
    runtime.block_on(append(&store, "customer", "c-1", "customer.registered"));
    let paid = runtime.block_on(append(&store, "order", "o-1", "order.paid"));
    assert_eq!(
        follower.next_id(),
        paid.event_id.to_string(),
        "the customer event is not printed"
    );
    let (status, stderr) = follower.terminate();
    assert!(status.success(), "exit 0 on SIGTERM: {status:?}, {stderr}");
    assert!(stderr.is_empty(), "{stderr}");

    // With --last 0 it prints nothing of the past. When it starts following is not
    // known from outside: events are appended until one is printed, and then every one.
    let follower = Follower::spawn(&url, &["--last", "0"]);
    let deadline = Instant::now() + ARRIVAL;
    let mut appended = Vec::new();
    let first_seen = loop {
        assert!(
            Instant::now() < deadline,
            "--last 0 printed nothing in time"
        );
        let event = runtime.block_on(append(&store, "order", "o-9", "order.placed"));
        appended.push(event.event_id.to_string());
        if let Some(line) = follower.line_within(Duration::from_millis(500)) {
            break line["id"].as_str().expect("an id").to_owned();
        }
    };
    let start = appended
        .iter()
        .position(|id| *id == first_seen)
        .expect("the first line printed is of an event appended after the start");
    let last = runtime.block_on(append(&store, "order", "o-9", "order.shipped"));
    appended.push(last.event_id.to_string());
    let mut seen = vec![first_seen];
    while seen.len() < appended.len() - start {
        seen.push(follower.next_id());
    }
    assert_eq!(seen, appended[start..], "every later event, in order");
    let (status, stderr) = follower.terminate();
    assert!(status.success(), "{status:?}, {stderr}");
}

#[test]
fn tail_prints_the_last_matching_events_oldest_first() {
    let cluster = TempCluster::start().expect("a private PostgreSQL cluster starts");
    let url = cluster.url();
    let stored = seven_events(&url);
    let tail = |args: &[&str]| ids(&lines(&url, &[&["tail", "--json"], args].concat()));

    // Windows after the later checkpoint, the earlier one, and the start of the log.
    assert_eq!(tail(&["--last", "1"]), stored_ids(&stored, &[6]));
    assert_eq!(tail(&["--last", "3"]), stored_ids(&stored, &[4, 5, 6]));
    assert_eq!(
        tail(&["--last", "6"]),
        stored_ids(&stored, &[1, 2, 3, 4, 5, 6])
    );
    assert_eq!(
        tail(&["--last", "100"]),
        stored_ids(&stored, &[0, 1, 2, 3, 4, 5, 6])
    );
    assert_eq!(tail(&[]).len(), 7, "20 by default");
    assert!(tail(&["--last", "0"]).is_empty());

    // The filters.
    assert_eq!(
        tail(&["--last", "2", "--type", "order"]),
        stored_ids(&stored, &[5, 6])
    );
    assert_eq!(
        tail(&["--last", "2", "--type", "customer"]),
        stored_ids(&stored, &[2, 4])
    );
    assert_eq!(
        tail(&["--event-type", "order.placed"]),
        stored_ids(&stored, &[0, 3])
    );
    assert_eq!(
        tail(&[
            "--type",
            "order",
            "--event-type",
            "order.paid",
            "--last",
            "5"
        ]),
        stored_ids(&stored, &[1, 6])
    );
    assert_eq!(
        tail(&["--type", "customer", "--type", "order", "--last", "4"]),
        stored_ids(&stored, &[3, 4, 5, 6])
    );
    assert!(tail(&["--type", "nobody"]).is_empty());
    let event = &lines(&url, &["tail", "--json", "--last", "1"])[0];
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["source"], "/order/o-2");
    assert_eq!(event["position"], stored[6].position.to_string());

    // For people: a header, then one aligned line per event.
    let out = cqrs(&url, &["--schema", "shop", "tail", "--last", "2"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let table: Vec<&str> = text.lines().collect();
    assert_eq!(table.len(), 3, "{text}");
    assert!(table[0].starts_with("POSITION"), "{text}");
    for (line, event) in table[1..].iter().zip(&stored[5..]) {
        assert!(line.starts_with(&event.position.to_string()), "{text}");
        assert!(line.contains(&event.stream.to_string()), "{text}");
        assert!(line.contains(&event.event_type), "{text}");
        assert!(line.ends_with(&event.event_id.to_string()), "{text}");
    }
    let column = |line: &str| line.find(&*stored[5].event_type).unwrap_or(0);
    assert_eq!(
        column(table[1]),
        table[0].find("TYPE").unwrap_or(1),
        "{text}"
    );
    let none = cqrs(&url, &["--schema", "shop", "tail", "--type", "nobody"]);
    assert!(String::from_utf8_lossy(&none.stdout).contains("no event in the log matches"));

    // Names the store could never hold are bad input.
    let empty = fails(&url, &["--schema", "shop", "tail", "--type", ""], 1);
    assert!(empty.contains("stream type must not be empty"), "{empty}");
    let long = "x".repeat(300);
    let too_long = fails(
        &url,
        &["--schema", "shop", "tail", "--event-type", &long],
        1,
    );
    assert!(
        too_long.contains("event type is 300 bytes long"),
        "{too_long}"
    );
}

#[test]
fn export_writes_a_stream_or_a_range_as_cloudevents_lines() {
    let cluster = TempCluster::start().expect("a private PostgreSQL cluster starts");
    let url = cluster.url();
    let stored = seven_events(&url);
    let export = |args: &[&str]| lines(&url, &[&["export", "--cloudevents"], args].concat());
    let at = |i: usize| stored[i].position.to_string();

    // One stream, in version order.
    let o1 = export(&["--stream", "order", "o-1"]);
    assert_eq!(ids(&o1), stored_ids(&stored, &[0, 1, 5]));
    let versions: Vec<_> = o1.iter().map(|e| e["streamversion"].clone()).collect();
    assert_eq!(versions, [1, 2, 3]);
    assert!(o1.iter().all(|e| e["specversion"] == "1.0"));
    assert_eq!(
        ids(&export(&[
            "--stream",
            "order",
            "o-1",
            "--event-type",
            "order.paid"
        ])),
        stored_ids(&stored, &[1])
    );
    assert!(export(&["--stream", "order", "o-404"]).is_empty());

    // A range: --from excluded, --to included, by default the whole log.
    assert_eq!(
        ids(&export(&[])),
        stored_ids(&stored, &[0, 1, 2, 3, 4, 5, 6])
    );
    assert_eq!(
        ids(&export(&["--from", &at(1), "--to", &at(5)])),
        stored_ids(&stored, &[2, 3, 4, 5])
    );
    assert_eq!(
        ids(&export(&[
            "--from",
            &at(1),
            "--to",
            &at(5),
            "--type",
            "customer"
        ])),
        stored_ids(&stored, &[2, 4])
    );
    assert_eq!(
        ids(&export(&[
            "--event-type",
            "order.placed",
            "--event-type",
            "order.paid"
        ])),
        stored_ids(&stored, &[0, 1, 3, 6])
    );
    assert_eq!(ids(&export(&["--to", &at(0)])), stored_ids(&stored, &[0]));
    assert_eq!(
        ids(&export(&["--from", &at(4)])),
        stored_ids(&stored, &[5, 6])
    );
    assert!(export(&["--from", &at(6)]).is_empty());
    assert!(export(&["--from", &at(3), "--to", &at(3)]).is_empty());

    // To a file: with --json, stdout is the summary; without, nothing.
    let file = std::env::temp_dir().join(format!("cqrs-export-{}.jsonl", uuid::Uuid::now_v7()));
    let path = file.to_str().expect("a UTF-8 path");
    let summary = lines(
        &url,
        &[
            "export",
            "--cloudevents",
            "--type",
            "order",
            "--output",
            path,
            "--json",
        ],
    );
    assert_eq!(summary.len(), 1, "one document: {summary:?}");
    assert_eq!(summary[0]["exported"], 5);
    assert_eq!(summary[0]["output"], path);
    assert_eq!(summary[0]["last_position"], at(6));
    let written = std::fs::read_to_string(&file).expect("the file");
    assert_eq!(
        ids(&parse_lines(&written)),
        stored_ids(&stored, &[0, 1, 3, 5, 6])
    );
    let quiet = export(&["--stream", "customer", "c-1", "--output", path]);
    assert!(quiet.is_empty(), "{quiet:?}");
    let written = std::fs::read_to_string(&file).expect("the file");
    assert_eq!(
        ids(&parse_lines(&written)),
        stored_ids(&stored, &[2, 4]),
        "the file is emptied first"
    );
    let nothing = lines(
        &url,
        &[
            "export",
            "--cloudevents",
            "--from",
            &at(6),
            "--output",
            path,
            "--json",
        ],
    );
    assert_eq!(nothing[0]["exported"], 0);
    assert_eq!(nothing[0]["last_position"], Value::Null);
    std::fs::remove_file(&file).expect("remove");

    // Bad usage (clap's, exit 2) and failures (exit 1, one sentence).
    let shop = |args: &[&str]| cqrs(&url, &[&["--schema", "shop"], args].concat());
    let bad_from = shop(&["export", "--cloudevents", "--from", "7"]);
    assert_eq!(bad_from.status.code(), Some(2), "{bad_from:?}");
    assert!(String::from_utf8_lossy(&bad_from.stderr).contains("is not a position"));
    assert!(bad_from.stdout.is_empty());
    let no_format = shop(&["export"]);
    assert_eq!(no_format.status.code(), Some(2), "{no_format:?}");
    let both = shop(&[
        "export",
        "--cloudevents",
        "--stream",
        "order",
        "o-1",
        "--from",
        &at(1),
    ]);
    assert_eq!(both.status.code(), Some(2), "{both:?}");
    let typed = shop(&[
        "export",
        "--cloudevents",
        "--stream",
        "order",
        "o-1",
        "--type",
        "x",
    ]);
    assert_eq!(typed.status.code(), Some(2), "{typed:?}");
    let nowhere = "/nonexistent-cqrs-dir/events.jsonl";
    let unwritable = fails(
        &url,
        &[
            "--schema",
            "shop",
            "export",
            "--cloudevents",
            "--output",
            nowhere,
        ],
        1,
    );
    assert!(
        unwritable.contains(&format!("cannot create {nowhere}")),
        "{unwritable}"
    );
    assert!(
        unwritable.contains("No such file or directory"),
        "{unwritable}"
    );
    let backwards = fails(
        &url,
        &[
            "--schema",
            "shop",
            "export",
            "--cloudevents",
            "--from",
            &at(5),
            "--to",
            &at(1),
        ],
        1,
    );
    assert!(backwards.contains("comes before --from"), "{backwards}");
    let bad_type = fails(
        &url,
        &["--schema", "shop", "export", "--cloudevents", "--type", ""],
        1,
    );
    assert!(
        bad_type.contains("stream type must not be empty"),
        "{bad_type}"
    );
}

#[test]
fn export_reads_personal_data_with_the_key_and_shows_placeholders_once_forgotten() {
    use cqrs_core::personal::{PersonalValue, StaticKek, Subject};
    const MARKER: &str = "Grace-Hopper-7f3a";
    let cluster = TempCluster::start().expect("a private PostgreSQL cluster starts");
    let url = cluster.url();
    json(&url, &["--schema", "shop", "migrate"]);
    let key = [7_u8; 32];
    let encoded_key = StaticKek::from_bytes(key).to_base64();
    // One runtime for the store: its connections belong to the runtime that opened them,
    // and are dropped in it (the store is declared after the guard, so dropped first).
    let runtime = runtime();
    let _in_runtime = runtime.enter();
    let store = runtime.block_on(async {
        let store = store(&url)
            .await
            .with_key_encryption_key(StaticKek::from_bytes(key));
        let event = NewEvent::new(
            "customer.registered",
            1,
            serde_json::json!({ "customer_id": "c-1" }),
            Metadata::default(),
        )
        .expect("valid")
        .with_personal(PersonalValue::new(
            Subject::new("c-1").expect("valid"),
            "name",
            serde_json::json!(MARKER),
            serde_json::json!("[forgotten]"),
        ));
        let stream = StreamId::new("customer", "c-1").expect("valid");
        store
            .append(&stream, ExpectedVersion::NoStream, vec![event])
            .await
            .expect("append");
        store
    });
    let export = |kek: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cqrs"));
        command
            .env_remove("DATABASE_URL")
            .env_remove("CQRS_KEK")
            .args([
                "--database-url",
                &url,
                "--schema",
                "shop",
                "export",
                "--cloudevents",
            ]);
        if let Some(kek) = kek {
            command.env("CQRS_KEK", kek);
        }
        command.output().expect("the cqrs binary runs")
    };

    let read = export(Some(&encoded_key));
    assert!(read.status.success(), "{read:?}");
    let events = parse_lines(&String::from_utf8_lossy(&read.stdout));
    assert_eq!(events[0]["data"]["name"], MARKER, "read with the key");
    let refused = export(None);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("key-encryption key"), "{said}");
    assert!(!String::from_utf8_lossy(&refused.stdout).contains(MARKER));
    let wrong = export(Some(&StaticKek::from_bytes([8; 32]).to_base64()));
    assert_eq!(wrong.status.code(), Some(1), "a wrong key: {wrong:?}");
    assert!(!String::from_utf8_lossy(&wrong.stdout).contains(MARKER));

    runtime.block_on(async {
        let subject = Subject::new("c-1").expect("valid");
        store.forget_subject(&subject).await.expect("forget");
    });
    let forgotten = export(Some(&encoded_key));
    assert!(forgotten.status.success(), "{forgotten:?}");
    let text = String::from_utf8_lossy(&forgotten.stdout);
    assert!(!text.contains(MARKER), "{text}");
    assert_eq!(parse_lines(&text)[0]["data"]["name"], "[forgotten]");
}
