//! `subscriptions list`, `subscription show`, `dead-letters list|show|discard`: what the
//! subscriptions keep here, and how each stands.

use cqrs_core::subscription::{overview, overview_one, OverviewState, SubscriptionOverview};
use cqrs_core::{CheckpointStore, DeadLetter, HealthReport, RecordedState, SubscriptionName};
use cqrs_postgres::PgStore;
use serde_json::{json, Value};

use crate::error::CliError;
use crate::output::Output;

/// Counting the events after a checkpoint stops here (the figure then reads "≥").
const COUNT_LIMIT: u64 = 1_000_000;

/// A subscription an operator names: its name (the key of its lease, dead letters and
/// requests) and, when it has one, the checkpoint of the version meant.
pub struct Target {
    /// The subscription's name, without a version.
    pub name: SubscriptionName,
    /// Its checkpoint's key (`name@vVERSION`), if it saved one or recorded itself.
    pub checkpoint: Option<SubscriptionName>,
}

/// The subscription `given` names (`name` or `name@vVERSION`, as `subscriptions list`
/// shows it): a bare name means its highest version here. Unknown when the store has no
/// checkpoint, record or dead letter of it.
pub async fn target(store: &PgStore, given: &str) -> Result<Target, CliError> {
    let given = SubscriptionName::new(given).map_err(|e| {
        CliError::Input(format!(
            "{e}: give the subscription's name, as `cqrs subscriptions list` shows it"
        ))
    })?;
    let (name, version) = given.unversioned();
    let mut keys: Vec<(Option<u32>, SubscriptionName)> = store
        .checkpoints()
        .await?
        .into_iter()
        .map(|c| c.name)
        .chain(store.records().await?.into_iter().map(|r| r.checkpoint))
        .filter_map(|key| {
            let (base, v) = key.unversioned();
            (base == name && (version.is_none() || key == given)).then_some((v, key))
        })
        .collect();
    keys.sort();
    let checkpoint = keys.pop().map(|(_, key)| key);
    let letters =
        !store.parked(&name).await?.is_empty() || !store.discarded(&name).await?.is_empty();
    if checkpoint.is_none() && !letters {
        return Err(CliError::NotFound(format!(
            "no subscription {given} in schema {}: see `cqrs subscriptions list`",
            store.schema()
        )));
    }
    Ok(Target { name, checkpoint })
}

fn behind_text(sub: &SubscriptionOverview) -> String {
    let count = if sub.behind.capped {
        format!("≥{}", sub.behind.events)
    } else {
        sub.behind.events.to_string()
    };
    if sub.behind.filtered {
        count
    } else {
        format!("≤{count} (unfiltered)")
    }
}

/// A subscription as `--json` shows it.
fn overview_json(sub: &SubscriptionOverview) -> Value {
    let error = match sub.state() {
        OverviewState::Failed { error } => Some(error),
        _ => None,
    };
    json!({
        "checkpoint": sub.checkpoint.as_str(),
        "name": sub.name.as_str(),
        "version": sub.version,
        "position": sub.saved.as_ref().map(|c| c.position.to_string()),
        "saved_at": sub.saved.as_ref().map(|c| c.saved_at.to_rfc3339()),
        "state": sub.state().as_str(),
        "recorded_state": sub.record.as_ref().map(|r| r.state.as_str()),
        "recorded_at": sub.record.as_ref().map(|r| r.recorded_at.to_rfc3339()),
        "error": error,
        "events_behind": sub.behind.events,
        "events_behind_capped": sub.behind.capped,
        "events_behind_filtered": sub.behind.filtered,
        "filter": sub.record.as_ref().map(|r| json!({
            "stream_types": r.filter.stream_types(),
            "event_types": r.filter.event_types(),
        })),
        "lease_holder": sub.lease_holder.as_ref().map(|h| json!({
            "holder": h.holder,
            "since": h.since.map(|s| s.to_rfc3339()),
        })),
        "dead_letters": sub.dead_letters,
        "pending_requests": sub.pending_requests,
    })
}

