//! Repeated event ids, per server: one set per hour of event time, so that retention drops
//! whole hours and a lookup costs one hash probe in the newest sets.
//!
//! Owns: the id sets and their eviction. Must not touch: anything else of the server.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A pass-through hasher for keys that are already uniform hashes (xxh3-128 of event ids).
#[derive(Default)]
pub(super) struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// One hour's event ids.
pub(super) type IdSet = HashSet<u128, BuildHasherDefault<PreHashed>>;

/// Event ids seen in retention, as 128-bit hashes (a collision is ~1e-26 likely at 10^7 ids),
/// kept per event-time hour. A redelivered event repeats its `ts`, so it is looked up in the one
/// small set of its hour: a single set of millions of ids made every lookup a cache miss and
/// cost two thirds of the engine's time. Eviction drops whole hours. The newest hour, which
/// nearly every event falls in, is kept outside the map, so its inserts walk no tree nodes.
#[derive(Default)]
pub(super) struct Dedupe {
    /// The newest hour with ids, and its ids.
    pub(super) newest: Option<(i64, IdSet)>,
    /// The hours before it.
    pub(super) older: BTreeMap<i64, IdSet>,
}

/// One hour, in ms: the dedupe sets are kept per hour of event time.
pub(super) const HOUR_MS: i64 = 3_600_000;

impl Dedupe {
    pub(super) fn contains(&self, h: u128, ts: i64) -> bool {
        let hour = ts.div_euclid(HOUR_MS);
        match &self.newest {
            Some((newest, ids)) if *newest == hour => ids.contains(&h),
            _ => self.older.get(&hour).is_some_and(|s| s.contains(&h)),
        }
    }

    /// False if the id was already there.
    pub(super) fn insert(&mut self, h: u128, ts: i64) -> bool {
        let hour = ts.div_euclid(HOUR_MS);
        match &mut self.newest {
            Some((newest, ids)) if *newest == hour => ids.insert(h),
            Some((newest, _)) if *newest > hour => self
                .older
                .entry(hour)
                .or_insert_with(|| IdSet::with_hasher(Default::default()))
                .insert(h),
            _ => {
                // A new hour starts sized like the one before, so it is not rehashed as it fills.
                let hint = self.newest.as_ref().map_or(0, |(_, ids)| ids.len());
                let mut ids = IdSet::with_capacity_and_hasher(hint, Default::default());
                ids.insert(h);
                if let Some((before, old)) = self.newest.replace((hour, ids)) {
                    self.older.insert(before, old);
                }
                true
            }
        }
    }

    pub(super) fn evict_before(&mut self, horizon: i64) {
        let hour = horizon.div_euclid(HOUR_MS);
        self.older = self.older.split_off(&hour);
        if self
            .newest
            .as_ref()
            .is_some_and(|(newest, _)| *newest < hour)
        {
            self.newest = None;
        }
    }

    /// Every hour's ids, oldest first.
    pub(super) fn hours(&self) -> impl Iterator<Item = (i64, &IdSet)> {
        self.older
            .iter()
            .map(|(&hour, ids)| (hour, ids))
            .chain(self.newest.iter().map(|(hour, ids)| (*hour, ids)))
    }

    /// Built from every hour's ids.
    pub(super) fn from_hours(mut by_hour: BTreeMap<i64, IdSet>) -> Dedupe {
        let newest = by_hour.pop_last();
        Dedupe {
            newest,
            older: by_hour,
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.hours().map(|(_, ids)| ids.len()).sum()
    }
}
