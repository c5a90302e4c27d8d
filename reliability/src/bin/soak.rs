//! `soak`: a long run of commands through the engine, with a subscription feeding a read
//! model the whole time, that checks that memory stays flat and throughput does not
//! degrade. Run it with `scripts/soak` (release mode; it provides
//! PostgreSQL as `scripts/test` does):
//!
//! ```text
//! soak [--backend memory|postgres] [--events N] [--streams N] [--writers N]
//!      [--slices N] [--max-rss-growth-mb MB] [--max-growth-ratio R]
//!      [--min-throughput-ratio R]
//! ```
//!
//! Writers execute `N` one-event commands on `--streams` notebooks (each writer its own,
//! so that they never conflict; the engine keeps their images), in `--slices` slices. At
//! each slice's end it prints the slice's throughput, the process's resident memory
//! (`VmRSS` of `/proc/self/status`) and the subscription's lag. The first slice is the
//! warm-up. Then the verdict, computed, with exit code 1 on FAIL:
//!
//! - every event took effect in the read model (each counted once), and the store holds
//!   `N` events;
//! - memory: on PostgreSQL, resident memory grows by at most `--max-rss-growth-mb`
//!   (default 16: over a million events, a leak of 20 bytes per event fails) from the end
//!   of the warm-up to the end. The memory store keeps every event, so there its growth
//!   per event in the second half of the run may be at most `--max-growth-ratio`
//!   (default 1.5) times that of the first half (a leak grows it);
//! - throughput: the median of the last three slices is at least
//!   `--min-throughput-ratio` (default 0.7) times the median of the three slices after
//!   the warm-up.
//!
//! PostgreSQL: `DATABASE_URL` names a database where the soak creates a schema `soak_*`,
//! dropped at the end.

use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

use cqrs_core::subscription::{Project, SubscriptionError};
use cqrs_core::{
    CheckpointStore, Engine, EngineError, EventFilter, EventStore, Position, StoreError,
    Subscription,
};
use cqrs_memory::MemoryStore;
use cqrs_postgres::{sqlx, PgStore, SetupError};
use cqrs_reliability::notebook::{NoteCommand, NoteCounts, NoteError, Notebook};

/// Why the soak could not run to its verdict.
#[derive(Debug, thiserror::Error)]
enum SoakError {
    #[error("{USAGE}")]
    Help,
    #[error("{0}")]
    Usage(String),
    #[error("engine: {0}")]
    Engine(#[from] EngineError<NoteError>),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("PostgreSQL set-up: {0}")]
    Setup(#[from] SetupError),
    #[error("SQL: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("subscription: {0}")]
    Subscription(#[from] SubscriptionError),
    #[error("a writer failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("cannot read the resident memory: {0}")]
    Rss(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Memory,
    Postgres,
}

#[derive(Debug, Clone)]
struct Options {
    backend: Backend,
    events: u64,
    streams: u64,
    writers: u64,
    slices: u64,
    max_rss_growth_mb: f64,
    max_growth_ratio: f64,
    min_throughput_ratio: f64,
}

const USAGE: &str = "usage: soak [--backend memory|postgres] [--events N] [--streams N] \
     [--writers N] [--slices N] [--max-rss-growth-mb MB] [--max-growth-ratio R] \
     [--min-throughput-ratio R]";

impl Options {
    fn parse(args: impl Iterator<Item = String>) -> Result<Self, SoakError> {
        let mut options = Options {
            backend: Backend::Postgres,
            events: 1_000_000,
            streams: 1_000,
            writers: 8,
            slices: 10,
            max_rss_growth_mb: 16.0,
            max_growth_ratio: 1.5,
            min_throughput_ratio: 0.7,
        };
        let mut args = args;
        while let Some(flag) = args.next() {
            let (flag, inline) = match flag.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (flag, None),
            };
            if flag == "-h" || flag == "--help" {
                return Err(SoakError::Help);
            }
            let value = inline
                .or_else(|| args.next())
                .ok_or_else(|| SoakError::Usage(format!("{flag} needs a value\n{USAGE}")))?;
            match flag.as_str() {
                "--backend" => {
                    options.backend = match value.as_str() {
                        "memory" => Backend::Memory,
                        "postgres" => Backend::Postgres,
                        _ => return Err(SoakError::Usage(format!("unknown backend {value:?}"))),
                    }
                }
                "--events" => options.events = number(&flag, &value)?,
                "--streams" => options.streams = number(&flag, &value)?,
                "--writers" => options.writers = number(&flag, &value)?,
                "--slices" => options.slices = number(&flag, &value)?,
                "--max-rss-growth-mb" => options.max_rss_growth_mb = number(&flag, &value)?,
                "--max-growth-ratio" => options.max_growth_ratio = number(&flag, &value)?,
                "--min-throughput-ratio" => options.min_throughput_ratio = number(&flag, &value)?,
                _ => return Err(SoakError::Usage(format!("unknown option {flag}\n{USAGE}"))),
            }
        }
        if options.slices < 7 || options.writers == 0 || options.streams < options.writers {
            return Err(SoakError::Usage(
                "--slices must be at least 7 (a warm-up and three slices at each end), \
                 --writers at least 1, --streams at least --writers"
                    .to_owned(),
            ));
        }
        if options.events < options.slices * options.writers {
            return Err(SoakError::Usage(
                "--events must be at least --slices times --writers".to_owned(),
            ));
        }
        Ok(options)
    }
}

fn number<T: FromStr>(flag: &str, value: &str) -> Result<T, SoakError> {
    value
        .parse()
        .map_err(|_| SoakError::Usage(format!("{flag}: not a number: {value:?}")))
}

/// The resident memory of this process, in MB.
fn rss_mb() -> Result<f64, SoakError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| SoakError::Rss(format!("/proc/self/status: {e}")))?;
    let kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| SoakError::Rss("no VmRSS line".to_owned()))?;
    Ok(kb / 1024.0)
}

