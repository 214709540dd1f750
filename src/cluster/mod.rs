//! A member of a cluster: several instances on one consumer group, each holding the servers of
//! the partitions Kafka assigned it, with each partition's state in a shared state store so it
//! can move (docs/cluster.md).
//!
//! Owns: what happens to a partition's state when Kafka moves it (final checkpoint on revoke,
//! restore and seek on assign, catching up with the previous owner), the periodic
//! per-partition checkpoints, this member's entry in the store (its address and partitions,
//! which other members read to find it), the ownership status `/readyz` and `/metrics` report,
//! and (in `query`) one SQL answer from all members. Must not touch: the consumer's loop (Kafka
//! calls in through [`PartitionOwner`]), the tables' rows (a member's scan reads its snapshot
//! through `sql::tables`).
//!
//! Kafka's group protocol decides who owns what and notices a member that died; the store is
//! only where state waits between owners. A partition with no checkpoint in the store is read
//! from its earliest retained offset, never from the group's committed offset (whose state may
//! have died with its owner).

pub mod query;
pub mod store;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use datafusion_distributed::DistributedExt;

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
    /// Until it is `restored`: the offset its previous owner had applied up to (as it last
    /// published), which this member must reach before its answers are whole.
    pub catching_up_to: Option<i64>,
}

/// Counts and the partitions owned, for `/readyz`, `/metrics` and the member's entry.
#[derive(Debug, Default)]
pub struct ClusterStatus {
    /// This member's id (its advertised HTTP address).
    pub member: String,
    /// Where state is kept.
    pub store_url: String,
    /// This member's Flight endpoint, once it listens.
    pub flight: Mutex<String>,
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
    /// Its Flight endpoint (`http://host:port`), where scans of its servers run.
    pub flight: String,
    /// When the entry was written, Unix ms.
    pub updated_ms: u64,
    /// Partitions owned and restored: (topic, partition, since when, Unix ms).
    pub restored: Vec<(String, i32, u64)>,
    /// Partitions owned and still being restored.
    pub restoring: Vec<(String, i32)>,
    /// The servers of each owned partition (named when a query waits for them).
    pub servers: Vec<((String, i32), Vec<String>)>,
    /// The newest event time of this member's servers.
    pub now_ms: Option<i64>,
    /// The next offset to read of each owned partition, as applied.
    pub positions: Vec<(String, i32, i64)>,
}

