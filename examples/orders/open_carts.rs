//! The open-carts read model: every cart that was created and not yet placed, for the
//! shop's back office ("who is shopping right now, and for how much?").

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, RwLock};

use cqrs_core::{Envelope, Projection};

use crate::cart::{CartEvent, Cents};

/// One open cart.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenCart {
    pub customer: String,
    pub line_items: usize,
    /// Summed here from `cart.item_added`, as the cart itself does: each read model
    /// folds the events into the shape it needs.
    pub total: Cents,
}

/// The list, shared between the subscription that writes it and the code that reads it.
/// Cloning shares the same list.
///
/// It consumes only the three event types it needs: the subscription asks the store for
/// those alone.
#[derive(Debug, Clone, Default, Projection)]
#[projection(event = CartEvent, events(Created, ItemAdded, OrderPlaced))]
pub struct OpenCarts {
    inner: Arc<RwLock<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    open: BTreeMap<String, OpenCart>,
    /// The last stream version applied per cart, placed ones included: delivery is
    /// at-least-once, so an event at or below it is a repeat and is ignored (without
    /// it, a repeated `cart.created` would bring a placed cart back).
    seen: HashMap<String, u64>,
}

impl OpenCarts {
    /// The open carts, by cart id.
    pub fn list(&self) -> Vec<(String, OpenCart)> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .open
            .iter()
            .map(|(id, cart)| (id.clone(), cart.clone()))
            .collect()
    }

    async fn handle(&self, event: &Envelope<CartEvent>) -> Result<(), Infallible> {
        // A poisoned lock (a panic elsewhere while it was held) still holds a usable list:
        // nothing below panics half-way through an update.
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let cart_id = event.stream.id();
        let seen = inner.seen.entry(cart_id.to_owned()).or_default();
        if event.stream_version <= *seen {
            return Ok(());
        }
        *seen = event.stream_version;
        match &event.data {
            CartEvent::Created { customer } => {
                let cart = OpenCart {
                    customer: customer.clone(),
                    line_items: 0,
                    total: Cents::default(),
                };
                inner.open.insert(cart_id.to_owned(), cart);
            }
            CartEvent::ItemAdded {
                quantity,
                unit_price,
                ..
            } => {
                if let Some(cart) = inner.open.get_mut(cart_id) {
                    cart.line_items += 1;
                    // The cart refused any item that would overflow.
                    cart.total = (cart.total)
                        .plus_line(*quantity, *unit_price)
                        .unwrap_or(Cents(u64::MAX));
                }
            }
            CartEvent::OrderPlaced { .. } => {
                inner.open.remove(cart_id);
            }
            // Not consumed (see `events(...)` above): the store does not deliver them.
            CartEvent::ShippingAddressAdded { .. } | CartEvent::PaymentAdded { .. } => {}
        }
        Ok(())
    }

    async fn reset(&self) -> Result<(), Infallible> {
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = Inner::default();
        Ok(())
    }
}
