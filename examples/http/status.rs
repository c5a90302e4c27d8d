//! `GET /status`: can this instance serve? 200 with the details, or 503 with the reasons.
//!
//! It asks the store for its health report (`StoreHealth::health`: a round trip, the
//! schema's migration, the horizon's lag, dead letters) and checks the read model's
//! subscription: its state, and its lag (events stored after its checkpoint). Any of
//! these makes it 503: the store is unreachable within [`STORE_WAIT`] or reports a
//! problem (a schema this build does not expect), the subscription is not delivering
//! (starting, standing by, rebuilding, retrying, stopped or failed), or it lags by more
//! than [`MAX_LAG`] events. Dead letters and the horizon's lag are shown, not judged.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use cqrs_core::subscription::{SubscriptionState, SubscriptionStatus};
use cqrs_core::HealthReport;
use serde_json::{json, Value};

use crate::service::AppState;

/// The most events the read model may be behind and still be called healthy.
pub const MAX_LAG: u64 = 1_000;

/// How long the store has to answer (a pool may wait longer for a connection).
pub const STORE_WAIT: Duration = Duration::from_secs(2);

/// `GET /status`.
pub async fn status(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    let store = app.health.health(STORE_WAIT).await;
    let feed = app.feed.status();
    // Counting needs the store: when it is down, that is already said.
    let lag = if store.reachable {
        match tokio::time::timeout(STORE_WAIT, app.feed.lag()).await {
            Ok(Ok(lag)) => Ok(lag),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {STORE_WAIT:?}")),
        }
    } else {
        Err("not counted: the store is unreachable".to_owned())
    };
    let reasons = assess(&store, &feed, &lag, MAX_LAG);
    let code = if reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let parked: Vec<Value> = store
        .parked
        .iter()
        .map(|p| json!({ "subscription": p.subscription, "letters": p.letters }))
        .collect();
    let body = json!({
        "status": if reasons.is_empty() { "ok" } else { "unavailable" },
        "reasons": reasons,
        "store": {
            "reachable": store.reachable,
            "round_trip_us": store.round_trip.map(|t| t.as_micros() as u64),
            "schema_version": store.schema_version,
            "expected_schema_version": store.expected_schema_version,
            "horizon_lag": store.horizon_lag,
            "parked": parked,
            "failed": store.failed.iter().map(|r| r.checkpoint.as_str()).collect::<Vec<_>>(),
            "problems": store.problems,
        },
        "subscription": {
            "name": feed.name,
            "state": state_name(feed.state),
            "position": feed.position.map(|p| p.to_string()),
            "lag": lag.as_ref().ok(),
            "max_lag": MAX_LAG,
            "delivered": feed.delivered,
            "last_error": feed.last_error,
        },
    });
    (code, Json(body))
}

/// Why the service cannot serve; empty when it can.
fn assess(
    store: &HealthReport,
    feed: &SubscriptionStatus,
    lag: &Result<u64, String>,
    max_lag: u64,
) -> Vec<String> {
    let mut reasons: Vec<String> = store
        .problems
        .iter()
        .map(|problem| {
            if store.reachable {
                format!("the store cannot serve: {problem}")
            } else {
                format!("the store is unreachable: {problem}")
            }
        })
        .collect();
    let last_error = feed.last_error.as_deref().unwrap_or("none recorded");
    let not_delivering = match feed.state {
        SubscriptionState::Live | SubscriptionState::CatchingUp => None,
        SubscriptionState::Starting => Some("is starting".to_owned()),
        SubscriptionState::Standby => Some("is standing by for its lease".to_owned()),
        SubscriptionState::Rebuilding => Some("is rebuilding the read model".to_owned()),
        SubscriptionState::Retrying => Some(format!("is retrying after: {last_error}")),
        SubscriptionState::Stopped => Some("has stopped".to_owned()),
        SubscriptionState::Failed => Some(format!("has failed: {last_error}")),
    };
    if let Some(why) = not_delivering {
        reasons.push(format!("the read model's subscription {why}"));
    }
    match lag {
        Ok(lag) if *lag > max_lag => reasons.push(format!(
            "the read model is {lag} events behind (more than {max_lag})"
        )),
        Ok(_) => {}
        Err(error) if store.reachable => {
            reasons.push(format!("the read model's lag is unknown: {error}"))
        }
        Err(_) => {}
    }
    reasons
}

/// A subscription state as the JSON answers spell it.
pub fn state_name(state: SubscriptionState) -> &'static str {
    match state {
        SubscriptionState::Starting => "starting",
        SubscriptionState::Standby => "standby",
        SubscriptionState::Rebuilding => "rebuilding",
        SubscriptionState::CatchingUp => "catching_up",
        SubscriptionState::Live => "live",
        SubscriptionState::Retrying => "retrying",
        SubscriptionState::Stopped => "stopped",
        SubscriptionState::Failed => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_core::Position;

    fn feed(state: SubscriptionState) -> SubscriptionStatus {
        SubscriptionStatus {
            name: "balances".into(),
            version: 1,
            state,
            position: Some(Position::START),
            delivered: 0,
            parked: 0,
            last_error: Some("reading events: store unavailable".into()),
            caught_up_at: None,
        }
    }

    fn reachable() -> HealthReport {
        HealthReport::reachable(std::time::Duration::from_micros(300))
    }

    #[test]
    fn a_live_subscription_within_the_lag_on_a_reachable_store_is_healthy() {
        for state in [SubscriptionState::Live, SubscriptionState::CatchingUp] {
            assert!(assess(&reachable(), &feed(state), &Ok(1_000), 1_000).is_empty());
        }
    }

    #[test]
    fn each_cause_is_a_reason() {
        let live = feed(SubscriptionState::Live);
        let down = HealthReport::unreachable("connection refused");
        let reasons = assess(&down, &live, &Err("not counted".into()), 1_000);
        assert_eq!(reasons.len(), 1, "one cause, one reason: {reasons:?}");
        assert!(reasons[0].contains("store is unreachable: connection refused"));

        let reasons = assess(&reachable(), &live, &Ok(1_001), 1_000);
        assert_eq!(
            reasons,
            ["the read model is 1001 events behind (more than 1000)"]
        );

        let reasons = assess(&reachable(), &live, &Err("timed out".into()), 1_000);
        assert_eq!(reasons, ["the read model's lag is unknown: timed out"]);

        for state in [
            SubscriptionState::Starting,
            SubscriptionState::Standby,
            SubscriptionState::Rebuilding,
            SubscriptionState::Retrying,
            SubscriptionState::Stopped,
            SubscriptionState::Failed,
        ] {
            let reasons = assess(&reachable(), &feed(state), &Ok(0), 1_000);
            assert_eq!(reasons.len(), 1, "{state:?}: {reasons:?}");
            assert!(reasons[0].starts_with("the read model's subscription"));
        }
        let failed = assess(
            &reachable(),
            &feed(SubscriptionState::Failed),
            &Ok(0),
            1_000,
        );
        assert!(failed[0].ends_with("has failed: reading events: store unavailable"));
    }
}
