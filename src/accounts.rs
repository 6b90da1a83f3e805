//! Users, API tokens and permission grants, and the account events they emit.

use std::sync::Arc;

use serde_json::json;
use time::OffsetDateTime;

use crate::{
    app::App,
    auth::{Principal, token},
    domain::{
        event::system,
        ids,
        page::{Order, page_size, paginate},
        permission::{Grant, PermissionLevel, grant_key},
        personal::NoticeVariant,
        resource::Resource,
        user::{BOOTSTRAP_ADMIN_ID, TokenRecord, User},
    },
    error::{Error, Result},
    events::user_event,
    personal::Outgoing,
};

/// Longest user, token and resource name.
pub const MAX_NAME_LEN: usize = 128;
/// Longest e-mail address.
pub const MAX_EMAIL_LEN: usize = 254;

/// Fields of a new user.
#[derive(Clone, Debug, Default)]
pub struct NewUser {
    pub name: String,
    pub email: String,
    pub is_admin: bool,
    pub can_create_projects: bool,
}

impl App {
    /// Creates a user (admin only) and emits `herald.user.created`.
    pub async fn create_user(&self, who: &Principal, new: NewUser) -> Result<Arc<User>> {
        who.require_admin()?;
        ids::check_name("name", &new.name, MAX_NAME_LEN)?;
        if new.email.len() > MAX_EMAIL_LEN || (!new.email.is_empty() && !new.email.contains('@')) {
            return Err(Error::invalid("email", format!("must be an address of at most {MAX_EMAIL_LEN} bytes")));
        }
        let user = User {
            id: ids::new_id(),
            name: new.name,
            email: new.email,
            is_admin: new.is_admin,
            can_create_projects: new.can_create_projects,
            created_at: OffsetDateTime::now_utc(),
        };
        let event = user_event(
            &user.id,
            system::USER_CREATED,
            &who.user_id,
            json!({"name": user.name, "is_admin": user.is_admin, "can_create_projects": user.can_create_projects}),
        )?;
        let user = self.users.create(&user.id.clone(), user).await?;
        if let Err(err) = self.publish_system(vec![event]).await {
            let _ = self.users.delete(&user.id).await;
            return Err(err);
        }
        Ok(user)
    }

    /// A user: admins may see anyone, others only themselves.
    pub async fn get_user(&self, who: &Principal, user_id: &str) -> Result<Arc<User>> {
        ids::check_id("user_id", user_id)?;
        who.require_self_or_admin(user_id)?;
        self.users.get(user_id).await?.ok_or_else(|| Error::not_found("user", user_id))
    }

    /// A page of all users (admin only).
    pub fn list_users(&self, who: &Principal, size: u32, token: &str) -> Result<(Vec<Arc<User>>, String)> {
        who.require_admin()?;
        let size = page_size(size)?;
        Ok(paginate(self.users.select(|_, _| true), |u| u.id.as_str(), size, token, Order::Ascending))
    }

    /// Changes a user's global rights (admin only) and emits `herald.user.updated`.
    pub async fn update_user(
        &self,
        who: &Principal,
        user_id: &str,
        is_admin: Option<bool>,
        can_create_projects: Option<bool>,
    ) -> Result<Arc<User>> {
        who.require_admin()?;
        ids::check_id("user_id", user_id)?;
        if user_id == BOOTSTRAP_ADMIN_ID {
            return Err(Error::FailedPrecondition("the bootstrap admin cannot be changed".into()));
        }
        let before = self.users.get(user_id).await?.ok_or_else(|| Error::not_found("user", user_id))?;
        let mut user = (*before).clone();
        user.is_admin = is_admin.unwrap_or(user.is_admin);
        user.can_create_projects = can_create_projects.unwrap_or(user.can_create_projects);
        let event = user_event(
            user_id,
            system::USER_UPDATED,
            &who.user_id,
            json!({"is_admin": user.is_admin, "can_create_projects": user.can_create_projects}),
        )?;
        let user = self.users.put(user_id, user).await?;
        if let Err(err) = self.publish_system(vec![event]).await {
            let _ = self.users.put(user_id, (*before).clone()).await;
            return Err(err);
        }
        Ok(user)
    }

