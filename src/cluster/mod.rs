//! A member of a cluster: several instances on one consumer group, each holding the servers of
//! the partitions Kafka assigned it, with each partition's state in a shared state store so it
//! can move (docs/cluster.md).
//!
//! Owns: what happens to a partition's state when Kafka moves it (final checkpoint on revoke,
//! restore and seek on assign), the periodic per-partition checkpoints, this member's entry in
//! the store (its address and partitions, which other members read to find it), and the
//! ownership status `/readyz` and `/metrics` report. Must not touch: the consumer (Kafka calls
//! in through [`PartitionOwner`]), SQL.
//!
//! Kafka's group protocol decides who owns what and notices a member that died; the store is
//! only where state waits between owners. A partition with no checkpoint in the store is read
//! from its earliest retained offset, never from the group's committed offset (whose state may
//! have died with its owner).

pub mod store;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::EngineConfig;
use crate::ingest::kafka::PartitionOwner;
use crate::state::encode::EngineParts;
use crate::state::partition::PartitionKey;
use crate::state::Engine;
use store::StateStore;

/// A partition this member owns.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Owned {
    /// Topic.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// Its state is restored (or it had none) and its events are being applied.
    pub restored: bool,
    /// Since when this member owns it, Unix ms.
    pub since_ms: u64,
    /// How long restoring it took, ms.
    pub restore_ms: u64,
    /// Size of the checkpoint it was restored from, bytes (0: none, read from the start).
    pub restore_bytes: u64,
    /// The offset reading started at (None: the earliest retained).
    pub started_at: Option<i64>,
}

/// Counts and the partitions owned, for `/readyz`, `/metrics` and the member's entry.
#[derive(Debug, Default)]
pub struct ClusterStatus {
    /// This member's id (its advertised HTTP address).
    pub member: String,
    /// Where state is kept.
    pub store_url: String,
    /// Partitions owned now.
    pub owned: Mutex<BTreeMap<(String, i32), Owned>>,
    /// Partitions restored from a checkpoint.
    pub restores: AtomicU64,
    /// Partitions assigned with no checkpoint in the store (read from the start).
    pub restores_empty: AtomicU64,
    /// Restores that failed (store unreadable): read from the start instead.
    pub restore_failures: AtomicU64,
    /// Bytes of checkpoints restored, in all.
    pub restore_bytes: AtomicU64,
    /// Time spent restoring, in all, ms.
    pub restore_ms: AtomicU64,
    /// Partitions handed over (revoked, final checkpoint written or attempted).
    pub revoked: AtomicU64,
    /// Partitions' checkpoints written.
    pub checkpoints: AtomicU64,
    /// Partitions' checkpoints that could not be written.
    pub checkpoint_failures: AtomicU64,
    /// Bytes of partitions' checkpoints written, in all.
    pub checkpoint_bytes: AtomicU64,
    /// The last store error, until a write succeeds again.
    pub store_error: Mutex<Option<String>>,
}

impl ClusterStatus {
    /// The partitions owned, in order.
    pub fn owned(&self) -> Vec<Owned> {
        self.owned
            .lock()
            .expect("not poisoned")
            .values()
            .cloned()
            .collect()
    }

    fn failed(&self, e: &store::StoreError) {
        *self.store_error.lock().expect("not poisoned") = Some(e.to_string());
    }

    fn succeeded(&self) {
        self.store_error.lock().expect("not poisoned").take();
    }
}

/// This member's entry in the store: how other members reach it and what it holds.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct MemberEntry {
    /// The member's id, its advertised HTTP address `host:port`.
    pub member: String,
    /// When the entry was written, Unix ms.
    pub updated_ms: u64,
    /// Partitions owned and restored, as (topic, partition).
    pub restored: Vec<(String, i32)>,
    /// Partitions owned and still being restored.
    pub restoring: Vec<(String, i32)>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A cluster member's hold on its partitions' state: the [`PartitionOwner`] the consumer calls.
