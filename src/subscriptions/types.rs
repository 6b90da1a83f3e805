//! The event type catalog: built-in variants and Herald's own types, plus
//! custom types producers registered (with a description) or emitted.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{
    app::App,
    auth::Principal,
    domain::event::{EventVariant, check_custom_type, system},
    error::{Error, Result},
};

/// Longest event type description.
pub const MAX_DESCRIPTION: usize = 1000;

/// A custom event type as stored in the catalog bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTypeRecord {
    pub name: String,
    pub description: String,
    pub registered: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
}

/// One entry of `ListEventTypes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventTypeInfo {
    pub name: String,
    pub description: String,
    /// A variant or one of Herald's own `herald.*` types.
    pub builtin: bool,
    /// Registered with a description (rather than only seen in an emit).
    pub registered: bool,
}

const BUILTIN: &[(&str, &str)] = &[
    (system::USER_CREATED, "a user account was created"),
    (system::USER_UPDATED, "a user's global rights changed"),
    (system::TOKEN_CREATED, "an API token was created for the user"),
    (system::TOKEN_REVOKED, "one of the user's API tokens was revoked"),
    (system::PERMISSION_GRANTED, "the user was granted a permission or its level changed"),
    (system::PERMISSION_REVOKED, "one of the user's permissions was revoked"),
    (system::ANNOUNCEMENT, "an admin's announcement to every user"),
    (super::attempts::PING_TYPE, "a test event sent with SendTestEvent"),
];

fn variant_description(v: EventVariant) -> &'static str {
    match v {
        EventVariant::Created => "the resource was created",
        EventVariant::Available => "the resource became available",
        EventVariant::Updated => "the resource (or one of its children) changed",
        EventVariant::Deleted => "the resource was deleted",
        EventVariant::Snapshotted => "a snapshot of the resource was taken",
    }
}

impl App {
    /// Every known event type: variants, Herald's own, then custom types by name.
    pub fn list_event_types(&self) -> Vec<EventTypeInfo> {
        let builtin = |name: &str, description: &str| EventTypeInfo {
            name: name.to_owned(),
            description: description.to_owned(),
            builtin: true,
            registered: true,
        };
        let mut out: Vec<EventTypeInfo> =
            EventVariant::ALL.iter().map(|v| builtin(v.as_str(), variant_description(*v))).collect();
        out.extend(BUILTIN.iter().map(|(n, d)| builtin(n, d)));
        let mut custom = self.event_types.select(|_, _| true);
        custom.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(custom.iter().map(|t| EventTypeInfo {
            name: t.name.clone(),
            description: t.description.clone(),
            builtin: false,
            registered: t.registered,
        }));
        out
    }

    /// Registers (or re-describes) a custom event type. Admins only.
    pub async fn register_event_type(&self, who: &Principal, name: &str, description: &str) -> Result<EventTypeInfo> {
        who.require_admin()?;
        check_custom_type("name", name)?;
        if description.chars().count() > MAX_DESCRIPTION {
            return Err(Error::invalid("description", format!("the limit is {MAX_DESCRIPTION} characters")));
        }
        let first_seen = self.event_types.get(name).await?.map_or_else(OffsetDateTime::now_utc, |t| t.first_seen);
        let record = EventTypeRecord {
            name: name.to_owned(),
            description: description.to_owned(),
            registered: true,
            first_seen,
        };
        self.event_types.put(name, record).await?;
        Ok(EventTypeInfo {
            name: name.to_owned(),
            description: description.to_owned(),
            builtin: false,
            registered: true,
        })
    }

    /// Notes custom types seen in emitted events (in the background; the
    /// emit path never waits on the catalog).
    pub(crate) fn note_event_types<'a>(&self, types: impl Iterator<Item = &'a str>) {
        for name in types {
            if EventVariant::from_type(name).is_some() || self.event_types.cached(name).is_some() {
                continue;
            }
            let bucket = self.event_types.clone();
            let record = EventTypeRecord {
                name: name.to_owned(),
                description: String::new(),
                registered: false,
                first_seen: OffsetDateTime::now_utc(),
            };
            tokio::spawn(async move {
                let name = record.name.clone();
                match bucket.create(&name, record).await {
                    Ok(_) | Err(Error::AlreadyExists(_)) => {}
                    Err(err) => tracing::debug!(error = %err, "failed to note an event type"),
                }
            });
        }
    }
}
