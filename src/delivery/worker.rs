//! One worker per subscription per replica: pulls from the subscription's
//! durable consumer (replicas share its events), delivers with bounded
//! concurrency (one at a time when ordered), and maps each decision to
//! ack / nak-with-delay / term in one place. A slow or failing endpoint only
//! ever holds up its own subscription.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use time::OffsetDateTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{condition::Condition, outcome::Decision};
use crate::{
    app::App,
    domain::subscription::{AttemptKind, AttemptOutcome, SubscriptionRecord, consumer_name},
    store::{AckOp, Delivery},
    subscriptions::Attempt,
};

/// Longest a pull request stays open, so configuration changes apply quickly.
const PULL_EXPIRY: Duration = Duration::from_secs(2);
/// How often a paused subscription checks whether it was resumed.
const PAUSE_CHECK: Duration = Duration::from_millis(200);
/// Events of a subscription that was disabled meanwhile go back with this delay.
const RELEASE_DELAY: Duration = Duration::from_secs(1);
/// A rate-limited subscription pulls at most this much time's worth of events.
const RATE_AHEAD: Duration = Duration::from_secs(2);

/// Runs the worker of subscription `id` until it is deleted or disabled, or
/// shutdown. Each delivery it starts is a task of its own, so one busy
/// subscription's requests, logging and settling spread over every core.
pub async fn run(app: Arc<App>, id: String, shutdown: CancellationToken) {
    let consumer = consumer_name(&id);
    let id: Arc<str> = id.into();
    let mut limiter = RateLimiter::default();
    let mut condition: Option<Arc<Compiled>> = None;
    let permits = Arc::new(Semaphore::new(app.settings.delivery.max_concurrency));
    while !shutdown.is_cancelled() {
        let Some(sub) = app.subscriptions.cached(&id) else { return };
        if sub.disabled.is_some() {
            return;
        }
        if let Some(until) = sub.disabled_until.filter(|u| *u > OffsetDateTime::now_utc()) {
            let wait = (until - OffsetDateTime::now_utc()).unsigned_abs().min(PAUSE_CHECK);
            tokio::select! { _ = shutdown.cancelled() => return, _ = tokio::time::sleep(wait) => continue }
        }
        let condition = match &condition {
            Some(compiled) if compiled.of == sub.updated_at => compiled.clone(),
            _ => condition.insert(Arc::new(Compiled::of(&sub))).clone(),
        };
        // Pull ahead of the free slots so the next event is at hand when a
        // request completes, but never more than can start within about one
        // request timeout (or `RATE_AHEAD` at the subscription's rate): pulled
        // events wait here with their ack wait running. An ordered
        // subscription takes one at a time, and so does one awaiting its
        // CloudEvents handshake (whose allowed rate must be known first).
        let status = app.subscription_status.cached(&id);
        let handshake_pending = sub.cloudevents_handshake && !status.as_ref().is_some_and(|s| s.handshake_done);
        let one_at_a_time = sub.ordered || handshake_pending;
        let allowed_rate = status.as_ref().and_then(|s| s.allowed_rate_per_minute);
        let concurrency = app.settings.delivery.max_concurrency;
        let batch = if one_at_a_time { 1 } else { pull_ahead(concurrency, sub.rate_limit, allowed_rate) };
        let pulled = tokio::select! {
            _ = shutdown.cancelled() => return,
            pulled = app.events.pull(&consumer, batch, PULL_EXPIRY) => pulled,
        };
        let mut pull = match pulled {
            Ok(Some(pull)) => pull,
            Ok(None) => return, // the consumer is gone: the subscription was deleted
            Err(err) => {
                tracing::debug!(subscription = %id, error = %err, "pull failed; retrying");
                tokio::select! { _ = shutdown.cancelled() => return, _ = tokio::time::sleep(Duration::from_millis(500)) => continue }
            }
        };
        loop {
            let next = tokio::select! { _ = shutdown.cancelled() => return, next = pull.next() => next };
            let Some(Ok(delivery)) = next else { break };
            let allowed = app.subscription_status.cached(&id).and_then(|s| s.allowed_rate_per_minute);
            let slot = async {
                limiter.wait(sub.rate_limit, allowed).await;
                permits.clone().acquire_owned().await.expect("semaphore open")
            };
            let permit = tokio::select! { _ = shutdown.cancelled() => return, permit = slot => permit };
            let (job_app, job_id, condition) = (app.clone(), id.clone(), condition.clone());
            let abandon = app.abandon_deliveries.clone();
            // Tracked, so shutdown waits for it (up to its grace period).
            let job = app.deliveries.track_future(async move {
                tokio::select! {
                    _ = abandon.cancelled() => {} // left unacknowledged: redelivered later
                    _ = deliver(&job_app, &job_id, &condition, delivery, permit) => {}
                }
            });
            if one_at_a_time {
                job.await;
            } else {
                tokio::spawn(job);
            }
            if app.subscriptions.cached(&id).is_none_or(|s| s.disabled.is_some()) {
                return; // what this pull still brings waits for the ack wait, then for re-enabling
            }
        }
    }
}

