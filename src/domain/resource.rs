//! The resource hierarchy: PROJECT > COLLECTION > DATASET > OBJECT.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// A level of the hierarchy. The order is the nesting order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResourceVariant {
    Project,
    Collection,
    Dataset,
    Object,
}

impl ResourceVariant {
    /// All variants, outermost first.
    pub const ALL: [ResourceVariant; 4] = [Self::Project, Self::Collection, Self::Dataset, Self::Object];

    /// Depth slot of this variant in event subjects (0 for projects).
    pub fn level(self) -> usize {
        self as usize
    }

    /// Upper-case name, e.g. `DATASET`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Project => "PROJECT",
            Self::Collection => "COLLECTION",
            Self::Dataset => "DATASET",
            Self::Object => "OBJECT",
        }
    }

    /// Lower-case name with its article, e.g. `an object`.
    pub fn with_article(self) -> &'static str {
        match self {
            Self::Project => "a project",
            Self::Collection => "a collection",
            Self::Dataset => "a dataset",
            Self::Object => "an object",
        }
    }

    /// Checks that a resource of this variant may sit under `parent`: projects
    /// have no parent; everything else needs a parent of an outer level.
    pub fn check_parent(self, parent: Option<ResourceVariant>) -> Result<()> {
        match (self, parent) {
            (Self::Project, None) => Ok(()),
            (Self::Project, Some(_)) => Err(Error::invalid("parent_id", "a project has no parent")),
            (child, None) => Err(Error::invalid("parent_id", format!("is required for {}", child.with_article()))),
            (child, Some(parent)) if parent < child => Ok(()),
            (child, Some(parent)) => Err(Error::invalid(
                "parent_id",
                format!("{} cannot be placed under {}", child.with_article(), parent.with_article()),
            )),
        }
    }
}

/// One step of a resource's path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PathEntry {
    pub id: String,
    pub variant: ResourceVariant,
}

/// A stored resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub id: String,
    pub variant: ResourceVariant,
    pub name: String,
    pub parent_id: Option<String>,
    /// From the project down to this resource (inclusive); never empty.
    pub path: Vec<PathEntry>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub created_by: String,
}

impl Resource {
    /// Builds a resource under `parent` (whose path it extends).
    pub fn new(
        id: String,
        variant: ResourceVariant,
        name: String,
        parent: Option<&Resource>,
        created_by: String,
    ) -> Result<Self> {
        variant.check_parent(parent.map(|p| p.variant))?;
        let mut path = parent.map(|p| p.path.clone()).unwrap_or_default();
        path.push(PathEntry { id: id.clone(), variant });
        Ok(Resource {
            id,
            variant,
            name,
            parent_id: parent.map(|p| p.id.clone()),
            path,
            created_at: OffsetDateTime::now_utc(),
            created_by,
        })
    }

    /// Ids of this resource and its ancestors, innermost first.
    pub fn self_and_ancestors(&self) -> impl Iterator<Item = &str> {
        self.path.iter().rev().map(|p| p.id.as_str())
    }

    /// True when `other` is this resource or lies below it.
    pub fn contains(&self, other: &Resource) -> bool {
        other.path.iter().any(|p| p.id == self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ResourceVariant::*;

    #[test]
    fn nesting_follows_the_hierarchy() {
        let allowed = [
            (Project, None),
            (Collection, Some(Project)),
            (Dataset, Some(Project)),
            (Dataset, Some(Collection)),
            (Object, Some(Project)),
            (Object, Some(Collection)),
            (Object, Some(Dataset)),
        ];
        for child in ResourceVariant::ALL {
            for parent in [None, Some(Project), Some(Collection), Some(Dataset), Some(Object)] {
                let ok = child.check_parent(parent).is_ok();
                assert_eq!(ok, allowed.contains(&(child, parent)), "{child:?} under {parent:?}");
            }
        }
    }

    #[test]
    fn paths_extend_the_parent_path() {
        let p = Resource::new("P".into(), Project, "p".into(), None, "u".into()).unwrap();
        let d = Resource::new("D".into(), Dataset, "d".into(), Some(&p), "u".into()).unwrap();
        assert_eq!(d.path.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["P", "D"]);
        assert_eq!(d.self_and_ancestors().collect::<Vec<_>>(), ["D", "P"]);
        assert!(p.contains(&d));
        assert!(!d.contains(&p));
    }
}
