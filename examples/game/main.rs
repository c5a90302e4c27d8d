//! # Game: a player's run through a level, as events
//!
//! Run it with `cargo run --example game`. It needs no set-up: events are kept in
//! memory. With `DATABASE_URL` set, the same code runs on PostgreSQL (schema
//! `game_example`).
//!
//! What it shows:
//! - the player's state (ammo, lives, points) as a fold over its events;
//! - refusals as typed errors: a fight without enough ammo, anything once dead;
//! - one command that records two events at once (a fatal fight: fought, then died);
//! - snapshots every few events, taken by the engine's snapshot policy, so that loading
//!   reads the snapshot and only the events after it;
//! - "undo" as a temporal query: the state at an earlier version, the log untouched;
//! - a replay of the whole run from the log, step by step, ending where the live state
//!   is.

mod player;

use cqrs_core::{codec, Aggregate, Engine, EngineError, Snapshot, SnapshotPolicy, StreamId};
use examples::Backend;
use player::{Player, PlayerCommand, PlayerError, PlayerEvent};

/// A snapshot each time the player's stream crosses a multiple of this many events.
const SNAPSHOT_EVERY: u64 = 3;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await.map(|_| ())
}

/// What the story leaves behind, for its test to check (the binary only prints).
#[cfg_attr(not(test), allow(dead_code))]
struct Story {
    refusals: Vec<PlayerError>,
    /// The player's latest snapshot.
    snapshot: Option<Snapshot>,
    /// The state now, and its version.
    live: Player,
    version: u64,
    /// The version before the last move (the fatal fight), and the state there.
    undo: (u64, Player),
    /// The state folded from the whole log.
    replayed: Player,
}

async fn run() -> Result<Story, Box<dyn std::error::Error>> {
    let backend = Backend::from_env("game_example").await?;
    println!("Game example on {}.\n", backend.description);
    let game = Engine::<Player>::new(backend.events.clone(), ()).with_snapshots(
        backend.snapshots.clone(),
        SnapshotPolicy::EveryEvents(SNAPSHOT_EVERY),
    );

    let lara = &format!("lara-{}", examples::run_id());
    let warehouse = |ammo, lives| PlayerCommand::VisitWarehouse {
        player_id: lara.clone(),
        ammo,
        lives,
    };
    let fight = |enemy: &str, shots, damage, points| PlayerCommand::Fight {
        player_id: lara.clone(),
        enemy: enemy.into(),
        shots,
        damage,
        points,
    };
    let aid_kit = |lives| PlayerCommand::UseAidKit {
        player_id: lara.clone(),
        lives,
    };
    let level = [
        ("loads 10 ammo and 2 lives", warehouse(10, 2)),
        ("fights a goblin", fight("goblin", 3, 0, 100)),
        ("fights an orc", fight("orc", 4, 1, 200)),
        ("fights a troll", fight("troll", 5, 1, 500)),
        ("finds an aid kit", aid_kit(2)),
        ("loads 10 ammo", warehouse(10, 0)),
        ("fights the troll", fight("troll", 5, 1, 500)),
        ("fights the dragon", fight("dragon", 8, 3, 1_000)),
        ("finds an aid kit", aid_kit(1)),
    ];

    println!("Lara ({lara}) plays the level:");
    let mut refusals = Vec::new();
    // The player's version, and the version before the last move that counted: "undo"
    // goes back there.
    let (mut version, mut before_last_move) = (0, 0);
    for (what, command) in level {
        match game.send(command).await {
            Ok(committed) => {
                (before_last_move, version) = (version, committed.version);
                let names: Vec<&str> = committed
                    .events
                    .iter()
                    .map(|e| e.event_type.as_str())
                    .collect();
                // A command saves events, not state: loading folds them again (from the
                // latest snapshot on).
                let now = game.load(lara).await?;
                println!(
                    "  {what:<26} v{version:<2} {:<36} {}",
                    names.join(" + "),
                    now.state
                );
            }
            Err(EngineError::Rejected(reason)) => {
                println!("  {what:<26} REFUSED: {reason}");
                refusals.push(reason);
            }
            Err(other) => return Err(other.into()),
        }
    }

    let stream = StreamId::new(Player::TYPE, lara)?;
    let snapshot = backend.snapshots.load_snapshot(&stream).await?;
    let live = game.load(lara).await?;
    println!("\nSnapshots, every {SNAPSHOT_EVERY} events, keep loading short:");
    if let Some(snapshot) = &snapshot {
        println!(
            "  the latest is at version {}: {}",
            snapshot.stream_version, snapshot.state
        );
        println!(
            "  loading Lara now reads it and the {} event(s) after it: {} (version {})",
            live.version.saturating_sub(snapshot.stream_version),
            live.state,
            live.version
        );
    }

    println!("\nUndo the last move (the dragon fight): load the state as it was before it.");
    let undo = game.load_at(lara, before_last_move).await?;
    println!("  as of version {}: {}", undo.version, undo.state);
    println!(
        "  the log is untouched: Lara is still at version {}.",
        game.load(lara).await?.version
    );

    println!("\nReplay: the whole run, read from the log and folded one event at a time:");
    let mut replayed = Player::default();
    for stored in backend.events.read_stream(&stream, 1, usize::MAX).await? {
        let event = codec::decode_data::<PlayerEvent>(&stored)?;
        replayed.apply(&event);
        println!(
            "  v{} {} {}\n       => {replayed}",
            stored.stream_version, stored.event_type, stored.data
        );
    }
    if replayed != live.state {
        let live = &live.state;
        return Err(format!("the replay ended at {replayed}, the live state is {live}").into());
    }
    println!("  the replay ends where the live state is.");

    Ok(Story {
        refusals,
        snapshot,
        live: live.state,
        version: live.version,
        undo: (undo.version, undo.state),
        replayed,
    })
}

#[cfg(test)]
mod story {
    use super::*;

    /// The whole example, on the backend the test command provides (PostgreSQL under
    /// `scripts/test`), so that it cannot rot on either backend.
    #[tokio::test]
    async fn the_game_story_runs_to_the_end() {
        let story = run().await.expect("the game example runs");
        assert_eq!(
            story.refusals,
            [
                PlayerError::OutOfAmmo { ammo: 3, needed: 5 },
                PlayerError::Dead
            ]
        );
        // Eight events: six commands of one event, the dragon fight with two.
        assert_eq!(story.version, 8);
        assert_eq!(
            story.live,
            Player {
                ammo: 0,
                lives: 0,
                points: 1_800,
                dead: true
            }
        );
        // Taken at versions 3 and 6 (the commit from 6 to 8 crossed no multiple of 3);
        // the store keeps the latest.
        let snapshot = story.snapshot.expect("a snapshot was taken");
        assert_eq!(snapshot.stream_version, 6);
        let at_six = Player {
            ammo: 8,
            lives: 2,
            points: 800,
            dead: false,
        };
        assert_eq!(
            serde_json::from_value::<Player>(snapshot.state).expect("a player"),
            at_six
        );
        // Undo: the state before the dragon fight.
        assert_eq!(story.undo, (6, at_six));
        assert_eq!(story.replayed, story.live);
    }
}
