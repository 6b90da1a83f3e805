//! The delivery attempt log: stream `HERALD_DELIVERIES`, one subject per
//! subscription (`herald.dl.<subscription id>`), written in batches, capped
//! per subject and aged out.

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::Context as _;
use async_nats::jetstream::{
    self,
    consumer::DeliverPolicy,
    stream::{self, DiscardPolicy, RetentionPolicy, StorageType},
};
use bytes::Bytes;
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use super::{
    Nats,
    scan::{StoredMessage, read_all},
};
use crate::{
    config::Settings,
    error::{Error, Result},
};

/// Name of the JetStream stream holding delivery attempts.
pub const ATTEMPTS_STREAM: &str = "HERALD_DELIVERIES";

/// Subject of the attempts of subscription `id`.
pub fn attempts_subject(id: &str) -> String {
    format!("herald.dl.{id}")
}

/// Most records in one batch message.
pub const BATCH_RECORDS: usize = 64;
/// A batch is sent as soon as its records reach this many bytes.
pub const BATCH_BYTES: usize = 16 * 1024;
/// The batcher takes what arrived in this time at once, rather than waking per record.
const GATHER: Duration = Duration::from_millis(1);
/// Most commands the batcher takes at once.
const RECEIVE_AT_ONCE: usize = 1024;
/// Records queued for batching before appending waits (back-pressure).
const QUEUE: usize = 4096;

/// The attempt log. Records are appended in batches: one message per
/// subscription holds a JSON array of up to `BATCH_RECORDS` records, sent
/// when full or after `delivery.attempt_log_linger`, so a busy subscription costs
/// JetStream one stored message per batch rather than one per attempt.
#[derive(Clone)]
pub struct AttemptLog {
    nats: Nats,
    stream: Arc<stream::Stream>,
    queue: mpsc::Sender<Command>,
}

enum Command {
    Append { id: String, record: Bytes, confirmed: Option<oneshot::Sender<Result<()>>> },
    Flush(oneshot::Sender<()>),
}

impl AttemptLog {
    pub(super) async fn open(nats: Nats, js: jetstream::Context, settings: &Settings) -> anyhow::Result<Self> {
        let config = stream::Config {
            name: ATTEMPTS_STREAM.to_owned(),
            description: Some("Herald webhook delivery attempts".into()),
            subjects: vec!["herald.dl.*".to_owned()],
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            storage: StorageType::File,
            // Counts batches, so at least this many records are kept; reading trims to it.
            max_messages_per_subject: settings.delivery.attempt_log_per_subscription,
            max_age: settings.delivery.attempt_log_max_age,
            num_replicas: settings.nats.replicas,
            allow_direct: true,
            ..Default::default()
        };
        js.create_or_update_stream(config).await.context("failed to create the delivery attempt stream")?;
        let stream = js.get_stream(ATTEMPTS_STREAM).await.context("failed to open the delivery attempt stream")?;
        let (queue, commands) = mpsc::channel(QUEUE);
        let linger = settings.delivery.attempt_log_linger;
        tokio::spawn(Batcher { nats: nats.clone(), js, linger, pending: HashMap::new(), oldest: None }.run(commands));
        Ok(AttemptLog { nats, stream: Arc::new(stream), queue })
    }

    /// Appends an attempt record (JSON) for subscription `id` to its next
    /// batch, without waiting for JetStream's acknowledgement: the log
    /// records deliveries, it is not part of them. While NATS is unreachable
    /// batches are dropped (and the loss logged) rather than buffered.
    pub async fn append(&self, id: &str, record: Bytes) {
        let command = Command::Append { id: id.to_owned(), record, confirmed: None };
        let _ = self.queue.send(command).await;
    }

    /// Appends an attempt record, sending its batch at once, and waits until
    /// JetStream stored it (for attempts whose result goes back to a caller).
    pub async fn append_confirmed(&self, id: &str, record: Bytes) -> Result<()> {
        let (reply, stored) = oneshot::channel();
        let command = Command::Append { id: id.to_owned(), record, confirmed: Some(reply) };
        self.queue.send(command).await.map_err(|_| Error::Unavailable("the attempt log is closed".into()))?;
        stored.await.map_err(|_| Error::Unavailable("the attempt log is closed".into()))?
    }

