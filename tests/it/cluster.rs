//! Two Herald replicas on a 3-node NATS cluster (R3 streams and buckets):
//! work crosses replicas, and losing a NATS node or a Herald replica loses
//! no acknowledged event and no webhook delivery.

use std::{collections::HashSet, time::Duration};

use herald::{
    cli::client::Clients,
    grpc::pb::{self, ResourceVariant as V, consumer_target::Target, create_subscription_request::Destination},
    server,
};
use tokio_util::sync::CancellationToken;

use crate::support::{ADMIN_TOKEN, NatsCluster, create_resource, eventually, receiver::WebhookReceiver, test_settings};

async fn replica(urls: &str, grace: Duration) -> (server::Running, Clients, CancellationToken) {
    let mut settings = test_settings(urls);
    settings.nats.replicas = 3;
    settings.nats.request_timeout = Duration::from_secs(5);
    settings.ops.shutdown_grace = grace;
    settings.delivery.request_timeout = Duration::from_secs(1); // ack wait 4 s
    let shutdown = CancellationToken::new();
    let running = eventually(Duration::from_secs(30), "a replica to start on the cluster", || {
        let (settings, shutdown) = (settings.clone(), shutdown.clone());
        async move { server::start(settings, shutdown).await.ok() }
    })
    .await;
    let client = Clients::connect(&format!("http://{}", running.addr), Some(ADMIN_TOKEN)).await.unwrap();
    (running, client, shutdown)
}

/// Emits with an idempotency key, retrying through failovers.
async fn emit(client: &Clients, resource_id: &str, key: &str) -> pb::EmittedEvent {
    eventually(Duration::from_secs(30), &format!("emit {key}"), || async {
        let request = pb::EmitEventRequest {
            resource_id: resource_id.into(),
            kind: Some(pb::emit_event_request::Kind::CustomType("cluster.event".into())),
            payload_json: format!(r#"{{"key":"{key}"}}"#),
            idempotency_key: key.into(),
        };
        client.events().emit_event(request).await.ok().and_then(|r| r.into_inner().event)
    })
    .await
}

/// Fetches and acknowledges until `ids` were all seen (retrying through failovers).
async fn drain(fetcher: &Clients, acker: &Clients, consumer: &str, ids: &HashSet<String>) {
    let mut seen = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !ids.is_subset(&seen) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {} events reached the consumer",
            seen.len(),
            ids.len()
        );
        let request = pb::GetEventMessageBatchRequest {
            stream_consumer: consumer.into(),
            batch_size: 100,
            max_wait: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
        };
        let Ok(reply) = fetcher.notifications().get_event_message_batch(request).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let messages = reply.into_inner().messages;
        let replies: Vec<pb::Reply> = messages.iter().filter_map(|m| m.reply.clone()).collect();
        if !replies.is_empty() {
            let ack = pb::AcknowledgeMessageBatchRequest { replies, stream_consumer: consumer.into() };
            if let Ok(results) = acker.notifications().acknowledge_message_batch(ack).await {
                assert!(results.into_inner().results.iter().all(|r| r.status() == pb::ReplyStatus::Ok));
            }
        }
        seen.extend(messages.into_iter().filter_map(|m| m.event.map(|e| e.id)));
    }
}

#[tokio::test]
async fn two_replicas_on_a_three_node_cluster_survive_losing_a_node_and_a_replica() {
    let mut cluster = NatsCluster::start().await;
    let urls = cluster.urls();
    let (a, client_a, stop_a) = replica(&urls, Duration::ZERO).await;
    let (b, client_b, stop_b) = replica(&urls, Duration::from_secs(5)).await;

    let p = create_resource(&client_a, V::Project, "p", "").await.id;
    // A consumer created through B; a webhook subscription created through A.
    let consumer = client_b
        .notifications()
        .create_stream_consumer(pb::CreateStreamConsumerRequest {
            target: Some(pb::ConsumerTarget {
                target: Some(Target::Resource(pb::ResourceTarget {
                    resource_id: p.clone(),
                    include_subresources: true,
                })),
            }),
            custom_types: vec!["cluster.*".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .stream_consumer;
    let receiver = WebhookReceiver::start().await;
    let subscription = pb::CreateSubscriptionRequest {
        name: "cluster".into(),
        target: Some(pb::ConsumerTarget {
            target: Some(Target::Resource(pb::ResourceTarget { resource_id: p.clone(), include_subresources: true })),
        }),
        custom_types: vec!["cluster.*".into()],
        destination: Some(Destination::Webhook(pb::WebhookDestination {
            url: receiver.url.clone(),
            method: 0,
            headers: vec![],
        })),
        ..Default::default()
    };
    client_a.subscriptions().create_subscription(subscription).await.unwrap();

    // Phase 1: events through A reach the consumer through B; B's tokens ack through A.
    let mut ids = HashSet::new();
    for i in 0..40 {
        let client = if i % 2 == 0 { &client_a } else { &client_b };
        ids.insert(emit(client, &p, &format!("one-{i}")).await.event_id);
    }
    drain(&client_b, &client_a, &consumer, &ids).await;

    // Phase 2: a NATS node dies; acknowledged emits keep flowing, then it comes back.
    cluster.kill(1).await;
    let mut during = HashSet::new();
    for i in 0..20 {
        during.insert(emit(&client_a, &p, &format!("two-{i}")).await.event_id);
    }
    drain(&client_a, &client_b, &consumer, &during).await;
    cluster.restart(1).await;
    ids.extend(during);

    // Phase 3: replica A dies (no grace); B carries on with the deliveries.
    stop_a.cancel();
    tokio::time::timeout(Duration::from_secs(30), a.wait()).await.unwrap().unwrap();
    let mut after = HashSet::new();
    for i in 0..20 {
        after.insert(emit(&client_b, &p, &format!("three-{i}")).await.event_id);
    }
    drain(&client_b, &client_b, &consumer, &after).await;
    ids.extend(after);

    // Every acknowledged emit was delivered to the webhook at least once.
    let delivered = eventually(Duration::from_secs(60), "every webhook delivery", || async {
        let got: HashSet<String> = receiver.received().iter().map(|r| r.header("webhook-id").to_owned()).collect();
        ids.is_subset(&got).then_some(got)
    })
    .await;
    let requests = receiver.received().len();
    assert!(delivered.len() >= ids.len());
    assert!(requests <= ids.len() + 20, "{requests} requests for {} events: duplicates stay rare", ids.len());
    stop_b.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), b.wait()).await;
}
