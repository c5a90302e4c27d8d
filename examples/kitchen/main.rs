//! # Kitchen: order -> kitchen -> delivery, driven by events
//!
//! Run it with `cargo run --example kitchen`. It needs no set-up: events are kept in
//! memory. With `DATABASE_URL` set, the same code runs on PostgreSQL (schema
//! `kitchen_example`).
//!
//! What it shows:
//! - three aggregates (order, kitchen ticket, delivery) that know nothing of each other;
//! - a process manager, fed by a subscription, that turns a confirmed order into a
//!   kitchen command and a prepared order into a delivery command, carrying the
//!   correlation id and the causation id along;
//! - a redelivery of every event (a replay) that does not act twice, because commands
//!   caused by an event are idempotent;
//! - a read model over the three aggregates, keyed by the order's id;
//! - an event stored at schema version 1 by an older application, upcast when read;
//! - every event of an order as a CloudEvents document with its W3C `traceparent`.

mod board;
mod delivery;
mod flow;
mod kitchen;
mod order;
#[cfg(test)]
mod trace_tree;

use std::time::Duration;

use board::OrderBoard;
use cqrs_core::envelope::TraceParent;
use cqrs_core::subscription::{Project, React, Subscription};
use cqrs_core::{Aggregate, DomainEvent, Engine, ExpectedVersion, Metadata, NewEvent, StreamId};
use delivery::Delivery;
use examples::Backend;
use flow::KitchenFlow;
use kitchen::{KitchenCommand, KitchenTicket};
use order::{Money, Order, OrderCommand};

/// The story's tests run one at a time: two stories at once would share the process
/// manager's lease on PostgreSQL, and one would handle the other's events.
#[cfg(test)]
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long the demo waits for a subscription to catch up before giving up.
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await.map(|_| ())
}

/// What the story leaves behind, for its test to check (the binary only prints).
#[cfg_attr(not(test), allow(dead_code))]
struct Story {
    /// Every event of the pizza order, from its three aggregates, in global order.
    journey: Vec<std::sync::Arc<cqrs_core::StoredEvent>>,
    /// The same events as CloudEvents documents.
    cloudevents: Vec<serde_json::Value>,
    /// The versions of its kitchen ticket and delivery before and after the replay.
    replay: [(u64, u64); 2],
    /// The board's rows of the pizza, the soup and the legacy order.
    board: [Option<board::Row>; 3],
    /// The legacy order's first event as stored, and as read through its upcaster.
    legacy: (std::sync::Arc<cqrs_core::StoredEvent>, order::OrderEvent),
    /// The trace context of the customers' web request.
    request: TraceParent,
}

