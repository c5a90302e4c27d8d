//! `bench`: the engine and its backends against the raw database limit, measured in the
//! same run, printed as one table. Run it with `scripts/bench` (it provides PostgreSQL);
//! `scripts/bench --smoke` runs tiny sizes. See `docs/src/performance.md`.
//!
//! ```text
//! bench [--smoke] [--reps N] [--threads N] [--only 1,2,...] [--backend B]
//! ```
//!
//! `DATABASE_URL` must name a database where the benchmark may create (and drops again)
//! schemas `bench_*`. Workload 7 (the bus on NATS) starts a throwaway `nats-server` of
//! its own: `NATS_SERVER`, else `nats-server` on `PATH`; workload 8 (the bus on Kafka) a
//! throwaway tansu broker: `TANSU`, else `tansu` on `PATH` (`scripts/bench` makes sure
//! there are both).

mod bus;
mod domain;
mod kafka;
mod memory;
mod nats;
mod postgres;
mod raw;
mod report;

use std::process::ExitCode;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cqrs_core::subscription::{Consumer as _, Project, Subscription};
use cqrs_core::{
    Aggregate as _, CheckpointStore, EngineError, Envelope, EventStore, ExpectedVersion, Listener,
    Position, Projection, StoreError, StreamId,
};

use crate::domain::{AccountCommand, AccountError};
use crate::report::{Row, Samples, Unit};

/// Snapshot interval of the `engine+snapshots` set-up.
pub const SNAPSHOT_EVERY: u64 = 100;
/// Capacity of the `engine+image` set-up's memory image.
pub const IMAGE_CAPACITY: usize = 10_000;

