//! The delivery attempt log and status of subscriptions: recording attempts,
//! disabling failing subscriptions (and telling their owners), listing
//! attempts, and the one-off deliveries: resend, replay and test events.

use std::sync::Arc;

use bytes::Bytes;
use time::OffsetDateTime;

use crate::{
    app::App,
    auth::Principal,
    delivery::{condition::Condition, http::Attempted, outcome::Decision},
    domain::{
        event::EventRecord,
        ids,
        page::{Order, page_size, paginate},
        personal::NoticeVariant,
        subscription::{AttemptKind, AttemptOutcome, AttemptRecord, Disabled, SubscriptionRecord},
    },
    error::{Error, Result},
    personal::Outgoing,
};

/// Type of the event `SendTestEvent` delivers.
pub const PING_TYPE: &str = "herald.ping";

/// Room for an attempt record's JSON besides its response body (names,
/// times, ids and a short error).
const RECORD_FIELDS_LEN: usize = 512;

/// Which delivery attempt of which event of which subscription.
#[derive(Clone, Copy)]
pub(crate) struct Attempt<'a> {
    pub sub: &'a SubscriptionRecord,
    pub event_id: &'a str,
    /// Stream sequence of the event (0 for test events).
    pub sequence: u64,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub kind: AttemptKind,
}

/// An attempt as listed: its record and its position in the log (the page token).
#[derive(Clone, Debug)]
pub struct ListedAttempt {
    pub position: String,
    pub record: AttemptRecord,
}

impl App {
    /// Appends an attempt to the log and updates the subscription's status.
    pub(crate) async fn log_attempt(
        &self,
        of: Attempt<'_>,
        attempted: &Attempted,
        outcome: AttemptOutcome,
        next_attempt_at: Option<OffsetDateTime>,
    ) -> AttemptRecord {
        let Attempt { sub, event_id, sequence, attempt, kind } = of;
        let now = OffsetDateTime::now_utc();
        let record = AttemptRecord {
            event_id: event_id.to_owned(),
            sequence,
            attempt,
            kind,
            time: now,
            status: attempted.status,
            error: attempted.error.clone(),
            latency_ms: attempted.latency.as_millis() as u64,
            response_body: attempted.body.clone(),
            outcome,
            next_attempt_at,
        };
        // Sized for the fixed fields up front: growing the buffer field by field copies it over and over.
        let mut bytes = Vec::with_capacity(RECORD_FIELDS_LEN + record.response_body.len());
        match serde_json::to_writer(&mut bytes, &record).map(|()| bytes) {
            // Attempts returned to a caller are confirmed; delivery attempts are not waited on.
            Ok(bytes) if kind == AttemptKind::Delivery => self.attempts.append(&sub.id, Bytes::from(bytes)).await,
            Ok(bytes) => {
                if let Err(err) = self.attempts.append_confirmed(&sub.id, Bytes::from(bytes)).await {
                    tracing::warn!(subscription = %sub.id, error = %err, "failed to log a delivery attempt");
                }
            }
            Err(err) => tracing::error!(error = %err, "failed to encode a delivery attempt"),
        }
        self.record_status(sub, outcome == AttemptOutcome::Delivered, now).await;
        record
    }

    /// Updates last-triggered/last-errored and the start of the current
    /// failure run; writes only on a change of state or once a second.
    async fn record_status(&self, sub: &SubscriptionRecord, success: bool, now: OffsetDateTime) {
        let current = self.subscription_status.cached(&sub.id);
        let current = current.as_deref();
        let stale = |t: Option<OffsetDateTime>| t.is_none_or(|t| now - t > time::Duration::seconds(1));
        let failing = current.is_some_and(|c| c.failing_since.is_some());
        let changed = success == failing;
        let due = stale(current.and_then(|c| c.last_triggered_at))
            || (!success && stale(current.and_then(|c| c.last_errored_at)));
        if !changed && !due {
            return;
        }
        let mut next = current.cloned().unwrap_or_default();
        next.last_triggered_at = Some(now);
        if success {
            next.failing_since = None;
        } else {
            next.last_errored_at = Some(now);
            next.failing_since = next.failing_since.or(Some(now));
        }
        let _ = self.subscription_status.put(&sub.id, next).await;
    }

    /// True when the subscription has been failing without a success for
    /// longer than `delivery.disable_after`.
    pub(crate) fn failing_too_long(&self, sub: &SubscriptionRecord) -> bool {
        let since = self.subscription_status.cached(&sub.id).and_then(|s| s.failing_since);
        since.is_some_and(|since| OffsetDateTime::now_utc() - since > self.settings.delivery.disable_after)
    }

    /// Disables a subscription and notifies its owner (once).
    pub(crate) async fn disable_subscription(&self, sub: &SubscriptionRecord, reason: &str) {
        let Ok(Some(current)) = self.subscriptions.get(&sub.id).await else { return };
        if current.disabled.is_some() {
            return;
        }
        let mut record = (*current).clone();
        record.disabled = Some(Disabled { reason: reason.to_owned(), at: OffsetDateTime::now_utc() });
        record.updated_at = OffsetDateTime::now_utc();
        if let Err(err) = self.subscriptions.put(&sub.id, record).await {
            tracing::warn!(subscription = %sub.id, error = %err, "failed to disable a subscription");
            return;
        }
        tracing::warn!(subscription = %sub.id, reason, "subscription disabled");
        let message = format!("Your webhook subscription \"{}\" was disabled: {reason}.", sub.name);
        let reference = crate::domain::personal::Reference {
            kind: crate::domain::personal::ReferenceKind::Subscription,
            id: sub.id.clone(),
            display_name: sub.name.clone(),
        };
        let notice = Outgoing::new(&sub.owner, NoticeVariant::SubscriptionDisabled, message, vec![reference]);
        if let Err(err) = self.notify(vec![notice]).await {
            tracing::warn!(subscription = %sub.id, error = %err, "failed to notify the owner of a disabled subscription");
        }
    }

