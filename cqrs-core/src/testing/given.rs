//! given / when / then for aggregates: business rules tested without a store.

use std::fmt::Debug;

use crate::{codec, Aggregate, Metadata};

/// A test of one aggregate: given past events, when a command, then events or an error.
///
/// No store is involved: the past events are folded with `apply`, the command is handled,
/// and the outcome is compared. Emitted events are also put through the codec (encode,
/// then decode) so a serialisation mistake fails here rather than in production.
///
/// ```
/// # use cqrs_core::{codec::serde_enum, Aggregate, Command, DomainEvent, EventTypeInfo, PayloadError};
/// # #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// # enum LampEvent { On }
/// # impl DomainEvent for LampEvent {
/// #     const EVENT_TYPES: &'static [EventTypeInfo] = &[EventTypeInfo { name: "On", version: 1 }];
/// #     fn event_type(&self) -> &'static str { "On" }
/// #     fn encode(&self) -> Result<serde_json::Value, cqrs_core::codec::JsonError> { serde_enum::encode(self) }
/// #     fn decode(t: &str, d: &serde_json::Value) -> Result<Self, PayloadError> { serde_enum::decode(t, d) }
/// # }
/// # struct SwitchOn;
/// # impl Command for SwitchOn { fn command_name(&self) -> &'static str { "SwitchOn" } }
/// # #[derive(Debug, PartialEq, thiserror::Error)]
/// # #[error("already on")]
/// # struct AlreadyOn;
/// # #[derive(Default, serde::Serialize, serde::Deserialize)]
/// # struct Lamp { on: bool }
/// # impl Aggregate for Lamp {
/// #     const TYPE: &'static str = "lamp";
/// #     type Command = SwitchOn; type Event = LampEvent; type Error = AlreadyOn; type Services = ();
/// #     async fn handle(&self, _: &SwitchOn, _: &()) -> Result<Vec<LampEvent>, AlreadyOn> {
/// #         if self.on { Err(AlreadyOn) } else { Ok(vec![LampEvent::On]) }
/// #     }
/// #     fn apply(&mut self, _: &LampEvent) { self.on = true }
/// # }
/// use cqrs_core::testing::AggregateTest;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// AggregateTest::<Lamp>::new(())
///     .given_no_events()
///     .when(SwitchOn)
///     .await
///     .then_expect_events(vec![LampEvent::On]);
///
/// AggregateTest::<Lamp>::new(())
///     .given(vec![LampEvent::On])
///     .when(SwitchOn)
///     .await
///     .then_expect_error(AlreadyOn);
/// # });
/// ```
pub struct AggregateTest<A: Aggregate> {
    services: A::Services,
    state: A,
}

impl<A: Aggregate> AggregateTest<A> {
    /// A test with these services (`()` when the aggregate needs none).
    pub fn new(services: A::Services) -> Self {
        Self {
            services,
            state: A::default(),
        }
    }

    /// The aggregate's past: these events, folded in order.
    pub fn given(mut self, events: impl IntoIterator<Item = A::Event>) -> Self {
        for event in events {
            self.state.apply(&event);
        }
        self
    }

    /// An aggregate with no past.
    pub fn given_no_events(self) -> Self {
        self
    }

    /// Handles `command` against the given state.
    pub async fn when(self, command: A::Command) -> Outcome<A> {
        let result = self.state.handle(&command, &self.services).await;
        Outcome {
            state: self.state,
            result,
        }
    }
}

/// What a command did in an [`AggregateTest`].
pub struct Outcome<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Outcome<A> {
    /// Asserts that the command emitted exactly `expected`, and that each event survives
    /// the codec. Returns the state after applying them, for further checks.
    #[track_caller]
    pub fn then_expect_events(self, expected: Vec<A::Event>) -> A
    where
        A::Event: PartialEq + Debug,
        A::Error: Debug,
    {
        let events = match self.result {
            Ok(events) => events,
            Err(error) => {
                panic!("expected events {expected:?}, but the command was refused: {error:?}")
            }
        };
        assert_eq!(
            events, expected,
            "the command emitted other events than expected"
        );
        let mut state = self.state;
        for event in &events {
            assert_codec_round_trip(event);
            state.apply(event);
        }
        state
    }

