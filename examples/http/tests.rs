//! The service over real HTTP: a server on a free local port, driven by the client.
//!
//! On the backend the test command provides (PostgreSQL under `scripts/test`), except the
//! outage test, which stops and restarts a PostgreSQL cluster of its own.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::http::StatusCode;
use cqrs_postgres::testing::TempCluster;
use examples::Backend;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};
use tokio::time::Instant;

use crate::client::{Client, Reply};
use crate::service::Service;

/// Global reads on PostgreSQL wait for every older open transaction of the cluster, so
/// tests on the shared database run one at a time, as the other PostgreSQL tests do.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// The longest a test waits for something that must happen (never a timing assert: on a
/// busy machine it only has to happen at all).
pub(crate) const PATIENCE: Duration = Duration::from_secs(120);

pub(crate) fn any_free_port() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// The service on the test command's backend, with the lock that serialises the tests
/// that use it.
async fn started() -> (MutexGuard<'static, ()>, Service, Client) {
    let (exclusive, backend) = backend().await;
    let service = Service::start(&backend, any_free_port(), unrecorded())
        .await
        .expect("the service starts");
    let client = Client::new(service.addr());
    (exclusive, service, client)
}

/// The test command's backend, with the lock that serialises the tests that use it.
pub(crate) async fn backend() -> (MutexGuard<'static, ()>, Backend) {
    let exclusive = ONE_AT_A_TIME.lock().await;
    let backend = Backend::from_env(crate::SCHEMA)
        .await
        .expect("the backend is reachable");
    (exclusive, backend)
}

/// A handle for `/metrics` of a recorder that is not installed: the tests that do not
/// look at metrics.
pub(crate) fn unrecorded() -> PrometheusHandle {
    crate::telemetry::recorder()
        .expect("the recorder's buckets")
        .build_recorder()
        .handle()
}

