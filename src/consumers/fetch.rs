//! Batch fetch: at most `batch_size` events, waiting up to `max_wait` when
//! none are available, each with a signed reply token.

use std::time::Duration;

use time::OffsetDateTime;

use crate::{
    app::App,
    auth::{
        Principal,
        reply::{ReplyClaims, ReplyToken},
    },
    domain::{consumer::ConsumerRecord, event::EventRecord},
    error::{Error, Result},
    store::{AckOp, AckSubject, Delivery},
};

/// Largest `batch_size`.
pub const MAX_BATCH_SIZE: u32 = 1000;
/// Longest `max_wait`.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// An event as handed to a consumer's owner.
#[derive(Clone, Debug)]
pub struct DeliveredEvent {
    pub record: EventRecord,
    pub sequence: u64,
    pub delivery_count: u64,
    pub reply: ReplyToken,
}

impl App {
    /// Fetches a batch for the consumer `id` (see the proto for the contract).
    pub async fn fetch_events(
        &self,
        who: &Principal,
        id: &str,
        batch_size: u32,
        max_wait: Duration,
    ) -> Result<Vec<DeliveredEvent>> {
        if !(1..=MAX_BATCH_SIZE).contains(&batch_size) {
            return Err(Error::invalid(
                "batch_size",
                format!("is {batch_size}; it must be between 1 and {MAX_BATCH_SIZE}"),
            ));
        }
        if max_wait > MAX_WAIT {
            return Err(Error::invalid("max_wait", format!("is {max_wait:?}; the limit is {MAX_WAIT:?}")));
        }
        let record = self.owned_consumer(who, id).await?;
        self.check_consumer_access(who, &record).await?;
        // Half the gRPC message limit for event data leaves room for tokens and framing.
        let max_bytes = self.settings.grpc.max_message_bytes / 2;
        let Some(deliveries) = self.events.fetch(id, batch_size as usize, max_bytes, max_wait).await? else {
            return Err(self.forget_consumer(id).await);
        };
        let events = self.deliver(&record, deliveries).await;
        self.metrics.events_fetched.inc_by(events.len() as u64);
        Ok(events)
    }

    /// Decodes deliveries and signs their reply tokens. Undecodable messages
    /// (not written by Herald) are terminated so they cannot block the consumer.
    pub(crate) async fn deliver(&self, record: &ConsumerRecord, deliveries: Vec<Delivery>) -> Vec<DeliveredEvent> {
        let mut out = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            match self.delivered_event(record, &delivery) {
                Some(event) => out.push(event),
                None => self.terminate(&delivery).await,
            }
        }
        out
    }

    pub(crate) fn delivered_event(&self, record: &ConsumerRecord, delivery: &Delivery) -> Option<DeliveredEvent> {
        let event: EventRecord = serde_json::from_slice(&delivery.payload).ok()?;
        let expires_at = (OffsetDateTime::now_utc() + self.settings.consumers.reply_ttl).unix_timestamp();
        let claims = ReplyClaims { owner: record.owner.clone(), expires_at, ack_subject: delivery.ack_subject.clone() };
        Some(DeliveredEvent {
            record: event,
            sequence: delivery.stream_sequence,
            delivery_count: delivery.delivered,
            reply: self.reply_keys.sign(&claims),
        })
    }

    async fn terminate(&self, delivery: &Delivery) {
        tracing::warn!(sequence = delivery.stream_sequence, "terminating an undecodable event");
        if let Some(ack) = AckSubject::parse(&delivery.ack_subject)
            && let Err(err) = self.events.acknowledge(&ack, AckOp::Term).await
        {
            tracing::warn!(error = %err, "failed to terminate an undecodable event");
        }
    }
}
