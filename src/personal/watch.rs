//! `WatchPersonalNotifications`: one task per watcher follows the caller's
//! subject and forwards new notifications, with keep-alives while idle. It
//! ends when the client goes away, and with UNAVAILABLE on shutdown or when
//! the watch is interrupted.

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    app::App,
    auth::Principal,
    domain::personal::{Notice, personal_subject},
    error::{Error, Result},
};

/// Buffered notifications per watcher.
const WATCH_BUFFER: usize = 16;

/// What a watch sends.
#[derive(Clone, Debug)]
pub enum PersonalItem {
    Notice(Box<Notice>),
    KeepAlive(OffsetDateTime),
}

impl App {
    /// Starts watching the caller's new notifications.
    pub async fn watch_notices(
        self: &Arc<Self>,
        who: &Principal,
        shutdown: CancellationToken,
    ) -> Result<mpsc::Receiver<Result<PersonalItem>>> {
        let mut watch = self.personal.watch(&personal_subject(&who.user_id)).await?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let keepalive = self.settings.consumers.keepalive_interval;
        tokio::spawn(async move {
            let mut last_sent = Instant::now();
            loop {
                let item = tokio::select! {
                    _ = tx.closed() => return,
                    _ = shutdown.cancelled() => {
                        let _ = tx.send(Err(Error::Unavailable("the server is shutting down; reconnect".into()))).await;
                        return;
                    }
                    _ = tokio::time::sleep_until(last_sent + keepalive) => Ok(PersonalItem::KeepAlive(OffsetDateTime::now_utc())),
                    next = watch.next() => match next {
                        None => Err(Error::Unavailable("the watch ended; reconnect".into())),
                        Some(Err(err)) => Err(err),
                        Some(Ok(payload)) => match serde_json::from_slice::<Notice>(&payload) {
                            Ok(notice) => Ok(PersonalItem::Notice(Box::new(notice))),
                            Err(err) => {
                                tracing::warn!(error = %err, "skipping an undecodable notification");
                                continue;
                            }
                        },
                    },
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
                last_sent = Instant::now();
            }
        });
        Ok(rx)
    }
}
