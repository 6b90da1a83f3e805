//! Authentication (bearer tokens) and authorization (permission levels
//! inherited down the resource hierarchy).
//!
//! Every check reads the in-memory mirrors, so the hot paths (emit, fetch)
//! never wait on a key-value read; a denial is re-checked against NATS so a
//! grant made a moment ago on another replica is honoured.

mod access;
pub mod reply;
pub mod sealing;
pub mod token;

use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tonic::metadata::MetadataMap;

use crate::{
    app::App,
    domain::user::BOOTSTRAP_ADMIN_ID,
    error::{Error, Result},
};

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub is_admin: bool,
    pub can_create_projects: bool,
}

impl Principal {
    /// Fails with PERMISSION_DENIED unless the caller is an admin.
    pub fn require_admin(&self) -> Result<()> {
        if self.is_admin { Ok(()) } else { Err(Error::PermissionDenied("this needs an admin".into())) }
    }

    /// Fails with PERMISSION_DENIED unless the caller is `user_id` or an admin.
    pub fn require_self_or_admin(&self, user_id: &str) -> Result<()> {
        if self.is_admin || self.user_id == user_id {
            Ok(())
        } else {
            Err(Error::PermissionDenied("only the user themselves or an admin may do this".into()))
        }
    }
}

/// The bearer token of `authorization: Bearer <token>` metadata.
pub fn bearer_token(metadata: &MetadataMap) -> Result<&str> {
    let value = metadata
        .get("authorization")
        .ok_or_else(|| Error::Unauthenticated("missing `authorization: Bearer <token>` metadata".into()))?;
    let value = value.to_str().map_err(|_| Error::Unauthenticated("malformed authorization metadata".into()))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| Error::Unauthenticated("authorization metadata must be `Bearer <token>`".into()))?;
    Ok(token.trim())
}

impl App {
    /// Authenticates the caller of a request.
    pub async fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal> {
        let bearer = bearer_token(metadata)?;
        if let Some(admin) = &self.settings.admin_token
            && bool::from(admin.expose_secret().as_bytes().ct_eq(bearer.as_bytes()))
        {
            return Ok(Principal { user_id: BOOTSTRAP_ADMIN_ID.into(), is_admin: true, can_create_projects: true });
        }
        let invalid = || Error::Unauthenticated("invalid, expired or revoked token".into());
        let (token_id, secret) = token::parse_bearer(bearer).ok_or_else(invalid)?;
        let record = self.tokens.get(token_id).await?.ok_or_else(invalid)?;
        if !token::verify_secret(secret, &record.secret_hash) || record.is_expired_at(OffsetDateTime::now_utc()) {
            return Err(invalid());
        }
        let user = self.users.get(&record.user_id).await?.ok_or_else(invalid)?;
        Ok(Principal {
            user_id: user.id.clone(),
            is_admin: user.is_admin,
            can_create_projects: user.can_create_projects,
        })
    }
}
