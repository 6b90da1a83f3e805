//! Acknowledging events by reply token: each reply is checked on its own
//! (signature, expiry, owner, consumer, not yet acknowledged) and the valid
//! ones are acknowledged even when others fail. Herald only ever sends to an
//! ack subject that was signed by it, parses as an ack of its events stream,
//! and names a consumer the caller owns.

use std::collections::HashMap;

use futures::future::join_all;
use time::OffsetDateTime;

use crate::{
    app::App,
    auth::{
        Principal,
        reply::{Rejection, ReplyToken},
    },
    error::{Error, Result},
    store::{AckOp, AckOutcome, AckSubject},
};

/// Most replies in one call.
pub const MAX_REPLIES: usize = 1000;

/// The outcome for one reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyStatus {
    Ok,
    Invalid,
    Expired,
    NotYours,
    AlreadyGone,
}

/// Status and explanation for one reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyOutcome {
    pub status: ReplyStatus,
    pub message: String,
}

impl ReplyOutcome {
    fn new(status: ReplyStatus, message: impl Into<String>) -> Self {
        ReplyOutcome { status, message: message.into() }
    }
}

impl App {
    /// Acknowledges (or negatively acknowledges) events by reply token.
    /// `only_consumer`, when given, refuses replies of other consumers.
    pub async fn acknowledge(
        &self,
        who: &Principal,
        only_consumer: Option<&str>,
        replies: Vec<ReplyToken>,
        op: AckOp,
    ) -> Result<Vec<ReplyOutcome>> {
        if replies.is_empty() {
            return Err(Error::invalid("replies", "must hold at least one reply"));
        }
        if replies.len() > MAX_REPLIES {
            return Err(Error::invalid("replies", format!("holds {}; the limit is {MAX_REPLIES}", replies.len())));
        }
        if let AckOp::Nak(Some(delay)) = op {
            let max = self.settings.consumers.max_nack_delay;
            if delay > max {
                return Err(Error::invalid("delay", format!("is {delay:?}; the limit is {max:?}")));
            }
        }
        if let Some(id) = only_consumer {
            crate::domain::ids::check_id("stream_consumer", id)?;
        }
        self.nats.ensure_connected()?;
        let now = OffsetDateTime::now_utc();
        let check = async { replies.iter().map(|token| self.check_reply(who, only_consumer, token, now)).collect() };
        // With the consumer named, its state is read while the tokens are checked.
        let (checked, floors): (Vec<Result<AckSubject, ReplyOutcome>>, HashMap<String, u64>) = match only_consumer {
            Some(id) => {
                let (state, checked) = tokio::join!(self.events.consumer_state(id), check);
                let floors = state?.map(|s| (id.to_owned(), s.ack_floor)).into_iter().collect();
                (checked, floors)
            }
            None => {
                let checked = check.await;
                let floors = self.ack_floors(&checked).await?;
                (checked, floors)
            }
        };
        let sends = checked.into_iter().map(|check| async {
            let ack = match check {
                Ok(ack) => ack,
                Err(outcome) => return Ok(outcome),
            };
            match floors.get(ack.consumer()) {
                None => return Ok(ReplyOutcome::new(ReplyStatus::AlreadyGone, "the consumer no longer exists")),
                Some(floor) if ack.stream_sequence() <= *floor => {
                    return Ok(ReplyOutcome::new(ReplyStatus::AlreadyGone, "the event was acknowledged already"));
                }
                Some(_) => {}
            }
            Ok(match self.events.acknowledge(&ack, op).await? {
                AckOutcome::Confirmed => ReplyOutcome::new(ReplyStatus::Ok, ""),
                AckOutcome::ConsumerGone => {
                    ReplyOutcome::new(ReplyStatus::AlreadyGone, "the consumer no longer exists")
                }
            })
        });
        // A NATS failure fails the call: acknowledgements are idempotent, so
        // the caller simply retries the batch.
        let outcomes: Vec<ReplyOutcome> = join_all(sends).await.into_iter().collect::<Result<_>>()?;
        for outcome in &outcomes {
            match (outcome.status, op) {
                (ReplyStatus::Ok, AckOp::Ack) => self.metrics.events_acked.inc(),
                (ReplyStatus::Ok, _) => self.metrics.events_nacked.inc(),
                (status, _) => {
                    let reason = format!("{status:?}").to_lowercase();
                    self.metrics.reply_rejections.with_label_values(&[reason.as_str()]).inc();
                }
            }
        }
        Ok(outcomes)
    }

    /// Signature, expiry, owner and consumer checks of one reply.
    fn check_reply(
        &self,
        who: &Principal,
        only_consumer: Option<&str>,
        token: &ReplyToken,
        now: OffsetDateTime,
    ) -> Result<AckSubject, ReplyOutcome> {
        let claims = self.reply_keys.verify(token, now).map_err(|rejection| match rejection {
            Rejection::Invalid(why) => ReplyOutcome::new(ReplyStatus::Invalid, why),
            Rejection::Expired => ReplyOutcome::new(ReplyStatus::Expired, "the reply token has expired"),
        })?;
        if claims.owner != who.user_id && !who.is_admin {
            return Err(ReplyOutcome::new(ReplyStatus::NotYours, "the reply was issued to another user"));
        }
        let ack = AckSubject::parse(&claims.ack_subject)
            .ok_or_else(|| ReplyOutcome::new(ReplyStatus::Invalid, "not an acknowledgement of a Herald consumer"))?;
        if only_consumer.is_some_and(|id| id != ack.consumer()) {
            return Err(ReplyOutcome::new(ReplyStatus::NotYours, "the reply belongs to another consumer"));
        }
        match self.consumers.cached(ack.consumer()) {
            Some(record) if record.owner != claims.owner => {
                Err(ReplyOutcome::new(ReplyStatus::NotYours, "the consumer belongs to another user"))
            }
            _ => Ok(ack),
        }
    }

    /// The ack floor of every consumer named by a valid reply (absent: gone).
    async fn ack_floors(&self, checked: &[Result<AckSubject, ReplyOutcome>]) -> Result<HashMap<String, u64>> {
        let mut floors = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for ack in checked.iter().flatten() {
            if seen.insert(ack.consumer().to_owned())
                && let Some(state) = self.events.consumer_state(ack.consumer()).await?
            {
                floors.insert(ack.consumer().to_owned(), state.ack_floor);
            }
        }
        Ok(floors)
    }
}
