//! Aggregate and projection options: names, services, versions, error types, generics.

use cqrs_core::{Aggregate, Command, DomainEvent, Engine, Envelope, Listener, Projection};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "clock.", rename_all = "snake_case")]
pub enum ClockEvent {
    Ticked { at: u64 },
}

#[derive(Command)]
pub struct Tick {
    #[command(id)]
    pub clock: String,
}

#[derive(Debug, thiserror::Error)]
#[error("stopped")]
pub struct Stopped;

/// A service the handler calls.
pub struct Time(pub u64);

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(
    name = "wall-clock",
    command = Tick,
    event = ClockEvent,
    error = Stopped,
    services = Time,
    snapshot_version = 3
)]
pub struct WallClock {
    last: u64,
}

impl WallClock {
    async fn handle(&self, _: &Tick, time: &Time) -> Result<Vec<ClockEvent>, Stopped> {
        Ok(vec![ClockEvent::Ticked { at: time.0 }])
    }

    fn apply(&mut self, event: &ClockEvent) {
        let ClockEvent::Ticked { at } = event;
        self.last = *at;
    }
}

/// An enum aggregate (a state machine) with the default, snake_case type name.
#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = Tick, event = ClockEvent, error = Stopped)]
pub enum TrafficLight {
    #[default]
    Red,
    Green,
}

impl TrafficLight {
    async fn handle(&self, _: &Tick, _: &()) -> Result<Vec<ClockEvent>, Stopped> {
        Ok(vec![ClockEvent::Ticked { at: 0 }])
    }

    fn apply(&mut self, _: &ClockEvent) {
        *self = match self {
            Self::Red => Self::Green,
            Self::Green => Self::Red,
        };
    }
}

#[derive(Debug, thiserror::Error)]
#[error("log full")]
pub struct LogFull;

#[derive(Default, Projection)]
#[projection(name = "tick-log", version = 4, event = ClockEvent, error = LogFull)]
pub struct TickLog {
    ticks: std::sync::Mutex<Vec<u64>>,
}

impl TickLog {
    async fn reset(&self) -> Result<(), LogFull> {
        self.ticks.lock().map_err(|_| LogFull)?.clear();
        Ok(())
    }

    async fn handle(&self, event: &Envelope<ClockEvent>) -> Result<(), LogFull> {
        let ClockEvent::Ticked { at } = event.data;
        let mut ticks = self.ticks.lock().map_err(|_| LogFull)?;
        ticks.push(at);
        Ok(())
    }
}

/// Generic read models are supported.
#[derive(Projection)]
#[projection(event = ClockEvent)]
pub struct Counting<T: Send + Sync + 'static> {
    _marker: std::marker::PhantomData<T>,
}

impl<T: Send + Sync + 'static> Counting<T> {
    async fn reset(&self) -> Result<(), std::convert::Infallible> {
        Ok(())
    }

    async fn handle(&self, _: &Envelope<ClockEvent>) -> Result<(), std::convert::Infallible> {
        Ok(())
    }
}

#[test]
fn constants() {
    assert_eq!(WallClock::TYPE, "wall-clock");
    assert_eq!(WallClock::SNAPSHOT_VERSION, 3);
    assert_eq!(TrafficLight::TYPE, "traffic_light");
    assert_eq!(TickLog::NAME, "tick-log");
    assert_eq!(TickLog::VERSION, 4);
    assert_eq!(TickLog::event_types(), ["clock.ticked"]);
    assert_eq!(Counting::<u8>::NAME, "counting");
}

#[tokio::test]
async fn services_reach_the_handler() {
    let engine = Engine::<WallClock>::new(cqrs_memory::MemoryStore::new(), Time(42));
    let committed = engine.send(Tick { clock: "c1".into() }).await.unwrap();
    assert_eq!(committed.events[0].data, ClockEvent::Ticked { at: 42 });
    assert_eq!(engine.load("c1").await.unwrap().state.last, 42);

    let lights = Engine::<TrafficLight>::new(cqrs_memory::MemoryStore::new(), ());
    lights.send(Tick { clock: "l".into() }).await.unwrap();
    assert!(matches!(
        lights.load("l").await.unwrap().state,
        TrafficLight::Green
    ));
}

/// `on_delete`: a deleted stream reaches the inherent `stream_deleted`.
#[derive(Default, Projection)]
#[projection(event = ClockEvent, on_delete)]
pub struct Clocks {
    forgotten: std::sync::Mutex<Vec<String>>,
}

impl Clocks {
    async fn handle(&self, _: &Envelope<ClockEvent>) -> Result<(), std::convert::Infallible> {
        Ok(())
    }

    async fn reset(&self) -> Result<(), std::convert::Infallible> {
        Ok(())
    }

    async fn stream_deleted(
        &self,
        stream: &cqrs_core::StreamId,
    ) -> Result<(), std::convert::Infallible> {
        if let Ok(mut forgotten) = self.forgotten.lock() {
            forgotten.push(stream.to_string());
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_deleted_stream_reaches_the_projection_with_on_delete() {
    let clocks = Clocks::default();
    let stream = cqrs_core::StreamId::new("wall-clock", "c1").unwrap();
    Projection::stream_deleted(&clocks, &stream).await.unwrap();
    assert_eq!(*clocks.forgotten.lock().unwrap(), ["wall-clock/c1"]);
    // Without it, the trait's default keeps everything and calls nothing.
    let log = TickLog::default();
    Projection::stream_deleted(&log, &stream).await.unwrap();
}

/// `on_delete` on a PostgreSQL projection: the inherent `stream_deleted` takes the
/// transaction first, like `handle` and `reset`.
#[derive(cqrs_postgres::PgProjection)]
#[pg_projection(event = ClockEvent, on_delete)]
pub struct ClockRows;

impl ClockRows {
    async fn handle(
        &self,
        _: &mut cqrs_postgres::sqlx::PgConnection,
        _: &Envelope<ClockEvent>,
    ) -> Result<(), std::convert::Infallible> {
        Ok(())
    }

    async fn reset(
        &self,
        _: &mut cqrs_postgres::sqlx::PgConnection,
    ) -> Result<(), std::convert::Infallible> {
        Ok(())
    }

    async fn stream_deleted(
        &self,
        _: &mut cqrs_postgres::sqlx::PgConnection,
        _: &cqrs_core::StreamId,
    ) -> Result<(), std::convert::Infallible> {
        Ok(())
    }
}

#[test]
fn a_pg_projection_takes_on_delete() {
    assert_eq!(<ClockRows as Listener>::NAME, "clock_rows");
}
