//! The shared state of one Herald replica: settings, the NATS connection, the
//! mirrored buckets and the event log. Domain modules (`accounts`,
//! `resources`, `events`) add their operations as `impl App` blocks.

use std::sync::{Arc, atomic::AtomicUsize};

use anyhow::Context as _;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::{
    auth::{reply::ReplyKeys, sealing::Sealer},
    config::Settings,
    delivery::{
        guard::NetworkGuard,
        http::Sender,
        oauth::{KeyedSlots, TokenCache},
        outcome::RetryPolicy,
        signing::SignerCache,
    },
    domain::{
        consumer::ConsumerRecord,
        permission::Grant,
        resource::Resource,
        subscription::{AuthConfigRecord, SubscriptionRecord, SubscriptionStatus},
        user::{BOOTSTRAP_ADMIN_ID, TokenRecord, User},
    },
    error::Error,
    store::{AttemptLog, Bucket, EventLog, Nats, PersonalLog, buckets},
    subscriptions::EventTypeRecord,
    telemetry::metrics::Metrics,
};

/// One replica's view of Herald's state (all of it lives in NATS).
pub struct App {
    pub settings: Arc<Settings>,
    pub nats: Nats,
    pub users: Bucket<User>,
    pub tokens: Bucket<TokenRecord>,
    pub resources: Bucket<Resource>,
    pub grants: Bucket<Grant>,
    pub consumers: Bucket<ConsumerRecord>,
    pub subscriptions: Bucket<SubscriptionRecord>,
    pub subscription_status: Bucket<SubscriptionStatus>,
    pub auth_configs: Bucket<AuthConfigRecord>,
    pub event_types: Bucket<EventTypeRecord>,
    pub events: EventLog,
    pub personal: PersonalLog,
    pub attempts: AttemptLog,
    pub reply_keys: ReplyKeys,
    pub network_guard: NetworkGuard,
    pub sender: Sender,
    pub retry_policy: RetryPolicy,
    pub sealer: Sealer,
    /// Subscriptions' opened signing keys.
    pub signers: SignerCache,
    pub oauth_tokens: TokenCache,
    pub handshakes: KeyedSlots<()>,
    pub metrics: Metrics,
    /// In-flight webhook deliveries (waited for on shutdown).
    pub deliveries: tokio_util::task::TaskTracker,
    /// Cancelled when the shutdown grace is over: deliveries still running are abandoned.
    pub abandon_deliveries: CancellationToken,
    /// Background tasks that must finish before NATS is drained (the delivery engine).
    pub background: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pub stats: Stats,
}

/// Live counters of this replica (tests and, later, metrics read them).
#[derive(Debug, Default)]
pub struct Stats {
    /// Event streams currently open.
    pub open_streams: AtomicUsize,
}

impl App {
    /// Creates (idempotently) every stream and bucket, loads the mirrors and
    /// makes sure the bootstrap admin user exists.
    pub async fn open(settings: Arc<Settings>, nats: Nats, shutdown: &CancellationToken) -> anyhow::Result<Arc<App>> {
        let allowed = settings.delivery.allowed_networks.iter().filter_map(|n| n.parse().ok()).collect();
        let guard = NetworkGuard::new(allowed);
        let app = App {
            users: nats.bucket(buckets::USERS, shutdown).await?,
            tokens: nats.bucket(buckets::TOKENS, shutdown).await?,
            resources: nats.bucket(buckets::RESOURCES, shutdown).await?,
            grants: nats.bucket(buckets::GRANTS, shutdown).await?,
            consumers: nats.bucket(buckets::CONSUMERS, shutdown).await?,
            subscriptions: nats.bucket(buckets::SUBSCRIPTIONS, shutdown).await?,
            subscription_status: nats.bucket(buckets::SUBSCRIPTION_STATUS, shutdown).await?,
            auth_configs: nats.bucket(buckets::AUTH_CONFIGS, shutdown).await?,
            event_types: nats.bucket(buckets::EVENT_TYPES, shutdown).await?,
            events: nats.event_log(&settings).await?,
            personal: nats.personal_log(&settings).await?,
            attempts: nats.attempt_log(&settings).await?,
            reply_keys: reply_keys(&settings),
            network_guard: guard.clone(),
            sender: Sender::new(guard, settings.delivery.request_timeout).context("failed to build the HTTP client")?,
            retry_policy: RetryPolicy {
                schedule: settings.delivery.retry_schedule.clone(),
                jitter: settings.delivery.retry_jitter,
                max_retry_after: settings.delivery.max_retry_after,
            },
            sealer: sealer(&settings),
            signers: SignerCache::default(),
            oauth_tokens: TokenCache::default(),
            handshakes: KeyedSlots::default(),
            metrics: Metrics::new(),
            deliveries: tokio_util::task::TaskTracker::new(),
            abandon_deliveries: CancellationToken::new(),
            background: std::sync::Mutex::new(Vec::new()),
            stats: Stats::default(),
            settings,
            nats,
        };
        app.ensure_bootstrap_admin().await.context("failed to create the bootstrap admin user")?;
        let app = Arc::new(app);
        tokio::spawn(app.clone().sweep_consumers(shutdown.clone()));
        let engine = tokio::spawn(crate::delivery::run_workers(app.clone(), shutdown.clone()));
        app.background.lock().expect("background lock").push(engine);
        Ok(app)
    }

    async fn ensure_bootstrap_admin(&self) -> Result<(), Error> {
        if self.users.get(BOOTSTRAP_ADMIN_ID).await?.is_some() {
            return Ok(());
        }
        let admin = User {
            id: BOOTSTRAP_ADMIN_ID.into(),
            name: "Bootstrap admin".into(),
            email: String::new(),
            is_admin: true,
            can_create_projects: true,
            created_at: OffsetDateTime::now_utc(),
        };
        match self.users.create(BOOTSTRAP_ADMIN_ID, admin).await {
            Ok(_) | Err(Error::AlreadyExists(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

fn reply_keys(settings: &Settings) -> ReplyKeys {
    match &settings.consumers.reply_key {
        Some(key) => ReplyKeys::new(key.clone(), settings.consumers.previous_reply_key.clone()),
        None => {
            tracing::warn!(
                "consumers.reply_key is not set: using a random key (dev mode); reply tokens die with this process"
            );
            ReplyKeys::random()
        }
    }
}

fn sealer(settings: &Settings) -> Sealer {
    use secrecy::ExposeSecret;
    match settings.secrets_key.as_ref().and_then(|k| Sealer::decode_key(k.expose_secret())) {
        Some(key) => Sealer::new(&key),
        None => {
            tracing::warn!(
                "secrets_key is not set: sealing secrets with a random key (dev mode); they die with this process"
            );
            Sealer::random()
        }
    }
}
