//! Settings: defaults, an optional TOML file, then `HERALD_*` environment
//! variables, validated once at start with messages that name the key.
//!
//! Environment mapping: `HERALD_<SECTION>_<KEY>` sets `[section] key` for the
//! known sections; anything else sets a top-level key (`HERALD_ADMIN_TOKEN`
//! sets `admin_token`). The CLI's own variables (`HERALD_SERVER`,
//! `HERALD_TOKEN`, `HERALD_CONFIG`, `HERALD_JSON`) and `HERALD_TEST_*` are not
//! settings and are skipped.

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, de::DeserializeOwned};

/// Sections of the settings file; `HERALD_<SECTION>_...` variables map into them.
const SECTIONS: &[&str] = &["grpc", "nats", "events", "consumers", "personal", "delivery", "ops", "log"];
/// `HERALD_*` variables that belong to the CLI, not to the server settings.
const NOT_SETTINGS: &[&str] = &["server", "token", "config", "json"];

/// Every setting of a Herald server. See `config.example.toml` for the documented defaults.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Bearer token of the bootstrap admin (user id `admin`). At least 16 characters.
    pub admin_token: Option<SecretString>,
    /// AES-256-GCM key (32 bytes, base64) sealing stored secrets: receiver
    /// credentials, signing secrets, Slack URLs and tokens. Required unless
    /// `dev` (which then uses a random key per process).
    pub secrets_key: Option<SecretString>,
    /// Development mode: relaxes production-only checks.
    #[serde(deserialize_with = "lenient")]
    pub dev: bool,
    pub grpc: GrpcSettings,
    pub nats: NatsSettings,
    pub events: EventSettings,
    pub consumers: ConsumerSettings,
    pub personal: PersonalSettings,
    pub delivery: DeliverySettings,
    pub ops: OpsSettings,
    pub log: LogSettings,
}

/// The ops HTTP listener (metrics, health, readiness).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsSettings {
    /// Address of `/metrics`, `/healthz` and `/readyz`; port 0 picks a free port.
    #[serde(deserialize_with = "lenient")]
    pub listen: SocketAddr,
    /// How long in-flight webhook deliveries may finish on shutdown; those
    /// still running are left unacknowledged and redelivered later.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for OpsSettings {
    fn default() -> Self {
        OpsSettings { listen: ([127, 0, 0, 1], 9464).into(), shutdown_grace: Duration::from_secs(10) }
    }
}

/// The gRPC listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcSettings {
    /// Address to listen on; port 0 picks a free port.
    #[serde(deserialize_with = "lenient")]
    pub listen: SocketAddr,
    /// PEM certificate chain; with `tls_key`, serves TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Largest gRPC request or response message in bytes.
    #[serde(deserialize_with = "lenient")]
    pub max_message_bytes: usize,
}

/// How Herald reaches NATS.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsSettings {
    /// NATS server or cluster URLs (comma-separated). Unset: start an embedded
    /// nats-server child process.
    pub url: Option<String>,
    /// The nats-server binary for the embedded mode. Unset: the project-local
    /// install (`.herald/tools/...`), then `PATH`.
    pub server_bin: Option<PathBuf>,
    /// Listen address of the embedded nats-server.
    #[serde(deserialize_with = "lenient")]
    pub embedded_listen: SocketAddr,
    /// JetStream store directory of the embedded nats-server.
    pub embedded_store_dir: PathBuf,
    /// Timeout of the first connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Timeout of each JetStream API request and publish acknowledgement.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Replicas of every stream and KV bucket Herald creates (1 on a single
    /// server, 3 on a cluster).
    #[serde(deserialize_with = "lenient")]
    pub replicas: usize,
}

/// The events stream and the emit path.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    /// How long events are kept (the shelf life of notifications).
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Size cap of the events stream in bytes; -1 for none.
    #[serde(deserialize_with = "lenient")]
    pub max_bytes: i64,
    /// Largest accepted event payload (JSON text) in bytes.
    #[serde(deserialize_with = "lenient")]
    pub max_payload_bytes: usize,
    /// Most events in one `EmitEvents` call.
    #[serde(deserialize_with = "lenient")]
    pub max_batch: usize,
    /// How long an idempotency key is remembered.
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
}

