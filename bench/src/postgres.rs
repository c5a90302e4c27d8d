//! Workloads on PostgreSQL, each against the raw database doing the same work, with the
//! repetitions of the framework and of the raw baseline interleaved so that both see the
//! same machine noise.

use std::str::FromStr;
use std::time::Instant;

use cqrs_core::{Aggregate as _, ExpectedVersion, StreamId, StreamStore};
use cqrs_postgres::sqlx::postgres::PgConnectOptions;
use cqrs_postgres::sqlx::{self, PgPool};
use cqrs_postgres::PgStore;

use crate::domain::{nth_command, Account};
use crate::memory::{
    account_events, account_ids, cost_per_command, prepare_streams, round_robin, Setup,
};
use crate::raw::{self, RawTable};
use crate::report::{Row, Samples, Target, Unit};
use crate::{catch_up, fill_for_catch_up, ten_deposits, BenchError, Sizes};

const BACKEND: &str = "postgres";

/// The database, and the schemas made in it (dropped at the end).
struct Pg {
    options: PgConnectOptions,
    schemas: Vec<String>,
}

impl Pg {
    fn from_env() -> Result<Self, BenchError> {
        let url = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                return Err(BenchError::Usage(
                    "DATABASE_URL is not set: run `scripts/bench`, which starts a throwaway \
                     PostgreSQL, or set it to a database where the benchmark may create schemas"
                        .to_owned(),
                ))
            }
        };
        let options = PgConnectOptions::from_str(&url)
            .map_err(|e| BenchError::Usage(format!("DATABASE_URL is not usable: {e}")))?
            .application_name("cqrs-bench");
        Ok(Self {
            options,
            schemas: Vec::new(),
        })
    }

    /// A pool of `size` connections with the store's recommended settings.
    async fn pool(&self, size: u32) -> Result<PgPool, BenchError> {
        Ok(PgStore::pool_options()
            .max_connections(size)
            .connect_with(self.options.clone())
            .await?)
    }

    /// A migrated store in a fresh schema on a pool of `size`, with its raw twin.
    async fn store(&mut self, size: u32) -> Result<(PgStore, RawTable), BenchError> {
        let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
        let store = PgStore::with_pool_and_schema(self.pool(size).await?, &schema)?;
        self.schemas.push(schema);
        store.migrate().await?;
        let raw = RawTable::create(&store).await?;
        self.schemas.push(RawTable::schema(&store));
        Ok((store, raw))
    }

    async fn drop_schemas(&self) -> Result<(), BenchError> {
        let pool = self.pool(1).await?;
        for schema in &self.schemas {
            sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .execute(&pool)
                .await?;
        }
        Ok(())
    }
}

/// Runs every PostgreSQL workload; returns a description of the server for the header.
pub async fn run(sizes: &Sizes, rows: &mut Vec<Row>) -> Result<String, BenchError> {
    let mut pg = Pg::from_env()?;
    let server = describe_server(&pg.pool(1).await?).await?;
    let result = async {
        if sizes.wants(1) {
            commands_one_task(&mut pg, sizes, rows).await?;
        }
        if sizes.wants(2) {
            commands_sixteen_tasks(&mut pg, sizes, rows).await?;
        }
        if sizes.wants(3) {
            cost_by_stream_length(&mut pg, sizes, rows).await?;
        }
        if sizes.wants(4) {
            multi_event(&mut pg, sizes, rows).await?;
        }
        if sizes.wants(5) {
            catch_up_rows(&mut pg, sizes, rows).await?;
        }
        Ok(())
    }
    .await;
    pg.drop_schemas().await?;
    result.map(|()| server)
}

async fn describe_server(pool: &PgPool) -> Result<String, BenchError> {
    let row: (String, String, String) = sqlx::query_as(
        "SELECT current_setting('server_version'), current_setting('fsync'), \
         current_setting('synchronous_commit')",
    )
    .fetch_one(pool)
    .await?;
    Ok(format!(
        "PostgreSQL {} (fsync {}, synchronous_commit {}), same machine",
        row.0, row.1, row.2
    ))
}

/// The raw side of workloads 1 and 2: `(account id, command index)` in the same order.
fn raw_work(ids: &[String], commands: usize) -> Vec<(String, usize)> {
    (0..commands)
        .flat_map(|i| ids.iter().map(move |id| (id.clone(), i)))
        .collect()
}

