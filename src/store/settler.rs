//! Coalesces the delivery engine's fire-and-forget acknowledgements into
//! bursts, so the NATS connection writes many of them at once instead of
//! one write (and one wake-up of the server) per delivery.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::Nats;

/// How long the first acknowledgement of a burst waits for others.
pub const SETTLE_LINGER: Duration = Duration::from_millis(1);
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
}

impl Settler {
    /// Starts the task that sends queued acknowledgements on `nats`.
    pub fn start(nats: Nats) -> Self {
        let (queue, items) = mpsc::channel(QUEUE);
        tokio::spawn(run(nats, items));
        Settler { queue }
    }

    /// Queues `payload` for `subject`; it is sent within about `SETTLE_LINGER`.
    pub async fn send(&self, subject: String, payload: Bytes) {
        let _ = self.queue.send(Item::Publish { subject, payload }).await;
    }

    /// Returns once everything queued before has been handed to the NATS connection and flushed.
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.queue.send(Item::Flush(done)).await.is_ok() {
            let _ = flushed.await;
        }
    }
}

async fn run(nats: Nats, mut items: mpsc::Receiver<Item>) {
    let mut burst = Vec::with_capacity(MAX_BURST);
    loop {
        if items.recv_many(&mut burst, MAX_BURST).await == 0 {
            return;
        }
        tokio::time::sleep(SETTLE_LINGER).await;
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
                    let _ = done.send(());
                }
            }
        }
    }
}
