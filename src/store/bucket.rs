//! A typed key-value bucket (JSON values) with an in-memory mirror.
//!
//! Reads hit the mirror and fall back to NATS on a miss (a key written a
//! moment ago by another replica); writes go to NATS first and then into the
//! mirror. The watch task keeps every replica's mirror current, which is how
//! revocations reach all replicas without a restart.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use async_nats::jetstream::kv::{self, CreateErrorKind, Operation};
use futures::StreamExt as _;
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{Nats, mirror::Mirror};
use crate::error::{Error, Result};

/// How long opening a bucket may take to load its current contents.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A typed, mirrored key-value bucket.
pub struct Bucket<T> {
    name: &'static str,
    kv: kv::Store,
    mirror: Arc<Mirror<T>>,
    nats: Arc<Nats>,
}

impl<T> Clone for Bucket<T> {
    fn clone(&self) -> Self {
        Bucket { name: self.name, kv: self.kv.clone(), mirror: self.mirror.clone(), nats: self.nats.clone() }
    }
}

impl<T> Bucket<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Starts the watch and waits until the mirror holds the bucket's contents.
    pub(super) async fn open(
        nats: Arc<Nats>,
        name: &'static str,
        kv: kv::Store,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let mirror = Arc::new(Mirror::default());
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::spawn(watch(name, kv.clone(), mirror.clone(), shutdown, ready_tx));
        tokio::time::timeout(LOAD_TIMEOUT, ready_rx)
            .await
            .with_context(|| format!("timed out loading key-value bucket {name}"))?
            .with_context(|| format!("failed to load key-value bucket {name}"))?;
        Ok(Bucket { name, kv, mirror, nats })
    }

    /// The value of `key`, from the mirror or, on a miss, from NATS.
    pub async fn get(&self, key: &str) -> Result<Option<Arc<T>>> {
        if let Some(known) = self.mirror.lookup(key) {
            return Ok(known);
        }
        let entry = self.kv.entry(key).await.map_err(|e| self.nats.failure("failed to read key-value entry", e))?;
        match entry {
            Some(entry) if entry.operation == Operation::Put => {
                let value = Arc::new(self.decode(&entry.value)?);
                self.mirror.put(key, entry.revision, value.clone());
                Ok(Some(value))
            }
            _ => Ok(None),
        }
    }

    /// The mirrored value of `key`, without asking NATS.
    pub fn cached(&self, key: &str) -> Option<Arc<T>> {
        self.mirror.lookup(key).flatten()
    }

    /// Stores `value` under `key` unless the key exists (ALREADY_EXISTS).
    pub async fn create(&self, key: &str, value: T) -> Result<Arc<T>> {
        self.nats.ensure_connected()?;
        let bytes = self.encode(&value)?;
        let revision = self.kv.create(key, bytes).await.map_err(|e| match e.kind() {
            CreateErrorKind::AlreadyExists => Error::AlreadyExists(format!("{} {key}", self.name)),
            _ => self.nats.failure("failed to create key-value entry", e),
        })?;
        let value = Arc::new(value);
        self.mirror.put_local(key, revision, value.clone());
        Ok(value)
    }

    /// Stores `value` under `key`, replacing any earlier value.
    pub async fn put(&self, key: &str, value: T) -> Result<Arc<T>> {
        self.nats.ensure_connected()?;
        let bytes = self.encode(&value)?;
        let revision =
            self.kv.put(key, bytes).await.map_err(|e| self.nats.failure("failed to write key-value entry", e))?;
        let value = Arc::new(value);
        self.mirror.put_local(key, revision, value.clone());
        Ok(value)
    }

    /// Deletes `key` (a no-op when absent).
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.nats.ensure_connected()?;
        self.kv.delete(key).await.map_err(|e| self.nats.failure("failed to delete key-value entry", e))?;
        self.mirror.delete_local(key);
        Ok(())
    }

    /// Every mirrored value whose key and value satisfy `keep`.
    pub fn select(&self, keep: impl FnMut(&str, &T) -> bool) -> Vec<Arc<T>> {
        self.mirror.select(keep)
    }

    fn encode(&self, value: &T) -> Result<bytes::Bytes> {
        serde_json::to_vec(value).map(Into::into).map_err(|e| Error::internal("failed to encode a stored value", e))
    }

    fn decode(&self, bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| Error::internal("failed to decode a stored value", e))
    }
}

/// Keeps `mirror` in step with the bucket until `shutdown`; re-watches after errors.
async fn watch<T: DeserializeOwned>(
    name: &'static str,
    kv: kv::Store,
    mirror: Arc<Mirror<T>>,
    shutdown: CancellationToken,
    ready: oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    loop {
        if ready.is_some() && kv.status().await.is_ok_and(|status| status.values() == 0) {
            let _ = ready.take().map(|tx| tx.send(()));
        }
        match kv.watch_with_history(">").await {
            Ok(mut entries) => loop {
                let item = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    item = entries.next() => item,
                };
                match item {
                    Some(Ok(entry)) => {
                        apply(name, &mirror, &entry);
                        if entry.delta == 0 {
                            let _ = ready.take().map(|tx| tx.send(()));
                        }
                    }
                    Some(Err(err)) => {
                        tracing::warn!(bucket = name, error = %err, "key-value watch failed; re-watching");
                        break;
                    }
                    None => break,
                }
            },
            Err(err) => tracing::warn!(bucket = name, error = %err, "cannot watch key-value bucket; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn apply<T: DeserializeOwned>(name: &str, mirror: &Mirror<T>, entry: &kv::Entry) {
    match entry.operation {
        Operation::Put => match serde_json::from_slice::<T>(&entry.value) {
            Ok(value) => mirror.put(&entry.key, entry.revision, Arc::new(value)),
            Err(err) => tracing::error!(bucket = name, key = %entry.key, error = %err, "skipping undecodable entry"),
        },
        Operation::Delete | Operation::Purge => mirror.delete_confirmed(&entry.key, entry.revision),
    }
}
