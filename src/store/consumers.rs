//! Durable JetStream pull consumers on the events stream: creation, state,
//! cancel-safe batch fetches, pulls for streaming, and acknowledgements.
//!
//! A fetch never holds on to more messages than it hands back: anything
//! received after its caller went away is negatively acknowledged at once, so
//! it is available to the next fetch immediately.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
    context::{ConsumerInfoError, ConsumerInfoErrorKind},
    stream::ConsumerErrorKind,
};
use bytes::Bytes;
use futures::StreamExt as _;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use super::{EventLog, ack_subject::AckSubject};
use crate::{
    domain::consumer::Start,
    error::{Error, Result},
};

/// How a consumer is created.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    pub id: String,
    pub owner: String,
    pub filter_subjects: Vec<String>,
    pub start: Start,
    pub ack_wait: Duration,
    pub max_deliver: i64,
    pub max_in_flight: i64,
    pub inactive_threshold: Duration,
}

/// One delivered event, not yet acknowledged.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub stream_sequence: u64,
    /// 1 on first delivery.
    pub delivered: u64,
    /// The JetStream ack subject of this delivery.
    pub ack_subject: String,
    pub payload: Bytes,
}

/// A consumer's counters.
#[derive(Clone, Debug, Default)]
pub struct ConsumerState {
    /// Matching events not yet delivered.
    pub pending: u64,
    /// Delivered, not yet acknowledged.
    pub in_flight: u64,
    /// Every event at or below this stream sequence is acknowledged.
    pub ack_floor: u64,
    pub last_active: Option<OffsetDateTime>,
    /// Open pull requests.
    pub waiting: usize,
}

/// An acknowledgement to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckOp {
    Ack,
    /// Redeliver, after the delay if any.
    Nak(Option<Duration>),
    /// Never redeliver (for messages Herald cannot decode).
    Term,
}

impl AckOp {
    fn payload(self) -> Bytes {
        match self {
            AckOp::Ack => Bytes::from_static(b"+ACK"),
            AckOp::Nak(None) => Bytes::from_static(b"-NAK"),
            AckOp::Nak(Some(delay)) => Bytes::from(format!("-NAK {{\"delay\":{}}}", delay.as_nanos())),
            AckOp::Term => Bytes::from_static(b"+TERM"),
        }
    }
}

/// What JetStream said to an acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckOutcome {
    Confirmed,
    ConsumerGone,
}

/// Cached consumer handles (a handle costs an info request to obtain).
#[derive(Clone, Default)]
pub(super) struct Handles(Arc<Mutex<HashMap<String, PullConsumer>>>);

impl EventLog {
    /// Creates the durable consumer `spec.id`; ALREADY_EXISTS if taken.
    pub async fn create_consumer(&self, spec: &ConsumerSpec) -> Result<()> {
        self.nats.ensure_connected()?;
        let deliver_policy = match spec.start {
            Start::All => DeliverPolicy::All,
            Start::New => DeliverPolicy::New,
            Start::FromSequence { sequence } => DeliverPolicy::ByStartSequence { start_sequence: sequence },
            Start::FromTime { time } => DeliverPolicy::ByStartTime { start_time: time },
        };
        let (filter_subject, filter_subjects) = match spec.filter_subjects.as_slice() {
            [one] => (one.clone(), Vec::new()),
            many => (String::new(), many.to_vec()),
        };
        let config = pull::Config {
            durable_name: Some(spec.id.clone()),
            description: Some(format!("herald consumer of {}", spec.owner)),
            deliver_policy,
            ack_policy: AckPolicy::Explicit,
            ack_wait: spec.ack_wait,
            max_deliver: spec.max_deliver,
            filter_subject,
            filter_subjects,
            max_ack_pending: spec.max_in_flight,
            inactive_threshold: spec.inactive_threshold,
            num_replicas: self.replicas,
            metadata: HashMap::from([("herald_owner".to_owned(), spec.owner.clone())]),
            ..Default::default()
        };
        let consumer = self
            .stream
            .create_consumer_strict(config)
            .await
            .map_err(|e| self.nats.failure("failed to create a JetStream consumer", e))?;
        self.handles.0.lock().expect("handles lock").insert(spec.id.clone(), consumer);
        Ok(())
    }

