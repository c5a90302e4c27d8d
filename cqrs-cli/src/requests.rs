//! `subscription reset|rebuild`, `dead-letters retry|retry-all`: requests to a
//! subscription, stored for the process that runs it, and the wait for their effect.
//!
//! The command line never applies them itself: only the process that runs a
//! subscription has its handlers (to hand a dead letter again) and its read model (to
//! empty it), and only the lease holder may move the checkpoint without racing its own
//! deliveries. So a request is stored, the lease holder applies it between two batches,
//! and the command waits for that; a subscription that is not running applies it when it
//! next starts. Dead letters that a bus consumer parked (no subscription of that name
//! here) are retried the same way: the bus consumers of the name claim the request.

use std::io::IsTerminal;
use std::time::Duration;

use cqrs_core::{
    CheckpointStore, DeadLetter, EventFilter, EventLog, PendingRequest, Position,
    SubscriptionRequest,
};
use cqrs_postgres::PgStore;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::error::CliError;
use crate::output::Output;
use crate::subscriptions::{find_letter, target, Target};

/// How often the command looks whether its request was applied.
const POLL: Duration = Duration::from_millis(200);

/// How often `rebuild --watch` looks how far the replay got.
const REPLAY_POLL: Duration = Duration::from_secs(1);

/// Counting what a replay still has to go stops here.
const BEHIND_LIMIT: u64 = 1_000_000;

/// What became of a stored request.
enum Asked {
    /// The running subscription (or a bus consumer) took it; the command waits for its
    /// effect up to the same deadline.
    Taken(PendingRequest, tokio::time::Instant),
    /// No process holds the subscription's lease: it is applied when one starts.
    Queued,
}

