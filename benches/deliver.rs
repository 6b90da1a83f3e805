//! `cargo bench --bench deliver`: webhook deliveries/s through Herald
//! against Herald's own HTTP client posting the same bodies directly to the
//! same keep-alive receiver, and emit-to-delivery latency at 1,000 events/s.

mod support;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{body::Bytes, extract::State, http::StatusCode};
use herald::{
    delivery::{
        guard::NetworkGuard,
        http::{Outbound, Sender},
        signing,
    },
    grpc::pb::{
        self, ResourceVariant, consumer_target, create_subscription_request::Destination, emit_event_request::Kind,
    },
};
use support::{Fixture, cpu_time, is_bench_run, percentile_ms, print_table};

const RATE: u64 = 1_000;
const CONCURRENCY: usize = 16;

static BASE: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

#[derive(Default)]
struct Receiver {
    count: AtomicUsize,
    latencies: Mutex<Vec<Duration>>,
}

async fn receive(State(r): State<Arc<Receiver>>, body: Bytes) -> StatusCode {
    r.count.fetch_add(1, Ordering::SeqCst);
    let text = String::from_utf8_lossy(&body);
    if let Some(sent) =
        text.split("\"sent\":").nth(1).and_then(|s| s.split('}').next()).and_then(|s| s.parse::<u128>().ok())
    {
        let now = BASE.elapsed().as_nanos();
        r.latencies.lock().unwrap().push(Duration::from_nanos(now.saturating_sub(sent) as u64));
    }
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() {
    let total: usize = if is_bench_run() { 30_000 } else { 200 };
    let latency_secs: u64 = if is_bench_run() { 5 } else { 1 };
    let rounds = if is_bench_run() { 3 } else { 1 };
    let fixture = Fixture::start(|s| s.delivery.allowed_networks = vec!["127.0.0.1/32".into()]).await;
    let receiver = Arc::new(Receiver::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(receive).with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let project = create(&fixture, ResourceVariant::Project, "bench", "").await;
    let body = |i: usize| {
        format!(
            r#"{{"id":"01KBENCH{i:018}","type":"job.completed","time":"2026-11-23T12:00:00Z","resource":{{"id":"{}","variant":"PROJECT","path":[]}},"actor":"admin","payload":{{"job":"render-{i}","status":"COMPLETED"}}}}"#,
            project.id
        )
    };

    // Alternate the two paths and compare medians: this machine's speed
    // drifts by tens of percent over seconds, which one pair would catch.
    let (mut direct, mut herald) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        direct.push(direct_rate(&fixture, &receiver, &url, total, &body).await);
        let name = format!("throughput-{round}");
        herald.push(herald_rate(&fixture, &receiver, &url, &project.id, total, &name).await);
    }
    let latencies = herald_latency(&fixture, &receiver, &url, &project.id, latency_secs).await;

    let rates = |runs: &[Run]| runs.iter().map(|r| total as f64 / r.secs).collect::<Vec<_>>();
    let each = |rates: &[f64]| rates.iter().map(|r| format!("{r:.0}")).collect::<Vec<_>>().join(" ");
    // CPU time per delivery over all rounds: steadier than the rates when the machine's speed drifts.
    let cpu = |runs: &[Run], of: fn(&Run) -> Duration| {
        let used: Duration = runs.iter().map(of).sum();
        format!("{:.1}", used.as_secs_f64() * 1e6 / (total * runs.len()) as f64)
    };
    let (direct_rates, herald_rates) = (rates(&direct), rates(&herald));
    let (direct_median, herald_median) = (median(&direct_rates), median(&herald_rates));
    print_table(
        &format!(
            "deliver: {total} webhooks to a local keep-alive receiver, {CONCURRENCY} in flight, {rounds} alternating rounds"
        ),
        &[
            "path",
            "median deliveries/s",
            "ratio vs direct",
            "each round",
            "CPU µs/delivery: this process",
            "nats-server",
        ],
        &[
            vec![
                "same HTTP client posting directly".into(),
                format!("{direct_median:.0}"),
                "1.00".into(),
                each(&direct_rates),
                cpu(&direct, |r| r.cpu),
                cpu(&direct, |r| r.nats_cpu),
            ],
            vec![
                "Herald subscription delivery".into(),
                format!("{herald_median:.0}"),
                format!("{:.2}", herald_median / direct_median),
                each(&herald_rates),
                cpu(&herald, |r| r.cpu),
                cpu(&herald, |r| r.nats_cpu),
            ],
        ],
    );
    print_table(
        &format!("emit-to-delivery latency at {RATE} events/s for {latency_secs} s"),
        &["path", "events", "p50 ms", "p99 ms", "max ms"],
        &[vec![
            "Herald EmitEvent -> webhook received".into(),
            latencies.len().to_string(),
            format!("{:.2}", percentile_ms(&latencies, 0.50)),
            format!("{:.2}", percentile_ms(&latencies, 0.99)),
            format!("{:.2}", percentile_ms(&latencies, 1.0)),
        ]],
    );
    fixture.stop().await;
}

async fn create(f: &Fixture, variant: ResourceVariant, name: &str, parent: &str) -> pb::Resource {
    let request = pb::CreateResourceRequest { variant: variant as i32, name: name.into(), parent_id: parent.into() };
    f.admin.resources().create_resource(request).await.expect("create").into_inner().resource.unwrap()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

async fn wait_count(receiver: &Receiver, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while receiver.count.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "only {} of {n} deliveries arrived", receiver.count.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// How long one path took for its deliveries, and the CPU time it used.
struct Run {
    secs: f64,
    /// This process (Herald or the direct client, and the receiver).
    cpu: Duration,
    nats_cpu: Duration,
}

impl Run {
    /// Starts measuring; the returned function ends the measurement.
    fn measure(f: &Fixture) -> impl FnOnce(f64) -> Run {
        let nats = Some(f.nats.pid().expect("nats-server running"));
        let (cpu, nats_cpu) = (cpu_time(None), cpu_time(nats));
        move |secs| Run { secs, cpu: cpu_time(None) - cpu, nats_cpu: cpu_time(nats) - nats_cpu }
    }
}

/// Herald's HTTP client posting `total` signed bodies directly.
async fn direct_rate(
    f: &Fixture,
    receiver: &Arc<Receiver>,
    url: &str,
    total: usize,
    body: &dyn Fn(usize) -> String,
) -> Run {
    let guard = NetworkGuard::new(vec!["127.0.0.1/32".parse().unwrap()]);
    let sender = Sender::new(guard, Duration::from_secs(15)).unwrap();
    let signer = Arc::new(signing::Signer::new(&[&signing::new_secret()], None));
    let url = Arc::new(url.to_owned());
    let bodies: Arc<Vec<Bytes>> = Arc::new((0..total).map(|i| Bytes::from(body(i))).collect());
    let before = receiver.count.load(Ordering::SeqCst);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Run::measure(f);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (sender, signer, url, bodies, next) =
            (sender.clone(), signer.clone(), url.clone(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= bodies.len() {
                    break;
                }
                // The same request Herald builds: content type and Standard Webhooks headers.
                let id = format!("msg_{i}");
                let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
                let signature = signer.header(&id, timestamp, &bodies[i]);
                let request = Outbound {
                    method: reqwest::Method::POST,
                    url: url.to_string(),
                    headers: vec![
                        ("content-type".into(), "application/json".into()),
                        ("webhook-id".into(), id),
                        ("webhook-timestamp".into(), timestamp.to_string()),
                        ("webhook-signature".into(), signature),
                    ],
                    body: bodies[i].clone(),
                };
                sender.send(request, 4096).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    wait_count(receiver, before + total).await;
    done(start.elapsed().as_secs_f64())
}

fn subscription_request(name: &str, project: &str, url: &str) -> pb::CreateSubscriptionRequest {
    pb::CreateSubscriptionRequest {
        name: name.into(),
        target: Some(pb::ConsumerTarget {
            target: Some(consumer_target::Target::Resource(pb::ResourceTarget {
                resource_id: project.into(),
                include_subresources: true,
            })),
        }),
        custom_types: vec!["bench.*".into()],
        destination: Some(Destination::Webhook(pb::WebhookDestination { url: url.into(), method: 0, headers: vec![] })),
        ..Default::default()
    }
}

/// Herald delivering `total` events queued while the subscription was paused.
async fn herald_rate(f: &Fixture, receiver: &Arc<Receiver>, url: &str, project: &str, total: usize, name: &str) -> Run {
    let paused_until = time::OffsetDateTime::now_utc() + Duration::from_secs(3600);
    let mut request = subscription_request(name, project, url);
    request.disabled_until = Some(prost_types::Timestamp { seconds: paused_until.unix_timestamp(), nanos: 0 });
    let id = f.admin.subscriptions().create_subscription(request).await.unwrap().into_inner().subscription.unwrap().id;
    for chunk in (0..total).collect::<Vec<_>>().chunks(1000) {
        let events = chunk
            .iter()
            .map(|i| pb::EmitEventRequest {
                resource_id: project.into(),
                kind: Some(Kind::CustomType("bench.item".into())),
                payload_json: format!(r#"{{"job":"render-{i}","status":"COMPLETED"}}"#),
                idempotency_key: String::new(),
            })
            .collect();
        f.admin.events().emit_events(pb::EmitEventsRequest { events }).await.unwrap();
    }
    let before = receiver.count.load(Ordering::SeqCst);
    let resume =
        pb::UpdateSubscriptionRequest { subscription_id: id.clone(), clear_disabled_until: true, ..Default::default() };
    f.admin.subscriptions().update_subscription(resume).await.unwrap();
    // The clock starts with the first delivery: this measures delivery
    // throughput, not how soon a resumed subscription notices.
    wait_count(receiver, before + 1).await;
    let done = Run::measure(f);
    let start = Instant::now();
    wait_count(receiver, before + total).await;
    let run = done(start.elapsed().as_secs_f64() * total as f64 / (total - 1) as f64);
    f.admin.subscriptions().delete_subscription(pb::DeleteSubscriptionRequest { subscription_id: id }).await.unwrap();
    run
}

async fn herald_latency(f: &Fixture, receiver: &Arc<Receiver>, url: &str, project: &str, secs: u64) -> Vec<Duration> {
    f.admin.subscriptions().create_subscription(subscription_request("latency", project, url)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await; // let the worker start pulling
    receiver.latencies.lock().unwrap().clear();
    let before = receiver.count.load(Ordering::SeqCst);
    let per_tick = (RATE / 100) as usize;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..secs * 100 {
        tick.tick().await;
        for _ in 0..per_tick {
            let mut client = f.admin.events();
            let project = project.to_owned();
            tokio::spawn(async move {
                let sent = BASE.elapsed().as_nanos();
                let request = pb::EmitEventRequest {
                    resource_id: project,
                    kind: Some(Kind::CustomType("bench.latency".into())),
                    payload_json: format!(r#"{{"sent":{sent}}}"#),
                    idempotency_key: String::new(),
                };
                client.emit_event(request).await.expect("emit");
            });
        }
    }
    wait_count(receiver, before + (secs * RATE) as usize).await;
    let mut latencies = receiver.latencies.lock().unwrap().clone();
    latencies.sort();
    latencies
}
