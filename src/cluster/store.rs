//! The shared state store: partitions' checkpoints and the members' addresses, in a directory
//! (`file:///…`, e.g. on NFS) or an object store (`s3://…`, `gs://…`, `az://…`) through the
//! `object_store` crate.
//!
//! Owns: the layout (`partitions/<topic>/<partition>/checkpoint-<next offset>-<ms>.gwc`,
//! `members/<member>.json`), keeping the newest few checkpoints, and reading back the newest
//! whole one. Must not touch: what a checkpoint holds (that is `checkpoint` and the engine).
//!
//! Writes are whole objects (a directory store writes a temporary file and renames it), so a
//! reader sees an old checkpoint or a new one, never half of one. A checkpoint's name starts
//! with the offset it resumes at, so the newest is the furthest along whichever member wrote it
//! and whenever its write finished.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::config::{EngineConfig, StateStoreUrl};
use crate::state::partition::PartitionKey;
use crate::state::Engine;

/// A problem with the state store, in one sentence.
#[derive(Debug, thiserror::Error)]
#[error("state store {url}: cannot {what}: {source}; check that it exists and that this member may read and write it")]
pub struct StoreError {
    url: String,
    what: String,
    source: object_store::Error,
}

/// A partition's checkpoint read back.
pub struct Loaded {
    /// The partition's state.
    pub engine: Engine,
    /// The offset to resume reading at.
    pub next_offset: i64,
    /// Size of the checkpoint, bytes.
    pub bytes: u64,
    /// Its name in the store.
    pub name: String,
    /// Newer checkpoints that could not be read, each with why.
    pub skipped: Vec<String>,
}

/// The store, with a runtime of its own for callers on plain threads (the rebalance callback,
/// the checkpoint writer).
pub struct StateStore {
    store: Arc<dyn ObjectStore>,
    root: Path,
    url: String,
    rt: tokio::runtime::Runtime,
}

impl StateStore {
    /// Opens the store `url` names (nothing is read or written yet).
    pub fn open(url: &StateStoreUrl) -> Result<StateStore, String> {
        let parsed = url::Url::parse(&url.0)
            .map_err(|e| format!("cluster.state_store {:?} is not a URL: {e}", url.0))?;
        let (store, root) = object_store::parse_url_opts(&parsed, std::env::vars())
            .map_err(|e| format!("cluster.state_store {:?}: {e}; this gatewatch reads file:// (and s3://, gs://, az:// when built with --features s3, gcs or azure)", url.0))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the state store's runtime: {e}"))?;
        Ok(StateStore {
            store: Arc::from(store),
            root,
            url: url.0.clone(),
            rt,
        })
    }

