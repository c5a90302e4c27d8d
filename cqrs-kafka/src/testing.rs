//! Throwaway Kafka-protocol brokers for tests (feature `testing`).
//!
//! The relay and the consumers of this crate are only as good as what they assume about
//! the broker: that a topic has the partitions it was created with, that the messages of
//! one key stay in one partition and in order, that headers survive, that a consumer
//! group resumes after its committed offsets, what an outage does. A mock would only
//! repeat those assumptions back, so the tests run a real broker. No Kafka is packaged
//! for the machines of this project; [tansu](https://crates.io/crates/tansu) is a
//! Kafka-compatible broker written in Rust, and [`KafkaBroker`] starts one. It listens
//! on 127.0.0.1 only, keeps its data and its log in a temporary directory of its own,
//! and is killed and removed when the value is dropped. A test may stop, kill and
//! restart it to see what its code does then.
//!
//! The pair tested together is tansu 0.6.0 (features `dynostore` and `libsql`) and
//! rdkafka 0.39 with the librdkafka it bundles (2.12.1). Debian's librdkafka 2.0.2
//! (kcat) could not talk to tansu 0.6.0 at all. What tansu 0.6.0 lacks: transactions
//! (librdkafka's commit fails: EndTxn is not offered) and topic auto-creation (a topic
//! must be created first).
//!
//! The binary is `TANSU` when set (`scripts/test` sets it), else `tansu` on `PATH`; see
//! [`broker_binary`] for how to install it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use cqrs_kafka::testing::KafkaBroker;
//!
//! let mut broker = KafkaBroker::start().await?;
//! let bootstrap = broker.bootstrap(); // "127.0.0.1:<port>", for bootstrap.servers
//! // ... create a topic, produce, consume ...
//! broker.stop().await; // an outage: sends wait, consumers see errors
//! broker.restart().await?; // same port, same data (SQLite): clients carry on
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{sleep, timeout, Instant};

/// The command that installs the broker the tests were written against.
pub const INSTALL_COMMAND: &str =
    "cargo install tansu --version 0.6.0 --features dynostore,libsql --locked";

/// How long a broker may take to answer an API versions request. It needs tens of
/// milliseconds; the margin is for a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the broker is asked during start-up.
const READY_POLL: Duration = Duration::from_millis(20);

/// How long a graceful stop may take before the process is killed instead.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How many lines of a broker's log an error shows.
const LOG_TAIL_LINES: usize = 30;

/// The variables tansu reads its options from: cleared for the child, so that the
/// caller's environment cannot change the port, the storage or the cluster.
const TANSU_ENV: &[&str] = &[
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "DATA_LAKE",
];

/// Why a broker could not be found, started or made ready.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// `TANSU` is unset and there is no `tansu` on `PATH`.
    #[error(
        "no tansu binary (the Kafka-compatible broker of the tests): TANSU is unset and \
         there is no tansu on PATH; install it with `{INSTALL_COMMAND}` (about a quarter of \
         an hour; scripts/test runs it when the binary is missing), or set TANSU to the binary"
    )]
    NotInstalled,
    /// `TANSU` is set to something that is not a file. It is not a hint: a wrong value is
    /// refused rather than replaced by another binary found on `PATH`.
    #[error(
        "TANSU is {}, which is not a file: point it at the tansu binary, or unset it to use \
         tansu on PATH (`{INSTALL_COMMAND}`)",
        path.display()
    )]
    BadTansuVar {
        /// The value of `TANSU`.
        path: PathBuf,
    },
    /// A file, socket or process operation failed.
    #[error("{step}: {source}")]
    Io {
        /// What was being done.
        step: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The broker exited before it was ready: its port was taken, or the binary was built
    /// without the feature of the storage engine (`FeatureNotEnabled` in the log).
    #[error(
        "tansu exited while starting ({status}); the end of its log:\n{log}\n(a binary \
         built without the storage engine's feature fails so: `{INSTALL_COMMAND}`)"
    )]
    Exited {
        /// How it exited.
        status: String,
        /// The last lines of its standard output and error.
        log: String,
    },
    /// The broker runs but did not answer an API versions request in time.
    #[error(
        "tansu did not answer an ApiVersions request within {}s (last: {last}); the end \
         of its log:\n{log}",
        READY_TIMEOUT.as_secs()
    )]
    NotReady {
        /// The last answer, or why there was none.
        last: String,
        /// The last lines of its standard output and error.
        log: String,
    },
}

impl BrokerError {
    fn io(step: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let step = step.into();
        move |source| Self::Io { step, source }
    }
}

