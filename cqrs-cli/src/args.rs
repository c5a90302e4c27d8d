//! The command line, as clap parses it.

use clap::{Args, Parser, Subcommand};

/// What an operator asks of an event store on PostgreSQL: its health, its streams, its
/// subscriptions and their dead letters.
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
    /// tables.
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
    /// The subscriptions that saved a checkpoint in this store.
    #[command(subcommand)]
    Subscriptions(SubscriptionsCommand),
    /// The events subscriptions set aside.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(DeadLettersCommand),
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
    /// Each saved checkpoint, its position, how many events of the log come after it,
    /// and its dead letters.
    List,
}

/// `cqrs dead-letters ...`.
#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// A subscription's dead letters, with their errors.
    List {
        /// The subscription's checkpoint name (`name@vVERSION`).
        subscription: String,
        /// The discarded ones instead, with their reasons.
        #[arg(long)]
        discarded: bool,
    },
    /// Sets a dead letter aside for good, with a reason that is kept.
    Discard {
        /// The subscription's checkpoint name (`name@vVERSION`).
        subscription: String,
        /// The event's id.
        event_id: uuid::Uuid,
        /// Why (kept with the letter).
        #[arg(long)]
        reason: String,
    },
}