/// Scoped event consumers and their reply tokens.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerSettings {
    /// HMAC-SHA256 key signing reply tokens, at least 32 bytes; every replica
    /// needs the same key. Required unless `dev` (which then uses a random
    /// per-process key).
    pub reply_key: Option<SecretString>,
    /// The key before the last rotation; tokens signed with it stay valid.
    pub previous_reply_key: Option<SecretString>,
    /// How long a reply token can be used.
    #[serde(with = "humantime_serde")]
    pub reply_ttl: Duration,
    /// How long a delivered event waits for its acknowledgement before it is
    /// redelivered.
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
    /// Most deliveries of one event; -1 for unlimited.
    #[serde(deserialize_with = "lenient")]
    pub max_deliver: i64,
    /// Most delivered-but-unacknowledged events per consumer.
    #[serde(deserialize_with = "lenient")]
    pub max_in_flight: i64,
    /// A consumer nobody fetched from for this long is removed.
    #[serde(with = "humantime_serde")]
    pub inactive_threshold: Duration,
    /// Most consumers one user may own.
    #[serde(deserialize_with = "lenient")]
    pub max_per_user: usize,
    /// Events a stream buffers for a slow client before it stops pulling.
    #[serde(deserialize_with = "lenient")]
    pub stream_buffer: usize,
    /// A stream with nothing to send sends a keep-alive this often.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// A stream whose NATS connection stays lost this long ends with UNAVAILABLE.
    #[serde(with = "humantime_serde")]
    pub stream_outage_grace: Duration,
    /// Longest redelivery delay a negative acknowledgement may ask for.
    #[serde(with = "humantime_serde")]
    pub max_nack_delay: Duration,
}

/// Personal notifications.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PersonalSettings {
    /// Most unacknowledged notifications kept per user; beyond it the oldest
    /// is dropped.
    #[serde(deserialize_with = "lenient")]
    pub max_per_user: i64,
    /// How long unacknowledged notifications are kept; 0s keeps them until
    /// acknowledged.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// One access request per requester and resource per this interval.
    #[serde(with = "humantime_serde")]
    pub access_request_interval: Duration,
}

/// Webhook delivery.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySettings {
    /// Timeout of one webhook request; the subscription consumers' ack wait is
    /// four times this, so a slow request is never redelivered while in flight.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Delays before the 2nd, 3rd, ... attempt; after the last, a failing
    /// event is given up (and stays in the attempt log for resending).
    #[serde(deserialize_with = "lenient_durations")]
    pub retry_schedule: Vec<Duration>,
    /// Random spread of each retry delay, 0 to 0.5 (0.2 = +-20%).
    #[serde(deserialize_with = "lenient")]
    pub retry_jitter: f64,
    /// Longest `Retry-After` honoured; longer ones are cut to it.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
    /// A subscription failing without a success for this long is disabled.
    #[serde(with = "humantime_serde")]
    pub disable_after: Duration,
    /// Concurrent requests per subscription per replica (ordered ones: 1).
    #[serde(deserialize_with = "lenient")]
    pub max_concurrency: usize,
    /// Events delivered or awaiting a retry per subscription before the
    /// subscription's consumer stops handing out more.
    #[serde(deserialize_with = "lenient")]
    pub max_pending: i64,
    /// Networks (CIDR) webhooks may reach although they are internal, e.g.
    /// "127.0.0.1/32" for tests; comma-separated in the environment.
    #[serde(deserialize_with = "lenient_list")]
    pub allowed_networks: Vec<String>,
    /// How long a rotated-out signing secret keeps signing.
    #[serde(with = "humantime_serde")]
    pub secret_rotation_grace: Duration,
    /// How long delivery attempts are kept in the attempt log.
    #[serde(with = "humantime_serde")]
    pub attempt_log_max_age: Duration,
    /// Most attempts kept per subscription (oldest dropped).
    #[serde(deserialize_with = "lenient")]
    pub attempt_log_per_subscription: i64,
    /// Longest a delivery's attempt record waits for others to share its
    /// batch (the window a crash can lose; a graceful shutdown loses none).
    #[serde(with = "humantime_serde")]
    pub attempt_log_linger: Duration,
    /// Longest a delivery's acknowledgement waits for others to leave in the
    /// same burst (a crash within it means one more delivery; a graceful
    /// shutdown sends them first).
    #[serde(with = "humantime_serde")]
    pub ack_linger: Duration,
    /// Most events one `ReplayEvents` call delivers.
    #[serde(deserialize_with = "lenient")]
    pub max_replay: usize,
    /// Most subscriptions one user may own.
    #[serde(deserialize_with = "lenient")]
    pub max_per_user: usize,
    /// Base URL of Slack's Web API (`chat.postMessage` is appended).
    pub slack_api_base: String,
    /// Value of `WebHook-Request-Origin` in CloudEvents validation handshakes.
    pub cloudevents_origin: String,
}

