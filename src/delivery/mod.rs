//! Push delivery of events to webhooks: signing, the network guard, payload
//! conditions, the retry policy, the HTTP sender and the per-subscription
//! workers that pull from each subscription's durable consumer.

pub mod condition;
pub mod format;
pub mod guard;
pub mod http;
pub mod oauth;
pub mod outcome;
pub mod signing;
mod worker;

use std::{collections::HashMap, sync::Arc, time::Duration};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::App;

/// How often the worker set is reconciled with the subscriptions.
const RECONCILE_EVERY: Duration = Duration::from_millis(250);

/// Keeps one worker running per enabled subscription until `shutdown`.
pub async fn run_workers(app: Arc<App>, shutdown: CancellationToken) {
    let mut workers: HashMap<String, JoinHandle<()>> = HashMap::new();
    loop {
        workers.retain(|_, handle| !handle.is_finished());
        for sub in app.subscriptions.select(|_, s| s.disabled.is_none()) {
            if !workers.contains_key(&sub.id) {
                let task = worker::run(app.clone(), sub.id.clone(), shutdown.child_token());
                workers.insert(sub.id.clone(), tokio::spawn(task));
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(RECONCILE_EVERY) => {}
        }
    }
    for (_, handle) in workers {
        let _ = handle.await;
    }
    // Let in-flight deliveries finish within the grace period; abandon the
    // rest (unacknowledged, so JetStream redelivers them after the ack wait).
    app.deliveries.close();
    let grace = app.settings.ops.shutdown_grace;
    if tokio::time::timeout(grace, app.deliveries.wait()).await.is_err() {
        tracing::warn!(
            in_flight = app.deliveries.len(),
            ?grace,
            "abandoning deliveries still in flight after the grace period"
        );
        app.abandon_deliveries.cancel();
        app.deliveries.wait().await;
    }
    app.events.flush_settled().await;
    app.attempts.flush().await;
}
