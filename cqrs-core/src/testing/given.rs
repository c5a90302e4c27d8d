//! given / when / then for aggregates: business rules tested without a store.

use std::fmt::Debug;

use crate::personal::Subject;
use crate::{codec, Aggregate, DomainEvent, Metadata, NewEvent};

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
    given: Vec<A::Event>,
    forgotten: Vec<Subject>,
}

impl<A: Aggregate> AggregateTest<A> {
    /// A test with these services (`()` when the aggregate needs none).
    pub fn new(services: A::Services) -> Self {
        Self {
            services,
            given: Vec::new(),
            forgotten: Vec::new(),
        }
    }

    /// The aggregate's past: these events, folded in order.
    pub fn given(mut self, events: impl IntoIterator<Item = A::Event>) -> Self {
        self.given.extend(events);
        self
    }

    /// The past as it reads once `subject` was forgotten
    /// ([`Engine::forget`](crate::Engine::forget)): the given events' personal fields
    /// about it (`#[event(personal(subject = ..))]`) are folded as their placeholders, and
    /// an emitted event with personal data about it fails
    /// [`then_expect_events`](Outcome::then_expect_events), as the store would refuse it
    /// ([`StoreError::Forgotten`](crate::StoreError::Forgotten)).
    ///
    /// It tests what a decision does with a forgotten customer's placeholders: that an
    /// account still works, that a rule keyed on a name does not misfire on
    /// `"[forgotten]"`.
    pub fn given_forgotten(mut self, subject: Subject) -> Self {
        self.forgotten.push(subject);
        self
    }

    /// An aggregate with no past.
    pub fn given_no_events(self) -> Self {
        self
    }

    /// Handles `command` against the given state.
    #[track_caller]
    pub fn when(self, command: A::Command) -> impl std::future::Future<Output = Outcome<A>> {
        let mut state = A::default();
        for event in &self.given {
            match self.forgotten.is_empty() {
                true => state.apply(event),
                false => state.apply(&read_back(event, &self.forgotten)),
            }
        }
        async move {
            let result = state.handle(&command, &self.services).await;
            Outcome {
                state,
                result,
                forgotten: self.forgotten,
            }
        }
    }
}

/// What a command did in an [`AggregateTest`].
pub struct Outcome<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
    forgotten: Vec<Subject>,
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
            let encoded = assert_codec_round_trip(event);
            if let Some(value) = encoded
                .personal()
                .iter()
                .find(|v| self.forgotten.contains(&v.subject))
            {
                panic!(
                    "the command emitted personal data ({:?} of {}) about subject {}, who was \
                     forgotten: the store refuses it (StoreError::Forgotten)",
                    value.field,
                    encoded.event_type(),
                    value.subject
                );
            }
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

/// Asserts that `event` reads back as it was through the codec (and the sealing of its
/// personal fields); returns it encoded.
#[track_caller]
fn assert_codec_round_trip<E: DomainEvent + PartialEq + Debug>(event: &E) -> NewEvent {
    let encoded = encode(event);
    let decoded = E::decode(encoded.event_type(), &data_as_read(&encoded, &[]))
        .unwrap_or_else(|e| panic!("event {event:?} does not decode after encoding: {e}"));
    assert_eq!(&decoded, event, "event changed through encode/decode");
    encoded
}

#[track_caller]
fn encode<E: DomainEvent>(event: &E) -> NewEvent {
    codec::encode(event, Metadata::default())
        .unwrap_or_else(|e| panic!("event {} does not encode: {e}", event.event_type()))
}

/// `event` as a store reads it back once the `forgotten` subjects were forgotten.
#[track_caller]
fn read_back<E: DomainEvent>(event: &E, forgotten: &[Subject]) -> E {
    let encoded = encode(event);
    E::decode(encoded.event_type(), &data_as_read(&encoded, forgotten)).unwrap_or_else(|e| {
        panic!(
            "event {} does not decode with its forgotten fields' placeholders: {e}",
            event.event_type()
        )
    })
}

/// The data of `encoded` with its personal fields back in place: their values, or the
/// placeholders of those about a `forgotten` subject.
fn data_as_read(encoded: &NewEvent, forgotten: &[Subject]) -> serde_json::Value {
    let mut data = encoded.data().clone();
    if let serde_json::Value::Object(map) = &mut data {
        for value in encoded.personal() {
            let shown = if forgotten.contains(&value.subject) {
                &value.forgotten
            } else {
                &value.value
            };
            map.insert(value.field.clone(), shown.clone());
        }
    }
    data
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

    mod forgotten {
        use super::block_on;
        use crate::personal::Subject;
        use crate::testing::conformance::domain::{
            Member, MemberCommand, MemberEvent, FORGOTTEN_NAME,
        };
        use crate::testing::AggregateTest;

        fn joined() -> MemberEvent {
            MemberEvent::Joined {
                member_id: "m-1".into(),
                name: "Ada".into(),
                email: "ada@example.org".into(),
            }
        }

        #[test]
        fn personal_events_round_trip_with_their_fields() {
            let state = block_on(AggregateTest::<Member>::new(()).when(MemberCommand::Join {
                member_id: "m-1".into(),
                name: "Ada".into(),
                email: "ada@example.org".into(),
            }))
            .then_expect_events(vec![joined()]);
            assert_eq!(state.name, "Ada");
        }

        #[test]
        fn a_forgotten_subject_is_folded_as_its_placeholders() {
            let state = block_on(
                AggregateTest::<Member>::new(())
                    .given(vec![joined()])
                    .given_forgotten(Subject::new("m-1").expect("valid"))
                    .when(MemberCommand::Visit {
                        member_id: "m-1".into(),
                    }),
            )
            .then_expect_events(vec![MemberEvent::Visited {
                member_id: "m-1".into(),
            }]);
            assert_eq!(
                (state.name.as_str(), state.email.as_str()),
                (FORGOTTEN_NAME, "")
            );
            assert_eq!(state.visits, 1);
        }

        #[test]
        #[should_panic(expected = "who was forgotten: the store refuses it")]
        fn new_personal_data_about_a_forgotten_subject_fails() {
            block_on(
                AggregateTest::<Member>::new(())
                    .given(vec![joined()])
                    .given_forgotten(Subject::new("m-1").expect("valid"))
                    .when(MemberCommand::Rename {
                        member_id: "m-1".into(),
                        name: "Ada King".into(),
                    }),
            )
            .then_expect_events(vec![MemberEvent::Renamed {
                member_id: "m-1".into(),
                name: "Ada King".into(),
            }]);
        }
    }
}
