//! The user's email: the welcome email is sent once. One email stream per user, with the
//! user's id.

use cqrs_core::{Aggregate, Command, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Command)]
#[command(id = user_id)]
pub enum EmailCommand {
    /// Sent by the onboarding handler when a user signs up.
    SendWelcome {
        user_id: String,
        name: String,
        to: String,
    },
}

/// An event type can be a struct. Stored as `email.send`, the name the company's other
/// services already use: `name` gives the stored name whole, whatever the Rust name.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(name = "email.send")]
pub struct EmailSent {
    pub to: String,
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmailError {
    #[error("the welcome email was already sent")]
    AlreadyWelcomed,
}

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = EmailCommand, event = EmailSent, error = EmailError)]
pub struct Email {
    welcomed: bool,
}

impl Email {
    async fn handle(&self, command: &EmailCommand, _: &()) -> Result<Vec<EmailSent>, EmailError> {
        match command {
            EmailCommand::SendWelcome { .. } if self.welcomed => Err(EmailError::AlreadyWelcomed),
            EmailCommand::SendWelcome { name, to, .. } => Ok(vec![EmailSent {
                to: to.clone(),
                subject: format!("Welcome, {name}!"),
            }]),
        }
    }

    fn apply(&mut self, _: &EmailSent) {
        self.welcomed = true;
    }
}
