//! `subscriptions list`, `dead-letters list|discard`: what the subscriptions keep here.

use cqrs_core::{
    CheckpointStore, DeadLetter, EventFilter, EventLog, HealthReport, SubscriptionName,
};
use cqrs_postgres::PgStore;
use serde_json::json;

use crate::error::CliError;
use crate::output::Output;

/// Counting the events after a checkpoint stops here (the figure then reads "≥").
const COUNT_LIMIT: u64 = 1_000_000;

/// `cqrs subscriptions list`. The events after each checkpoint are counted over the whole
/// log: the store does not know a subscription's filter, so a subscription that reads
/// some stream types only is behind by at most that many.
pub async fn list(store: &PgStore, report: &HealthReport) -> Result<Output, CliError> {
    let checkpoints = store.checkpoints().await?;
    let mut json_rows = Vec::new();
    let mut rows = Vec::new();
    for checkpoint in &checkpoints {
        let after = store
            .count_after(checkpoint.position, &EventFilter::all(), COUNT_LIMIT)
            .await?;
        let parked = report
            .parked
            .iter()
            .find(|p| p.subscription == checkpoint.name.as_str())
            .map_or(0, |p| p.letters);
        json_rows.push(json!({
            "name": checkpoint.name.as_str(),
            "position": checkpoint.position.to_string(),
            "saved_at": checkpoint.saved_at.to_rfc3339(),
            "events_after": after,
            "events_after_capped": after >= COUNT_LIMIT,
            "dead_letters": parked,
        }));
        let after = if after >= COUNT_LIMIT {
            format!("≥{after}")
        } else {
            after.to_string()
        };
        rows.push(vec![
            checkpoint.name.to_string(),
            checkpoint.position.to_string(),
            after,
            parked.to_string(),
            checkpoint.saved_at.to_rfc3339(),
        ]);
    }
    Ok(Output {
        json: json!({ "subscriptions": json_rows }),
        headers: vec!["NAME", "POSITION", "EVENTS AFTER", "DEAD LETTERS", "SAVED"],
        rows,
        footer: checkpoints
            .is_empty()
            .then(|| "no subscription has saved a checkpoint in this store".to_owned()),
    })
}

/// `cqrs dead-letters list SUBSCRIPTION [--discarded]`.
pub async fn dead_letters(
    store: &PgStore,
    subscription: &str,
    discarded: bool,
) -> Result<Output, CliError> {
    let name = name(subscription)?;
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

/// `cqrs dead-letters discard SUBSCRIPTION EVENT_ID --reason R`.
pub async fn discard(
    store: &PgStore,
    subscription: &str,
    event_id: uuid::Uuid,
    reason: &str,
) -> Result<Output, CliError> {
    let name = name(subscription)?;
    if reason.trim().is_empty() {
        return Err(CliError::Input(
            "an empty --reason: say why the letter is discarded".to_owned(),
        ));
    }
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

fn name(subscription: &str) -> Result<SubscriptionName, CliError> {
    SubscriptionName::new(subscription).map_err(|e| {
        CliError::Input(format!(
            "{e}: give the subscription's checkpoint name, as `cqrs subscriptions list` shows it"
        ))
    })
}

fn letter_json(letter: &DeadLetter) -> serde_json::Value {
    json!({
        "event": letter.event.to_cloudevent(),
        "error": letter.error,
        "parked_at": letter.parked_at.to_rfc3339(),
        "discarded": letter.discarded.as_ref().map(|d| json!({
            "reason": d.reason, "at": d.at.to_rfc3339(),
        })),
    })
}
