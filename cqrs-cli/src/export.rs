//! `export --cloudevents`: one stream, or a range of the log, as CloudEvents JSON lines.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use cqrs_core::{EventFilter, EventLog, Position, StoredEvent, StreamId, StreamStore};
use cqrs_postgres::PgStore;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use serde_json::json;

use crate::args::ExportArgs;
use crate::error::CliError;
use crate::output::Output;
use crate::tail::event_filter;

/// The most events one read asks for.
const PAGE: usize = 1_000;

/// Counting a range's events for the progress bar stops here; past it the bar shows the
/// count and rate without a total (and so without an ETA).
const COUNT_LIMIT: u64 = 10_000_000;

/// `cqrs export --cloudevents (--stream TYPE ID | [--from P] [--to P]) [--output FILE]`.
///
/// The events are written as they are read. What is left to print is the `--json` summary
/// when the events went to a file; when they go to stdout, stdout is theirs alone.
pub async fn export(
    store: &PgStore,
    args: &ExportArgs,
    json: bool,
) -> Result<Option<Output>, CliError> {
    let filter = event_filter(&args.filter)?;
    let mut source = match args.stream.as_deref() {
        Some([stream_type, id]) => Source::Stream {
            stream: StreamId::new(stream_type, id).map_err(|e| {
                CliError::Input(format!("{e}: give the stream's type and id as stored"))
            })?,
            next_version: 1,
            done: false,
        },
        // clap takes exactly two values after --stream.
        Some(_) => {
            return Err(CliError::Input(
                "--stream takes two values: give the stream's TYPE and ID".to_owned(),
            ))
        }
        None => Source::range(store, args.from, args.to).await?,
    };
    let mut sink = Sink::open(args.output.as_deref())?;
    // On stderr, and only on a terminal, so that no script ever reads bar text; not over
    // events going to that same terminal either.
    let stderr_seen = io::stderr().is_terminal();
    let bar = if stderr_seen && (args.output.is_some() || !io::stdout().is_terminal()) {
        progress_bar(source.total(store, &filter).await?)
    } else {
        ProgressBar::hidden()
    };
    let mut exported = Exported::default();
    let copied = copy(store, &mut source, &filter, &mut sink, &bar, &mut exported).await;
    bar.finish_and_clear();
    match copied {
        Ok(()) => sink.flush(exported.count)?,
        Err(error) => return Err(sink.partial(error, exported.count)),
    }
    let summary = format!("exported {} events to {}", exported.count, sink.name);
    if stderr_seen {
        eprintln!("{summary}");
    }
    Ok((json && args.output.is_some()).then(|| {
        Output::message(
            json!({
                "exported": exported.count,
                "output": sink.name,
                "last_position": exported.last.map(|p| p.to_string()),
            }),
            summary,
        )
    }))
}

/// Writes every event of `source` to `sink`, counting them in `exported`.
async fn copy(
    store: &PgStore,
    source: &mut Source,
    filter: &EventFilter,
    sink: &mut Sink,
    bar: &ProgressBar,
    exported: &mut Exported,
) -> Result<(), CliError> {
    loop {
        let page = source.next_page(store, filter).await?;
        if page.is_empty() {
            return Ok(());
        }
        for event in &page {
            sink.write(event, exported.count)?;
            exported.count += 1;
            exported.last = Some(event.position);
            bar.inc(1);
        }
    }
}

/// What has been written.
#[derive(Default)]
struct Exported {
    /// How many events.
    count: u64,
    /// The position of the last one.
    last: Option<Position>,
}

/// Where the events come from: one stream, or a range of the log.
enum Source {
    /// A stream's events in version order, from `next_version` on.
    Stream {
        /// The stream.
        stream: StreamId,
        /// The version the next read starts at.
        next_version: u64,
        /// Whether the stream has been read to its end.
        done: bool,
    },
    /// The log's events after `after`, up to `to` included.
    Range {
        /// The position the next read starts after.
        after: Position,
        /// The last position of the range.
        to: Position,
        /// Whether the range has been read to its end.
        done: bool,
    },
}

impl Source {
    /// The range after `from` (default: the log's start) up to `to` (default: the read
    /// horizon now, so that what is appended meanwhile is left for the next export).
    async fn range(
        store: &PgStore,
        from: Option<Position>,
        to: Option<Position>,
    ) -> Result<Self, CliError> {
        let after = from.unwrap_or(Position::START);
        if let Some(to) = to.filter(|&to| to < after) {
            return Err(CliError::Input(format!(
                "--to {to} comes before --from {after}: give a --to at or after --from"
            )));
        }
        let to = match to {
            Some(to) => to,
            None => store.read_horizon().await?,
        };
        Ok(Self::Range {
            after,
            to,
            done: false,
        })
    }

