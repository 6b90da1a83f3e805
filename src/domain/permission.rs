//! Permission levels and grants. Levels are ordered and inherit downward.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// READ < APPEND < WRITE < ADMIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PermissionLevel {
    Read,
    Append,
    Write,
    Admin,
}

impl PermissionLevel {
    /// Upper-case name, e.g. `WRITE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "READ",
            Self::Append => "APPEND",
            Self::Write => "WRITE",
            Self::Admin => "ADMIN",
        }
    }
}

/// A user's level on one resource (and, by inheritance, everything below it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub user_id: String,
    pub resource_id: String,
    pub level: PermissionLevel,
    pub granted_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub granted_at: OffsetDateTime,
}

/// KV key of a grant: `<user id>.<resource id>`.
pub fn grant_key(user_id: &str, resource_id: &str) -> String {
    format!("{user_id}.{resource_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered() {
        use PermissionLevel::*;
        assert!(Read < Append && Append < Write && Write < Admin);
    }

    #[test]
    fn grant_keys_join_user_and_resource() {
        assert_eq!(grant_key("U", "R"), "U.R");
    }
}