impl DeliverySettings {
    /// The ack wait of subscription consumers.
    pub fn ack_wait(&self) -> Duration {
        (self.request_timeout * 4).max(Duration::from_secs(2))
    }
}

/// Logging.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// `RUST_LOG`-style filter; `RUST_LOG` itself wins when set.
    pub filter: String,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for GrpcSettings {
    fn default() -> Self {
        GrpcSettings {
            listen: ([127, 0, 0, 1], 50051).into(),
            tls_cert: None,
            tls_key: None,
            max_message_bytes: 16 * 1024 * 1024,
        }
    }
}

impl Default for NatsSettings {
    fn default() -> Self {
        NatsSettings {
            url: None,
            server_bin: None,
            embedded_listen: ([127, 0, 0, 1], 4222).into(),
            embedded_store_dir: PathBuf::from(".herald/embedded-nats"),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            replicas: 1,
        }
    }
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: -1,
            max_payload_bytes: 64 * 1024,
            max_batch: 1000,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings {
            reply_key: None,
            previous_reply_key: None,
            reply_ttl: Duration::from_secs(15 * 60),
            ack_wait: Duration::from_secs(60),
            max_deliver: -1,
            max_in_flight: 1000,
            inactive_threshold: Duration::from_secs(24 * 3600),
            max_per_user: 100,
            stream_buffer: 64,
            keepalive_interval: Duration::from_secs(15),
            stream_outage_grace: Duration::from_secs(30),
            max_nack_delay: Duration::from_secs(12 * 3600),
        }
    }
}

impl Default for PersonalSettings {
    fn default() -> Self {
        PersonalSettings {
            max_per_user: 1000,
            max_age: Duration::ZERO,
            access_request_interval: Duration::from_secs(3600),
        }
    }
}

