//! Webhook subscriptions: creation (scope permission, filters, condition,
//! destination checks, quota), reading, updating, deleting and secret
//! rotation. Each subscription owns the durable consumer `wh_<id>` on the
//! events stream, from which the delivery workers of every replica pull.

mod attempts;
pub mod auth_configs;
mod outbound;
mod types;

use std::sync::Arc;

use time::OffsetDateTime;

pub(crate) use attempts::Attempt;
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
            BodyFormat, Destination, Disabled, HttpMethod, SigningSecret, SubscriptionRecord, SubscriptionStatus,
            Webhook, check_headers, check_url, consumer_name,
        },
    },
    error::{Error, Result},
    store::ConsumerSpec,
};

/// Longest subscription name.
pub const MAX_SUBSCRIPTION_NAME: usize = 128;
/// Highest per-subscription rate limit (deliveries per second).
pub const MAX_RATE_LIMIT: u32 = 10_000;

/// Where a new subscription delivers (secrets in plain text, as received).
#[derive(Clone, Debug)]
pub enum NewDestination {
    Webhook { url: String, method: Option<HttpMethod>, headers: Vec<(String, String)> },
    SlackWebhook { url: String },
    SlackBot { token: String, channel: String },
}

/// A request for a new subscription.
#[derive(Clone, Debug, Default)]
pub struct NewSubscription {
    pub name: String,
    pub target: Option<TargetRequest>,
    pub variants: Vec<EventVariant>,
    pub custom_types: Vec<String>,
    pub condition: String,
    pub destination: Option<NewDestination>,
    pub format: BodyFormat,
    pub cloudevents_handshake: bool,
    /// Empty for none.
    pub auth_config: String,
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
    /// `Some("")` removes the auth configuration.
    pub auth_config: Option<String>,
    pub format: Option<BodyFormat>,
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
        let destination = self.check_new_destination(new.destination).await?;
        let is_webhook = matches!(destination, Destination::Webhook(_));
        if !is_webhook && (new.format != BodyFormat::Plain || new.cloudevents_handshake || !new.auth_config.is_empty())
        {
            return Err(Error::invalid("format", "formats, handshakes and auth configurations apply to webhooks only"));
        }
        let auth_config = self.check_auth_config(who, &new.auth_config).await?;
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
            destination,
            format: new.format,
            cloudevents_handshake: new.cloudevents_handshake,
            auth_config,
            disabled_until: new.disabled_until,
            ordered: new.ordered,
            rate_limit: (new.rate_limit > 0).then_some(new.rate_limit),
            secrets: vec![SigningSecret { secret: self.sealer.seal(&secret), created_at: now, expires_at: None }],
            ed25519_seed: new.asymmetric_signatures.then(|| self.sealer.seal(&signing::new_ed25519_seed())),
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

    /// Checks and seals a new destination.
    async fn check_new_destination(&self, destination: Option<NewDestination>) -> Result<Destination> {
        match destination.ok_or_else(|| Error::invalid("destination", "set webhook or slack"))? {
            NewDestination::Webhook { url, method, headers } => {
                self.check_destination("webhook.url", &url).await?;
                check_headers("webhook.headers", &headers)?;
                Ok(Destination::Webhook(Webhook { url, method: method.unwrap_or_default(), headers }))
            }
            NewDestination::SlackWebhook { url } => {
                self.check_destination("slack.incoming_webhook_url", &url).await?;
                Ok(Destination::SlackWebhook { url: self.sealer.seal(&url) })
            }
            NewDestination::SlackBot { token, channel } => {
                if token.is_empty() || token.len() > 4096 {
                    return Err(Error::invalid("slack.bot.token", "is required (at most 4096 bytes)"));
                }
                if channel.is_empty()
                    || channel.len() > 80
                    || !channel.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'#')
                {
                    return Err(Error::invalid("slack.bot.channel", "must be a Slack channel id such as C0123456789"));
                }
                Ok(Destination::SlackBot { token: self.sealer.seal(&token), channel })
            }
        }
    }

    /// Checks that `id` (empty: none) names one of the caller's auth configurations.
    async fn check_auth_config(&self, who: &Principal, id: &str) -> Result<Option<String>> {
        if id.is_empty() {
            return Ok(None);
        }
        self.owned_auth_config(who, id).await.map_err(|e| match e {
            Error::InvalidArgument { message, .. } => Error::invalid("auth_config_id", message),
            other => other,
        })?;
        Ok(Some(id.to_owned()))
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
        if changes.url.is_some() || changes.method.is_some() || changes.headers.is_some() || changes.format.is_some() {
            let Destination::Webhook(webhook) = &mut record.destination else {
                return Err(Error::invalid("url", "only webhook destinations have a URL, method, headers and format"));
            };
            if let Some(url) = changes.url {
                self.check_destination("url", &url).await?;
                webhook.url = url;
            }
            if let Some(method) = changes.method {
                webhook.method = method;
            }
            if let Some(headers) = changes.headers {
                check_headers("headers", &headers)?;
                webhook.headers = headers;
            }
            if let Some(format) = changes.format {
                record.format = format;
            }
        }
        if let Some(auth) = changes.auth_config {
            if !auth.is_empty() && !matches!(record.destination, Destination::Webhook(_)) {
                return Err(Error::invalid("auth_config_id", "auth configurations apply to webhooks only"));
            }
            record.auth_config = self.check_auth_config(who, &auth).await?;
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
        record
            .secrets
            .insert(0, SigningSecret { secret: self.sealer.seal(&secret), created_at: now, expires_at: None });
        record.updated_at = now;
        self.subscriptions.put(id, record).await?;
        Ok(secret)
    }

    /// The `whpk_` Ed25519 public key receivers verify `v1a` signatures with.
    pub async fn public_verification_key(&self, who: &Principal, id: &str) -> Result<String> {
        let record = self.owned_subscription(who, id).await?;
        let seed = record.ed25519_seed.as_deref().ok_or_else(|| {
            Error::FailedPrecondition(format!("subscription {id} does not use asymmetric signatures"))
        })?;
        signing::public_key(&self.sealer.open(seed)?)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("the stored Ed25519 seed of {id} is malformed")))
    }
}

fn check_rate_limit(rate: u32) -> Result<()> {
    if rate > MAX_RATE_LIMIT {
        return Err(Error::invalid("rate_limit_per_second", format!("is {rate}; the limit is {MAX_RATE_LIMIT}")));
    }
    Ok(())
}
