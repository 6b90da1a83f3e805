//! Conversions between domain types and generated proto types.

use prost_types::Timestamp;
use time::OffsetDateTime;

use super::pb;
use crate::{
    consumers::TargetRequest,
    domain::{
        consumer::Target,
        event::{EventRecord, EventVariant},
        permission::{Grant, PermissionLevel},
        resource::{PathEntry, Resource, ResourceVariant},
        user::{TokenRecord, User},
    },
    error::{Error, Result},
};

pub fn timestamp(t: OffsetDateTime) -> Timestamp {
    Timestamp { seconds: t.unix_timestamp(), nanos: t.nanosecond() as i32 }
}

pub fn from_timestamp(field: &str, t: &Timestamp) -> Result<OffsetDateTime> {
    let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|e| Error::invalid(field, e))
}

pub fn resource_variant(v: ResourceVariant) -> pb::ResourceVariant {
    match v {
        ResourceVariant::Project => pb::ResourceVariant::Project,
        ResourceVariant::Collection => pb::ResourceVariant::Collection,
        ResourceVariant::Dataset => pb::ResourceVariant::Dataset,
        ResourceVariant::Object => pb::ResourceVariant::Object,
    }
}

/// A resource variant from a request; `None` when unspecified.
pub fn to_resource_variant(field: &str, raw: i32) -> Result<Option<ResourceVariant>> {
    match pb::ResourceVariant::try_from(raw) {
        Ok(pb::ResourceVariant::Unspecified) => Ok(None),
        Ok(pb::ResourceVariant::Project) => Ok(Some(ResourceVariant::Project)),
        Ok(pb::ResourceVariant::Collection) => Ok(Some(ResourceVariant::Collection)),
        Ok(pb::ResourceVariant::Dataset) => Ok(Some(ResourceVariant::Dataset)),
        Ok(pb::ResourceVariant::Object) => Ok(Some(ResourceVariant::Object)),
        Err(_) => Err(Error::invalid(field, format!("unknown resource variant {raw}"))),
    }
}

pub fn permission_level(level: PermissionLevel) -> pb::PermissionLevel {
    match level {
        PermissionLevel::Read => pb::PermissionLevel::Read,
        PermissionLevel::Append => pb::PermissionLevel::Append,
        PermissionLevel::Write => pb::PermissionLevel::Write,
        PermissionLevel::Admin => pb::PermissionLevel::Admin,
    }
}

pub fn to_permission_level(field: &str, raw: i32) -> Result<PermissionLevel> {
    match pb::PermissionLevel::try_from(raw) {
        Ok(pb::PermissionLevel::Read) => Ok(PermissionLevel::Read),
        Ok(pb::PermissionLevel::Append) => Ok(PermissionLevel::Append),
        Ok(pb::PermissionLevel::Write) => Ok(PermissionLevel::Write),
        Ok(pb::PermissionLevel::Admin) => Ok(PermissionLevel::Admin),
        Ok(pb::PermissionLevel::Unspecified) => Err(Error::invalid(field, "is required")),
        Err(_) => Err(Error::invalid(field, format!("unknown permission level {raw}"))),
    }
}

pub fn event_variant(v: EventVariant) -> pb::EventVariant {
    match v {
        EventVariant::Created => pb::EventVariant::Created,
        EventVariant::Available => pb::EventVariant::Available,
        EventVariant::Updated => pb::EventVariant::Updated,
        EventVariant::Deleted => pb::EventVariant::Deleted,
        EventVariant::Snapshotted => pb::EventVariant::Snapshotted,
    }
}

/// An event as delivered, from its stored record and stream sequence.
pub fn event(record: &EventRecord, sequence: u64) -> pb::Event {
    pb::Event {
        id: record.id.clone(),
        sequence,
        time: Some(timestamp(record.time)),
        r#type: record.event_type.clone(),
        variant: record.variant().map_or(pb::EventVariant::Unspecified, event_variant) as i32,
        resource: record.resource.as_ref().map(|r| pb::event::Resource {
            id: r.id.clone(),
            variant: resource_variant(r.variant) as i32,
            path: path(&r.path),
        }),
        user_id: record.user_id.clone().unwrap_or_default(),
        actor: record.actor.clone(),
        payload_json: record.payload.as_ref().map(|p| p.get().to_owned()).unwrap_or_default(),
    }
}

pub fn duration(field: &str, d: &prost_types::Duration) -> Result<std::time::Duration> {
    if d.seconds < 0 || d.nanos < 0 {
        return Err(Error::invalid(field, "must not be negative"));
    }
    Ok(std::time::Duration::new(d.seconds as u64, d.nanos as u32))
}

