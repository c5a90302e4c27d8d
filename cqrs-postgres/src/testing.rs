//! A throwaway PostgreSQL cluster for tests that must stop and start the server.
//!
//! Most tests share one database (`DATABASE_URL`) and make a schema each. A test that
//! stops the server (to see writers fail over an outage, or a health check go red) cannot
//! do that to a database the other tests use: it starts a cluster of its own with
//! [`TempCluster::start`]. The cluster lives in a temporary directory, listens on a free
//! port of 127.0.0.1, and is stopped and removed when the value is dropped.
//!
//! It needs the PostgreSQL server binaries (`initdb`, `pg_ctl`): in `PG_BINDIR` when it
//! is set (`scripts/test` sets it to what its own search found), else on `PATH`, through
//! `pg_config --bindir`, or under `/usr/lib/postgresql/*/bin` (the newest). PostgreSQL
//! refuses to run as root, so as root the server runs as the `postgres` OS user (created
//! when missing), as `scripts/test` does.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use cqrs_postgres::testing::TempCluster;
//! use cqrs_postgres::PgStore;
//!
//! let mut cluster = TempCluster::start()?;
//! let store = PgStore::connect(&cluster.url()).await?;
//! store.migrate().await?;
//! cluster.stop_immediately()?; // as if the machine lost power
//! // ... operations fail with typed, retriable errors ...
//! cluster.restart()?; // same port, same data
//! # Ok(()) }
//! ```
//!
//! The methods block the calling thread while `pg_ctl` works (a second or two); in an
//! async test that is acceptable, or call them through `tokio::task::spawn_blocking`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::postgres::PgConnectOptions;

