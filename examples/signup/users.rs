//! The user: signs up once. What a sign-up sets off (a welcome email, a home folder) is
//! other handlers' business, see `subscribers.rs`.

use cqrs_core::{Aggregate, Command, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Command)]
#[command(id = user_id)]
pub enum UserCommand {
    SignUp {
        user_id: String,
        name: String,
        email: String,
    },
}

/// Stored as `user.signup`: the namespace from `prefix`, the rest from the variant's
/// name in `snake_case`.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "user.", rename_all = "snake_case")]
pub enum UserEvent {
    Signup { name: String, email: String },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UserError {
    #[error("this user has already signed up")]
    AlreadySignedUp,
    #[error("{0:?} is not an email address")]
    InvalidEmail(String),
}

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = UserCommand, event = UserEvent, error = UserError)]
pub struct User {
    signed_up: bool,
}

impl User {
    async fn handle(&self, command: &UserCommand, _: &()) -> Result<Vec<UserEvent>, UserError> {
        match command {
            UserCommand::SignUp { .. } if self.signed_up => Err(UserError::AlreadySignedUp),
            UserCommand::SignUp { email, .. } if !email.contains('@') => {
                Err(UserError::InvalidEmail(email.clone()))
            }
            UserCommand::SignUp { name, email, .. } => Ok(vec![UserEvent::Signup {
                name: name.clone(),
                email: email.clone(),
            }]),
        }
    }

    fn apply(&mut self, event: &UserEvent) {
        match event {
            UserEvent::Signup { .. } => self.signed_up = true,
        }
    }
}