/// What was measured at the end of one slice.
#[derive(Debug, Clone, Copy)]
struct Slice {
    events: u64,
    seconds: f64,
    rss_mb: f64,
    lag: u64,
}

impl Slice {
    fn throughput(&self, per_slice: u64) -> f64 {
        per_slice as f64 / self.seconds.max(1e-9)
    }
}

/// What a soak measured.
struct Run {
    slices: Vec<Slice>,
    /// Resident memory before the first command, MB.
    start_rss_mb: f64,
    /// Events the read model took (each once).
    delivered: u64,
    /// Events the store holds.
    stored: u64,
}

/// Runs the soak on `store`: writers in slices, the subscription all along.
async fn soak<S>(options: &Options, store: S) -> Result<Run, SoakError>
where
    S: EventStore + CheckpointStore + Clone,
{
    let engine =
        Engine::<Notebook>::new(store.clone(), ()).with_image_cache(options.streams as usize);
    let counts = NoteCounts::default();
    let running = Subscription::new(
        store.clone(),
        Project::new(counts.clone(), store.clone()).map_err(StoreError::from)?,
    )
    .batch_size(1_000)
    .start();
    let start_rss_mb = rss_mb()?;
    let per_slice = options.events / options.slices;
    let per_writer = per_slice / options.writers;
    let per_slice = per_writer * options.writers;
    let mut slices = Vec::with_capacity(options.slices as usize);
    println!(
        "{:>5} {:>10} {:>8} {:>10} {:>9} {:>9}",
        "slice", "events", "seconds", "events/s", "RSS MB", "sub. lag"
    );
    let mut written = 0;
    for slice in 0..options.slices {
        let started = Instant::now();
        let mut writers = Vec::with_capacity(options.writers as usize);
        for writer in 0..options.writers {
            let engine = engine.clone();
            let (streams, writers_count) = (options.streams, options.writers);
            writers.push(tokio::spawn(async move {
                // Writer w owns notebooks w, w + W, w + 2W, ...: no two writers conflict.
                let own = streams / writers_count;
                for i in 0..per_writer {
                    let notebook = writer + writers_count * ((slice * per_writer + i) % own);
                    let text = format!("note {i} of slice {slice}");
                    engine
                        .execute(&format!("nb-{notebook}"), NoteCommand::Write { text })
                        .await?;
                }
                Ok::<(), SoakError>(())
            }));
        }
        for writer in writers {
            writer.await??;
        }
        written += per_slice;
        let measured = Slice {
            events: written,
            seconds: started.elapsed().as_secs_f64(),
            rss_mb: rss_mb()?,
            lag: written.saturating_sub(running.status().delivered),
        };
        println!(
            "{:>5} {:>10} {:>8.2} {:>10.0} {:>9.1} {:>9}{}",
            slice + 1,
            measured.events,
            measured.seconds,
            measured.throughput(per_slice),
            measured.rss_mb,
            measured.lag,
            if slice == 0 { "  (warm-up)" } else { "" }
        );
        slices.push(measured);
    }
    running.caught_up(Duration::from_secs(600)).await?;
    let delivered = counts.events();
    let stored = store
        .count_after(Position::START, &EventFilter::all(), u64::MAX)
        .await?;
    running.shutdown().await?;
    Ok(Run {
        slices,
        start_rss_mb,
        delivered,
        stored,
    })
}

