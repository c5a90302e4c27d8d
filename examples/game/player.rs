//! The player: loads supplies in warehouses, fights, heals with aid kits, and may die.

use std::fmt;

use cqrs_core::{Aggregate, Command, DomainEvent};
use serde::{Deserialize, Serialize};

/// The most ammo a player can carry: a warehouse hands out no more than fits.
pub const MAX_AMMO: u32 = 99;
/// The most lives a player can have.
pub const MAX_LIVES: u32 = 9;

#[derive(Debug, Clone, Command)]
#[command(id = player_id)]
pub enum PlayerCommand {
    VisitWarehouse {
        player_id: String,
        ammo: u32,
        lives: u32,
    },
    /// Costs `shots` rounds of ammo and up to `damage` lives; earns `points`.
    Fight {
        player_id: String,
        enemy: String,
        shots: u32,
        damage: u32,
        points: u32,
    },
    UseAidKit {
        player_id: String,
        lives: u32,
    },
}

/// Stored as `player.supplies_loaded`, `player.fought`, `player.aid_kit_used` and
/// `player.died`.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "player.", rename_all = "snake_case")]
pub enum PlayerEvent {
    SuppliesLoaded {
        ammo: u32,
        lives: u32,
    },
    Fought {
        enemy: String,
        ammo_used: u32,
        lives_lost: u32,
        points: u32,
    },
    AidKitUsed {
        lives: u32,
    },
    Died,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlayerError {
    #[error("the player is dead")]
    Dead,
    #[error("out of ammo: {needed} shots needed, {ammo} left")]
    OutOfAmmo { ammo: u32, needed: u32 },
}

/// The player's state: a fold over the events, and what a snapshot stores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Aggregate)]
#[aggregate(command = PlayerCommand, event = PlayerEvent, error = PlayerError)]
pub struct Player {
    pub ammo: u32,
    pub lives: u32,
    pub points: u64,
    pub dead: bool,
}

impl fmt::Display for Player {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ammo {:>2}, lives {}, points {:>4}",
            self.ammo, self.lives, self.points
        )?;
        if self.dead {
            f.write_str(", dead")?;
        }
        Ok(())
    }
}

impl Player {
    async fn handle(
        &self,
        command: &PlayerCommand,
        _: &(),
    ) -> Result<Vec<PlayerEvent>, PlayerError> {
        use PlayerCommand::*;
        if self.dead {
            return Err(PlayerError::Dead);
        }
        match command {
            VisitWarehouse { ammo, lives, .. } => Ok(vec![PlayerEvent::SuppliesLoaded {
                ammo: (*ammo).min(MAX_AMMO.saturating_sub(self.ammo)),
                lives: (*lives).min(MAX_LIVES.saturating_sub(self.lives)),
            }]),
            Fight { shots, .. } if *shots > self.ammo => Err(PlayerError::OutOfAmmo {
                ammo: self.ammo,
                needed: *shots,
            }),
            Fight {
                enemy,
                shots,
                damage,
                points,
                ..
            } => {
                let lives_lost = (*damage).min(self.lives);
                let mut events = vec![PlayerEvent::Fought {
                    enemy: enemy.clone(),
                    ammo_used: *shots,
                    lives_lost,
                    points: *points,
                }];
                // One command, two facts, appended together or not at all.
                if *damage > 0 && lives_lost == self.lives {
                    events.push(PlayerEvent::Died);
                }
                Ok(events)
            }
            UseAidKit { lives, .. } => Ok(vec![PlayerEvent::AidKitUsed {
                lives: (*lives).min(MAX_LIVES.saturating_sub(self.lives)),
            }]),
        }
    }

    /// Saturating arithmetic: `handle` keeps the numbers in range, and the fold must not
    /// panic whatever the log holds.
    fn apply(&mut self, event: &PlayerEvent) {
        match event {
            PlayerEvent::SuppliesLoaded { ammo, lives } => {
                self.ammo = self.ammo.saturating_add(*ammo);
                self.lives = self.lives.saturating_add(*lives);
            }
            PlayerEvent::Fought {
                ammo_used,
                lives_lost,
                points,
                ..
            } => {
                self.ammo = self.ammo.saturating_sub(*ammo_used);
                self.lives = self.lives.saturating_sub(*lives_lost);
                self.points = self.points.saturating_add(u64::from(*points));
            }
            PlayerEvent::AidKitUsed { lives } => self.lives = self.lives.saturating_add(*lives),
            PlayerEvent::Died => self.dead = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_core::testing::AggregateTest;

    fn player() -> AggregateTest<Player> {
        AggregateTest::new(())
    }

    fn loaded(ammo: u32, lives: u32) -> PlayerEvent {
        PlayerEvent::SuppliesLoaded { ammo, lives }
    }

    fn fight(shots: u32, damage: u32) -> PlayerCommand {
        PlayerCommand::Fight {
            player_id: "p".into(),
            enemy: "orc".into(),
            shots,
            damage,
            points: 10,
        }
    }

    #[tokio::test]
    async fn a_fight_uses_ammo_costs_lives_and_earns_points() {
        let state = player()
            .given(vec![loaded(5, 3)])
            .when(fight(2, 1))
            .await
            .then_expect_events(vec![PlayerEvent::Fought {
                enemy: "orc".into(),
                ammo_used: 2,
                lives_lost: 1,
                points: 10,
            }]);
        assert_eq!(
            state,
            Player {
                ammo: 3,
                lives: 2,
                points: 10,
                dead: false
            }
        );
    }

    #[tokio::test]
    async fn a_fight_needs_the_ammo() {
        player()
            .given(vec![loaded(1, 3)])
            .when(fight(2, 0))
            .await
            .then_expect_error(PlayerError::OutOfAmmo { ammo: 1, needed: 2 });
    }

    #[tokio::test]
    async fn losing_the_last_life_is_death_and_the_dead_do_nothing() {
        let state = player()
            .given(vec![loaded(5, 1)])
            .when(fight(1, 4))
            .await
            .then_expect_events(vec![
                PlayerEvent::Fought {
                    enemy: "orc".into(),
                    ammo_used: 1,
                    lives_lost: 1,
                    points: 10,
                },
                PlayerEvent::Died,
            ]);
        assert!(state.dead);
        player()
            .given(vec![loaded(5, 1), PlayerEvent::Died])
            .when(PlayerCommand::UseAidKit {
                player_id: "p".into(),
                lives: 1,
            })
            .await
            .then_expect_error(PlayerError::Dead);
    }

    #[tokio::test]
    async fn supplies_stop_at_what_a_player_can_carry() {
        player()
            .given(vec![loaded(90, 8)])
            .when(PlayerCommand::VisitWarehouse {
                player_id: "p".into(),
                ammo: 50,
                lives: 5,
            })
            .await
            .then_expect_events(vec![loaded(MAX_AMMO - 90, MAX_LIVES - 8)]);
    }
}
