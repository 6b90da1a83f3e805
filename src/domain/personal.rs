//! Personal notifications: messages addressed to one user, kept until that
//! user acknowledges them.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What a personal notification is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NoticeVariant {
    AccessRequested,
    PermissionGranted,
    PermissionRevoked,
    PermissionUpdated,
    Announcement,
    /// One of the user's webhook subscriptions was disabled.
    SubscriptionDisabled,
}

/// The kind of thing a reference points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceKind {
    User,
    Resource,
    Subscription,
}

/// A typed pointer from a notification to a user or resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub kind: ReferenceKind,
    pub id: String,
    pub display_name: String,
}

/// A personal notification as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub id: String,
    pub variant: NoticeVariant,
    pub message: String,
    pub references: Vec<Reference>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Subject of the personal notifications of `user_id` (one subject per user,
/// so the stream's per-subject limit is the per-user cap).
pub fn personal_subject(user_id: &str) -> String {
    format!("herald.pn.{user_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_user_has_one_subject() {
        assert_eq!(personal_subject("U1"), "herald.pn.U1");
    }

    #[test]
    fn notices_round_trip_as_json() {
        let n = Notice {
            id: "N".into(),
            variant: NoticeVariant::PermissionUpdated,
            message: "m".into(),
            references: vec![Reference { kind: ReferenceKind::User, id: "U".into(), display_name: "u".into() }],
            created_at: OffsetDateTime::UNIX_EPOCH,
        };
        let json = serde_json::to_string(&n).unwrap();
        assert!(json.contains("PERMISSION_UPDATED") && json.contains(r#""kind":"user""#), "{json}");
        assert_eq!(serde_json::from_str::<Notice>(&json).unwrap(), n);
    }
}
