//! Workloads on the in-memory store.

use std::time::Instant;

use cqrs_core::{
    codec, Aggregate, Engine, EventStore, ExpectedVersion, Metadata, NewEvent, Snapshot,
    SnapshotPolicy, SnapshotStore, StreamId, StreamStore,
};
use cqrs_memory::MemoryStore;

use crate::domain::{nth_command, Account, AccountCommand, AccountEvent};
use crate::report::{Row, Samples, Target, Unit};
use crate::{catch_up, BenchError, Sizes, IMAGE_CAPACITY, SNAPSHOT_EVERY};

const BACKEND: &str = "memory";

/// The engine set-ups compared by workloads 1 and 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// Every command loads the stream.
    Plain,
    /// Snapshots every `SNAPSHOT_EVERY` events; a command loads snapshot + tail.
    Snapshots,
    /// The memory image (`with_image_cache`).
    Image,
}

impl Setup {
    pub fn label(self) -> String {
        match self {
            Setup::Plain => "engine".to_owned(),
            Setup::Snapshots => format!("engine+snapshots/{SNAPSHOT_EVERY}"),
            Setup::Image => "engine+image".to_owned(),
        }
    }

    /// An engine on `store` with this set-up.
    pub fn engine<S>(self, store: &S) -> Engine<Account>
    where
        S: EventStore + SnapshotStore + Clone,
    {
        let engine = Engine::<Account>::new(store.clone(), ());
        match self {
            Setup::Plain => engine,
            Setup::Snapshots => {
                engine.with_snapshots(store.clone(), SnapshotPolicy::EveryEvents(SNAPSHOT_EVERY))
            }
            Setup::Image => engine.with_image_cache(IMAGE_CAPACITY),
        }
    }
}

pub async fn run(sizes: &Sizes, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    if sizes.wants(1) {
        commands_one_task(sizes, rows).await?;
    }
    if sizes.wants(3) {
        cost_by_stream_length(sizes, rows).await?;
    }
    if sizes.wants(4) {
        multi_event(sizes, rows).await?;
    }
    if sizes.wants(5) {
        catch_up_rows(sizes, rows).await?;
    }
    Ok(())
}

