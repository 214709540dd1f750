//! Servers by input partition, for a member of a cluster: which partition each server's events
//! come from, one partition's state in checkpoint form, and moving a partition's servers out of
//! the engine (handed to another member) or into it (restored from the state store).
//!
//! Owns: the server-to-partition tags and the split and merge of engine state along them.
//! Must not touch: files, Kafka, the state store (the caller writes and reads the bytes).
//!
//! Events are keyed by server, so each server's events come from one partition and the servers
//! of a partition move together. What is not any server's (counters, SQL-rule alert records)
//! does not move: counters are this member's, and SQL-rule records travel with the *home*
//! partition (the first topic's partition 0), whose owner evaluates SQL rules.

use std::sync::Arc;

use rustc_hash::FxHashSet;

use super::encode::EngineParts;
use super::engine::Server;
use super::{Counters, Engine, Snapshot};
use crate::event::ChunkView;

/// An input partition: (topic, partition).
pub type PartitionKey = (Arc<str>, i32);

/// What merging a restored partition into the engine found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Absorbed {
    /// Servers restored.
    pub servers: usize,
    /// Servers the engine already had data of (their events came from two partitions: the
    /// producer does not key by server); the engine's own state of them is kept.
    pub conflicts: Vec<String>,
}

impl Engine {
    /// Tags the servers of `view`'s rows with the partition each row came from:
    /// `partition_of(row)` gives (index into `topics`, partition). A server keeps the first
    /// partition it was seen on; a row of it from another partition is counted in the return
    /// value (events not keyed by server). Runs on the apply path: a key is built only when a
    /// server is tagged.
    pub fn note_partitions(
        &mut self,
        view: &ChunkView,
        topics: &[&str],
        partition_of: impl Fn(usize) -> (u16, i32),
    ) -> u64 {
        let mut elsewhere = 0;
        let mut last: Option<(&str, u16, i32)> = None;
        for row in 0..view.batch.num_rows() {
            let name = view.server.value(row);
            let (t, p) = partition_of(row);
            if last == Some((name, t, p)) {
                continue;
            }
            last = Some((name, t, p));
            let Some(&i) = self.server_index.get(name) else {
                continue; // every row of it was rejected
            };
            let topic = topics[t as usize];
            match &self.servers[i].partition {
                None => self.servers[i].partition = Some((topic.into(), p)),
                Some((have, n)) if **have != *topic || *n != p => elsewhere += 1,
                Some(_) => {}
            }
        }
        elsewhere
    }

    /// The partition a server's events come from (None: not seen in a cluster yet).
    pub fn partition_of(&self, server: &str) -> Option<PartitionKey> {
        let &i = self.server_index.get(server)?;
        self.servers[i].partition.clone()
    }

    /// The servers of partition `p`, by name.
    pub fn servers_of(&self, p: &PartitionKey) -> Vec<Arc<str>> {
        let mut v: Vec<Arc<str>> = self
            .servers
            .iter()
            .filter(|s| s.partition.as_ref() == Some(p))
            .map(|s| s.name.clone())
            .collect();
        v.sort();
        v
    }

    /// Partition `p`'s state, as a checkpoint of an engine holding only its servers, their
    /// events and alert records and its position. `home`: also the alert records of no server
    /// (SQL rules). Counters are not included (they are this member's).
    pub fn partition_parts(&self, p: &PartitionKey, home: bool) -> EngineParts {
        let names = self.names_of(p);
        let (sealed, open) = self.events.parts_of_servers(&|s: &str| names.contains(s));
        self.parts_of(
            &|s: &Server| s.partition.as_ref() == Some(p),
            &|a| match &a.server {
                Some(s) => names.contains(s.as_str()),
                None => home,
            },
            &|k| k == p,
            &Counters::default(),
            sealed,
            open,
        )
    }

