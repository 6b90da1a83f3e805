//! Scoped event consumers as stored: target, start position and type filters.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{
    event::check_type_name,
    resource::PathEntry,
    subject::{Scope, TypeFilter, filter_subjects},
};
use crate::error::{Error, Result};

/// Most entries in a consumer's type filter.
pub const MAX_TYPE_FILTERS: usize = 32;

/// What a consumer watches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// A resource (path fixed at creation), optionally with its subtree.
    Resource {
        resource_id: String,
        path: Vec<PathEntry>,
        include_subresources: bool,
    },
    /// Account events about a user.
    User {
        user_id: String,
    },
    Announcements,
    All,
}

/// Where a consumer starts in the events stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Start {
    All,
    FromTime {
        #[serde(with = "time::serde::rfc3339")]
        time: OffsetDateTime,
    },
    FromSequence {
        sequence: u64,
    },
    New,
}

/// A consumer as stored in the consumer registry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsumerRecord {
    pub id: String,
    pub owner: String,
    pub target: Target,
    pub start: Start,
    /// Variant names (`created`, ...) the consumer is limited to.
    pub variants: Vec<String>,
    /// Custom or system type names, or prefixes ending in `.*`.
    pub custom_types: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl ConsumerRecord {
    /// The JetStream filter subjects selecting exactly this consumer's events.
    pub fn filter_subjects(&self) -> Vec<String> {
        target_filter_subjects(&self.target, &self.variants, &self.custom_types)
    }
}

impl Target {
    /// The subject scope of the target.
    pub fn scope(&self) -> Scope {
        match self {
            Target::Resource { path, include_subresources, .. } => {
                Scope::Resource { path: path.clone(), include_subresources: *include_subresources }
            }
            Target::User { user_id } => Scope::User(user_id.clone()),
            Target::Announcements => Scope::Announcements,
            Target::All => Scope::All,
        }
    }
}

/// Type filters from variant names and custom types or `prefix.*` globs.
pub fn type_filters(variants: &[String], custom_types: &[String]) -> Vec<TypeFilter> {
    let variants = variants.iter().map(|v| TypeFilter::Exact(v.clone()));
    let custom = custom_types.iter().map(|t| match t.strip_suffix(".*") {
        Some(prefix) => TypeFilter::Prefix(prefix.to_owned()),
        None => TypeFilter::Exact(t.clone()),
    });
    variants.chain(custom).collect()
}

/// The JetStream filter subjects selecting `target` limited to the types.
pub fn target_filter_subjects(target: &Target, variants: &[String], custom_types: &[String]) -> Vec<String> {
    filter_subjects(&target.scope(), &type_filters(variants, custom_types))
}

/// Checks custom type filters: exact dotted names (system `herald.*` types
/// included) or prefixes ending in `.*`.
pub fn check_custom_type_filters(field: &str, types: &[String]) -> Result<()> {
    if types.len() > MAX_TYPE_FILTERS {
        return Err(Error::invalid(field, format!("has {} entries; the limit is {MAX_TYPE_FILTERS}", types.len())));
    }
    for (i, t) in types.iter().enumerate() {
        let field = format!("{field}[{i}]");
        match t.strip_suffix(".*") {
            Some(prefix) => check_prefix(&field, prefix)?,
            None => check_type_name(&field, t)?,
        }
    }
    Ok(())
}

fn check_prefix(field: &str, prefix: &str) -> Result<()> {
    // A prefix is one or more segments; reuse the type-name rules on it plus a dummy segment.
    check_type_name(field, &format!("{prefix}.x"))
        .map_err(|_| Error::invalid(field, "a glob must be a dotted prefix followed by \".*\", like \"job.*\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{resource::ResourceVariant, subject::subject_matches};

    fn record(variants: &[&str], custom: &[&str]) -> ConsumerRecord {
        ConsumerRecord {
            id: "C".into(),
            owner: "U".into(),
            target: Target::Resource {
                resource_id: "P".into(),
                path: vec![PathEntry { id: "P".into(), variant: ResourceVariant::Project }],
                include_subresources: true,
            },
            start: Start::New,
            variants: variants.iter().map(|s| s.to_string()).collect(),
            custom_types: custom.iter().map(|s| s.to_string()).collect(),
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn filters_combine_scope_variants_and_globs() {
        let filters = record(&["created"], &["job.*"]).filter_subjects();
        assert_eq!(filters, ["herald.ev.res.P.*.*.*.created", "herald.ev.res.P.*.*.*.job.>"]);
        assert!(filters.iter().any(|f| subject_matches(f, "herald.ev.res.P.C._._.job.step.done")));
        assert_eq!(record(&[], &[]).filter_subjects(), ["herald.ev.res.P.*.*.*.>"]);
    }

    #[test]
    fn type_filters_are_validated() {
        assert!(check_custom_type_filters("custom_types", &["job.*".into(), "herald.token.created".into()]).is_ok());
        let err = check_custom_type_filters("custom_types", &["ok.type".into(), "*".into()]).unwrap_err();
        assert!(err.to_string().contains("custom_types[1]"), "{err}");
        assert!(check_custom_type_filters("t", &["job.>".into()]).is_err());
        let many: Vec<String> = (0..33).map(|i| format!("a.t{i}")).collect();
        assert!(check_custom_type_filters("t", &many).unwrap_err().to_string().contains("limit is 32"));
    }

    #[test]
    fn records_round_trip_as_json() {
        let r = record(&["created"], &[]);
        let back: ConsumerRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
