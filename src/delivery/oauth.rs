//! OAuth 2.0 client-credentials tokens for receivers: fetched once, shared
//! by every delivery of the configuration, cached until shortly before they
//! expire, refreshed on demand after a 401. Concurrent deliveries wait for
//! one fetch instead of each fetching.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use bytes::Bytes;
use reqwest::Method;

use super::http::{Outbound, Sender};

/// Lifetime assumed when a token response has no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Most of a token response Herald reads.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// Client-credentials parameters (secret already opened).
#[derive(Clone, Debug)]
pub struct ClientCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub scope: String,
    pub audience: String,
    pub extra_params: Vec<(String, String)>,
}

/// Why no token could be had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Network failure or 5xx: retry the delivery later.
    Transient(String),
    /// The token endpoint refused the credentials (4xx) or answered nonsense.
    Rejected(String),
}

struct Cached {
    token: String,
    refresh_at: Instant,
}

/// One async slot per key: concurrent callers with the same key take turns,
/// so work done for a key (a token fetch, a handshake) happens once.
pub struct KeyedSlots<T> {
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<T>>>>,
}

impl<T> Default for KeyedSlots<T> {
    fn default() -> Self {
        KeyedSlots { slots: Mutex::new(HashMap::new()) }
    }
}

impl<T: Default> KeyedSlots<T> {
    /// The slot of `key` (created empty on first use).
    pub fn slot(&self, key: &str) -> Arc<tokio::sync::Mutex<T>> {
        self.slots.lock().expect("slots lock").entry(key.to_owned()).or_default().clone()
    }

    /// Forgets the slot of `key`.
    pub fn forget(&self, key: &str) {
        self.slots.lock().expect("slots lock").remove(key);
    }
}

/// Tokens per auth configuration id.
#[derive(Default)]
pub struct TokenCache {
    slots: KeyedSlots<Option<Cached>>,
}

impl TokenCache {
    /// A valid token for configuration `id`; `refresh` forces a new one
    /// (after a receiver answered 401 to `stale`, unless another delivery
    /// already replaced it).
    pub async fn token(
        &self,
        sender: &Sender,
        id: &str,
        credentials: &ClientCredentials,
        stale: Option<&str>,
    ) -> Result<String, TokenError> {
        let slot = self.slots.slot(id);
        let mut cached = slot.lock().await;
        if let Some(current) = cached.as_ref() {
            let replaced_meanwhile = stale.is_some_and(|s| s != current.token);
            if (stale.is_none() && current.refresh_at > Instant::now()) || replaced_meanwhile {
                return Ok(current.token.clone());
            }
        }
        let (token, lifetime) = fetch(sender, credentials).await?;
        // Refresh shortly before expiry: a tenth of the lifetime, at most 30 s early.
        let margin = (lifetime / 10).min(Duration::from_secs(30));
        *cached = Some(Cached { token: token.clone(), refresh_at: Instant::now() + lifetime - margin });
        Ok(token)
    }

    /// Forgets the token of configuration `id` (deleted or changed).
    pub fn forget(&self, id: &str) {
        self.slots.forget(id);
    }
}

fn form(c: &ClientCredentials) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if !c.scope.is_empty() {
        form.append_pair("scope", &c.scope);
    }
    if !c.audience.is_empty() {
        form.append_pair("audience", &c.audience);
    }
    for (k, v) in &c.extra_params {
        form.append_pair(k, v);
    }
    form.finish()
}

async fn fetch(sender: &Sender, c: &ClientCredentials) -> Result<(String, Duration), TokenError> {
    let basic = STANDARD.encode(format!(
        "{}:{}",
        form_urlencoded::byte_serialize(c.client_id.as_bytes()).collect::<String>(),
        form_urlencoded::byte_serialize(c.client_secret.as_bytes()).collect::<String>()
    ));
    let request = Outbound {
        method: Method::POST,
        url: c.token_url.clone(),
        headers: vec![
            ("content-type".into(), "application/x-www-form-urlencoded".into()),
            ("accept".into(), "application/json".into()),
            ("authorization".into(), format!("Basic {basic}")),
        ],
        body: Bytes::from(form(c)),
    };
    let answer = sender.send(request, MAX_TOKEN_RESPONSE).await;
    match answer.status {
        None => Err(TokenError::Transient(format!("token endpoint unreachable: {}", answer.error.unwrap_or_default()))),
        Some(code) if code >= 500 || code == 429 || code == 408 => {
            Err(TokenError::Transient(format!("token endpoint answered {code}")))
        }
        Some(code) if !(200..300).contains(&code) => Err(TokenError::Rejected(format!(
            "token endpoint refused the client credentials ({code}): {}",
            answer.body.chars().take(300).collect::<String>()
        ))),
        Some(_) => {
            #[derive(serde::Deserialize)]
            struct TokenResponse {
                access_token: String,
                expires_in: Option<u64>,
            }
            let parsed: TokenResponse = serde_json::from_str(&answer.body)
                .map_err(|e| TokenError::Rejected(format!("token endpoint answered without an access_token: {e}")))?;
            let lifetime = parsed.expires_in.map_or(DEFAULT_LIFETIME, Duration::from_secs).max(Duration::from_secs(1));
            Ok((parsed.access_token, lifetime))
        }
    }
}