pub(crate) async fn post(client: &Client, path: &str, body: &str) -> Reply {
    client
        .post(path, body)
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

pub(crate) async fn get(client: &Client, path: &str) -> Reply {
    client
        .get(path)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Asserts a JSON error answer: its status, its `error` kind, and a message.
fn assert_error(reply: &Reply, status: StatusCode, kind: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["error"], kind, "{}", reply.body);
    assert!(
        reply.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "an error says what went wrong: {}",
        reply.body
    );
}

pub(crate) fn unique(name: &str) -> String {
    format!("{name}-{}", examples::run_id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_outcome_of_a_command_has_its_status_and_json_body() {
    let (_exclusive, service, client) = started().await;
    let ada = unique("ada");
    let deposits = format!("/accounts/{ada}/deposits");
    let withdrawals = format!("/accounts/{ada}/withdrawals");
    let opening = json!({ "account_id": ada, "customer_id": "c-ada", "owner": "Ada" }).to_string();

    let opened = post(&client, "/accounts", &opening).await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    assert_eq!(opened.body["account_id"], ada.as_str());
    assert_eq!(opened.body["version"], 1);
    let events = opened.body["events"].as_array().expect("a list of events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "account.opened");
    assert_eq!(events[0]["version"], 1);
    assert_eq!(
        events[0]["data"],
        json!({ "customer_id": "c-ada", "owner": "Ada" })
    );
    assert!(events[0]["event_id"].is_string() && events[0]["position"].is_string());

    let deposited = post(&client, &deposits, r#"{"amount": 100}"#).await;
    assert_eq!(deposited.status, StatusCode::OK, "{}", deposited.body);
    assert_eq!(deposited.body["version"], 2);
    assert_eq!(deposited.body["events"][0]["type"], "account.deposited");
    assert_eq!(
        deposited.body["events"][0]["data"],
        json!({ "amount": 100 })
    );

    // 409: the account exists.
    let again = post(&client, "/accounts", &opening).await;
    assert_error(&again, StatusCode::CONFLICT, "already_open");

    // 409: a decision based on a version that is no longer the account's.
    let stale = post(
        &client,
        &withdrawals,
        r#"{"amount": 10, "expected_version": 1}"#,
    )
    .await;
    assert_error(&stale, StatusCode::CONFLICT, "stale_version");
    assert!(stale.body["message"]
        .as_str()
        .is_some_and(|m| m.contains("at version 2, not at the expected version 1")));

    // 422: business rules.
    let refused = post(&client, &withdrawals, r#"{"amount": 101}"#).await;
    assert_error(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "insufficient_funds",
    );
    assert!(refused.body["message"]
        .as_str()
        .is_some_and(|m| m.contains("the balance is 100, 101 was requested")));
    let zero = post(&client, &deposits, r#"{"amount": 0}"#).await;
    assert_error(&zero, StatusCode::UNPROCESSABLE_ENTITY, "zero_amount");

    // 404: an account never opened, for a command and for a query.
    let nobody = unique("nobody");
    let unknown = post(
        &client,
        &format!("/accounts/{nobody}/deposits"),
        r#"{"amount": 5}"#,
    )
    .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "unknown_account");
    let unknown = get(&client, &format!("/accounts/{nobody}")).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "unknown_account");
    let nowhere = get(&client, "/nowhere").await;
    assert_error(&nowhere, StatusCode::NOT_FOUND, "not_found");
    let wrong = get(&client, &deposits).await;
    assert_error(&wrong, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");

    // 400: malformed JSON, a missing field, a wrong type, ids the store refuses.
    for body in [
        r#"{"amount": "#,
        r#"{}"#,
        r#"{"amount": -5}"#,
        r#"{"amount": "ten"}"#,
    ] {
        let bad = post(&client, &deposits, body).await;
        assert_error(&bad, StatusCode::BAD_REQUEST, "bad_request");
    }
    let missing_owner = json!({ "account_id": unique("eve"), "customer_id": "c-eve" }).to_string();
    let bad = post(&client, "/accounts", &missing_owner).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "bad_request");
    let nul_owner =
        json!({ "account_id": unique("eve"), "customer_id": "c-eve", "owner": "E\u{0}ve" })
            .to_string();
    let bad = post(&client, "/accounts", &nul_owner).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "bad_request");
    let empty_id = json!({ "account_id": "", "customer_id": "c-eve", "owner": "Eve" }).to_string();
    let bad = post(&client, "/accounts", &empty_id).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "bad_request");
    let too_long = "x".repeat(256);
    let bad = post(
        &client,
        &format!("/accounts/{too_long}/deposits"),
        r#"{"amount": 5}"#,
    )
    .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "bad_request");
    let bad = post(&client, "/accounts/nul%00/deposits", r#"{"amount": 5}"#).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "bad_request");
    let bad = get(&client, &format!("/accounts/{too_long}")).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "bad_request");
    let bad = get(&client, &format!("/accounts/{ada}?min_version=soon")).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "bad_request");

    // None of the refused commands wrote anything: the next event is version 3, and a
    // client that saw version 2 may write it.
    let withdrawn = post(
        &client,
        &withdrawals,
        r#"{"amount": 100, "expected_version": 2}"#,
    )
    .await;
    assert_eq!(withdrawn.status, StatusCode::OK, "{}", withdrawn.body);
    assert_eq!(withdrawn.body["version"], 3);

    service.stop().await.expect("the service stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_answer_from_the_read_model_once_it_catches_up() {
    let (_exclusive, service, client) = started().await;
    let bob = unique("bob");
    let opening = json!({ "account_id": bob, "customer_id": "c-bob", "owner": "Bob" }).to_string();
    assert_eq!(
        post(&client, "/accounts", &opening).await.status,
        StatusCode::CREATED
    );
    let deposits = format!("/accounts/{bob}/deposits");
    let deposited = post(&client, &deposits, r#"{"amount": 250}"#).await;
    assert_eq!(deposited.status, StatusCode::OK, "{}", deposited.body);
    let version = deposited.body["version"].as_u64().expect("a version");

    // Read-your-writes: wait for the version the command returned.
    let read = get(&client, &format!("/accounts/{bob}?min_version={version}")).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["account_id"], bob.as_str());
    assert_eq!(read.body["balance"], 250);
    assert_eq!(read.body["version"], version);
    let position = read.body["read_model"]["position"].as_str();
    assert!(
        position.is_some(),
        "the view says where it is: {}",
        read.body
    );

    // Without a version to wait for, the answer is whatever the view has: here it has
    // caught up already, so the same.
    let now = get(&client, &format!("/accounts/{bob}")).await;
    assert_eq!(now.status, StatusCode::OK, "{}", now.body);
    assert_eq!(now.body["balance"], 250);

    // A version the account never reaches: the view cannot say, and says so.
    let behind = get(&client, &format!("/accounts/{bob}?min_version=99")).await;
    assert_error(
        &behind,
        StatusCode::SERVICE_UNAVAILABLE,
        "read_model_behind",
    );

    service.stop().await.expect("the service stops cleanly");
}

// One thread: the metrics recorder set for it records the service's tasks, as the
// binary's global one does.
#[tokio::test]
async fn the_demo_runs_to_the_end() {
    let (_exclusive, backend) = backend().await;
    let recorder = crate::telemetry::recorder()
        .expect("the recorder's buckets")
        .build_recorder();
    let _recording = metrics::set_default_local_recorder(&recorder);
    crate::demo::run(&backend, recorder.handle())
        .await
        .expect("every answer is the expected one");
}

/// Polls `/status` until it answers `wanted`, and returns that answer's body.
async fn status_becomes(client: &Client, wanted: StatusCode) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let reply = get(client, "/status").await;
        if reply.status == wanted {
            return reply.body;
        }
        assert!(
            Instant::now() < deadline,
            "/status did not become {wanted}; it says {} {}",
            reply.status,
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_503_while_the_database_is_down_and_200_again_after() {
    // A cluster of its own, since this test stops it.
    let mut cluster = TempCluster::start().expect("a private PostgreSQL cluster starts");
    let backend = Backend::postgres(&cluster.url(), crate::SCHEMA)
        .await
        .expect("the private cluster, migrated");
    let service = Service::start(&backend, any_free_port(), unrecorded())
        .await
        .expect("the service starts");
    let client = Client::new(service.addr());
    let carol = unique("carol");
    let opening =
        json!({ "account_id": carol, "customer_id": "c-carol", "owner": "Carol" }).to_string();
    assert_eq!(
        post(&client, "/accounts", &opening).await.status,
        StatusCode::CREATED
    );

    let up = status_becomes(&client, StatusCode::OK).await;
    assert_eq!(up["status"], "ok");
    assert_eq!(up["store"]["reachable"], true);
    assert!(up["store"]["schema_version"].is_i64(), "{up}");
    assert_eq!(
        up["store"]["schema_version"], up["store"]["expected_schema_version"],
        "{up}"
    );
    assert_eq!(up["store"]["problems"], json!([]));
    assert_eq!(up["reasons"], json!([]));

    tokio::task::block_in_place(|| cluster.stop_immediately()).expect("stop the cluster");
    let down = status_becomes(&client, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(down["status"], "unavailable");
    assert_eq!(down["store"]["reachable"], false, "{down}");
    let reasons = down["reasons"].as_array().expect("a list of reasons");
    assert!(
        reasons.iter().any(|r| r
            .as_str()
            .is_some_and(|r| r.starts_with("the store is unreachable"))),
        "{down}"
    );
    // A command meets the outage too: a 503, never a client error.
    let deposit = post(
        &client,
        &format!("/accounts/{carol}/deposits"),
        r#"{"amount": 5}"#,
    )
    .await;
    assert_error(&deposit, StatusCode::SERVICE_UNAVAILABLE, "unavailable");

    tokio::task::block_in_place(|| cluster.restart()).expect("restart the cluster");
    let up = status_becomes(&client, StatusCode::OK).await;
    assert_eq!(up["subscription"]["state"], "live", "{up}");
    // And the service works again: the account is still there.
    let deposit = post(
        &client,
        &format!("/accounts/{carol}/deposits"),
        r#"{"amount": 5}"#,
    )
    .await;
    assert_eq!(deposit.status, StatusCode::OK, "{}", deposit.body);
    assert_eq!(deposit.body["version"], 2);

    service.stop().await.expect("the service stops cleanly");
}