/// Workload 1 on PostgreSQL.
async fn commands_one_task(
    pg: &mut Pg,
    sizes: &Sizes,
    rows: &mut Vec<Row>,
) -> Result<(), BenchError> {
    // The default pool size of `PgStore::connect`.
    let (store, raw) = pg.store(10).await?;
    let setups = [Setup::Plain, Setup::Image];
    let mut framework = vec![Samples::default(); setups.len()];
    let mut baseline = Samples::default();
    let count = sizes.w1_aggregates * sizes.w1_commands;
    for rep in 0..sizes.reps {
        let work = raw_work(
            &account_ids(&format!("w1-raw-{rep}"), sizes.w1_aggregates),
            sizes.w1_commands,
        );
        let mut conn = store.pool().acquire().await?;
        let start = Instant::now();
        raw.insert_commands(&mut conn, &work).await?;
        baseline.push(count as f64 / start.elapsed().as_secs_f64());
        drop(conn);

        for (setup, samples) in setups.iter().zip(&mut framework) {
            let engine = setup.engine(&store);
            let ids = account_ids(&format!("w1-{setup:?}-{rep}"), sizes.w1_aggregates);
            let work = round_robin(&ids, sizes.w1_commands);
            let start = Instant::now();
            for (id, command) in work {
                engine.execute(&id, command).await?;
            }
            samples.push(count as f64 / start.elapsed().as_secs_f64());
        }
    }
    for (setup, samples) in setups.iter().zip(framework) {
        rows.push(
            Row::new(
                sizes.w1_label(),
                BACKEND,
                setup.label(),
                Unit::CommandsPerSec,
                samples,
            )
            .with_raw(baseline.clone())
            .with_target(Target::RawRatio(0.8)),
        );
    }
    Ok(())
}

