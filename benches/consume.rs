//! `cargo bench --bench consume`: Herald's consumer paths against raw
//! async-nats consumers on the same stream, in one run:
//! - batch fetch + acknowledge (batches of 100),
//! - streaming throughput,
//! - emit-to-receipt latency at a fixed 5,000 events/s.

mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_nats::jetstream::{self, consumer::pull};
use bytes::Bytes;
use futures::StreamExt as _;
use herald::grpc::pb::{
    self, ResourceVariant, consumer_target::Target, emit_event_request::Kind,
    get_event_message_stream_response::Message as StreamMsg, start_position::Start,
};
use support::{Fixture, is_bench_run, percentile_ms, print_table};

const BATCH: u32 = 100;
const RATE: u64 = 5_000;

#[tokio::main]
async fn main() {
    let bench = is_bench_run();
    let total: usize = if bench { 20_000 } else { 500 };
    let latency_secs: u64 = if bench { 5 } else { 1 };
    // Streams read without acknowledging, so lift the in-flight cap; all else is default.
    let fixture = Fixture::start(|s| s.consumers.max_in_flight = 100_000).await;
    let project = create(&fixture, ResourceVariant::Project, "bench", "").await;
    let dataset = create(&fixture, ResourceVariant::Dataset, "d", &project.id).await;
    let subject = format!("herald.ev.res.{}._.{}._.bench.item", project.id, dataset.id);
    let filter = format!("herald.ev.res.{}.*.*.*.bench.>", project.id);
    let js = fixture.jetstream().await;

    preload(&fixture, &dataset.id, total).await;
    let herald_batch = herald_fetch_ack(&fixture, &project.id, total).await;
    let raw_batch = raw_fetch_ack(&js, &filter, total).await;
    let herald_stream = herald_stream_rate(&fixture, &project.id, total).await;
    let raw_stream = raw_stream_rate(&js, &filter, total).await;

    let mut herald_lat = herald_latency(&fixture, &project.id, &dataset.id, latency_secs).await;
    let mut raw_lat = raw_latency(&js, &subject, &filter, latency_secs).await;
    herald_lat.sort();
    raw_lat.sort();

    let rate = |secs: f64| total as f64 / secs;
    print_table(
        &format!("consume: {total} events of ~150 bytes, batches of {BATCH}"),
        &["path", "events/s", "ratio vs raw"],
        &[
            vec!["raw pull fetch + double ack".into(), format!("{:.0}", rate(raw_batch)), "1.00".into()],
            vec![
                "Herald GetEventMessageBatch + AcknowledgeMessageBatch".into(),
                format!("{:.0}", rate(herald_batch)),
                format!("{:.2}", raw_batch / herald_batch),
            ],
            vec!["raw pull consumer stream (messages())".into(), format!("{:.0}", rate(raw_stream)), "1.00".into()],
            vec![
                "Herald GetEventMessageStream".into(),
                format!("{:.0}", rate(herald_stream)),
                format!("{:.2}", raw_stream / herald_stream),
            ],
        ],
    );
    print_table(
        &format!("emit-to-receipt latency at {RATE} events/s for {latency_secs} s"),
        &["path", "events", "p50 ms", "p99 ms", "max ms"],
        &[
            latency_row("raw JetStream publish -> raw pull consumer", &raw_lat),
            latency_row("Herald EmitEvent -> Herald GetEventMessageStream", &herald_lat),
        ],
    );
    fixture.stop().await;
}

fn latency_row(name: &str, sorted: &[Duration]) -> Vec<String> {
    vec![
        name.into(),
        sorted.len().to_string(),
        format!("{:.2}", percentile_ms(sorted, 0.50)),
        format!("{:.2}", percentile_ms(sorted, 0.99)),
        format!("{:.2}", percentile_ms(sorted, 1.0)),
    ]
}

async fn create(f: &Fixture, variant: ResourceVariant, name: &str, parent: &str) -> pb::Resource {
    let request = pb::CreateResourceRequest { variant: variant as i32, name: name.into(), parent_id: parent.into() };
    f.admin.resources().create_resource(request).await.expect("create").into_inner().resource.unwrap()
}

