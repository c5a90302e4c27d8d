//! # Signup: publish/subscribe with one handler per event type
//!
//! Run it with `cargo run --example signup`. It needs no set-up: events are kept in
//! memory. With `DATABASE_URL` set, the same code runs on PostgreSQL (schema
//! `signup_example`).
//!
//! What it shows:
//! - namespaced event names, `user.signup`, `email.send` and `folder.create`, from the
//!   `DomainEvent` derive's `prefix`/`rename_all` and `name` attributes;
//! - publish/subscribe: aggregates publish events, handlers subscribe to event types,
//!   each in its own subscription;
//! - exactly one handler per event type, checked at start-up: a second handler, or an
//!   event type without one, is a typed error before anything runs;
//! - a process manager that turns a sign-up into two commands (a welcome email and a
//!   home folder), each carrying the sign-up's correlation id and its event id as cause;
//! - the event log as an audit trail: every event in global order, with who asked for it
//!   or which event (and so which handler) caused it.

mod email;
mod folders;
mod registry;
mod subscribers;
mod users;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cqrs_core::{Engine, EventFilter, Metadata, Position, StoredEvent};
use email::{Email, EmailSent};
use examples::Backend;
use folders::Folder;
use registry::{Registry, RegistryError};
use subscribers::{FileServer, Mailer, Onboarding, SignupEvent};
use users::{User, UserCommand};

/// How long the demo waits for the handlers to catch up before giving up.
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await.map(|_| ())
}

/// What the story leaves behind, for its test to check (the binary only prints).
#[cfg_attr(not(test), allow(dead_code))]
struct Story {
    /// The two registries that were refused at start-up.
    refused: Vec<RegistryError>,
    /// This run's events in global order, and the handler named for each caused one.
    trail: Vec<(Arc<StoredEvent>, Option<&'static str>)>,
    /// What the mail server and the file server received.
    sent: Vec<EmailSent>,
    folders: Vec<String>,
}

async fn run() -> Result<Story, Box<dyn std::error::Error>> {
    let backend = Backend::from_env("signup_example").await?;
    println!("Signup example on {}.\n", backend.description);
    let users = Engine::<User>::new(backend.events.clone(), ());
    let onboarding = Onboarding {
        email: Engine::<Email>::new(backend.events.clone(), ()),
        folders: Engine::<Folder>::new(backend.events.clone(), ()),
    };
    let (mailer, file_server) = (Mailer::default(), FileServer::default());
    let registry = || Registry::<SignupEvent>::new(backend.events.clone());
    // Every handler keeps its checkpoint with the events: an email sent stays sent, so
    // after a restart the mailer goes on from where it was instead of sending again.
    let checkpoints = || backend.checkpoints.clone();

    println!("Start-up checks that each event type has exactly one handler:");
    let mut refused = Vec::new();
    let two_mailers = registry()
        .subscribe(mailer.clone(), checkpoints())
        .and_then(|r| r.subscribe(mailer.clone(), checkpoints()));
    let no_file_server = registry()
        .subscribe(onboarding.clone(), checkpoints())
        .and_then(|r| r.subscribe(mailer.clone(), checkpoints()))
        .and_then(Registry::start);
    for (what, attempt) in [
        ("with two mailers", two_mailers.err()),
        ("without a file server", no_file_server.err()),
    ] {
        let error = attempt.ok_or("a wrong set of handlers was accepted")?;
        println!("  {what:<22} REFUSED: {error}");
        refused.push(error);
    }
    let running = registry()
        .subscribe(onboarding, checkpoints())?
        .subscribe(mailer.clone(), checkpoints())?
        .subscribe(file_server.clone(), checkpoints())?
        .start()?;
    println!("  {:<22} started:", "with one of each");
    for (event_type, handler) in running.table() {
        println!("    {event_type:<14} -> {handler}");
    }

    println!("\nAda and Linus sign up on the web site:");
    let run = examples::run_id();
    let mut correlations = Vec::new();
    for (name, email) in [("Ada", "ada@example.com"), ("Linus", "linus@example.com")] {
        let user_id = format!("{}-{run}", name.to_lowercase());
        let sign_up = UserCommand::SignUp {
            user_id: user_id.clone(),
            name: name.into(),
            email: email.into(),
        };
        // Who asked: kept in the event's metadata, and carried into everything it causes.
        let request = Metadata::default().with_extra("actor", format!("{email} (web form)"));
        let committed = users
            .execute_with_metadata(&user_id, sign_up, request)
            .await?;
        correlations.extend(committed.events.iter().map(|e| e.metadata.correlation_id));
        println!("  {name} signs up as {user_id}: user.signup recorded");
    }

    running.caught_up(PATIENCE).await?;
    println!("\nThe handlers reacted, each in its own subscription:");
    let sent = mailer.sent();
    for email in &sent {
        println!("  the mail server sent {:?} to {}", email.subject, email.to);
    }
    let folders = file_server.folders();
    for folder in &folders {
        println!("  the file server created {folder}");
    }

    println!("\nThe event log in global order, an audit trail of who or what caused each event:");
    // A database reused across runs holds earlier runs' events: this run's are those of
    // its two sign-ups' correlations.
    let log = backend
        .events
        .read_all(Position::START, usize::MAX, &EventFilter::all())
        .await?;
    let mut trail = Vec::new();
    // Each event's line number, to name it as a cause: a cause comes before its effects.
    let mut line_of = HashMap::new();
    for event in log
        .into_iter()
        .filter(|e| correlations.contains(&e.metadata.correlation_id))
    {
        let line = trail.len() + 1;
        line_of.insert(event.event_id, (line, event.event_type.clone()));
        let cause = event.metadata.causation_id.and_then(|id| line_of.get(&id));
        let (why, handler) = match cause {
            // One handler per event type: the cause's type names the handler that
            // sent the command.
            Some((cause_line, cause_type)) => {
                let handler = running.handler_of(cause_type);
                let why = format!(
                    "caused by #{cause_line} {cause_type}, through {}",
                    handler.unwrap_or("no handler")
                );
                (why, handler)
            }
            None => {
                let actor = event.metadata.extra.get("actor");
                let why = format!("asked for by {}", actor.map_or("nobody known", |a| a));
                (why, None)
            }
        };
        // The last 8 hex digits of the correlation id are enough to tell them apart here.
        let correlation = event
            .metadata
            .correlation_id
            .map(|id| id.simple().to_string()[24..].to_owned())
            .unwrap_or_default();
        println!(
            "  #{line} {:<13} {:<22} correlation …{correlation}  {why}",
            event.event_type,
            event.stream.to_string(),
        );
        trail.push((event, handler));
    }

    running.shutdown().await?;
    Ok(Story {
        refused,
        trail,
        sent,
        folders,
    })
}

#[cfg(test)]
mod story {
    use super::*;

