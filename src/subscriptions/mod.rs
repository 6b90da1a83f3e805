//! Webhook subscriptions: creation (scope permission, filters, condition,
//! destination checks, quota), reading, updating, deleting and secret
//! rotation. Each subscription owns the durable consumer `wh_<id>` on the
//! events stream, from which the delivery workers of every replica pull.

mod attempts;
mod types;

use std::sync::Arc;

use time::OffsetDateTime;

pub use attempts::{ListedAttempt, PING_TYPE};
pub use types::{EventTypeInfo, EventTypeRecord};

use crate::{
    app::App,
    auth::Principal,
    consumers::TargetRequest,
    delivery::{condition::Condition, signing},
    domain::{
        consumer::{Start, check_custom_type_filters},
        event::EventVariant,
        ids,
        subscription::{
            Disabled, HttpMethod, SigningSecret, SubscriptionRecord, SubscriptionStatus, Webhook, check_headers,
            check_url, consumer_name,
        },
    },
    error::{Error, Result},
    store::ConsumerSpec,
};

/// Longest subscription name.
pub const MAX_SUBSCRIPTION_NAME: usize = 128;
/// Highest per-subscription rate limit (deliveries per second).
pub const MAX_RATE_LIMIT: u32 = 10_000;

/// A request for a new subscription.
#[derive(Clone, Debug, Default)]
pub struct NewSubscription {
    pub name: String,
    pub target: Option<TargetRequest>,
    pub variants: Vec<EventVariant>,
    pub custom_types: Vec<String>,
    pub condition: String,
    pub url: String,
    pub method: Option<HttpMethod>,
    pub headers: Vec<(String, String)>,
    pub disabled_until: Option<OffsetDateTime>,
    pub ordered: bool,
    pub rate_limit: u32,
    pub asymmetric_signatures: bool,
}

/// Changes to a subscription; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct SubscriptionChanges {
    pub name: Option<String>,
    pub url: Option<String>,
    pub method: Option<HttpMethod>,
    pub headers: Option<Vec<(String, String)>>,
    pub condition: Option<String>,
    /// `Some(None)` clears it.
    pub disabled_until: Option<Option<OffsetDateTime>>,
    pub rate_limit: Option<u32>,
    /// `Some(true)` re-enables a disabled subscription.
    pub enabled: Option<bool>,
}

impl App {
    /// Creates a subscription; returns it and its signing secret (shown once).
    pub async fn create_subscription(
        &self,
        who: &Principal,
        new: NewSubscription,
    ) -> Result<(Arc<SubscriptionRecord>, String)> {
        ids::check_name("name", &new.name, MAX_SUBSCRIPTION_NAME)?;
        let target = self.resolve_target(who, new.target).await?;
        check_custom_type_filters("custom_types", &new.custom_types)?;
        let condition = self.check_condition(&new.condition)?;
        self.check_destination("webhook.url", &new.url).await?;
        check_headers("webhook.headers", &new.headers)?;
        check_rate_limit(new.rate_limit)?;
        if !self.subscriptions.select(|_, s| s.owner == who.user_id && s.name == new.name).is_empty() {
            return Err(Error::AlreadyExists(format!("a subscription named {:?}", new.name)));
        }
        let max = self.settings.delivery.max_per_user;
        if self.subscriptions.select(|_, s| s.owner == who.user_id).len() >= max {
            return Err(Error::ResourceExhausted(format!(
                "you own {max} subscriptions; the limit is {max} (delivery.max_per_user)"
            )));
        }
        let now = OffsetDateTime::now_utc();
        let secret = signing::new_secret();
        let mut variants: Vec<String> = new.variants.iter().map(|v| v.as_str().to_owned()).collect();
        variants.dedup();
        let record = SubscriptionRecord {
            id: ids::new_id(),
            owner: who.user_id.clone(),
            name: new.name,
            target,
            variants,
            custom_types: new.custom_types,
            condition,
            webhook: Webhook { url: new.url, method: new.method.unwrap_or_default(), headers: new.headers },
            disabled_until: new.disabled_until,
            ordered: new.ordered,
            rate_limit: (new.rate_limit > 0).then_some(new.rate_limit),
            secrets: vec![SigningSecret { secret: secret.clone(), created_at: now, expires_at: None }],
            ed25519_seed: new.asymmetric_signatures.then(signing::new_ed25519_seed),
            disabled: None,
            created_at: now,
            updated_at: now,
        };
        let d = &self.settings.delivery;
        let spec = ConsumerSpec {
            id: record.consumer_name(),
            owner: record.owner.clone(),
            filter_subjects: record.filter_subjects(),
            start: Start::New,
            ack_wait: d.ack_wait(),
            max_deliver: -1,
            max_in_flight: if record.ordered { 1 } else { d.max_pending },
            inactive_threshold: std::time::Duration::ZERO,
        };
        self.events.create_consumer(&spec).await?;
        match self.subscriptions.create(&record.id.clone(), record).await {
            Ok(record) => Ok((record, secret)),
            Err(err) => {
                let _ = self.events.delete_consumer(&spec.id).await;
                Err(err)
            }
        }
    }

    fn check_condition(&self, condition: &str) -> Result<Option<String>> {
        if condition.trim().is_empty() {
            return Ok(None);
        }
        Condition::parse("condition", condition)?;
        Ok(Some(condition.to_owned()))
    }

    /// Checks a webhook URL's form and, through the network guard, where it points.
    async fn check_destination(&self, field: &str, url: &str) -> Result<()> {
        let parsed = check_url(field, url)?;
        let host = parsed.host_str().unwrap_or_default();
        let port = parsed.port_or_known_default().unwrap_or(443);
        self.network_guard.check_host(host, port).await.map_err(|why| Error::invalid(field, why))?;
        Ok(())
    }

