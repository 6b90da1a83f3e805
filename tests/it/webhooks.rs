//! Webhook subscriptions through `herald.v1.SubscriptionService`, delivering
//! to a real HTTP receiver.

use std::time::{Duration, Instant};

use herald::{
    cli::client::Clients,
    delivery::signing,
    grpc::pb::{
        self, AttemptKind, AttemptOutcome, ResourceVariant as V, SubscriptionState, consumer_target::Target,
        create_subscription_request::Destination, emit_event_request::Kind,
    },
};
use tonic::Code;

use crate::support::{
    TestApp, assert_status, create_resource,
    receiver::{Answer, Received, WebhookReceiver},
};

pub(crate) fn target(resource_id: &str) -> Option<pb::ConsumerTarget> {
    Some(pb::ConsumerTarget {
        target: Some(Target::Resource(pb::ResourceTarget {
            resource_id: resource_id.into(),
            include_subresources: true,
        })),
    })
}

pub(crate) fn subscription(name: &str, resource_id: &str, url: &str) -> pb::CreateSubscriptionRequest {
    pb::CreateSubscriptionRequest {
        name: name.into(),
        target: target(resource_id),
        destination: Some(Destination::Webhook(pb::WebhookDestination { url: url.into(), method: 0, headers: vec![] })),
        ..Default::default()
    }
}

fn webhook_mut(request: &mut pb::CreateSubscriptionRequest) -> &mut pb::WebhookDestination {
    match request.destination.as_mut() {
        Some(Destination::Webhook(w)) => w,
        _ => panic!("not a webhook subscription"),
    }
}

pub(crate) async fn create(client: &Clients, request: pb::CreateSubscriptionRequest) -> pb::CreateSubscriptionResponse {
    client.subscriptions().create_subscription(request).await.expect("create subscription").into_inner()
}

pub(crate) async fn emit(client: &Clients, resource_id: &str, event_type: &str, payload: &str) -> pb::EmittedEvent {
    let request = pb::EmitEventRequest {
        resource_id: resource_id.into(),
        kind: Some(Kind::CustomType(event_type.into())),
        payload_json: payload.into(),
        idempotency_key: String::new(),
    };
    client.events().emit_event(request).await.expect("emit").into_inner().event.unwrap()
}

pub(crate) async fn attempts(client: &Clients, id: &str) -> Vec<pb::DeliveryAttempt> {
    let request =
        pb::ListDeliveryAttemptsRequest { subscription_id: id.into(), page_size: 1000, page_token: String::new() };
    client.subscriptions().list_delivery_attempts(request).await.expect("attempts").into_inner().attempts
}

pub(crate) async fn setup() -> (TestApp, Clients, String) {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    (app, admin, p)
}

fn verify(r: &Received, key: &str) -> bool {
    let timestamp: i64 = r.header("webhook-timestamp").parse().unwrap();
    signing::verify(r.header("webhook-signature"), key, r.header("webhook-id"), timestamp, &r.body)
}

#[tokio::test]
async fn deliveries_are_signed_per_standard_webhooks_with_v1_and_v1a() {
    let (_app, admin, p) = setup().await;
    let receiver = WebhookReceiver::start().await;
    let mut request = subscription("signed", &p, &receiver.url);
    request.asymmetric_signatures = true;
    webhook_mut(&mut request).method = pb::HttpMethod::Put as i32;
    webhook_mut(&mut request).headers = vec![pb::Header { name: "X-Team".into(), value: "data".into() }];
    let created = create(&admin, request).await;
    assert!(created.signing_secret.starts_with("whsec_"));
    let id = created.subscription.unwrap().id;
    let public = admin
        .subscriptions()
        .get_public_verification_key(pb::GetPublicVerificationKeyRequest { subscription_id: id.clone() })
        .await
        .unwrap()
        .into_inner()
        .public_key;
    let event = emit(&admin, &p, "job.completed", r#"{"status":"OK"}"#).await;
    let got = receiver.wait_for(1).await;
    let r = &got[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("PUT", "/hook"));
    assert_eq!(r.header("x-team"), "data");
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("webhook-id"), event.event_id);
    assert!(verify(r, &created.signing_secret), "v1 signature verifies with the secret");
    assert!(verify(r, &public), "v1a signature verifies with the public key");
    assert!(!verify(r, &signing::new_secret()));
    let body = r.json();
    assert_eq!(body["id"], event.event_id.as_str());
    assert_eq!(body["type"], "job.completed");
    assert_eq!(body["resource"]["id"], p.as_str());
    assert_eq!(body["resource"]["variant"], "PROJECT");
    assert_eq!(body["actor"], "admin");
    assert_eq!(body["payload"]["status"], "OK");
    assert!(body["time"].is_string());
}

