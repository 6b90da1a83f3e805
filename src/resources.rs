//! The resource hierarchy: create, get, list and delete, with the events
//! each change emits (CREATED/DELETED on the resource, UPDATED on its parent).

use std::sync::Arc;

use time::OffsetDateTime;

use crate::{
    app::App,
    auth::Principal,
    domain::{
        event::EventVariant,
        ids,
        page::{Order, page_size, paginate},
        permission::{Grant, PermissionLevel, grant_key},
        resource::{Resource, ResourceVariant},
    },
    error::{Error, Result},
    events::resource_event,
};

/// Longest resource name.
pub const MAX_RESOURCE_NAME_LEN: usize = 256;

impl App {
    /// Creates a resource. Projects need admin or the project-creator right
    /// (the creator gets ADMIN on the project); others need WRITE on the parent.
    pub async fn create_resource(
        &self,
        who: &Principal,
        variant: Option<ResourceVariant>,
        name: &str,
        parent_id: &str,
    ) -> Result<Arc<Resource>> {
        let variant = variant.ok_or_else(|| Error::invalid("variant", "is required"))?;
        ids::check_name("name", name, MAX_RESOURCE_NAME_LEN)?;
        let parent = if parent_id.is_empty() {
            None
        } else {
            ids::check_id("parent_id", parent_id)?;
            Some(self.resources.get(parent_id).await?.ok_or_else(|| Error::not_found("resource", parent_id))?)
        };
        let resource = Resource::new(ids::new_id(), variant, name.to_owned(), parent.as_deref(), who.user_id.clone())?;
        match &parent {
            None if !(who.is_admin || who.can_create_projects) => {
                return Err(Error::PermissionDenied(
                    "creating a project needs admin or the project-creator right".into(),
                ));
            }
            None => {}
            Some(parent) => self.require(who, parent, PermissionLevel::Write).await?,
        }
        let mut events = vec![resource_event(&resource, EventVariant::Created.as_str(), &who.user_id, None)?];
        if let Some(parent) = &parent {
            events.push(resource_event(parent, EventVariant::Updated.as_str(), &who.user_id, None)?);
        }
        let resource = self.resources.create(&resource.id.clone(), resource).await?;
        let creator_grant = grant_key(&who.user_id, &resource.id);
        let stored = async {
            if resource.variant == ResourceVariant::Project {
                let grant = Grant {
                    user_id: who.user_id.clone(),
                    resource_id: resource.id.clone(),
                    level: PermissionLevel::Admin,
                    granted_by: who.user_id.clone(),
                    granted_at: OffsetDateTime::now_utc(),
                };
                self.grants.put(&creator_grant, grant).await?;
            }
            self.publish_system(events).await
        }
        .await;
        if let Err(err) = stored {
            // Undo so a failed create leaves nothing half-written.
            let _ = self.grants.delete(&creator_grant).await;
            let _ = self.resources.delete(&resource.id).await;
            return Err(err);
        }
        Ok(resource)
    }

    /// A resource the caller can READ.
    pub async fn get_resource(&self, who: &Principal, id: &str) -> Result<Arc<Resource>> {
        let resource = self.resource(id, "id").await?;
        self.require(who, &resource, PermissionLevel::Read).await?;
        Ok(resource)
    }

    /// A page of a resource's children, or of the projects the caller can
    /// read when `parent_id` is empty.
    pub async fn list_resources(
        &self,
        who: &Principal,
        parent_id: &str,
        size: u32,
        token: &str,
    ) -> Result<(Vec<Arc<Resource>>, String)> {
        let size = page_size(size)?;
        let items = if parent_id.is_empty() {
            self.resources
                .select(|_, r| r.parent_id.is_none())
                .into_iter()
                .filter(|p| self.cached_level(who, p).is_some())
                .collect()
        } else {
            let parent = self.resource(parent_id, "parent_id").await?;
            self.require(who, &parent, PermissionLevel::Read).await?;
            self.resources.select(|_, r| r.parent_id.as_deref() == Some(parent_id))
        };
        Ok(paginate(items, |r| r.id.as_str(), size, token, Order::Ascending))
    }

    /// Deletes a resource (needs WRITE) and, when `recursive`, everything
    /// below it. Returns the deleted ids, deepest first.
    pub async fn delete_resource(&self, who: &Principal, id: &str, recursive: bool) -> Result<Vec<String>> {
        let resource = self.resource(id, "id").await?;
        self.require(who, &resource, PermissionLevel::Write).await?;
        let mut doomed = self.resources.select(|_, r| r.id != resource.id && resource.contains(r));
        if !doomed.is_empty() && !recursive {
            return Err(Error::FailedPrecondition(format!(
                "resource {id} has {} descendant(s); set recursive to delete them too",
                doomed.len()
            )));
        }
        doomed.sort_by(|a, b| b.path.len().cmp(&a.path.len()).then_with(|| a.id.cmp(&b.id)));
        doomed.push(resource.clone());
        let mut events = Vec::with_capacity(doomed.len() + 1);
        for r in &doomed {
            events.push(resource_event(r, EventVariant::Deleted.as_str(), &who.user_id, None)?);
        }
        if let Some(parent_id) = &resource.parent_id
            && let Some(parent) = self.resources.get(parent_id).await?
        {
            events.push(resource_event(&parent, EventVariant::Updated.as_str(), &who.user_id, None)?);
        }
        self.nats.ensure_connected()?;
        let mut deleted = Vec::with_capacity(doomed.len());
        let mut outcome = Ok(());
        for r in &doomed {
            match self.resources.delete(&r.id).await {
                Ok(()) => deleted.push(r.clone()),
                Err(err) => {
                    outcome = Err(err);
                    break;
                }
            }
        }
        if outcome.is_ok() {
            outcome = self.publish_system(events).await.map(drop);
        }
        if let Err(err) = outcome {
            // Put back what was deleted so a failure leaves the tree whole.
            for r in deleted {
                let _ = self.resources.put(&r.id, (*r).clone()).await;
            }
            return Err(err);
        }
        // Grants on deleted resources stay: consumers scoped to them still
        // need READ to receive the DELETED events; ids are never reused.
        Ok(doomed.iter().map(|r| r.id.clone()).collect())
    }

    /// Looks up a resource by an id from `field`.
    async fn resource(&self, id: &str, field: &str) -> Result<Arc<Resource>> {
        ids::check_id(field, id)?;
        self.resources.get(id).await?.ok_or_else(|| Error::not_found("resource", id))
    }
}