impl Default for DeliverySettings {
    fn default() -> Self {
        let h = |hours: u64| Duration::from_secs(hours * 3600);
        DeliverySettings {
            request_timeout: Duration::from_secs(15),
            retry_schedule: vec![
                Duration::from_secs(5),
                Duration::from_secs(300),
                Duration::from_secs(1800),
                h(2),
                h(5),
                h(10),
                h(10),
            ],
            retry_jitter: 0.2,
            max_retry_after: h(1),
            disable_after: h(5 * 24),
            max_concurrency: 16,
            max_pending: 1000,
            allowed_networks: Vec::new(),
            secret_rotation_grace: h(24),
            attempt_log_max_age: h(30 * 24),
            attempt_log_per_subscription: 1000,
            attempt_log_linger: Duration::from_millis(20),
            ack_linger: Duration::from_millis(1),
            max_replay: 10_000,
            max_per_user: 100,
            slack_api_base: "https://slack.com/api".into(),
            cloudevents_origin: "herald.invalid".into(),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { format: LogFormat::Text, filter: "info".into() }
    }
}

/// A setting that is missing, malformed or out of range.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration `{key}`: {message}")]
pub struct ConfigError {
    /// Dotted key, e.g. `events.max_batch`.
    pub key: String,
    pub message: String,
}

fn bad(key: &str, message: impl fmt::Display) -> ConfigError {
    ConfigError { key: key.into(), message: message.to_string() }
}

impl Settings {
    /// Loads defaults, then `file` (if any), then the `HERALD_*` variables of
    /// `env`, and validates the result.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("failed to read config file {}", path.display()))?;
                text.parse::<toml::Table>().with_context(|| format!("failed to parse {}", path.display()))?
            }
            None => toml::Table::new(),
        };
        overlay_env(&mut table, env);
        let settings: Settings = deserialize_table(table)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks ranges and combinations, naming the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(token) = &self.admin_token
            && token.expose_secret().len() < 16
        {
            return Err(bad("admin_token", "must be at least 16 characters"));
        }
        if self.grpc.tls_cert.is_some() != self.grpc.tls_key.is_some() {
            return Err(bad("grpc.tls_key", "grpc.tls_cert and grpc.tls_key must be set together"));
        }
        if !(64 * 1024..=256 * 1024 * 1024).contains(&self.grpc.max_message_bytes) {
            return Err(bad("grpc.max_message_bytes", "must be between 65536 and 268435456"));
        }
        if self.grpc.max_message_bytes < 4 * (self.events.max_payload_bytes + 16 * 1024) {
            return Err(bad(
                "grpc.max_message_bytes",
                "must be at least 4 x (events.max_payload_bytes + 16384) so event batches fit",
            ));
        }
        if !(1..=5).contains(&self.nats.replicas) {
            return Err(bad("nats.replicas", "must be between 1 and 5"));
        }
        if self.nats.request_timeout < Duration::from_millis(100) {
            return Err(bad("nats.request_timeout", "must be at least 100ms"));
        }
        if self.events.max_age < Duration::from_secs(60) {
            return Err(bad("events.max_age", "must be at least 1m"));
        }
        if !(1..=1024 * 1024).contains(&self.events.max_payload_bytes) {
            return Err(bad("events.max_payload_bytes", "must be between 1 and 1048576"));
        }
        if !(1..=10_000).contains(&self.events.max_batch) {
            return Err(bad("events.max_batch", "must be between 1 and 10000"));
        }
        if self.events.duplicate_window < Duration::from_secs(1) || self.events.duplicate_window > self.events.max_age {
            return Err(bad("events.duplicate_window", "must be between 1s and events.max_age"));
        }
        if self.events.max_bytes == 0 || self.events.max_bytes < -1 {
            return Err(bad("events.max_bytes", "must be -1 (unlimited) or positive"));
        }
        self.validate_consumers()?;
        if !(1..=100_000).contains(&self.personal.max_per_user) {
            return Err(bad("personal.max_per_user", "must be between 1 and 100000"));
        }
        if !self.personal.max_age.is_zero() && self.personal.max_age < Duration::from_secs(60) {
            return Err(bad("personal.max_age", "must be 0s (keep until acknowledged) or at least 1m"));
        }
        if self.personal.access_request_interval < Duration::from_secs(1) {
            return Err(bad("personal.access_request_interval", "must be at least 1s"));
        }
        self.validate_delivery()?;
        if self.ops.shutdown_grace > Duration::from_secs(600) {
            return Err(bad("ops.shutdown_grace", "must be at most 10m"));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.filter).is_err() {
            return Err(bad("log.filter", "is not a valid filter directive"));
        }
        Ok(())
    }
}