/// `cqrs subscriptions list`.
pub async fn list(store: &PgStore, report: &HealthReport) -> Result<Output, CliError> {
    let subs = overview(store, COUNT_LIMIT).await?;
    let rows = subs
        .iter()
        .map(|s| {
            vec![
                s.checkpoint.to_string(),
                s.state().as_str().to_owned(),
                s.saved
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |c| c.position.to_string()),
                behind_text(s),
                s.dead_letters.to_string(),
                s.lease_holder
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |h| h.holder.clone()),
            ]
        })
        .collect();
    Ok(Output {
        json: json!({
            "subscriptions": subs.iter().map(overview_json).collect::<Vec<_>>(),
            "horizon_lag": report.horizon_lag,
        }),
        headers: vec![
            "CHECKPOINT",
            "STATE",
            "POSITION",
            "BEHIND",
            "DEAD LETTERS",
            "LEASE",
        ],
        rows,
        footer: subs
            .is_empty()
            .then(|| "no subscription has run against this store".to_owned()),
    })
}

/// `cqrs subscription show SUBSCRIPTION`.
pub async fn show(store: &PgStore, given: &str, report: &HealthReport) -> Result<Output, CliError> {
    let target = target(store, given).await?;
    let Some(key) = &target.checkpoint else {
        return Err(CliError::NotFound(format!(
            "{} has dead letters but no checkpoint here: see `cqrs dead-letters list {}`",
            target.name, target.name
        )));
    };
    let sub = overview_one(store, key, COUNT_LIMIT)
        .await?
        .ok_or_else(|| {
            CliError::NotFound(format!("{key} is gone: see `cqrs subscriptions list`"))
        })?;
    let mut json = overview_json(&sub);
    json["horizon_lag"] = json!(report.horizon_lag);
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    let mut rows = vec![
        vec!["checkpoint".to_owned(), key.to_string()],
        vec!["state".to_owned(), sub.state().as_str().to_owned()],
        vec![
            "position".to_owned(),
            or_dash(
                sub.saved
                    .as_ref()
                    .map(|c| format!("{} (saved {})", c.position, c.saved_at.to_rfc3339())),
            ),
        ],
        vec!["events behind".to_owned(), behind_text(&sub)],
        vec![
            "horizon lag".to_owned(),
            or_dash(
                report
                    .horizon_lag
                    .map(|lag| format!("{lag} events held back")),
            ),
        ],
        vec![
            "lease".to_owned(),
            or_dash(sub.lease_holder.as_ref().map(|h| match h.since {
                Some(since) => format!("{} since {}", h.holder, since.to_rfc3339()),
                None => h.holder.clone(),
            })),
        ],
        vec!["dead letters".to_owned(), sub.dead_letters.to_string()],
        vec![
            "pending requests".to_owned(),
            sub.pending_requests.to_string(),
        ],
    ];
    if let Some(record) = &sub.record {
        let filter = |names: &[String]| {
            if names.is_empty() {
                "all".to_owned()
            } else {
                names.join(", ")
            }
        };
        rows.push(vec![
            "stream types".to_owned(),
            filter(record.filter.stream_types()),
        ]);
        rows.push(vec![
            "event types".to_owned(),
            filter(record.filter.event_types()),
        ]);
        let mut last = format!(
            "{} at {}",
            record.state.as_str(),
            record.recorded_at.to_rfc3339()
        );
        if let RecordedState::Failed { error } = &record.state {
            last.push_str(&format!(": {error}"));
        }
        rows.push(vec!["last recorded".to_owned(), last]);
    }
    Ok(Output {
        json,
        headers: vec!["", ""],
        rows,
        footer: None,
    })
}

