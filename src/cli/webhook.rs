//! `herald webhook ...` and `herald listen`.

use std::{sync::Arc, time::Duration};

use anyhow::{Context as _, bail};
use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
};

use super::{
    AuthCommand, WebhookArgs, WebhookCommand,
    client::Clients,
    commands::event_variant,
    consume::{describe_target, rfc3339, target},
    output,
};
use crate::{delivery::signing, grpc::pb};

/// Largest age of a `webhook-timestamp` `herald listen` accepts (Standard Webhooks' default).
const TOLERANCE: Duration = Duration::from_secs(300);

pub async fn webhook(clients: &Clients, json: bool, cmd: WebhookCommand) -> anyhow::Result<()> {
    let mut api = clients.subscriptions();
    match cmd {
        WebhookCommand::Create(args) => {
            let reply = api.create_subscription(create_request(*args)?).await?.into_inner();
            if json {
                return output::print_json("herald.v1.CreateSubscriptionResponse", &reply);
            }
            show(&reply.subscription.into_iter().collect::<Vec<_>>());
            println!("\nsigning secret (shown only now): {}", reply.signing_secret);
        }
        WebhookCommand::Ls => {
            let reply = api.list_subscriptions(pb::ListSubscriptionsRequest {}).await?.into_inner();
            if json {
                return output::print_json("herald.v1.ListSubscriptionsResponse", &reply);
            }
            show(&reply.subscriptions);
        }
        WebhookCommand::Info { id } => {
            let reply = api.get_subscription(pb::GetSubscriptionRequest { subscription_id: id }).await?.into_inner();
            let sub = reply.subscription.context("the server returned no subscription")?;
            if json {
                return output::print_json("herald.v1.Subscription", &sub);
            }
            show(std::slice::from_ref(&sub));
            println!("\nscope:      {}", describe_target(sub.target.as_ref()));
            println!(
                "types:      {}",
                if sub.custom_types.is_empty() { "all".into() } else { sub.custom_types.join(", ") }
            );
            println!("condition:  {}", if sub.condition.is_empty() { "-" } else { &sub.condition });
            println!(
                "last sent:  {}   last error: {}",
                output::time(sub.last_triggered_at.as_ref()),
                output::time(sub.last_errored_at.as_ref())
            );
            if !sub.disabled_reason.is_empty() {
                println!("disabled:   {}", sub.disabled_reason);
            }
        }
        WebhookCommand::Rm { id } => {
            api.delete_subscription(pb::DeleteSubscriptionRequest { subscription_id: id }).await?;
            println!("deleted");
        }
        WebhookCommand::Logs { id, limit } => {
            let request =
                pb::ListDeliveryAttemptsRequest { subscription_id: id, page_size: limit, page_token: String::new() };
            let reply = api.list_delivery_attempts(request).await?.into_inner();
            if json {
                return output::print_json("herald.v1.ListDeliveryAttemptsResponse", &reply);
            }
            show_attempts(&reply.attempts);
        }
        WebhookCommand::Resend { id, event_id } => {
            let reply = api.resend_event(pb::ResendEventRequest { subscription_id: id, event_id }).await?.into_inner();
            attempt_result(json, reply.attempt)?;
        }
        WebhookCommand::Replay { id, since } => {
            let since = match humantime::parse_duration(&since) {
                Ok(ago) => {
                    let at = time::OffsetDateTime::now_utc() - ago;
                    prost_types::Timestamp { seconds: at.unix_timestamp(), nanos: at.nanosecond() as i32 }
                }
                Err(_) => rfc3339("--since", &since)?,
            };
            let reply = api.replay_events(pb::ReplayEventsRequest { subscription_id: id, since: Some(since) }).await?;
            println!("replaying {} event(s); see `herald webhook logs`", reply.into_inner().events);
        }
        WebhookCommand::RotateSecret { id } => {
            let reply = api.rotate_secret(pb::RotateSecretRequest { subscription_id: id }).await?.into_inner();
            println!("new signing secret (shown only now): {}", reply.signing_secret);
        }
        WebhookCommand::Test { id } => {
            let reply = api.send_test_event(pb::SendTestEventRequest { subscription_id: id }).await?.into_inner();
            attempt_result(json, reply.attempt)?;
        }
        WebhookCommand::Enable { id } => {
            let request =
                pb::UpdateSubscriptionRequest { subscription_id: id, enabled: Some(true), ..Default::default() };
            let reply = api.update_subscription(request).await?.into_inner();
            show(&reply.subscription.into_iter().collect::<Vec<_>>());
        }
    }
    Ok(())
}