    /// Forgets partition `p`: its servers, their events and alert records, its position
    /// (`home`: also the alert records of no server). Configured servers stay, empty, so that
    /// their capacity is known when the partition comes back.
    pub fn remove_partition(&mut self, p: &PartitionKey, home: bool) {
        let names = self.names_of(p);
        let cfg = self.cfg.clone();
        self.servers.retain(|s| s.partition.as_ref() != Some(p));
        for n in &names {
            if let Some(sc) = cfg.servers.get(&**n) {
                self.servers
                    .push(Server::new(n, sc.site.as_deref(), sc.capacity));
            }
        }
        self.reindex_servers();
        self.events.retain_servers(&|s: &str| !names.contains(s));
        self.alerts.retain(|a| match &a.server {
            Some(s) => !names.contains(s.as_str()),
            None => !home,
        });
        self.positions.remove(p);
    }

    /// Merges `other`, partition `p`'s state read back from its checkpoint, into this engine,
    /// tagging its servers with `p`.
    pub fn absorb(&mut self, other: Engine, p: &PartitionKey) -> Absorbed {
        let mut absorbed = Absorbed::default();
        // Open sessions name their user, site, OS and app by symbols of `other`'s table.
        let remap: Vec<u32> = other
            .symbols
            .names
            .iter()
            .map(|n| self.symbols.intern(n.as_deref()))
            .collect();
        for mut s in other.servers {
            if s.first_ts.is_none() && s.pending.is_empty() {
                continue; // a configured server with nothing yet: this engine has it too
            }
            for a in s.in_order.active.values_mut() {
                for sym in [&mut a.user, &mut a.site, &mut a.os, &mut a.app] {
                    *sym = remap.get(*sym as usize).copied().unwrap_or(0);
                }
            }
            s.partition = Some(p.clone());
            match self.server_index.get(&*s.name).copied() {
                Some(i)
                    if self.servers[i].first_ts.is_some()
                        || !self.servers[i].pending.is_empty() =>
                {
                    absorbed.conflicts.push(s.name.to_string());
                }
                Some(i) => {
                    self.servers[i] = s;
                    absorbed.servers += 1;
                }
                None => {
                    self.server_index
                        .insert(Box::<str>::from(&*s.name), self.servers.len());
                    self.servers.push(s);
                    absorbed.servers += 1;
                }
            }
        }
        let conflicting: FxHashSet<&str> = absorbed.conflicts.iter().map(String::as_str).collect();
        let mut events = other.events;
        if !conflicting.is_empty() {
            events.retain_servers(&|s: &str| !conflicting.contains(s));
        }
        self.events.absorb(events);
        self.alerts.absorb(other.alerts.all());
        for (k, v) in other.positions {
            self.positions.insert(k, v);
        }
        self.now_ms = self.now_ms.max(other.now_ms);
        self.seq = self.seq.max(other.seq);
        self.rebuild_clock();
        absorbed
    }

    /// The servers of `partitions`. (A configured server no event has named yet is in no
    /// partition: every member knows it, so a cluster lists it only once its events arrive.)
    pub fn servers_of_partitions(&self, partitions: &[PartitionKey]) -> FxHashSet<Arc<str>> {
        self.servers
            .iter()
            .filter(|s| s.partition.as_ref().is_some_and(|p| partitions.contains(p)))
            .map(|s| s.name.clone())
            .collect()
    }

    fn names_of(&self, p: &PartitionKey) -> FxHashSet<Arc<str>> {
        self.servers
            .iter()
            .filter(|s| s.partition.as_ref() == Some(p))
            .map(|s| s.name.clone())
            .collect()
    }

    pub(super) fn reindex_servers(&mut self) {
        self.server_index = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| (Box::<str>::from(&*s.name), i))
            .collect();
        // The clock keys servers by their index, which just changed.
        self.rebuild_clock();
    }
}

impl Snapshot {
    /// The snapshot of only the servers in `names` (their events and alert records; with
    /// `home`, also the alert records of no server).
    pub fn only_servers(mut self, names: &FxHashSet<Arc<str>>, home: bool) -> Snapshot {
        self.servers.retain(|s| names.contains(&s.name));
        let keep = |s: &str| names.contains(s);
        self.events = self
            .events
            .iter()
            .map(|b| super::events::rows_of_servers(b, &keep))
            .filter(|b| b.num_rows() > 0)
            .collect();
        self.alerts = self
            .alerts
            .iter()
            .filter(|a| match &a.server {
                Some(s) => names.contains(s.as_str()),
                None => home,
            })
            .cloned()
            .collect();
        self
    }
}

#[cfg(test)]
mod tests;
