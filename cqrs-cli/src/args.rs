//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use cqrs_core::Position;

/// What an operator asks of an event store on PostgreSQL: its health, its streams, its
/// subscriptions and their dead letters.
///
/// A store that holds personal data is read with its key-encryption key, from the
/// environment variable CQRS_KEK (as the application reads it); without it, reading such
/// events fails.
///
/// Exit codes: 0 done (or healthy), 1 failed (or unhealthy), 2 bad usage.
#[derive(Debug, Parser)]
#[command(name = "cqrs", version)]
pub struct Cli {
    /// The database (`postgres://user:password@host:port/database`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// The store's schema.
    #[arg(long, default_value = "public", global = true)]
    pub schema: String,
    /// Prints JSON (one document, described in the guide's Operations chapter) instead of
    /// tables (`tail`: one CloudEvents document per line; `export`: see its --help).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Creates the schema's tables, or brings them to this build's version.
    Migrate,
    /// Checks the server (version, the store's start-up checks) and the schema.
    Check,
    /// The store's health report; exits with 1 when it cannot serve.
    Health,
    /// The commands that read the schema's tables.
    #[command(flatten)]
    Read(ReadCommand),
}

/// The commands that read the schema's tables (checked to be fit to serve first).
#[derive(Debug, Subcommand)]
pub enum ReadCommand {
    /// The streams the store holds.
    #[command(subcommand)]
    Streams(StreamsCommand),
    /// One stream's last events.
    Stream(StreamShow),
    /// The events of one request, across streams, by correlation id.
    Events(EventsArgs),
    /// The subscriptions that ran against this store.
    #[command(subcommand)]
    Subscriptions(SubscriptionsCommand),
    /// One subscription: how it stands, and requests to it (reset, rebuild).
    #[command(subcommand)]
    Subscription(SubscriptionCommand),
    /// The events subscriptions set aside.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLettersCommand),
    /// The log's last events, oldest first; with --follow, each new one as it is
    /// appended, until interrupted.
    Tail(TailArgs),
    /// Writes one stream, or a range of the log, as CloudEvents JSON lines.
    ///
    /// The events go to stdout, or to --output. With --json and --output, stdout gets one
    /// summary document, `{"exported": N, "output": FILE, "last_position": P}`; without
    /// --output, stdout is the events' JSON lines (and, with --json, a failure ends them
    /// with an `{"error": ...}` document, as for every command). A progress bar and a
    /// summary line are drawn on stderr when it is a terminal, never otherwise.
    Export(ExportArgs),
}

/// Which events `tail` and `export` take, by stream type and event type.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only events of streams of this type (repeat for several).
    #[arg(long = "type", value_name = "STREAM_TYPE")]
    pub stream_types: Vec<String>,
    /// Only events of this type (repeat for several).
    #[arg(long = "event-type", value_name = "EVENT_TYPE")]
    pub event_types: Vec<String>,
}

/// `cqrs tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Keeps printing each new matching event as it is appended, until Ctrl-C or SIGTERM
    /// (which exit with 0).
    #[arg(long)]
    pub follow: bool,
    /// Which events.
    #[command(flatten)]
    pub filter: FilterArgs,
    /// How many of the last matching events to print first.
    #[arg(long, default_value_t = 20)]
    pub last: usize,
}

/// `cqrs export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Writes CloudEvents 1.0 JSON documents, one per line (JSON lines). The only format
    /// for now, and required so that another can be added without changing what a script
    /// gets.
    #[arg(long, required = true)]
    pub cloudevents: bool,
    /// One stream's events, in version order, instead of a range of the log.
    #[arg(
        long,
        num_args = 2,
        value_names = ["TYPE", "ID"],
        conflicts_with_all = ["from", "to", "stream_types"]
    )]
    pub stream: Option<Vec<String>>,
    /// The range starts after this position (`COMMIT.SEQUENCE`, excluded); by default at
    /// the log's start.
    #[arg(long, value_name = "POSITION", value_parser = clap::value_parser!(Position))]
    pub from: Option<Position>,
    /// The range ends at this position (`COMMIT.SEQUENCE`, included); by default at the
    /// read horizon when the export starts (what is appended meanwhile is left out).
    #[arg(long, value_name = "POSITION", value_parser = clap::value_parser!(Position))]
    pub to: Option<Position>,
    /// Which events (`--type` only for a range: a stream has one type).
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Writes the events to this file (created, or emptied first) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `cqrs streams ...`.
#[derive(Debug, Subcommand)]
pub enum StreamsCommand {
    /// Streams in type then id order, with their last version.
    List(StreamsList),
    /// Each stream type with its count of streams and events.
    Types,
}

