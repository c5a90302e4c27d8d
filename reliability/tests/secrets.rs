//! Secrets: a password in a connection string never appears in logs
//! (everything the framework and sqlx log, captured at TRACE level) nor in errors, their
//! `Debug` or `Display`, nor in the `Debug` of a store, a pool, an engine or a
//! subscription. Against a real server that checks passwords (a private cluster whose
//! `pg_hba.conf` this test rewrites), with the right and a wrong password; against a
//! host that does not exist and a port nobody listens on; with malformed URLs.
//!
//! `cqrs-postgres/tests/postgres.rs` checks the errors of a closed port and an invalid
//! port number without logs; this extends it.
//!
//! Not covered, because not ours: sqlx's `PgConnectOptions` derives `Debug` with the
//! password in it (never print connect options), and sqlx logs the value of a URL
//! parameter it does not know (`?pasword=...` with a typo) as a warning.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use cqrs_core::subscription::{Project, SubscriptionState};
use cqrs_core::{Engine, Subscription};
use cqrs_postgres::sqlx::postgres::PgConnectOptions;
use cqrs_postgres::sqlx::{self, Connection, PgConnection};
use cqrs_postgres::testing::TempCluster;
use cqrs_postgres::{PgStore, SetupError};
use cqrs_reliability::notebook::{NoteCommand, NoteCounts, Notebook};

/// Everything logged by this test binary, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

/// Installs the capture as the global subscriber, once per test binary, so that every
/// thread's events (the runtime's workers, sqlx's tasks) land in it.
fn logs() -> Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        captured
    })
    .clone()
}

/// A password with characters that URLs encode, and the forms it may take in text.
struct Secret {
    raw: &'static str,
}