/// Why the benchmark stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("engine: {0}")]
    Engine(#[from] EngineError<AccountError>),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("PostgreSQL set-up: {0}")]
    Setup(#[from] cqrs_postgres::SetupError),
    #[error("SQL: {0}")]
    Sql(#[from] cqrs_postgres::sqlx::Error),
    #[error("identifier: {0}")]
    Ident(#[from] cqrs_core::ident::IdentifierError),
    #[error("encode: {0}")]
    Encode(#[from] cqrs_core::codec::EncodeError),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("a task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("nats-server: {0}")]
    NatsServer(#[from] cqrs_nats::testing::ServerError),
    #[error("connecting to nats-server: {0}")]
    NatsConnect(#[from] cqrs_nats::async_nats::ConnectError),
    #[error("JetStream {what}: {source}")]
    Nats {
        what: &'static str,
        #[source]
        source: cqrs_nats::async_nats::Error,
    },
    #[error("bus settings: {0}")]
    BusConfig(#[from] cqrs_nats::ConfigError),
    #[error("bus: {0}")]
    Publish(#[from] cqrs_core::bus::PublishError),
    #[error("bus consumer: {0}")]
    Consumer(#[from] cqrs_nats::ConsumerError),
    #[error("tansu: {0}")]
    KafkaBroker(#[from] cqrs_kafka::testing::BrokerError),
    #[error("Kafka {what}: {source}")]
    Kafka {
        what: &'static str,
        #[source]
        source: cqrs_kafka::rdkafka::error::KafkaError,
    },
    #[error("Kafka settings: {0}")]
    KafkaConfig(#[from] cqrs_kafka::ConfigError),
    #[error("Kafka consumer: {0}")]
    KafkaConsumer(#[from] cqrs_kafka::ConsumerError),
    #[error("subscription: {0}")]
    Subscription(#[from] cqrs_core::subscription::SubscriptionError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Check(String),
}

/// The sizes of one run: the issue's in the full run, tiny ones in the smoke run.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub smoke: bool,
    /// The workloads to run (1 to 8); all when empty.
    pub only: Vec<u32>,
    /// Whether to run the memory, the PostgreSQL, the NATS and the Kafka workloads.
    pub memory: bool,
    pub postgres: bool,
    pub nats: bool,
    pub kafka: bool,
    /// Repetitions of each measurement.
    pub reps: usize,
    /// Workload 1: aggregates, and commands per aggregate.
    pub w1_aggregates: usize,
    pub w1_commands: usize,
    /// Workload 2: tasks (and pool size), aggregates per task, commands per aggregate.
    pub w2_tasks: usize,
    pub w2_aggregates: usize,
    pub w2_commands: usize,
    /// Workload 3: stream lengths.
    pub w3_lengths: &'static [u64],
    /// Workload 4: 10-event commands, their streams, and 100-event appends.
    pub w4_commands: usize,
    pub w4_streams: usize,
    pub w4_appends: usize,
    /// Workload 5: events to catch up on, and the batch sizes (one row each on
    /// PostgreSQL; the first on memory).
    pub w5_events: usize,
    pub w5_batches: &'static [usize],
    /// Workload 6: events stored in the memory store.
    pub w6_events: usize,
    /// Workloads 7 and 8 (the bus): events the relay publishes and the consumer reads,
    /// the streams they are in, and the appends whose latency is measured one at a time.
    pub bus_events: usize,
    pub bus_streams: usize,
    pub bus_latency_events: usize,
    /// Workload 8 (Kafka) in place of the two above: the relay's throughput
    /// (`kafka_relay_events`), the consumers' (`kafka_events`, fewer: the tansu broker of
    /// the benchmark answers a consumer's fetch only when librdkafka's
    /// `fetch.wait.max.ms`, 500 ms, runs out), the latency.
    pub kafka_relay_events: usize,
    pub kafka_events: usize,
    pub kafka_latency_events: usize,
}

impl Sizes {
    fn full() -> Self {
        Self {
            smoke: false,
            only: Vec::new(),
            memory: true,
            postgres: true,
            nats: true,
            kafka: true,
            reps: 5,
            w1_aggregates: 1_000,
            w1_commands: 10,
            w2_tasks: 16,
            w2_aggregates: 64,
            w2_commands: 10,
            w3_lengths: &[10, 100, 1_000, 10_000],
            w4_commands: 1_000,
            w4_streams: 100,
            w4_appends: 200,
            w5_events: 100_000,
            w5_batches: &[1_000, 10_000],
            w6_events: 1_000_000,
            bus_events: 20_000,
            bus_streams: 100,
            bus_latency_events: 500,
            kafka_relay_events: 10_000,
            kafka_events: 2_000,
            kafka_latency_events: 40,
        }
    }

    fn smoke() -> Self {
        Self {
            smoke: true,
            only: Vec::new(),
            memory: true,
            postgres: true,
            nats: true,
            kafka: true,
            reps: 2,
            w1_aggregates: 20,
            w1_commands: 10,
            w2_tasks: 16,
            w2_aggregates: 2,
            w2_commands: 5,
            w3_lengths: &[10, 100, 1_000, 10_000],
            w4_commands: 20,
            w4_streams: 5,
            w4_appends: 5,
            w5_events: 2_000,
            w5_batches: &[500, 1_000],
            w6_events: 10_000,
            bus_events: 200,
            bus_streams: 100,
            bus_latency_events: 20,
            kafka_relay_events: 200,
            kafka_events: 200,
            kafka_latency_events: 10,
        }
    }

    /// Whether workload `n` is to run.
    pub fn wants(&self, n: u32) -> bool {
        self.only.is_empty() || self.only.contains(&n)
    }

    /// Streams per length in workload 3 on memory (one command on each per repetition):
    /// enough for a sample of several milliseconds where a command is cheap, fewer for
    /// long streams, so that the store stays at most 200,000 events and the plain
    /// engine's replays stay short.
    pub fn w3_memory_streams(&self, length: u64) -> usize {
        match (self.smoke, length) {
            (true, _) => 2,
            (false, 0..=10) => 5_000,
            (false, 11..=100) => 2_000,
            (false, 101..=1_000) => 200,
            (false, _) => 20,
        }
    }

    /// Streams per length in workload 3 on PostgreSQL.
    pub fn w3_pg_streams(&self, length: u64) -> usize {
        match (self.smoke, length) {
            (true, _) => 2,
            (false, 0..=100) => 100,
            (false, 101..=1_000) => 20,
            (false, _) => 5,
        }
    }

    pub fn w1_label(&self) -> String {
        format!(
            "1 1 task, {} agg x {} cmd",
            report::count(self.w1_aggregates as f64),
            self.w1_commands
        )
    }

    pub fn w2_label(&self) -> String {
        format!(
            "2 {} tasks, {} agg x {} cmd each",
            self.w2_tasks, self.w2_aggregates, self.w2_commands
        )
    }

    pub fn w3_label(length: u64) -> String {
        format!(
            "3 one cmd, stream of {} events",
            report::count(length as f64)
        )
    }

    pub fn w5_label(&self) -> String {
        format!(
            "5 catch-up of {} events",
            report::count(self.w5_events as f64)
        )
    }
}

/// A command that deposits 10 times: 10 events.
pub fn ten_deposits(id: &str) -> AccountCommand {
    AccountCommand::DepositEach {
        account_id: id.to_owned(),
        amounts: (1..=10).collect(),
    }
}

/// A projection that counts the events handed to it and does nothing else, so that
/// workload 5 measures the subscription runner itself (read, decode, deliver, checkpoint).
#[derive(Clone, Default)]
struct Counter(Arc<AtomicUsize>);

impl Listener for Counter {
    const NAME: &'static str = "bench_catch_up";
    type Event = domain::AccountEvent;
    type Error = std::convert::Infallible;
    /// Every event type: the same rows as the raw `SELECT` it is compared with.
    fn event_types() -> Vec<&'static str> {
        Vec::new()
    }
}

impl Projection for Counter {
    async fn handle(&self, _event: &Envelope<Self::Event>) -> Result<(), Self::Error> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn reset(&self) -> Result<(), Self::Error> {
        self.0.store(0, Ordering::Relaxed);
        Ok(())
    }
}

/// Catch-up with cqrs-core's subscription runner: a [`Subscription`] feeding a [`Project`]
/// of a counting projection, with `store` as its checkpoint store (one checkpoint saved
/// per batch of `batch` events), from the start of the log until it is caught up. Returns
/// the number of events delivered.
///
/// Each call starts over: the checkpoint is first set to the start, which makes the
/// runner reset the projection and replay the whole log. The time includes taking the
/// subscription's lease and the final lag count of `caught_up`.
pub async fn catch_up<S>(store: &S, batch: usize) -> Result<usize, BenchError>
where
    S: EventStore + CheckpointStore + Clone,
{
    let counter = Counter::default();
    let consumer = Project::new(counter.clone(), store.clone())?;
    store
        .save_checkpoint(consumer.identity().checkpoint(), Position::START)
        .await?;
    let running = Subscription::new(store.clone(), consumer)
        .batch_size(batch)
        .start();
    let caught_up = running.caught_up(Duration::from_secs(3_600)).await;
    let stopped = running.shutdown().await;
    caught_up.map_err(|e| BenchError::Check(format!("catch-up: {e}")))?;
    stopped.map_err(|e| BenchError::Check(format!("catch-up: {e}")))?;
    Ok(counter.0.load(Ordering::Relaxed))
}

/// Fills a store with `count` events for workload 5: streams of 1,000 events, appended
/// 1,000 at a time.
pub async fn fill_for_catch_up(store: &dyn EventStore, count: usize) -> Result<(), BenchError> {
    const PER_STREAM: usize = 1_000;
    let mut written = 0;
    let mut n = 0;
    while written < count {
        let stream = StreamId::new(domain::Account::TYPE, &format!("w5-{n}"))?;
        let size = PER_STREAM.min(count - written);
        store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                memory::account_events(1, size as u64)?,
            )
            .await?;
        written += size;
        n += 1;
    }
    Ok(())
}

/// One figure of `/proc/self/status`, in bytes (`VmRSS`, `VmHWM`).
fn proc_status_bytes(field: &str) -> Result<u64, BenchError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            let kib = rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
            Some(kib * 1024)
        })
        .ok_or_else(|| BenchError::Check(format!("no {field} in /proc/self/status")))
}

/// Workload 6, in a child process so that its peak RSS is its own: stores `events`
/// events in a memory store through the plain engine (aggregates of 10 commands) and
/// prints `rss <bytes per event> <peak RSS bytes>`.
async fn memory_child(events: usize) -> Result<(), BenchError> {
    let before = proc_status_bytes("VmRSS")?;
    let store = cqrs_memory::MemoryStore::new();
    let engine = memory::Setup::Plain.engine(&store);
    let per_aggregate = 10;
    let ids = memory::account_ids("w6", events.div_ceil(per_aggregate));
    for i in 0..per_aggregate {
        for id in &ids {
            engine.execute(id, domain::nth_command(id, i)).await?;
        }
    }
    let stored = store.len();
    let after = proc_status_bytes("VmRSS")?;
    let peak = proc_status_bytes("VmHWM")?;
    println!(
        "rss {} {}",
        after.saturating_sub(before) as f64 / stored as f64,
        peak
    );
    Ok(())
}

/// Runs workload 6 `reps` times in child processes.
fn memory_rows(sizes: &Sizes, threads: usize, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    let exe = std::env::current_exe()?;
    let mut per_event = Samples::default();
    let mut peak = Samples::default();
    for _ in 0..sizes.reps.min(3) {
        let output = std::process::Command::new(&exe)
            .args([
                "--memory-child",
                &sizes.w6_events.to_string(),
                "--threads",
                &threads.to_string(),
            ])
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let parsed = stdout.lines().find_map(|line| {
            let mut parts = line.strip_prefix("rss ")?.split(' ');
            let bytes = parts.next()?.parse::<f64>().ok()?;
            let hwm = parts.next()?.parse::<f64>().ok()?;
            Some((bytes, hwm))
        });
        let Some((bytes, hwm)) = parsed.filter(|_| output.status.success()) else {
            return Err(BenchError::Check(format!(
                "the memory child failed: {}{}",
                stdout,
                String::from_utf8_lossy(&output.stderr)
            )));
        };
        per_event.push(bytes);
        peak.push(hwm / (1024.0 * 1024.0));
    }
    let label = format!(
        "6 memory store, {} events",
        report::count(sizes.w6_events as f64)
    );
    rows.push(Row::new(
        label.clone(),
        "memory",
        "RSS growth / event",
        Unit::BytesPerEvent,
        per_event,
    ));
    rows.push(Row::new(
        label,
        "memory",
        "peak RSS (VmHWM)",
        Unit::MiB,
        peak,
    ));
    Ok(())
}

struct Args {
    sizes: Sizes,
    threads: usize,
    memory_child: Option<usize>,
}

fn parse_args() -> Result<Args, BenchError> {
    let mut sizes = Sizes::full();
    let mut reps = None;
    let mut only = Vec::new();
    let mut backend = None;
    let mut threads = 1;
    let mut memory_child = None;
    let mut args = std::env::args().skip(1);
    let number = |flag: &str, value: Option<String>| {
        value
            .as_deref()
            .and_then(|v| usize::from_str(v).ok())
            .ok_or_else(|| BenchError::Usage(format!("{flag} needs a number")))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smoke" => sizes = Sizes::smoke(),
            "--reps" => reps = Some(number("--reps", args.next())?.max(1)),
            "--threads" => threads = number("--threads", args.next())?,
            "--backend" => match args.next().as_deref() {
                Some(name @ ("memory" | "postgres" | "nats" | "kafka")) => {
                    backend = Some(name.to_owned())
                }
                other => {
                    return Err(BenchError::Usage(format!(
                        "--backend takes memory, postgres, nats or kafka, not {other:?}"
                    )))
                }
            },
            "--only" => {
                let list = args.next().unwrap_or_default();
                for n in list.split(',') {
                    match u32::from_str(n.trim()) {
                        Ok(n @ 1..=8) => only.push(n),
                        _ => {
                            return Err(BenchError::Usage(format!(
                                "--only takes workload numbers 1 to 8, not {n:?}"
                            )))
                        }
                    }
                }
            }
            "--memory-child" => memory_child = Some(number("--memory-child", args.next())?),
            "-h" | "--help" => return Err(BenchError::Usage(
                "usage: bench [--smoke] [--reps N] [--threads N] [--only 1,2,...] [--backend B]\n\
                     --smoke      tiny sizes (CI)\n\
                     --backend B  run only the workloads of backend B (memory, postgres, nats, kafka)\n\
                     --only LIST  run only these workloads (numbers 1 to 8; 7 and 8 are the bus)\n\
                     --reps N     repetitions of each measurement (default 5, smoke 2)\n\
                     --threads N  tokio worker threads; 1 (default) is a current-thread runtime\n\
                     DATABASE_URL names the PostgreSQL database (scripts/bench sets it)\n\
                     NATS_SERVER names the nats-server binary of workload 7 (else PATH)\n\
                     TANSU names the Kafka-protocol broker of workload 8 (else PATH)"
                    .to_owned(),
            )),
            other => return Err(BenchError::Usage(format!("unknown argument {other:?}"))),
        }
    }
    if let Some(reps) = reps {
        sizes.reps = reps;
    }
    sizes.only = only;
    if let Some(backend) = backend {
        sizes.memory = backend == "memory";
        sizes.postgres = backend == "postgres";
        sizes.nats = backend == "nats";
        sizes.kafka = backend == "kafka";
    }
    Ok(Args {
        sizes,
        threads,
        memory_child,
    })
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, BenchError> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    Ok(builder.enable_all().build()?)
}

/// The machine, for the header: cores and CPU model.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cores} cores, {model}")
}

fn run() -> Result<(), BenchError> {
    let args = parse_args()?;
    let rt = runtime(args.threads)?;
    if let Some(events) = args.memory_child {
        return rt.block_on(memory_child(events));
    }
    let sizes = args.sizes;
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut server = rt.block_on(async {
        if sizes.memory {
            memory::run(&sizes, &mut rows).await?;
        }
        if sizes.postgres && (1..=5).any(|n| sizes.wants(n)) {
            postgres::run(&sizes, &mut rows).await
        } else {
            Ok("PostgreSQL not used".to_owned())
        }
    })?;
    if sizes.memory && sizes.wants(6) {
        memory_rows(&sizes, args.threads, &mut rows)?;
    }
    // After workload 6, so that the table is in workload order.
    if sizes.nats && sizes.wants(7) {
        let nats = rt.block_on(nats::run(&sizes, &mut rows))?;
        server.push_str("; ");
        server.push_str(&nats);
    }
    if sizes.kafka && sizes.wants(8) {
        let kafka = rt.block_on(kafka::run(&sizes, &mut rows))?;
        server.push_str("; ");
        server.push_str(&kafka);
    }
    println!(
        "cqrs bench ({} run, {} repetitions; median, min, max of the repetitions)",
        if sizes.smoke { "smoke" } else { "full" },
        sizes.reps
    );
    println!(
        "machine: {}; runtime: {}; {server}",
        machine(),
        if args.threads <= 1 {
            "tokio current-thread".to_owned()
        } else {
            format!("tokio multi-thread, {} workers", args.threads)
        }
    );
    println!(
        "ratio = framework speed / raw database speed (same rows, concurrency and commit \
         pattern, same run), rounded down; for nats and kafka, / the raw client (async-nats, \
         rdkafka) doing the same publishes, or fetches and acknowledgements"
    );
    println!();
    print!("{}", report::render(&rows));
    println!();
    println!("total time {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(BenchError::Usage(usage)) => {
            eprintln!("{usage}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