impl Settings {
    fn validate_consumers(&self) -> Result<(), ConfigError> {
        let c = &self.consumers;
        for (key, value) in
            [("consumers.reply_key", &c.reply_key), ("consumers.previous_reply_key", &c.previous_reply_key)]
        {
            if value.as_ref().is_some_and(|k| k.expose_secret().len() < 32) {
                return Err(bad(key, "must be at least 32 bytes"));
            }
        }
        match &self.secrets_key {
            Some(key) if crate::auth::sealing::Sealer::decode_key(key.expose_secret()).is_none() => {
                return Err(bad("secrets_key", "must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)"));
            }
            None if !self.dev => {
                return Err(bad(
                    "secrets_key",
                    "is required (32 bytes, base64, shared by all replicas) unless dev = true",
                ));
            }
            _ => {}
        }
        if c.reply_key.is_none() && !self.dev {
            return Err(bad(
                "consumers.reply_key",
                "is required (at least 32 bytes, shared by all replicas) unless dev = true",
            ));
        }
        if c.ack_wait < Duration::from_secs(1) || c.ack_wait > Duration::from_secs(12 * 3600) {
            return Err(bad("consumers.ack_wait", "must be between 1s and 12h"));
        }
        if c.reply_ttl < Duration::from_secs(1) {
            return Err(bad("consumers.reply_ttl", "must be at least 1s"));
        }
        if c.max_deliver == 0 || c.max_deliver < -1 {
            return Err(bad("consumers.max_deliver", "must be -1 (unlimited) or positive"));
        }
        if !(1..=100_000).contains(&c.max_in_flight) {
            return Err(bad("consumers.max_in_flight", "must be between 1 and 100000"));
        }
        if c.inactive_threshold < Duration::from_secs(1) {
            return Err(bad("consumers.inactive_threshold", "must be at least 1s"));
        }
        if !(1..=10_000).contains(&c.max_per_user) {
            return Err(bad("consumers.max_per_user", "must be between 1 and 10000"));
        }
        if !(1..=10_000).contains(&c.stream_buffer) {
            return Err(bad("consumers.stream_buffer", "must be between 1 and 10000"));
        }
        if c.keepalive_interval < Duration::from_millis(100) {
            return Err(bad("consumers.keepalive_interval", "must be at least 100ms"));
        }
        Ok(())
    }
}

impl Settings {
    fn validate_delivery(&self) -> Result<(), ConfigError> {
        let d = &self.delivery;
        if d.request_timeout < Duration::from_millis(100) || d.request_timeout > Duration::from_secs(300) {
            return Err(bad("delivery.request_timeout", "must be between 100ms and 5m"));
        }
        if d.retry_schedule.len() > 20 || d.retry_schedule.iter().any(|r| *r > Duration::from_secs(7 * 24 * 3600)) {
            return Err(bad("delivery.retry_schedule", "may have at most 20 delays of at most 7d each"));
        }
        if !(0.0..=0.5).contains(&d.retry_jitter) {
            return Err(bad("delivery.retry_jitter", "must be between 0 and 0.5"));
        }
        if !(1..=256).contains(&d.max_concurrency) {
            return Err(bad("delivery.max_concurrency", "must be between 1 and 256"));
        }
        if !(1..=100_000).contains(&d.max_pending) {
            return Err(bad("delivery.max_pending", "must be between 1 and 100000"));
        }
        if let Some(bad_net) = d.allowed_networks.iter().find(|n| n.parse::<ipnet::IpNet>().is_err()) {
            return Err(bad(
                "delivery.allowed_networks",
                format!("{bad_net:?} is not a CIDR network like 127.0.0.1/32"),
            ));
        }
        if !(1..=100_000).contains(&d.attempt_log_per_subscription) {
            return Err(bad("delivery.attempt_log_per_subscription", "must be between 1 and 100000"));
        }
        if !(Duration::from_millis(1)..=Duration::from_secs(60)).contains(&d.attempt_log_linger) {
            return Err(bad("delivery.attempt_log_linger", "must be between 1ms and 60s"));
        }
        // A delivery takes at most one request timeout; its acknowledgement
        // must then reach JetStream well within the ack wait (4 timeouts).
        if !(Duration::from_millis(1)..=Duration::from_secs(10)).contains(&d.ack_linger)
            || d.ack_linger > d.request_timeout * 2
        {
            return Err(bad(
                "delivery.ack_linger",
                "must be between 1ms and 10s, and at most twice delivery.request_timeout",
            ));
        }
        if !(1..=1_000_000).contains(&d.max_replay) {
            return Err(bad("delivery.max_replay", "must be between 1 and 1000000"));
        }
        if !(1..=10_000).contains(&d.max_per_user) {
            return Err(bad("delivery.max_per_user", "must be between 1 and 10000"));
        }
        if !d.slack_api_base.starts_with("http://") && !d.slack_api_base.starts_with("https://") {
            return Err(bad("delivery.slack_api_base", "must be an http(s) URL"));
        }
        if d.cloudevents_origin.trim().is_empty() {
            return Err(bad("delivery.cloudevents_origin", "must not be empty"));
        }
        if d.disable_after < Duration::from_secs(1) {
            return Err(bad("delivery.disable_after", "must be at least 1s"));
        }
        Ok(())
    }
}

