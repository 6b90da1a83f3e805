//! Scoped event consumers (the Aruna-style core): creation with permission
//! and quota checks, ownership, inspection, deletion, and the sweep that
//! forgets consumers JetStream removed for inactivity.
//!
//! Each consumer is a durable JetStream pull consumer named by its id, plus a
//! registry record (owner, target, filters) in the `herald_consumers` bucket.

mod ack;
mod fetch;
mod stream;

use std::{sync::Arc, time::Duration};

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

pub use ack::{ReplyOutcome, ReplyStatus};
pub use fetch::DeliveredEvent;
pub use stream::StreamItem;

use crate::{
    app::App,
    auth::Principal,
    domain::{
        consumer::{ConsumerRecord, Start, Target, check_custom_type_filters},
        event::EventVariant,
        ids,
        permission::PermissionLevel,
    },
    error::{Error, Result},
    store::{ConsumerSpec, ConsumerState},
};

/// What a caller asks to watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetRequest {
    Resource { resource_id: String, include_subresources: bool },
    User(String),
    Announcements,
    All,
}

/// A request for a new consumer.
#[derive(Clone, Debug)]
pub struct NewConsumer {
    pub target: Option<TargetRequest>,
    pub start: Start,
    pub variants: Vec<EventVariant>,
    pub custom_types: Vec<String>,
}

impl App {
    /// Creates a consumer owned by the caller.
    pub async fn create_consumer(&self, who: &Principal, new: NewConsumer) -> Result<Arc<ConsumerRecord>> {
        let target = self.resolve_target(who, new.target).await?;
        if let Start::FromSequence { sequence: 0 } = new.start {
            return Err(Error::invalid("start.from_sequence", "must be at least 1"));
        }
        check_custom_type_filters("custom_types", &new.custom_types)?;
        self.check_quota(who).await?;
        let mut variants: Vec<String> = new.variants.iter().map(|v| v.as_str().to_owned()).collect();
        variants.dedup();
        let record = ConsumerRecord {
            id: ids::new_id(),
            owner: who.user_id.clone(),
            target,
            start: new.start,
            variants,
            custom_types: new.custom_types,
            created_at: OffsetDateTime::now_utc(),
        };
        let c = &self.settings.consumers;
        let spec = ConsumerSpec {
            id: record.id.clone(),
            owner: record.owner.clone(),
            filter_subjects: record.filter_subjects(),
            start: record.start,
            ack_wait: c.ack_wait,
            max_deliver: c.max_deliver,
            max_in_flight: c.max_in_flight,
            inactive_threshold: c.inactive_threshold,
        };
        self.events.create_consumer(&spec).await?;
        match self.consumers.create(&record.id.clone(), record).await {
            Ok(record) => Ok(record),
            Err(err) => {
                let _ = self.events.delete_consumer(&spec.id).await;
                Err(err)
            }
        }
    }

    pub(crate) async fn resolve_target(&self, who: &Principal, target: Option<TargetRequest>) -> Result<Target> {
        match target.ok_or_else(|| Error::invalid("target", "is required"))? {
            TargetRequest::Resource { resource_id, include_subresources } => {
                ids::check_id("target.resource.resource_id", &resource_id)?;
                let resource = self
                    .resources
                    .get(&resource_id)
                    .await?
                    .ok_or_else(|| Error::not_found("resource", &resource_id))?;
                self.require(who, &resource, PermissionLevel::Read).await?;
                Ok(Target::Resource { resource_id, path: resource.path.clone(), include_subresources })
            }
            TargetRequest::User(user_id) => {
                ids::check_id("target.user_id", &user_id)?;
                who.require_self_or_admin(&user_id)?;
                self.users.get(&user_id).await?.ok_or_else(|| Error::not_found("user", &user_id))?;
                Ok(Target::User { user_id })
            }
            TargetRequest::Announcements => Ok(Target::Announcements),
            TargetRequest::All => {
                who.require_admin()?;
                Ok(Target::All)
            }
        }
    }