impl Secret {
    fn encoded(&self) -> String {
        self.raw
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'-' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    /// Fails if `text` holds the password, encoded or not, or its distinctive part.
    fn assert_absent(&self, what: &str, text: &str) {
        for form in [self.raw.to_owned(), self.encoded(), "Hunter2".to_owned()] {
            assert!(
                !text.contains(&form),
                "the password ({form:?}) appears in {what}: {text}"
            );
        }
    }
}

const PASSWORD: Secret = Secret {
    raw: "Hunter2-pä$$/wörd@#?:%",
};
const WRONG: Secret = Secret {
    raw: "Hunter2-wrong/guess@#?",
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Shows an error the ways a program would: `Display` and `Debug`.
fn shown(error: &dyn std::fmt::Debug, display: &dyn std::fmt::Display) -> String {
    format!("{display} | {error:?}")
}

/// Makes `cluster` check passwords for every role but `postgres` on TCP, and creates
/// role `app` with `PASSWORD` (sent as its MD5 verifier, computed by the server from
/// bound parameters, so that no statement text, which sqlx logs, holds the password).
async fn require_passwords(cluster: &TempCluster) {
    let mut admin = PgConnection::connect_with(&cluster.connect_options())
        .await
        .expect("connect as postgres");
    let verifier: String = sqlx::query_scalar("SELECT 'md5' || md5($1 || $2)")
        .bind(PASSWORD.raw)
        .bind("app")
        .fetch_one(&mut admin)
        .await
        .expect("verifier");
    sqlx::raw_sql(&format!(
        "CREATE ROLE app LOGIN PASSWORD '{verifier}'; GRANT CREATE ON DATABASE postgres TO app"
    ))
    .execute(&mut admin)
    .await
    .expect("create role");
    let hba_file: String = sqlx::query_scalar("SHOW hba_file")
        .fetch_one(&mut admin)
        .await
        .expect("hba_file");
    let rules = [
        "local all all trust",
        "host all postgres 127.0.0.1/32 trust",
        "host all all 127.0.0.1/32 md5",
    ];
    let lines = rules
        .iter()
        .map(|rule| format!("SELECT '{rule}'"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    sqlx::raw_sql(&format!(
        "COPY ({lines}) TO '{}'",
        hba_file.replace('\'', "''")
    ))
    .execute(&mut admin)
    .await
    .expect("rewrite pg_hba.conf");
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&mut admin)
        .await
        .expect("reload");
    let errors: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL")
            .fetch_one(&mut admin)
            .await
            .expect("check the rules");
    assert_eq!(errors, 0, "pg_hba.conf is valid");
    // The reload is a signal: wait until a wrong password is refused.
    let wrong = options(cluster, WRONG.raw);
    for attempt in 0.. {
        match PgConnection::connect_with(&wrong).await {
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("28P01") => break,
            _ if attempt < 100 => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("passwords are not checked: {other:?}"),
        }
    }
}

fn options(cluster: &TempCluster, password: &str) -> PgConnectOptions {
    PgConnectOptions::new()
        .host("127.0.0.1")
        .port(cluster.port())
        .username("app")
        .password(password)
        .database("postgres")
}

fn url(port: u16, password: &Secret) -> String {
    format!(
        "postgres://app:{}@127.0.0.1:{port}/postgres",
        password.encoded()
    )
}

#[test]
fn a_password_checked_by_a_real_server_never_shows() {
    let logs = logs();
    runtime().block_on(async {
        let cluster = TempCluster::start().expect("a private cluster");
        require_passwords(&cluster).await;
        let port = cluster.port();

        // A wrong password: a typed error, from a URL and from options.
        let refused = PgStore::connect(&url(port, &WRONG))
            .await
            .expect_err("wrong password");
        let text = shown(&refused, &refused);
        assert!(matches!(refused, SetupError::Store(_)), "{text}");
        assert!(text.contains("password authentication failed"), "{text}");
        WRONG.assert_absent("the error of a wrong password", &text);
        let refused = PgStore::connect_with(options(&cluster, WRONG.raw))
            .await
            .expect_err("wrong password");
        WRONG.assert_absent("the error of a wrong password", &shown(&refused, &refused));

        // The right one: the store works, and nothing shows it.
        let store = PgStore::connect(&url(port, &PASSWORD))
            .await
            .expect("the right password")
            .with_schema("secrets")
            .expect("a valid schema");
        store.migrate().await.expect("migrate as app");
        let engine = Engine::<Notebook>::new(store.clone(), ());
        let counts = NoteCounts::default();
        let running = Subscription::new(
            store.clone(),
            Project::new(counts.clone(), store.clone()).expect("valid"),
        )
        .start();
        for text in ["one", "two three"] {
            engine
                .execute("secret-notes", NoteCommand::Write { text: text.into() })
                .await
                .expect("write");
        }
        running
            .caught_up(Duration::from_secs(30))
            .await
            .expect("caught up");
        assert_eq!(counts.events(), 2);
        for (what, text) in [
            ("the store's Debug", format!("{store:?}")),
            ("the pool's Debug", format!("{:?}", store.pool())),
            ("the engine's Debug", format!("{engine:?}")),
            ("the subscription's Debug", format!("{running:?}")),
        ] {
            PASSWORD.assert_absent(what, &text);
        }
        running.shutdown().await.expect("a clean stop");

        // A subscription on a store whose password is wrong retries, and logs why.
        let pool = PgStore::pool_options()
            .acquire_timeout(Duration::from_secs(2))
            .connect_lazy_with(options(&cluster, WRONG.raw));
        let wrong_store = PgStore::new(pool);
        let failing = Subscription::new(
            wrong_store.clone(),
            Project::new(NoteCounts::default(), wrong_store.clone()).expect("valid"),
        )
        .start();
        for _ in 0..200 {
            if failing.status().last_error.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let status = failing.status();
        assert_eq!(status.state, SubscriptionState::Retrying, "{status:?}");
        let error = status.last_error.unwrap_or_default();
        assert!(error.contains("password authentication failed"), "{error}");
        WRONG.assert_absent("the subscription's status", &error);
        failing.shutdown().await.expect("a clean stop");
    });
    let text = logs.text();
    assert!(
        text.contains("subscription retrying") && text.contains("password authentication failed"),
        "the capture works: the failing subscription's warnings are in it"
    );
    for secret in [&PASSWORD, &WRONG] {
        secret.assert_absent("the logs", &text);
    }
}

#[test]
fn unreachable_servers_and_malformed_urls_never_show_the_password() {
    let logs = logs();
    runtime().block_on(async {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let password = PASSWORD.encoded();
        let urls = [
            // No such host (the .invalid domain never resolves), no server on the port.
            format!("postgres://app:{password}@db.example.invalid/app"),
            format!("postgres://app:{password}@127.0.0.1:{closed}/app"),
            // Malformed: port out of range, unclosed IPv6, bad parameters.
            format!("postgres://app:{password}@127.0.0.1:99999/app"),
            format!("postgres://app:{password}@[::1/app"),
            format!("postgres://app:{password}@127.0.0.1/app?sslmode=bogus"),
            format!("postgres://app:{password}@127.0.0.1/app?statement-cache-capacity=lots"),
            format!("postgres://app@127.0.0.1:{closed}/app?password={password}"),
            format!("postgresql://app:{password}@/app?host=/nonexistent/socket/dir"),
            format!("mysql://app:{password}@127.0.0.1:{closed}/app"),
        ];
        for url in &urls {
            let connected = tokio::time::timeout(Duration::from_secs(30), PgStore::connect(url))
                .await
                .expect("connect gives up");
            let error = connected.expect_err("nothing to connect to");
            PASSWORD.assert_absent(&format!("the error for {url}"), &shown(&error, &error));
        }
    });
    PASSWORD.assert_absent("the logs", &logs.text());
}