#[tokio::test]
async fn a_rotated_secret_keeps_signing_alongside_the_new_one() {
    let (_app, admin, p) = setup().await;
    let receiver = WebhookReceiver::start().await;
    let created = create(&admin, subscription("rotating", &p, &receiver.url)).await;
    let id = created.subscription.unwrap().id;
    // A delivery before the rotation: the replica now holds the opened key.
    emit(&admin, &p, "job.completed", "").await;
    let before = &receiver.wait_for(1).await[0];
    assert_eq!(before.header("webhook-signature").split(' ').count(), 1);
    assert!(verify(before, &created.signing_secret));
    let new = admin
        .subscriptions()
        .rotate_secret(pb::RotateSecretRequest { subscription_id: id })
        .await
        .unwrap()
        .into_inner()
        .signing_secret;
    emit(&admin, &p, "job.completed", "").await;
    let r = &receiver.wait_for(2).await[1];
    assert_eq!(r.header("webhook-signature").split(' ').count(), 2);
    assert!(verify(r, &created.signing_secret) && verify(r, &new));
}

#[tokio::test]
async fn a_500_then_200_gives_exactly_one_success_after_a_retry() {
    let (_app, admin, p) = setup().await;
    let receiver = WebhookReceiver::start().await;
    receiver.script([Answer::status(500).body("boom")]);
    let id = create(&admin, subscription("retry", &p, &receiver.url)).await.subscription.unwrap().id;
    let event = emit(&admin, &p, "job.completed", "").await;
    let got = receiver.wait_for(2).await;
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"), "webhook-id is stable across retries");
    assert_eq!(got[1].header("webhook-id"), event.event_id);
    receiver.assert_stays_at(2, Duration::from_millis(1500)).await;
    let log = crate::support::eventually(Duration::from_secs(5), "both attempts logged", || async {
        let log = attempts(&admin, &id).await;
        (log.len() == 2).then_some(log)
    })
    .await;
    // Newest first.
    assert_eq!((log[0].attempt, log[0].outcome(), log[0].http_status), (2, AttemptOutcome::Delivered, 200));
    assert_eq!((log[1].attempt, log[1].outcome(), log[1].http_status), (1, AttemptOutcome::RetryScheduled, 500));
    assert_eq!(log[1].response_body, "boom");
    assert!(log[1].next_attempt_at.is_some());
    assert_eq!(log[1].event_id, event.event_id);
    let sub = admin.subscriptions().get_subscription(pb::GetSubscriptionRequest { subscription_id: id }).await.unwrap();
    let sub = sub.into_inner().subscription.unwrap();
    assert!(sub.last_triggered_at.is_some() && sub.last_errored_at.is_some());
    assert_eq!(sub.state(), SubscriptionState::Active);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let (_app, admin, p) = setup().await;
    let receiver = WebhookReceiver::start().await;
    receiver.script([Answer::status(429).header("Retry-After", "2")]);
    create(&admin, subscription("slow down", &p, &receiver.url)).await;
    emit(&admin, &p, "job.completed", "").await;
    let got = receiver.wait_for(2).await;
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_millis(1900), "waited {gap:?}, not the 2 s Retry-After (schedule says 300 ms)");
}