/// The `tansu` binary the tests run: `TANSU` when it is set (and then it must be a file),
/// else the first `tansu` on `PATH`.
///
/// Without either, the error says how to install it: [`INSTALL_COMMAND`], which
/// `scripts/test` runs when the binary is missing (and then sets `TANSU`).
pub fn broker_binary() -> Result<PathBuf, BrokerError> {
    find_binary(std::env::var_os("TANSU"), std::env::var_os("PATH"))
}

/// [`broker_binary`] with the two variables it reads passed in, so that the search can
/// be tested (and used with another environment) without changing the process's own.
///
/// An empty `tansu` counts as unset.
pub fn find_binary(
    tansu: Option<OsString>,
    path: Option<OsString>,
) -> Result<PathBuf, BrokerError> {
    if let Some(binary) = tansu.filter(|value| !value.is_empty()) {
        let binary = PathBuf::from(binary);
        return if binary.is_file() {
            Ok(binary)
        } else {
            Err(BrokerError::BadTansuVar { path: binary })
        };
    }
    path.iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("tansu"))
        .find(|candidate| is_executable(candidate))
        .ok_or(BrokerError::NotInstalled)
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Where a [`KafkaBroker`] keeps topics, messages, committed offsets and producer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Storage {
    /// A SQLite file in the broker's temporary directory (`sqlite://`, tansu's `libsql`
    /// feature): everything survives a [stop](KafkaBroker::stop) or a
    /// [kill](KafkaBroker::kill) and [restart](KafkaBroker::restart), as with a real
    /// Kafka. The default.
    Sqlite,
    /// In the broker's memory (`memory://`, tansu's `dynostore` feature): a restart
    /// starts an empty broker, without the topics, messages or offsets of before.
    Memory,
}

impl Storage {
    /// The `--storage-engine` URL; a SQLite path is relative to the broker's working
    /// directory, which is its temporary directory.
    fn url(self) -> &'static str {
        match self {
            Storage::Sqlite => "sqlite://tansu.db",
            Storage::Memory => "memory://tansu/",
        }
    }
}

/// One tansu broker of its own, for one test. See the [module docs](self).
///
/// Its port and directory stay the same over [`stop`](Self::stop),
/// [`kill`](Self::kill) and [`restart`](Self::restart), so clients reconnect to the same
/// bootstrap address; whether the data is still there depends on the [`Storage`].
/// Dropping it kills the process and removes the directory.
#[derive(Debug)]
pub struct KafkaBroker {
    binary: PathBuf,
    storage: Storage,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl KafkaBroker {
    /// Starts a broker with SQLite storage ([`Storage::Sqlite`]) with the binary of
    /// [`broker_binary`] on a free port of 127.0.0.1, and waits until it is ready (it
    /// answers an API versions request).
    pub async fn start() -> Result<Self, BrokerError> {
        Self::start_with(Storage::Sqlite).await
    }

    /// [`start`](Self::start) with the given storage.
    pub async fn start_with(storage: Storage) -> Result<Self, BrokerError> {
        Self::start_with_binary(broker_binary()?, storage).await
    }

    /// [`start_with`](Self::start_with) with a given binary, for a caller that found its
    /// own.
    pub async fn start_with_binary(binary: PathBuf, storage: Storage) -> Result<Self, BrokerError> {
        let mut broker = Self {
            binary,
            storage,
            dir: make_temp_dir()?,
            port: free_port()?,
            child: None,
        };
        broker.restart().await?;
        Ok(broker)
    }

    /// `127.0.0.1:<port>`: the value of a client's `bootstrap.servers`. The broker
    /// advertises the same address in its metadata.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port the broker listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the broker keeps its data.
    pub fn storage(&self) -> Storage {
        self.storage
    }

    /// The temporary directory of the data (`tansu.db` for SQLite) and the log
    /// (`broker.log`), which dropping the broker removes. The log is worth a look when a
    /// test fails.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the broker was last started rather than stopped or killed. (A process that
    /// died by itself still counts as running until one of those is called.)
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the broker gracefully (SIGTERM, as a service manager does) and waits for the
    /// process to exit. Connections are closed; clients retry. With [`Storage::Sqlite`]
    /// the data is kept, with [`Storage::Memory`] it is gone. tansu waits for its
    /// connections before it exits: with a client connected a stop took about 5 s on the
    /// machines of this project, without one a few milliseconds. A broker that does not
    /// exit within 30 s is killed. Does nothing when the broker is not running.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Until the child is waited for, its pid cannot be reused, so the signal reaches
        // this broker and nothing else.
        if let Some(pid) = child.id() {
            let sent = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .is_ok_and(|status| status.success());
            if sent && timeout(STOP_TIMEOUT, child.wait()).await.is_ok() {
                return;
            }
        }
        // Already gone, or deaf to SIGTERM: make sure of it.
        let _ = child.kill().await;
    }