async fn run() -> Result<Story, Box<dyn std::error::Error>> {
    let backend = Backend::from_env("kitchen_example").await?;
    println!("Kitchen example on {}.\n", backend.description);
    let orders = Engine::<Order>::new(backend.events.clone(), ());
    let kitchen = Engine::<KitchenTicket>::new(backend.events.clone(), ());
    let delivery = Engine::<Delivery>::new(backend.events.clone(), ());

    // The process manager keeps its checkpoint with the events: after a restart it
    // resumes where it was. The board lives in this process's memory, so its checkpoint
    // does too: each run rebuilds it from the log.
    let flow = Subscription::new(
        backend.events.clone(),
        React::new(
            KitchenFlow {
                kitchen: kitchen.clone(),
                delivery: delivery.clone(),
            },
            backend.checkpoints.clone(),
        )?,
    )
    .start();
    let board = OrderBoard::default();
    let board_feed = Subscription::new(
        backend.events.clone(),
        Project::new(board.clone(), cqrs_memory::MemoryStore::new())?,
    )
    .start();

    let run = examples::run_id();
    let (pizza, soup, legacy) = (
        format!("pizza-{run}"),
        format!("soup-{run}"),
        format!("legacy-{run}"),
    );

    println!("An order placed last year, by the old application, is still in the log:");
    let old = NewEvent::new(
        "order.placed",
        1,
        serde_json::json!({ "customer": "Grace", "dishes": ["lasagne"], "orderValue": 1450 }),
        Metadata::default(),
    )?;
    let stream = StreamId::new(Order::TYPE, &legacy)?;
    backend
        .events
        .append(&stream, ExpectedVersion::NoStream, vec![old])
        .await?;
    println!("  {legacy}: order.placed at schema version 1, orderValue 1450 (a number)\n");

    println!("Customers place and confirm orders:");
    let request =
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse::<TraceParent>()?;
    for (id, customer, dishes, cents) in [
        (&pizza, "Ada", vec!["margherita", "tiramisu"], 2350),
        (&soup, "Linus", vec!["minestrone"], 890),
    ] {
        let place = OrderCommand::Place {
            order_id: id.clone(),
            customer: customer.into(),
            dishes: dishes.iter().map(|d| d.to_string()).collect(),
            value: Money {
                value: cents,
                currency: "EUR".into(),
            },
        };
        // One correlation id for the customer's checkout, and the web request's trace
        // context: both go into the events, and from there into everything they cause.
        let checkout = Metadata::default()
            .with_correlation_id(uuid::Uuid::now_v7())
            .with_traceparent(request.clone());
        orders
            .execute_with_metadata(id, place, checkout.clone())
            .await?;
        let confirm = OrderCommand::Confirm {
            order_id: id.clone(),
        };
        orders.execute_with_metadata(id, confirm, checkout).await?;
        println!(
            "  {customer} places and confirms {id}: {}",
            dishes.join(", ")
        );
    }
    orders
        .send(OrderCommand::Confirm {
            order_id: legacy.clone(),
        })
        .await?;
    println!("  {legacy} is confirmed");

    flow.caught_up(PATIENCE).await?;
    println!("\nThe process manager sent every confirmed order to the kitchen.");
    println!("The cook finishes the pizza and the lasagne:");
    for id in [&pizza, &legacy] {
        // The cook works from the ticket: the ticket's event is the cause of the
        // command, so the order's correlation id carries on.
        let ticket = StreamId::new(KitchenTicket::TYPE, id)?;
        let started = backend.events.read_stream(&ticket, 1, 1).await?;
        let started = cqrs_core::codec::decode::<kitchen::KitchenEvent>(
            started.first().ok_or("the ticket has no event")?,
        )?;
        let finish = KitchenCommand::FinishPreparation {
            order_id: id.clone(),
        };
        kitchen.execute_caused_by(id, finish, &started).await?;
        println!("  {id} is prepared");
    }
    flow.caught_up(PATIENCE).await?;
    board_feed.caught_up(PATIENCE).await?;

    println!("\nThe order board (one read model over three aggregates):");
    let rows = [&pizza, &soup, &legacy].map(|id| board.get(id));
    for (id, row) in [&pizza, &soup, &legacy].iter().zip(&rows) {
        if let Some(row) = row {
            println!(
                "  {id:<22} {:<6} {:<24} {:>10}  {:?}",
                row.customer,
                row.dishes.join(", "),
                row.value,
                row.status
            );
        }
    }

    println!("\nEvery event is now delivered again to the process manager (a replay):");
    let kitchen_before = kitchen.load(&pizza).await?.version;
    let delivery_before = delivery.load(&pizza).await?.version;
    flow.rebuild();
    flow.caught_up(PATIENCE).await?;
    let kitchen_after = kitchen.load(&pizza).await?.version;
    let delivery_after = delivery.load(&pizza).await?.version;
    println!(
        "  kitchen ticket {pizza}: version {kitchen_before} before, {kitchen_after} after; \
         delivery: version {delivery_before} before, {delivery_after} after"
    );
    println!("  each command found its first outcome by its id: nothing was done twice.");

    println!("\nThe journey of {pizza}, from its correlation and causation ids:");
    let mut journey = Vec::new();
    for stream_type in [Order::TYPE, KitchenTicket::TYPE, Delivery::TYPE] {
        let stream = StreamId::new(stream_type, &pizza)?;
        journey.extend(backend.events.read_stream(&stream, 1, usize::MAX).await?);
    }
    journey.sort_by_key(|e| e.position);
    for event in &journey {
        let short = |id: Option<uuid::Uuid>| {
            id.map(|id| id.simple().to_string()[24..].to_owned())
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "  {:<28} id …{}  caused by …{:<12}  correlation …{}",
            event.event_type,
            short(Some(event.event_id)),
            short(event.metadata.causation_id),
            short(event.metadata.correlation_id),
        );
    }

    println!("\nThe legacy order, read through its upcaster, and the same journey as CloudEvents:");
    let stream = StreamId::new(Order::TYPE, &legacy)?;
    let stored = backend.events.read_stream(&stream, 1, 1).await?;
    let first = stored.first().ok_or("the legacy order has no event")?;
    let upcast = cqrs_core::codec::decode_data::<order::OrderEvent>(first)?;
    println!(
        "  stored as v{}: {}\n  read as v{}: {:?}",
        first.event_version,
        first.data,
        upcast.event_version(),
        upcast
    );
    let cloudevents: Vec<_> = journey.iter().map(|e| e.to_cloudevent()).collect();
    for document in &cloudevents {
        println!("{document:#}");
    }

    flow.shutdown().await?;
    board_feed.shutdown().await?;
    Ok(Story {
        journey,
        cloudevents,
        replay: [
            (kitchen_before, kitchen_after),
            (delivery_before, delivery_after),
        ],
        board: rows,
        legacy: (first.clone(), upcast),
        request,
    })
}

#[cfg(test)]
mod story {
    use cqrs_core::{Aggregate, DomainEvent};
    use serde_json::json;