/// `cqrs dead-letters list SUBSCRIPTION [--discarded]`.
pub async fn dead_letters(
    store: &PgStore,
    subscription: &str,
    discarded: bool,
) -> Result<Output, CliError> {
    let name = target(store, subscription).await?.name;
    let letters = if discarded {
        store.discarded(&name).await?
    } else {
        store.parked(&name).await?
    };
    let json = json!({
        "subscription": name.as_str(),
        "dead_letters": letters.iter().map(letter_json).collect::<Vec<_>>(),
    });
    let rows = letters
        .iter()
        .map(|l| {
            vec![
                l.event.event_id.to_string(),
                l.event.position.to_string(),
                l.event.stream.to_string(),
                l.event.event_type.clone(),
                l.parked_at.to_rfc3339(),
                l.discarded.as_ref().map_or_else(
                    || l.error.clone(),
                    |d| format!("{} (discarded: {})", l.error, d.reason),
                ),
            ]
        })
        .collect();
    Ok(Output {
        json,
        headers: vec!["EVENT ID", "POSITION", "STREAM", "TYPE", "PARKED", "ERROR"],
        rows,
        footer: letters.is_empty().then(|| {
            format!(
                "{name} has no {} dead letters",
                if discarded { "discarded" } else { "parked" }
            )
        }),
    })
}

/// `cqrs dead-letters show SUBSCRIPTION EVENT_ID`: one letter whole, its event's data
/// included.
pub async fn dead_letter(
    store: &PgStore,
    subscription: &str,
    event_id: uuid::Uuid,
) -> Result<Output, CliError> {
    let name = target(store, subscription).await?.name;
    let letter = find_letter(store, &name, event_id, true).await?;
    let event = letter.event.to_cloudevent();
    let pretty = serde_json::to_string_pretty(&event).unwrap_or_else(|_| event.to_string());
    let mut lines = vec![
        format!(
            "event {} of {} (version {}, position {})",
            event_id, letter.event.stream, letter.event.stream_version, letter.event.position
        ),
        format!(
            "type: {} v{}",
            letter.event.event_type, letter.event.event_version
        ),
        format!(
            "parked at {}: {}",
            letter.parked_at.to_rfc3339(),
            letter.error
        ),
    ];
    if let Some(discarded) = &letter.discarded {
        lines.push(format!(
            "discarded at {}: {}",
            discarded.at.to_rfc3339(),
            discarded.reason
        ));
    }
    lines.push(pretty);
    Ok(Output::message(letter_json(&letter), lines.join("\n")))
}

/// The dead letter of `event_id` for `name`: parked, or also discarded when `any`.
pub async fn find_letter(
    store: &PgStore,
    name: &SubscriptionName,
    event_id: uuid::Uuid,
    any: bool,
) -> Result<DeadLetter, CliError> {
    let mut letters = store.parked(name).await?;
    if any {
        letters.extend(store.discarded(name).await?);
    }
    letters
        .into_iter()
        .find(|l| l.event.event_id == event_id)
        .ok_or_else(|| {
            CliError::NotFound(format!(
                "{name} has no parked dead letter of event {event_id}: see `cqrs dead-letters list {name}`"
            ))
        })
}

/// `cqrs dead-letters discard SUBSCRIPTION EVENT_ID --reason R`.
pub async fn discard(
    store: &PgStore,
    subscription: &str,
    event_id: uuid::Uuid,
    reason: &str,
) -> Result<Output, CliError> {
    if reason.trim().is_empty() {
        return Err(CliError::Input(
            "an empty --reason: say why the letter is discarded".to_owned(),
        ));
    }
    let name = target(store, subscription).await?.name;
    if !store.discard(&name, event_id, reason).await? {
        return Err(CliError::NotFound(format!(
            "{name} has no parked dead letter of event {event_id}: see `cqrs dead-letters list {name}`"
        )));
    }
    Ok(Output::message(
        json!({ "subscription": name.as_str(), "event_id": event_id, "discarded": true }),
        format!("discarded the dead letter of event {event_id} for {name}"),
    ))
}

/// A dead letter as `--json` shows it.
pub fn letter_json(letter: &DeadLetter) -> Value {
    json!({
        "event": letter.event.to_cloudevent(),
        "error": letter.error,
        "parked_at": letter.parked_at.to_rfc3339(),
        "discarded": letter.discarded.as_ref().map(|d| json!({
            "reason": d.reason, "at": d.at.to_rfc3339(),
        })),
    })
}