    /// The whole example, on the backend the test command provides (PostgreSQL under
    /// `scripts/test`), so that it cannot rot on either backend.
    #[tokio::test]
    async fn the_signup_story_runs_to_the_end() {
        let story = run().await.expect("the signup example runs");
        assert_eq!(
            story.refused,
            [
                RegistryError::SecondHandler {
                    event_type: "email.send",
                    first: "mailer",
                    second: "mailer",
                },
                RegistryError::Unhandled(vec!["folder.create"]),
            ]
        );
        // Per user: the sign-up, asked for by the user, then the email and the folder,
        // caused by it through onboarding, all under the sign-up's correlation id.
        assert_eq!(story.trail.len(), 6);
        let signups: Vec<&Arc<StoredEvent>> = story
            .trail
            .iter()
            .map(|(event, _)| event)
            .filter(|e| e.event_type == "user.signup")
            .collect();
        assert_eq!(signups.len(), 2);
        for signup in signups {
            assert_eq!(signup.metadata.causation_id, None);
            let mut caused: Vec<&str> = story
                .trail
                .iter()
                .filter(|(e, _)| e.metadata.causation_id == Some(signup.event_id))
                .map(|(e, handler)| {
                    assert_eq!(e.metadata.correlation_id, signup.metadata.correlation_id);
                    assert_eq!(e.metadata.extra, signup.metadata.extra);
                    assert_eq!(*handler, Some("onboarding"));
                    e.event_type.as_str()
                })
                .collect();
            caused.sort_unstable();
            assert_eq!(caused, ["email.send", "folder.create"]);
        }
        // The trail is in global order.
        assert!(story
            .trail
            .windows(2)
            .all(|pair| pair[0].0.position < pair[1].0.position));
        // The mail server and the file server acted once per user.
        let mut to: Vec<&str> = story.sent.iter().map(|e| e.to.as_str()).collect();
        to.sort_unstable();
        assert_eq!(to, ["ada@example.com", "linus@example.com"]);
        assert_eq!(story.folders.len(), 2);
    }
}