/// Maps `HERALD_*` variables into the TOML table (see the module docs).
fn overlay_env(table: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("HERALD_") else { continue };
        let key = rest.to_ascii_lowercase();
        if NOT_SETTINGS.contains(&key.as_str()) || key.starts_with("test_") {
            continue;
        }
        let section = SECTIONS.iter().find(|s| key.strip_prefix(**s).is_some_and(|r| r.starts_with('_')));
        let value = toml::Value::String(value);
        match section {
            Some(section) => {
                let field = key[section.len() + 1..].to_owned();
                let entry = table.entry(section.to_string()).or_insert_with(|| toml::Table::new().into());
                if let toml::Value::Table(t) = entry {
                    t.insert(field, value);
                }
            }
            None => {
                table.insert(key, value);
            }
        }
    }
}

fn deserialize_table<T: DeserializeOwned>(table: toml::Table) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        let key = if key == "." { "<root>".to_owned() } else { key };
        bad(&key, e.into_inner())
    })
}

/// Accepts a value of its own type or a string to parse (environment
/// variables are always strings).
fn lenient<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr + Deserialize<'de>,
    T::Err: fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<T> {
        Text(String),
        Value(T),
    }
    match Either::<T>::deserialize(deserializer)? {
        Either::Value(v) => Ok(v),
        Either::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// A list, or (from the environment) a comma-separated string.
fn lenient_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        List(Vec<String>),
    }
    Ok(match Either::deserialize(deserializer)? {
        Either::List(list) => list,
        Either::Text(text) => text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
    })
}

