//! The personal notifications stream (one subject per user, capped per
//! subject) and the access-request rate limit bucket.

use std::sync::Arc;

use anyhow::Context as _;
use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, pull},
    kv,
    stream::{self, DeleteMessageErrorKind, DiscardPolicy, RetentionPolicy, StorageType},
};
use bytes::Bytes;
use futures::StreamExt as _;

use super::{
    Nats, OutgoingEvent,
    event_log::publish_pipelined,
    scan::{StoredMessage, read_all},
};
use crate::{
    config::Settings,
    error::{Error, Result},
};

/// Name of the JetStream stream holding personal notifications.
pub const PERSONAL_STREAM: &str = "HERALD_PERSONAL";
const PERSONAL_SUBJECTS: &str = "herald.pn.*";
const ACCESS_REQUESTS_BUCKET: &str = "herald_access_requests";

/// The personal notifications stream.
#[derive(Clone)]
pub struct PersonalLog {
    nats: Nats,
    js: jetstream::Context,
    stream: Arc<stream::Stream>,
    access_requests: kv::Store,
}

impl PersonalLog {
    pub(super) async fn open(nats: Nats, js: jetstream::Context, settings: &Settings) -> anyhow::Result<Self> {
        let config = stream::Config {
            name: PERSONAL_STREAM.to_owned(),
            description: Some("Herald personal notifications, kept until acknowledged".into()),
            subjects: vec![PERSONAL_SUBJECTS.to_owned()],
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            storage: StorageType::File,
            max_messages_per_subject: settings.personal.max_per_user,
            max_age: settings.personal.max_age,
            num_replicas: settings.nats.replicas,
            allow_direct: true,
            ..Default::default()
        };
        js.create_or_update_stream(config).await.context("failed to create the personal notifications stream")?;
        let stream =
            js.get_stream(PERSONAL_STREAM).await.context("failed to open the personal notifications stream")?;
        let access_requests = js
            .create_or_update_key_value(kv::Config {
                bucket: ACCESS_REQUESTS_BUCKET.to_owned(),
                description: "Herald access request rate limit (entries expire after the interval)".into(),
                history: 1,
                max_age: settings.personal.access_request_interval,
                storage: StorageType::File,
                num_replicas: settings.nats.replicas,
                ..Default::default()
            })
            .await
            .context("failed to create the access request bucket")?;
        Ok(PersonalLog { nats, js, stream: Arc::new(stream), access_requests })
    }

    /// Stores notifications (pipelined; all confirmed or UNAVAILABLE).
    pub async fn publish(&self, notices: Vec<OutgoingEvent>) -> Result<()> {
        publish_pipelined(&self.nats, &self.js, notices).await.map(drop)
    }

    /// Every stored notification on `subject`, oldest first.
    pub async fn list(&self, subject: &str) -> Result<Vec<StoredMessage>> {
        read_all(&self.nats, &self.stream, vec![subject.to_owned()], DeliverPolicy::All, usize::MAX, u64::MAX).await
    }

    /// Deletes the notification stored at `sequence`; false when already gone.
    pub async fn delete(&self, sequence: u64) -> Result<bool> {
        self.nats.ensure_connected()?;
        match self.stream.delete_message(sequence).await {
            Ok(deleted) => Ok(deleted),
            Err(e)
                if matches!(e.kind(), DeleteMessageErrorKind::JetStream(js) if [
                jetstream::ErrorCode::NO_MESSAGE_FOUND,
                jetstream::ErrorCode::SEQUENCE_NOT_FOUND,
                jetstream::ErrorCode::STREAM_MESSAGE_DELETE_FAILED,
            ]
            .contains(&js.error_code())) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.nats.failure("failed to delete a personal notification", e)),
        }
    }

    /// Follows new notifications on `subject` (an ordered consumer that
    /// re-creates itself after connection loss).
    pub async fn watch(&self, subject: &str) -> Result<PersonalWatch> {
        self.nats.ensure_connected()?;
        let consumer = self
            .stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: subject.to_owned(),
                deliver_policy: DeliverPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(|e| self.nats.failure("failed to watch personal notifications", e))?;
        let messages =
            consumer.messages().await.map_err(|e| self.nats.failure("failed to watch personal notifications", e))?;
        Ok(PersonalWatch { messages })
    }

    /// Claims the one access request `key` may make per interval; false when
    /// it was claimed within the interval.
    pub async fn claim_access_request(&self, key: &str) -> Result<bool> {
        self.nats.ensure_connected()?;
        match self.access_requests.create(key, Bytes::from_static(b"1")).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(self.nats.failure("failed to record an access request", e)),
        }
    }

    /// Gives back a claim (when notifying failed, so the requester may retry).
    pub async fn release_access_request(&self, key: &str) {
        if let Err(err) = self.access_requests.purge(key).await {
            tracing::warn!(error = %err, "failed to release an access request claim");
        }
    }
}

/// New personal notifications of one user.
pub struct PersonalWatch {
    messages: pull::Ordered,
}

impl PersonalWatch {
    /// The next notification payload; `None` when the watch ended.
    pub async fn next(&mut self) -> Option<Result<Bytes>> {
        let message = self.messages.next().await?;
        Some(message.map(|m| m.payload.clone()).map_err(|e| Error::Unavailable(format!("watch interrupted: {e}"))))
    }
}