/// `cqrs streams list`.
#[derive(Debug, Args)]
pub struct StreamsList {
    /// Only streams of this type.
    #[arg(long = "type")]
    pub stream_type: Option<String>,
    /// The page after this stream (`TYPE/ID`, the last one of the previous page).
    #[arg(long)]
    pub after: Option<String>,
    /// The most streams to list.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

/// `cqrs stream show`.
#[derive(Debug, Args)]
pub struct StreamShow {
    /// `show`.
    #[command(subcommand)]
    pub command: StreamCommand,
}

/// `cqrs stream ...`.
#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// The stream's last events, oldest first.
    Show {
        /// The stream type.
        stream_type: String,
        /// The stream id.
        id: String,
        /// How many of its last events.
        #[arg(long, default_value_t = 20)]
        last: usize,
    },
}

/// `cqrs events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The correlation id (a UUID) of the request.
    #[arg(long)]
    pub correlation: uuid::Uuid,
    /// The most events to print.
    #[arg(long, default_value_t = 1_000)]
    pub limit: usize,
}

/// `cqrs subscriptions ...`.
#[derive(Debug, Subcommand)]
pub enum SubscriptionsCommand {
    /// Each subscription (per version): its state, checkpoint, events behind, dead
    /// letters and lease holder.
    List,
}

/// How long a command waits for the running subscription to apply its request.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Seconds to wait for the running subscription to apply the request (it does so
    /// between two batches); the request stays queued if it does not.
    #[arg(long = "wait", value_name = "SECONDS", default_value_t = 30)]
    pub seconds: u64,
}

/// `cqrs subscription ...`. SUBSCRIPTION is a name (its highest version here) or a
/// checkpoint (`name@vVERSION`), as `subscriptions list` shows it.
#[derive(Debug, Subcommand)]
pub enum SubscriptionCommand {
    /// Its state, checkpoint, events behind, horizon lag, lease holder, filter, dead
    /// letters and pending requests.
    Show {
        /// The subscription.
        subscription: String,
    },
    /// Asks it to empty its read model and replay the log; safe while the application
    /// runs (the lease holder does it between two batches).
    Rebuild {
        /// The subscription.
        subscription: String,
        /// After the reset, follow the replay until it has caught up (a progress bar on a
        /// terminal).
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Asks it to move its checkpoint without touching its read model: forward skips
    /// events, backward delivers them again.
    Reset {
        /// The subscription.
        subscription: String,
        /// The position (`COMMIT.SEQUENCE`, as listed) or `now` (the head of the log).
        #[arg(long)]
        to: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

/// `cqrs dead-letters ...`.
#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// A subscription's dead letters, with their errors.
    List {
        /// The subscription (its name, or its checkpoint `name@vVERSION`).
        subscription: String,
        /// The discarded ones instead, with their reasons.
        #[arg(long)]
        discarded: bool,
    },
    /// One dead letter whole: its event (with its data), error and times.
    Show {
        /// The subscription.
        subscription: String,
        /// The event's id.
        event_id: uuid::Uuid,
    },
    /// Asks the running subscription to hand the event to its handler again (after the
    /// fix): on success it leaves the dead letters; exits with 1 if it fails again.
    Retry {
        /// The subscription.
        subscription: String,
        /// The event's id.
        event_id: uuid::Uuid,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// The same for every parked event of the subscription; exits with 1 if any fails
    /// again.
    RetryAll {
        /// The subscription.
        subscription: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Sets a dead letter aside for good, with a reason that is kept.
    Discard {
        /// The subscription.
        subscription: String,
        /// The event's id.
        event_id: uuid::Uuid,
        /// Why (kept with the letter).
        #[arg(long)]
        reason: String,
    },
}