/// An event variant from a request; `None` when unspecified.
pub fn to_event_variant(field: &str, raw: i32) -> Result<Option<EventVariant>> {
    match pb::EventVariant::try_from(raw) {
        Ok(pb::EventVariant::Unspecified) => Ok(None),
        Ok(pb::EventVariant::Created) => Ok(Some(EventVariant::Created)),
        Ok(pb::EventVariant::Available) => Ok(Some(EventVariant::Available)),
        Ok(pb::EventVariant::Updated) => Ok(Some(EventVariant::Updated)),
        Ok(pb::EventVariant::Deleted) => Ok(Some(EventVariant::Deleted)),
        Ok(pb::EventVariant::Snapshotted) => Ok(Some(EventVariant::Snapshotted)),
        Err(_) => Err(Error::invalid(field, format!("unknown event variant {raw}"))),
    }
}

pub fn path(entries: &[PathEntry]) -> Vec<pb::ResourceRef> {
    entries.iter().map(|e| pb::ResourceRef { id: e.id.clone(), variant: resource_variant(e.variant) as i32 }).collect()
}

pub fn user(u: &User) -> pb::User {
    pb::User {
        id: u.id.clone(),
        name: u.name.clone(),
        email: u.email.clone(),
        is_admin: u.is_admin,
        can_create_projects: u.can_create_projects,
        created_at: Some(timestamp(u.created_at)),
    }
}

pub fn token(t: &TokenRecord) -> pb::Token {
    pb::Token {
        id: t.id.clone(),
        user_id: t.user_id.clone(),
        name: t.name.clone(),
        created_at: Some(timestamp(t.created_at)),
        expires_at: t.expires_at.map(timestamp),
    }
}

pub fn grant(g: &Grant) -> pb::Permission {
    pb::Permission {
        user_id: g.user_id.clone(),
        resource_id: g.resource_id.clone(),
        level: permission_level(g.level) as i32,
        granted_by: g.granted_by.clone(),
        granted_at: Some(timestamp(g.granted_at)),
    }
}

pub fn resource(r: &Resource) -> pb::Resource {
    pb::Resource {
        id: r.id.clone(),
        variant: resource_variant(r.variant) as i32,
        name: r.name.clone(),
        parent_id: r.parent_id.clone().unwrap_or_default(),
        path: path(&r.path),
        created_at: Some(timestamp(r.created_at)),
        created_by: r.created_by.clone(),
    }
}

/// A consumer or subscription target from a request.
pub fn target_request(target: Option<pb::ConsumerTarget>) -> Option<TargetRequest> {
    use pb::consumer_target::Target as T;
    Some(match target?.target? {
        T::Resource(r) => {
            TargetRequest::Resource { resource_id: r.resource_id, include_subresources: r.include_subresources }
        }
        T::UserId(user_id) => TargetRequest::User(user_id),
        T::Announcements(_) => TargetRequest::Announcements,
        T::All(_) => TargetRequest::All,
    })
}

pub fn target(target: &Target) -> pb::ConsumerTarget {
    use pb::consumer_target::Target as T;
    let target = match target {
        Target::Resource { resource_id, include_subresources, .. } => T::Resource(pb::ResourceTarget {
            resource_id: resource_id.clone(),
            include_subresources: *include_subresources,
        }),
        Target::User { user_id } => T::UserId(user_id.clone()),
        Target::Announcements => T::Announcements(pb::Empty {}),
        Target::All => T::All(pb::Empty {}),
    };
    pb::ConsumerTarget { target: Some(target) }
}

/// Event variants from a request (`variants[i]` named on error).
pub fn variants(raw: &[i32]) -> Result<Vec<EventVariant>> {
    raw.iter()
        .enumerate()
        .map(|(i, v)| {
            to_event_variant(&format!("variants[{i}]"), *v)?
                .ok_or_else(|| Error::invalid(format!("variants[{i}]"), "must not be unspecified"))
        })
        .collect()
}

/// Stored variant names as proto values.
pub fn variants_pb(names: &[String]) -> Vec<i32> {
    names.iter().filter_map(|v| EventVariant::from_type(v)).map(|v| event_variant(v) as i32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        assert_eq!(from_timestamp("t", &timestamp(t)).unwrap(), t);
    }

    #[test]
    fn unknown_enum_values_name_the_field() {
        assert!(to_permission_level("level", 99).unwrap_err().to_string().contains("level"));
        assert!(to_permission_level("level", 0).is_err());
        assert_eq!(to_resource_variant("variant", 0).unwrap(), None);
        assert!(to_event_variant("variant", 42).is_err());
    }
}
