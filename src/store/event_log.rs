//! The events stream: its configuration and the pipelined publish path.

use std::sync::Arc;

use anyhow::Context as _;
use async_nats::jetstream::{
    self,
    message::PublishMessage,
    stream::{self, DiscardPolicy, RetentionPolicy, StorageType},
};
use bytes::Bytes;

use super::{Nats, consumers::Handles, settler::Settler};
use crate::{
    config::Settings,
    domain::subject,
    error::{Error, Result},
};

/// Name of the JetStream stream holding every event.
pub const EVENTS_STREAM: &str = "HERALD_EVENTS";

/// An event ready to publish.
#[derive(Debug, Clone)]
pub struct OutgoingEvent {
    pub event_id: String,
    pub subject: String,
    /// The JSON [`crate::domain::event::EventRecord`].
    pub body: Bytes,
    /// `Nats-Msg-Id` for deduplication, when the producer gave an idempotency key.
    pub dedup_id: Option<String>,
}

/// Where JetStream stored an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub event_id: String,
    pub sequence: u64,
    /// The dedup id matched an earlier event; id and sequence are that event's.
    pub duplicate: bool,
}

/// Publishes `messages` pipelined (all sent, then all acknowledgements
/// awaited) to whichever Herald stream captures their subjects. Fails with
/// UNAVAILABLE when any was not confirmed, saying how many were.
pub(super) async fn publish_pipelined(
    nats: &Nats,
    js: &jetstream::Context,
    messages: Vec<OutgoingEvent>,
) -> Result<Vec<Stored>> {
    nats.ensure_connected()?;
    let total = messages.len();
    let mut pending = Vec::with_capacity(total);
    for message in messages {
        let mut publish = PublishMessage::build().payload(message.body);
        if let Some(id) = &message.dedup_id {
            publish = publish.message_id(id);
        }
        pending.push((message.event_id, js.send_publish(message.subject, publish).await));
    }
    let mut stored = Vec::with_capacity(total);
    let mut failed = None;
    for (event_id, ack) in pending {
        match ack {
            Ok(future) => match future.await {
                Ok(ack) => stored.push(Stored { event_id, sequence: ack.sequence, duplicate: ack.duplicate }),
                Err(err) => failed = Some(err.to_string()),
            },
            Err(err) => failed = Some(err.to_string()),
        }
    }
    if let Some(err) = failed {
        tracing::warn!(error = %err, stored = stored.len(), total, "publish not confirmed");
        return Err(Error::Unavailable(format!(
            "stored {} of {total} messages before NATS failed ({err}); retry with idempotency keys to avoid duplicates",
            stored.len()
        )));
    }
    Ok(stored)
}

/// The events stream.
#[derive(Clone)]
pub struct EventLog {
    pub(super) nats: Nats,
    js: jetstream::Context,
    pub(super) stream: Arc<stream::Stream>,
    pub(super) handles: Handles,
    pub(super) replicas: usize,
    pub(super) settler: Settler,
}

impl EventLog {
    pub(super) async fn open(nats: Nats, js: jetstream::Context, settings: &Settings) -> anyhow::Result<Self> {
        let config = stream::Config {
            name: EVENTS_STREAM.to_owned(),
            description: Some("Herald events (resource, user-account and announcement events)".into()),
            subjects: vec![subject::ALL_EVENTS.to_owned()],
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            storage: StorageType::File,
            max_age: settings.events.max_age,
            max_bytes: settings.events.max_bytes,
            num_replicas: settings.nats.replicas,
            duplicate_window: settings.events.duplicate_window,
            allow_direct: true,
            ..Default::default()
        };
        js.create_or_update_stream(config).await.context("failed to create the events stream")?;
        let stream = js.get_stream(EVENTS_STREAM).await.context("failed to open the events stream")?;
        Ok(EventLog {
            settler: Settler::start(nats.clone(), settings.delivery.ack_linger),
            nats,
            js,
            stream: Arc::new(stream),
            handles: Handles::default(),
            replicas: settings.nats.replicas,
        })
    }

    /// Publishes `events` pipelined and returns where each was stored, in
    /// order (see [`publish_pipelined`]). Duplicates report the original id.
    pub async fn publish(&self, events: Vec<OutgoingEvent>) -> Result<Vec<Stored>> {
        let mut stored = publish_pipelined(&self.nats, &self.js, events).await?;
        for entry in stored.iter_mut().filter(|s| s.duplicate) {
            entry.event_id = self.event_id_at(entry.sequence).await?;
        }
        Ok(stored)
    }

    /// The stored event at `sequence`, if still in the stream.
    pub async fn event_at(&self, sequence: u64) -> Result<Option<Bytes>> {
        match self.stream.direct_get(sequence).await {
            Ok(message) => Ok(Some(message.payload)),
            Err(e) if e.kind() == async_nats::jetstream::stream::DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.nats.failure("failed to read an event", e)),
        }
    }

    /// Stored events on `filters` at or after `since`, up to `cap` events and
    /// no later than the stream's current last sequence.
    pub async fn read_since(
        &self,
        filters: Vec<String>,
        since: time::OffsetDateTime,
        cap: usize,
    ) -> Result<Vec<super::StoredMessage>> {
        let until = self.stream.get_info().await.map_err(|e| self.nats.failure("failed to read stream state", e))?;
        let start = async_nats::jetstream::consumer::DeliverPolicy::ByStartTime { start_time: since };
        super::scan::read_all(&self.nats, &self.stream, filters, start, cap, until.state.last_sequence).await
    }

    /// The id of the event stored at `sequence`.
    async fn event_id_at(&self, sequence: u64) -> Result<String> {
        #[derive(serde::Deserialize)]
        struct IdOnly {
            id: String,
        }
        let message =
            self.stream.direct_get(sequence).await.map_err(|e| self.nats.failure("failed to read an event", e))?;
        serde_json::from_slice::<IdOnly>(&message.payload)
            .map(|m| m.id)
            .map_err(|e| Error::internal("failed to decode a stored event", e))
    }
}
