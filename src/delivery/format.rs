//! Request bodies and content headers: Herald's plain event JSON, the
//! CloudEvents 1.0 HTTP binding (binary and structured modes) and Slack
//! Block Kit messages. Pure functions over the stored event.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::domain::event::{EventRecord, EventVariant};

/// Content headers and body of one request.
pub type Encoded = (Vec<(String, String)>, Bytes);

/// The CloudEvents `source` of every Herald event.
pub const CLOUDEVENTS_SOURCE: &str = "/herald";

fn header(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

/// Herald's event JSON, as stored.
pub fn plain(stored: Bytes) -> Encoded {
    (vec![header("content-type", "application/json")], stored)
}

/// The CloudEvents `type`: variants become `herald.resource.<variant>`;
/// dotted types (custom and Herald's own) stay as they are.
pub fn cloudevents_type(event: &EventRecord) -> String {
    match EventVariant::from_type(&event.event_type) {
        Some(v) => format!("herald.resource.{}", v.as_str()),
        None => event.event_type.clone(),
    }
}

/// The CloudEvents `subject`: `resources/<path ids>`, `users/<id>` or `announcements`.
pub fn cloudevents_subject(event: &EventRecord) -> String {
    match (&event.resource, &event.user_id) {
        (Some(r), _) => format!("resources/{}", r.path.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join("/")),
        (None, Some(user)) => format!("users/{user}"),
        (None, None) => "announcements".to_owned(),
    }
}

fn time(event: &EventRecord) -> String {
    event.time.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn data(event: &EventRecord) -> Value {
    event.payload.as_ref().and_then(|p| serde_json::from_str(p.get()).ok()).unwrap_or(Value::Null)
}

/// CloudEvents binary mode: attributes in `ce-*` headers, the payload as body.
pub fn cloudevents_binary(event: &EventRecord) -> Encoded {
    let headers = vec![
        header("ce-specversion", "1.0"),
        header("ce-id", event.id.clone()),
        header("ce-source", CLOUDEVENTS_SOURCE),
        header("ce-type", cloudevents_type(event)),
        header("ce-time", time(event)),
        header("ce-subject", cloudevents_subject(event)),
        header("ce-heraldactor", event.actor.clone()),
        header("content-type", "application/json"),
    ];
    let body = event.payload.as_ref().map(|p| p.get().to_owned()).unwrap_or_else(|| "null".to_owned());
    (headers, Bytes::from(body))
}

/// CloudEvents structured mode: one `application/cloudevents+json` document.
pub fn cloudevents_structured(event: &EventRecord) -> Encoded {
    let document = json!({
        "specversion": "1.0",
        "id": event.id,
        "source": CLOUDEVENTS_SOURCE,
        "type": cloudevents_type(event),
        "time": time(event),
        "subject": cloudevents_subject(event),
        "datacontenttype": "application/json",
        "heraldactor": event.actor,
        "data": data(event),
    });
    (vec![header("content-type", "application/cloudevents+json")], Bytes::from(document.to_string()))
}

/// Most payload fields shown in a Slack message.
const SLACK_FIELDS: usize = 10;

/// A Slack message (Block Kit) summarising the event: type, resource path
/// (display names where known), time and the payload's top-level fields.
/// `channel` is set for `chat.postMessage`.
pub fn slack_message(event: &EventRecord, path_names: &[String], channel: Option<&str>) -> Bytes {
    let what = if path_names.is_empty() { cloudevents_subject(event) } else { path_names.join(" / ") };
    let summary = format!("*{}* on {what}", event.event_type);
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": summary}})];
    if let Value::Object(fields) = data(event) {
        let fields: Vec<Value> = fields
            .iter()
            .take(SLACK_FIELDS)
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                json!({"type": "mrkdwn", "text": format!("*{k}*\n{}", truncate(&value, 200))})
            })
            .collect();
        if !fields.is_empty() {
            blocks.push(json!({"type": "section", "fields": fields}));
        }
    }
    let context = format!("{} · {} · by {}", time(event), event.id, event.actor);
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}));
    let mut message = json!({"text": format!("{} on {what}", event.event_type), "blocks": blocks});
    if let Some(channel) = channel {
        message["channel"] = json!(channel);
    }
    Bytes::from(message.to_string())
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        event::EventResource,
        resource::{PathEntry, ResourceVariant},
    };

    fn event(event_type: &str, payload: Option<&str>) -> EventRecord {
        EventRecord {
            id: "E1".into(),
            event_type: event_type.into(),
            time: time::macros::datetime!(2026-01-02 03:04:05 UTC),
            resource: Some(EventResource {
                id: "D".into(),
                variant: ResourceVariant::Dataset,
                path: vec![
                    PathEntry { id: "P".into(), variant: ResourceVariant::Project },
                    PathEntry { id: "D".into(), variant: ResourceVariant::Dataset },
                ],
            }),
            user_id: None,
            actor: "U".into(),
            payload: payload.map(|p| serde_json::value::RawValue::from_string(p.to_owned()).unwrap()),
        }
    }

    #[test]
    fn binary_mode_puts_attributes_in_headers_and_the_payload_in_the_body() {
        let (headers, body) = cloudevents_binary(&event("job.completed", Some(r#"{"status":"FAILED"}"#)));
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert_eq!(get("ce-id"), "E1");
        assert_eq!(get("ce-type"), "job.completed");
        assert_eq!(get("ce-subject"), "resources/P/D");
        assert_eq!(get("ce-time"), "2026-01-02T03:04:05Z");
        assert_eq!(body, Bytes::from(r#"{"status":"FAILED"}"#));
    }

    #[test]
    fn structured_mode_is_one_cloudevents_document() {
        let (headers, body) = cloudevents_structured(&event("created", None));
        assert_eq!(headers[0].1, "application/cloudevents+json");
        let doc: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["type"], "herald.resource.created");
        assert_eq!(doc["specversion"], "1.0");
        assert_eq!(doc["data"], Value::Null);
    }

    #[test]
    fn slack_messages_summarise_type_path_time_and_fields() {
        let names = vec!["Genomes".to_owned(), "run-7".to_owned()];
        let body = slack_message(&event("job.completed", Some(r#"{"status":"FAILED","n":3}"#)), &names, Some("C1"));
        let message: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(message["channel"], "C1");
        assert_eq!(message["text"], "job.completed on Genomes / run-7");
        let text = message.to_string();
        assert!(text.contains("*status*\\nFAILED") && text.contains("2026-01-02T03:04:05Z"), "{text}");
        let plain = slack_message(&event("created", None), &[], None);
        assert!(serde_json::from_slice::<Value>(&plain).unwrap().get("channel").is_none());
    }
}
