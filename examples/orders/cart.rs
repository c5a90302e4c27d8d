//! The cart: filled with line items, given a shipping address and a payment, then placed
//! as an order. Once placed it no longer changes.

use std::fmt;

use cqrs_core::{Aggregate, Command, DomainEvent};
use serde::{Deserialize, Serialize};

/// An amount in euro cents: whole numbers, so that totals never round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cents(pub u64);

impl Cents {
    /// This amount plus `quantity` times `unit_price`, if it can be counted.
    pub fn plus_line(self, quantity: u32, unit_price: Cents) -> Option<Cents> {
        let line = u64::from(quantity).checked_mul(unit_price.0)?;
        self.0.checked_add(line).map(Cents)
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02} EUR", self.0 / 100, self.0 % 100)
    }
}

/// What a customer can do with a cart. Each command names its cart.
#[derive(Debug, Clone, Command)]
#[command(id = cart_id)]
pub enum CartCommand {
    Create {
        cart_id: String,
        customer: String,
    },
    AddItem {
        cart_id: String,
        product: String,
        quantity: u32,
        unit_price: Cents,
    },
    AddShippingAddress {
        cart_id: String,
        address: String,
    },
    AddPayment {
        cart_id: String,
        method: String,
    },
    PlaceOrder {
        cart_id: String,
    },
}

/// What happened to a cart. Stored as `cart.created`, `cart.item_added`,
/// `cart.shipping_address_added`, `cart.payment_added` and `cart.order_placed`.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "cart.", rename_all = "snake_case")]
pub enum CartEvent {
    Created {
        customer: String,
    },
    ItemAdded {
        product: String,
        quantity: u32,
        unit_price: Cents,
    },
    ShippingAddressAdded {
        address: String,
    },
    PaymentAdded {
        method: String,
    },
    /// Records the total the customer agreed to pay: readers of the log (invoicing,
    /// accounting) get the amount without folding the cart themselves.
    OrderPlaced {
        total: Cents,
    },
}

/// What an order still needs before it can be placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Items,
    ShippingAddress,
    Payment,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Missing::Items => "line items",
            Missing::ShippingAddress => "a shipping address",
            Missing::Payment => "a payment",
        })
    }
}

/// Why a cart refuses a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CartError {
    #[error("this cart already exists")]
    AlreadyCreated,
    #[error("there is no such cart")]
    NoSuchCart,
    #[error("a line item needs a quantity of at least one")]
    ZeroQuantity,
    #[error("the total would be more than this shop can count")]
    TotalTooLarge,
    #[error("the order cannot be placed yet: it needs {}", list(.missing))]
    NotReady { missing: Vec<Missing> },
    #[error("the order is placed: the cart can no longer change")]
    AlreadyPlaced,
}

fn list(missing: &[Missing]) -> String {
    let names: Vec<String> = missing.iter().map(Missing::to_string).collect();
    names.join(" and ")
}

/// The state of a cart: only what its rules need, folded from its events.
#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = CartCommand, event = CartEvent, error = CartError)]
pub struct Cart {
    pub customer: Option<String>,
    pub line_items: usize,
    /// The sum of the line items so far: a fold over `cart.item_added`, never stored
    /// on its own.
    pub total: Cents,
    pub has_address: bool,
    pub has_payment: bool,
    pub placed: bool,
}

impl Cart {
    /// What placing the order still needs (empty: it can be placed).
    fn missing(&self) -> Vec<Missing> {
        [
            (self.line_items == 0, Missing::Items),
            (!self.has_address, Missing::ShippingAddress),
            (!self.has_payment, Missing::Payment),
        ]
        .into_iter()
        .filter_map(|(lacking, what)| lacking.then_some(what))
        .collect()
    }

    async fn handle(&self, command: &CartCommand, _: &()) -> Result<Vec<CartEvent>, CartError> {
        use CartCommand::*;
        match command {
            Create { .. } if self.customer.is_some() => Err(CartError::AlreadyCreated),
            Create { customer, .. } => Ok(vec![CartEvent::Created {
                customer: customer.clone(),
            }]),
            _ if self.customer.is_none() => Err(CartError::NoSuchCart),
            _ if self.placed => Err(CartError::AlreadyPlaced),
            AddItem { quantity: 0, .. } => Err(CartError::ZeroQuantity),
            AddItem {
                quantity,
                unit_price,
                ..
            } if self.total.plus_line(*quantity, *unit_price).is_none() => {
                Err(CartError::TotalTooLarge)
            }
            AddItem {
                product,
                quantity,
                unit_price,
                ..
            } => Ok(vec![CartEvent::ItemAdded {
                product: product.clone(),
                quantity: *quantity,
                unit_price: *unit_price,
            }]),
            AddShippingAddress { address, .. } => Ok(vec![CartEvent::ShippingAddressAdded {
                address: address.clone(),
            }]),
            AddPayment { method, .. } => Ok(vec![CartEvent::PaymentAdded {
                method: method.clone(),
            }]),
            PlaceOrder { .. } => match self.missing() {
                missing if missing.is_empty() => {
                    Ok(vec![CartEvent::OrderPlaced { total: self.total }])
                }
                missing => Err(CartError::NotReady { missing }),
            },
        }
    }

