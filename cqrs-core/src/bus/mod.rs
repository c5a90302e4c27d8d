//! Events on a message bus: the wire form of a stored event, the relay that publishes the
//! log, and what every bus consumer does with a message it receives.
//!
//! ```text
//! store ─▶ EventLog ─▶ Subscription ─▶ Relay ─▶ Publisher (a broker's producer) ─▶ bus
//!                                                                                  │
//!   listener ◀── Feed (Project, React) ◀── Receive ◀── a broker's consumer ◀───────┘
//! ```
//!
//! The relay is a transactional outbox read from the log: a [`Consumer`] run by the
//! subscription runner (lease, checkpoint, retries, status), so it publishes every event
//! its filter lets through, in the global order, and moves its checkpoint only after the
//! broker acknowledged every message up to it. A crash or an outage never skips an event;
//! a restart may publish some again, and the broker's de-duplication by message id (the
//! event id) drops the copies within its window.
//!
//! On the other side, a broker's consumer (in `cqrs-nats`) hands each message to a
//! [`Receive`]: the same [`Project`](crate::subscription::Project) and
//! [`React`](crate::subscription::React) values that a subscription feeds, so one read
//! model runs from the store or from the bus unchanged. It decodes the message (any
//! content mode), hands it to the listener, retries a failure where it stands (so that no
//! later event of its stream overtakes it), and parks what still fails, or what is not an
//! event at all, in the dead letters with its error.
//!
//! Brokers plug in with two small traits' worth of code: a [`Publisher`] for the relay,
//! and a loop that pulls messages, calls [`Receive::receive`] and acknowledges.
//!
//! [`Consumer`]: crate::subscription::Consumer

mod message;
mod receive;
mod relay;
mod requests;

pub use message::{decode, BusMessage, ContentMode, HeaderNames};
pub use receive::{receive_with, Receive, ReceivePolicy, ReceiveStatus, Received, Settled};
pub use relay::{Acknowledgement, PublishError, Publisher, Relay};
pub use requests::serve_requests;
