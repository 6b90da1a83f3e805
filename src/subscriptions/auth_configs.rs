//! Receiver authentication configurations: created with their secrets,
//! which are sealed at once and never shown again; listed masked; deleted
//! only when no subscription uses them.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::{
    app::App,
    auth::Principal,
    domain::{
        ids,
        subscription::{AuthConfigRecord, AuthKind, check_url},
    },
    error::{Error, Result},
};

/// Longest auth configuration name.
pub const MAX_AUTH_NAME: usize = 128;
/// Longest single credential (key, secret, token, scope, parameter).
pub const MAX_CREDENTIAL: usize = 4096;
/// Most extra token request parameters.
pub const MAX_EXTRA_PARAMS: usize = 10;

/// A new auth configuration, secrets in plain text (as received).
#[derive(Clone, Debug)]
pub enum NewAuth {
    Basic {
        key: String,
        secret: String,
    },
    Bearer {
        token: String,
    },
    OAuth2 {
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: String,
        audience: String,
        extra_params: Vec<(String, String)>,
    },
}

fn check_credential(field: &str, value: &str, required: bool) -> Result<()> {
    if required && value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if value.len() > MAX_CREDENTIAL {
        return Err(Error::invalid(field, format!("is {} bytes; the limit is {MAX_CREDENTIAL}", value.len())));
    }
    Ok(())
}

impl App {
    /// Creates an auth configuration owned by the caller.
    pub async fn create_auth_config(
        &self,
        who: &Principal,
        name: &str,
        auth: Option<NewAuth>,
    ) -> Result<Arc<AuthConfigRecord>> {
        ids::check_name("name", name, MAX_AUTH_NAME)?;
        if !self.auth_configs.select(|_, a| a.owner == who.user_id && a.name == name).is_empty() {
            return Err(Error::AlreadyExists(format!("an auth configuration named {name:?}")));
        }
        let sealed =
            match auth.ok_or_else(|| Error::invalid("auth", "set basic, bearer or oauth2_client_credentials"))? {
                NewAuth::Basic { key, secret } => {
                    check_credential("basic.key", &key, true)?;
                    check_credential("basic.secret", &secret, true)?;
                    AuthKind::Basic { key, secret: self.sealer.seal(&secret) }
                }
                NewAuth::Bearer { token } => {
                    check_credential("bearer.token", &token, true)?;
                    AuthKind::Bearer { token: self.sealer.seal(&token) }
                }
                NewAuth::OAuth2 { token_url, client_id, client_secret, scope, audience, extra_params } => {
                    let parsed = check_url("oauth2_client_credentials.token_url", &token_url)?;
                    let (host, port) =
                        (parsed.host_str().unwrap_or_default(), parsed.port_or_known_default().unwrap_or(443));
                    self.network_guard
                        .check_host(host, port)
                        .await
                        .map_err(|why| Error::invalid("oauth2_client_credentials.token_url", why))?;
                    check_credential("oauth2_client_credentials.client_id", &client_id, true)?;
                    check_credential("oauth2_client_credentials.client_secret", &client_secret, true)?;
                    check_credential("oauth2_client_credentials.scope", &scope, false)?;
                    check_credential("oauth2_client_credentials.audience", &audience, false)?;
                    if extra_params.len() > MAX_EXTRA_PARAMS {
                        return Err(Error::invalid(
                            "oauth2_client_credentials.extra_params",
                            format!("has {}; the limit is {MAX_EXTRA_PARAMS}", extra_params.len()),
                        ));
                    }
                    const RESERVED: &[&str] = &["grant_type", "client_id", "client_secret", "scope", "audience"];
                    if let Some((k, _)) = extra_params.iter().find(|(k, _)| RESERVED.contains(&k.as_str())) {
                        return Err(Error::invalid(
                            "oauth2_client_credentials.extra_params",
                            format!("{k:?} is set by Herald"),
                        ));
                    }
                    AuthKind::OAuth2 {
                        token_url,
                        client_id,
                        client_secret: self.sealer.seal(&client_secret),
                        scope,
                        audience,
                        extra_params,
                    }
                }
            };
        let record = AuthConfigRecord {
            id: ids::new_id(),
            owner: who.user_id.clone(),
            name: name.to_owned(),
            auth: sealed,
            created_at: OffsetDateTime::now_utc(),
        };
        self.auth_configs.create(&record.id.clone(), record).await
    }

    /// The caller's auth configurations, oldest first.
    pub fn list_auth_configs(&self, who: &Principal) -> Vec<Arc<AuthConfigRecord>> {
        let mut mine = self.auth_configs.select(|_, a| a.owner == who.user_id);
        mine.sort_by(|a, b| a.id.cmp(&b.id));
        mine
    }

    /// An auth configuration the caller owns (or any, for admins).
    pub(crate) async fn owned_auth_config(&self, who: &Principal, id: &str) -> Result<Arc<AuthConfigRecord>> {
        ids::check_id("auth_config_id", id)?;
        let record = self.auth_configs.get(id).await?.ok_or_else(|| Error::not_found("auth configuration", id))?;
        if record.owner != who.user_id && !who.is_admin {
            return Err(Error::PermissionDenied(format!("auth configuration {id} belongs to another user")));
        }
        Ok(record)
    }

    /// Deletes an auth configuration no subscription uses.
    pub async fn delete_auth_config(&self, who: &Principal, id: &str) -> Result<()> {
        self.owned_auth_config(who, id).await?;
        let users = self.subscriptions.select(|_, s| s.auth_config.as_deref() == Some(id));
        if let Some(sub) = users.first() {
            return Err(Error::FailedPrecondition(format!(
                "auth configuration {id} is used by subscription {} ({} in all); remove it there first",
                sub.id,
                users.len()
            )));
        }
        self.auth_configs.delete(id).await?;
        self.oauth_tokens.forget(id);
        Ok(())
    }
}

/// An auth configuration with its secrets masked, for responses.
pub fn masked(record: &AuthConfigRecord) -> AuthKind {
    let hidden = "********".to_owned();
    match &record.auth {
        AuthKind::Basic { key, .. } => AuthKind::Basic { key: key.clone(), secret: hidden },
        AuthKind::Bearer { .. } => AuthKind::Bearer { token: hidden },
        AuthKind::OAuth2 { token_url, client_id, scope, audience, extra_params, .. } => AuthKind::OAuth2 {
            token_url: token_url.clone(),
            client_id: client_id.clone(),
            client_secret: hidden,
            scope: scope.clone(),
            audience: audience.clone(),
            extra_params: extra_params.clone(),
        },
    }
}