pub(crate) fn now_ms() -> u64 {
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
    /// Some owned partition is still catching up (see [`Member::progress`]).
    catching_up: std::sync::atomic::AtomicBool,
    /// This member owns the home partition: it evaluates SQL rules.
    home_owned: Arc<std::sync::atomic::AtomicBool>,
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
            catching_up: std::sync::atomic::AtomicBool::new(false),
            home_owned: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<StateStore> {
        &self.store
    }

    /// This member's engine, for the scans routed to it.
    pub fn local(&self) -> query::LocalMember {
        query::LocalMember {
            id: self.status.member.clone(),
            engine: self.engine.clone(),
            status: self.status.clone(),
            home: self.home.clone(),
        }
    }

    /// Set while this member owns the home partition (the first topic's partition 0): it
    /// evaluates SQL rules then, and only it.
    pub fn home_owned(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.home_owned.clone()
    }

    fn note_home(&self) {
        let owns = self
            .status
            .owned
            .lock()
            .expect("not poisoned")
            .contains_key(&(self.home.0.to_string(), 0));
        self.home_owned.store(owns, Relaxed);
    }

    /// Writes this member's entry to the store.
    pub fn publish(&self) {
        let owned = self.status.owned();
        let (servers, now, positions) = {
            let e = self.engine.lock().expect("engine lock");
            let servers = owned
                .iter()
                .map(|o| {
                    let k: PartitionKey = (o.topic.as_str().into(), o.partition);
                    let names = e.servers_of(&k).iter().map(|n| n.to_string()).collect();
                    ((o.topic.clone(), o.partition), names)
                })
                .collect();
            let positions = e
                .positions()
                .into_iter()
                .filter(|(t, p, _)| owned.iter().any(|o| o.topic == *t && o.partition == *p))
                .collect::<Vec<_>>();
            (servers, e.now_ms(), positions)
        };
        let entry = MemberEntry {
            member: self.status.member.clone(),
            flight: self.status.flight.lock().expect("not poisoned").clone(),
            updated_ms: now_ms(),
            restored: owned
                .iter()
                .filter(|o| o.restored)
                .map(|o| (o.topic.clone(), o.partition, o.since_ms))
                .collect(),
            restoring: owned
                .iter()
                .filter(|o| !o.restored)
                .map(|o| (o.topic.clone(), o.partition))
                .collect(),
            servers,
            now_ms: now,
            positions,
        };
        let json = serde_json::to_vec(&entry).expect("plain data");
        if let Err(e) = self.store.put_member(&self.status.member, json) {
            tracing::debug!(error = %e, "Could not publish this member's entry.");
        }
    }

    /// After a batch is applied (`e` is the engine, locked): partitions that were catching up
    /// and have reached their previous owner's position are restored now.
    pub fn progress(&self, e: &Engine) {
        if !self.catching_up.load(Relaxed) {
            return;
        }
        let positions = e.positions();
        let mut owned = self.status.owned.lock().expect("not poisoned");
        let mut still = false;
        for o in owned.values_mut().filter(|o| !o.restored) {
            let Some(target) = o.catching_up_to else {
                continue;
            };
            let at = positions
                .iter()
                .find(|(t, p, _)| *t == o.topic && *p == o.partition)
                .map(|(_, _, n)| *n);
            if at.is_some_and(|n| n >= target) {
                o.restored = true;
                o.catching_up_to = None;
                tracing::info!(topic = %o.topic, partition = o.partition, offset = target, "Caught up with the partition's previous owner.");
            } else {
                still = true;
            }
        }
        self.catching_up.store(still, Relaxed);
    }

    /// The furthest position any other member published for each partition.
    fn previous_positions(&self) -> BTreeMap<(String, i32), i64> {
        let mut out = BTreeMap::new();
        for entry in self.store.members_blocking().unwrap_or_default() {
            let Ok(e) = serde_json::from_slice::<MemberEntry>(&entry) else {
                continue;
            };
            if e.member == self.status.member {
                continue;
            }
            for (t, p, n) in e.positions {
                let v = out.entry((t, p)).or_insert(n);
                *v = (*v).max(n);
            }
        }
        out
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

/// The cluster's tables for [`crate::sql::QueryRunner`]: each query is placed on the members
/// (see [`query::place`]).
pub struct ClusterTables {
    /// Where the members' entries are.
    pub store: Arc<StateStore>,
    /// This member's consumer: how many partitions each topic has.
    pub kafka: Arc<crate::ingest::kafka::KafkaStatus>,
    /// How long a query waits for partitions in transit.
    pub wait: std::time::Duration,
    /// Members whose Flight endpoint refused a query lately (a member killed with -9 keeps its
    /// entry until it goes stale): their partitions count as in transit meanwhile.
    pub unreachable: Mutex<BTreeMap<String, Instant>>,
    /// The members of the last placement, to recognise them in errors.
    pub placed: Mutex<Vec<String>>,
    /// The gRPC channels to the members, kept from one query to the next.
    channels: datafusion_distributed::grpc::DefaultChannelResolver,
}

impl ClusterTables {
    /// Tables over the members found in `store`.
    pub fn new(
        store: Arc<StateStore>,
        kafka: Arc<crate::ingest::kafka::KafkaStatus>,
        wait: std::time::Duration,
    ) -> ClusterTables {
        ClusterTables {
            store,
            kafka,
            wait,
            unreachable: Mutex::new(BTreeMap::new()),
            placed: Mutex::new(Vec::new()),
            channels: Default::default(),
        }
    }
}

/// How long a member whose endpoint refused a query is left out of placements.
const UNREACHABLE_FOR: std::time::Duration = std::time::Duration::from_secs(15);

#[async_trait::async_trait]
impl crate::sql::RemoteTables for ClusterTables {
    async fn context(
        &self,
        base: datafusion::execution::SessionStateBuilder,
    ) -> Result<datafusion::prelude::SessionContext, crate::sql::SqlError> {
        let counts = self
            .kafka
            .partition_counts
            .lock()
            .expect("not poisoned")
            .clone();
        let unreachable: Vec<String> = {
            let mut u = self.unreachable.lock().expect("not poisoned");
            u.retain(|_, since| since.elapsed() < UNREACHABLE_FOR);
            u.keys().cloned().collect()
        };
        let placement = query::place(&self.store, &counts, &unreachable, self.wait).await?;
        *self.placed.lock().expect("not poisoned") =
            placement.tasks.iter().map(|t| t.flight.clone()).collect();
        Ok(query::cluster_context(
            placement,
            base.with_distributed_channel_resolver(self.channels.clone()),
        ))
    }

    fn retry(&self, e: &crate::sql::SqlError) -> bool {
        let text = e.to_string();
        if text.contains(query::MOVED) {
            return true;
        }
        // A member that does not answer: place the query without it.
        let placed = self.placed.lock().expect("not poisoned").clone();
        for flight in placed {
            let addr = flight.trim_start_matches("http://");
            if text.contains(addr) && (text.contains("connect") || text.contains("unavailable")) {
                tracing::warn!(member = %flight, "A member's query endpoint does not answer; placing the query without it.");
                self.unreachable
                    .lock()
                    .expect("not poisoned")
                    .insert(flight, Instant::now());
                return true;
            }
        }
        false
    }

    fn patience(&self) -> std::time::Duration {
        self.wait
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
            // Disowned first: a scan checks ownership under the engine lock, so it either
            // reads the partition whole or is told it moved; never half of it.
            self.status
                .owned
                .lock()
                .expect("not poisoned")
                .remove(&(topic.clone(), *partition));
            let captured = {
                let mut e = self.engine.lock().expect("engine lock");
                let captured = next_offset(&e, &k).map(|next| (next, e.partition_parts(&k, home)));
                e.remove_partition(&k, home);
                captured
            };
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
        self.note_home();
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
                        catching_up_to: None,
                    },
                );
            }
        }
        self.publish();
        let previous = self.previous_positions();
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
                // Whole once it has applied what the previous owner had (a member killed
                // with -9 got further than its last checkpoint).
                let target = previous
                    .get(&(topic.clone(), *partition))
                    .copied()
                    .filter(|t| *t > start.unwrap_or(0));
                o.restored = target.is_none();
                o.catching_up_to = target;
                o.restore_ms = ms;
                o.restore_bytes = bytes;
                o.started_at = start;
                if target.is_some() {
                    self.catching_up.store(true, Relaxed);
                }
            }
            offsets.push(start);
        }
        self.note_home();
        self.publish();
        offsets
    }
}
