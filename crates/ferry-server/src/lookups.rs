//! Credential checks of concurrent device requests, answered by shared queries.
//!
//! Every device request starts by finding the device that holds its credential. Under load,
//! one query per request spends most of its time on round trips (to the PostgreSQL server, or
//! to sqlx's SQLite worker thread), so lookups queue here and a few workers answer them in
//! batches: a worker takes the first waiting lookup and everything queued behind it, up to
//! [`MAX_BATCH`], and asks the store for all of them in one query. Nothing waits for a batch to
//! fill: an idle server answers a lone lookup at once, and batches grow only while every worker
//! is busy, which is exactly when round trips are the bottleneck.

use std::collections::HashMap;
use std::sync::Arc;

use ferry_store::{CredentialMatch, Store, StoreError};
use tokio::sync::{mpsc, oneshot, Mutex};

/// Most lookups answered by one query.
pub const MAX_BATCH: usize = 64;
/// Queries in flight at once: one per core, at least two. Measured on 2 cores with 64
/// concurrent check-ins (BENCHMARKS.md), 2 workers beat 1, 4 and 8 on both databases: fewer,
/// larger batches cost less than more round trips in parallel.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8)
}
/// Lookups waiting before senders wait too.
const QUEUE: usize = 4096;

type Reply = oneshot::Sender<Result<Option<CredentialMatch>, StoreError>>;

/// The queue of credential lookups and its workers. Dropping it stops the workers once the
/// queue is drained.
pub struct CredentialLookups {
    queue: mpsc::Sender<(String, Reply)>,
}

impl CredentialLookups {
    /// Starts the workers on the current Tokio runtime.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..workers() {
            tokio::spawn(work(store.clone(), receiver.clone()));
        }
        Self { queue }
    }

    /// The device holding the credential with this hash, with its director stamp.
    pub async fn find(&self, credential_hash: String) -> Result<Option<CredentialMatch>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Backend("the server is shutting down".to_owned());
        self.queue.send((credential_hash, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn work(store: Arc<dyn Store>, receiver: Arc<Mutex<mpsc::Receiver<(String, Reply)>>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        {
            let mut receiver = receiver.lock().await;
            if receiver.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        let hashes: Vec<String> = batch.iter().map(|(hash, _)| hash.clone()).collect();
        match store.devices_by_credentials(&hashes).await {
            Ok(found) => {
                let found: HashMap<String, CredentialMatch> = found.into_iter().collect();
                for (hash, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(found.get(&hash).cloned()));
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, lookups = batch.len(), "credential lookup failed");
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::{DeviceId, DeviceStatus};
    use ferry_store::Enrollment;
    use ferry_store_sql::SqliteStore;

    /// Many concurrent lookups, batched however the workers happen to take them, each get the
    /// device of their own credential; unknown credentials get none.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_lookups_get_their_own_device() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("ferry.db")).await.unwrap());
        for i in 0..300 {
            let enrollment = Enrollment {
                id: DeviceId::new(format!("dev-{i}")).unwrap(),
                credential_hash: format!("hash-{i}"),
                status: DeviceStatus::Accepted,
                groups: vec![],
                origin: "test".to_owned(),
                secret_hash: None,
                now: 1,
            };
            store.enroll_device(&enrollment).await.unwrap();
        }
        let lookups = Arc::new(CredentialLookups::start(store));
        let tasks: Vec<_> = (0..1000)
            .map(|i| {
                let lookups = lookups.clone();
                tokio::spawn(async move { (i, lookups.find(format!("hash-{}", i % 400)).await.unwrap()) })
            })
            .collect();
        for task in tasks {
            let (i, device) = task.await.unwrap();
            let expected = (i % 400 < 300).then(|| format!("dev-{}", i % 400));
            assert_eq!(device.map(|m| m.device.id.as_str().to_owned()), expected, "lookup {i}");
        }
    }
}