/// A subscription's payload condition, compiled once per version of it.
struct Compiled {
    /// The `updated_at` of the subscription it was compiled from.
    of: OffsetDateTime,
    condition: Option<Condition>,
}

impl Compiled {
    fn of(sub: &SubscriptionRecord) -> Self {
        // Conditions are validated when stored, so one that fails here cannot occur.
        let condition = sub.condition.as_deref().and_then(|c| Condition::parse("condition", c).ok());
        Compiled { of: sub.updated_at, condition }
    }
}

/// Delivers one event of subscription `id`'s consumer and settles it. The
/// concurrency `slot` is held only for the HTTP request: logging and
/// settling run beside the next requests.
async fn deliver(app: &App, id: &str, compiled: &Compiled, mut delivery: Delivery, slot: OwnedSemaphorePermit) {
    // The ack subject comes from JetStream itself (not from a client), so it
    // needs none of the checks reply tokens get.
    let ack = std::mem::take(&mut delivery.ack_subject);
    let settle = |op| app.events.settle(ack, op);
    // The subscription as it is now, not as it was when the event was pulled:
    // a rotated secret or a new URL applies from the next request on.
    let sub = match app.subscriptions.cached(id) {
        Some(sub) if sub.disabled.is_none() => sub,
        _ => return settle(AckOp::Nak(Some(RELEASE_DELAY))).await,
    };
    let sub = sub.as_ref();
    // Only the id (and, for a condition, the payload) is needed: the stored
    // JSON is the webhook body as it is.
    let Some(event_id) = event_id(&delivery.payload) else {
        return settle(AckOp::Term).await;
    };
    // The worker compiled the condition when it pulled; one changed since
    // applies now too (compiled here until the worker's next pull).
    let recompiled;
    let compiled = if compiled.of == sub.updated_at {
        compiled
    } else {
        recompiled = Compiled::of(sub);
        &recompiled
    };
    if let Some(condition) = &compiled.condition {
        let payload = serde_json::from_slice::<EventPayload>(&delivery.payload).ok().and_then(|e| e.payload);
        if !condition.matches(payload.as_ref()) {
            return settle(AckOp::Ack).await;
        }
    }
    let attempt = delivery.delivered as u32;
    let attempted = app.send_event(sub, &event_id, delivery.payload.clone()).await;
    drop(slot);
    app.metrics.delivery_latency.observe(attempted.latency.as_secs_f64());
    let decision = app.retry_policy.decide(attempt, &attempted.response);
    let (op, outcome, next_at) = match decision {
        Decision::Delivered => (AckOp::Ack, AttemptOutcome::Delivered, None),
        Decision::Retry(delay) if app.failing_too_long(sub) => {
            app.disable_subscription(sub, "it failed without a success for longer than delivery.disable_after").await;
            (AckOp::Nak(Some(delay)), AttemptOutcome::Disabled, None)
        }
        Decision::Retry(delay) => {
            (AckOp::Nak(Some(delay)), AttemptOutcome::RetryScheduled, Some(OffsetDateTime::now_utc() + delay))
        }
        Decision::Fail => (AckOp::Term, AttemptOutcome::Failed, None),
        Decision::Exhausted => (AckOp::Term, AttemptOutcome::Exhausted, None),
        Decision::Disable => {
            app.disable_subscription(sub, "the receiver answered 410 Gone").await;
            (AckOp::Nak(Some(RELEASE_DELAY)), AttemptOutcome::Disabled, None)
        }
    };
    let class = crate::telemetry::metrics::status_class(attempted.status);
    app.metrics.deliveries.with_label_values(&[outcome.as_str(), class]).inc();
    let of =
        Attempt { sub, event_id: &event_id, sequence: delivery.stream_sequence, attempt, kind: AttemptKind::Delivery };
    app.log_attempt(of, &attempted, outcome, next_at).await;
    settle(op).await;
}