fn payload(i: usize) -> String {
    format!(r#"{{"job":"render-{i}","status":"COMPLETED","worker":"node-7"}}"#)
}

async fn preload(f: &Fixture, resource_id: &str, total: usize) {
    for chunk in (0..total).collect::<Vec<_>>().chunks(1000) {
        let events = chunk
            .iter()
            .map(|i| pb::EmitEventRequest {
                resource_id: resource_id.into(),
                kind: Some(Kind::CustomType("bench.item".into())),
                payload_json: payload(*i),
                idempotency_key: String::new(),
            })
            .collect();
        f.admin.events().emit_events(pb::EmitEventsRequest { events }).await.expect("preload");
    }
}

async fn herald_consumer(f: &Fixture, project: &str, start: Start) -> String {
    let request = pb::CreateStreamConsumerRequest {
        target: Some(pb::ConsumerTarget {
            target: Some(Target::Resource(pb::ResourceTarget {
                resource_id: project.into(),
                include_subresources: true,
            })),
        }),
        start: Some(pb::StartPosition { start: Some(start) }),
        variants: vec![],
        custom_types: vec!["bench.*".into()],
    };
    f.admin.notifications().create_stream_consumer(request).await.expect("consumer").into_inner().stream_consumer
}

async fn herald_fetch_ack(f: &Fixture, project: &str, total: usize) -> f64 {
    let consumer = herald_consumer(f, project, Start::All(pb::Empty {})).await;
    let mut api = f.admin.notifications();
    let start = Instant::now();
    let mut done = 0;
    while done < total {
        let request = pb::GetEventMessageBatchRequest {
            stream_consumer: consumer.clone(),
            batch_size: BATCH,
            max_wait: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
        };
        let messages = api.get_event_message_batch(request).await.expect("fetch").into_inner().messages;
        done += messages.len();
        let replies = messages.into_iter().filter_map(|m| m.reply).collect();
        let ack = pb::AcknowledgeMessageBatchRequest { replies, stream_consumer: consumer.clone() };
        let results = api.acknowledge_message_batch(ack).await.expect("ack").into_inner().results;
        assert!(results.iter().all(|r| r.status() == pb::ReplyStatus::Ok));
    }
    start.elapsed().as_secs_f64()
}

async fn raw_consumer(js: &jetstream::Context, filter: &str, name: &str) -> jetstream::consumer::PullConsumer {
    let stream = js.get_stream("HERALD_EVENTS").await.expect("stream");
    stream
        .create_consumer(pull::Config {
            durable_name: Some(name.into()),
            filter_subject: filter.into(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            max_ack_pending: 100_000,
            ..Default::default()
        })
        .await
        .expect("raw consumer")
}

async fn raw_fetch_ack(js: &jetstream::Context, filter: &str, total: usize) -> f64 {
    let consumer = raw_consumer(js, filter, "raw_batch").await;
    let start = Instant::now();
    let mut done = 0;
    while done < total {
        let mut batch = consumer.fetch().max_messages(BATCH as usize).messages().await.expect("fetch");
        let mut messages = Vec::new();
        while let Some(m) = batch.next().await {
            messages.push(m.expect("message"));
        }
        done += messages.len();
        futures::future::join_all(messages.iter().map(|m| m.double_ack()))
            .await
            .into_iter()
            .for_each(|r| r.expect("ack"));
    }
    start.elapsed().as_secs_f64()
}

async fn herald_stream_rate(f: &Fixture, project: &str, total: usize) -> f64 {
    let consumer = herald_consumer(f, project, Start::All(pb::Empty {})).await;
    let request = pb::GetEventMessageStreamRequest { stream_consumer: consumer };
    let start = Instant::now();
    let mut stream = f.admin.notifications().get_event_message_stream(request).await.expect("stream").into_inner();
    let mut got = 0;
    while got < total {
        if let Some(StreamMsg::Event(_)) = stream.message().await.expect("item").expect("open").message {
            got += 1;
        }
    }
    start.elapsed().as_secs_f64()
}

async fn raw_stream_rate(js: &jetstream::Context, filter: &str, total: usize) -> f64 {
    let consumer = raw_consumer(js, filter, "raw_stream").await;
    let start = Instant::now();
    let mut messages = consumer.messages().await.expect("messages");
    for _ in 0..total {
        messages.next().await.expect("open").expect("message");
    }
    start.elapsed().as_secs_f64()
}

/// Sends at RATE events/s for `secs` seconds; `send(i, sent_at_nanos)` does one send.
async fn paced<F, Fut>(secs: u64, send: F)
where
    F: Fn(usize, u128) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let base = *BASE;
    let per_tick = (RATE / 1000) as usize;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut i = 0;
    for _ in 0..secs * 1000 {
        tick.tick().await;
        for _ in 0..per_tick {
            tokio::spawn(send(i, base.elapsed().as_nanos()));
            i += 1;
        }
    }
}

static BASE: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

fn latency_of(payload: &str) -> Option<Duration> {
    let sent: u128 = payload.split("\"sent\":").nth(1)?.trim_end_matches('}').parse().ok()?;
    Some(Duration::from_nanos((BASE.elapsed().as_nanos().saturating_sub(sent)) as u64))
}

async fn herald_latency(f: &Fixture, project: &str, dataset: &str, secs: u64) -> Vec<Duration> {
    let consumer = herald_consumer(f, project, Start::OnlyNew(pb::Empty {})).await;
    let request = pb::GetEventMessageStreamRequest { stream_consumer: consumer };
    let mut stream = f.admin.notifications().get_event_message_stream(request).await.expect("stream").into_inner();
    let expected = (secs * RATE) as usize;
    let receiver = tokio::spawn(async move {
        let mut lat = Vec::with_capacity(expected);
        while lat.len() < expected {
            match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
                Ok(Ok(Some(pb::GetEventMessageStreamResponse { message: Some(StreamMsg::Event(m)) }))) => {
                    if let Some(l) = m.event.and_then(|e| latency_of(&e.payload_json)) {
                        lat.push(l);
                    }
                }
                Ok(Ok(Some(_))) => {}
                _ => break,
            }
        }
        lat
    });
    let client = Arc::new(f.admin.events());
    let dataset = dataset.to_owned();
    paced(secs, move |_, sent| {
        let mut client = (*client).clone();
        let dataset = dataset.clone();
        async move {
            let request = pb::EmitEventRequest {
                resource_id: dataset,
                kind: Some(Kind::CustomType("bench.latency".into())),
                payload_json: format!(r#"{{"sent":{sent}}}"#),
                idempotency_key: String::new(),
            };
            client.emit_event(request).await.expect("emit");
        }
    })
    .await;
    receiver.await.unwrap()
}

async fn raw_latency(js: &jetstream::Context, subject: &str, filter: &str, secs: u64) -> Vec<Duration> {
    let stream = js.get_stream("HERALD_EVENTS").await.expect("stream");
    let consumer: jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("raw_latency".into()),
            filter_subject: filter.into(),
            deliver_policy: jetstream::consumer::DeliverPolicy::New,
            max_ack_pending: 100_000,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let expected = (secs * RATE) as usize;
    let receiver = tokio::spawn(async move {
        let mut lat = Vec::with_capacity(expected);
        while lat.len() < expected {
            match tokio::time::timeout(Duration::from_secs(10), messages.next()).await {
                Ok(Some(Ok(m))) => {
                    if let Some(l) = latency_of(std::str::from_utf8(&m.payload).unwrap_or_default()) {
                        lat.push(l);
                    }
                }
                _ => break,
            }
        }
        lat
    });
    let js = js.clone();
    let subject = subject.to_owned();
    paced(secs, move |i, sent| {
        let js = js.clone();
        let subject = subject.clone();
        async move {
            let body = format!(r#"{{"id":"raw-{i}","type":"bench.latency","payload":{{"sent":{sent}}}}}"#);
            js.publish(subject, Bytes::from(body)).await.expect("publish").await.expect("ack");
        }
    })
    .await;
    receiver.await.unwrap()
}
