//! Permission checks: a user's level on a resource is the highest level
//! granted on the resource or any ancestor; admins have every level.

use crate::{
    app::App,
    auth::Principal,
    domain::{
        permission::{PermissionLevel, grant_key},
        resource::{PathEntry, Resource},
    },
    error::{Error, Result},
};

impl App {
    /// The caller's effective level on the resource at the end of `path`, according to the mirror.
    pub fn cached_level_on_path(&self, who: &Principal, path: &[PathEntry]) -> Option<PermissionLevel> {
        if who.is_admin {
            return Some(PermissionLevel::Admin);
        }
        path.iter().filter_map(|e| self.grants.cached(&grant_key(&who.user_id, &e.id)).map(|g| g.level)).max()
    }

    /// The caller's effective level on `resource`, according to the mirror.
    pub fn cached_level(&self, who: &Principal, resource: &Resource) -> Option<PermissionLevel> {
        self.cached_level_on_path(who, &resource.path)
    }

    /// The caller's effective level, reading NATS for grants the mirror lacks.
    async fn fresh_level_on_path(&self, who: &Principal, path: &[PathEntry]) -> Result<Option<PermissionLevel>> {
        if who.is_admin {
            return Ok(Some(PermissionLevel::Admin));
        }
        let mut best = None;
        for entry in path {
            if let Some(grant) = self.grants.get(&grant_key(&who.user_id, &entry.id)).await? {
                best = best.max(Some(grant.level));
            }
        }
        Ok(best)
    }

    /// Fails with PERMISSION_DENIED unless the caller has at least `needed` on `resource`.
    pub async fn require(&self, who: &Principal, resource: &Resource, needed: PermissionLevel) -> Result<()> {
        self.require_on_path(who, &resource.path, needed).await
    }

    /// Like [`App::require`] for a resource known by its path (which may have
    /// been deleted since: a consumer keeps reading what it was allowed to).
    pub async fn require_on_path(&self, who: &Principal, path: &[PathEntry], needed: PermissionLevel) -> Result<()> {
        if self.cached_level_on_path(who, path) >= Some(needed)
            || self.fresh_level_on_path(who, path).await? >= Some(needed)
        {
            return Ok(());
        }
        let target = path
            .last()
            .map(|e| format!("{} {}", e.variant.as_str().to_lowercase(), e.id))
            .unwrap_or_else(|| "the resource".into());
        Err(Error::PermissionDenied(format!("{} on {target} is required", needed.as_str())))
    }
}
