//! `herald.v1.EventService`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{convert, pb};
use crate::{
    app::App,
    error::Result,
    events::{EmitRequest, EventKind},
    store::Stored,
};

/// Implements `herald.v1.EventService`.
pub struct EventApi {
    app: Arc<App>,
}

impl EventApi {
    pub fn new(app: Arc<App>) -> Self {
        EventApi { app }
    }
}

type Reply<T> = Result<Response<T>, Status>;

fn emit_request(field_prefix: &str, r: pb::EmitEventRequest) -> Result<EmitRequest> {
    let kind = match r.kind {
        None => None,
        Some(pb::emit_event_request::Kind::Variant(raw)) => {
            convert::to_event_variant(&format!("{field_prefix}variant"), raw)?.map(EventKind::Variant)
        }
        Some(pb::emit_event_request::Kind::CustomType(name)) => Some(EventKind::Custom(name)),
    };
    Ok(EmitRequest {
        resource_id: r.resource_id,
        kind,
        payload_json: r.payload_json,
        idempotency_key: r.idempotency_key,
    })
}

fn emitted(s: Stored) -> pb::EmittedEvent {
    pb::EmittedEvent { event_id: s.event_id, sequence: s.sequence, duplicate: s.duplicate }
}

#[tonic::async_trait]
impl pb::event_service_server::EventService for EventApi {
    async fn emit_event(&self, request: Request<pb::EmitEventRequest>) -> Reply<pb::EmitEventResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let emit = emit_request("", request.into_inner())?;
        let stored = self.app.emit(&who, vec![emit], false).await?;
        Ok(Response::new(pb::EmitEventResponse { event: stored.into_iter().next().map(emitted) }))
    }

    async fn emit_events(&self, request: Request<pb::EmitEventsRequest>) -> Reply<pb::EmitEventsResponse> {
        let who = self.app.authenticate(request.metadata()).await?;
        let requests = request
            .into_inner()
            .events
            .into_iter()
            .enumerate()
            .map(|(i, r)| emit_request(&format!("events[{i}]."), r))
            .collect::<Result<Vec<_>>>()?;
        let stored = self.app.emit(&who, requests, true).await?;
        Ok(Response::new(pb::EmitEventsResponse { events: stored.into_iter().map(emitted).collect() }))
    }
}
