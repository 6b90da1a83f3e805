//! Coalesces the delivery engine's fire-and-forget acknowledgements into
//! bursts, so the NATS connection writes many of them at once instead of
//! one write (and one wake-up of the server) per delivery.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc, oneshot};

use super::Nats;

/// Most acknowledgements sent in one burst.
const MAX_BURST: usize = 1024;
/// Acknowledgements queued before settling waits (back-pressure).
const QUEUE: usize = 8192;

enum Item {
    Publish { subject: String, payload: Bytes },
    Flush(oneshot::Sender<()>),
}

/// The queue of acknowledgements to send.
#[derive(Clone)]
pub struct Settler {
    queue: mpsc::Sender<Item>,
    flushes: Arc<Flushes>,
}

/// Flushes asked for and not yet done: while there are any, bursts do not
/// linger (a shutdown waits for the flush, not for the linger).
#[derive(Default)]
struct Flushes {
    pending: AtomicUsize,
    asked: Notify,
}

impl Settler {
    /// Starts the task that sends queued acknowledgements on `nats`; the
    /// first of a burst waits `linger` for others (`delivery.ack_linger`).
    pub fn start(nats: Nats, linger: Duration) -> Self {
        let (queue, items) = mpsc::channel(QUEUE);
        let flushes = Arc::new(Flushes::default());
        tokio::spawn(run(nats, linger, flushes.clone(), items));
        Settler { queue, flushes }
    }

    /// Queues `payload` for `subject`; it is sent within about the linger.
    pub async fn send(&self, subject: String, payload: Bytes) {
        let _ = self.queue.send(Item::Publish { subject, payload }).await;
    }

    /// Returns once everything queued before has been handed to the NATS
    /// connection and flushed, without waiting for the linger.
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        self.flushes.pending.fetch_add(1, Ordering::SeqCst);
        self.flushes.asked.notify_one();
        if self.queue.send(Item::Flush(done)).await.is_ok() {
            let _ = flushed.await;
        } else {
            self.flushes.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

async fn run(nats: Nats, linger: Duration, flushes: Arc<Flushes>, mut items: mpsc::Receiver<Item>) {
    let mut burst = Vec::with_capacity(MAX_BURST);
    loop {
        if items.recv_many(&mut burst, MAX_BURST).await == 0 {
            return;
        }
        if flushes.pending.load(Ordering::SeqCst) == 0 {
            tokio::select! {
                _ = tokio::time::sleep(linger) => {}
                _ = flushes.asked.notified() => {}
            }
        }
        while burst.len() < MAX_BURST
            && let Ok(item) = items.try_recv()
        {
            burst.push(item);
        }
        for item in burst.drain(..) {
            match item {
                Item::Publish { subject, payload } => {
                    if let Err(err) = nats.client().publish(subject, payload).await {
                        tracing::warn!(error = %err, "failed to acknowledge an event; it will be redelivered");
                    }
                }
                Item::Flush(done) => {
                    let _ = nats.client().flush().await;
                    flushes.pending.fetch_sub(1, Ordering::SeqCst);
                    let _ = done.send(());
                }
            }
        }
    }
}
