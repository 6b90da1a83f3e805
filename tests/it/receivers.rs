//! Receiver authentication, CloudEvents and Slack destinations.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use cloudevents::AttributesReader;
use herald::{
    cli::client::Clients,
    delivery::signing,
    grpc::pb::{
        self, AttemptOutcome, ResourceVariant as V, create_auth_config_request::Auth,
        create_subscription_request::Destination, slack_destination::Slack,
    },
};

use crate::{
    support::{
        TestApp, create_resource, eventually,
        receiver::{Answer, WebhookReceiver},
    },
    webhooks::{attempts, create, emit, setup, subscription as webhook},
};

async fn auth_config(client: &Clients, name: &str, auth: Auth) -> String {
    let request = pb::CreateAuthConfigRequest { name: name.into(), auth: Some(auth) };
    client.auth_configs().create_auth_config(request).await.expect("auth config").into_inner().auth_config.unwrap().id
}

#[tokio::test]
async fn basic_and_bearer_credentials_are_sent() {
    let (_app, admin, p) = setup().await;
    let receiver = WebhookReceiver::start().await;
    let basic =
        auth_config(&admin, "basic", Auth::Basic(pb::BasicAuth { key: "herald".into(), secret: "s3cret".into() }))
            .await;
    let bearer = auth_config(&admin, "bearer", Auth::Bearer(pb::BearerAuth { token: "static-token".into() })).await;
    let mut a = webhook("basic", &p, &receiver.url);
    a.auth_config_id = basic;
    create(&admin, a).await;
    let mut b = webhook("bearer", &p, &receiver.url);
    b.auth_config_id = bearer;
    create(&admin, b).await;
    emit(&admin, &p, "job.done", "").await;
    let got = receiver.wait_for(2).await;
    let mut seen: Vec<&str> = got.iter().map(|r| r.header("authorization")).collect();
    seen.sort();
    assert_eq!(seen, [format!("Basic {}", STANDARD.encode("herald:s3cret")).as_str(), "Bearer static-token"]);
}

fn token_answer(token: &str, expires_in: u64) -> Answer {
    Answer::status(200)
        .body(&format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{expires_in}}}"#))
}

#[tokio::test]
async fn oauth2_tokens_are_fetched_once_and_refreshed_after_expiry_and_after_a_401() {
    let (_app, admin, p) = setup().await;
    let tokens = WebhookReceiver::start().await;
    tokens.script([token_answer("t1", 2), token_answer("t2", 3600), token_answer("t3", 3600)]);
    let receiver = WebhookReceiver::start().await;
    let oauth = Auth::Oauth2ClientCredentials(pb::OAuth2ClientCredentials {
        token_url: tokens.url.clone(),
        client_id: "herald-client".into(),
        client_secret: "client-secret".into(),
        scope: "events:write".into(),
        audience: "https://receiver.example".into(),
        extra_params: [("resource".to_owned(), "hooks".to_owned())].into(),
    });
    let mut request = webhook("oauth", &p, &receiver.url);
    request.auth_config_id = auth_config(&admin, "oauth", oauth).await;
    create(&admin, request).await;

    for i in 0..5 {
        emit(&admin, &p, "job.done", &i.to_string()).await;
    }
    let got = receiver.wait_for(5).await;
    assert!(got.iter().all(|r| r.header("authorization") == "Bearer t1"));
    assert_eq!(tokens.received().len(), 1, "one token for many deliveries");
    let token_request = &tokens.received()[0];
    assert_eq!(
        token_request.header("authorization"),
        format!("Basic {}", STANDARD.encode("herald-client:client-secret"))
    );
    let form = String::from_utf8(token_request.body.to_vec()).unwrap();
    for part in [
        "grant_type=client_credentials",
        "scope=events%3Awrite",
        "audience=https%3A%2F%2Freceiver.example",
        "resource=hooks",
    ] {
        assert!(form.contains(part), "{form} lacks {part}");
    }

    // t1 lives 2 s: a delivery after that fetches t2.
    let mut emitted = 5;
    eventually(Duration::from_secs(10), "the first token to expire", || {
        emitted += 1;
        let (admin, p, receiver, n) = (&admin, &p, &receiver, emitted);
        async move {
            emit(admin, p, "job.done", "").await;
            let got = receiver.wait_for(n).await;
            (got.last().unwrap().header("authorization") == "Bearer t2").then_some(())
        }
    })
    .await;
    assert_eq!(tokens.received().len(), 2);

    // A 401 makes Herald fetch a fresh token once and retry at once.
    let before = receiver.received().len();
    receiver.script([Answer::status(401)]);
    emit(&admin, &p, "job.done", "").await;
    let got = receiver.wait_for(before + 2).await;
    assert_eq!(got[before].header("authorization"), "Bearer t2");
    assert_eq!(got[before + 1].header("authorization"), "Bearer t3");
    assert_eq!(tokens.received().len(), 3);
}

