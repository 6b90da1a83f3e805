//! The shared state of one Herald replica: settings, the NATS connection, the
//! mirrored buckets and the event log. Domain modules (`accounts`,
//! `resources`, `events`) add their operations as `impl App` blocks.

use std::sync::Arc;

use anyhow::Context as _;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Settings,
    domain::{
        permission::Grant,
        resource::Resource,
        user::{BOOTSTRAP_ADMIN_ID, TokenRecord, User},
    },
    error::Error,
    store::{Bucket, EventLog, Nats, buckets},
};

/// One replica's view of Herald's state (all of it lives in NATS).
pub struct App {
    pub settings: Arc<Settings>,
    pub nats: Nats,
    pub users: Bucket<User>,
    pub tokens: Bucket<TokenRecord>,
    pub resources: Bucket<Resource>,
    pub grants: Bucket<Grant>,
    pub events: EventLog,
}

impl App {
    /// Creates (idempotently) every stream and bucket, loads the mirrors and
    /// makes sure the bootstrap admin user exists.
    pub async fn open(settings: Arc<Settings>, nats: Nats, shutdown: &CancellationToken) -> anyhow::Result<Arc<App>> {
        let app = App {
            users: nats.bucket(buckets::USERS, shutdown).await?,
            tokens: nats.bucket(buckets::TOKENS, shutdown).await?,
            resources: nats.bucket(buckets::RESOURCES, shutdown).await?,
            grants: nats.bucket(buckets::GRANTS, shutdown).await?,
            events: nats.event_log(&settings).await?,
            settings,
            nats,
        };
        app.ensure_bootstrap_admin().await.context("failed to create the bootstrap admin user")?;
        Ok(Arc::new(app))
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