    /// RESOURCE_EXHAUSTED when the caller owns `consumers.max_per_user`
    /// consumers (after forgetting any JetStream already removed).
    async fn check_quota(&self, who: &Principal) -> Result<()> {
        let max = self.settings.consumers.max_per_user;
        let mine = self.consumers.select(|_, c| c.owner == who.user_id);
        if mine.len() < max {
            return Ok(());
        }
        let mut live = 0;
        for record in mine {
            if self.events.consumer_state(&record.id).await?.is_some() {
                live += 1;
            } else {
                self.consumers.delete(&record.id).await?;
            }
        }
        if live >= max {
            return Err(Error::ResourceExhausted(format!(
                "you own {live} consumers; the limit is {max} (consumers.max_per_user); delete some first"
            )));
        }
        Ok(())
    }

    /// The consumer `id` if the caller owns it (or is an admin).
    pub async fn owned_consumer(&self, who: &Principal, id: &str) -> Result<Arc<ConsumerRecord>> {
        ids::check_id("stream_consumer", id)?;
        let record = self.consumers.get(id).await?.ok_or_else(|| Error::not_found("consumer", id))?;
        if record.owner != who.user_id && !who.is_admin {
            return Err(Error::PermissionDenied(format!("consumer {id} belongs to another user")));
        }
        Ok(record)
    }

    /// Re-checks that the caller may still read the consumer's scope.
    pub(crate) async fn check_consumer_access(&self, who: &Principal, record: &ConsumerRecord) -> Result<()> {
        match &record.target {
            Target::Resource { path, .. } => self.require_on_path(who, path, PermissionLevel::Read).await,
            Target::User { user_id } => who.require_self_or_admin(user_id),
            Target::Announcements => Ok(()),
            Target::All => who.require_admin(),
        }
    }

    /// A consumer with its JetStream counters.
    pub async fn describe_consumer(&self, who: &Principal, id: &str) -> Result<(Arc<ConsumerRecord>, ConsumerState)> {
        let record = self.owned_consumer(who, id).await?;
        match self.events.consumer_state(id).await? {
            Some(state) => Ok((record, state)),
            None => Err(self.forget_consumer(id).await),
        }
    }

    /// The caller's consumers, oldest first.
    pub fn list_consumers(&self, who: &Principal) -> Vec<Arc<ConsumerRecord>> {
        let mut mine = self.consumers.select(|_, c| c.owner == who.user_id);
        mine.sort_by(|a, b| a.id.cmp(&b.id));
        mine
    }

    /// Deletes a consumer the caller owns.
    pub async fn delete_consumer(&self, who: &Principal, id: &str) -> Result<()> {
        self.owned_consumer(who, id).await?;
        self.events.delete_consumer(id).await?;
        self.consumers.delete(id).await
    }

    /// Drops the registry record of a consumer JetStream no longer has, and
    /// returns the NOT_FOUND to report.
    pub(crate) async fn forget_consumer(&self, id: &str) -> Error {
        if let Err(err) = self.consumers.delete(id).await {
            tracing::warn!(consumer = id, error = %err, "failed to forget a removed consumer");
        }
        Error::NotFound {
            what: format!("consumer {id} (removed, e.g. after consumers.inactive_threshold without use)"),
        }
    }

    /// Periodically forgets consumers JetStream removed for inactivity.
    pub(crate) async fn sweep_consumers(self: Arc<Self>, shutdown: CancellationToken) {
        let period = self.settings.consumers.inactive_threshold.min(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            let started = OffsetDateTime::now_utc();
            let Ok(live) = self.events.consumer_names().await else { continue };
            // Records younger than the listing may belong to consumers created meanwhile.
            let stale = self.consumers.select(|_, c| !live.contains(&c.id) && c.created_at + period < started);
            for record in stale {
                tracing::info!(consumer = %record.id, owner = %record.owner, "forgetting consumer removed for inactivity");
                let _ = self.consumers.delete(&record.id).await;
            }
        }
    }
}
