//! Everything that talks to NATS: the connection, the server checks, the
//! streams and key-value buckets Herald creates, and the embedded server.
//!
//! This is the only module that names `async_nats`; the rest of Herald sees
//! typed buckets ([`Bucket`]) and the event log ([`EventLog`]).

mod ack_subject;
mod attempts;
mod bucket;
mod consumers;
pub mod embedded;
mod event_log;
mod mirror;
mod personal;
mod scan;
mod settler;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, bail};
use async_nats::{
    Client, ConnectOptions, Event,
    jetstream::{self, kv, stream::StorageType},
};

pub use ack_subject::AckSubject;
pub use attempts::{ATTEMPTS_STREAM, AttemptLog, attempts_subject};
pub use bucket::Bucket;
pub use consumers::{AckOp, AckOutcome, ConsumerSpec, ConsumerState, Delivery, Pull, ReleaseGuard};
pub use event_log::{EVENTS_STREAM, EventLog, OutgoingEvent, Stored};
pub use personal::{PERSONAL_STREAM, PersonalLog, PersonalWatch};
pub use scan::StoredMessage;

use crate::{
    config::Settings,
    error::{Error, Result},
};

/// Oldest nats-server Herald runs on: 2.10 added multiple consumer filter
/// subjects, which older servers silently ignore.
pub const MIN_SERVER_VERSION: (u64, u64) = (2, 10);

/// Names of the key-value buckets Herald keeps its state in.
pub mod buckets {
    /// Users by id.
    pub const USERS: &str = "herald_users";
    /// API tokens by token id.
    pub const TOKENS: &str = "herald_tokens";
    /// Resources by id.
    pub const RESOURCES: &str = "herald_resources";
    /// Permission grants by `<user id>.<resource id>`.
    pub const GRANTS: &str = "herald_grants";
    /// Event consumer registry by consumer id.
    pub const CONSUMERS: &str = "herald_consumers";
    /// Webhook subscriptions by id.
    pub const SUBSCRIPTIONS: &str = "herald_subscriptions";
    /// Live delivery status of subscriptions by id.
    pub const SUBSCRIPTION_STATUS: &str = "herald_subscription_status";
    /// Receiver authentication configurations by id.
    pub const AUTH_CONFIGS: &str = "herald_auth_configs";
    /// Custom event types seen or registered, by name.
    pub const EVENT_TYPES: &str = "herald_event_types";
}

/// A connection to NATS with its JetStream context.
#[derive(Clone)]
pub struct Nats {
    client: Client,
    js: jetstream::Context,
    replicas: usize,
    reconnects: Arc<AtomicU64>,
}