    /// Creates an API token for `user_id` (empty: the caller) and emits
    /// `herald.token.created`. Returns the record and the bearer secret.
    pub async fn create_token(
        &self,
        who: &Principal,
        user_id: &str,
        name: &str,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<(Arc<TokenRecord>, String)> {
        let user_id = if user_id.is_empty() { who.user_id.as_str() } else { user_id };
        ids::check_id("user_id", user_id)?;
        who.require_self_or_admin(user_id)?;
        ids::check_name("name", name, MAX_NAME_LEN)?;
        if expires_at.is_some_and(|at| at <= OffsetDateTime::now_utc()) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        self.users.get(user_id).await?.ok_or_else(|| Error::not_found("user", user_id))?;
        let fresh = token::generate();
        let record = TokenRecord {
            id: fresh.id.clone(),
            user_id: user_id.to_owned(),
            name: name.to_owned(),
            secret_hash: fresh.secret_hash,
            created_at: OffsetDateTime::now_utc(),
            expires_at,
        };
        let expires = expires_at.map(|t| t.unix_timestamp());
        let event = user_event(
            user_id,
            system::TOKEN_CREATED,
            &who.user_id,
            json!({"token_id": record.id, "name": record.name, "expires_at_unix": expires}),
        )?;
        let record = self.tokens.create(&fresh.id, record).await?;
        if let Err(err) = self.publish_system(vec![event]).await {
            let _ = self.tokens.delete(&fresh.id).await;
            return Err(err);
        }
        Ok((record, fresh.bearer))
    }

    /// The tokens of `user_id` (empty: the caller), newest first.
    pub fn list_tokens(&self, who: &Principal, user_id: &str) -> Result<Vec<Arc<TokenRecord>>> {
        let user_id = if user_id.is_empty() { who.user_id.as_str() } else { user_id };
        ids::check_id("user_id", user_id)?;
        who.require_self_or_admin(user_id)?;
        let mut tokens = self.tokens.select(|_, t| t.user_id == user_id);
        tokens.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(tokens)
    }

    /// Revokes a token (its owner or an admin) and emits `herald.token.revoked`.
    pub async fn revoke_token(&self, who: &Principal, token_id: &str) -> Result<()> {
        ids::check_id("token_id", token_id)?;
        let record = self.tokens.get(token_id).await?.ok_or_else(|| Error::not_found("token", token_id))?;
        who.require_self_or_admin(&record.user_id).map_err(|_| Error::not_found("token", token_id))?;
        let event = user_event(&record.user_id, system::TOKEN_REVOKED, &who.user_id, json!({"token_id": token_id}))?;
        self.tokens.delete(token_id).await?;
        // The revocation stands even when its event cannot be stored.
        if let Err(err) = self.publish_system(vec![event]).await {
            tracing::warn!(error = %err, token_id, "token revoked but its event was not stored");
        }
        Ok(())
    }

    /// Grants `level` to `user_id` on a resource (needs ADMIN there) and
    /// emits `herald.permission.granted`.
    pub async fn grant(
        &self,
        who: &Principal,
        user_id: &str,
        resource_id: &str,
        level: PermissionLevel,
    ) -> Result<Arc<Grant>> {
        ids::check_id("user_id", user_id)?;
        ids::check_id("resource_id", resource_id)?;
        let resource =
            self.resources.get(resource_id).await?.ok_or_else(|| Error::not_found("resource", resource_id))?;
        self.require(who, &resource, PermissionLevel::Admin).await?;
        self.users.get(user_id).await?.ok_or_else(|| Error::not_found("user", user_id))?;
        let key = grant_key(user_id, resource_id);
        let previous = self.grants.get(&key).await?;
        let grant = Grant {
            user_id: user_id.to_owned(),
            resource_id: resource_id.to_owned(),
            level,
            granted_by: who.user_id.clone(),
            granted_at: OffsetDateTime::now_utc(),
        };
        let event = user_event(
            user_id,
            system::PERMISSION_GRANTED,
            &who.user_id,
            json!({
                "resource_id": resource_id,
                "resource_variant": resource.variant.as_str(),
                "level": level.as_str(),
                "previous_level": previous.as_ref().map(|g| g.level.as_str()),
            }),
        )?;
        let notice = self.grant_notice(who, &resource, user_id, previous.as_ref().map(|g| g.level), level);
        let grant = self.grants.put(&key, grant).await?;
        let stored = async {
            self.publish_system(vec![event]).await?;
            match notice {
                Some(notice) => self.notify(vec![notice]).await,
                None => Ok(()),
            }
        };
        if let Err(err) = stored.await {
            let _ = match previous {
                Some(previous) => self.grants.put(&key, (*previous).clone()).await.map(drop),
                None => self.grants.delete(&key).await,
            };
            return Err(err);
        }
        Ok(grant)
    }

    /// The personal notification a grant sends: GRANTED for a new grant,
    /// UPDATED for a changed level, none when the level stays the same.
    fn grant_notice(
        &self,
        who: &Principal,
        resource: &Resource,
        user_id: &str,
        previous: Option<PermissionLevel>,
        level: PermissionLevel,
    ) -> Option<Outgoing> {
        let by = self.user_ref(&who.user_id);
        let what = format!("{} \"{}\"", resource.variant.as_str().to_lowercase(), resource.name);
        let (variant, message) = match previous {
            None => (
                NoticeVariant::PermissionGranted,
                format!("{} granted you {} on {what}", by.display_name, level.as_str()),
            ),
            Some(old) if old != level => (
                NoticeVariant::PermissionUpdated,
                format!(
                    "{} changed your permission on {what} from {} to {}",
                    by.display_name,
                    old.as_str(),
                    level.as_str()
                ),
            ),
            Some(_) => return None,
        };
        Some(Outgoing::new(user_id, variant, message, vec![by, Self::resource_ref(resource)]))
    }

    /// Removes a user's grant on a resource (needs ADMIN there) and emits
    /// `herald.permission.revoked`.
    pub async fn revoke_grant(&self, who: &Principal, user_id: &str, resource_id: &str) -> Result<()> {
        ids::check_id("user_id", user_id)?;
        ids::check_id("resource_id", resource_id)?;
        let resource =
            self.resources.get(resource_id).await?.ok_or_else(|| Error::not_found("resource", resource_id))?;
        self.require(who, &resource, PermissionLevel::Admin).await?;
        let key = grant_key(user_id, resource_id);
        let grant = self.grants.get(&key).await?.ok_or_else(|| Error::NotFound {
            what: format!("permission of user {user_id} on resource {resource_id}"),
        })?;
        let event = user_event(
            user_id,
            system::PERMISSION_REVOKED,
            &who.user_id,
            json!({"resource_id": resource_id, "resource_variant": resource.variant.as_str(), "level": grant.level.as_str()}),
        )?;
        let by = self.user_ref(&who.user_id);
        let message = format!(
            "{} revoked your {} permission on {} \"{}\"",
            by.display_name,
            grant.level.as_str(),
            resource.variant.as_str().to_lowercase(),
            resource.name
        );
        let notice =
            Outgoing::new(user_id, NoticeVariant::PermissionRevoked, message, vec![by, Self::resource_ref(&resource)]);
        self.grants.delete(&key).await?;
        // The revocation stands even when its event or notification cannot be stored.
        if let Err(err) = self.publish_system(vec![event]).await {
            tracing::warn!(error = %err, user_id, resource_id, "permission revoked but its event was not stored");
        }
        if let Err(err) = self.notify(vec![notice]).await {
            tracing::warn!(error = %err, user_id, resource_id, "permission revoked but the user was not notified");
        }
        Ok(())
    }

    /// The grants held by `user_id` (empty: the caller).
    pub fn list_grants(&self, who: &Principal, user_id: &str) -> Result<Vec<Arc<Grant>>> {
        let user_id = if user_id.is_empty() { who.user_id.as_str() } else { user_id };
        ids::check_id("user_id", user_id)?;
        who.require_self_or_admin(user_id)?;
        let mut grants = self.grants.select(|_, g| g.user_id == user_id);
        grants.sort_by(|a, b| a.resource_id.cmp(&b.resource_id));
        Ok(grants)
    }
}