/// The computed verdict: one line per criterion, and whether all passed.
fn verdict(options: &Options, run: &Run) -> bool {
    let (slices, delivered, stored) = (&run.slices, run.delivered, run.stored);
    let per_slice = slices[0].events;
    let expected = slices.last().map_or(0, |s| s.events);
    let mut pass = true;
    let mut check = |ok: bool, line: String| {
        println!("{} {line}", if ok { "PASS" } else { "FAIL" });
        pass &= ok;
    };
    check(
        delivered == expected && stored == expected,
        format!("events: {expected} written, {stored} stored, {delivered} in the read model"),
    );
    let warm = &slices[0];
    let last = &slices[slices.len() - 1];
    match options.backend {
        Backend::Postgres => {
            let growth = last.rss_mb - warm.rss_mb;
            check(
                growth <= options.max_rss_growth_mb,
                format!(
                    "memory: {:.1} MB after the warm-up, {:.1} MB at the end: {growth:+.1} MB \
                     (at most {:+.1} MB)",
                    warm.rss_mb, last.rss_mb, options.max_rss_growth_mb
                ),
            );
        }
        Backend::Memory => {
            // The store keeps every event: resident memory grows with it, at a rate that
            // must not rise.
            let middle = &slices[slices.len() / 2];
            let early = (middle.rss_mb - warm.rss_mb) / (middle.events - warm.events).max(1) as f64;
            let late = (last.rss_mb - middle.rss_mb) / (last.events - middle.events).max(1) as f64;
            let to_bytes = |mb_per_event: f64| mb_per_event * 1024.0 * 1024.0;
            check(
                late <= early * options.max_growth_ratio,
                format!(
                    "memory: {:.0} bytes per event stored in the first half after the warm-up, \
                     {:.0} in the second (at most {:.1} times)",
                    to_bytes(early),
                    to_bytes(late),
                    options.max_growth_ratio
                ),
            );
        }
    }
    // Medians of three, so that one slice slowed by something else on the machine does
    // not decide; a real degradation slows most slices.
    let median = |three: &[Slice]| {
        let mut rates: Vec<f64> = three.iter().map(|s| s.throughput(per_slice)).collect();
        rates.sort_by(f64::total_cmp);
        rates[1]
    };
    let first = median(&slices[1..4]);
    let end = median(&slices[slices.len() - 3..]);
    check(
        end >= first * options.min_throughput_ratio,
        format!(
            "throughput: {first:.0} events/s after the warm-up, {end:.0} at the end: {:.2} \
             (at least {:.2})",
            end / first,
            options.min_throughput_ratio
        ),
    );
    pass
}

async fn run(options: &Options) -> Result<bool, SoakError> {
    println!(
        "soak: {:?}, {} events, {} notebooks, {} writers, {} slices",
        options.backend, options.events, options.streams, options.writers, options.slices
    );
    let run = match options.backend {
        Backend::Memory => soak(options, MemoryStore::new()).await?,
        Backend::Postgres => {
            let url = std::env::var("DATABASE_URL").map_err(|_| {
                SoakError::Usage(
                    "DATABASE_URL is not set: run the PostgreSQL soak with scripts/soak".to_owned(),
                )
            })?;
            let pool = PgStore::pool_options()
                .max_connections(options.writers as u32 + 4)
                .connect_with(url.parse()?)
                .await?;
            let schema = format!("soak_{}", uuid::Uuid::new_v4().simple());
            let store = PgStore::with_pool_and_schema(pool.clone(), &schema)?;
            store.migrate().await?;
            let result = soak(options, store).await;
            sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(&pool)
                .await?;
            result?
        }
    };
    println!("RSS before the first command: {:.1} MB", run.start_rss_mb);
    Ok(verdict(options, &run))
}

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(SoakError::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("soak: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(&options)) {
        Ok(true) => {
            println!("soak: PASS");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("soak: FAIL");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}