/// Account ids `prefix-0`, `prefix-1`, ...
pub fn account_ids(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

/// `commands` commands on each account, round-robin (command 0 on every account, then
/// command 1, ...), built before the clock starts.
pub fn round_robin(ids: &[String], commands: usize) -> Vec<(String, AccountCommand)> {
    (0..commands)
        .flat_map(|i| ids.iter().map(move |id| (id.clone(), nth_command(id, i))))
        .collect()
}

/// Runs `work` on a fresh engine and store per repetition; returns commands per second.
async fn commands_per_sec(sizes: &Sizes, setup: Setup) -> Result<Samples, BenchError> {
    let mut samples = Samples::default();
    for rep in 0..sizes.reps {
        let store = MemoryStore::new();
        let engine = setup.engine(&store);
        let ids = account_ids(&format!("w1-{rep}"), sizes.w1_aggregates);
        let work = round_robin(&ids, sizes.w1_commands);
        let count = work.len();
        let start = Instant::now();
        for (id, command) in work {
            engine.execute(&id, command).await?;
        }
        samples.push(count as f64 / start.elapsed().as_secs_f64());
    }
    Ok(samples)
}

/// Workload 1 on memory.
async fn commands_one_task(sizes: &Sizes, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    for setup in [Setup::Plain, Setup::Image] {
        let samples = commands_per_sec(sizes, setup).await?;
        rows.push(
            Row::new(
                sizes.w1_label(),
                BACKEND,
                setup.label(),
                Unit::CommandsPerSec,
                samples,
            )
            .with_target(Target::AtLeast(500_000.0)),
        );
    }
    Ok(())
}

/// `count` encoded events for an account: `Opened` first (when `from_version` is 1),
/// then deposits.
pub fn account_events(from_version: u64, count: u64) -> Result<Vec<NewEvent>, BenchError> {
    (from_version..from_version + count)
        .map(|version| {
            let event = if version == 1 {
                AccountEvent::Opened {
                    owner: "Ada".to_owned(),
                }
            } else {
                AccountEvent::Deposited { amount: version }
            };
            Ok(codec::encode(
                &event,
                Metadata::default().with_correlation_id(uuid::Uuid::now_v7()),
            )?)
        })
        .collect()
}

/// Writes `length` events to each stream straight through the store, in appends of at
/// most 1,000 events; with `snapshot`, also saves a snapshot at the last version.
pub async fn prepare_streams<S>(
    store: &S,
    ids: &[String],
    length: u64,
    snapshot: bool,
) -> Result<(), BenchError>
where
    S: EventStore + SnapshotStore + Clone,
{
    const CHUNK: u64 = 1_000;
    let plain = Engine::<Account>::new(store.clone(), ());
    for id in ids {
        let stream = StreamId::new(Account::TYPE, id)?;
        let mut version = 0;
        while version < length {
            let count = CHUNK.min(length - version);
            let expected = match version {
                0 => ExpectedVersion::NoStream,
                v => ExpectedVersion::Exact(v),
            };
            store
                .append(&stream, expected, account_events(version + 1, count)?)
                .await?;
            version += count;
        }
        if snapshot {
            let loaded = plain.load(id).await?;
            store
                .save_snapshot(
                    &stream,
                    Snapshot {
                        stream_version: loaded.version,
                        schema_version: Account::SNAPSHOT_VERSION,
                        state: serde_json::to_value(&loaded.state)?,
                    },
                )
                .await?;
        }
    }
    Ok(())
}

/// Measures one command on each of `ids` per repetition, after one untimed warm-up
/// command on each (it fills the image); returns microseconds per command.
pub async fn cost_per_command(
    engine: &Engine<Account>,
    ids: &[String],
    reps: usize,
) -> Result<Samples, BenchError> {
    let deposit = |id: &String| AccountCommand::Deposit {
        account_id: id.clone(),
        amount: 1,
    };
    for id in ids {
        engine.execute(id, deposit(id)).await?;
    }
    let mut samples = Samples::default();
    for _ in 0..reps {
        let work: Vec<_> = ids.iter().map(|id| (id, deposit(id))).collect();
        let start = Instant::now();
        for (id, command) in work {
            engine.execute(id, command).await?;
        }
        samples.push(start.elapsed().as_secs_f64() * 1e6 / ids.len() as f64);
    }
    Ok(samples)
}

/// Workload 3 on memory.
async fn cost_by_stream_length(sizes: &Sizes, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    let mut base = [None; 3];
    for &length in sizes.w3_lengths {
        let count = sizes.w3_memory_streams(length);
        for (i, setup) in [Setup::Plain, Setup::Snapshots, Setup::Image]
            .into_iter()
            .enumerate()
        {
            let store = MemoryStore::new();
            let ids = account_ids(&format!("w3-{length}"), count);
            prepare_streams(&store, &ids, length, setup == Setup::Snapshots).await?;
            let engine = setup.engine(&store);
            let samples = cost_per_command(&engine, &ids, sizes.reps).await?;
            let median = samples.median();
            let mut row = Row::new(
                Sizes::w3_label(length),
                BACKEND,
                setup.label(),
                Unit::MicrosPerCommand,
                samples,
            );
            // The target: the longest stream costs at most 1.5 times the shortest.
            match base[i] {
                None => base[i] = Some(median),
                Some(base) if Some(&length) == sizes.w3_lengths.last() => {
                    row = row.with_target(Target::AtMostTimes {
                        label: "shortest",
                        base,
                        times: 1.5,
                    })
                }
                Some(_) => {}
            }
            rows.push(row);
        }
    }
    Ok(())
}

/// Workload 4 on memory: a 10-event command (image engine), and a 100-event append.
async fn multi_event(sizes: &Sizes, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    let mut command = Samples::default();
    let mut append = Samples::default();
    for rep in 0..sizes.reps {
        let store = MemoryStore::new();
        let engine = Setup::Image.engine(&store);
        let ids = account_ids(&format!("w4-{rep}"), sizes.w4_streams);
        for id in &ids {
            engine.execute(id, nth_command(id, 0)).await?;
        }
        let work: Vec<_> = (0..sizes.w4_commands)
            .map(|i| {
                let id = &ids[i % ids.len()];
                (id, crate::ten_deposits(id))
            })
            .collect();
        let start = Instant::now();
        for (id, cmd) in work {
            engine.execute(id, cmd).await?;
        }
        command.push((sizes.w4_commands * 10) as f64 / start.elapsed().as_secs_f64());

        let streams: Vec<StreamId> = (0..sizes.w4_appends)
            .map(|i| StreamId::new(Account::TYPE, &format!("w4-append-{rep}-{i}")))
            .collect::<Result<_, _>>()?;
        let start = Instant::now();
        for stream in &streams {
            store
                .append(stream, ExpectedVersion::NoStream, account_events(1, 100)?)
                .await?;
        }
        append.push((sizes.w4_appends * 100) as f64 / start.elapsed().as_secs_f64());
    }
    rows.push(Row::new(
        "4 one command of 10 events",
        BACKEND,
        Setup::Image.label(),
        Unit::EventsPerSec,
        command,
    ));
    rows.push(Row::new(
        "4 one append of 100 events",
        BACKEND,
        "store.append",
        Unit::EventsPerSec,
        append,
    ));
    Ok(())
}

/// Workload 5 on memory.
async fn catch_up_rows(sizes: &Sizes, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    let store = MemoryStore::new();
    crate::fill_for_catch_up(&store, sizes.w5_events).await?;
    let batch = sizes.w5_batches[0];
    let mut samples = Samples::default();
    for _ in 0..sizes.reps {
        let start = Instant::now();
        let read = catch_up(&store, batch).await?;
        samples.push(read as f64 / start.elapsed().as_secs_f64());
    }
    rows.push(Row::new(
        sizes.w5_label(),
        BACKEND,
        format!("subscription/{batch}"),
        Unit::EventsPerSec,
        samples,
    ));
    Ok(())
}
