//! The balances read model: the owner and balance of each account, kept up to date by a
//! projection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};

use cqrs_core::{codec, Aggregate, Envelope, Projection, StreamId, StreamStore};

use crate::domain::{Account, AccountEvent};

/// Owner and balance of every account, shared between the projection (which writes) and
/// the application (which reads). Cloning shares the same map.
#[derive(Debug, Clone, Default, Projection)]
#[projection(event = AccountEvent)]
pub struct Balances {
    accounts: Arc<RwLock<HashMap<String, Balance>>>,
}

/// What the view knows of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Balance {
    /// The owner's name: a copy of personal data, which this view has to clean itself
    /// when the owner is forgotten ([`Balances::rebuild`]).
    pub owner: String,
    pub balance: u64,
    /// The last stream version applied: how up to date this row is (the view is
    /// eventually consistent). Delivery is at-least-once, so an event at or below it is a
    /// repeat and is ignored.
    pub version: u64,
}

impl Balance {
    fn apply(&mut self, event: &Envelope<AccountEvent>) {
        if event.stream_version <= self.version {
            return;
        }
        match &event.data {
            AccountEvent::Opened { owner, .. } => self.owner.clone_from(owner),
            AccountEvent::Deposited { amount } => self.balance += amount,
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
        }
        self.version = event.stream_version;
    }
}

impl Balances {
    /// The owner and balance of an account, and the version it is at, if it is open.
    pub fn get(&self, account_id: &str) -> Option<Balance> {
        self.accounts.read().ok()?.get(account_id).cloned()
    }

    /// Rebuilds the rows of `streams` from their events as `store` reads them now.
    ///
    /// After `Engine::forget` the store shows a placeholder in place of the forgotten
    /// customer's name, but this view still holds the name it copied: read models (and
    /// copies on a message bus) are the application's to clean. `forget` returns the
    /// streams that held the customer's data; rebuilding just those rows is enough (other
    /// streams, of other types, are other views' business).
    // The http example shares this module, and forgets no one.
    #[allow(dead_code)]
    pub async fn rebuild(
        &self,
        store: &dyn StreamStore,
        streams: &[StreamId],
    ) -> Result<(), Box<dyn std::error::Error>> {
        for stream in streams.iter().filter(|s| s.stream_type() == Account::TYPE) {
            let mut row = Balance::default();
            for stored in store.read_stream(stream, 1, usize::MAX).await? {
                row.apply(&codec::decode::<AccountEvent>(&stored)?);
            }
            let mut accounts = self.accounts.write().unwrap_or_else(|e| e.into_inner());
            let current = accounts.entry(stream.id().to_owned()).or_default();
            // A commit that landed while we read is in the view already: keep the newer row.
            if row.version >= current.version {
                *current = row;
            }
        }
        Ok(())
    }
}

impl Balances {
    async fn reset(&self) -> Result<(), Infallible> {
        self.accounts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }

    async fn handle(&self, event: &Envelope<AccountEvent>) -> Result<(), Infallible> {
        // A poisoned lock still holds consistent rows: `apply` changes a row only where
        // nothing can fail half-way.
        let mut accounts = self.accounts.write().unwrap_or_else(|e| e.into_inner());
        accounts
            .entry(event.stream.id().to_owned())
            .or_default()
            .apply(event);
        Ok(())
    }
}
