//! # Orders: a shopping cart that becomes an order
//!
//! Run it with `cargo run --example orders`. It needs no set-up: events are kept in
//! memory. With `DATABASE_URL` set, the same code runs on PostgreSQL (schema
//! `orders_example`).
//!
//! What it shows:
//! - a cart filled step by step (line items, a shipping address, a payment), each step
//!   a command checked against the events recorded so far;
//! - placing the order refused, with the domain's own typed error naming what is
//!   missing, until everything is there; and no change accepted after it is placed;
//! - the order total as a fold over the cart's events, recorded when the order is
//!   placed;
//! - a read model of open carts, fed by a subscription: a cart appears on it when it is
//!   created and leaves it when it is placed.

mod cart;
mod open_carts;

use std::time::Duration;

use cart::{Cart, CartCommand, CartError, CartEvent, Cents};
use cqrs_core::subscription::{Project, Subscription, SubscriptionHandle};
use cqrs_core::{Engine, EngineError};
use examples::Backend;
use open_carts::{OpenCart, OpenCarts};

/// How long the demo waits for the read model to catch up before giving up.
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await.map(|_| ())
}

/// What the story leaves behind, for its test to check (the binary only prints).
#[cfg_attr(not(test), allow(dead_code))]
struct Story {
    ada: String,
    bob: String,
    /// This run's carts on the open-carts list once both were created, and at the end.
    open_after_creation: Vec<(String, OpenCart)>,
    open_at_end: Vec<(String, OpenCart)>,
    /// Every refusal, in order.
    refusals: Vec<CartError>,
    /// The total recorded in Ada's `cart.order_placed`.
    placed_total: Option<Cents>,
    /// Ada's cart total, folded from its events.
    folded_total: Cents,
}

async fn run() -> Result<Story, Box<dyn std::error::Error>> {
    let backend = Backend::from_env("orders_example").await?;
    println!("Orders example on {}.\n", backend.description);
    let carts = Engine::<Cart>::new(backend.events.clone(), ());

    // Why a subscription, not an inline projection as in the bank example: this list is
    // for the back office, not for the customer who just clicked (the customer's view
    // is the cart itself, loaded from its events and always current). So it may lag a
    // moment; in exchange, a command never waits for the list nor fails with it, and the
    // list can be rebuilt from the log at any time. It lives in this process's memory,
    // so its checkpoint does too: each start rebuilds it from the log.
    let open_carts = OpenCarts::default();
    let feed = Subscription::new(
        backend.events.clone(),
        Project::new(open_carts.clone(), cqrs_memory::MemoryStore::new())?,
    )
    .start();

    let run = examples::run_id();
    let (ada, bob) = (format!("ada-{run}"), format!("bob-{run}"));
    // A database reused across runs keeps earlier runs' carts: the story keeps this run's.
    let this_run = |list: Vec<(String, OpenCart)>| -> Vec<(String, OpenCart)> {
        list.into_iter()
            .filter(|(id, _)| id.ends_with(&run))
            .collect()
    };
    let mut refusals = Vec::new();

    println!("Ada and Bob start shopping:");
    for (id, customer) in [(&ada, "Ada"), (&bob, "Bob")] {
        let create = CartCommand::Create {
            cart_id: id.clone(),
            customer: customer.into(),
        };
        let what = format!("{customer} opens a cart");
        step(&carts, &what, create, &mut refusals).await?;
    }
    let open_after_creation = this_run(show_open_carts(&feed, &open_carts).await?);

    println!("\nAda fills her cart and checks out:");
    let item = |product: &str, quantity, cents| CartCommand::AddItem {
        cart_id: ada.clone(),
        product: product.into(),
        quantity,
        unit_price: Cents(cents),
    };
    let place = || CartCommand::PlaceOrder {
        cart_id: ada.clone(),
    };
    let steps = [
        ("adds 2 x green tea at 4.50", item("green tea", 2, 450)),
        ("adds 1 x teapot at 24.00", item("teapot", 1, 2_400)),
        ("tries to place the order", place()),
        (
            "adds her shipping address",
            CartCommand::AddShippingAddress {
                cart_id: ada.clone(),
                address: "12 Analytical Row, London".into(),
            },
        ),
        (
            "adds a payment",
            CartCommand::AddPayment {
                cart_id: ada.clone(),
                method: "card ending 1815".into(),
            },
        ),
        ("places the order", place()),
        ("tries to add a cake", item("lemon cake", 1, 600)),
    ];
    let mut placed_total = None;
    for (what, command) in steps {
        if let Some(committed) = step(&carts, what, command, &mut refusals).await? {
            for event in committed {
                if let CartEvent::OrderPlaced { total } = event {
                    placed_total = Some(total);
                }
            }
        }
    }

    println!("\nBob puts coffee in his cart and leaves the shop:");
    let coffee = CartCommand::AddItem {
        cart_id: bob.clone(),
        product: "coffee beans".into(),
        quantity: 1,
        unit_price: Cents(750),
    };
    step(
        &carts,
        "adds 1 x coffee beans at 7.50",
        coffee,
        &mut refusals,
    )
    .await?;
    let open_at_end = this_run(show_open_carts(&feed, &open_carts).await?);

    let folded_total = carts.load(&ada).await?.state.total;
    println!(
        "\nAda's total, folded from her cart's events: {folded_total}; \
         her cart.order_placed event recorded {}.",
        placed_total.map(|t| t.to_string()).unwrap_or_default()
    );

    feed.shutdown().await?;
    Ok(Story {
        ada,
        bob,
        open_after_creation,
        open_at_end,
        refusals,
        placed_total,
        folded_total,
    })
}