/// The id of a stored event. Herald writes the id first and ids are plain
/// ASCII, so reading it needs no JSON parse; anything else is parsed.
fn event_id(stored: &[u8]) -> Option<String> {
    let plain = |id: &[u8]| id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if stored.ends_with(b"}")
        && let Some(rest) = stored.strip_prefix(br#"{"id":""#)
        && let Some(end) = rest.iter().position(|b| *b == b'"')
        && plain(&rest[..end])
    {
        return String::from_utf8(rest[..end].to_vec()).ok();
    }
    #[derive(serde::Deserialize)]
    struct EventHead {
        id: String,
    }
    serde_json::from_slice::<EventHead>(stored).ok().map(|e| e.id)
}

#[derive(serde::Deserialize)]
struct EventPayload {
    payload: Option<serde_json::Value>,
}

/// How many events a worker pulls at once: two rounds of its `concurrency`
/// slots, so a pulled event waits at most one request timeout for a slot
/// (well within the ack wait of four), and at a limited rate no more than
/// `RATE_AHEAD` worth.
fn pull_ahead(concurrency: usize, per_second: Option<u32>, per_minute: Option<u32>) -> usize {
    let rounds = concurrency * 2;
    let own = per_second.filter(|r| *r > 0).map(|r| r as f64);
    let allowed = per_minute.filter(|r| *r > 0).map(|r| r as f64 / 60.0);
    match [own, allowed].into_iter().flatten().reduce(f64::min) {
        Some(rate) => ((rate * RATE_AHEAD.as_secs_f64()) as usize).clamp(1, rounds),
        None => rounds,
    }
}

/// Spaces a worker's deliveries to the subscription's rate.
#[derive(Default)]
struct RateLimiter {
    last: Option<Instant>,
}

impl RateLimiter {
    /// Waits until the stricter of the subscription's rate and the rate the
    /// receiver allowed in a CloudEvents handshake permits the next delivery.
    async fn wait(&mut self, per_second: Option<u32>, per_minute: Option<u32>) {
        let own = per_second.filter(|r| *r > 0).map(|r| Duration::from_secs(1) / r);
        let allowed = per_minute.filter(|r| *r > 0).map(|r| Duration::from_secs(60) / r);
        if let (Some(interval), Some(last)) = (own.max(allowed), self.last) {
            tokio::time::sleep_until((last + interval).into()).await;
        }
        self.last = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_read_without_a_parse_when_plain_and_parsed_otherwise() {
        assert_eq!(event_id(br#"{"id":"01KABC","type":"x"}"#).as_deref(), Some("01KABC"));
        assert_eq!(event_id(br#"{"type":"x","id":"01KABC"}"#).as_deref(), Some("01KABC"), "not first");
        assert_eq!(event_id(br#"{"id":"a\"b","type":"x"}"#).as_deref(), Some("a\"b"), "escaped");
        assert_eq!(event_id(br#"{"id":"01KABC""#), None, "not JSON");
        assert_eq!(event_id(b"garbage"), None);
    }

    #[test]
    fn pull_ahead_is_two_rounds_of_slots_or_two_seconds_at_a_limited_rate() {
        assert_eq!(pull_ahead(16, None, None), 32);
        assert_eq!(pull_ahead(16, Some(0), Some(0)), 32, "zero means no limit");
        assert_eq!(pull_ahead(16, Some(5), None), 10);
        assert_eq!(pull_ahead(16, Some(1000), None), 32);
        assert_eq!(pull_ahead(16, None, Some(60)), 2, "the receiver's per-minute rate counts too");
        assert_eq!(pull_ahead(16, Some(100), Some(6)), 1, "the stricter rate wins, and at least one is pulled");
    }
}