pub struct Member {
    engine: Arc<Mutex<Engine>>,
    store: Arc<StateStore>,
    status: Arc<ClusterStatus>,
    cfg: EngineConfig,
    /// The first topic's partition 0: its owner evaluates SQL rules and keeps their records.
    home: PartitionKey,
    keep: usize,
}

impl Member {
    /// A member keeping `engine`'s partitions in `store`. `home_topic`: the first topic.
    pub fn new(
        engine: Arc<Mutex<Engine>>,
        store: Arc<StateStore>,
        status: Arc<ClusterStatus>,
        cfg: EngineConfig,
        home_topic: &str,
        keep: usize,
    ) -> Member {
        Member {
            engine,
            store,
            status,
            cfg,
            home: (home_topic.into(), 0),
            keep,
        }
    }

    /// True when this member owns the home partition (it evaluates SQL rules).
    pub fn is_home(&self) -> bool {
        self.status
            .owned
            .lock()
            .expect("not poisoned")
            .contains_key(&(self.home.0.to_string(), 0))
    }

    /// Writes this member's entry to the store.
    pub fn publish(&self) {
        let owned = self.status.owned();
        let entry = MemberEntry {
            member: self.status.member.clone(),
            updated_ms: now_ms(),
            restored: owned
                .iter()
                .filter(|o| o.restored)
                .map(|o| (o.topic.clone(), o.partition))
                .collect(),
            restoring: owned
                .iter()
                .filter(|o| !o.restored)
                .map(|o| (o.topic.clone(), o.partition))
                .collect(),
        };
        let json = serde_json::to_vec(&entry).expect("plain data");
        if let Err(e) = self.store.put_member(&self.status.member, json) {
            tracing::debug!(error = %e, "Could not publish this member's entry.");
        }
    }

    /// Removes this member's entry (a clean stop: its partitions are handed over).
    pub fn withdraw(&self) {
        self.store.delete_member(&self.status.member);
    }

    /// Captures every owned partition's state for a periodic checkpoint (call between
    /// batches, so the state and its positions agree).
    pub fn capture(&self) -> Vec<(PartitionKey, i64, EngineParts)> {
        let keys: Vec<PartitionKey> = self
            .status
            .owned()
            .into_iter()
            .filter(|o| o.restored)
            .map(|o| (o.topic.as_str().into(), o.partition))
            .collect();
        let e = self.engine.lock().expect("engine lock");
        keys.into_iter()
            .filter_map(|k| {
                let next = next_offset(&e, &k)?; // nothing read of it yet: nothing to save
                let parts = e.partition_parts(&k, k == self.home);
                Some((k, next, parts))
            })
            .collect()
    }

    /// Writes captured partitions' checkpoints (on the writer thread).
    pub fn write(&self, captured: Vec<(PartitionKey, i64, EngineParts)>) {
        for (k, next, parts) in captured {
            let bytes = crate::checkpoint::frame(&parts, &[]);
            let n = bytes.len() as u64;
            match self.store.put_checkpoint(&k, next, bytes, self.keep) {
                Ok(name) => {
                    self.status.checkpoints.fetch_add(1, Relaxed);
                    self.status.checkpoint_bytes.fetch_add(n, Relaxed);
                    self.status.succeeded();
                    tracing::debug!(partition = %format!("{}/{}", k.0, k.1), %name, "Wrote a partition checkpoint.");
                }
                Err(e) => {
                    self.status.checkpoint_failures.fetch_add(1, Relaxed);
                    if self
                        .status
                        .store_error
                        .lock()
                        .expect("not poisoned")
                        .is_none()
                    {
                        tracing::error!(error = %e, "Partition checkpoint failed; ingest goes on, and a partition that moves is rebuilt from its previous checkpoint and Kafka.");
                    }
                    self.status.failed(&e);
                }
            }
        }
    }
}

