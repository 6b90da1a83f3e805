//! Streaming delivery: one task per open stream pulls events in bounded
//! batches and forwards them through a bounded channel, so a slow client
//! slows the pulling and memory stays bounded. Idle streams get keep-alives;
//! revoked access, a vanished consumer, a long NATS outage or server
//! shutdown end the stream with a status. When the client goes away, the
//! task releases whatever it still holds and ends.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use time::OffsetDateTime;
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use super::fetch::DeliveredEvent;
use crate::{
    app::App,
    auth::Principal,
    domain::consumer::ConsumerRecord,
    error::{Error, Result},
    store::{Delivery, Pull, ReleaseGuard},
};

/// Longest a single pull request stays open, so access is re-checked at least this often.
const MAX_PULL_EXPIRY: Duration = Duration::from_secs(5);
/// Pause between pull attempts while NATS is unreachable.
const OUTAGE_RETRY: Duration = Duration::from_millis(250);

/// What a stream sends. An event carries a guard that releases it for
/// redelivery if the item is dropped before reaching the client.
#[derive(Debug)]
pub enum StreamItem {
    Event(Box<DeliveredEvent>, ReleaseGuard),
    KeepAlive(OffsetDateTime),
}

type Sender = mpsc::Sender<Result<StreamItem>>;

impl App {
    /// Opens an event stream for consumer `id`; items arrive on the returned
    /// channel until it ends (with an error item when it ends abnormally).
    pub async fn open_event_stream(
        self: &Arc<Self>,
        who: Principal,
        id: &str,
        shutdown: CancellationToken,
    ) -> Result<mpsc::Receiver<Result<StreamItem>>> {
        let record = self.owned_consumer(&who, id).await?;
        self.check_consumer_access(&who, &record).await?;
        let (tx, rx) = mpsc::channel(self.settings.consumers.stream_buffer);
        let app = self.clone();
        app.stats.open_streams.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let ended = StreamTask { app: app.clone(), who, record, tx, shutdown }.run().await;
            app.stats.open_streams.fetch_sub(1, Ordering::SeqCst);
            tracing::debug!(reason = ended, "event stream ended");
        });
        Ok(rx)
    }
}

struct StreamTask {
    app: Arc<App>,
    who: Principal,
    record: Arc<ConsumerRecord>,
    tx: Sender,
    shutdown: CancellationToken,
}

impl StreamTask {
    /// Runs until the stream ends; returns why.
    async fn run(self) -> &'static str {
        let keepalive = self.app.settings.consumers.keepalive_interval;
        let expiry = keepalive.min(MAX_PULL_EXPIRY);
        let mut last_sent = Instant::now();
        let mut outage_since: Option<Instant> = None;
        loop {
            if self.tx.is_closed() {
                return "client went away";
            }
            if self.shutdown.is_cancelled() {
                return self.fail(Error::Unavailable("the server is shutting down; reconnect".into())).await;
            }
            if let Err(err) = self.app.check_consumer_access(&self.who, &self.record).await {
                return self.fail(err).await;
            }
            if last_sent.elapsed() >= keepalive {
                if !self.send(StreamItem::KeepAlive(OffsetDateTime::now_utc())).await {
                    return "client went away";
                }
                last_sent = Instant::now();
            }
            let room = self.tx.capacity().max(1);
            match self.app.events.pull(&self.record.id, room, expiry).await {
                Ok(Some(pull)) => {
                    outage_since = None;
                    if let Some(reason) = self.forward(pull, &mut last_sent, keepalive).await {
                        return reason;
                    }
                }
                Ok(None) => return self.fail(self.app.forget_consumer(&self.record.id).await).await,
                Err(err) => {
                    let since = *outage_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.app.settings.consumers.stream_outage_grace {
                        return self.fail(err).await;
                    }
                    tokio::select! {
                        _ = self.tx.closed() => return "client went away",
                        _ = self.shutdown.cancelled() => {}
                        _ = tokio::time::sleep(OUTAGE_RETRY) => {}
                    }
                }
            }
        }
    }

    /// Forwards one pull's deliveries; `Some(reason)` ends the stream.
    async fn forward(&self, mut pull: Pull, last_sent: &mut Instant, keepalive: Duration) -> Option<&'static str> {
        loop {
            tokio::select! {
                biased;
                _ = self.tx.closed() => {
                    self.release_rest(pull).await;
                    return Some("client went away");
                }
                _ = self.shutdown.cancelled() => {
                    self.release_rest(pull).await;
                    return None; // the main loop reports the shutdown
                }
                next = pull.next() => match next {
                    None => return None,
                    Some(Err(err)) => {
                        tracing::debug!(error = %err, "pull ended with an error");
                        return None;
                    }
                    Some(Ok(delivery)) => {
                        let guard = ReleaseGuard::new(&self.app.events, &delivery);
                        let Some(event) = self.app.deliver(&self.record, vec![delivery]).await.pop() else {
                            guard.disarm(); // terminated as undecodable
                            continue;
                        };
                        // A failed send drops the item, and its guard releases the event.
                        if !self.send(StreamItem::Event(Box::new(event), guard)).await {
                            self.release_rest(pull).await;
                            return Some("client went away");
                        }
                        self.app.metrics.events_streamed.inc();
                        *last_sent = Instant::now();
                    }
                },
                _ = tokio::time::sleep_until(*last_sent + keepalive) => {
                    if !self.send(StreamItem::KeepAlive(OffsetDateTime::now_utc())).await {
                        self.release_rest(pull).await;
                        return Some("client went away");
                    }
                    *last_sent = Instant::now();
                }
            }
        }
    }

    /// Drains a pull whose events will never be sent and releases them for
    /// immediate redelivery; bounded by the pull's expiry.
    async fn release_rest(&self, mut pull: Pull) {
        let mut held: Vec<Delivery> = Vec::new();
        while let Some(Ok(delivery)) = pull.next().await {
            held.push(delivery);
        }
        self.app.events.release(&held).await;
    }

    async fn send(&self, item: StreamItem) -> bool {
        self.tx.send(Ok(item)).await.is_ok()
    }

    async fn fail(&self, err: Error) -> &'static str {
        let _ = self.tx.send(Err(err)).await;
        "ended with an error"
    }
}