/// Durations like "5s" as a list, or a comma-separated string.
fn lenient_durations<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Duration>, D::Error> {
    lenient_list(deserializer)?
        .iter()
        .map(|s| humantime::parse_duration(s).map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn defaults_are_valid() {
        let s = Settings::load(None, env(&[("HERALD_DEV", "true")])).unwrap();
        assert_eq!(s.events.max_payload_bytes, 65536);
        assert_eq!(s.events.max_age, Duration::from_secs(604_800));
        assert!(s.nats.url.is_none());
    }

    #[test]
    fn the_example_file_documents_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let example = Settings::load(Some(&path), env(&[("HERALD_DEV", "true")])).unwrap();
        let defaults = Settings { dev: true, ..Settings::default() };
        assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn environment_overrides_sections_and_top_level_keys() {
        let s = Settings::load(
            None,
            env(&[
                ("HERALD_NATS_URL", "nats://10.0.0.1:4222"),
                ("HERALD_ADMIN_TOKEN", "0123456789abcdef0123"),
                ("HERALD_EVENTS_MAX_BATCH", "50"),
                ("HERALD_EVENTS_MAX_AGE", "2d"),
                ("HERALD_DEV", "true"),
                ("HERALD_TOKEN", "client token, not a setting"),
                ("HERALD_TEST_ANYTHING", "skipped"),
                ("OTHER", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(s.nats.url.as_deref(), Some("nats://10.0.0.1:4222"));
        assert_eq!(s.admin_token.unwrap().expose_secret(), "0123456789abcdef0123");
        assert_eq!(s.events.max_batch, 50);
        assert_eq!(s.events.max_age, Duration::from_secs(2 * 86_400));
        assert!(s.dev);
        let s = Settings::load(
            None,
            env(&[
                ("HERALD_DEV", "true"),
                ("HERALD_DELIVERY_ALLOWED_NETWORKS", "127.0.0.1/32, 10.0.0.0/8"),
                ("HERALD_DELIVERY_RETRY_SCHEDULE", "1s,2m"),
            ]),
        )
        .unwrap();
        assert_eq!(s.delivery.allowed_networks, ["127.0.0.1/32", "10.0.0.0/8"]);
        assert_eq!(s.delivery.retry_schedule, [Duration::from_secs(1), Duration::from_secs(120)]);
        let err =
            Settings::load(None, env(&[("HERALD_DEV", "true"), ("HERALD_DELIVERY_ALLOWED_NETWORKS", "localhost")]));
        assert!(err.unwrap_err().to_string().contains("delivery.allowed_networks"));
    }

    #[test]
    fn file_values_are_overridden_by_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.toml");
        std::fs::write(&path, "[events]\nmax_batch = 10\nmax_payload_bytes = 100\n").unwrap();
        let s =
            Settings::load(Some(&path), env(&[("HERALD_EVENTS_MAX_BATCH", "20"), ("HERALD_DEV", "1")])).unwrap_err();
        assert!(format!("{s:#}").contains("dev"), "{s:#}");
        let s = Settings::load(Some(&path), env(&[("HERALD_EVENTS_MAX_BATCH", "20"), ("HERALD_DEV", "true")])).unwrap();
        assert_eq!(s.events.max_batch, 20);
        assert_eq!(s.events.max_payload_bytes, 100);
    }

    #[test]
    fn errors_name_the_key() {
        let err = Settings::load(None, Vec::new()).unwrap_err();
        assert!(err.to_string().contains("secrets_key"), "{err}");
        let err = Settings::load(None, env(&[("HERALD_SECRETS_KEY", "c2hvcnQ=")])).unwrap_err();
        assert!(err.to_string().contains("secrets_key"), "{err}");
        let key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        let err = Settings::load(None, env(&[("HERALD_SECRETS_KEY", key)])).unwrap_err();
        assert!(err.to_string().contains("consumers.reply_key"), "{err}");
        let err = Settings::load(None, env(&[("HERALD_CONSUMERS_REPLY_KEY", "too-short"), ("HERALD_DEV", "true")]))
            .unwrap_err();
        assert!(err.to_string().contains("consumers.reply_key"), "{err}");
        let err = Settings::load(None, env(&[("HERALD_EVENTS_MAX_BATCH", "0")])).unwrap_err();
        assert!(err.to_string().contains("events.max_batch"), "{err}");
        let err = Settings::load(None, env(&[("HERALD_EVENTS_MAX_BATCH", "many")])).unwrap_err();
        assert!(format!("{err:#}").contains("max_batch"), "{err:#}");
        let err = Settings::load(None, env(&[("HERALD_NATS_BOGUS", "1")])).unwrap_err();
        assert!(format!("{err:#}").contains("bogus"), "{err:#}");
        let err = Settings::load(None, env(&[("HERALD_ADMIN_TOKEN", "short")])).unwrap_err();
        assert!(err.to_string().contains("admin_token"), "{err}");
    }

    #[test]
    fn the_attempt_log_linger_is_checked_at_its_edges() {
        let linger = |value: &str| {
            Settings::load(None, env(&[("HERALD_DEV", "true"), ("HERALD_DELIVERY_ATTEMPT_LOG_LINGER", value)]))
        };
        assert_eq!(linger("1ms").unwrap().delivery.attempt_log_linger, Duration::from_millis(1));
        assert_eq!(linger("60s").unwrap().delivery.attempt_log_linger, Duration::from_secs(60));
        for outside in ["0s", "61s"] {
            let err = linger(outside).unwrap_err();
            assert!(err.to_string().contains("delivery.attempt_log_linger"), "{outside}: {err}");
        }
    }

    #[test]
    fn the_ack_linger_is_checked_at_its_edges_and_against_the_request_timeout() {
        let linger = |value: &str, timeout: &str| {
            Settings::load(
                None,
                env(&[
                    ("HERALD_DEV", "true"),
                    ("HERALD_DELIVERY_ACK_LINGER", value),
                    ("HERALD_DELIVERY_REQUEST_TIMEOUT", timeout),
                ]),
            )
        };
        assert_eq!(linger("1ms", "100ms").unwrap().delivery.ack_linger, Duration::from_millis(1));
        assert_eq!(linger("10s", "15s").unwrap().delivery.ack_linger, Duration::from_secs(10));
        assert_eq!(linger("4s", "2s").unwrap().delivery.ack_linger, Duration::from_secs(4), "twice the timeout");
        for (outside, timeout) in [("0s", "15s"), ("11s", "15s"), ("4001ms", "2s")] {
            let err = linger(outside, timeout).unwrap_err();
            assert!(err.to_string().contains("delivery.ack_linger"), "{outside} with {timeout}: {err}");
        }
    }
}
