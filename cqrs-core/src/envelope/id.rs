//! UUID v7 ids without a system call per id.
//!
//! `uuid::Uuid::now_v7` draws its random bits from the operating system (`getrandom`)
//! for every id. The engine makes two ids per command (the event id and the correlation
//! id), and on the in-memory store those two system calls took about a quarter of a
//! command's time (profiled with `perf`, see the performance chapter of the guide). Here
//! each thread seeds a small generator (SplitMix64) once from the operating system and
//! draws from it.
//!
//! The ids are still UUID v7: a 48-bit Unix timestamp in milliseconds, then the version
//! and variant bits and 74 random bits, so they sort by creation time to the
//! millisecond. Unlike `now_v7`, ids made in the same millisecond are not ordered among
//! themselves. They are unique: within a thread the generator's state is a counter, so
//! its outputs do not repeat for 2^64 draws; across threads and processes the states are
//! seeded independently with 64 random bits. (A process that `fork`s without `exec`
//! would repeat its parent's sequence in the child; a store refuses a duplicate event id
//! rather than keeping it.)

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

thread_local! {
    static STATE: Cell<u64> = Cell::new(Uuid::new_v4().as_u64_pair().0);
}

/// The next output of SplitMix64 (a bijection of a counter: no repeats within 2^64 draws).
fn next(state: &Cell<u64>) -> u64 {
    let counter = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
    state.set(counter);
    let mut z = counter;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A new UUID v7 for now.
pub(crate) fn now_v7() -> Uuid {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    let (high, low) = STATE.with(|state| (next(state), next(state)));
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&high.to_le_bytes());
    random[8..].copy_from_slice(&low.to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_unique_version_7_and_carry_the_time() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as u64;
        let ids: Vec<Uuid> = (0..100_000).map(|_| now_v7()).collect();
        let unique: HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        for id in [ids[0], ids[ids.len() - 1]] {
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            let (seconds, nanos) = id.get_timestamp().expect("v7 has one").to_unix();
            let millis = seconds * 1_000 + u64::from(nanos) / 1_000_000;
            assert!(millis >= before && millis < before + 60_000);
        }
    }

    #[test]
    fn threads_draw_different_ids() {
        let other: Vec<Uuid> = std::thread::spawn(|| (0..1_000).map(|_| now_v7()).collect())
            .join()
            .expect("thread");
        let here: HashSet<Uuid> = (0..1_000).map(|_| now_v7()).collect();
        assert!(other.iter().all(|id| !here.contains(id)));
    }
}
