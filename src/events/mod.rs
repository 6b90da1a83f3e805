//! Emitting events: producer events (`EmitEvent(s)`) and the events Herald
//! emits by itself when resources and accounts change.
//!
//! Every event is validated and authorized before any is published, and an
//! emit reports success only after JetStream acknowledged every event.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::{
    app::App,
    auth::Principal,
    domain::{
        event::{EventRecord, EventResource, EventVariant, check_custom_type},
        ids,
        permission::PermissionLevel,
        resource::Resource,
        subject,
    },
    error::{Error, Result},
    store::{OutgoingEvent, Stored},
};

/// Longest accepted idempotency key.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// The type of a producer event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Variant(EventVariant),
    /// A dotted custom type such as `job.completed`.
    Custom(String),
}

/// One event a producer asks to emit.
#[derive(Clone, Debug, Default)]
pub struct EmitRequest {
    pub resource_id: String,
    pub kind: Option<EventKind>,
    /// JSON text; empty for no payload.
    pub payload_json: String,
    /// Empty for none.
    pub idempotency_key: String,
}

impl App {
    /// Validates, authorizes (WRITE on each resource) and publishes producer
    /// events. `batch` only changes how fields are named in errors
    /// (`events[2].payload_json` rather than `payload_json`).
    pub async fn emit(&self, who: &Principal, requests: Vec<EmitRequest>, batch: bool) -> Result<Vec<Stored>> {
        let started = std::time::Instant::now();
        let max = self.settings.events.max_batch;
        if requests.is_empty() {
            return Err(Error::invalid("events", "must hold at least one event"));
        }
        if requests.len() > max {
            return Err(Error::invalid("events", format!("holds {} events; the limit is {max}", requests.len())));
        }
        let mut allowed: HashMap<String, std::sync::Arc<Resource>> = HashMap::new();
        let mut outgoing = Vec::with_capacity(requests.len());
        let mut types = Vec::with_capacity(requests.len());
        for (i, request) in requests.into_iter().enumerate() {
            let field = |name: &str| if batch { format!("events[{i}].{name}") } else { name.to_owned() };
            ids::check_id(&field("resource_id"), &request.resource_id)?;
            let event_type = match &request.kind {
                None => return Err(Error::invalid(field("kind"), "set either variant or custom_type")),
                Some(EventKind::Variant(v)) => v.as_str().to_owned(),
                Some(EventKind::Custom(name)) => {
                    check_custom_type(&field("custom_type"), name)?;
                    name.clone()
                }
            };
            let payload = self.check_payload(&field("payload_json"), &request.payload_json)?;
            let dedup_id = self.check_idempotency_key(&field("idempotency_key"), &request, who)?;
            let resource = match allowed.get(&request.resource_id) {
                Some(resource) => resource.clone(),
                None => {
                    let resource = self
                        .resources
                        .get(&request.resource_id)
                        .await?
                        .ok_or_else(|| Error::not_found("resource", &request.resource_id))?;
                    self.require(who, &resource, PermissionLevel::Write).await?;
                    allowed.insert(request.resource_id.clone(), resource.clone());
                    resource
                }
            };
            let mut event = resource_event(&resource, &event_type, &who.user_id, payload)?;
            event.dedup_id = dedup_id;
            outgoing.push(event);
            types.push(event_type);
        }
        let stored = self.events.publish(outgoing).await?;
        self.metrics.emit_latency.observe(started.elapsed().as_secs_f64());
        types.sort();
        for t in types.chunk_by(|a, b| a == b) {
            self.metrics.events_emitted.with_label_values(&[t[0].as_str()]).inc_by(t.len() as u64);
        }
        types.dedup();
        self.note_event_types(types.iter().map(String::as_str));
        Ok(stored)
    }

    fn check_payload(&self, field: &str, payload: &str) -> Result<Option<Box<RawValue>>> {
        let max = self.settings.events.max_payload_bytes;
        if payload.len() > max {
            return Err(Error::invalid(field, format!("is {} bytes; the limit is {max}", payload.len())));
        }
        if payload.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str::<Box<RawValue>>(payload)
            .map(Some)
            .map_err(|e| Error::invalid(field, format!("is not valid JSON: {e}")))
    }

    fn check_idempotency_key(&self, field: &str, request: &EmitRequest, who: &Principal) -> Result<Option<String>> {
        let key = &request.idempotency_key;
        if key.is_empty() {
            return Ok(None);
        }
        if key.len() > MAX_IDEMPOTENCY_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::invalid(
                field,
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters without spaces"),
            ));
        }
        // Scoped to caller and resource so different producers never collide.
        Ok(Some(format!("{}:{}:{key}", who.user_id, request.resource_id)))
    }

    /// Publishes events Herald emits by itself (resource and account changes).
    pub(crate) async fn publish_system(&self, events: Vec<OutgoingEvent>) -> Result<Vec<Stored>> {
        self.events.publish(events).await
    }
}

/// Builds the stored form of an event about `resource`.
pub(crate) fn resource_event(
    resource: &Resource,
    event_type: &str,
    actor: &str,
    payload: Option<Box<RawValue>>,
) -> Result<OutgoingEvent> {
    let record = EventRecord {
        id: ids::new_id(),
        event_type: event_type.to_owned(),
        time: OffsetDateTime::now_utc(),
        resource: Some(EventResource {
            id: resource.id.clone(),
            variant: resource.variant,
            path: resource.path.clone(),
        }),
        user_id: None,
        actor: actor.to_owned(),
        payload,
    };
    outgoing(subject::resource_subject(&resource.path, event_type), record)
}

/// Builds the stored form of an account event about `user_id`.
pub(crate) fn user_event(
    user_id: &str,
    event_type: &str,
    actor: &str,
    payload: serde_json::Value,
) -> Result<OutgoingEvent> {
    let payload =
        serde_json::value::to_raw_value(&payload).map_err(|e| Error::internal("failed to encode payload", e))?;
    let record = EventRecord {
        id: ids::new_id(),
        event_type: event_type.to_owned(),
        time: OffsetDateTime::now_utc(),
        resource: None,
        user_id: Some(user_id.to_owned()),
        actor: actor.to_owned(),
        payload: Some(payload),
    };
    outgoing(subject::user_subject(user_id, event_type), record)
}

fn outgoing(subject: String, record: EventRecord) -> Result<OutgoingEvent> {
    let body = serde_json::to_vec(&record).map_err(|e| Error::internal("failed to encode event", e))?;
    Ok(OutgoingEvent { event_id: record.id, subject, body: Bytes::from(body), dedup_id: None })
}