#[tokio::test]
async fn a_410_disables_the_subscription_and_tells_its_owner() {
    let (app, admin, p) = setup().await;
    let (owner_id, owner) = app.new_user("owner", false).await;
    crate::support::grant(&app, &owner_id, &p, pb::PermissionLevel::Read).await;
    let receiver = WebhookReceiver::start().await;
    receiver.script([Answer::status(410)]);
    let id = create(&owner, subscription("gone", &p, &receiver.url)).await.subscription.unwrap().id;
    emit(&admin, &p, "job.completed", "").await;
    receiver.wait_for(1).await;
    let sub = crate::support::eventually(Duration::from_secs(5), "the subscription to be disabled", || async {
        let get = pb::GetSubscriptionRequest { subscription_id: id.clone() };
        let sub = owner.subscriptions().get_subscription(get).await.unwrap().into_inner().subscription.unwrap();
        (sub.state() == SubscriptionState::Disabled).then_some(sub)
    })
    .await;
    assert!(sub.disabled_reason.contains("410"), "{}", sub.disabled_reason);
    let notices = owner
        .personal()
        .get_personal_notifications(pb::GetPersonalNotificationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .notifications;
    assert_eq!(notices[0].variant(), pb::PersonalNotificationVariant::SubscriptionDisabled);
    emit(&admin, &p, "job.completed", "").await;
    receiver.assert_stays_at(1, Duration::from_millis(1000)).await;
    // Re-enabling delivers what waited meanwhile.
    let enable = pb::UpdateSubscriptionRequest { subscription_id: id, enabled: Some(true), ..Default::default() };
    owner.subscriptions().update_subscription(enable).await.unwrap();
    receiver.wait_for(3).await;
}

#[tokio::test]
async fn a_non_retryable_4xx_is_logged_as_failed_and_not_retried() {
    let (_app, admin, p) = setup().await;
    let receiver = WebhookReceiver::start().await;
    receiver.script([Answer::status(400).body(&"x".repeat(10_000))]);
    let id = create(&admin, subscription("bad request", &p, &receiver.url)).await.subscription.unwrap().id;
    emit(&admin, &p, "job.completed", "").await;
    receiver.wait_for(1).await;
    receiver.assert_stays_at(1, Duration::from_millis(1200)).await;
    let log = attempts(&admin, &id).await;
    assert_eq!((log.len(), log[0].outcome(), log[0].http_status), (1, AttemptOutcome::Failed, 400));
    assert_eq!(log[0].response_body.len(), 4096, "the response body is cut to 4 KiB");
}

#[tokio::test]
async fn a_hanging_endpoint_does_not_delay_another_subscription() {
    let (_app, admin, p) = setup().await;
    let hanging = WebhookReceiver::start().await;
    hanging.script([Answer::status(200).delayed(Duration::from_secs(10))]);
    let healthy = WebhookReceiver::start().await;
    create(&admin, subscription("hanging", &p, &hanging.url)).await;
    create(&admin, subscription("healthy", &p, &healthy.url)).await;
    emit(&admin, &p, "job.completed", "").await;
    hanging.wait_for(1).await;
    let started = Instant::now();
    healthy.wait_for(1).await;
    assert!(started.elapsed() < Duration::from_secs(2), "the healthy endpoint got its event at once");
}

#[tokio::test]
async fn filters_globs_and_conditions_select_the_right_events() {
    let (_app, admin, p) = setup().await;
    let receiver = WebhookReceiver::start().await;
    let mut request = subscription("failed jobs", &p, &receiver.url);
    request.custom_types = vec!["job.*".into()];
    request.condition = "$.status == 'FAILED'".into();
    create(&admin, request).await;
    let wanted = [
        emit(&admin, &p, "job.completed", r#"{"status":"FAILED"}"#).await.event_id,
        emit(&admin, &p, "job.step.started", r#"{"status":"FAILED","step":2}"#).await.event_id,
    ];
    emit(&admin, &p, "job.completed", r#"{"status":"OK"}"#).await;
    emit(&admin, &p, "build.done", r#"{"status":"FAILED"}"#).await;
    emit(&admin, &p, "job.completed", "").await;
    let got = receiver.wait_for(2).await;
    receiver.assert_stays_at(2, Duration::from_millis(800)).await;
    let mut ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    ids.sort();
    let mut wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
    wanted.sort();
    assert_eq!(ids, wanted);
}

#[tokio::test]
async fn a_changed_condition_applies_to_the_next_event_even_within_an_open_pull() {
    let (_app, admin, p) = setup().await;
    let receiver = WebhookReceiver::start().await;
    let mut request = subscription("conditional", &p, &receiver.url);
    request.condition = "$.status == 'FAILED'".into();
    let id = create(&admin, request).await.subscription.unwrap().id;
    emit(&admin, &p, "job.completed", r#"{"status":"FAILED"}"#).await;
    receiver.wait_for(1).await;
    // The worker's pull that brought that event stays open for up to 2 s;
    // the events below arrive in it.
    let update = pb::UpdateSubscriptionRequest {
        subscription_id: id,
        condition: Some("$.status == 'OK'".into()),
        ..Default::default()
    };
    admin.subscriptions().update_subscription(update).await.unwrap();
    let ok = emit(&admin, &p, "job.completed", r#"{"status":"OK"}"#).await.event_id;
    emit(&admin, &p, "job.completed", r#"{"status":"FAILED"}"#).await;
    let got = receiver.wait_for(2).await;
    receiver.assert_stays_at(2, Duration::from_millis(800)).await;
    assert_eq!(got[1].header("webhook-id"), ok);
}

#[tokio::test]
async fn disabled_until_holds_events_then_releases_them() {
    let (_app, admin, p) = setup().await;
    let receiver = WebhookReceiver::start().await;
    let until = time::OffsetDateTime::now_utc() + Duration::from_secs(2);
    let mut request = subscription("paused", &p, &receiver.url);
    request.disabled_until =
        Some(prost_types::Timestamp { seconds: until.unix_timestamp(), nanos: until.nanosecond() as i32 });
    let sub = create(&admin, request).await.subscription.unwrap();
    assert_eq!(sub.state(), SubscriptionState::Paused);
    emit(&admin, &p, "job.completed", "").await;
    receiver.assert_stays_at(0, Duration::from_millis(1000)).await;
    let got = receiver.wait_for(1).await;
    assert!(time::OffsetDateTime::now_utc() >= until);
    assert_eq!(got.len(), 1, "nothing was dropped");
}

#[tokio::test]
async fn ordered_delivery_keeps_stream_order_under_retries() {
    let (_app, admin, p) = setup().await;
    let receiver = WebhookReceiver::start().await;
    receiver.script([Answer::status(503), Answer::status(503)]);
    let mut request = subscription("ordered", &p, &receiver.url);
    request.ordered = true;
    create(&admin, request).await;
    let mut emitted = Vec::new();
    for i in 0..4 {
        emitted.push(emit(&admin, &p, "job.step", &format!(r#"{{"i":{i}}}"#)).await.event_id);
    }
    let got = receiver.wait_for(6).await;
    let ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    let e: Vec<&str> = emitted.iter().map(String::as_str).collect();
    assert_eq!(ids, [e[0], e[0], e[0], e[1], e[2], e[3]]);
}

#[tokio::test]
async fn destinations_and_fields_are_validated() {
    let (app, admin, p) = setup().await;
    let strict = TestApp::spawn_with(|s| s.delivery.allowed_networks.clear()).await;
    let strict_admin = strict.admin().await;
    let sp = create_resource(&strict_admin, V::Project, "p", "").await.id;
    let create_on = |url: &str| subscription("x", &sp, url);
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/",
        "http://[::1]:9/",
    ] {
        let result = strict_admin.subscriptions().create_subscription(create_on(url)).await;
        assert_status(result, Code::InvalidArgument, "internal address");
    }
    let s = |f: &dyn Fn(&mut pb::CreateSubscriptionRequest)| {
        let mut r = subscription("v", &p, "http://127.0.0.1:9/hook");
        f(&mut r);
        r
    };
    let subs = admin.subscriptions();
    let cases: Vec<(pb::CreateSubscriptionRequest, &str)> = vec![
        (s(&|r| webhook_mut(r).url = "ftp://127.0.0.1/".into()), "webhook.url"),
        (s(&|r| r.destination = None), "destination"),
        (s(&|r| r.name = String::new()), "name"),
        (s(&|r| r.condition = "$.status ==".into()), "condition"),
        (s(&|r| r.custom_types = vec!["job.>".into()]), "custom_types[0]"),
        (
            s(&|r| webhook_mut(r).headers = vec![pb::Header { name: "webhook-signature".into(), value: "x".into() }]),
            "cannot be overridden",
        ),
        (
            s(&|r| {
                webhook_mut(r).headers =
                    (0..11).map(|i| pb::Header { name: format!("X-{i}"), value: "v".into() }).collect()
            }),
            "limit is 10",
        ),
        (s(&|r| r.rate_limit_per_second = 10_001), "rate_limit_per_second"),
    ];
    for (request, needle) in cases {
        assert_status(subs.clone().create_subscription(request).await, Code::InvalidArgument, needle);
    }
    create(&admin, s(&|_| {})).await;
    assert_status(subs.clone().create_subscription(s(&|_| {})).await, Code::AlreadyExists, "\"v\"");
    let (_, other) = app.new_user("other", false).await;
    let get = pb::GetSubscriptionRequest { subscription_id: "01NOSUCH".into() };
    assert_status(other.subscriptions().get_subscription(get).await, Code::NotFound, "01NOSUCH");
    assert_status(
        other.subscriptions().create_subscription(s(&|r| r.name = "o".into())).await,
        Code::PermissionDenied,
        "READ",
    );
}

#[tokio::test]
async fn resend_replay_and_test_events_deliver_again_and_are_logged() {
    let (_app, admin, p) = setup().await;
    let receiver = WebhookReceiver::start().await;
    let since = time::OffsetDateTime::now_utc();
    let id = create(&admin, subscription("again", &p, &receiver.url)).await.subscription.unwrap().id;
    let first = emit(&admin, &p, "job.completed", r#"{"n":1}"#).await;
    emit(&admin, &p, "job.completed", r#"{"n":2}"#).await;
    receiver.wait_for(2).await;
    crate::support::eventually(Duration::from_secs(5), "attempts logged", || async {
        (attempts(&admin, &id).await.len() == 2).then_some(())
    })
    .await;

    let resend = pb::ResendEventRequest { subscription_id: id.clone(), event_id: first.event_id.clone() };
    let attempt = admin.subscriptions().resend_event(resend).await.unwrap().into_inner().attempt.unwrap();
    assert_eq!(
        (attempt.kind(), attempt.outcome(), attempt.attempt),
        (AttemptKind::Resend, AttemptOutcome::Delivered, 2)
    );
    assert_eq!(receiver.received()[2].header("webhook-id"), first.event_id);

    let since = prost_types::Timestamp { seconds: since.unix_timestamp(), nanos: since.nanosecond() as i32 };
    let replay = pb::ReplayEventsRequest { subscription_id: id.clone(), since: Some(since) };
    assert_eq!(admin.subscriptions().replay_events(replay).await.unwrap().into_inner().events, 2);
    receiver.wait_for(5).await;

    let test = pb::SendTestEventRequest { subscription_id: id.clone() };
    let attempt = admin.subscriptions().send_test_event(test).await.unwrap().into_inner().attempt.unwrap();
    assert_eq!((attempt.kind(), attempt.outcome()), (AttemptKind::Test, AttemptOutcome::Delivered));
    let got = receiver.wait_for(6).await;
    assert_eq!(got[5].json()["type"], "herald.ping");
    let kinds: Vec<AttemptKind> = attempts(&admin, &id).await.iter().map(|a| a.kind()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == AttemptKind::Replay).count(), 2);

    let unknown = pb::ResendEventRequest { subscription_id: id, event_id: "01NOSUCHEVENT".into() };
    assert_status(admin.subscriptions().resend_event(unknown).await, Code::NotFound, "01NOSUCHEVENT");
}

#[tokio::test]
async fn the_attempt_log_keeps_the_newest_attempts_up_to_its_limit_and_pages_through_batches() {
    let app = TestApp::spawn_with(|s| s.delivery.attempt_log_per_subscription = 3).await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let receiver = WebhookReceiver::start().await;
    let mut request = subscription("capped", &p, &receiver.url);
    request.ordered = true; // attempts are logged in event order
    let id = create(&admin, request).await.subscription.unwrap().id;
    let events = (0..20)
        .map(|_| pb::EmitEventRequest {
            resource_id: p.clone(),
            kind: Some(Kind::CustomType("job.completed".into())),
            payload_json: String::new(),
            idempotency_key: String::new(),
        })
        .collect();
    let emitted = admin.events().emit_events(pb::EmitEventsRequest { events }).await.unwrap().into_inner().events;
    let sent: Vec<String> = emitted.into_iter().map(|e| e.event_id).collect();
    receiver.wait_for(sent.len()).await;
    let newest: Vec<String> = sent.iter().rev().take(3).cloned().collect();
    crate::support::eventually(Duration::from_secs(5), "the newest three attempts listed", || async {
        let listed: Vec<String> = attempts(&admin, &id).await.into_iter().map(|a| a.event_id).collect();
        (listed == newest).then_some(())
    })
    .await;
    // The stream keeps three batches, holding more than three records: the
    // listing above is the trimmed view of them.
    let stored = stored_attempt_records(&app, &id).await;
    assert!(stored > 3 && stored <= 20, "{stored} records stored in three batches");

    let page = |token: String| {
        let request = pb::ListDeliveryAttemptsRequest { subscription_id: id.clone(), page_size: 2, page_token: token };
        let mut client = admin.subscriptions();
        async move { client.list_delivery_attempts(request).await.unwrap().into_inner() }
    };
    let first = page(String::new()).await;
    let second = page(first.next_page_token.clone()).await;
    let paged: Vec<&str> = first.attempts.iter().chain(&second.attempts).map(|a| a.event_id.as_str()).collect();
    assert_eq!(paged, [&sent[19], &sent[18], &sent[17]]);
    assert!(second.next_page_token.is_empty());
}

/// How many attempt records the attempt stream holds for subscription `id`.
async fn stored_attempt_records(app: &TestApp, id: &str) -> usize {
    use futures::StreamExt as _;
    let stream = app.jetstream().await.get_stream(herald::store::ATTEMPTS_STREAM).await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            filter_subject: herald::store::attempts_subject(id),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut batch = consumer.fetch().max_messages(100).expires(Duration::from_millis(500)).messages().await.unwrap();
    let mut records = 0;
    while let Some(message) = batch.next().await {
        let batch: Vec<serde_json::Value> = serde_json::from_slice(&message.unwrap().payload).unwrap();
        records += batch.len();
    }
    records
}

#[tokio::test]
async fn event_types_list_builtins_and_seen_and_registered_custom_types() {
    let (_app, admin, p) = setup().await;
    emit(&admin, &p, "job.completed", "").await;
    let register = pb::RegisterEventTypeRequest { name: "build.done".into(), description: "a build finished".into() };
    admin.subscriptions().register_event_type(register).await.unwrap();
    let types = crate::support::eventually(Duration::from_secs(5), "the seen type in the catalog", || async {
        let types = admin
            .subscriptions()
            .list_event_types(pb::ListEventTypesRequest {})
            .await
            .unwrap()
            .into_inner()
            .event_types;
        types.iter().any(|t| t.name == "job.completed").then_some(types)
    })
    .await;
    let find = |name: &str| types.iter().find(|t| t.name == name).unwrap().clone();
    assert!(find("created").builtin && find("herald.announcement").builtin);
    assert_eq!((find("build.done").registered, find("build.done").description.as_str()), (true, "a build finished"));
    assert!(!find("job.completed").registered && !find("job.completed").builtin);
}

#[tokio::test]
async fn a_subscription_failing_for_too_long_is_disabled_and_its_owner_told() {
    let app = TestApp::spawn_with(|s| {
        s.delivery.disable_after = Duration::from_secs(1);
        s.delivery.retry_schedule = vec![Duration::from_millis(400); 8];
    })
    .await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let receiver = WebhookReceiver::start().await;
    receiver.script((0..20).map(|_| Answer::status(503)));
    let id = create(&admin, subscription("flaky", &p, &receiver.url)).await.subscription.unwrap().id;
    emit(&admin, &p, "job.completed", "").await;
    let sub = crate::support::eventually(Duration::from_secs(10), "the subscription to be disabled", || async {
        let get = pb::GetSubscriptionRequest { subscription_id: id.clone() };
        let sub = admin.subscriptions().get_subscription(get).await.unwrap().into_inner().subscription.unwrap();
        (sub.state() == SubscriptionState::Disabled).then_some(sub)
    })
    .await;
    assert!(sub.disabled_reason.contains("disable_after"), "{}", sub.disabled_reason);
    let attempts_made = receiver.received().len();
    assert!(
        (3..=5).contains(&attempts_made),
        "disabled after about 1 s of failures, not at the end of the schedule: {attempts_made}"
    );
    let notices =
        admin.personal().get_personal_notifications(pb::GetPersonalNotificationsRequest::default()).await.unwrap();
    assert_eq!(notices.into_inner().notifications[0].variant(), pb::PersonalNotificationVariant::SubscriptionDisabled);
}

#[tokio::test]
async fn the_rate_limit_spaces_deliveries() {
    let (_app, admin, p) = setup().await;
    let receiver = WebhookReceiver::start().await;
    let mut request = subscription("limited", &p, &receiver.url);
    request.rate_limit_per_second = 5;
    create(&admin, request).await;
    for i in 0..6 {
        emit(&admin, &p, "job.completed", &i.to_string()).await;
    }
    let got = receiver.wait_for(6).await;
    let span = got[5].at - got[0].at;
    assert!(span >= Duration::from_millis(900), "6 deliveries at 5/s take at least 1 s, took {span:?}");
}

#[tokio::test]
async fn a_killed_replica_leaves_its_delivery_to_be_redelivered_with_the_same_webhook_id() {
    let nats = crate::support::NatsServer::start().await;
    let receiver = WebhookReceiver::start().await;
    // The first request is never answered: the replica is killed while it waits.
    receiver.script([Answer::status(200).delayed(Duration::from_secs(60))]);
    let mut killed = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--nats-url", &nats.url(), "--listen", "127.0.0.1:0"])
        .env("HERALD_ADMIN_TOKEN", crate::support::ADMIN_TOKEN)
        .env("HERALD_CONSUMERS_REPLY_KEY", crate::support::REPLY_KEY)
        .env("HERALD_SECRETS_KEY", crate::support::SECRETS_KEY)
        .env("HERALD_OPS_LISTEN", "127.0.0.1:0")
        .env("HERALD_DELIVERY_ALLOWED_NETWORKS", "127.0.0.1/32")
        .env("HERALD_DELIVERY_REQUEST_TIMEOUT", "2s") // the subscription's ack wait becomes 8 s
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start herald serve");
    let stdout = killed.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.unwrap().unwrap().unwrap();
    let addr = line.strip_prefix("herald listening on ").expect("address line").to_owned();
    let first = Clients::connect(&format!("http://{addr}"), Some(crate::support::ADMIN_TOKEN)).await.unwrap();
    let p = create_resource(&first, V::Project, "p", "").await.id;
    create(&first, subscription("survivor", &p, &receiver.url)).await;
    let event = emit(&first, &p, "job.completed", "").await;
    receiver.wait_for(1).await;
    killed.kill().await.unwrap(); // SIGKILL mid-request: nothing is acknowledged

    // A fresh replica with a short ack wait picks the event up again.
    let mut settings = crate::support::test_settings(&nats.url());
    settings.delivery.request_timeout = Duration::from_secs(1);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let _second = herald::server::start(settings, shutdown.clone()).await.unwrap();
    let got = crate::support::eventually(Duration::from_secs(30), "the redelivery after the 8 s ack wait", || async {
        let got = receiver.received();
        (got.len() >= 2).then_some(got)
    })
    .await;
    assert_eq!(got[1].header("webhook-id"), event.event_id);
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    shutdown.cancel();
}
