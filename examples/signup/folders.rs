//! The user's home folder: created once. One folder stream per user, with the user's id.

use cqrs_core::{Aggregate, Command, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Command)]
#[command(id = user_id)]
pub enum FolderCommand {
    /// Sent by the onboarding handler when a user signs up.
    CreateHome { user_id: String },
}

/// Stored as `folder.create` (see `EmailSent` for why the names differ).
#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(name = "folder.create")]
pub struct FolderCreated {
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FolderError {
    #[error("the home folder already exists")]
    AlreadyExists,
}

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = FolderCommand, event = FolderCreated, error = FolderError)]
pub struct Folder {
    created: bool,
}

impl Folder {
    async fn handle(
        &self,
        command: &FolderCommand,
        _: &(),
    ) -> Result<Vec<FolderCreated>, FolderError> {
        match command {
            FolderCommand::CreateHome { .. } if self.created => Err(FolderError::AlreadyExists),
            FolderCommand::CreateHome { user_id } => Ok(vec![FolderCreated {
                path: format!("/home/{user_id}"),
            }]),
        }
    }

    fn apply(&mut self, _: &FolderCreated) {
        self.created = true;
    }
}
