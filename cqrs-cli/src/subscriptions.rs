//! `subscriptions list`, `subscription show`, `dead-letters list|show|discard`: what the
//! subscriptions keep here, and how each stands.

use cqrs_core::{
    CheckpointStore, DeadLetter, EventFilter, EventLog, HealthReport, LeaseHolder, Position,
    RecordedState, SavedCheckpoint, SubscriptionName, SubscriptionRecord,
};
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
    let (base, version) = split(given.as_str());
    let name = SubscriptionName::new(base)
        .map_err(|e| CliError::Input(format!("{e}: give the subscription's name")))?;
    let mut keys: Vec<SubscriptionName> = store
        .checkpoints()
        .await?
        .into_iter()
        .map(|c| c.name)
        .chain(store.records().await?.into_iter().map(|r| r.checkpoint))
        .filter(|key| split(key.as_str()).0 == base)
        .filter(|key| version.is_none() || key == &given)
        .collect();
    keys.sort_by_key(|key| split(key.as_str()).1);
    let checkpoint = keys.pop();
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

/// A checkpoint key's name and version: `orders@v2` is (`orders`, 2); a key without a
/// version (a relay's) is itself.
pub fn split(key: &str) -> (&str, Option<u32>) {
    key.rsplit_once("@v")
        .and_then(|(name, version)| Some((name, Some(version.parse().ok()?))))
        .unwrap_or((key, None))
}

/// How one subscription stands, from what the store keeps.
struct Status {
    checkpoint: SubscriptionName,
    saved: Option<SavedCheckpoint>,
    record: Option<SubscriptionRecord>,
    holder: Option<LeaseHolder>,
    behind: u64,
    /// Counted with its recorded filter; without one, over the whole log.
    filtered: bool,
    parked: u64,
    pending: usize,
}

impl Status {
    /// What an operator reads first: whether it runs, and whether it keeps up.
    fn state(&self) -> String {
        if self.holder.is_some() {
            return if self.behind == 0 {
                "caught up".to_owned()
            } else {
                "running".to_owned()
            };
        }
        match self.record.as_ref().map(|r| &r.state) {
            Some(RecordedState::Failed { .. }) => "stopped with error".to_owned(),
            Some(RecordedState::Stopped) => "stopped".to_owned(),
            Some(RecordedState::Running) => "not running (its process ended)".to_owned(),
            _ => "not running".to_owned(),
        }
    }

    fn behind_text(&self) -> String {
        let count = if self.behind >= COUNT_LIMIT {
            format!("≥{}", self.behind)
        } else {
            self.behind.to_string()
        };
        if self.filtered {
            count
        } else {
            format!("≤{count} (unfiltered)")
        }
    }

    fn json(&self) -> Value {
        let (name, version) = split(self.checkpoint.as_str());
        let error = match self.record.as_ref().map(|r| &r.state) {
            Some(RecordedState::Failed { error }) => Some(error.clone()),
            _ => None,
        };
        json!({
            "checkpoint": self.checkpoint.as_str(),
            "name": name,
            "version": version,
            "position": self.saved.as_ref().map(|c| c.position.to_string()),
            "saved_at": self.saved.as_ref().map(|c| c.saved_at.to_rfc3339()),
            "state": self.state(),
            "recorded_state": self.record.as_ref().map(|r| r.state.as_str()),
            "recorded_at": self.record.as_ref().map(|r| r.recorded_at.to_rfc3339()),
            "error": error,
            "events_behind": self.behind,
            "events_behind_capped": self.behind >= COUNT_LIMIT,
            "events_behind_filtered": self.filtered,
            "filter": self.record.as_ref().map(|r| filter_json(&r.filter)),
            "lease_holder": self.holder.as_ref().map(|h| json!({
                "holder": h.holder,
                "since": h.since.map(|s| s.to_rfc3339()),
            })),
            "dead_letters": self.parked,
            "pending_requests": self.pending,
        })
    }
}

fn filter_json(filter: &EventFilter) -> Value {
    json!({ "stream_types": filter.stream_types(), "event_types": filter.event_types() })
}

/// The status of checkpoint `key`.
async fn status(
    store: &PgStore,
    key: &SubscriptionName,
    saved: &[SavedCheckpoint],
    records: &[SubscriptionRecord],
    report: &HealthReport,
) -> Result<Status, CliError> {
    let saved = saved.iter().find(|c| &c.name == key).cloned();
    let record = records.iter().find(|r| &r.checkpoint == key).cloned();
    let (base, _) = split(key.as_str());
    let name = SubscriptionName::new(base)
        .map_err(|e| CliError::Input(format!("stored subscription {key}: {e}")))?;
    let position = saved.as_ref().map_or(Position::START, |c| c.position);
    let filter = record.as_ref().map(|r| r.filter.clone());
    let behind = store
        .count_after(
            position,
            filter.as_ref().unwrap_or(&EventFilter::all()),
            COUNT_LIMIT,
        )
        .await?;
    let parked = report
        .parked
        .iter()
        .find(|p| p.subscription == base)
        .map_or(0, |p| p.letters);
    Ok(Status {
        checkpoint: key.clone(),
        holder: store.lease_holder(&name).await?,
        pending: store.requests(&name).await?.len(),
        saved,
        record,
        behind,
        filtered: filter.is_some(),
        parked,
    })
}

/// Every checkpoint key the store knows: saved, or recorded by a runner that has not
/// saved one yet.
fn keys(saved: &[SavedCheckpoint], records: &[SubscriptionRecord]) -> Vec<SubscriptionName> {
    let mut keys: Vec<_> = saved
        .iter()
        .map(|c| c.name.clone())
        .chain(records.iter().map(|r| r.checkpoint.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// `cqrs subscriptions list`.
pub async fn list(store: &PgStore, report: &HealthReport) -> Result<Output, CliError> {
    let saved = store.checkpoints().await?;
    let records = store.records().await?;
    let mut statuses = Vec::new();
    for key in keys(&saved, &records) {
        statuses.push(status(store, &key, &saved, &records, report).await?);
    }
    let rows = statuses
        .iter()
        .map(|s| {
            vec![
                s.checkpoint.to_string(),
                s.state(),
                s.saved
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |c| c.position.to_string()),
                s.behind_text(),
                s.parked.to_string(),
                s.holder
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |h| h.holder.clone()),
            ]
        })
        .collect();
    Ok(Output {
        json: json!({
            "subscriptions": statuses.iter().map(Status::json).collect::<Vec<_>>(),
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
        footer: statuses
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
    let saved = store.checkpoints().await?;
    let records = store.records().await?;
    let status = status(store, key, &saved, &records, report).await?;
    let mut json = status.json();
    json["horizon_lag"] = json!(report.horizon_lag);
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
    let mut rows = vec![
        vec!["checkpoint".to_owned(), key.to_string()],
        vec!["state".to_owned(), status.state()],
        vec![
            "position".to_owned(),
            or_dash(
                status
                    .saved
                    .as_ref()
                    .map(|c| format!("{} (saved {})", c.position, c.saved_at.to_rfc3339())),
            ),
        ],
        vec!["events behind".to_owned(), status.behind_text()],
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
            or_dash(status.holder.as_ref().map(|h| match h.since {
                Some(since) => format!("{} since {}", h.holder, since.to_rfc3339()),
                None => h.holder.clone(),
            })),
        ],
        vec!["dead letters".to_owned(), status.parked.to_string()],
        vec!["pending requests".to_owned(), status.pending.to_string()],
    ];
    if let Some(record) = &status.record {
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