    /// A page of a subscription's attempts, newest first.
    pub async fn list_attempts(
        &self,
        who: &Principal,
        id: &str,
        size: u32,
        token: &str,
    ) -> Result<(Vec<ListedAttempt>, String)> {
        self.owned_subscription(who, id).await?;
        let size = page_size(size)?;
        let listed = self.attempt_records(id).await?;
        Ok(paginate(listed, |a| a.position.as_str(), size, token, Order::Descending))
    }

    /// The newest `delivery.attempt_log_per_subscription` attempts, oldest first.
    async fn attempt_records(&self, id: &str) -> Result<Vec<ListedAttempt>> {
        let stored = self.attempts.list(id).await?;
        let mut listed: Vec<ListedAttempt> = stored
            .into_iter()
            .flat_map(|m| {
                let batch: Vec<AttemptRecord> = serde_json::from_slice(&m.payload).unwrap_or_default();
                // Zero-padded so positions sort like (sequence, index in the batch).
                batch
                    .into_iter()
                    .enumerate()
                    .map(move |(i, record)| ListedAttempt { position: format!("{:020}.{i:04}", m.sequence), record })
            })
            .collect();
        let keep = self.settings.delivery.attempt_log_per_subscription as usize;
        listed.drain(..listed.len().saturating_sub(keep));
        Ok(listed)
    }

    /// Delivers a logged event once more, now; returns the attempt.
    pub async fn resend_event(&self, who: &Principal, id: &str, event_id: &str) -> Result<AttemptRecord> {
        let sub = self.owned_subscription(who, id).await?;
        ids::check_id("event_id", event_id)?;
        let attempts = self.attempt_records(id).await?;
        let last =
            attempts.iter().filter(|a| a.record.event_id == event_id).max_by_key(|a| a.record.attempt).ok_or_else(
                || Error::NotFound { what: format!("a delivery attempt of event {event_id} for subscription {id}") },
            )?;
        let body = self.events.event_at(last.record.sequence).await?.ok_or_else(|| Error::NotFound {
            what: format!("event {event_id} (past the events stream's retention)"),
        })?;
        let of = Attempt {
            sub: &sub,
            event_id,
            sequence: last.record.sequence,
            attempt: last.record.attempt + 1,
            kind: AttemptKind::Resend,
        };
        Ok(self.deliver_once(of, body).await)
    }

    /// Delivers once each stored event of the subscription's scope since
    /// `since` (at most `delivery.max_replay`), in the background. Returns
    /// how many events will be delivered.
    pub async fn replay_events(self: &Arc<Self>, who: &Principal, id: &str, since: OffsetDateTime) -> Result<usize> {
        let sub = self.owned_subscription(who, id).await?;
        let events = self.events.read_since(sub.filter_subjects(), since, self.settings.delivery.max_replay).await?;
        let count = events.len();
        let app = self.clone();
        tokio::spawn(async move {
            let condition = sub.condition.as_deref().and_then(|c| Condition::parse("condition", c).ok());
            for message in events {
                let Ok(event) = serde_json::from_slice::<EventRecord>(&message.payload) else { continue };
                if let Some(condition) = &condition {
                    let payload = event.payload.as_ref().and_then(|p| serde_json::from_str(p.get()).ok());
                    if !condition.matches(payload.as_ref()) {
                        continue;
                    }
                }
                let of = Attempt {
                    sub: &sub,
                    event_id: &event.id,
                    sequence: message.sequence,
                    attempt: 1,
                    kind: AttemptKind::Replay,
                };
                app.deliver_once(of, message.payload).await;
            }
        });
        Ok(count)
    }

    /// Delivers a `herald.ping` event now; returns the attempt.
    pub async fn send_test_event(&self, who: &Principal, id: &str) -> Result<AttemptRecord> {
        let sub = self.owned_subscription(who, id).await?;
        let event = EventRecord {
            id: ids::new_id(),
            event_type: PING_TYPE.to_owned(),
            time: OffsetDateTime::now_utc(),
            resource: None,
            user_id: None,
            actor: who.user_id.clone(),
            payload: serde_json::value::to_raw_value(&serde_json::json!({"message": "test event from Herald"})).ok(),
        };
        let body = serde_json::to_vec(&event).map_err(|e| Error::internal("failed to encode a test event", e))?;
        let of = Attempt { sub: &sub, event_id: &event.id, sequence: 0, attempt: 1, kind: AttemptKind::Test };
        Ok(self.deliver_once(of, Bytes::from(body)).await)
    }

    /// One attempt outside the retry machinery, logged.
    async fn deliver_once(&self, of: Attempt<'_>, body: Bytes) -> AttemptRecord {
        let attempted = self.send_event(of.sub, of.event_id, body).await;
        let outcome = match self.retry_policy.decide(1, &attempted.response) {
            Decision::Delivered => AttemptOutcome::Delivered,
            _ => AttemptOutcome::Failed,
        };
        self.log_attempt(of, &attempted, outcome, None).await
    }
}
