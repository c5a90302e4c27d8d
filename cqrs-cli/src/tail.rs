//! `tail [--follow]`: the log's last events, then each new one as it is appended.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use cqrs_core::{EventFilter, EventLog, Position, StoredEvent};
use cqrs_postgres::PgStore;

use crate::args::{FilterArgs, TailArgs};
use crate::error::CliError;

/// The most events one read asks for.
const PAGE: usize = 1_000;

/// How long the follower waits for new events before it waits again: only a bound on one
/// store call, since Ctrl-C ends the wait at any time.
const WAIT: Duration = Duration::from_secs(10);

/// `cqrs tail [--follow] [--type T]... [--event-type E]... [--last N]`.
pub async fn tail(store: &PgStore, args: &TailArgs, json: bool) -> Result<(), CliError> {
    let filter = event_filter(&args.filter)?;
    let mut out = Printer::new(json);
    if !out.header()? {
        return Ok(());
    }
    if !args.follow {
        let reader_left = print_last(store, &filter, args.last, &mut out)
            .await?
            .is_none();
        if !reader_left && out.printed == 0 && args.last > 0 && !json {
            out.line("no event in the log matches")?;
        }
        return Ok(());
    }
    // The whole command races the signals: lines are written between two awaits, never
    // across one, so ending at an await never cuts a line.
    tokio::select! {
        result = follow(store, &filter, args.last, &mut out) => result,
        () = stopped() => Ok(()),
    }
}

/// The filter of `--type` and `--event-type`; a name the store could never hold (empty,
/// too long) is bad input. `export` takes the same options.
pub fn event_filter(args: &FilterArgs) -> Result<EventFilter, CliError> {
    EventFilter::all()
        .with_stream_types(args.stream_types.iter().cloned())
        .and_then(|filter| filter.with_event_types(args.event_types.iter().cloned()))
        .map_err(|e| {
            CliError::Input(format!(
                "{e}: give --type and --event-type names as stored (`cqrs streams types` lists the stream types)"
            ))
        })
}

/// Prints the last `last` matching events, then each new matching one, until the reader
/// of stdout goes away (or a signal ends the race in [`tail`]).
async fn follow(
    store: &PgStore,
    filter: &EventFilter,
    last: usize,
    out: &mut Printer,
) -> Result<(), CliError> {
    let Some(mut after) = print_last(store, filter, last, out).await? else {
        return Ok(());
    };
    loop {
        // A timeout means nothing new is readable: there is nothing to look at.
        if !store.wait_for_events(after, WAIT).await? {
            continue;
        }
        // Taken before the reads, see `read_forward`.
        let horizon = store.read_horizon().await?;
        let Some(end) = read_forward(store, after, filter, |event| out.event(event)).await? else {
            return Ok(());
        };
        after = end.max(horizon);
    }
}

/// Prints the last `last` matching events, oldest first. Returns where a follower goes
/// on from, or `None` when the reader of stdout went away.
///
/// They are read backwards from the read horizon, taken first: every event at or before
/// it is readable, so a follower that goes on after it leaves none behind (see
/// `read_forward`).
async fn print_last(
    store: &PgStore,
    filter: &EventFilter,
    last: usize,
    out: &mut Printer,
) -> Result<Option<Position>, CliError> {
    let horizon = store.read_horizon().await?;
    let events = store.read_all_backwards(horizon, last, filter).await?;
    for event in events.iter().rev() {
        if !out.event(event)? {
            return Ok(None);
        }
    }
    Ok(Some(horizon))
}

/// Hands every readable event after `after` that passes `filter` to `visit`, in order,
/// until a read finds none; returns the last position seen, or `None` when `visit` says
/// stop.
///
/// It stops at an empty read, not at a short page: a store may end a page early before an
/// event it cannot read, and the next read then fails naming it. A caller that took the
/// read horizon before calling may then move on to it: every event at or before it was
/// readable during these reads, so none of them that passes `filter` is left behind.
async fn read_forward(
    store: &PgStore,
    after: Position,
    filter: &EventFilter,
    mut visit: impl FnMut(&Arc<StoredEvent>) -> Result<bool, CliError>,
) -> Result<Option<Position>, CliError> {
    let mut at = after;
    loop {
        let batch = store.read_all(at, PAGE, filter).await?;
        if batch.is_empty() {
            return Ok(Some(at));
        }
        for event in &batch {
            if !visit(event)? {
                return Ok(None);
            }
            at = event.position;
        }
    }
}

/// Resolves on Ctrl-C, or on SIGTERM (what `kill` and service managers send) on Unix.
async fn stopped() {
    let interrupted = async {
        // Without a handler the default one stays, and Ctrl-C ends the process anyway.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut terminate) = signal(SignalKind::terminate()) {
            tokio::select! {
                () = interrupted => {}
                _ = terminate.recv() => {}
            }
            return;
        }
    }
    interrupted.await;
}

/// Writes `tail`'s lines to stdout, each flushed at once so that a follower (or a pipe)
/// sees every event as it arrives.
struct Printer {
    /// CloudEvents JSON lines instead of aligned lines for people.
    json: bool,
    /// How many events were printed.
    printed: u64,
}

impl Printer {
    /// A printer for people, or of JSON lines.
    fn new(json: bool) -> Self {
        Self { json, printed: 0 }
    }

    /// The column headers, for people only; `false` when the reader went away.
    fn header(&mut self) -> Result<bool, CliError> {
        if self.json {
            return Ok(true);
        }
        self.line(&columns(
            "POSITION", "RECORDED", "STREAM", "VERSION", "TYPE", "EVENT ID",
        ))
    }

    /// One event's line; `false` when the reader went away.
    fn event(&mut self, event: &StoredEvent) -> Result<bool, CliError> {
        self.printed += 1;
        let line = if self.json {
            event.to_cloudevent().to_string()
        } else {
            columns(
                &event.position.to_string(),
                // Fixed width (microseconds, as PostgreSQL keeps them), unlike RFC 3339's
                // shortest form, so that the columns stay aligned line after line.
                &event
                    .recorded_at
                    .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                    .to_string(),
                &event.stream.to_string(),
                &event.stream_version.to_string(),
                &event.event_type,
                &event.event_id.to_string(),
            )
        };
        self.line(&line)
    }

    /// Writes and flushes one line; `false` when the reader went away.
    fn line(&mut self, line: &str) -> Result<bool, CliError> {
        let mut stdout = io::stdout().lock();
        match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
            Ok(()) => Ok(true),
            // The reader stopped reading (`cqrs tail | head`): done, as any `tail` is.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(CliError::Write(format!(
                "cannot write to stdout ({e}): check where the output goes"
            ))),
        }
    }
}

/// One line for people: columns of fixed widths, since the lines are printed one by one
/// and the widths of the ones to come are not known (a longer value pushes the rest on).
fn columns(
    position: &str,
    recorded: &str,
    stream: &str,
    version: &str,
    event_type: &str,
    event_id: &str,
) -> String {
    format!(
        "{position:<16}  {recorded:<27}  {stream:<32}  {version:>7}  {event_type:<28}  {event_id}"
    )
}
