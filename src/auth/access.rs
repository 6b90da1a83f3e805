//! Permission checks: a user's level on a resource is the highest level
//! granted on the resource or any ancestor; admins have every level.

use crate::{
    app::App,
    auth::Principal,
    domain::{
        permission::{PermissionLevel, grant_key},
        resource::Resource,
    },
    error::{Error, Result},
};

impl App {
    /// The caller's effective level on `resource` according to the mirror.
    pub fn cached_level(&self, who: &Principal, resource: &Resource) -> Option<PermissionLevel> {
        if who.is_admin {
            return Some(PermissionLevel::Admin);
        }
        resource
            .self_and_ancestors()
            .filter_map(|id| self.grants.cached(&grant_key(&who.user_id, id)).map(|g| g.level))
            .max()
    }

    /// The caller's effective level, reading NATS for grants the mirror lacks.
    pub async fn fresh_level(&self, who: &Principal, resource: &Resource) -> Result<Option<PermissionLevel>> {
        if who.is_admin {
            return Ok(Some(PermissionLevel::Admin));
        }
        let mut best = None;
        for id in resource.self_and_ancestors() {
            if let Some(grant) = self.grants.get(&grant_key(&who.user_id, id)).await? {
                best = best.max(Some(grant.level));
            }
        }
        Ok(best)
    }

    /// Fails with PERMISSION_DENIED unless the caller has at least `needed` on `resource`.
    pub async fn require(&self, who: &Principal, resource: &Resource, needed: PermissionLevel) -> Result<()> {
        if self.cached_level(who, resource) >= Some(needed) || self.fresh_level(who, resource).await? >= Some(needed) {
            return Ok(());
        }
        Err(Error::PermissionDenied(format!(
            "{} on {} {} is required",
            needed.as_str(),
            resource.variant.as_str().to_lowercase(),
            resource.id
        )))
    }
}
