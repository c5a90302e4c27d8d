//! Retry and snapshot policies.

use std::time::Duration;

/// How often the engine retries a command whose append lost a race.
///
/// Each retry reloads the aggregate and runs the handler again on the new state, so the
/// decision is always made on what is really stored. Between attempts the engine sleeps a
/// random time up to `base_delay * 2^attempt`, so that writers that collided do not
/// collide again in lock-step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; at least 1.
    pub max_attempts: u32,
    /// The scale of the random pause between attempts.
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, pauses from 1 ms.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(1),
        }
    }
}

impl RetryPolicy {
    /// No retry: a conflict is returned at once.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            base_delay: Duration::ZERO,
        }
    }

    /// The pause before attempt `attempt + 1` (attempt counts from 1).
    pub(crate) fn pause(&self, attempt: u32) -> Duration {
        let ceiling = self.base_delay.saturating_mul(1 << attempt.min(16));
        // Jitter from the random half of a v4 UUID: no extra dependency for one number.
        let random = uuid::Uuid::new_v4().as_u128() as u64;
        let nanos = ceiling.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(if nanos == 0 { 0 } else { random % nanos })
    }
}

/// When the engine saves a snapshot of an aggregate's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotPolicy {
    /// Never: every load replays the whole stream.
    Never,
    /// Each time the stream's version crosses a multiple of this many events. Loading
    /// then reads at most this many events after the snapshot.
    EveryEvents(u64),
}

impl SnapshotPolicy {
    /// Whether a commit that moved the stream from `before` to `after` calls for one.
    pub(crate) fn is_due(&self, before: u64, after: u64) -> bool {
        match *self {
            SnapshotPolicy::Never => false,
            SnapshotPolicy::EveryEvents(0) => false,
            SnapshotPolicy::EveryEvents(n) => before / n != after / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_is_due_when_a_multiple_is_crossed() {
        let every = SnapshotPolicy::EveryEvents(10);
        assert!(!every.is_due(0, 9));
        assert!(every.is_due(9, 10));
        assert!(every.is_due(8, 12));
        assert!(!every.is_due(10, 19));
        assert!(!SnapshotPolicy::Never.is_due(0, 100));
        assert!(!SnapshotPolicy::EveryEvents(0).is_due(0, 100));
    }

    #[test]
    fn pauses_stay_under_the_ceiling() {
        let policy = RetryPolicy::default();
        for attempt in 1..5 {
            assert!(policy.pause(attempt) < policy.base_delay * (1 << attempt));
        }
        assert_eq!(RetryPolicy::never().pause(3), Duration::ZERO);
    }
}
