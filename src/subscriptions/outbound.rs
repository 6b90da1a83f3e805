//! Turning an event into the request a subscription's receiver gets:
//! destination (webhook or Slack), body format (plain or CloudEvents),
//! Standard Webhooks signatures, receiver authentication (with one token
//! refresh after a 401), and the CloudEvents validation handshake.

use bytes::Bytes;
use reqwest::Method;
use time::OffsetDateTime;

use crate::{
    app::App,
    delivery::{
        format,
        http::{Attempted, MAX_LOGGED_BODY, Outbound},
        oauth::{ClientCredentials, TokenError},
        outcome::Response,
    },
    domain::{
        event::EventRecord,
        subscription::{AuthKind, BodyFormat, Destination, HttpMethod, SubscriptionRecord, Webhook},
    },
    error::Result,
};

/// Authentication resolved for one request.
enum Auth {
    None,
    Header(String),
    OAuth2 { id: String, credentials: ClientCredentials, token: String },
}

impl App {
    /// Sends one event (`stored`: its JSON as stored) to the subscription's
    /// destination as message `id`.
    pub(crate) async fn send_event(&self, sub: &SubscriptionRecord, id: &str, stored: Bytes) -> Attempted {
        match self.try_send_event(sub, id, stored).await {
            Ok(attempted) => attempted,
            Err(err) => Attempted::refused(format!("cannot prepare the request: {err}"), true),
        }
    }

    async fn try_send_event(&self, sub: &SubscriptionRecord, id: &str, stored: Bytes) -> Result<Attempted> {
        match &sub.destination {
            Destination::Webhook(webhook) => self.send_webhook(sub, webhook, id, stored).await,
            Destination::SlackWebhook { url } => {
                let body = self.slack_body(&stored, None);
                let request = Outbound { method: Method::POST, url: self.sealer.open(url)?, headers: json(), body };
                Ok(self.sender.send(request, MAX_LOGGED_BODY).await)
            }
            Destination::SlackBot { token, channel } => {
                let body = self.slack_body(&stored, Some(channel));
                let mut headers = json();
                headers.push(("authorization".into(), format!("Bearer {}", self.sealer.open(token)?)));
                let url = format!("{}/chat.postMessage", self.settings.delivery.slack_api_base.trim_end_matches('/'));
                let attempted =
                    self.sender.send(Outbound { method: Method::POST, url, headers, body }, MAX_LOGGED_BODY).await;
                Ok(slack_api_result(attempted))
            }
        }
    }

    fn slack_body(&self, stored: &Bytes, channel: Option<&str>) -> Bytes {
        let Ok(event) = serde_json::from_slice::<EventRecord>(stored) else { return stored.clone() };
        let names: Vec<String> = event
            .resource
            .iter()
            .flat_map(|r| r.path.iter())
            .map(|p| self.resources.cached(&p.id).map_or_else(|| p.id.clone(), |r| r.name.clone()))
            .collect();
        format::slack_message(&event, &names, channel)
    }

    async fn send_webhook(
        &self,
        sub: &SubscriptionRecord,
        webhook: &Webhook,
        id: &str,
        stored: Bytes,
    ) -> Result<Attempted> {
        if sub.cloudevents_handshake
            && let Some(failed) = self.ensure_handshake(sub, webhook).await
        {
            return Ok(failed);
        }
        let (content, body) = match sub.format {
            BodyFormat::Plain => format::plain(stored),
            other => {
                let Ok(event) = serde_json::from_slice::<EventRecord>(&stored) else {
                    return Ok(Attempted::refused("the stored event is not valid JSON", false));
                };
                if other == BodyFormat::CloudEventsBinary {
                    format::cloudevents_binary(&event)
                } else {
                    format::cloudevents_structured(&event)
                }
            }
        };
        let mut auth = match self.resolve_auth(sub).await {
            Ok(auth) => auth,
            Err(TokenError::Transient(why)) => return Ok(Attempted::refused(why, true)),
            Err(TokenError::Rejected(why)) => return Ok(Attempted::refused(why, false)),
        };
        let first =
            self.sender.send(self.webhook_request(sub, webhook, id, &content, &body, &auth)?, MAX_LOGGED_BODY).await;
        let Auth::OAuth2 { id: config, credentials, token } = &auth else { return Ok(first) };
        if first.status != Some(401) {
            return Ok(first);
        }
        // The token may have been revoked early: refresh once and retry.
        let fresh = match self.oauth_tokens.token(&self.sender, config, credentials, Some(token)).await {
            Ok(fresh) => fresh,
            Err(TokenError::Transient(why)) => return Ok(Attempted::refused(why, true)),
            Err(TokenError::Rejected(why)) => return Ok(Attempted::refused(why, false)),
        };
        auth = Auth::Header(format!("Bearer {fresh}"));
        Ok(self.sender.send(self.webhook_request(sub, webhook, id, &content, &body, &auth)?, MAX_LOGGED_BODY).await)
    }

