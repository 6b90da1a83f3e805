//! The ops HTTP listener: `/metrics` (Prometheus text), `/healthz` (the
//! process is alive) and `/readyz` (connected to NATS, streams present, not
//! shutting down).

use std::{net::SocketAddr, sync::Arc, sync::atomic::Ordering, time::Duration};

use axum::{extract::State, http::StatusCode, routing::get};
use tokio_util::sync::CancellationToken;

use crate::app::App;

/// How often the retry queue depth of every subscription is read.
const QUEUE_REFRESH: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct Ops {
    app: Arc<App>,
    shutdown: CancellationToken,
}

/// Binds the ops listener and serves it until `shutdown`; returns the bound address.
pub async fn start(app: Arc<App>, listen: SocketAddr, shutdown: CancellationToken) -> anyhow::Result<SocketAddr> {
    use anyhow::Context as _;
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("failed to bind ops.listen = {listen}"))?;
    let addr = listener.local_addr()?;
    let state = Ops { app: app.clone(), shutdown: shutdown.clone() };
    let router = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let served = axum::serve(listener, router).with_graceful_shutdown(async move { stop.cancelled().await }).await;
        if let Err(err) = served {
            tracing::error!(error = %err, "ops listener failed");
        }
    });
    tokio::spawn(refresh_queues(app, shutdown));
    tracing::info!(%addr, "ops listener (/metrics, /healthz, /readyz)");
    Ok(addr)
}

async fn metrics(State(ops): State<Ops>) -> String {
    let app = &ops.app;
    let m = &app.metrics;
    m.open_streams.set(app.stats.open_streams.load(Ordering::SeqCst) as i64);
    m.consumers.set(app.consumers.select(|_, _| true).len() as i64);
    m.subscriptions.set(app.subscriptions.select(|_, _| true).len() as i64);
    m.nats_connected.set(i64::from(app.nats.is_connected()));
    m.nats_reconnects.set(app.nats.reconnects() as i64);
    m.render()
}

async fn readyz(State(ops): State<Ops>) -> (StatusCode, &'static str) {
    if ops.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    if !ops.app.nats.is_connected() {
        return (StatusCode::SERVICE_UNAVAILABLE, "NATS is unreachable\n");
    }
    match tokio::time::timeout(Duration::from_secs(2), ops.app.nats.streams_present()).await {
        Ok(true) => (StatusCode::OK, "ready\n"),
        Ok(false) => (StatusCode::SERVICE_UNAVAILABLE, "Herald's streams are missing\n"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "NATS does not answer\n"),
    }
}

/// Keeps `retry_queue_depth` current: events each subscription's consumer
/// has handed out and not yet seen acknowledged (in flight or awaiting a retry).
async fn refresh_queues(app: Arc<App>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(QUEUE_REFRESH) => {}
        }
        app.metrics.retry_queue_depth.reset();
        for sub in app.subscriptions.select(|_, _| true) {
            if let Ok(Some(state)) = app.events.consumer_state(&sub.consumer_name()).await {
                app.metrics.retry_queue_depth.with_label_values(&[&sub.id]).set(state.in_flight as i64);
            }
        }
    }
}
