//! Webhook subscriptions as stored, their validation rules, and the
//! delivery attempt log records.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::consumer::{Target, target_filter_subjects};
use crate::error::{Error, Result};

/// Most custom headers on a webhook.
pub const MAX_HEADERS: usize = 10;
/// Longest webhook URL.
pub const MAX_URL_LEN: usize = 2048;
/// Longest header name or value.
pub const MAX_HEADER_LEN: usize = 1024;
/// Headers a subscription may not set: Herald's signature and content headers.
const RESERVED_HEADERS: &[&str] =
    &["content-type", "content-length", "content-encoding", "transfer-encoding", "host", "connection", "te", "upgrade"];
/// Header prefixes reserved for signatures and CloudEvents.
const RESERVED_PREFIXES: &[&str] = &["webhook-", "ce-"];

/// HTTP method of a webhook.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Post,
    Put,
    Patch,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
        }
    }
}

/// Where events go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Destination {
    /// An HTTP endpoint.
    Webhook(Webhook),
    /// A Slack incoming webhook; the URL carries a token, so it is sealed.
    SlackWebhook { url: String },
    /// Slack's `chat.postMessage` with a bot token (sealed) to a channel.
    SlackBot { token: String, channel: String },
}

/// How an event is put on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// Herald's event JSON.
    #[default]
    Plain,
    /// CloudEvents 1.0 HTTP binary mode: `ce-*` headers, the payload as body.
    CloudEventsBinary,
    /// CloudEvents 1.0 HTTP structured mode: `application/cloudevents+json`.
    CloudEventsStructured,
}

/// An HTTP endpoint: where and how events are delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub url: String,
    pub method: HttpMethod,
    /// Custom headers, in order.
    pub headers: Vec<(String, String)>,
}

/// A signing secret (`whsec_...`, stored sealed); older ones keep signing
/// until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningSecret {
    /// The sealed `whsec_` secret.
    pub secret: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
}

/// Why a subscription stopped delivering.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disabled {
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A webhook subscription as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    pub id: String,
    pub owner: String,
    pub name: String,
    pub target: Target,
    pub variants: Vec<String>,
    pub custom_types: Vec<String>,
    /// JSONPath predicate on the payload, e.g. `$.status == 'FAILED'`.
    pub condition: Option<String>,
    pub destination: Destination,
    #[serde(default)]
    pub format: BodyFormat,
    /// Perform the CloudEvents webhook validation handshake before delivering.
    #[serde(default)]
    pub cloudevents_handshake: bool,
    /// Authentication towards the receiver.
    #[serde(default)]
    pub auth_config: Option<String>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub disabled_until: Option<OffsetDateTime>,
    pub ordered: bool,
    /// Deliveries per second (per replica); `None` for no limit.
    pub rate_limit: Option<u32>,
    /// Newest first; expired ones are pruned on rotation.
    pub secrets: Vec<SigningSecret>,
    /// Sealed Ed25519 seed (base64) when asymmetric `v1a` signatures are on.
    pub ed25519_seed: Option<String>,
    pub disabled: Option<Disabled>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl SubscriptionRecord {
    /// The JetStream filter subjects selecting this subscription's events.
    pub fn filter_subjects(&self) -> Vec<String> {
        target_filter_subjects(&self.target, &self.variants, &self.custom_types)
    }

    /// Name of the durable JetStream consumer delivering this subscription.
    pub fn consumer_name(&self) -> String {
        consumer_name(&self.id)
    }

    /// Secrets (sealed) that still sign at `now`.
    pub fn signing_secrets(&self, now: OffsetDateTime) -> impl Iterator<Item = &str> + Clone {
        self.secrets.iter().filter(move |s| s.expires_at.is_none_or(|at| at > now)).map(|s| s.secret.as_str())
    }
}

/// Durable consumer name of subscription `id`.
pub fn consumer_name(id: &str) -> String {
    format!("wh_{id}")
}

/// Live state a subscription's workers maintain (separate from the record,
/// so deliveries never rewrite the subscription).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionStatus {
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_triggered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_errored_at: Option<OffsetDateTime>,
    /// Start of the current run of failures; cleared by a success.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub failing_since: Option<OffsetDateTime>,
    /// The receiver passed the CloudEvents validation handshake.
    #[serde(default)]
    pub handshake_done: bool,
    /// Requests per minute the receiver allowed in the handshake (`None`: any).
    #[serde(default)]
    pub allowed_rate_per_minute: Option<u32>,
}

/// Checks a webhook URL's form (the network guard checks where it points).
pub fn check_url(field: &str, url: &str) -> Result<reqwest::Url> {
    if url.len() > MAX_URL_LEN {
        return Err(Error::invalid(field, format!("is {} bytes; the limit is {MAX_URL_LEN}", url.len())));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| Error::invalid(field, format!("is not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::invalid(field, "must be an http:// or https:// URL"));
    }
    if parsed.host().is_none() {
        return Err(Error::invalid(field, "must name a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::invalid(field, "must not carry credentials; use an auth configuration"));
    }
    Ok(parsed)
}

/// Checks custom headers: at most 10, valid names and values, none reserved.
pub fn check_headers(field: &str, headers: &[(String, String)]) -> Result<()> {
    if headers.len() > MAX_HEADERS {
        return Err(Error::invalid(field, format!("has {} headers; the limit is {MAX_HEADERS}", headers.len())));
    }
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p)) {
            return Err(Error::invalid(field, format!("{name:?} is set by Herald and cannot be overridden")));
        }
        if name.is_empty()
            || name.len() > MAX_HEADER_LEN
            || reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
        {
            return Err(Error::invalid(field, format!("{name:?} is not a valid header name")));
        }
        if value.len() > MAX_HEADER_LEN || reqwest::header::HeaderValue::from_str(value).is_err() {
            return Err(Error::invalid(field, format!("the value of {name:?} is not a valid header value")));
        }
    }
    Ok(())
}

/// What an attempt was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptKind {
    Delivery,
    Resend,
    Replay,
    Test,
}

