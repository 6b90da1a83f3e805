//! `herald.v1.EventNotificationService`.

use std::{pin::Pin, sync::Arc};

use futures::{Stream, StreamExt as _};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::{convert, pb};
use crate::{
    app::App,
    auth::reply::ReplyToken,
    consumers::{DeliveredEvent, NewConsumer, ReplyOutcome, ReplyStatus, StreamItem},
    domain::consumer::{ConsumerRecord, Start},
    error::Result,
    store::{AckOp, ConsumerState},
};

/// Implements `herald.v1.EventNotificationService`.
pub struct NotificationApi {
    app: Arc<App>,
    shutdown: CancellationToken,
}

impl NotificationApi {
    pub fn new(app: Arc<App>, shutdown: CancellationToken) -> Self {
        NotificationApi { app, shutdown }
    }
}

type Reply<T> = Result<Response<T>, Status>;
type EventStream = Pin<Box<dyn Stream<Item = Result<pb::GetEventMessageStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::event_notification_service_server::EventNotificationService for NotificationApi {
    async fn create_stream_consumer(
        &self,
        request: Request<pb::CreateStreamConsumerRequest>,
    ) -> Reply<pb::CreateStreamConsumerResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let new = new_consumer(request.into_inner())?;
        let record = self.app.create_consumer(&who, new).await?;
        Ok(Response::new(pb::CreateStreamConsumerResponse {
            stream_consumer: record.id.clone(),
            consumer: Some(stream_consumer(&record, None)),
        }))
    }

    async fn get_stream_consumer(
        &self,
        request: Request<pb::GetStreamConsumerRequest>,
    ) -> Reply<pb::GetStreamConsumerResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let (record, state) = self.app.describe_consumer(&who, &request.get_ref().stream_consumer).await?;
        Ok(Response::new(pb::GetStreamConsumerResponse { consumer: Some(stream_consumer(&record, Some(&state))) }))
    }

    async fn list_stream_consumers(
        &self,
        request: Request<pb::ListStreamConsumersRequest>,
    ) -> Reply<pb::ListStreamConsumersResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let consumers = self.app.list_consumers(&who).iter().map(|r| stream_consumer(r, None)).collect();
        Ok(Response::new(pb::ListStreamConsumersResponse { consumers }))
    }

    async fn delete_stream_consumer(
        &self,
        request: Request<pb::DeleteStreamConsumerRequest>,
    ) -> Reply<pb::DeleteStreamConsumerResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        self.app.delete_consumer(&who, &request.get_ref().stream_consumer).await?;
        Ok(Response::new(pb::DeleteStreamConsumerResponse {}))
    }

    async fn get_event_message_batch(
        &self,
        request: Request<pb::GetEventMessageBatchRequest>,
    ) -> Reply<pb::GetEventMessageBatchResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.get_ref();
        let max_wait = r.max_wait.as_ref().map(|d| convert::duration("max_wait", d)).transpose()?.unwrap_or_default();
        let events = self.app.fetch_events(&who, &r.stream_consumer, r.batch_size, max_wait).await?;
        Ok(Response::new(pb::GetEventMessageBatchResponse { messages: events.iter().map(event_message).collect() }))
    }

    type GetEventMessageStreamStream = EventStream;

    async fn get_event_message_stream(
        &self,
        request: Request<pb::GetEventMessageStreamRequest>,
    ) -> Reply<Self::GetEventMessageStreamStream> {
        let who = self.app.authenticate(request.metadata()).await?;
        let rx = self.app.open_event_stream(who, &request.get_ref().stream_consumer, self.shutdown.clone()).await?;
        let stream = ReceiverStream::new(rx).map(|item| {
            let message = match item.map_err(Status::from)? {
                StreamItem::Event(event, guard) => {
                    guard.disarm();
                    pb::get_event_message_stream_response::Message::Event(event_message(&event))
                }
                StreamItem::KeepAlive(at) => pb::get_event_message_stream_response::Message::KeepAlive(pb::KeepAlive {
                    time: Some(convert::timestamp(at)),
                }),
            };
            Ok(pb::GetEventMessageStreamResponse { message: Some(message) })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn acknowledge_message_batch(
        &self,
        request: Request<pb::AcknowledgeMessageBatchRequest>,
    ) -> Reply<pb::AcknowledgeMessageBatchResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.into_inner();
        let only = (!r.stream_consumer.is_empty()).then_some(r.stream_consumer.as_str());
        let outcomes = self.app.acknowledge(&who, only, tokens(r.replies), AckOp::Ack).await?;
        Ok(Response::new(pb::AcknowledgeMessageBatchResponse { results: results(outcomes) }))
    }

    async fn negative_acknowledge_message_batch(
        &self,
        request: Request<pb::NegativeAcknowledgeMessageBatchRequest>,
    ) -> Reply<pb::NegativeAcknowledgeMessageBatchResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let r = request.into_inner();
        let delay = r.delay.as_ref().map(|d| convert::duration("delay", d)).transpose()?;
        let only = (!r.stream_consumer.is_empty()).then_some(r.stream_consumer.as_str());
        let outcomes = self.app.acknowledge(&who, only, tokens(r.replies), AckOp::Nak(delay)).await?;
        Ok(Response::new(pb::NegativeAcknowledgeMessageBatchResponse { results: results(outcomes) }))
    }
}

