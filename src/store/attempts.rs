//! The delivery attempt log: stream `HERALD_DELIVERIES`, one subject per
//! subscription (`herald.dl.<subscription id>`), capped per subject and aged out.

use std::sync::Arc;

use anyhow::Context as _;
use async_nats::jetstream::{
    self,
    consumer::DeliverPolicy,
    stream::{self, DiscardPolicy, RetentionPolicy, StorageType},
};
use bytes::Bytes;

use super::{
    Nats, OutgoingEvent,
    event_log::publish_pipelined,
    scan::{StoredMessage, read_all},
};
use crate::{config::Settings, error::Result};

/// Name of the JetStream stream holding delivery attempts.
pub const ATTEMPTS_STREAM: &str = "HERALD_DELIVERIES";

/// Subject of the attempts of subscription `id`.
pub fn attempts_subject(id: &str) -> String {
    format!("herald.dl.{id}")
}

/// The attempt log.
#[derive(Clone)]
pub struct AttemptLog {
    nats: Nats,
    js: jetstream::Context,
    stream: Arc<stream::Stream>,
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
            max_messages_per_subject: settings.delivery.attempt_log_per_subscription,
            max_age: settings.delivery.attempt_log_max_age,
            num_replicas: settings.nats.replicas,
            allow_direct: true,
            ..Default::default()
        };
        js.create_or_update_stream(config).await.context("failed to create the delivery attempt stream")?;
        let stream = js.get_stream(ATTEMPTS_STREAM).await.context("failed to open the delivery attempt stream")?;
        Ok(AttemptLog { nats, js, stream: Arc::new(stream) })
    }

    /// Appends an attempt record (JSON) for subscription `id` without
    /// waiting for JetStream's acknowledgement: the log records deliveries,
    /// it is not part of them, and not waiting halves its cost per delivery.
    /// While NATS is unreachable records are refused (and the refusal
    /// logged) rather than buffered.
    pub async fn append(&self, id: &str, record: Bytes) -> Result<()> {
        self.nats.ensure_connected()?;
        self.nats
            .client()
            .publish(attempts_subject(id), record)
            .await
            .map_err(|e| self.nats.failure("failed to log a delivery attempt", e))
    }

    /// Appends an attempt record and waits until JetStream stored it (for
    /// attempts whose result goes back to a caller).
    pub async fn append_confirmed(&self, id: &str, record: Bytes) -> Result<()> {
        let message =
            OutgoingEvent { event_id: String::new(), subject: attempts_subject(id), body: record, dedup_id: None };
        publish_pipelined(&self.nats, &self.js, vec![message]).await.map(drop)
    }

    /// Every kept attempt of subscription `id`, oldest first.
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
