//! `cargo bench --bench emit`: Herald's `EmitEvents` rate against raw
//! async-nats JetStream publishing of the same events, in one run.
//!
//! Both sides publish the same JSON event bodies to the same subjects of the
//! same stream, in batches of 100 with 4 batches in flight at once.

mod support;

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use herald::grpc::pb::{self, ResourceVariant, emit_event_request::Kind};
use support::{Fixture, is_bench_run, print_table};

const BATCH: usize = 100;
const CONCURRENCY: usize = 4;
const WARMUP_EVENTS: usize = 2_000;

fn payload(i: usize) -> String {
    format!(
        r#"{{"job":"render-{i}","status":"COMPLETED","duration_ms":{},"worker":"node-7","tags":["nightly","gpu"]}}"#,
        i % 997
    )
}

#[tokio::main]
async fn main() {
    let total: usize = if is_bench_run() { 40_000 } else { 400 };
    let fixture = Fixture::start(|_| {}).await;
    let project = create(&fixture, ResourceVariant::Project, "bench", "").await;
    let dataset = create(&fixture, ResourceVariant::Dataset, "data", &project.id).await;

    // Warm both paths up (connections, caches, file store).
    herald_emit(&fixture, &dataset.id, WARMUP_EVENTS).await;
    let subject = format!("herald.ev.res.{}._.{}._.job.completed", project.id, dataset.id);
    raw_publish(&fixture, &subject, WARMUP_EVENTS).await;

    let raw = raw_publish(&fixture, &subject, total).await;
    let herald = herald_emit(&fixture, &dataset.id, total).await;
    let raw_rate = total as f64 / raw;
    let herald_rate = total as f64 / herald;
    print_table(
        &format!("emit: {total} events, batches of {BATCH}, {CONCURRENCY} in flight"),
        &["path", "events/s", "ratio vs raw"],
        &[
            vec!["raw async-nats JetStream publish".into(), format!("{raw_rate:.0}"), "1.00".into()],
            vec![
                "Herald EmitEvents (gRPC)".into(),
                format!("{herald_rate:.0}"),
                format!("{:.2}", herald_rate / raw_rate),
            ],
        ],
    );
    fixture.stop().await;
}

async fn create(f: &Fixture, variant: ResourceVariant, name: &str, parent: &str) -> pb::Resource {
    let request = pb::CreateResourceRequest { variant: variant as i32, name: name.into(), parent_id: parent.into() };
    f.admin.resources().create_resource(request).await.expect("create").into_inner().resource.unwrap()
}

/// Seconds taken to emit `total` events through Herald.
async fn herald_emit(f: &Fixture, resource_id: &str, total: usize) -> f64 {
    let batches = total / BATCH;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let mut client = f.admin.events();
        let next = next.clone();
        let resource_id = resource_id.to_owned();
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < batches {
                let events = (0..BATCH)
                    .map(|i| pb::EmitEventRequest {
                        resource_id: resource_id.clone(),
                        kind: Some(Kind::CustomType("job.completed".into())),
                        payload_json: payload(i),
                        idempotency_key: String::new(),
                    })
                    .collect();
                client.emit_events(pb::EmitEventsRequest { events }).await.expect("emit");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed().as_secs_f64()
}

/// Seconds taken to publish `total` equivalent event bodies with async-nats.
async fn raw_publish(f: &Fixture, subject: &str, total: usize) -> f64 {
    let js = f.jetstream().await;
    let body = |i: usize| {
        Bytes::from(format!(
            r#"{{"id":"01KBENCH{i:018}","type":"job.completed","time":"2026-11-23T12:00:00Z","resource":{{"id":"X","variant":"DATASET","path":[]}},"actor":"admin","payload":{}}}"#,
            payload(i)
        ))
    };
    let batches = total / BATCH;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let js = js.clone();
        let next = next.clone();
        let subject = subject.to_owned();
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < batches {
                let mut acks = Vec::with_capacity(BATCH);
                for i in 0..BATCH {
                    acks.push(js.publish(subject.clone(), body(i)).await.expect("publish"));
                }
                for ack in acks {
                    ack.await.expect("ack");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed().as_secs_f64()
}