/// Why a [`TempCluster`] could not be started or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// `initdb` and `pg_ctl` were found nowhere.
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl) in PG_BINDIR or, without it, on PATH, \
         through pg_config, or under /usr/lib/postgresql/*/bin: install the server package \
         (Debian: postgresql)"
    )]
    NoServerBinaries,
    /// A command could not be run at all, or a file operation failed.
    #[error("{step}: {source}")]
    Io {
        /// What was being done.
        step: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A command ran and failed; `output` is what it (or the server log) said.
    #[error("{step} failed: {output}")]
    Failed {
        /// What was being done.
        step: &'static str,
        /// The command's output, or the end of the server log.
        output: String,
    },
}

/// A PostgreSQL cluster of its own, for one test. See the [module docs](self).
#[derive(Debug)]
pub struct TempCluster {
    bindir: PathBuf,
    dir: PathBuf,
    port: u16,
    /// `runuser -u postgres --` when this process is root (PostgreSQL refuses root).
    run_as: Option<String>,
    running: bool,
}

impl TempCluster {
    /// Creates a cluster (`initdb`, trust authentication, user `postgres`) in a new
    /// temporary directory and starts it on a free port of 127.0.0.1.
    pub fn start() -> Result<Self, ClusterError> {
        let bindir = find_bindir().ok_or(ClusterError::NoServerBinaries)?;
        let run_as = server_user()?;
        let dir = make_temp_dir()?;
        let mut cluster = Self {
            bindir,
            dir,
            port: free_port()?,
            run_as,
            running: false,
        };
        if let Some(user) = &cluster.run_as {
            run(
                "chown the cluster directory",
                Command::new("chown").arg(user).arg(&cluster.dir),
            )?;
        }
        let initdb = cluster.bindir.join("initdb");
        let data = cluster.data_dir();
        run(
            "initdb",
            cluster.as_server_user(&initdb).arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
            ]),
        )?;
        cluster.restart()?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`: no password (trust).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Connection options for [`url`](Self::url).
    pub fn connect_options(&self) -> PgConnectOptions {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username("postgres")
            .database("postgres")
    }

    /// The port the server listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server was last started rather than stopped.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Stops the server at once, without a checkpoint (`pg_ctl stop -m immediate`): what
    /// a crash or a power cut does. Open connections are cut; the next start runs crash
    /// recovery. Does nothing when the server is not running.
    pub fn stop_immediately(&mut self) -> Result<(), ClusterError> {
        self.stop("immediate")
    }

    /// Stops the server cleanly (`pg_ctl stop -m fast`: sessions are ended, then a
    /// checkpoint). Does nothing when the server is not running.
    pub fn stop_fast(&mut self) -> Result<(), ClusterError> {
        self.stop("fast")
    }

    /// Starts the server again on the same port and data, waiting until it accepts
    /// connections (crash recovery included). Does nothing when it is running.
    pub fn restart(&mut self) -> Result<(), ClusterError> {
        if self.running {
            return Ok(());
        }
        let options = format!(
            "-h 127.0.0.1 -p {} -k {} -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let pg_ctl = self.bindir.join("pg_ctl");
        let log = self.dir.join("server.log");
        let started = run(
            "pg_ctl start",
            self.as_server_user(&pg_ctl)
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o", &options, "start"]),
        );
        if let Err(ClusterError::Failed { step, output }) = started {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(ClusterError::Failed {
                step,
                output: format!("{output}\nserver log:\n{}", tail.join("\n")),
            });
        }
        started?;
        self.running = true;
        Ok(())
    }

    fn stop(&mut self, mode: &str) -> Result<(), ClusterError> {
        if !self.running {
            return Ok(());
        }
        let pg_ctl = self.bindir.join("pg_ctl");
        run(
            "pg_ctl stop",
            self.as_server_user(&pg_ctl)
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", mode, "-w", "stop"]),
        )?;
        self.running = false;
        Ok(())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn as_server_user(&self, program: &Path) -> Command {
        match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
            None => Command::new(program),
        }
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        // Best effort: a drop cannot report, and a leftover server would only hold a port
        // and a temporary directory until the machine restarts.
        let _ = self.stop("immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `command`; its output becomes the error when it fails.
fn run(step: &'static str, command: &mut Command) -> Result<(), ClusterError> {
    let output = command
        .output()
        .map_err(|source| ClusterError::Io { step, source })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(ClusterError::Failed {
        step,
        output: format!("{} ({})", text.trim(), output.status),
    })
}

/// The directory of `initdb` and `pg_ctl`. Under the repository's scripts, `PG_BINDIR`
/// is the answer of their search (`pg_find_bindir` in `scripts/lib/pg.sh`); the same
/// search follows for a caller without it.
fn find_bindir() -> Option<PathBuf> {
    find_bindir_from(std::env::var_os("PG_BINDIR"), std::env::var_os("PATH"))
}

/// [`find_bindir`] with the two variables it reads passed in.
fn find_bindir_from(
    pg_bindir: Option<std::ffi::OsString>,
    path: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = pg_bindir.filter(|dir| !dir.is_empty()) {
        // Set but wrong is an error, not a reason to pick other binaries.
        let dir = PathBuf::from(dir);
        return has_both(&dir).then_some(dir);
    }
    if let Some(path) = path {
        if let Some(dir) = std::env::split_paths(&path).find(|dir| has_both(dir)) {
            return Some(dir);
        }
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if output.status.success() && has_both(&dir) {
            return Some(dir);
        }
    }
    // The newest of Debian's side-by-side installations.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_both(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// `Some("postgres")` when this process is root, after making sure that user exists.
fn server_user() -> Result<Option<String>, ClusterError> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|source| ClusterError::Io {
            step: "id -u",
            source,
        })?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Ok(None);
    }
    let exists = Command::new("id")
        .arg("postgres")
        .output()
        .map_err(|source| ClusterError::Io {
            step: "id postgres",
            source,
        })?;
    if !exists.status.success() {
        run(
            "useradd postgres",
            Command::new("useradd").args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "postgres",
            ]),
        )?;
    }
    Ok(Some("postgres".to_owned()))
}

/// A new directory under the system's temporary directory, readable by its owner only.
fn make_temp_dir() -> Result<PathBuf, ClusterError> {
    use std::os::unix::fs::PermissionsExt;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // Short, because the server's Unix socket path must fit in 107 bytes.
    let name = format!(
        "cqrs-pg-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let dir = std::env::temp_dir().join(name);
    let io = |step| move |source| ClusterError::Io { step, source };
    std::fs::create_dir(&dir).map_err(io("create the cluster directory"))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io("restrict the cluster directory"))?;
    Ok(dir)
}

/// A port of 127.0.0.1 that nothing listens on right now.
fn free_port() -> Result<u16, ClusterError> {
    let io = |source| ClusterError::Io {
        step: "find a free port",
        source,
    };
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io)?;
    Ok(listener.local_addr().map_err(io)?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_bindir_is_taken_when_right_and_refused_when_wrong() {
        let root = std::env::temp_dir().join(format!("cqrs-bindir-{}", std::process::id()));
        let (good, empty) = (root.join("good"), root.join("empty"));
        std::fs::create_dir_all(&good).expect("mkdir");
        std::fs::create_dir_all(&empty).expect("mkdir");
        for binary in ["initdb", "pg_ctl"] {
            std::fs::write(good.join(binary), "").expect("write");
        }
        let path = Some(good.clone().into_os_string());
        assert_eq!(
            find_bindir_from(Some(good.clone().into_os_string()), None),
            Some(good.clone())
        );
        // Set but wrong: no fallback to the binaries on PATH.
        assert_eq!(
            find_bindir_from(Some(empty.into_os_string()), path.clone()),
            None
        );
        // Unset (or empty): PATH is searched.
        assert_eq!(find_bindir_from(Some("".into()), path), Some(good));
        std::fs::remove_dir_all(&root).expect("clean up");
    }

    #[tokio::test]
    async fn a_cluster_starts_stops_and_starts_again_with_its_data() {
        use sqlx::Connection;
        let mut cluster = TempCluster::start().expect("start a cluster");
        let mut conn = sqlx::PgConnection::connect_with(&cluster.connect_options())
            .await
            .expect("connect");
        sqlx::raw_sql("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
            .execute(&mut conn)
            .await
            .expect("write");
        cluster.stop_immediately().expect("stop");
        assert!(sqlx::query("SELECT 1").execute(&mut conn).await.is_err());
        assert!(
            sqlx::PgConnection::connect_with(&cluster.connect_options())
                .await
                .is_err(),
            "nothing listens while stopped"
        );
        cluster.restart().expect("start again");
        let mut conn = sqlx::PgConnection::connect(&cluster.url())
            .await
            .expect("connect again");
        let (n,): (i32,) = sqlx::query_as("SELECT n FROM kept")
            .fetch_one(&mut conn)
            .await
            .expect("read");
        assert_eq!(n, 7, "a committed row survives an immediate stop");
        let dir = cluster.dir.clone();
        drop(cluster);
        assert!(!dir.exists(), "dropping removes the cluster");
    }
}