    /// The URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn err(&self, what: impl Into<String>) -> impl FnOnce(object_store::Error) -> StoreError + '_ {
        let what = what.into();
        move |source| StoreError {
            url: self.url.clone(),
            what,
            source,
        }
    }

    fn partition_dir(&self, p: &PartitionKey) -> Path {
        self.root
            .clone()
            .join("partitions")
            .join(&*p.0)
            .join(p.1.to_string())
    }

    /// Writes and reads back a probe object: a missing or read-only store is found at start.
    pub fn probe(&self, member: &str) -> Result<(), StoreError> {
        let path = self
            .root
            .clone()
            .join("members")
            .join(format!("{member}.probe"));
        self.rt.block_on(async {
            self.store
                .put(&path, PutPayload::from_static(b"probe"))
                .await
                .map_err(self.err("write a probe object"))?;
            self.store
                .delete(&path)
                .await
                .map_err(self.err("delete a probe object"))
        })
    }

    /// Writes partition `p`'s checkpoint (`bytes`, resuming at `next_offset`) and removes all
    /// but its newest `keep`. Returns the object's name.
    pub fn put_checkpoint(
        &self,
        p: &PartitionKey,
        next_offset: i64,
        bytes: Vec<u8>,
        keep: usize,
    ) -> Result<String, StoreError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let name = format!("checkpoint-{:020}-{now:013}.gwc", next_offset.max(0));
        let dir = self.partition_dir(p);
        let path = dir.clone().join(name.as_str());
        self.rt.block_on(async {
            self.store
                .put(&path, PutPayload::from(bytes))
                .await
                .map_err(self.err(format!("write {path}")))?;
            let names = self.list_checkpoints(&dir).await?;
            for old in names.iter().take(names.len().saturating_sub(keep.max(1))) {
                let _ = self.store.delete(&dir.clone().join(old.as_str())).await;
            }
            Ok(name)
        })
    }

    async fn list_checkpoints(&self, dir: &Path) -> Result<Vec<String>, StoreError> {
        let listed: Vec<_> = self
            .store
            .list(Some(dir))
            .try_collect()
            .await
            .map_err(self.err(format!("list {dir}")))?;
        let mut names: Vec<String> = listed
            .into_iter()
            .filter_map(|m| m.location.filename().map(str::to_string))
            .filter(|n| n.starts_with("checkpoint-") && n.ends_with(".gwc"))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Partition `p`'s newest checkpoint that is whole and decodes under `cfg` (None: it has
    /// none), with a sentence for each newer one that was skipped.
    pub fn newest_checkpoint(
        &self,
        p: &PartitionKey,
        cfg: &EngineConfig,
    ) -> Result<Option<Loaded>, StoreError> {
        let dir = self.partition_dir(p);
        self.rt.block_on(async {
            let names = self.list_checkpoints(&dir).await?;
            let mut skipped = Vec::new();
            for name in names.into_iter().rev() {
                let path = dir.clone().join(name.as_str());
                let bytes = match self.store.get(&path).await {
                    Ok(r) => r.bytes().await.map_err(self.err(format!("read {path}")))?,
                    Err(object_store::Error::NotFound { .. }) => continue, // pruned meanwhile
                    Err(e) => return Err(self.err(format!("read {path}"))(e)),
                };
                match crate::checkpoint::unframe(&bytes, cfg) {
                    Ok((engine, _)) => {
                        let next_offset = engine
                            .positions()
                            .iter()
                            .find(|(t, n, _)| *t == *p.0 && *n == p.1)
                            .map_or(0, |(_, _, o)| *o);
                        return Ok(Some(Loaded {
                            engine,
                            next_offset,
                            bytes: bytes.len() as u64,
                            name,
                            skipped,
                        }));
                    }
                    Err(why) => skipped.push(format!("{path}: {why}")),
                }
            }
            if skipped.is_empty() {
                Ok(None)
            } else {
                // Only damaged checkpoints: start over from the earliest offset, and say so.
                tracing::warn!(partition = %format!("{}/{}", p.0, p.1), ?skipped, "No whole checkpoint of the partition in the state store.");
                Ok(None)
            }
        })
    }

    /// Writes this member's entry (`members/<member>.json`).
    pub fn put_member(&self, member: &str, json: Vec<u8>) -> Result<(), StoreError> {
        let path = self.member_path(member);
        self.rt.block_on(async {
            self.store
                .put(&path, PutPayload::from(json))
                .await
                .map(|_| ())
                .map_err(self.err(format!("write {path}")))
        })
    }

    /// Removes this member's entry (a clean stop).
    pub fn delete_member(&self, member: &str) {
        let path = self.member_path(member);
        let _ = self.rt.block_on(self.store.delete(&path));
    }

    fn member_path(&self, member: &str) -> Path {
        let safe: String = member
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.root
            .clone()
            .join("members")
            .join(format!("{safe}.json"))
    }

    /// Every member's entry, as written (for callers on plain threads).
    pub fn members_blocking(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.rt.block_on(self.members())
    }

    /// Every member's entry, as written (for callers on a runtime already).
    pub async fn members(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let dir = self.root.clone().join("members");
        let listed: Vec<_> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(self.err(format!("list {dir}")))?;
        let mut out = Vec::new();
        for m in listed {
            if !m.location.as_ref().ends_with(".json") {
                continue;
            }
            match self.store.get(&m.location).await {
                Ok(r) => {
                    if let Ok(b) = r.bytes().await {
                        out.push(b.to_vec());
                    }
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err(format!("read {}", m.location))(e)),
            }
        }
        Ok(out)
    }
}