#[tokio::test]
async fn rejected_client_credentials_show_in_the_attempt_log_and_are_not_retried() {
    let (_app, admin, p) = setup().await;
    let tokens = WebhookReceiver::start().await;
    tokens.script([Answer::status(401).body(r#"{"error":"invalid_client"}"#)]);
    let receiver = WebhookReceiver::start().await;
    let oauth = Auth::Oauth2ClientCredentials(pb::OAuth2ClientCredentials {
        token_url: tokens.url.clone(),
        client_id: "wrong".into(),
        client_secret: "wrong".into(),
        ..Default::default()
    });
    let mut request = webhook("bad oauth", &p, &receiver.url);
    request.auth_config_id = auth_config(&admin, "bad", oauth).await;
    let id = create(&admin, request).await.subscription.unwrap().id;
    emit(&admin, &p, "job.done", "").await;
    let log = eventually(Duration::from_secs(10), "the failed attempt", || async {
        let log = attempts(&admin, &id).await;
        (!log.is_empty()).then_some(log)
    })
    .await;
    assert_eq!(log[0].outcome(), AttemptOutcome::Failed);
    assert!(
        log[0].error.contains("refused the client credentials") && log[0].error.contains("invalid_client"),
        "{}",
        log[0].error
    );
    receiver.assert_stays_at(0, Duration::from_millis(800)).await;
    assert_eq!(tokens.received().len(), 1);
}

#[tokio::test]
async fn secrets_are_neither_returned_nor_stored_in_plain_text() {
    let (app, admin, p) = setup().await;
    let plain = ["basic-secret-value", "bearer-token-value", "oauth-client-secret-value", "xoxb-slack-bot-token-value"];
    auth_config(&admin, "b", Auth::Basic(pb::BasicAuth { key: "k".into(), secret: plain[0].into() })).await;
    auth_config(&admin, "t", Auth::Bearer(pb::BearerAuth { token: plain[1].into() })).await;
    let oauth = pb::OAuth2ClientCredentials {
        token_url: "http://127.0.0.1:9/token".into(),
        client_id: "c".into(),
        client_secret: plain[2].into(),
        ..Default::default()
    };
    auth_config(&admin, "o", Auth::Oauth2ClientCredentials(oauth)).await;
    let mut slack = webhook("slack", &p, "");
    slack.destination = Some(Destination::Slack(pb::SlackDestination {
        slack: Some(Slack::Bot(pb::SlackBot { token: plain[3].into(), channel: "C123".into() })),
    }));
    create(&admin, slack).await;
    let signing_secret = create(&admin, webhook("signed", &p, "http://127.0.0.1:9/hook")).await.signing_secret;

    let listed = admin.auth_configs().list_auth_configs(pb::ListAuthConfigsRequest {}).await.unwrap().into_inner();
    let subs = admin.subscriptions().list_subscriptions(pb::ListSubscriptionsRequest {}).await.unwrap().into_inner();
    let shown = format!("{listed:?} {subs:?}");
    let js = app.jetstream().await;
    let mut stored = String::new();
    for bucket in ["herald_auth_configs", "herald_subscriptions"] {
        let kv = js.get_key_value(bucket).await.unwrap();
        let mut keys = kv.keys().await.unwrap();
        while let Some(key) = futures::StreamExt::next(&mut keys).await {
            let value = kv.get(key.unwrap()).await.unwrap().unwrap();
            stored.push_str(&String::from_utf8_lossy(&value));
        }
    }
    assert!(stored.contains("sealed:v1:"), "secrets are stored sealed");
    for secret in plain.iter().copied().chain([signing_secret.as_str(), signing_secret.trim_start_matches("whsec_")]) {
        assert!(!shown.contains(secret), "the API shows {secret}");
        assert!(!stored.contains(secret), "NATS holds {secret} in plain text");
    }
    assert!(shown.contains("********"), "masked values are shown instead");
}

#[tokio::test]
async fn cloudevents_deliveries_parse_in_both_modes_and_stay_signed() {
    let (_app, admin, p) = setup().await;
    let receiver = WebhookReceiver::start().await;
    let mut binary = webhook("binary", &p, &format!("{}/binary", receiver.url));
    binary.format = pb::BodyFormat::CloudeventsBinary as i32;
    let binary_secret = create(&admin, binary).await.signing_secret;
    let mut structured = webhook("structured", &p, &format!("{}/structured", receiver.url));
    structured.format = pb::BodyFormat::CloudeventsStructured as i32;
    create(&admin, structured).await;
    let event = emit(&admin, &p, "job.completed", r#"{"status":"FAILED"}"#).await;
    let got = receiver.wait_for(2).await;
    for r in &got {
        let parsed = cloudevents::binding::http::to_event(&r.headers, r.body.to_vec()).expect("a valid CloudEvent");
        assert_eq!(parsed.id(), event.event_id);
        assert_eq!(parsed.ty(), "job.completed");
        assert_eq!(parsed.source().as_str(), "/herald");
        assert_eq!(parsed.subject(), Some(format!("resources/{p}").as_str()));
        let data: serde_json::Value = match parsed.data() {
            Some(cloudevents::Data::Json(v)) => v.clone(),
            Some(cloudevents::Data::Binary(b)) => serde_json::from_slice(b).unwrap(),
            other => panic!("unexpected data {other:?}"),
        };
        assert_eq!(data["status"], "FAILED");
        assert_eq!(r.header("webhook-id"), event.event_id, "Standard Webhooks headers are sent either way");
    }
    let binary = got.iter().find(|r| r.path.ends_with("/binary")).unwrap();
    assert_eq!(binary.header("ce-specversion"), "1.0");
    let ts: i64 = binary.header("webhook-timestamp").parse().unwrap();
    assert!(signing::verify(binary.header("webhook-signature"), &binary_secret, &event.event_id, ts, &binary.body));
    let structured = got.iter().find(|r| r.path.ends_with("/structured")).unwrap();
    assert_eq!(structured.header("content-type"), "application/cloudevents+json");
}

#[tokio::test]
async fn the_validation_handshake_comes_first_and_its_allowed_rate_is_respected() {
    let (_app, admin, p) = setup().await;
    let receiver = WebhookReceiver::start().await;
    receiver.script([Answer::status(200).header("WebHook-Allowed-Origin", "*").header("WebHook-Allowed-Rate", "120")]);
    let mut request = webhook("handshake", &p, &receiver.url);
    request.format = pb::BodyFormat::CloudeventsStructured as i32;
    request.cloudevents_handshake = true;
    create(&admin, request).await;
    for i in 0..3 {
        emit(&admin, &p, "job.done", &i.to_string()).await;
    }
    let got = receiver.wait_for(4).await;
    assert_eq!(got[0].method.as_str(), "OPTIONS");
    assert_eq!(got[0].header("webhook-request-origin"), "herald.invalid");
    assert!(got[1..].iter().all(|r| r.method.as_str() == "POST"));
    let span = got[3].at - got[1].at;
    assert!(span >= Duration::from_millis(900), "120/min allows one request per 500 ms; 3 took {span:?}");

    let refusing = WebhookReceiver::start().await;
    refusing.script([Answer::status(200)]); // no WebHook-Allowed-Origin
    let mut request = webhook("refused", &p, &refusing.url);
    request.cloudevents_handshake = true;
    let id = create(&admin, request).await.subscription.unwrap().id;
    emit(&admin, &p, "job.done", "").await;
    let log = eventually(Duration::from_secs(10), "the failed handshake in the log", || async {
        let log = attempts(&admin, &id).await;
        (!log.is_empty()).then_some(log)
    })
    .await;
    assert!(log[0].error.contains("validation handshake failed"), "{}", log[0].error);
    assert!(refusing.received().iter().all(|r| r.method.as_str() == "OPTIONS"), "nothing delivered without agreement");
}

#[tokio::test]
async fn slack_messages_go_to_incoming_webhooks_and_through_chat_post_message() {
    let slack = WebhookReceiver::start().await;
    let api_base = slack.url.trim_end_matches("/hook").to_owned();
    let app = TestApp::spawn_with(|s| s.delivery.slack_api_base = api_base.clone()).await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "Genomes", "").await.id;
    let mut incoming = webhook("incoming", &p, "");
    incoming.custom_types = vec!["job.*".into()];
    incoming.destination = Some(Destination::Slack(pb::SlackDestination {
        slack: Some(Slack::IncomingWebhookUrl(format!("{}/services/T1/B1/x", slack.url))),
    }));
    create(&admin, incoming).await;
    let mut bot = webhook("bot", &p, "");
    bot.custom_types = vec!["job.*".into()];
    bot.destination = Some(Destination::Slack(pb::SlackDestination {
        slack: Some(Slack::Bot(pb::SlackBot { token: "xoxb-test".into(), channel: "C42".into() })),
    }));
    let bot_id = create(&admin, bot).await.subscription.unwrap().id;
    // The bot's first post is rate limited: it is retried after Retry-After.
    slack.script([]);
    emit(&admin, &p, "job.completed", r#"{"status":"FAILED","runtime_s":42}"#).await;
    let got = slack.wait_for(2).await;
    let by_path = |suffix: &str| {
        got.iter().find(|r| r.path.ends_with(suffix)).unwrap_or_else(|| panic!("no request to {suffix}"))
    };
    let incoming = by_path("/services/T1/B1/x").json();
    assert_eq!(incoming["text"], "job.completed on Genomes");
    let blocks = incoming["blocks"].to_string();
    assert!(blocks.contains("*status*\\nFAILED") && blocks.contains("*runtime_s*\\n42"), "{blocks}");
    let posted = by_path("/chat.postMessage");
    assert_eq!(posted.header("authorization"), "Bearer xoxb-test");
    assert_eq!(posted.json()["channel"], "C42");

    // Slack errors come back as ok=false; rate limits as 429 with Retry-After.
    slack.script([Answer::status(200).body(r#"{"ok":false,"error":"channel_not_found"}"#)]);
    let update = pb::UpdateSubscriptionRequest { subscription_id: bot_id.clone(), ..Default::default() };
    admin.subscriptions().update_subscription(update).await.unwrap();
    let single = |id: &str| pb::SendTestEventRequest { subscription_id: id.into() };
    let attempt = admin.subscriptions().send_test_event(single(&bot_id)).await.unwrap().into_inner().attempt.unwrap();
    assert_eq!(attempt.outcome(), AttemptOutcome::Failed);
    assert!(attempt.error.contains("channel_not_found"), "{}", attempt.error);
}

#[tokio::test]
async fn slack_rate_limits_are_retried_after_retry_after() {
    let slack = WebhookReceiver::start().await;
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    slack.script([Answer::status(429).header("Retry-After", "1")]);
    let mut incoming = webhook("incoming", &p, "");
    incoming.destination =
        Some(Destination::Slack(pb::SlackDestination { slack: Some(Slack::IncomingWebhookUrl(slack.url.clone())) }));
    create(&admin, incoming).await;
    emit(&admin, &p, "job.completed", "").await;
    let got = slack.wait_for(2).await;
    assert!(got[1].at - got[0].at >= Duration::from_millis(900));
}