/// Workload 2: 16 tasks on distinct aggregates, a pool of 16.
async fn commands_sixteen_tasks(
    pg: &mut Pg,
    sizes: &Sizes,
    rows: &mut Vec<Row>,
) -> Result<(), BenchError> {
    let (store, raw) = pg.store(sizes.w2_tasks as u32).await?;
    let raw = std::sync::Arc::new(raw);
    let setups = [Setup::Plain, Setup::Image];
    let mut framework = vec![Samples::default(); setups.len()];
    let mut baseline = Samples::default();
    let count = sizes.w2_tasks * sizes.w2_aggregates * sizes.w2_commands;
    for rep in 0..sizes.reps {
        // Raw: each task holds one connection of the pool.
        let mut conns = Vec::with_capacity(sizes.w2_tasks);
        for _ in 0..sizes.w2_tasks {
            conns.push(store.pool().acquire().await?);
        }
        let start = Instant::now();
        let tasks: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(task, mut conn)| {
                let raw = raw.clone();
                let work = raw_work(
                    &account_ids(&format!("w2-raw-{rep}-{task}"), sizes.w2_aggregates),
                    sizes.w2_commands,
                );
                tokio::spawn(async move { raw.insert_commands(&mut conn, &work).await })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        baseline.push(count as f64 / start.elapsed().as_secs_f64());

        for (setup, samples) in setups.iter().zip(&mut framework) {
            let engine = setup.engine(&store);
            let work: Vec<_> = (0..sizes.w2_tasks)
                .map(|task| {
                    let ids =
                        account_ids(&format!("w2-{setup:?}-{rep}-{task}"), sizes.w2_aggregates);
                    round_robin(&ids, sizes.w2_commands)
                })
                .collect();
            let start = Instant::now();
            let tasks: Vec<_> = work
                .into_iter()
                .map(|work| {
                    let engine = engine.clone();
                    tokio::spawn(async move {
                        for (id, command) in work {
                            engine.execute(&id, command).await?;
                        }
                        Ok::<_, BenchError>(())
                    })
                })
                .collect();
            for task in tasks {
                task.await??;
            }
            samples.push(count as f64 / start.elapsed().as_secs_f64());
        }
    }
    for (setup, samples) in setups.iter().zip(framework) {
        rows.push(
            Row::new(
                sizes.w2_label(),
                BACKEND,
                setup.label(),
                Unit::CommandsPerSec,
                samples,
            )
            .with_raw(baseline.clone())
            .with_target(Target::RawRatio(0.8)),
        );
    }
    Ok(())
}

/// Workload 3 on PostgreSQL: the raw figure is one single-row INSERT, measured between
/// the framework's set-ups.
async fn cost_by_stream_length(
    pg: &mut Pg,
    sizes: &Sizes,
    rows: &mut Vec<Row>,
) -> Result<(), BenchError> {
    let (store, raw) = pg.store(10).await?;
    for &length in sizes.w3_lengths {
        let count = sizes.w3_pg_streams(length);
        let mut baseline = Samples::default();
        let mut results = Vec::new();
        for (i, setup) in [Setup::Plain, Setup::Snapshots, Setup::Image]
            .into_iter()
            .enumerate()
        {
            let ids = account_ids(&format!("w3-{length}-{setup:?}"), count);
            prepare_streams(&store, &ids, length, setup == Setup::Snapshots).await?;
            let engine = setup.engine(&store);
            results.push((setup, cost_per_command(&engine, &ids, sizes.reps).await?));

            // The raw INSERT of the same number of rows, one per transaction.
            let mut conn = store.pool().acquire().await?;
            for rep in 0..sizes.reps.div_ceil(3) {
                let work = raw_work(
                    &account_ids(&format!("w3-raw-{length}-{i}-{rep}"), count),
                    1,
                );
                let start = Instant::now();
                raw.insert_commands(&mut conn, &work).await?;
                baseline.push(start.elapsed().as_secs_f64() * 1e6 / count as f64);
            }
        }
        for (setup, samples) in results {
            rows.push(
                Row::new(
                    Sizes::w3_label(length),
                    BACKEND,
                    setup.label(),
                    Unit::MicrosPerCommand,
                    samples,
                )
                .with_raw(baseline.clone()),
            );
        }
    }
    Ok(())
}

/// Workload 4 on PostgreSQL: a 10-event command (image engine) against one 10-row
/// INSERT, and a 100-event append against one 100-row INSERT.
async fn multi_event(pg: &mut Pg, sizes: &Sizes, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    let (store, raw) = pg.store(10).await?;
    let mut command = Samples::default();
    let mut command_raw = Samples::default();
    let mut append = Samples::default();
    let mut append_raw = Samples::default();
    for rep in 0..sizes.reps {
        let mut conn = store.pool().acquire().await?;
        let ids = account_ids(&format!("w4-raw-{rep}"), sizes.w4_streams);
        let start = Instant::now();
        for i in 0..sizes.w4_commands {
            let round = (i / ids.len()) as i64;
            raw.insert_batch(&mut conn, &ids[i % ids.len()], 2 + round * 10, 10)
                .await?;
        }
        command_raw.push((sizes.w4_commands * 10) as f64 / start.elapsed().as_secs_f64());

        let start = Instant::now();
        for i in 0..sizes.w4_appends {
            raw.insert_batch(&mut conn, &format!("w4-raw-append-{rep}-{i}"), 1, 100)
                .await?;
        }
        append_raw.push((sizes.w4_appends * 100) as f64 / start.elapsed().as_secs_f64());
        drop(conn);

        let engine = Setup::Image.engine(&store);
        let ids = account_ids(&format!("w4-{rep}"), sizes.w4_streams);
        for id in &ids {
            engine.execute(id, nth_command(id, 0)).await?;
        }
        let work: Vec<_> = (0..sizes.w4_commands)
            .map(|i| {
                let id = &ids[i % ids.len()];
                (id, ten_deposits(id))
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
    rows.push(
        Row::new(
            "4 one command of 10 events",
            BACKEND,
            Setup::Image.label(),
            Unit::EventsPerSec,
            command,
        )
        .with_raw(command_raw)
        .with_target(Target::RawRatio(0.8)),
    );
    rows.push(
        Row::new(
            "4 one append of 100 events",
            BACKEND,
            "store.append",
            Unit::EventsPerSec,
            append,
        )
        .with_raw(append_raw)
        .with_target(Target::RawRatio(0.8)),
    );
    Ok(())
}

/// Workload 5 on PostgreSQL: catch-up against a plain `SELECT` of the same rows.
async fn catch_up_rows(pg: &mut Pg, sizes: &Sizes, rows: &mut Vec<Row>) -> Result<(), BenchError> {
    let (store, _) = pg.store(10).await?;
    fill_for_catch_up(&store, sizes.w5_events).await?;
    // Fresh statistics and visibility map, as a long-running store would have.
    sqlx::query(&format!("VACUUM ANALYZE \"{}\".events", store.schema()))
        .execute(store.pool())
        .await?;
    let mut framework = vec![Samples::default(); sizes.w5_batches.len()];
    let mut baseline = Samples::default();
    for _ in 0..sizes.reps {
        let start = Instant::now();
        let read = raw::select_all(store.pool(), &store).await?;
        baseline.push(read as f64 / start.elapsed().as_secs_f64());

        for (&batch, samples) in sizes.w5_batches.iter().zip(&mut framework) {
            let start = Instant::now();
            let read = catch_up(&store, batch).await?;
            if read != sizes.w5_events {
                return Err(BenchError::Check(format!(
                    "catch-up read {read} events, expected {}",
                    sizes.w5_events
                )));
            }
            samples.push(read as f64 / start.elapsed().as_secs_f64());
        }
    }
    for (&batch, samples) in sizes.w5_batches.iter().zip(framework) {
        rows.push(
            Row::new(
                sizes.w5_label(),
                BACKEND,
                format!("subscription/{batch}"),
                Unit::EventsPerSec,
                samples,
            )
            .with_raw(baseline.clone())
            .with_target(Target::RawRatio(0.7)),
        );
    }
    Ok(())
}