    /// Sends every pending batch (at shutdown).
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.queue.send(Command::Flush(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }

    /// Every kept attempt of subscription `id`, oldest first.
    /// (Batches: each payload is a JSON array of records.)
    pub async fn list(&self, id: &str) -> Result<Vec<StoredMessage>> {
        read_all(&self.nats, &self.stream, vec![attempts_subject(id)], DeliverPolicy::All, usize::MAX, u64::MAX).await
    }

    /// Drops the attempts of a deleted subscription.
    pub async fn purge(&self, id: &str) {
        if let Err(err) = self.stream.purge().filter(attempts_subject(id)).await {
            tracing::warn!(subscription = id, error = %err, "failed to purge delivery attempts");
        }
    }
}

/// Records of one subscription waiting to be sent.
#[derive(Default)]
struct Batch {
    records: Vec<Bytes>,
    bytes: usize,
}

impl Batch {
    /// The records as one JSON array.
    fn into_json(self) -> Bytes {
        let mut body = Vec::with_capacity(self.bytes + 1);
        body.push(b'[');
        for (i, record) in self.records.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(record);
        }
        body.push(b']');
        Bytes::from(body)
    }
}

/// Owns the pending batches; the only writer of delivery attempts.
struct Batcher {
    nats: Nats,
    js: jetstream::Context,
    /// Longest a record waits in its batch before it is sent.
    linger: Duration,
    pending: HashMap<String, Batch>,
    /// When the oldest pending record arrived.
    oldest: Option<Instant>,
}

impl Batcher {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut received = Vec::with_capacity(RECEIVE_AT_ONCE);
        loop {
            let due = self.oldest.map(|at| at + self.linger);
            tokio::select! {
                n = commands.recv_many(&mut received, RECEIVE_AT_ONCE) => {
                    if n == 0 {
                        return self.send_all().await;
                    }
                    for command in received.drain(..) {
                        self.handle(command).await;
                    }
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    self.send_all().await;
                }
            }
            // Let records gather instead of waking for each one.
            tokio::time::sleep(GATHER).await;
        }
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Append { id, record, confirmed } => {
                self.oldest.get_or_insert_with(Instant::now);
                let batch = self.pending.entry(id.clone()).or_default();
                batch.bytes += record.len() + 1;
                batch.records.push(record);
                if let Some(reply) = confirmed {
                    self.send_confirmed(&id, reply).await;
                } else if batch.records.len() >= BATCH_RECORDS || batch.bytes >= BATCH_BYTES {
                    self.send(&id).await;
                }
            }
            Command::Flush(done) => {
                self.send_all().await;
                let _ = done.send(());
            }
        }
    }

    /// Removes subscription `id`'s batch; with none left pending, no linger is due.
    fn take(&mut self, id: &str) -> Option<Batch> {
        let batch = self.pending.remove(id);
        if self.pending.is_empty() {
            self.oldest = None;
        }
        batch
    }

    async fn send(&mut self, id: &str) {
        if let Some(batch) = self.take(id) {
            self.publish(id, batch).await;
        }
    }

    async fn send_all(&mut self) {
        self.oldest = None;
        for (id, batch) in std::mem::take(&mut self.pending) {
            self.publish(&id, batch).await;
        }
    }

    /// Publishes `batch` without waiting for JetStream's confirmation.
    async fn publish(&self, id: &str, batch: Batch) {
        let records = batch.records.len();
        let sent = match self.nats.ensure_connected() {
            Ok(()) => {
                self.nats.client().publish(attempts_subject(id), batch.into_json()).await.map_err(|e| e.to_string())
            }
            Err(err) => Err(err.to_string()),
        };
        if let Err(err) = sent {
            tracing::warn!(subscription = id, records, error = %err, "failed to log delivery attempts");
        }
    }

    /// Sends subscription `id`'s batch; `reply` gets JetStream's
    /// confirmation (awaited aside, so the batcher never waits on it).
    async fn send_confirmed(&mut self, id: &str, reply: oneshot::Sender<Result<()>>) {
        let Some(batch) = self.take(id) else { return };
        if let Err(err) = self.nats.ensure_connected() {
            let _ = reply.send(Err(err));
            return;
        }
        match self.js.publish(attempts_subject(id), batch.into_json()).await {
            Ok(ack) => {
                let nats = self.nats.clone();
                tokio::spawn(async move {
                    let stored = ack.await.map(drop).map_err(|e| nats.failure("failed to log a delivery attempt", e));
                    let _ = reply.send(stored);
                });
            }
            Err(err) => {
                let _ = reply.send(Err(self.nats.failure("failed to log a delivery attempt", err)));
            }
        }
    }
}
