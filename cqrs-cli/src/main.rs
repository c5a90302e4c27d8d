//! `cqrs`: the operator's command line for an event store on PostgreSQL.
//!
//! `cqrs --help` lists the commands; the guide's Operations chapter shows their output
//! and the shape of `--json`. Exit codes: 0 done (or healthy), 1 failed (or unhealthy),
//! 2 bad usage.

mod args;
mod error;
mod export;
mod output;
mod requests;
mod schema;
mod streams;
mod subscriptions;
mod tail;

use std::process::ExitCode;

use clap::Parser;
use cqrs_core::personal::StaticKek;
use cqrs_core::HealthReport;
use cqrs_postgres::PgStore;

use std::time::Duration;

use args::{
    Cli, Command, DeadLettersCommand, ReadCommand, StreamCommand, StreamsCommand,
    SubscriptionCommand, SubscriptionsCommand,
};
use error::CliError;
use output::Output;

fn main() -> ExitCode {
    // Usage errors and --help exit here, with clap's codes (2 and 0).
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cqrs: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok((output, ok)) => {
            // `tail` and `export` wrote as they went and may leave nothing.
            if let Some(output) = output {
                output.print(cli.json);
            }
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            if cli.json {
                println!("{}", serde_json::json!({ "error": error.to_string() }));
            }
            eprintln!("cqrs: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Where the key-encryption key of a store that holds personal data is read from.
const KEK_VARIABLE: &str = "CQRS_KEK";

/// Runs the command: what is left to print, and whether the exit code is 0.
async fn run(cli: &Cli) -> Result<(Option<Output>, bool), CliError> {
    let url = cli
        .database_url
        .as_deref()
        .filter(|url| !url.is_empty())
        .ok_or(CliError::NoDatabase)?;
    let mut store = PgStore::connect(url).await?.with_schema(&cli.schema)?;
    // Personal data reads with the application's key-encryption key, when given.
    if std::env::var_os(KEK_VARIABLE).is_some_and(|v| !v.is_empty()) {
        let kek = StaticKek::from_env(KEK_VARIABLE).map_err(|e| CliError::Input(e.to_string()))?;
        store = store.with_key_encryption_key(kek);
    }
    let output = match &cli.command {
        Command::Migrate => Some(schema::migrate(&store).await?),
        Command::Check => Some(schema::check(&store).await?),
        Command::Health => {
            let (output, healthy) = schema::health(&store).await;
            return Ok((Some(output), healthy));
        }
        // Every other command reads the schema's tables: a schema that cannot serve
        // (never migrated, another build's) is said as such, once, before any of them.
        Command::Read(command) => {
            let report = schema::fit(&store).await?;
            return read(&store, command, &report, cli.json).await;
        }
    };
    Ok((output, true))
}

/// The commands that read the store, once it is known to be fit: what is left to print
/// (`None` when the command wrote its output itself: `tail` and `export` stream it), and
/// whether the exit code is 0.
async fn read(
    store: &PgStore,
    command: &ReadCommand,
    report: &HealthReport,
    json: bool,
) -> Result<(Option<Output>, bool), CliError> {
    let seconds = |wait: &args::WaitArgs| Duration::from_secs(wait.seconds);
    let output = match command {
        ReadCommand::Streams(StreamsCommand::List(list)) => {
            streams::list(
                store,
                list.stream_type.as_deref(),
                list.after.as_deref(),
                list.limit,
            )
            .await?
        }
        ReadCommand::Streams(StreamsCommand::Types) => streams::types(store).await?,
        ReadCommand::Stream(show) => {
            let StreamCommand::Show {
                stream_type,
                id,
                last,
            } = &show.command;
            streams::show(store, stream_type, id, *last).await?
        }
        ReadCommand::Events(events) => {
            streams::by_correlation(store, events.correlation, events.limit).await?
        }
        ReadCommand::Subscriptions(SubscriptionsCommand::List) => {
            subscriptions::list(store, report).await?
        }
        ReadCommand::Subscription(SubscriptionCommand::Show { subscription }) => {
            subscriptions::show(store, subscription, report).await?
        }
        ReadCommand::Subscription(SubscriptionCommand::Rebuild {
            subscription,
            watch,
            wait,
        }) => requests::rebuild(store, subscription, seconds(wait), *watch).await?,
        ReadCommand::Subscription(SubscriptionCommand::Reset {
            subscription,
            to,
            wait,
        }) => requests::reset(store, subscription, to, seconds(wait)).await?,
        ReadCommand::DeadLetters(DeadLettersCommand::Show {
            subscription,
            event_id,
        }) => subscriptions::dead_letter(store, subscription, *event_id).await?,
        ReadCommand::DeadLetters(DeadLettersCommand::Retry {
            subscription,
            event_id,
            wait,
        }) => {
            let (output, handled) =
                requests::retry(store, subscription, *event_id, seconds(wait)).await?;
            return Ok((Some(output), handled));
        }
        ReadCommand::DeadLetters(DeadLettersCommand::RetryAll { subscription, wait }) => {
            let (output, handled) = requests::retry_all(store, subscription, seconds(wait)).await?;
            return Ok((Some(output), handled));
        }
        ReadCommand::DeadLetters(DeadLettersCommand::List {
            subscription,
            discarded,
        }) => subscriptions::dead_letters(store, subscription, *discarded).await?,
        ReadCommand::DeadLetters(DeadLettersCommand::Discard {
            subscription,
            event_id,
            reason,
        }) => subscriptions::discard(store, subscription, *event_id, reason).await?,
        ReadCommand::Tail(args) => {
            tail::tail(store, args, json).await?;
            return Ok((None, true));
        }
        ReadCommand::Export(args) => return Ok((export::export(store, args, json).await?, true)),
    };
    Ok((Some(output), true))
}
