//! Event types and the event record stored in the events stream.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::resource::{PathEntry, ResourceVariant};
use crate::error::{Error, Result};

/// Longest accepted event type name.
pub const MAX_TYPE_LEN: usize = 128;
/// Most dot-separated segments in a custom type.
pub const MAX_TYPE_SEGMENTS: usize = 8;
/// Prefix of Herald's own event types; producers may not use it.
pub const SYSTEM_PREFIX: &str = "herald.";

/// The built-in event variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventVariant {
    Created,
    Available,
    Updated,
    Deleted,
    Snapshotted,
}

impl EventVariant {
    /// Every variant.
    pub const ALL: [EventVariant; 5] =
        [Self::Created, Self::Available, Self::Updated, Self::Deleted, Self::Snapshotted];

    /// The type name (one lowercase word).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Available => "available",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::Snapshotted => "snapshotted",
        }
    }

    /// The variant whose type name is `name`.
    pub fn from_type(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == name)
    }
}

/// Types of the events Herald emits by itself.
pub mod system {
    /// A user account was created.
    pub const USER_CREATED: &str = "herald.user.created";
    /// A user's global rights changed.
    pub const USER_UPDATED: &str = "herald.user.updated";
    /// An API token was created for the user.
    pub const TOKEN_CREATED: &str = "herald.token.created";
    /// One of the user's API tokens was revoked.
    pub const TOKEN_REVOKED: &str = "herald.token.revoked";
    /// The user was granted a permission (or its level changed).
    pub const PERMISSION_GRANTED: &str = "herald.permission.granted";
    /// One of the user's permissions was revoked.
    pub const PERMISSION_REVOKED: &str = "herald.permission.revoked";
    /// An admin's announcement to every user.
    pub const ANNOUNCEMENT: &str = "herald.announcement";
}

/// Checks a custom (producer-defined) type name, naming `field` on error.
///
/// A custom type has 2 to 8 dot-separated segments of lowercase letters,
/// digits, `_` and `-`, each starting with a letter or digit, so it never
/// collides with the one-word built-in variants and is valid in a subject.
pub fn check_custom_type(field: &str, name: &str) -> Result<()> {
    check_type_name(field, name)?;
    if name.starts_with(SYSTEM_PREFIX) {
        return Err(Error::invalid(field, "the prefix \"herald.\" is reserved for Herald's own events"));
    }
    Ok(())
}

/// Checks any dotted type name (custom or system) without the reserved-prefix rule.
pub fn check_type_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if name.len() > MAX_TYPE_LEN {
        return Err(Error::invalid(field, format!("is {} bytes; the limit is {MAX_TYPE_LEN}", name.len())));
    }
    let segments: Vec<&str> = name.split('.').collect();
    if segments.len() < 2 || segments.len() > MAX_TYPE_SEGMENTS {
        return Err(Error::invalid(
            field,
            format!("must have 2 to {MAX_TYPE_SEGMENTS} dot-separated segments, like \"job.completed\""),
        ));
    }
    let segment_ok = |s: &str| {
        s.as_bytes().first().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    if let Some(bad) = segments.iter().find(|s| !segment_ok(s)) {
        return Err(Error::invalid(
            field,
            format!("segment {bad:?} must be lowercase letters, digits, '_' or '-' starting with a letter or digit"),
        ));
    }
    Ok(())
}

/// The resource an event is about, as stored with the event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventResource {
    pub id: String,
    pub variant: ResourceVariant,
    /// From the project down to the resource (inclusive).
    pub path: Vec<PathEntry>,
}

/// An event as stored (JSON) in the events stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<EventResource>,
    /// The user an account event is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The user who caused the event.
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Box<RawValue>>,
}

impl EventRecord {
    /// The built-in variant, when the type is one.
    pub fn variant(&self) -> Option<EventVariant> {
        EventVariant::from_type(&self.event_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_types_need_two_lowercase_segments() {
        for ok in ["job.completed", "a.b.c", "x1.y_z-2"] {
            assert!(check_custom_type("t", ok).is_ok(), "{ok}");
        }
        for bad in ["job", "Job.done", "job..done", "job.*", "job.>", "job. x", ".job", "job.", "herald.user.created"] {
            assert!(check_custom_type("custom_type", bad).is_err(), "{bad}");
        }
        let long = format!("a.{}", "b".repeat(MAX_TYPE_LEN));
        assert!(check_custom_type("t", &long).unwrap_err().to_string().contains("limit is 128"));
    }

    #[test]
    fn system_types_are_valid_names_but_reserved() {
        assert!(check_type_name("t", system::TOKEN_REVOKED).is_ok());
        assert!(check_custom_type("t", system::TOKEN_REVOKED).is_err());
    }

    #[test]
    fn variants_round_trip_through_their_names() {
        for v in EventVariant::ALL {
            assert_eq!(EventVariant::from_type(v.as_str()), Some(v));
        }
        assert_eq!(EventVariant::from_type("job.completed"), None);
    }

    #[test]
    fn records_keep_the_payload_verbatim() {
        let json = r#"{"id":"E","type":"job.done","time":"2026-01-02T03:04:05Z","actor":"U","payload":{"n":12345678901234567890}}"#;
        let rec: EventRecord = serde_json::from_str(json).unwrap();
        assert_eq!(rec.payload.as_ref().unwrap().get(), r#"{"n":12345678901234567890}"#);
        let back = serde_json::to_string(&rec).unwrap();
        assert!(back.contains(r#""payload":{"n":12345678901234567890}"#), "{back}");
    }
}
