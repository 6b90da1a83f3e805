//! Reading a bounded range of a stream with a short-lived consumer (personal
//! inboxes, the attempt log, replays).

use std::time::Duration;

use async_nats::jetstream::{
    consumer::{AckPolicy, DeliverPolicy, pull},
    stream,
};
use bytes::Bytes;
use futures::StreamExt as _;

use super::Nats;
use crate::error::Result;

/// A message read back from a stream.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    pub sequence: u64,
    pub subject: String,
    pub payload: Bytes,
}

/// Reads, oldest first, the messages on `filters` from `start`, at most
/// `cap` of them and none past stream sequence `until`.
pub(super) async fn read_all(
    nats: &Nats,
    stream: &stream::Stream,
    filters: Vec<String>,
    start: DeliverPolicy,
    cap: usize,
    until: u64,
) -> Result<Vec<StoredMessage>> {
    nats.ensure_connected()?;
    let fail = |e: &dyn std::fmt::Display| nats.failure("failed to read a stream", e.to_string());
    let (filter_subject, filter_subjects) = match filters.as_slice() {
        [one] => (one.clone(), Vec::new()),
        many => (String::new(), many.to_vec()),
    };
    let mut consumer = stream
        .create_consumer(pull::Config {
            filter_subject,
            filter_subjects,
            deliver_policy: start,
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(10),
            ..Default::default()
        })
        .await
        .map_err(|e| fail(&e))?;
    let available = consumer.info().await.map_err(|e| fail(&e))?.num_pending as usize;
    let wanted = available.min(cap);
    let mut out = Vec::with_capacity(wanted);
    'read: while out.len() < wanted {
        let batch_size = (wanted - out.len()).min(1000);
        let mut batch = consumer.fetch().max_messages(batch_size).messages().await.map_err(|e| fail(&e))?;
        let before = out.len();
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| fail(&e))?;
            let info = message.info().map_err(|e| fail(&e))?;
            if info.stream_sequence > until {
                break 'read;
            }
            out.push(StoredMessage {
                sequence: info.stream_sequence,
                subject: message.subject.to_string(),
                payload: message.payload.clone(),
            });
        }
        if out.len() == before {
            break; // removed meanwhile
        }
    }
    let name = consumer.cached_info().name.clone();
    let _ = stream.delete_consumer(&name).await;
    Ok(out)
}
