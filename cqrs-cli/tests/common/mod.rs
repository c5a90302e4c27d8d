//! What the tests of the `cqrs` binary share: running it, and reading what it says.

use std::process::Output;

use serde_json::Value;

/// Runs the binary against `url` (never a `DATABASE_URL` of the environment).
pub fn cqrs(url: &str, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cqrs"))
        .env_remove("DATABASE_URL")
        .arg("--database-url")
        .arg(url)
        .args(args)
        .output()
        .expect("the cqrs binary runs")
}

/// The command's `--json` document, after checking that it exited with 0.
pub fn json(url: &str, args: &[&str]) -> Value {
    let out = cqrs(url, &[args, &["--json"]].concat());
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

/// The one line on stderr of a command that failed with `code`.
pub fn fails(url: &str, args: &[&str], code: i32) -> String {
    let out = cqrs(url, args);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one sentence: {stderr}"
    );
    stderr
}

/// A runtime for the test's own store calls.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
