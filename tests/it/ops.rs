//! Operations: the ops listener (metrics, health, readiness), recovery from
//! a NATS outage, and graceful shutdown with deliveries in flight.

use std::time::{Duration, Instant};

use herald::grpc::pb::{self, ResourceVariant as V, consumer_target::Target, create_subscription_request::Destination};

use crate::support::{
    TestApp, create_resource, eventually,
    receiver::{Answer, WebhookReceiver},
};

async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

fn subscription(name: &str, resource_id: &str, url: &str) -> pb::CreateSubscriptionRequest {
    pb::CreateSubscriptionRequest {
        name: name.into(),
        target: Some(pb::ConsumerTarget {
            target: Some(Target::Resource(pb::ResourceTarget {
                resource_id: resource_id.into(),
                include_subresources: true,
            })),
        }),
        destination: Some(Destination::Webhook(pb::WebhookDestination { url: url.into(), method: 0, headers: vec![] })),
        ..Default::default()
    }
}

fn emit_request(resource_id: &str, key: &str) -> pb::EmitEventRequest {
    pb::EmitEventRequest {
        resource_id: resource_id.into(),
        kind: Some(pb::emit_event_request::Kind::CustomType("ops.check".into())),
        payload_json: String::new(),
        idempotency_key: key.into(),
    }
}

#[tokio::test]
async fn metrics_health_and_readiness_follow_the_replica_through_a_nats_outage() {
    let mut app = TestApp::spawn().await;
    let ops = format!("http://{}", app.ops_addr());
    assert_eq!(get(&format!("{ops}/healthz")).await.0, 200);
    assert_eq!(get(&format!("{ops}/readyz")).await, (200, "ready\n".to_owned()));

    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let receiver = WebhookReceiver::start().await;
    admin.subscriptions().create_subscription(subscription("ops", &p, &receiver.url)).await.unwrap();
    admin.events().emit_event(emit_request(&p, "before")).await.unwrap();
    receiver.wait_for(1).await;
    let metrics = get(&format!("{ops}/metrics")).await.1;
    for needle in [
        r#"herald_events_emitted_total{type="ops.check"} 1"#,
        r#"herald_webhook_deliveries_total{outcome="delivered",status_class="2xx"} 1"#,
        "herald_nats_connected 1",
        "herald_subscriptions 1",
        "herald_emit_duration_seconds_count",
        "herald_webhook_delivery_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(needle), "/metrics lacks {needle}:\n{metrics}");
    }

    app.nats.stop().await;
    eventually(Duration::from_secs(10), "/readyz to report the outage", || async {
        let (code, body) = get(&format!("{ops}/readyz")).await;
        (code == 503 && body.contains("NATS")).then_some(())
    })
    .await;
    assert_eq!(get(&format!("{ops}/healthz")).await.0, 200, "the process is still alive");
    assert!(get(&format!("{ops}/metrics")).await.1.contains("herald_nats_connected 0"));

    app.nats.restart().await;
    eventually(Duration::from_secs(20), "/readyz to recover", || async {
        (get(&format!("{ops}/readyz")).await.0 == 200).then_some(())
    })
    .await;
    // Without a restart of Herald: emits, watches and delivery workers resume.
    eventually(Duration::from_secs(20), "emitting again", || async {
        admin.events().emit_event(emit_request(&p, "after")).await.ok()
    })
    .await;
    receiver.wait_for(2).await;
    let (user_id, token) = app.new_user_token("after-outage", false).await;
    let user = app.client(&token).await;
    user.users().get_current_user(pb::GetCurrentUserRequest {}).await.unwrap();
    let second = herald::server::start(app.settings.clone(), tokio_util::sync::CancellationToken::new()).await.unwrap();
    let on_second =
        herald::cli::client::Clients::connect(&format!("http://{}", second.addr), Some(&token)).await.unwrap();
    on_second.users().get_current_user(pb::GetCurrentUserRequest {}).await.unwrap();
    let token_id =
        user.users().list_tokens(pb::ListTokensRequest::default()).await.unwrap().into_inner().tokens[0].id.clone();
    user.users().revoke_token(pb::RevokeTokenRequest { token_id }).await.unwrap();
    eventually(Duration::from_secs(10), "the revocation to reach the other replica's watch", || async {
        let r = on_second.users().get_current_user(pb::GetCurrentUserRequest {}).await;
        matches!(r, Err(s) if s.code() == tonic::Code::Unauthenticated).then_some(())
    })
    .await;
    assert!(get(&format!("{ops}/metrics")).await.1.contains("herald_nats_reconnects 1"));
    let _ = user_id;
}