    use crate::board::{Row, Status};
    use crate::delivery::Delivery;
    use crate::kitchen::KitchenTicket;
    use crate::order::{Money, Order, OrderEvent};

    /// The whole example, on the backend the test command provides (PostgreSQL under
    /// `scripts/test`), so that it cannot rot on either backend.
    #[tokio::test]
    async fn the_kitchen_story_runs_to_the_end() {
        let _exclusive = super::ONE_AT_A_TIME.lock().await;
        let story = super::run().await.expect("the kitchen example runs");
        let types: Vec<&str> = story
            .journey
            .iter()
            .map(|e| e.event_type.as_str())
            .collect();
        assert_eq!(
            types,
            [
                "order.placed",
                "order.confirmed",
                "kitchen.preparation_started",
                "kitchen.order_prepared",
                "delivery.scheduled"
            ]
        );
        // One correlation id across the three aggregates; from the confirmation on,
        // each event was caused by the one before it.
        let correlation = story.journey[0].metadata.correlation_id;
        assert!(correlation.is_some());
        for pair in story.journey.windows(2) {
            assert_eq!(pair[1].metadata.correlation_id, correlation);
        }
        for pair in story.journey[1..].windows(2) {
            assert_eq!(pair[1].metadata.causation_id, Some(pair[0].event_id));
        }
        // The replay delivered every event again and changed nothing.
        for (before, after) in story.replay {
            assert_eq!(before, after);
        }

        // The board, over three aggregates: the pizza and the lasagne went all the way,
        // the soup is still in the kitchen.
        let row = |customer: &str, dishes: &[&str], value: &str, status| {
            Some(Row {
                customer: customer.into(),
                dishes: dishes.iter().map(|d| d.to_string()).collect(),
                value: value.into(),
                status,
            })
        };
        assert_eq!(
            story.board,
            [
                row(
                    "Ada",
                    &["margherita", "tiramisu"],
                    "23.50 EUR",
                    Status::OutForDelivery
                ),
                row("Linus", &["minestrone"], "8.90 EUR", Status::InTheKitchen),
                row("Grace", &["lasagne"], "14.50 EUR", Status::OutForDelivery),
            ]
        );

        // The legacy order is still stored as version 1, a plain number, and reads as
        // version 2.
        let (stored, read) = &story.legacy;
        assert_eq!(
            (stored.event_type.as_str(), stored.event_version),
            ("order.placed", 1)
        );
        assert_eq!(stored.data["orderValue"], json!(1450));
        assert_eq!(read.event_version(), 2);
        assert_eq!(
            *read,
            OrderEvent::Placed {
                customer: "Grace".into(),
                dishes: vec!["lasagne".into()],
                order_value: Money {
                    value: 1450,
                    currency: "EUR".into()
                },
            }
        );

        // One CloudEvents document per event, carrying its envelope; every event of the
        // journey, also those a process manager caused, continues the request's trace.
        assert_eq!(story.cloudevents.len(), story.journey.len());
        let request = story.request.to_string();
        assert!(is_traceparent(&request), "{request}");
        let correlation = correlation.map(|id| id.to_string());
        for (document, event) in story.cloudevents.iter().zip(&story.journey) {
            let (stream_type, id) = (event.stream.stream_type(), event.stream.id());
            assert!(id.starts_with("pizza-"), "{id}");
            assert_eq!(document["specversion"], "1.0");
            assert_eq!(document["id"], event.event_id.to_string());
            assert_eq!(document["type"], event.event_type);
            assert_eq!(document["source"], format!("/{stream_type}/{id}"));
            assert_eq!(document["subject"], id);
            assert_eq!(document["datacontenttype"], "application/json");
            assert_eq!(document["streamversion"], event.stream_version);
            assert_eq!(document["eventversion"], event.event_version);
            assert_eq!(document["data"], event.data);
            assert_eq!(document["correlationid"].as_str(), correlation.as_deref());
            let causation = event.metadata.causation_id.map(|id| id.to_string());
            assert_eq!(document["causationid"].as_str(), causation.as_deref());
            assert_eq!(document["traceparent"], request);
        }
        let sources: Vec<&str> = story
            .journey
            .iter()
            .map(|e| e.stream.stream_type())
            .collect();
        let (order, kitchen, delivery) = (Order::TYPE, KitchenTicket::TYPE, Delivery::TYPE);
        assert_eq!(sources, [order, order, kitchen, kitchen, delivery]);
    }

    /// `00-<32 hex>-<16 hex>-<2 hex>`, in lower case, ids not all zero (W3C Trace Context).
    fn is_traceparent(value: &str) -> bool {
        let parts: Vec<&str> = value.split('-').collect();
        let hex = |s: &str, len| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
        matches!(parts[..], [version, trace, parent, flags]
            if version == "00" && hex(trace, 32) && hex(parent, 16) && hex(flags, 2)
                && nonzero(trace) && nonzero(parent))
    }
}
