//! The outbound HTTP client: one connection-pooled rustls client per replica,
//! resolving through the network guard, no redirects, a request timeout, and
//! responses read up to a limit.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::{Client, Method, header::HeaderMap, redirect};

use super::{
    guard::NetworkGuard,
    outcome::{Response, parse_retry_after},
};

/// Largest part of a response body kept in the attempt log.
pub const MAX_LOGGED_BODY: usize = 4096;

/// A request to send.
#[derive(Clone, Debug)]
pub struct Outbound {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// What happened to one request.
#[derive(Clone, Debug)]
pub struct Attempted {
    pub response: Response,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency: Duration,
    /// Up to `MAX_LOGGED_BODY` bytes of the response body.
    pub body: String,
    /// Response headers (lower-case names).
    pub headers: Vec<(String, String)>,
}

impl Attempted {
    /// A failure before any request was made.
    pub fn refused(error: impl Into<String>, retryable: bool) -> Self {
        Attempted {
            response: Response::Network { retryable },
            status: None,
            error: Some(error.into()),
            latency: Duration::ZERO,
            body: String::new(),
            headers: Vec::new(),
        }
    }

    /// A response header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Sends requests to receivers.
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

    /// Sends `request`, keeping up to `body_limit` bytes of the response body.
    pub async fn send(&self, request: Outbound, body_limit: usize) -> Attempted {
        let started = Instant::now();
        let url = match reqwest::Url::parse(&request.url) {
            Ok(url) => url,
            Err(e) => return Attempted::refused(format!("invalid URL: {e}"), false),
        };
        // IP literals bypass the resolver, so the guard checks them here.
        if let Some(ip) = url.host_str().and_then(|h| h.trim_matches(['[', ']']).parse().ok())
            && !self.guard.permits(ip)
        {
            return Attempted::refused(
                format!("destination {ip} is an internal address (see delivery.allowed_networks)"),
                false,
            );
        }
        let mut builder = self.client.request(request.method, url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        match builder.body(request.body).send().await {
            Ok(mut response) => {
                let code = response.status().as_u16();
                let retry_after = retry_after(response.headers());
                let headers = response
                    .headers()
                    .iter()
                    .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                    .collect();
                let mut kept = Vec::new();
                while kept.len() < body_limit {
                    match response.chunk().await {
                        Ok(Some(chunk)) => kept.extend_from_slice(&chunk[..chunk.len().min(body_limit - kept.len())]),
                        _ => break,
                    }
                }
                Attempted {
                    response: Response::Status { code, retry_after },
                    status: Some(code),
                    error: None,
                    latency: started.elapsed(),
                    body: String::from_utf8_lossy(&kept).into_owned(),
                    headers,
                }
            }
            Err(err) => {
                let text = error_chain(&err);
                let retryable = !text.contains("internal address");
                let mut attempted =
                    Attempted::refused(if err.is_timeout() { format!("timed out: {text}") } else { text }, retryable);
                attempted.latency = started.elapsed();
                attempted
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