    /// Asserts that the command was refused with `expected`.
    #[track_caller]
    pub fn then_expect_error(self, expected: A::Error)
    where
        A::Event: Debug,
        A::Error: PartialEq + Debug,
    {
        match self.result {
            Ok(events) => {
                panic!("expected the error {expected:?}, but the command emitted {events:?}")
            }
            Err(error) => assert_eq!(
                error, expected,
                "the command was refused with another error"
            ),
        }
    }

    /// Asserts that the command was refused with an error that satisfies `check`.
    #[track_caller]
    pub fn then_expect_error_matching(self, check: impl FnOnce(&A::Error) -> bool)
    where
        A::Event: Debug,
        A::Error: Debug,
    {
        match self.result {
            Ok(events) => panic!("expected an error, but the command emitted {events:?}"),
            Err(error) => assert!(
                check(&error),
                "the command was refused with an unexpected error: {error:?}"
            ),
        }
    }

    /// The raw result, for checks the helpers above do not cover.
    pub fn into_result(self) -> Result<Vec<A::Event>, A::Error> {
        self.result
    }
}

#[track_caller]
fn assert_codec_round_trip<E: crate::DomainEvent + PartialEq + Debug>(event: &E) {
    let encoded = codec::encode(event, Metadata::default())
        .unwrap_or_else(|e| panic!("event {event:?} does not encode: {e}"));
    let decoded = E::decode(encoded.event_type(), encoded.data())
        .unwrap_or_else(|e| panic!("event {event:?} does not decode after encoding: {e}"));
    assert_eq!(&decoded, event, "event changed through encode/decode");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::conformance::domain::{Add, Counter, CounterEvent, OverLimit, LIMIT};

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    fn added(amount: u64) -> CounterEvent {
        CounterEvent::Added { amount }
    }

    #[test]
    fn matching_events_pass_and_return_the_new_state() {
        let state = block_on(
            AggregateTest::<Counter>::new(())
                .given(vec![added(2)])
                .when(Add(3)),
        )
        .then_expect_events(vec![added(3)]);
        assert_eq!(state.value, 5);
    }

    #[test]
    #[should_panic(expected = "other events than expected")]
    fn other_events_fail() {
        block_on(
            AggregateTest::<Counter>::new(())
                .given_no_events()
                .when(Add(3)),
        )
        .then_expect_events(vec![added(4)]);
    }

    #[test]
    #[should_panic(expected = "but the command was refused")]
    fn a_refusal_where_events_were_expected_fails() {
        block_on(
            AggregateTest::<Counter>::new(())
                .given(vec![added(LIMIT)])
                .when(Add(1)),
        )
        .then_expect_events(vec![added(1)]);
    }

    #[test]
    #[should_panic(expected = "but the command emitted")]
    fn events_where_a_refusal_was_expected_fail() {
        block_on(
            AggregateTest::<Counter>::new(())
                .given_no_events()
                .when(Add(1)),
        )
        .then_expect_error(OverLimit { amount: 1 });
    }

    #[test]
    #[should_panic(expected = "refused with another error")]
    fn another_refusal_fails() {
        block_on(
            AggregateTest::<Counter>::new(())
                .given(vec![added(LIMIT)])
                .when(Add(1)),
        )
        .then_expect_error(OverLimit { amount: 2 });
    }

    #[test]
    fn a_matching_refusal_passes() {
        let outcome = block_on(
            AggregateTest::<Counter>::new(())
                .given(vec![added(LIMIT)])
                .when(Add(7)),
        );
        outcome.then_expect_error_matching(|e| e.amount == 7);
    }
}