    /// Deletes consumer `id`; false when it did not exist.
    pub async fn delete_consumer(&self, id: &str) -> Result<bool> {
        self.nats.ensure_connected()?;
        self.handles.0.lock().expect("handles lock").remove(id);
        match self.stream.delete_consumer(id).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(e.kind()) => Ok(false),
            Err(e) => Err(self.nats.failure("failed to delete a JetStream consumer", e)),
        }
    }

    /// The counters of consumer `id`, or `None` when it does not exist.
    pub async fn consumer_state(&self, id: &str) -> Result<Option<ConsumerState>> {
        let info = match self.stream.consumer_info(id).await {
            Ok(info) => info,
            Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.nats.failure("failed to read consumer state", e)),
        };
        let last_active = [info.delivered.last_active, info.ack_floor.last_active].into_iter().flatten().max();
        Ok(Some(ConsumerState {
            pending: info.num_pending,
            in_flight: info.num_ack_pending as u64,
            ack_floor: info.ack_floor.stream_sequence,
            last_active,
            waiting: info.num_waiting,
        }))
    }

    /// Names of every consumer on the events stream.
    pub async fn consumer_names(&self) -> Result<HashSet<String>> {
        let mut names = self.stream.consumer_names();
        let mut out = HashSet::new();
        while let Some(name) = names.next().await {
            out.insert(name.map_err(|e| self.nats.failure("failed to list consumers", e))?);
        }
        Ok(out)
    }

    async fn handle(&self, id: &str) -> Result<Option<PullConsumer>> {
        if let Some(handle) = self.handles.0.lock().expect("handles lock").get(id) {
            return Ok(Some(handle.clone()));
        }
        match self.stream.get_consumer::<pull::Config>(id).await {
            Ok(handle) => {
                self.handles.0.lock().expect("handles lock").insert(id.to_owned(), handle.clone());
                Ok(Some(handle))
            }
            Err(e)
                if e.downcast_ref::<ConsumerInfoError>()
                    .is_some_and(|e| e.kind() == ConsumerInfoErrorKind::NotFound) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.nats.failure("failed to open a consumer", e)),
        }
    }

    /// Fetches at most `batch` events: what is available now, else waits up
    /// to `max_wait` for the first and then takes what else is available.
    /// Returns `None` when the consumer does not exist. Cancel-safe: if the
    /// caller goes away, whatever arrives is negatively acknowledged.
    pub async fn fetch(
        &self,
        id: &str,
        batch: usize,
        max_bytes: usize,
        max_wait: Duration,
    ) -> Result<Option<Vec<Delivery>>> {
        self.nats.ensure_connected()?;
        let Some(consumer) = self.handle(id).await? else { return Ok(None) };
        let (tx, rx) = oneshot::channel();
        let log = self.clone();
        let id_owned = id.to_owned();
        tokio::spawn(async move {
            let result = fetch_steps(&consumer, (batch, max_bytes), max_wait, &tx).await;
            if let Err(Ok(unclaimed)) = tx.send(result) {
                log.release(&unclaimed).await;
                tracing::debug!(consumer = %id_owned, released = unclaimed.len(), "fetch caller went away");
            }
        });
        match rx.await {
            Ok(Ok(deliveries)) => Ok(Some(deliveries)),
            Ok(Err(err)) => {
                // A vanished consumer shows up as a failed pull.
                if self.consumer_state(id).await?.is_none() {
                    self.handles.0.lock().expect("handles lock").remove(id);
                    return Ok(None);
                }
                Err(self.nats.failure("failed to fetch events", err))
            }
            Err(_) => Err(Error::Internal(anyhow::anyhow!("fetch task ended without a result"))),
        }
    }

    /// Opens one pull request for up to `max` events, ending after `expires`.
    /// Returns `None` when the consumer does not exist.
    pub async fn pull(&self, id: &str, max: usize, expires: Duration) -> Result<Option<Pull>> {
        let Some(consumer) = self.handle(id).await? else { return Ok(None) };
        let batch = consumer
            .batch()
            .max_messages(max)
            .expires(expires)
            .messages()
            .await
            .map_err(|e| self.nats.failure("failed to pull events", e))?;
        Ok(Some(Pull { batch }))
    }

    /// Negatively acknowledges deliveries that were never handed out, so
    /// they are redelivered at once (fire and forget).
    pub async fn release(&self, deliveries: &[Delivery]) {
        for d in deliveries {
            let _ = self.nats.client().publish(d.ack_subject.clone(), Bytes::from_static(b"-NAK")).await;
        }
        let _ = self.nats.client().flush().await;
    }

    /// Sends an acknowledgement and waits for JetStream's confirmation.
    pub async fn acknowledge(&self, ack: &AckSubject, op: AckOp) -> Result<AckOutcome> {
        match self.nats.client().request(ack.subject().to_owned(), op.payload()).await {
            Ok(_) => Ok(AckOutcome::Confirmed),
            Err(e) if e.kind() == async_nats::client::RequestErrorKind::NoResponders => Ok(AckOutcome::ConsumerGone),
            Err(e) => Err(self.nats.failure("failed to acknowledge an event", e)),
        }
    }
}