    fn webhook_request(
        &self,
        sub: &SubscriptionRecord,
        webhook: &Webhook,
        id: &str,
        content: &[(String, String)],
        body: &Bytes,
        auth: &Auth,
    ) -> Result<Outbound> {
        let now = OffsetDateTime::now_utc();
        let signer = self
            .signers
            .get(&sub.id, sub.signing_secrets(now), sub.ed25519_seed.as_deref(), |s| self.sealer.open(s))?;
        let timestamp = now.unix_timestamp();
        let mut headers = webhook.headers.clone();
        headers.extend_from_slice(content);
        headers.push(("webhook-id".into(), id.to_owned()));
        headers.push(("webhook-timestamp".into(), timestamp.to_string()));
        headers.push(("webhook-signature".into(), signer.header(id, timestamp, body)));
        match auth {
            Auth::None => {}
            Auth::Header(value) => headers.push(("authorization".into(), value.clone())),
            Auth::OAuth2 { token, .. } => headers.push(("authorization".into(), format!("Bearer {token}"))),
        }
        Ok(Outbound { method: method(webhook.method), url: webhook.url.clone(), headers, body: body.clone() })
    }

    async fn resolve_auth(&self, sub: &SubscriptionRecord) -> Result<Auth, TokenError> {
        let Some(config_id) = &sub.auth_config else { return Ok(Auth::None) };
        let rejected = |e: crate::error::Error| TokenError::Rejected(format!("auth configuration: {e}"));
        let config = self.auth_configs.get(config_id).await.map_err(rejected)?;
        let Some(config) = config else {
            return Err(TokenError::Rejected(format!("auth configuration {config_id} no longer exists")));
        };
        match &config.auth {
            AuthKind::Basic { key, secret } => {
                use base64::{Engine as _, engine::general_purpose::STANDARD};
                let secret = self.sealer.open(secret).map_err(rejected)?;
                Ok(Auth::Header(format!("Basic {}", STANDARD.encode(format!("{key}:{secret}")))))
            }
            AuthKind::Bearer { token } => {
                Ok(Auth::Header(format!("Bearer {}", self.sealer.open(token).map_err(rejected)?)))
            }
            AuthKind::OAuth2 { token_url, client_id, client_secret, scope, audience, extra_params } => {
                let credentials = ClientCredentials {
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                    client_secret: self.sealer.open(client_secret).map_err(rejected)?,
                    scope: scope.clone(),
                    audience: audience.clone(),
                    extra_params: extra_params.clone(),
                };
                let token = self.oauth_tokens.token(&self.sender, config_id, &credentials, None).await?;
                Ok(Auth::OAuth2 { id: config_id.clone(), credentials, token })
            }
        }
    }

    /// Performs the CloudEvents validation handshake once per subscription;
    /// returns the failed attempt when the receiver does not agree.
    async fn ensure_handshake(&self, sub: &SubscriptionRecord, webhook: &Webhook) -> Option<Attempted> {
        let done = || self.subscription_status.cached(&sub.id).is_some_and(|s| s.handshake_done);
        if done() {
            return None;
        }
        // One handshake at a time per subscription; the others wait for its result.
        let slot = self.handshakes.slot(&sub.id);
        let _turn = slot.lock().await;
        if done() {
            return None;
        }
        let status = self.subscription_status.cached(&sub.id).map(|s| (*s).clone()).unwrap_or_default();
        let origin = self.settings.delivery.cloudevents_origin.clone();
        let request = Outbound {
            method: Method::OPTIONS,
            url: webhook.url.clone(),
            headers: vec![("webhook-request-origin".into(), origin.clone())],
            body: Bytes::new(),
        };
        let mut answer = self.sender.send(request, MAX_LOGGED_BODY).await;
        let allowed = answer.header("webhook-allowed-origin").map(str::trim);
        let agreed = matches!(answer.status, Some(200..=299)) && matches!(allowed, Some(o) if o == "*" || o == origin);
        if !agreed {
            answer.error = Some(format!(
                "CloudEvents validation handshake failed (status {:?}, WebHook-Allowed-Origin {:?})",
                answer.status, allowed
            ));
            answer.response = Response::Network { retryable: true };
            return Some(answer);
        }
        let rate = answer.header("webhook-allowed-rate").and_then(|r| r.trim().parse::<u32>().ok()).filter(|r| *r > 0);
        let mut next = status;
        next.handshake_done = true;
        next.allowed_rate_per_minute = rate;
        if let Err(err) = self.subscription_status.put(&sub.id, next).await {
            tracing::warn!(subscription = %sub.id, error = %err, "failed to record a CloudEvents handshake");
        }
        None
    }
}

fn json() -> Vec<(String, String)> {
    vec![("content-type".into(), "application/json; charset=utf-8".into())]
}

fn method(m: HttpMethod) -> Method {
    match m {
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Patch => Method::PATCH,
    }
}

/// Slack's Web API answers 200 with `{"ok": false}` on errors; those are
/// failures, retried only when Slack says it is rate limiting.
fn slack_api_result(mut attempted: Attempted) -> Attempted {
    if attempted.status != Some(200) {
        return attempted;
    }
    #[derive(serde::Deserialize)]
    struct SlackReply {
        ok: bool,
        #[serde(default)]
        error: String,
    }
    match serde_json::from_str::<SlackReply>(&attempted.body) {
        Ok(reply) if reply.ok => attempted,
        Ok(reply) => {
            let retryable = reply.error == "ratelimited";
            attempted.response = Response::Network { retryable };
            attempted.error = Some(format!("Slack answered ok=false: {}", reply.error));
            attempted
        }
        Err(_) => attempted,
    }
}
