//! Users and API tokens as stored.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Id of the bootstrap admin, whose token comes from configuration.
pub const BOOTSTRAP_ADMIN_ID: &str = "admin";

/// A stored user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub email: String,
    pub is_admin: bool,
    pub can_create_projects: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A stored API token: only the SHA-256 of its secret is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// Base64 of SHA-256 over the secret part of the bearer token.
    pub secret_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub expires_at: Option<OffsetDateTime>,
}

impl TokenRecord {
    /// True when the token has an expiry at or before `now`.
    pub fn is_expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}