/// Stores `request` for `target` and waits up to `wait` for the process that serves it
/// to take it: the subscription's lease holder, or, for a name with dead letters but no
/// subscription here, a bus consumer (which claims retries; it takes nothing else).
async fn ask(
    store: &PgStore,
    target: &Target,
    request: SubscriptionRequest,
    wait: Duration,
) -> Result<Asked, CliError> {
    let name = &target.name;
    let bus = target.checkpoint.is_none();
    let retry = matches!(
        request,
        SubscriptionRequest::RetryDeadLetter(_) | SubscriptionRequest::RetryDeadLetters
    );
    if bus && !retry {
        return Err(CliError::NotFound(format!(
            "{name} has dead letters but no subscription of that name runs against this store \
             (a bus consumer parked them, and its position is the broker's): only its dead \
             letters can be retried"
        )));
    }
    // A bus consumer holds no lease: whether one runs shows only by its taking the request.
    let running = bus || store.lease_holder(name).await?.is_some();
    let pending = store.request(name, request).await?;
    if !running {
        return Ok(Asked::Queued);
    }
    let deadline = tokio::time::Instant::now() + wait;
    while is_pending(store, target, &pending).await? {
        if tokio::time::Instant::now() >= deadline {
            let who = if bus {
                format!(
                    "no bus consumer of {name} took the {} request",
                    request.kind()
                )
            } else {
                format!(
                    "{name} runs but did not apply the {} request (it applies requests between \
                     batches; a long batch or a stuck handler delays it)",
                    request.kind()
                )
            };
            return Err(CliError::Timeout(format!(
                "{who} within {} s; the request stays queued: see `cqrs subscription show {name}`",
                wait.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(Asked::Taken(pending, deadline))
}

async fn is_pending(
    store: &PgStore,
    target: &Target,
    pending: &PendingRequest,
) -> Result<bool, CliError> {
    let left = store.requests(&target.name).await?;
    Ok(left.iter().any(|p| p.id == pending.id))
}

/// The letters among `events` still parked once each was retried for `pending`: gone,
/// or parked again after it was asked for. A subscription completes a request after
/// retrying; a bus consumer claims it first, so its retry may still be under way.
async fn settled(
    store: &PgStore,
    target: &Target,
    pending: &PendingRequest,
    events: &[uuid::Uuid],
    deadline: tokio::time::Instant,
) -> Result<Vec<DeadLetter>, CliError> {
    loop {
        let still: Vec<_> = store
            .parked(&target.name)
            .await?
            .into_iter()
            .filter(|l| events.contains(&l.event.event_id))
            .collect();
        if still.iter().all(|l| l.parked_at >= pending.requested_at)
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(still);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `cqrs subscription reset SUBSCRIPTION --to POSITION|now`.
pub async fn reset(
    store: &PgStore,
    given: &str,
    to: &str,
    wait: Duration,
) -> Result<Output, CliError> {
    let target = target(store, given).await?;
    let head = store.read_horizon().await?;
    let position = match to {
        "now" => head,
        text => text
            .parse::<Position>()
            .map_err(|e| CliError::Input(format!("--to {e}, or `now`")))?,
    };
    // Past the head, the subscription would skip events not yet written, unseen.
    if position > head {
        return Err(CliError::Input(format!(
            "--to {position} is after the head of the log ({head}): give a position from a \
             listing, or `now`"
        )));
    }
    let asked = ask(store, &target, SubscriptionRequest::ResetTo(position), wait).await?;
    let name = &target.name;
    let (applied, line) = match asked {
        Asked::Taken(..) => (true, format!("{name} moved its checkpoint to {position}")),
        Asked::Queued => (
            false,
            format!(
                "{name} is not running: it moves its checkpoint to {position} when it next starts"
            ),
        ),
    };
    Ok(Output::message(
        json!({ "subscription": name.as_str(), "request": "reset", "position": position.to_string(), "applied": applied }),
        line,
    ))
}

/// `cqrs subscription rebuild SUBSCRIPTION [--watch]`: with `watch`, after the reset,
/// follows the replay until it has caught up (a progress bar on a terminal).
pub async fn rebuild(
    store: &PgStore,
    given: &str,
    wait: Duration,
    watch: bool,
) -> Result<Output, CliError> {
    let target = target(store, given).await?;
    let name = &target.name;
    let asked = ask(store, &target, SubscriptionRequest::Rebuild, wait).await?;
    if let Asked::Queued = asked {
        return Ok(Output::message(
            json!({ "subscription": name.as_str(), "request": "rebuild", "applied": false }),
            format!("{name} is not running: it empties its read model and replays the log when it next starts"),
        ));
    }
    let mut line = format!("{name} emptied its read model and is replaying the log");
    let mut caught_up = false;
    if watch {
        replay(store, &target).await?;
        caught_up = true;
        line = format!("{name} rebuilt its read model and has caught up");
    }
    Ok(Output::message(
        json!({ "subscription": name.as_str(), "request": "rebuild", "applied": true, "caught_up": caught_up }),
        line,
    ))
}

/// Follows a replay until no event that the subscription reads is after its checkpoint:
/// a bar with rate and ETA on a terminal's stderr, nothing anywhere else.
///
/// The whole replay is counted once; then, every [`REPLAY_POLL`], what is still behind is
/// counted up to [`BEHIND_LIMIT`] only, so that watching a long rebuild does not make the
/// database count the log again and again (the bar stands still until the replay is
/// within that many events of the end).
async fn replay(store: &PgStore, target: &Target) -> Result<(), CliError> {
    let Some(key) = &target.checkpoint else {
        return Ok(());
    };
    let records = store.records().await?;
    let filter = records
        .into_iter()
        .find(|r| &r.checkpoint == key)
        .map_or_else(EventFilter::all, |r| r.filter);
    let bar = if std::io::stderr().is_terminal() {
        let total = store
            .count_after(Position::START, &filter, u64::MAX)
            .await?;
        let bar = ProgressBar::new(total);
        // A constant template: it parses, or the default bar does.
        let style = ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} events, {per_sec}, ETA {eta}",
        )
        .map_or_else(
            |_| ProgressStyle::default_bar(),
            |s| s.progress_chars("=> "),
        );
        bar.set_style(style);
        bar.set_message(key.to_string());
        bar
    } else {
        ProgressBar::hidden()
    };
    loop {
        let position = store.load_checkpoint(key).await?.unwrap_or(Position::START);
        let behind = store.count_after(position, &filter, BEHIND_LIMIT).await?;
        if let Some(total) = bar.length() {
            bar.set_position(total.saturating_sub(behind));
        }
        if behind == 0 {
            bar.finish_and_clear();
            return Ok(());
        }
        tokio::time::sleep(REPLAY_POLL).await;
    }
}

/// `cqrs dead-letters retry SUBSCRIPTION EVENT_ID`: `false` (exit 1) when the event
/// failed again.
pub async fn retry(
    store: &PgStore,
    given: &str,
    event_id: uuid::Uuid,
    wait: Duration,
) -> Result<(Output, bool), CliError> {
    let target = target(store, given).await?;
    let name = &target.name;
    find_letter(store, name, event_id, false).await?;
    let asked = ask(
        store,
        &target,
        SubscriptionRequest::RetryDeadLetter(event_id),
        wait,
    )
    .await?;
    let Asked::Taken(pending, deadline) = asked else {
        return Ok((
            Output::message(
                json!({ "subscription": name.as_str(), "event_id": event_id, "applied": false, "handled": null }),
                format!("{name} is not running: it hands event {event_id} to its handler again when it next starts"),
            ),
            true,
        ));
    };
    let still = settled(store, &target, &pending, &[event_id], deadline)
        .await?
        .pop();
    let handled = still.is_none();
    let json = json!({
        "subscription": name.as_str(), "event_id": event_id, "applied": true,
        "handled": handled, "error": still.as_ref().map(|l| l.error.clone()),
    });
    let line = match &still {
        None => format!("{name} handled event {event_id}: it left the dead letters"),
        Some(letter) => format!(
            "event {event_id} failed again and stays parked: {}",
            letter.error
        ),
    };
    Ok((Output::message(json, line), handled))
}

/// `cqrs dead-letters retry-all SUBSCRIPTION`: `false` (exit 1) when any failed again.
pub async fn retry_all(
    store: &PgStore,
    given: &str,
    wait: Duration,
) -> Result<(Output, bool), CliError> {
    let target = target(store, given).await?;
    let name = &target.name;
    let before: Vec<_> = store
        .parked(name)
        .await?
        .iter()
        .map(|l| l.event.event_id)
        .collect();
    if before.is_empty() {
        return Ok((
            Output::message(
                json!({ "subscription": name.as_str(), "applied": false, "handled": 0, "failed": [] }),
                format!("{name} has no parked dead letters"),
            ),
            true,
        ));
    }
    let asked = ask(store, &target, SubscriptionRequest::RetryDeadLetters, wait).await?;
    let Asked::Taken(pending, deadline) = asked else {
        return Ok((
            Output::message(
                json!({ "subscription": name.as_str(), "applied": false, "handled": null, "failed": null }),
                format!("{name} is not running: it hands its {} parked events to its handler again when it next starts", before.len()),
            ),
            true,
        ));
    };
    let failed = settled(store, &target, &pending, &before, deadline).await?;
    let handled = before.len() - failed.len();
    let json = json!({
        "subscription": name.as_str(), "applied": true, "handled": handled,
        "failed": failed.iter().map(|l| json!({ "event_id": l.event.event_id, "error": l.error })).collect::<Vec<_>>(),
    });
    let line = format!(
        "{name} handled {handled} of {} parked events{}",
        before.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(
                "; {} failed again and stay parked: see `cqrs dead-letters list {name}`",
                failed.len()
            )
        }
    );
    Ok((Output::message(json, line), failed.is_empty()))
}