/// Sends one command and says what came of it: the events it recorded, or the cart's
/// refusal (kept in `refusals`). Any other failure ends the story.
async fn step(
    carts: &Engine<Cart>,
    what: &str,
    command: CartCommand,
    refusals: &mut Vec<CartError>,
) -> Result<Option<Vec<CartEvent>>, EngineError<CartError>> {
    match carts.send(command).await {
        Ok(committed) => {
            let names: Vec<&str> = committed
                .events
                .iter()
                .map(|e| e.event_type.as_str())
                .collect();
            println!("  {what:<32} accepted: {}", names.join(", "));
            Ok(Some(committed.events.into_iter().map(|e| e.data).collect()))
        }
        Err(EngineError::Rejected(reason)) => {
            println!("  {what:<32} REFUSED: {reason}");
            refusals.push(reason);
            Ok(None)
        }
        Err(other) => Err(other),
    }
}

/// Waits until the list has seen every event so far, then prints it.
async fn show_open_carts(
    feed: &SubscriptionHandle,
    open_carts: &OpenCarts,
) -> Result<Vec<(String, OpenCart)>, Box<dyn std::error::Error>> {
    // The read model follows the log a moment behind: a demo waits for it to catch up
    // so that what it prints is the whole story so far.
    feed.caught_up(PATIENCE).await?;
    let list = open_carts.list();
    println!("  The open-carts list now has {} cart(s):", list.len());
    for (id, cart) in &list {
        println!(
            "    {id:<20} {:<4} {} line item(s), {}",
            cart.customer, cart.line_items, cart.total
        );
    }
    Ok(list)
}

#[cfg(test)]
mod story {
    use super::*;
    use cart::Missing;

    /// The whole example, on the backend the test command provides (PostgreSQL under
    /// `scripts/test`), so that it cannot rot on either backend.
    #[tokio::test]
    async fn the_orders_story_runs_to_the_end() {
        let story = run().await.expect("the orders example runs");
        let ids = |list: &[(String, OpenCart)]| -> Vec<String> {
            list.iter().map(|(id, _)| id.clone()).collect()
        };
        // Both carts appear on the list when created; Ada's leaves it when placed.
        assert_eq!(
            ids(&story.open_after_creation),
            [story.ada.as_str(), story.bob.as_str()]
        );
        assert_eq!(ids(&story.open_at_end), [story.bob.as_str()]);
        assert_eq!(story.open_at_end[0].1.total, Cents(750));
        // Placing was refused until the address and the payment were there, and no
        // change was accepted after it.
        assert_eq!(
            story.refusals,
            [
                CartError::NotReady {
                    missing: vec![Missing::ShippingAddress, Missing::Payment]
                },
                CartError::AlreadyPlaced,
            ]
        );
        // 2 x 4.50 + 24.00, folded from the events, and recorded as such when placed.
        assert_eq!(story.folded_total, Cents(3_300));
        assert_eq!(story.placed_total, Some(Cents(3_300)));
    }
}