#[tokio::test]
async fn shutdown_lets_deliveries_finish_within_the_grace_period_and_leaves_the_rest_for_redelivery() {
    let mut app = TestApp::spawn_with(|s| {
        s.ops.shutdown_grace = Duration::from_secs(2);
        s.delivery.request_timeout = Duration::from_secs(2); // ack wait 8 s
        // Longer than the test: only the shutdown can write the attempt batch.
        s.delivery.attempt_log_linger = Duration::from_secs(60);
        // Longer than the shutdown (the grace period): only its flush can
        // send the finished delivery's acknowledgement.
        s.delivery.ack_linger = Duration::from_secs(4);
    })
    .await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let quick = WebhookReceiver::start().await;
    quick.script([Answer::status(200).delayed(Duration::from_millis(800))]);
    let stuck = WebhookReceiver::start().await;
    stuck.script([Answer::status(200).delayed(Duration::from_secs(30))]);
    let quick_id = admin
        .subscriptions()
        .create_subscription(subscription("quick", &p, &quick.url))
        .await
        .unwrap()
        .into_inner()
        .subscription
        .unwrap()
        .id;
    admin.subscriptions().create_subscription(subscription("stuck", &p, &stuck.url)).await.unwrap();
    let event = admin.events().emit_event(emit_request(&p, "")).await.unwrap().into_inner().event.unwrap();
    quick.wait_for(1).await;
    stuck.wait_for(1).await;

    let started = Instant::now();
    app.stop_herald().await;
    let took = started.elapsed();
    // Not waiting for the acknowledgement linger either (4 s from 0.8 s).
    assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(4), "stopped after {took:?} (grace 2 s)");

    // A new replica: the finished delivery was acknowledged (so it is not
    // redelivered with the abandoned one), the abandoned one is redelivered
    // with the same webhook-id after the ack wait.
    app.restart_herald().await;
    let got = stuck.wait_for(2).await;
    assert_eq!(got[1].header("webhook-id"), event.event_id);
    quick.assert_stays_at(1, Duration::from_millis(1500)).await;
    // Its attempt record, held in a batch for up to a minute, was written
    // when the replica shut down.
    let log = crate::webhooks::attempts(&app.admin().await, &quick_id).await;
    assert_eq!(
        log.iter().map(|a| (a.event_id.as_str(), a.http_status)).collect::<Vec<_>>(),
        [(event.event_id.as_str(), 200)]
    );
}

#[tokio::test]
async fn open_streams_end_with_unavailable_on_shutdown_so_clients_reconnect_elsewhere() {
    let mut app = TestApp::spawn().await;
    let admin = app.admin().await;
    let p = create_resource(&admin, V::Project, "p", "").await.id;
    let consumer = admin
        .notifications()
        .create_stream_consumer(pb::CreateStreamConsumerRequest {
            target: Some(pb::ConsumerTarget {
                target: Some(Target::Resource(pb::ResourceTarget { resource_id: p, include_subresources: true })),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .stream_consumer;
    let request = pb::GetEventMessageStreamRequest { stream_consumer: consumer };
    let mut events = admin.notifications().get_event_message_stream(request).await.unwrap().into_inner();
    let mut inbox = admin
        .personal()
        .watch_personal_notifications(pb::WatchPersonalNotificationsRequest {})
        .await
        .unwrap()
        .into_inner();
    let stopping = tokio::spawn(async move { app.stop_herald().await });
    for ended in [
        tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match events.message().await {
                    Err(status) => return status,
                    Ok(None) => return tonic::Status::new(tonic::Code::Ok, "ended without a status"),
                    Ok(Some(_)) => {}
                }
            }
        })
        .await
        .expect("the event stream ends"),
        tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match inbox.message().await {
                    Err(status) => return status,
                    Ok(None) => return tonic::Status::new(tonic::Code::Ok, "ended without a status"),
                    Ok(Some(_)) => {}
                }
            }
        })
        .await
        .expect("the notification watch ends"),
    ] {
        assert_eq!(ended.code(), tonic::Code::Unavailable, "{ended:?}");
    }
    stopping.await.unwrap();
}