    /// How many events there are to export, for the bar: `None` when not known.
    async fn total(&self, store: &PgStore, filter: &EventFilter) -> Result<Option<u64>, CliError> {
        match self {
            // Versions run from 1 without gaps: the last one is the count (a bound, when
            // --event-type leaves some out).
            Self::Stream { stream, .. } => Ok(Some(
                store
                    .read_stream_backwards(stream, u64::MAX, 1)
                    .await?
                    .first()
                    .map_or(0, |event| event.stream_version),
            )),
            Self::Range { after, to, .. } => {
                let from_start = store.count_after(*after, filter, COUNT_LIMIT).await?;
                if from_start >= COUNT_LIMIT {
                    return Ok(None);
                }
                // What follows `after` less what follows `to`: counts are subtracted,
                // never positions.
                let past_end = store.count_after(*to, filter, COUNT_LIMIT).await?;
                Ok(Some(from_start.saturating_sub(past_end)))
            }
        }
    }

    /// The next events that pass `filter`; empty at the end.
    async fn next_page(
        &mut self,
        store: &PgStore,
        filter: &EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, CliError> {
        match self {
            Self::Stream {
                stream,
                next_version,
                done,
            } => {
                // A page may hold no event that passes the filter: read on until one does.
                while !*done {
                    let batch = store.read_stream(stream, *next_version, PAGE).await?;
                    let Some(last) = batch.last() else {
                        *done = true;
                        break;
                    };
                    *next_version = last.stream_version + 1;
                    let page: Vec<_> = batch
                        .into_iter()
                        .filter(|e| filter.accepts(e.stream.stream_type(), &e.event_type))
                        .collect();
                    if !page.is_empty() {
                        return Ok(page);
                    }
                }
                Ok(Vec::new())
            }
            Self::Range { after, to, done } => {
                if *done || *after >= *to {
                    return Ok(Vec::new());
                }
                let mut page = store.read_all(*after, PAGE, filter).await?;
                if let Some(last) = page.last() {
                    *after = last.position;
                }
                // The end is an event past --to, or a read that finds nothing (not a short
                // page: a store may end a page early before an event it cannot read, and
                // the next read then fails naming it).
                let before_end = page.partition_point(|e| e.position <= *to);
                if before_end < page.len() || page.is_empty() {
                    page.truncate(before_end);
                    *done = true;
                }
                Ok(page)
            }
        }
    }
}

/// Where the JSON lines go: stdout or a file, buffered either way.
struct Sink {
    /// The buffered writer.
    out: Box<dyn Write>,
    /// `stdout`, or the file's path, for messages.
    name: String,
    /// Whether it is a file (which keeps what was written when an export fails).
    file: bool,
}

impl Sink {
    /// Stdout, or the file at `path`, created or emptied.
    fn open(path: Option<&Path>) -> Result<Self, CliError> {
        let Some(path) = path else {
            return Ok(Self {
                out: Box::new(BufWriter::new(io::stdout())),
                name: "stdout".to_owned(),
                file: false,
            });
        };
        let file = File::create(path).map_err(|e| {
            CliError::Write(format!(
                "cannot create {} ({e}): give --output the path of a file in a directory that exists and that you may write to",
                path.display()
            ))
        })?;
        Ok(Self {
            out: Box::new(BufWriter::new(file)),
            name: path.display().to_string(),
            file: true,
        })
    }

    /// Writes one event as one line; `written` events came before it.
    fn write(&mut self, event: &StoredEvent, written: u64) -> Result<(), CliError> {
        let line = event.to_cloudevent().to_string();
        writeln!(self.out, "{line}").map_err(|e| self.failed(&e, written))
    }

    /// Flushes what is buffered, after `written` events.
    fn flush(&mut self, written: u64) -> Result<(), CliError> {
        self.out.flush().map_err(|e| self.failed(&e, written))
    }

    /// A write that failed, as one sentence that says what is left where.
    fn failed(&self, error: &io::Error, written: u64) -> CliError {
        CliError::Write(if self.file {
            format!(
                "cannot write to {} after {written} events ({error}): they stay there; free some space or give another --output, then export again",
                self.name
            )
        } else {
            format!(
                "cannot write to stdout after {written} events ({error}): check that its reader reads to the end, then export again"
            )
        })
    }

    /// A read that failed after `written` events: said as it is, with what the file
    /// holds (it is kept, never removed behind the operator's back).
    fn partial(&mut self, error: CliError, written: u64) -> CliError {
        if !self.file {
            return error;
        }
        if let Err(e) = self.out.flush() {
            return self.failed(&e, written);
        }
        CliError::Write(format!(
            "{error}; {} holds the first {written} events only",
            self.name
        ))
    }
}

/// A bar on stderr with the count, the rate and, with a total, the ETA.
fn progress_bar(total: Option<u64>) -> ProgressBar {
    let (bar, template) = match total {
        Some(total) => (
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
            "{wide_bar} {human_pos}/{human_len} events, {rate}, ETA {eta}",
        ),
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{spinner} {human_pos} events, {rate}",
        ),
    };
    // The templates are constants: a refusal is a bug in them, and the default bar is a
    // fine fallback.
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        // Whole events a second: `{per_sec}` shows four decimals.
        .with_key(
            "rate",
            |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{:.0}/s", state.per_sec());
            },
        );
    bar.with_style(style)
}
