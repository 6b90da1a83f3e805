//! The webhook HTTP sender: one connection-pooled rustls client per replica,
//! resolving through the network guard, no redirects, a request timeout,
//! Standard Webhooks headers, and responses read up to 4 KiB.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::{Client, header::HeaderMap, redirect};
use time::OffsetDateTime;

use super::{
    guard::NetworkGuard,
    outcome::{Response, parse_retry_after},
    signing,
};
use crate::domain::subscription::SubscriptionRecord;

/// Largest part of a response body kept in the attempt log.
pub const MAX_LOGGED_BODY: usize = 4096;

/// What happened to one request.
#[derive(Clone, Debug)]
pub struct Attempted {
    pub response: Response,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency: Duration,
    /// Up to 4 KiB of the response body.
    pub body: String,
}

/// Sends webhook requests.
#[derive(Clone)]
pub struct Sender {
    client: Client,
    guard: NetworkGuard,
}

impl Sender {
    pub fn new(guard: NetworkGuard, timeout: Duration) -> anyhow::Result<Self> {
        let client = Client::builder()
            .dns_resolver(std::sync::Arc::new(guard.clone()))
            .redirect(redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Sender { client, guard })
    }

    /// Posts `body` (JSON) to the subscription's webhook as message `id`.
    pub async fn send(&self, sub: &SubscriptionRecord, id: &str, body: Bytes) -> Attempted {
        let started = Instant::now();
        let refused = |error: String| Attempted {
            response: Response::Network { retryable: false },
            status: None,
            error: Some(error),
            latency: started.elapsed(),
            body: String::new(),
        };
        let url = match reqwest::Url::parse(&sub.webhook.url) {
            Ok(url) => url,
            Err(e) => return refused(format!("invalid URL: {e}")),
        };
        // IP literals bypass the resolver, so the guard checks them here.
        if let Some(ip) = url.host_str().and_then(|h| h.trim_matches(['[', ']']).parse().ok())
            && !self.guard.permits(ip)
        {
            return refused(format!("destination {ip} is an internal address (see delivery.allowed_networks)"));
        }
        let now = OffsetDateTime::now_utc();
        let timestamp = now.unix_timestamp();
        let secrets = sub.signing_secrets(now);
        let signature = signing::signature_header(&secrets, sub.ed25519_seed.as_deref(), id, timestamp, &body);
        let method = reqwest::Method::from_bytes(sub.webhook.method.as_str().as_bytes()).expect("a valid method");
        let mut request = self.client.request(method, url);
        for (name, value) in &sub.webhook.headers {
            request = request.header(name, value);
        }
        let request = request
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body);
        match request.send().await {
            Ok(mut response) => {
                let code = response.status().as_u16();
                let retry_after = retry_after(response.headers());
                let mut kept = Vec::new();
                while kept.len() < MAX_LOGGED_BODY {
                    match response.chunk().await {
                        Ok(Some(chunk)) => {
                            kept.extend_from_slice(&chunk[..chunk.len().min(MAX_LOGGED_BODY - kept.len())])
                        }
                        _ => break,
                    }
                }
                Attempted {
                    response: Response::Status { code, retry_after },
                    status: Some(code),
                    error: None,
                    latency: started.elapsed(),
                    body: String::from_utf8_lossy(&kept).into_owned(),
                }
            }
            Err(err) => {
                let text = error_chain(&err);
                let retryable = !text.contains("internal address");
                Attempted {
                    response: Response::Network { retryable },
                    status: None,
                    error: Some(if err.is_timeout() { format!("timed out: {text}") } else { text }),
                    latency: started.elapsed(),
                    body: String::new(),
                }
            }
        }
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, SystemTime::now())
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