/// What came of an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Delivered,
    /// Failed; another attempt is scheduled.
    RetryScheduled,
    /// Failed and not retryable (a 4xx other than 408, 410 and 429).
    Failed,
    /// Failed and no retries are left.
    Exhausted,
    /// The receiver answered 410 Gone, or failed for too long: the subscription was disabled.
    Disabled,
}

impl AttemptOutcome {
    /// The name used in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::RetryScheduled => "retry_scheduled",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Exhausted => "exhausted",
            AttemptOutcome::Disabled => "disabled",
        }
    }
}

/// One delivery attempt, as kept in the attempt log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub event_id: String,
    /// Stream sequence of the event (for resends).
    pub sequence: u64,
    pub attempt: u32,
    pub kind: AttemptKind,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    /// The response body, cut to 4 KiB.
    pub response_body: String,
    pub outcome: AttemptOutcome,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub next_attempt_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn outcome_names_match_their_json_form() {
        use AttemptOutcome::*;
        for outcome in [Delivered, RetryScheduled, Failed, Exhausted, Disabled] {
            assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.as_str());
        }
    }

    #[test]
    fn urls_must_be_http_with_a_host_and_no_credentials() {
        assert!(check_url("url", "https://example.org/hook?x=1").is_ok());
        for bad in ["ftp://example.org", "not a url", "http://user:pw@example.org/", "mailto:a@b"] {
            assert!(check_url("webhook.url", bad).unwrap_err().to_string().contains("webhook.url"), "{bad}");
        }
        let long = format!("https://example.org/{}", "a".repeat(MAX_URL_LEN));
        assert!(check_url("u", &long).unwrap_err().to_string().contains("limit is 2048"));
    }

    #[test]
    fn headers_are_bounded_and_cannot_override_herald_headers() {
        assert!(check_headers("h", &headers(&[("X-Team", "a"), ("Authorization", "Bearer x")])).is_ok());
        for reserved in ["Content-Type", "webhook-signature", "Webhook-Id", "ce-type", "Host"] {
            let err = check_headers("webhook.headers", &headers(&[(reserved, "x")])).unwrap_err().to_string();
            assert!(err.contains("cannot be overridden"), "{reserved}: {err}");
        }
        let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("X-{i}"), "v".into())).collect();
        assert!(check_headers("h", &eleven).unwrap_err().to_string().contains("limit is 10"));
        let ten: Vec<(String, String)> = (0..10).map(|i| (format!("X-{i}"), "v".into())).collect();
        assert!(check_headers("h", &ten).is_ok());
        assert!(check_headers("h", &headers(&[("bad header", "v")])).is_err());
        assert!(check_headers("h", &headers(&[("X-A", "line\nbreak")])).is_err());
    }

    #[test]
    fn expired_secrets_stop_signing() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        let secret = |s: &str, expires: Option<i64>| SigningSecret {
            secret: s.into(),
            created_at: now,
            expires_at: expires.map(|e| OffsetDateTime::from_unix_timestamp(e).unwrap()),
        };
        let mut record = sample();
        record.secrets = vec![secret("new", None), secret("old", Some(1_000_100)), secret("older", Some(999_999))];
        assert_eq!(record.signing_secrets(now).collect::<Vec<_>>(), ["new", "old"]);
    }

    fn sample() -> SubscriptionRecord {
        SubscriptionRecord {
            id: "S".into(),
            owner: "U".into(),
            name: "n".into(),
            target: Target::All,
            variants: vec![],
            custom_types: vec![],
            condition: None,
            destination: Destination::Webhook(Webhook {
                url: "https://e.org".into(),
                method: HttpMethod::Post,
                headers: vec![],
            }),
            format: BodyFormat::Plain,
            cloudevents_handshake: false,
            auth_config: None,
            disabled_until: None,
            ordered: false,
            rate_limit: None,
            secrets: vec![],
            ed25519_seed: None,
            disabled: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }
}

/// How Herald authenticates to a receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuthKind {
    /// HTTP Basic with `key` and a sealed `secret`.
    Basic { key: String, secret: String },
    /// `Authorization: Bearer` with a sealed static token.
    Bearer { token: String },
    /// OAuth 2.0 client credentials; `client_secret` is sealed.
    OAuth2 {
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: String,
        audience: String,
        extra_params: Vec<(String, String)>,
    },
}

/// A receiver authentication configuration as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfigRecord {
    pub id: String,
    pub owner: String,
    pub name: String,
    pub auth: AuthKind,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}