    /// A subscription the caller owns (or any, for admins).
    pub async fn owned_subscription(&self, who: &Principal, id: &str) -> Result<Arc<SubscriptionRecord>> {
        ids::check_id("subscription_id", id)?;
        let record = self.subscriptions.get(id).await?.ok_or_else(|| Error::not_found("subscription", id))?;
        if record.owner != who.user_id && !who.is_admin {
            return Err(Error::PermissionDenied(format!("subscription {id} belongs to another user")));
        }
        Ok(record)
    }

    /// A subscription with its delivery status.
    pub async fn describe_subscription(
        &self,
        who: &Principal,
        id: &str,
    ) -> Result<(Arc<SubscriptionRecord>, SubscriptionStatus)> {
        let record = self.owned_subscription(who, id).await?;
        let status = self.subscription_status.get(id).await?.map(|s| (*s).clone()).unwrap_or_default();
        Ok((record, status))
    }

    /// The caller's subscriptions with their status, oldest first.
    pub fn list_subscriptions(&self, who: &Principal) -> Vec<(Arc<SubscriptionRecord>, SubscriptionStatus)> {
        let mut mine = self.subscriptions.select(|_, s| s.owner == who.user_id);
        mine.sort_by(|a, b| a.id.cmp(&b.id));
        mine.into_iter()
            .map(|s| {
                let status = self.subscription_status.cached(&s.id).map(|s| (*s).clone()).unwrap_or_default();
                (s, status)
            })
            .collect()
    }

    /// Applies changes to a subscription (its scope and filters are fixed).
    pub async fn update_subscription(
        &self,
        who: &Principal,
        id: &str,
        changes: SubscriptionChanges,
    ) -> Result<Arc<SubscriptionRecord>> {
        let mut record = (*self.owned_subscription(who, id).await?).clone();
        if let Some(name) = changes.name {
            ids::check_name("name", &name, MAX_SUBSCRIPTION_NAME)?;
            if name != record.name
                && !self.subscriptions.select(|_, s| s.owner == record.owner && s.name == name).is_empty()
            {
                return Err(Error::AlreadyExists(format!("a subscription named {name:?}")));
            }
            record.name = name;
        }
        if let Some(url) = changes.url {
            self.check_destination("webhook.url", &url).await?;
            record.webhook.url = url;
        }
        if let Some(method) = changes.method {
            record.webhook.method = method;
        }
        if let Some(headers) = changes.headers {
            check_headers("webhook.headers", &headers)?;
            record.webhook.headers = headers;
        }
        if let Some(condition) = changes.condition {
            record.condition = self.check_condition(&condition)?;
        }
        if let Some(until) = changes.disabled_until {
            record.disabled_until = until;
        }
        if let Some(rate) = changes.rate_limit {
            check_rate_limit(rate)?;
            record.rate_limit = (rate > 0).then_some(rate);
        }
        match changes.enabled {
            Some(true) if record.disabled.is_some() => {
                record.disabled = None;
                self.subscription_status.put(id, SubscriptionStatus::default()).await?;
            }
            Some(false) => {
                record.disabled =
                    Some(Disabled { reason: "disabled by its owner".into(), at: OffsetDateTime::now_utc() })
            }
            _ => {}
        }
        record.updated_at = OffsetDateTime::now_utc();
        self.subscriptions.put(id, record).await
    }

    /// Deletes a subscription, its consumer, status and attempt log.
    pub async fn delete_subscription(&self, who: &Principal, id: &str) -> Result<()> {
        self.owned_subscription(who, id).await?;
        self.events.delete_consumer(&consumer_name(id)).await?;
        self.subscriptions.delete(id).await?;
        let _ = self.subscription_status.delete(id).await;
        self.attempts.purge(id).await;
        Ok(())
    }

    /// Makes a new signing secret the primary one; the old ones keep signing
    /// for `delivery.secret_rotation_grace`. Returns the new secret.
    pub async fn rotate_secret(&self, who: &Principal, id: &str) -> Result<String> {
        let mut record = (*self.owned_subscription(who, id).await?).clone();
        let now = OffsetDateTime::now_utc();
        let grace_end = now + self.settings.delivery.secret_rotation_grace;
        record.secrets.retain(|s| s.expires_at.is_none_or(|at| at > now));
        for old in &mut record.secrets {
            old.expires_at = Some(old.expires_at.map_or(grace_end, |at| at.min(grace_end)));
        }
        let secret = signing::new_secret();
        record.secrets.insert(0, SigningSecret { secret: secret.clone(), created_at: now, expires_at: None });
        record.updated_at = now;
        self.subscriptions.put(id, record).await?;
        Ok(secret)
    }

    /// The `whpk_` Ed25519 public key receivers verify `v1a` signatures with.
    pub async fn public_verification_key(&self, who: &Principal, id: &str) -> Result<String> {
        let record = self.owned_subscription(who, id).await?;
        record
            .ed25519_seed
            .as_deref()
            .and_then(signing::public_key)
            .ok_or_else(|| Error::FailedPrecondition(format!("subscription {id} does not use asymmetric signatures")))
    }
}

fn check_rate_limit(rate: u32) -> Result<()> {
    if rate > MAX_RATE_LIMIT {
        return Err(Error::invalid("rate_limit_per_second", format!("is {rate}; the limit is {MAX_RATE_LIMIT}")));
    }
    Ok(())
}