fn new_consumer(r: pb::CreateStreamConsumerRequest) -> Result<NewConsumer> {
    use pb::start_position::Start as S;
    let start = match r.start.and_then(|s| s.start) {
        None | Some(S::OnlyNew(_)) => Start::New,
        Some(S::All(_)) => Start::All,
        Some(S::FromSequence(sequence)) => Start::FromSequence { sequence },
        Some(S::FromTime(t)) => Start::FromTime { time: convert::from_timestamp("start.from_time", &t)? },
    };
    Ok(NewConsumer {
        target: convert::target_request(r.target),
        start,
        variants: convert::variants(&r.variants)?,
        custom_types: r.custom_types,
    })
}

fn stream_consumer(record: &ConsumerRecord, state: Option<&ConsumerState>) -> pb::StreamConsumer {
    use pb::start_position::Start as S;
    let start = match record.start {
        Start::All => S::All(pb::Empty {}),
        Start::New => S::OnlyNew(pb::Empty {}),
        Start::FromSequence { sequence } => S::FromSequence(sequence),
        Start::FromTime { time } => S::FromTime(convert::timestamp(time)),
    };
    pb::StreamConsumer {
        id: record.id.clone(),
        owner: record.owner.clone(),
        target: Some(convert::target(&record.target)),
        start: Some(pb::StartPosition { start: Some(start) }),
        variants: convert::variants_pb(&record.variants),
        custom_types: record.custom_types.clone(),
        created_at: Some(convert::timestamp(record.created_at)),
        last_active_at: state.and_then(|s| s.last_active).map(convert::timestamp),
        pending: state.map_or(0, |s| s.pending),
        in_flight: state.map_or(0, |s| s.in_flight),
    }
}

fn event_message(e: &DeliveredEvent) -> pb::EventMessage {
    pb::EventMessage {
        event: Some(convert::event(&e.record, e.sequence)),
        delivery_count: e.delivery_count,
        reply: Some(pb::Reply { reply: e.reply.reply.clone(), salt: e.reply.salt.clone(), hmac: e.reply.hmac.clone() }),
    }
}

fn tokens(replies: Vec<pb::Reply>) -> Vec<ReplyToken> {
    replies.into_iter().map(|r| ReplyToken { reply: r.reply, salt: r.salt, hmac: r.hmac }).collect()
}

fn results(outcomes: Vec<ReplyOutcome>) -> Vec<pb::ReplyResult> {
    outcomes
        .into_iter()
        .enumerate()
        .map(|(index, o)| pb::ReplyResult {
            index: index as u32,
            status: match o.status {
                ReplyStatus::Ok => pb::ReplyStatus::Ok,
                ReplyStatus::Invalid => pb::ReplyStatus::Invalid,
                ReplyStatus::Expired => pb::ReplyStatus::Expired,
                ReplyStatus::NotYours => pb::ReplyStatus::NotYours,
                ReplyStatus::AlreadyGone => pb::ReplyStatus::AlreadyGone,
            } as i32,
            message: o.message,
        })
        .collect()
}