    fn apply(&mut self, event: &CartEvent) {
        match event {
            CartEvent::Created { customer } => self.customer = Some(customer.clone()),
            CartEvent::ItemAdded {
                quantity,
                unit_price,
                ..
            } => {
                self.line_items += 1;
                // `handle` refused any item that would overflow, so this never saturates.
                self.total = (self.total)
                    .plus_line(*quantity, *unit_price)
                    .unwrap_or(Cents(u64::MAX));
            }
            CartEvent::ShippingAddressAdded { .. } => self.has_address = true,
            CartEvent::PaymentAdded { .. } => self.has_payment = true,
            CartEvent::OrderPlaced { .. } => self.placed = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_core::testing::AggregateTest;

    fn cart() -> AggregateTest<Cart> {
        AggregateTest::new(())
    }

    fn created() -> CartEvent {
        CartEvent::Created {
            customer: "Ada".into(),
        }
    }

    fn item(quantity: u32, cents: u64) -> CartEvent {
        CartEvent::ItemAdded {
            product: "tea".into(),
            quantity,
            unit_price: Cents(cents),
        }
    }

    fn place() -> CartCommand {
        CartCommand::PlaceOrder {
            cart_id: "c".into(),
        }
    }

    #[tokio::test]
    async fn an_order_needs_items_an_address_and_a_payment() {
        cart()
            .given(vec![created()])
            .when(place())
            .await
            .then_expect_error(CartError::NotReady {
                missing: vec![Missing::Items, Missing::ShippingAddress, Missing::Payment],
            });
        cart()
            .given(vec![
                created(),
                item(1, 250),
                CartEvent::PaymentAdded {
                    method: "card".into(),
                },
            ])
            .when(place())
            .await
            .then_expect_error(CartError::NotReady {
                missing: vec![Missing::ShippingAddress],
            });
    }

    #[tokio::test]
    async fn the_placed_total_is_the_fold_of_the_line_items() {
        let state = cart()
            .given(vec![
                created(),
                item(2, 250),
                item(1, 1_000),
                CartEvent::ShippingAddressAdded {
                    address: "1 Main St".into(),
                },
                CartEvent::PaymentAdded {
                    method: "card".into(),
                },
            ])
            .when(place())
            .await
            .then_expect_events(vec![CartEvent::OrderPlaced {
                total: Cents(1_500),
            }]);
        assert!(state.placed);
    }

    #[tokio::test]
    async fn a_placed_order_no_longer_changes() {
        cart()
            .given(vec![
                created(),
                item(1, 250),
                CartEvent::OrderPlaced { total: Cents(250) },
            ])
            .when(CartCommand::AddItem {
                cart_id: "c".into(),
                product: "cake".into(),
                quantity: 1,
                unit_price: Cents(300),
            })
            .await
            .then_expect_error(CartError::AlreadyPlaced);
    }

    #[tokio::test]
    async fn a_cart_must_exist_and_items_must_count() {
        cart()
            .given_no_events()
            .when(CartCommand::AddPayment {
                cart_id: "c".into(),
                method: "card".into(),
            })
            .await
            .then_expect_error(CartError::NoSuchCart);
        cart()
            .given(vec![created()])
            .when(CartCommand::AddItem {
                cart_id: "c".into(),
                product: "tea".into(),
                quantity: 0,
                unit_price: Cents(250),
            })
            .await
            .then_expect_error(CartError::ZeroQuantity);
    }

    #[tokio::test]
    async fn a_total_beyond_counting_is_refused() {
        cart()
            .given(vec![created(), item(2, u64::MAX / 2)])
            .when(CartCommand::AddItem {
                cart_id: "c".into(),
                product: "tea".into(),
                quantity: 1,
                unit_price: Cents(2),
            })
            .await
            .then_expect_error(CartError::TotalTooLarge);
    }
}