/// Releases a delivery for immediate redelivery when dropped before it was
/// handed to the client (e.g. still queued when the client went away).
pub struct ReleaseGuard {
    client: Option<async_nats::Client>,
    ack_subject: String,
}

impl ReleaseGuard {
    /// A guard for `delivery`.
    pub fn new(log: &EventLog, delivery: &Delivery) -> Self {
        ReleaseGuard { client: Some(log.nats.client().clone()), ack_subject: delivery.ack_subject.clone() }
    }

    /// The delivery reached the client: nothing to release.
    pub fn disarm(mut self) {
        self.client = None;
    }
}

impl Drop for ReleaseGuard {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let subject = std::mem::take(&mut self.ack_subject);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = client.publish(subject, Bytes::from_static(b"-NAK")).await;
                });
            }
        }
    }
}

impl std::fmt::Debug for ReleaseGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseGuard").field("armed", &self.client.is_some()).finish()
    }
}

impl EventLog {
    /// Queues an acknowledgement without waiting for a confirmation (the
    /// delivery engine's path: a lost ack only means one more delivery).
    /// Acknowledgements go out in bursts, within about `delivery.ack_linger`.
    pub async fn settle(&self, ack_subject: String, op: AckOp) {
        self.settler.send(ack_subject, op.payload()).await;
    }

    /// Sends every queued acknowledgement (at shutdown).
    pub async fn flush_settled(&self) {
        self.settler.flush().await;
    }
}

/// An open pull request.
pub struct Pull {
    batch: pull::Batch,
}

impl Pull {
    /// The next delivery; `None` when the request is complete or expired.
    pub async fn next(&mut self) -> Option<Result<Delivery, String>> {
        let message = self.batch.next().await?;
        Some(message.map_err(|e| e.to_string()).and_then(|m| delivery(&m)))
    }
}

type FetchResult = Result<Vec<Delivery>, String>;

async fn fetch_steps(
    consumer: &PullConsumer,
    (batch, max_bytes): (usize, usize),
    max_wait: Duration,
    caller: &oneshot::Sender<FetchResult>,
) -> FetchResult {
    let mut out = take(consumer.fetch().max_messages(batch).max_bytes(max_bytes).messages().await).await?;
    if !out.is_empty() || max_wait.is_zero() {
        return Ok(out);
    }
    // Wait for one event only: a larger pending request could receive events
    // after we answered, which would then wait out their ack wait.
    out = take(consumer.batch().max_messages(1).expires(max_wait).messages().await).await?;
    if !out.is_empty() && batch > 1 && !caller.is_closed() {
        let rest = max_bytes.saturating_sub(out[0].payload.len()).max(1);
        out.extend(take(consumer.fetch().max_messages(batch - 1).max_bytes(rest).messages().await).await?);
    }
    Ok(out)
}

/// Collects a pull's deliveries. An error after some deliveries ends the
/// batch early instead of failing it: received events must be handed out.
async fn take(batch: Result<pull::Batch, pull::BatchError>) -> FetchResult {
    let mut batch = batch.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(message) = batch.next().await {
        match message.map_err(|e| e.to_string()).and_then(|m| delivery(&m)) {
            Ok(d) => out.push(d),
            Err(err) if out.is_empty() => return Err(err),
            Err(err) => {
                tracing::debug!(error = %err, received = out.len(), "pull ended early");
                break;
            }
        }
    }
    Ok(out)
}

fn delivery(message: &jetstream::Message) -> Result<Delivery, String> {
    let info = message.info().map_err(|e| e.to_string())?;
    let ack_subject = message.reply.as_ref().ok_or("a delivered event has no ack subject")?.to_string();
    Ok(Delivery {
        stream_sequence: info.stream_sequence,
        delivered: info.delivered.max(1) as u64,
        ack_subject,
        payload: message.payload.clone(),
    })
}

fn is_not_found(kind: ConsumerErrorKind) -> bool {
    matches!(kind, ConsumerErrorKind::JetStream(e) if e.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND)
}