    /// Kills the broker at once (SIGKILL): what a crash or an OOM kill does. Nothing is
    /// flushed or said to the clients. With [`Storage::Sqlite`] what was acknowledged is
    /// kept (SQLite commits before the broker answers). Does nothing when the broker is
    /// not running.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error means the process is already gone; either way it is reaped.
            let _ = child.kill().await;
        }
    }

    /// Starts the broker again on the same port and directory, and waits until it is
    /// ready; a running broker is [stopped](Self::stop) first, so this is also a graceful
    /// restart.
    ///
    /// Whether messages survive depends on the storage: with [`Storage::Sqlite`] topics,
    /// messages, committed offsets and producer ids do (a producer created before the
    /// outage delivers what it queued meanwhile, and a group resumes after its committed
    /// offsets); with [`Storage::Memory`] the broker comes back empty (no topics: a send
    /// to an old topic fails with an unknown topic or partition, after librdkafka waited
    /// `topic.metadata.propagation.max.ms`, 30 s by default, for it to come back).
    pub async fn restart(&mut self) -> Result<(), BrokerError> {
        self.stop().await;
        self.spawn()?;
        self.wait_ready().await
    }

    fn spawn(&mut self) -> Result<(), BrokerError> {
        let log_path = self.dir.join("broker.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(BrokerError::io(format!("open {}", log_path.display())))?;
        let log_too = log
            .try_clone()
            .map_err(BrokerError::io("duplicate the log's file handle"))?;
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let mut command = Command::new(&self.binary);
        for name in TANSU_ENV {
            command.env_remove(name);
        }
        command
            .arg("broker")
            .arg("--listener-url")
            .arg(&listener)
            .arg("--advertised-listener-url")
            .arg(&listener)
            .arg("--storage-engine")
            .arg(self.storage.url())
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_too))
            // A backstop for a value leaked without its drop; the drop kills and waits.
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(BrokerError::io(format!("start {}", self.binary.display())))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the broker answers an API versions request, or the process exits, or
    /// [`READY_TIMEOUT`].
    async fn wait_ready(&mut self) -> Result<(), BrokerError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = &mut self.child {
                let exited = child
                    .try_wait()
                    .map_err(BrokerError::io("check on tansu"))?;
                if let Some(status) = exited {
                    self.child = None;
                    return Err(BrokerError::Exited {
                        status: status.to_string(),
                        log: self.log_tail(),
                    });
                }
            }
            let last = match api_versions(self.port).await {
                Ok(()) => return Ok(()),
                Err(error) => error,
            };
            if Instant::now() >= deadline {
                return Err(BrokerError::NotReady {
                    last,
                    log: self.log_tail(),
                });
            }
            sleep(READY_POLL).await;
        }
    }

    /// The last lines of the broker's log, for an error message.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default();
        let mut tail: Vec<&str> = log.lines().rev().take(LOG_TAIL_LINES).collect();
        tail.reverse();
        tail.join("\n")
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        // Best effort: a drop cannot report. The process is killed and waited for (briefly:
        // SIGKILL is not refused) before the directory goes, so that no file is written
        // into it while it is being removed.
        if let Some(child) = &mut self.child {
            if child.start_kill().is_ok() {
                for _ in 0..500 {
                    if !matches!(child.try_wait(), Ok(None)) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An ApiVersions request (key 18, version 0), the first thing a Kafka client sends: the
/// broker is ready when it answers it with the same correlation id and no error.
async fn api_versions(port: u16) -> Result<(), String> {
    const CORRELATION_ID: i32 = 0x6371_7273; // "cqrs"
    const CLIENT_ID: &[u8] = b"cqrs-kafka-testing";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // api key: ApiVersions
    body.extend_from_slice(&0i16.to_be_bytes()); // api version
    body.extend_from_slice(&CORRELATION_ID.to_be_bytes());
    body.extend_from_slice(&(CLIENT_ID.len() as i16).to_be_bytes());
    body.extend_from_slice(CLIENT_ID);
    let ask = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(&(body.len() as i32).to_be_bytes()).await?;
        stream.write_all(&body).await?;
        let size = stream.read_i32().await?;
        let correlation_id = stream.read_i32().await?;
        let error_code = stream.read_i16().await?;
        Ok::<_, io::Error>((size, correlation_id, error_code))
    };
    match timeout(Duration::from_secs(2), ask).await {
        Err(_) => Err("no answer within 2s".to_owned()),
        Ok(Err(error)) => Err(error.to_string()),
        Ok(Ok((_, correlation_id, _))) if correlation_id != CORRELATION_ID => Err(format!(
            "an answer with correlation id {correlation_id}, not {CORRELATION_ID}"
        )),
        Ok(Ok((_, _, 0))) => Ok(()),
        Ok(Ok((_, _, error_code))) => Err(format!("error code {error_code}")),
    }
}

/// A number no other call in this process returns, mixed with the process id for
/// directories that must not clash with another test binary's.
fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A new directory under the system's temporary directory, readable by its owner only.
fn make_temp_dir() -> Result<PathBuf, BrokerError> {
    let dir = std::env::temp_dir().join(format!("cqrs-kafka-{}", unique()));
    std::fs::create_dir(&dir).map_err(BrokerError::io(format!("create {}", dir.display())))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(BrokerError::io(format!("restrict {}", dir.display())))?;
    Ok(dir)
}

/// A port of 127.0.0.1 that nothing listens on now and that no earlier call of this
/// process returned.
///
/// It is taken below the kernel's ephemeral range when that leaves room (Linux:
/// `ip_local_port_range`, 32768 and up by default), not from a bind to port 0: the port
/// must stay free while the broker is stopped, and an ephemeral port may be given
/// meanwhile to an outgoing connection (a client reconnecting).
fn free_port() -> Result<u16, BrokerError> {
    static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    const LOWEST: u16 = 10_000;
    let ephemeral = ephemeral_low();
    let mut taken = TAKEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    let random = std::collections::hash_map::RandomState::new();
    for attempt in 1..=10_100u64 {
        let port = if ephemeral > LOWEST + 1_000 && attempt <= 10_000 {
            let mut hasher = random.build_hasher();
            hasher.write_u64(attempt);
            LOWEST + (hasher.finish() % u64::from(ephemeral - LOWEST)) as u16
        } else {
            // No room below the ephemeral range, or no luck there: the kernel's choice.
            let listener = TcpListener::bind("127.0.0.1:0")
                .map_err(BrokerError::io("bind 127.0.0.1:0 to find a free port"))?;
            listener
                .local_addr()
                .map_err(BrokerError::io("find a free port"))?
                .port()
        };
        if !taken.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.insert(port);
            return Ok(port);
        }
    }
    Err(BrokerError::Io {
        step: "find a free port".to_owned(),
        source: io::Error::new(io::ErrorKind::AddrInUse, "no free port found"),
    })
}

/// The lowest port of the kernel's ephemeral range (Linux's default when unreadable).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tansu_is_taken_when_right_and_refused_when_wrong() {
        let root = std::env::temp_dir().join(format!("cqrs-kafka-bin-{}", unique()));
        let (good, empty) = (root.join("good"), root.join("empty"));
        std::fs::create_dir_all(&good).expect("mkdir");
        std::fs::create_dir_all(&empty).expect("mkdir");
        let binary = good.join("tansu");
        std::fs::write(&binary, "").expect("write");
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = Some(good.clone().into_os_string());
        assert_eq!(
            find_binary(Some(binary.clone().into_os_string()), None).expect("TANSU"),
            binary
        );
        // Set but wrong: no fallback to the binary on PATH.
        assert!(matches!(
            find_binary(Some(empty.join("tansu").into_os_string()), path.clone()),
            Err(BrokerError::BadTansuVar { .. })
        ));
        // Unset (or empty): PATH is searched.
        assert_eq!(find_binary(Some("".into()), path).expect("on PATH"), binary);
        let missing = find_binary(None, Some(empty.into_os_string()));
        assert!(matches!(missing, Err(BrokerError::NotInstalled)));
        let message = missing.map(|_| ()).unwrap_err().to_string();
        assert!(message.contains(INSTALL_COMMAND), "{message}");
        std::fs::remove_dir_all(&root).expect("clean up");
    }

    #[tokio::test]
    async fn a_broker_answers_stops_and_answers_again_on_its_port() {
        let mut broker = KafkaBroker::start_with(Storage::Memory)
            .await
            .expect("start a broker");
        assert!(broker.is_running());
        let port = broker.port();
        assert_eq!(api_versions(port).await, Ok(()));
        broker.stop().await;
        assert!(!broker.is_running());
        assert!(
            api_versions(port).await.is_err(),
            "nothing answers while stopped"
        );
        broker.restart().await.expect("start again");
        assert_eq!(broker.port(), port);
        assert_eq!(api_versions(port).await, Ok(()));
        broker.kill().await;
        assert!(
            api_versions(port).await.is_err(),
            "nothing answers once killed"
        );
        broker.restart().await.expect("start after a kill");
        let dir = broker.dir().to_owned();
        assert!(dir.join("broker.log").is_file());
        drop(broker);
        assert!(!dir.exists(), "dropping removes the directory");
        assert!(
            api_versions(port).await.is_err(),
            "dropping kills the broker"
        );
    }
}