fn create_request(args: WebhookArgs) -> anyhow::Result<pb::CreateSubscriptionRequest> {
    let method = match args.method.to_ascii_uppercase().as_str() {
        "POST" => pb::HttpMethod::Post,
        "PUT" => pb::HttpMethod::Put,
        "PATCH" => pb::HttpMethod::Patch,
        other => bail!("--method must be POST, PUT or PATCH, not {other}"),
    };
    let headers = args
        .headers
        .iter()
        .map(|h| {
            let (name, value) =
                h.split_once(':').with_context(|| format!("--header {h:?} must look like `Name: value`"))?;
            Ok(pb::Header { name: name.trim().to_owned(), value: value.trim().to_owned() })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    use pb::{create_subscription_request::Destination, slack_destination::Slack};
    let destination = match (args.url, args.slack_webhook, args.slack_token) {
        (Some(url), None, None) => Destination::Webhook(pb::WebhookDestination { url, method: method as i32, headers }),
        (None, Some(url), None) => {
            Destination::Slack(pb::SlackDestination { slack: Some(Slack::IncomingWebhookUrl(url)) })
        }
        (None, None, Some(token)) => Destination::Slack(pb::SlackDestination {
            slack: Some(Slack::Bot(pb::SlackBot {
                token,
                channel: args.slack_channel.context("--slack-token needs --slack-channel")?,
            })),
        }),
        _ => bail!("give exactly one of --url, --slack-webhook or --slack-token"),
    };
    let format = match args.format.as_str() {
        "plain" => pb::BodyFormat::Plain,
        "cloudevents-binary" => pb::BodyFormat::CloudeventsBinary,
        "cloudevents-structured" => pb::BodyFormat::CloudeventsStructured,
        other => bail!("--format must be plain, cloudevents-binary or cloudevents-structured, not {other}"),
    };
    Ok(pb::CreateSubscriptionRequest {
        name: args.name,
        target: Some(target(args.target)),
        variants: args.types.variants.into_iter().map(|v| event_variant(v) as i32).collect(),
        custom_types: args.types.types,
        condition: args.condition,
        destination: Some(destination),
        format: format as i32,
        cloudevents_handshake: args.cloudevents_handshake,
        auth_config_id: args.auth.unwrap_or_default(),
        disabled_until: args.disabled_until.as_deref().map(|t| rfc3339("--disabled-until", t)).transpose()?,
        ordered: args.ordered,
        rate_limit_per_second: args.rate_limit,
        asymmetric_signatures: args.asymmetric,
    })
}

fn show(subs: &[pb::Subscription]) {
    let rows: Vec<Vec<String>> = subs
        .iter()
        .map(|s| {
            vec![
                s.id.clone(),
                s.name.clone(),
                output::enum_name(s.state().as_str_name(), "SUBSCRIPTION_STATE_"),
                match &s.destination {
                    Some(pb::subscription::Destination::Webhook(w)) => w.url.clone(),
                    Some(pb::subscription::Destination::Slack(_)) => "slack".into(),
                    None => "-".into(),
                },
                output::time(s.last_triggered_at.as_ref()),
            ]
        })
        .collect();
    output::print_table(&["ID", "NAME", "STATE", "URL", "LAST TRIGGERED"], &rows);
}

fn show_attempts(attempts: &[pb::DeliveryAttempt]) {
    let rows: Vec<Vec<String>> = attempts
        .iter()
        .map(|a| {
            vec![
                output::time(a.time.as_ref()),
                a.event_id.clone(),
                a.attempt.to_string(),
                output::enum_name(a.kind().as_str_name(), "ATTEMPT_KIND_"),
                if a.http_status == 0 { "-".into() } else { a.http_status.to_string() },
                output::enum_name(a.outcome().as_str_name(), "ATTEMPT_OUTCOME_"),
                format!("{} ms", a.latency_ms),
                a.error.clone(),
            ]
        })
        .collect();
    output::print_table(&["TIME", "EVENT", "ATTEMPT", "KIND", "STATUS", "OUTCOME", "LATENCY", "ERROR"], &rows);
}

fn attempt_result(json: bool, attempt: Option<pb::DeliveryAttempt>) -> anyhow::Result<()> {
    let attempt = attempt.context("the server returned no attempt")?;
    if json {
        return output::print_json("herald.v1.DeliveryAttempt", &attempt);
    }
    show_attempts(std::slice::from_ref(&attempt));
    Ok(())
}

pub async fn auth(clients: &Clients, json: bool, cmd: AuthCommand) -> anyhow::Result<()> {
    use pb::create_auth_config_request::Auth;
    let mut api = clients.auth_configs();
    match cmd {
        AuthCommand::Create { name, basic, bearer, oauth2_token_url, client_id, client_secret, scope, audience } => {
            let auth = match (basic, bearer, oauth2_token_url) {
                (Some(basic), None, None) => {
                    let (key, secret) = basic.split_once(':').context("--basic must be key:secret")?;
                    Auth::Basic(pb::BasicAuth { key: key.into(), secret: secret.into() })
                }
                (None, Some(token), None) => Auth::Bearer(pb::BearerAuth { token }),
                (None, None, Some(token_url)) => Auth::Oauth2ClientCredentials(pb::OAuth2ClientCredentials {
                    token_url,
                    client_id: client_id.unwrap_or_default(),
                    client_secret: client_secret.unwrap_or_default(),
                    scope,
                    audience,
                    extra_params: Default::default(),
                }),
                _ => bail!("give one of --basic, --bearer or --oauth2-token-url"),
            };
            let reply =
                api.create_auth_config(pb::CreateAuthConfigRequest { name, auth: Some(auth) }).await?.into_inner();
            let config = reply.auth_config.context("the server returned no auth configuration")?;
            if json {
                return output::print_json("herald.v1.AuthConfig", &config);
            }
            println!("{}", config.id);
        }
        AuthCommand::Ls => {
            let reply = api.list_auth_configs(pb::ListAuthConfigsRequest {}).await?.into_inner();
            if json {
                return output::print_json("herald.v1.ListAuthConfigsResponse", &reply);
            }
            let rows: Vec<Vec<String>> = reply
                .auth_configs
                .iter()
                .map(|c| {
                    let kind = match &c.auth {
                        Some(pb::auth_config::Auth::Basic(b)) => format!("basic {}:{}", b.key, b.secret),
                        Some(pb::auth_config::Auth::Bearer(b)) => format!("bearer {}", b.token),
                        Some(pb::auth_config::Auth::Oauth2ClientCredentials(o)) => {
                            format!("oauth2 {} ({})", o.client_id, o.token_url)
                        }
                        None => "-".into(),
                    };
                    vec![c.id.clone(), c.name.clone(), kind, output::time(c.created_at.as_ref())]
                })
                .collect();
            output::print_table(&["ID", "NAME", "AUTH", "CREATED"], &rows);
        }
        AuthCommand::Rm { id } => {
            api.delete_auth_config(pb::DeleteAuthConfigRequest { auth_config_id: id }).await?;
            println!("deleted");
        }
    }
    Ok(())
}

/// Runs a receiver on 127.0.0.1:`port` that verifies each request's
/// Standard Webhooks signature with `secret` and prints the event.
pub async fn listen(port: u16, secret: String) -> anyhow::Result<()> {
    if !secret.starts_with(signing::SECRET_PREFIX) && !secret.starts_with(signing::PUBLIC_KEY_PREFIX) {
        bail!("--secret must be the subscription's whsec_ secret or whpk_ public key");
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("failed to listen on 127.0.0.1:{port}"))?;
    println!("listening on http://{}/ (verifying signatures; Ctrl-C to stop)", listener.local_addr()?);
    let app = axum::Router::new().fallback(receive).with_state(Arc::new(secret));
    axum::serve(listener, app).await.context("receiver failed")
}

async fn receive(State(secret): State<Arc<String>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let (id, signature) = (header("webhook-id"), header("webhook-signature"));
    let Ok(timestamp) = header("webhook-timestamp").parse::<i64>() else {
        println!("rejected: missing or malformed webhook-timestamp");
        return StatusCode::BAD_REQUEST;
    };
    let age = (time::OffsetDateTime::now_utc().unix_timestamp() - timestamp).unsigned_abs();
    if age > TOLERANCE.as_secs() {
        println!("rejected {id}: timestamp is {age} s away from now");
        return StatusCode::BAD_REQUEST;
    }
    if !signing::verify(&signature, &secret, &id, timestamp, &body) {
        println!("rejected {id}: signature does not verify");
        return StatusCode::UNAUTHORIZED;
    }
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let path = event["resource"]["path"]
        .as_array()
        .map(|p| p.iter().filter_map(|e| e["id"].as_str()).collect::<Vec<_>>().join("/"))
        .unwrap_or_default();
    println!(
        "verified {id} {} {} {path} {}",
        event["time"].as_str().unwrap_or_default(),
        event["type"].as_str().unwrap_or_default(),
        event["payload"]
    );
    StatusCode::NO_CONTENT
}
