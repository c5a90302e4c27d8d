//! The application's events and their handlers: one handler per event type, as the
//! registry (`registry.rs`) checks at start-up.
//!
//! | event type      | handler       | what it does                                  |
//! |-----------------|---------------|-----------------------------------------------|
//! | `user.signup`   | `onboarding`  | sends the welcome email, creates the home folder |
//! | `email.send`    | `mailer`      | hands the email to the mail server            |
//! | `folder.create` | `file_server` | creates the folder on the file server         |

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use cqrs_core::{DomainEvent, Engine, EngineError, Envelope, ProcessManager};

use crate::email::{Email, EmailCommand, EmailError, EmailSent};
use crate::folders::{Folder, FolderCommand, FolderCreated, FolderError};
use crate::users::UserEvent;

/// Every event of the application, from its three aggregates: the type the handlers
/// read. Each variant keeps its inner type's stored names.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
pub enum SignupEvent {
    #[event(flatten)]
    User(UserEvent),
    #[event(flatten)]
    Email(EmailSent),
    #[event(flatten)]
    Folder(FolderCreated),
}

/// Why onboarding a user failed.
#[derive(Debug, thiserror::Error)]
pub enum OnboardingFailed {
    #[error("the welcome email: {0}")]
    Email(#[from] EngineError<EmailError>),
    #[error("the home folder: {0}")]
    Folder(#[from] EngineError<FolderError>),
}

/// On `user.signup`: sends the welcome email and creates the home folder, each a command
/// to its own aggregate.
#[derive(Clone, ProcessManager)]
#[process_manager(event = SignupEvent, error = OnboardingFailed, events(User))]
pub struct Onboarding {
    pub email: Engine<Email>,
    pub folders: Engine<Folder>,
}

impl Onboarding {
    async fn handle(&self, event: &Envelope<SignupEvent>) -> Result<(), OnboardingFailed> {
        // `events(User)` above: the store delivers nothing else.
        let SignupEvent::User(UserEvent::Signup { name, email }) = &event.data else {
            return Ok(());
        };
        // The email and the folder streams have the user's id.
        let user_id = event.stream.id().to_owned();
        let welcome = EmailCommand::SendWelcome {
            user_id: user_id.clone(),
            name: name.clone(),
            to: email.clone(),
        };
        // Caused by the event: its correlation id carries on, its id becomes the
        // causation id, and a redelivery of it returns the first outcome instead of
        // sending a second email.
        self.email.send_caused_by(welcome, event).await?;
        let home = FolderCommand::CreateHome { user_id };
        self.folders.send_caused_by(home, event).await?;
        Ok(())
    }
}

/// On `email.send`: hands the email to the mail server (here, a list in memory standing in
/// for one).
#[derive(Debug, Clone, Default, ProcessManager)]
#[process_manager(event = SignupEvent, events(Email))]
pub struct Mailer {
    /// By event id: delivery is at-least-once, and a repeat must not send twice (a real
    /// mail API takes the event id as its idempotency key).
    sent: Arc<Mutex<BTreeMap<uuid::Uuid, EmailSent>>>,
}

impl Mailer {
    /// The emails sent, oldest first.
    pub fn sent(&self) -> Vec<EmailSent> {
        let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        sent.values().cloned().collect()
    }

    async fn handle(&self, event: &Envelope<SignupEvent>) -> Result<(), Infallible> {
        if let SignupEvent::Email(email) = &event.data {
            let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
            sent.entry(event.event_id).or_insert_with(|| email.clone());
        }
        Ok(())
    }
}

/// On `folder.create`: creates the folder on the file server (here, a set of paths in
/// memory standing in for one). Creating a folder that exists changes nothing, so a
/// repeated delivery is harmless.
#[derive(Debug, Clone, Default, ProcessManager)]
#[process_manager(event = SignupEvent, events(Folder))]
pub struct FileServer {
    folders: Arc<Mutex<BTreeSet<String>>>,
}

impl FileServer {
    /// The folders on the server.
    pub fn folders(&self) -> Vec<String> {
        let folders = self.folders.lock().unwrap_or_else(|e| e.into_inner());
        folders.iter().cloned().collect()
    }

    async fn handle(&self, event: &Envelope<SignupEvent>) -> Result<(), Infallible> {
        if let SignupEvent::Folder(FolderCreated { path }) = &event.data {
            let mut folders = self.folders.lock().unwrap_or_else(|e| e.into_inner());
            folders.insert(path.clone());
        }
        Ok(())
    }
}
