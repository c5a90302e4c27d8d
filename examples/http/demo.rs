//! `--demo`: the service on a free port, and a short scripted session against it through
//! a real HTTP client, each exchange printed. Any answer other than the expected one ends
//! the demo with an error, so that running it checks it.

use std::net::{Ipv4Addr, SocketAddr};

use axum::http::StatusCode;
use examples::Backend;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{json, Value};

use crate::client::{Client, ClientError, Reply};
use crate::service::{Service, ServiceError};

/// Why the demo did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{request}: expected {expected}, got {got} {body}")]
    Unexpected {
        request: String,
        expected: StatusCode,
        got: StatusCode,
        body: Value,
    },
}

/// Runs the session on `backend`, with `/metrics` rendered from `metrics`, then stops
/// the service.
pub async fn run(backend: &Backend, metrics: PrometheusHandle) -> Result<(), DemoError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let service = Service::start(backend, addr, metrics).await?;
    println!(
        "HTTP example on {}, listening on http://{} for this demo.\n",
        backend.description,
        service.addr()
    );
    let session = Session {
        client: Client::new(service.addr()),
    };
    let alice = format!("alice-{}", examples::run_id());
    let account = format!("/accounts/{alice}");
    let deposits = format!("{account}/deposits");
    let withdrawals = format!("{account}/withdrawals");
    let opening = json!({ "account_id": alice, "customer_id": "c-1", "owner": "Alice" });

    session
        .post(
            "Alice opens an account: the answer is the event recorded.",
            "/accounts",
            &opening,
            StatusCode::CREATED,
        )
        .await?;
    session
        .post(
            "She deposits 100.",
            &deposits,
            &json!({ "amount": 100 }),
            StatusCode::OK,
        )
        .await?;
    let withdrawn = session
        .post(
            "She withdraws 30.",
            &withdrawals,
            &json!({ "amount": 30 }),
            StatusCode::OK,
        )
        .await?;
    session
        .post(
            "She tries to withdraw 500: the account refuses, and nothing is recorded.",
            &withdrawals,
            &json!({ "amount": 500 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await?;
    session
        .post(
            "Someone tries to open her account again: it exists.",
            "/accounts",
            &opening,
            StatusCode::CONFLICT,
        )
        .await?;
    session
        .post(
            "A deposit to an account nobody opened.",
            &format!("/accounts/nobody-{}/deposits", examples::run_id()),
            &json!({ "amount": 5 }),
            StatusCode::NOT_FOUND,
        )
        .await?;
    session
        .post(
            "A deposit whose amount is not a number.",
            &deposits,
            &json!({ "amount": "ten" }),
            StatusCode::BAD_REQUEST,
        )
        .await?;
    let version = &withdrawn.body["version"];
    session
        .get(
            &format!(
                "Her balance comes from the read model, which a subscription feeds a moment \
                 after each commit: she asks for it to have her last write (version {version})."
            ),
            &format!("{account}?min_version={version}"),
            StatusCode::OK,
        )
        .await?;
    session
        .get(
            "Is the service healthy? (the store answers, the read model keeps up)",
            "/status",
            StatusCode::OK,
        )
        .await?;
    println!("What an operator's Prometheus scrapes (the commands' lines):\n  > GET /metrics");
    let (status, text) = session.client.get_text("/metrics").await?;
    if status != StatusCode::OK || !text.contains(cqrs_core::observe::metrics::COMMANDS) {
        return Err(DemoError::Unexpected {
            request: "GET /metrics".into(),
            expected: StatusCode::OK,
            got: status,
            body: Value::String(text),
        });
    }
    for line in text
        .lines()
        .filter(|l| l.starts_with(cqrs_core::observe::metrics::COMMANDS))
    {
        println!("  < {line}");
    }
    println!();
    println!("Every answer was the expected one. Stopping the service.");
    service.stop().await?;
    Ok(())
}

/// Sends requests, prints each exchange, and checks each status.
struct Session {
    client: Client,
}

impl Session {
    async fn post(
        &self,
        say: &str,
        path: &str,
        body: &Value,
        expected: StatusCode,
    ) -> Result<Reply, DemoError> {
        let request = format!("POST {path} {body}");
        println!("{say}\n  > {request}");
        let reply = self.client.post(path, &body.to_string()).await?;
        check(request, reply, expected)
    }

    async fn get(&self, say: &str, path: &str, expected: StatusCode) -> Result<Reply, DemoError> {
        let request = format!("GET {path}");
        println!("{say}\n  > {request}");
        let reply = self.client.get(path).await?;
        check(request, reply, expected)
    }
}

fn check(request: String, reply: Reply, expected: StatusCode) -> Result<Reply, DemoError> {
    println!("  < {} {}\n", reply.status, reply.body);
    if reply.status != expected {
        return Err(DemoError::Unexpected {
            request,
            expected,
            got: reply.status,
            body: reply.body,
        });
    }
    Ok(reply)
}