fn next_offset(e: &Engine, k: &PartitionKey) -> Option<i64> {
    e.positions()
        .into_iter()
        .find(|(t, p, _)| *t == *k.0 && *p == k.1)
        .map(|(_, _, o)| o)
}

impl PartitionOwner for Member {
    fn revoked(&self, partitions: &[(String, i32)]) {
        for (topic, partition) in partitions {
            let k: PartitionKey = (topic.as_str().into(), *partition);
            let home = k == self.home;
            let captured = {
                let mut e = self.engine.lock().expect("engine lock");
                let captured = next_offset(&e, &k).map(|next| (next, e.partition_parts(&k, home)));
                e.remove_partition(&k, home);
                captured
            };
            self.status
                .owned
                .lock()
                .expect("not poisoned")
                .remove(&(topic.clone(), *partition));
            self.status.revoked.fetch_add(1, Relaxed);
            if let Some((next, parts)) = captured {
                self.write(vec![(k, next, parts)]);
            }
            tracing::info!(
                topic,
                partition,
                "Handed the partition over: its final state is in the store."
            );
        }
        self.publish();
    }

    fn assigned(&self, partitions: &[(String, i32)]) -> Vec<Option<i64>> {
        {
            let mut owned = self.status.owned.lock().expect("not poisoned");
            for (topic, partition) in partitions {
                owned.insert(
                    (topic.clone(), *partition),
                    Owned {
                        topic: topic.clone(),
                        partition: *partition,
                        restored: false,
                        since_ms: now_ms(),
                        restore_ms: 0,
                        restore_bytes: 0,
                        started_at: None,
                    },
                );
            }
        }
        self.publish();
        let mut offsets = Vec::with_capacity(partitions.len());
        for (topic, partition) in partitions {
            let k: PartitionKey = (topic.as_str().into(), *partition);
            let t = Instant::now();
            let (start, bytes) = match self.store.newest_checkpoint(&k, &self.cfg) {
                Ok(Some(loaded)) => {
                    for why in &loaded.skipped {
                        tracing::error!(checkpoint = %why, "Skipping a damaged partition checkpoint.");
                    }
                    let absorbed = self
                        .engine
                        .lock()
                        .expect("engine lock")
                        .absorb(loaded.engine, &k);
                    if !absorbed.conflicts.is_empty() {
                        tracing::warn!(topic, partition, servers = ?absorbed.conflicts, "These servers' events come from more than one partition (the producer does not key by server); this member's own state of them is kept.");
                    }
                    self.status.restores.fetch_add(1, Relaxed);
                    self.status.restore_bytes.fetch_add(loaded.bytes, Relaxed);
                    tracing::info!(topic, partition, checkpoint = %loaded.name, servers = absorbed.servers, offset = loaded.next_offset, "Restored the partition's state.");
                    (Some(loaded.next_offset), loaded.bytes)
                }
                Ok(None) => {
                    self.status.restores_empty.fetch_add(1, Relaxed);
                    tracing::info!(topic, partition, "No checkpoint of the partition in the state store: reading it from its earliest retained offset.");
                    (None, 0)
                }
                Err(e) => {
                    self.status.restore_failures.fetch_add(1, Relaxed);
                    self.status.failed(&e);
                    tracing::error!(topic, partition, error = %e, "Cannot read the partition's checkpoint: rebuilding its state from its earliest retained offset.");
                    (None, 0)
                }
            };
            let ms = t.elapsed().as_millis() as u64;
            self.status.restore_ms.fetch_add(ms, Relaxed);
            if let Some(o) = self
                .status
                .owned
                .lock()
                .expect("not poisoned")
                .get_mut(&(topic.clone(), *partition))
            {
                o.restored = true;
                o.restore_ms = ms;
                o.restore_bytes = bytes;
                o.started_at = start;
            }
            offsets.push(start);
        }
        self.publish();
        offsets
    }
}