impl Nats {
    /// Connects to `url` and checks the server: version at least 2.10,
    /// JetStream enabled, and a max payload that fits Herald's largest event.
    pub async fn connect(url: &str, settings: &Settings) -> anyhow::Result<Self> {
        let servers: Vec<String> = url.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        let reconnects = Arc::new(AtomicU64::new(0));
        let counter = reconnects.clone();
        let client = ConnectOptions::new()
            .name("herald")
            .connection_timeout(settings.nats.connect_timeout)
            .request_timeout(Some(settings.nats.request_timeout))
            .max_reconnects(None)
            .event_callback(move |event| {
                let counter = counter.clone();
                async move {
                    if matches!(event, Event::Connected) {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    log_connection_event(event)
                }
            })
            .connect(servers)
            .await
            .with_context(|| format!("failed to connect to NATS at {url}"))?;
        let info = client.server_info();
        check_server_version(&info.version)
            .with_context(|| format!("nats-server at {url} is too old or unrecognised"))?;
        if !info.jetstream {
            bail!("JetStream is not enabled on nats-server {} at {url}; start it with -js", info.version);
        }
        let needed = settings.events.max_payload_bytes + 16 * 1024;
        if info.max_payload < needed {
            bail!(
                "nats-server at {url} allows messages of {} bytes, but events.max_payload_bytes = {} needs {needed}",
                info.max_payload,
                settings.events.max_payload_bytes
            );
        }
        tracing::info!(server_version = %info.version, %url, "connected to NATS");
        let js = jetstream::ContextBuilder::new().timeout(settings.nats.request_timeout).build(client.clone());
        Ok(Nats { client, js, replicas: settings.nats.replicas, reconnects })
    }

    /// How many times the connection was re-established after a loss.
    pub fn reconnects(&self) -> u64 {
        // The first `Connected` event is the initial connection.
        self.reconnects.load(Ordering::Relaxed).saturating_sub(1)
    }

    /// True when the events stream answers (for readiness).
    pub async fn streams_present(&self) -> bool {
        self.js.get_stream_no_info(EVENTS_STREAM).await.is_ok()
            && self.js.get_stream_no_info(PERSONAL_STREAM).await.is_ok()
    }

    /// The underlying client (for the few places that publish core NATS).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// True while the client is connected.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Fails with UNAVAILABLE while disconnected, so that writes are refused
    /// up front instead of being buffered and replayed after a reconnect.
    pub fn ensure_connected(&self) -> Result<()> {
        if self.is_connected() {
            Ok(())
        } else {
            Err(Error::Unavailable("NATS is unavailable; try again later".into()))
        }
    }

    /// Maps a NATS failure: UNAVAILABLE when disconnected or timed out, else internal.
    pub fn failure(&self, context: &'static str, err: impl std::fmt::Display + std::fmt::Debug) -> Error {
        let text = format!("{err:?}");
        if !self.is_connected() || text.contains("TimedOut") || text.contains("NoResponders") {
            tracing::warn!(error = %err, "{context}: NATS unavailable");
            Error::Unavailable(format!("NATS is unavailable ({context}); try again later"))
        } else {
            Error::Internal(anyhow::anyhow!("{err}").context(context))
        }
    }

    /// Creates (or updates to the current settings) a key-value bucket and
    /// opens it as a mirrored [`Bucket`].
    pub async fn bucket<T>(
        &self,
        name: &'static str,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Bucket<T>>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        let config = kv::Config {
            bucket: name.to_owned(),
            history: 1,
            storage: StorageType::File,
            num_replicas: self.replicas,
            ..Default::default()
        };
        let store = self
            .js
            .create_or_update_key_value(config)
            .await
            .with_context(|| format!("failed to create key-value bucket {name}"))?;
        Bucket::open(Arc::new(self.clone()), name, store, shutdown.clone()).await
    }

    /// Creates (or updates) the events stream and opens it.
    pub async fn event_log(&self, settings: &Settings) -> anyhow::Result<EventLog> {
        EventLog::open(self.clone(), self.js.clone(), settings).await
    }

    /// Creates (or updates) the delivery attempt stream and opens it.
    pub async fn attempt_log(&self, settings: &Settings) -> anyhow::Result<AttemptLog> {
        AttemptLog::open(self.clone(), self.js.clone(), settings).await
    }

    /// Creates (or updates) the personal notifications stream and opens it.
    pub async fn personal_log(&self, settings: &Settings) -> anyhow::Result<PersonalLog> {
        PersonalLog::open(self.clone(), self.js.clone(), settings).await
    }

    /// Flushes and closes the connection.
    pub async fn drain(&self) {
        if let Err(err) = tokio::time::timeout(Duration::from_secs(5), self.client.drain()).await {
            tracing::warn!(error = %err, "NATS drain timed out");
        }
    }
}

fn log_connection_event(event: Event) {
    match event {
        Event::Connected => tracing::info!("NATS connection (re)established"),
        Event::Disconnected => tracing::warn!("NATS connection lost; reconnecting"),
        other => tracing::info!(event = %other, "NATS client event"),
    }
}

/// Parses `major.minor.patch[-suffix]` and requires at least [`MIN_SERVER_VERSION`].
pub fn check_server_version(version: &str) -> anyhow::Result<()> {
    let mut parts = version.trim_start_matches('v').split(['.', '-']);
    let mut next = || parts.next().and_then(|p| p.parse::<u64>().ok());
    let (Some(major), Some(minor)) = (next(), next()) else {
        bail!("cannot parse nats-server version {version:?}");
    };
    if (major, minor) < MIN_SERVER_VERSION {
        bail!(
            "nats-server {version} is too old: Herald needs {}.{} or newer (older servers silently ignore \
             multiple consumer filter subjects); install a newer one with `./dev install`",
            MIN_SERVER_VERSION.0,
            MIN_SERVER_VERSION.1
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_below_2_10_are_refused() {
        for ok in ["2.10.0", "2.15.1", "v2.12.3-beta", "3.0.0"] {
            assert!(check_server_version(ok).is_ok(), "{ok}");
        }
        for old in ["2.9.10", "1.4.0"] {
            let err = check_server_version(old).unwrap_err().to_string();
            assert!(err.contains("too old"), "{err}");
        }
        assert!(check_server_version("garbage").is_err());
    }
}
