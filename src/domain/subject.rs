//! The NATS subject layout of events, and consumer filters over it.
//!
//! Resource events are published on
//! `herald.ev.res.<project>.<collection>.<dataset>.<object>.<type>`, one fixed
//! slot per hierarchy level, with `_` where the path has no resource of that
//! level. Because every slot sits at a fixed position, one filter selects
//! exactly "this resource" (deeper slots `_`) or "this resource and all below"
//! (deeper slots `*`), for every level, and a type filter can follow either.
//! Published subjects never contain wildcards; ids and type segments are
//! validated subject tokens (see [`super::ids`], [`super::event`]).
//!
//! User-account events: `herald.ev.user.<user id>.<type>`; announcements:
//! `herald.ev.ann.<type>`.

use super::resource::PathEntry;

/// Every event subject; the events stream captures these.
pub const ALL_EVENTS: &str = "herald.ev.>";
const RESOURCE_PREFIX: &str = "herald.ev.res";
const USER_PREFIX: &str = "herald.ev.user";
const ANNOUNCEMENT_PREFIX: &str = "herald.ev.ann";
/// Placeholder for a hierarchy level the path skips.
const PAD: &str = "_";
const LEVELS: usize = 4;

/// Subject of an event of `event_type` on the resource whose path is `path`.
pub fn resource_subject(path: &[PathEntry], event_type: &str) -> String {
    let mut slots = [PAD; LEVELS];
    for entry in path {
        slots[entry.variant.level()] = &entry.id;
    }
    format!("{RESOURCE_PREFIX}.{}.{event_type}", slots.join("."))
}

/// Subject of an account event about `user_id`.
pub fn user_subject(user_id: &str, event_type: &str) -> String {
    format!("{USER_PREFIX}.{user_id}.{event_type}")
}

/// Subject of an announcement event.
pub fn announcement_subject(event_type: &str) -> String {
    format!("{ANNOUNCEMENT_PREFIX}.{event_type}")
}

/// What a consumer (or subscription) watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Events on one resource, optionally with everything below it.
    Resource { path: Vec<PathEntry>, include_subresources: bool },
    /// Account events about one user.
    User(String),
    /// Announcements.
    Announcements,
    /// Every event.
    All,
}

/// Selects events by type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TypeFilter {
    /// Exactly this type name.
    Exact(String),
    /// Every type below this dotted prefix (`job.*` selects `job.done`, `job.step.failed`).
    Prefix(String),
}

impl TypeFilter {
    fn tail(&self) -> String {
        match self {
            TypeFilter::Exact(name) => name.clone(),
            TypeFilter::Prefix(prefix) => format!("{prefix}.>"),
        }
    }

    fn covers(&self, other: &TypeFilter) -> bool {
        match (self, other) {
            (TypeFilter::Prefix(p), TypeFilter::Exact(t) | TypeFilter::Prefix(t)) => {
                t.len() > p.len() && t.starts_with(p.as_str()) && t.as_bytes()[p.len()] == b'.'
            }
            _ => false,
        }
    }
}

/// Removes duplicates and filters covered by a broader prefix, so the
/// resulting NATS filter subjects never overlap (the server rejects overlaps).
pub fn normalize_types(types: &[TypeFilter]) -> Vec<TypeFilter> {
    let mut out: Vec<TypeFilter> = types.to_vec();
    out.sort();
    out.dedup();
    let snapshot = out.clone();
    out.retain(|t| !snapshot.iter().any(|other| other.covers(t)));
    out
}

/// The NATS filter subjects selecting `scope` restricted to `types` (all
/// types when empty). The result is non-empty and non-overlapping.
pub fn filter_subjects(scope: &Scope, types: &[TypeFilter]) -> Vec<String> {
    let types = normalize_types(types);
    let tails: Vec<String> =
        if types.is_empty() { vec![">".to_owned()] } else { types.iter().map(TypeFilter::tail).collect() };
    let heads: Vec<String> = match scope {
        Scope::Resource { path, include_subresources } => vec![resource_head(path, *include_subresources)],
        Scope::User(user_id) => vec![format!("{USER_PREFIX}.{user_id}")],
        Scope::Announcements => vec![ANNOUNCEMENT_PREFIX.to_owned()],
        Scope::All if types.is_empty() => return vec![ALL_EVENTS.to_owned()],
        Scope::All => {
            vec![format!("{RESOURCE_PREFIX}.*.*.*.*"), format!("{USER_PREFIX}.*"), ANNOUNCEMENT_PREFIX.to_owned()]
        }
    };
    heads.iter().flat_map(|head| tails.iter().map(move |tail| format!("{head}.{tail}"))).collect()
}

fn resource_head(path: &[PathEntry], include_subresources: bool) -> String {
    let own_level = path.last().map_or(0, |e| e.variant.level());
    let mut slots = [PAD; LEVELS];
    for entry in path {
        slots[entry.variant.level()] = &entry.id;
    }
    for slot in slots.iter_mut().skip(own_level + 1) {
        *slot = if include_subresources { "*" } else { PAD };
    }
    format!("{RESOURCE_PREFIX}.{}", slots.join("."))
}

/// NATS subject matching: `*` matches one token, a final `>` one or more.
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for f in filter.split('.') {
        match (f, subject_tokens.next()) {
            (">", Some(_)) => return true,
            (_, None) => return false,
            ("*", Some(_)) => {}
            (f, Some(s)) if f == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

/// True when any of `filters` matches `subject`.
pub fn any_matches(filters: &[String], subject: &str) -> bool {
    filters.iter().any(|f| subject_matches(f, subject))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::resource::ResourceVariant::{self, *};

    fn path(entries: &[(&str, ResourceVariant)]) -> Vec<PathEntry> {
        entries.iter().map(|(id, v)| PathEntry { id: (*id).into(), variant: *v }).collect()
    }

    /// A full chain P > C > D > O plus shortcut shapes: D2 directly under P,
    /// O2 directly under P, O3 under C, O4 under D2.
    fn world() -> Vec<(&'static str, Vec<PathEntry>)> {
        vec![
            ("P", path(&[("P", Project)])),
            ("C", path(&[("P", Project), ("C", Collection)])),
            ("D", path(&[("P", Project), ("C", Collection), ("D", Dataset)])),
            ("O", path(&[("P", Project), ("C", Collection), ("D", Dataset), ("O", Object)])),
            ("D2", path(&[("P", Project), ("D2", Dataset)])),
            ("O2", path(&[("P", Project), ("O2", Object)])),
            ("O3", path(&[("P", Project), ("C", Collection), ("O3", Object)])),
            ("O4", path(&[("P", Project), ("D2", Dataset), ("O4", Object)])),
            ("Q", path(&[("Q", Project)])),
            ("QO", path(&[("Q", Project), ("QO", Object)])),
        ]
    }

    fn received(scope: &Scope, types: &[TypeFilter], event_type: &str) -> Vec<&'static str> {
        let filters = filter_subjects(scope, types);
        world()
            .into_iter()
            .filter(|(_, p)| any_matches(&filters, &resource_subject(p, event_type)))
            .map(|(name, _)| name)
            .collect()
    }

    #[test]
    fn published_subjects_have_one_slot_per_level_and_no_wildcards() {
        let w = world();
        let subject = |name: &str| resource_subject(&w.iter().find(|(n, _)| *n == name).unwrap().1, "created");
        assert_eq!(subject("P"), "herald.ev.res.P._._._.created");
        assert_eq!(subject("O"), "herald.ev.res.P.C.D.O.created");
        assert_eq!(subject("O2"), "herald.ev.res.P._._.O2.created");
        assert_eq!(subject("O4"), "herald.ev.res.P._.D2.O4.created");
        for (_, p) in w {
            let s = resource_subject(&p, "job.done");
            assert!(!s.contains('*') && !s.contains('>'), "{s}");
        }
    }

    #[test]
    fn own_scope_selects_exactly_the_resource_at_every_level() {
        for (name, p) in world() {
            let scope = Scope::Resource { path: p, include_subresources: false };
            assert_eq!(received(&scope, &[], "updated"), vec![name], "own scope of {name}");
        }
    }

    #[test]
    fn subtree_scope_selects_the_resource_and_everything_below_at_every_level() {
        let expected: [(&str, &[&str]); 10] = [
            ("P", &["P", "C", "D", "O", "D2", "O2", "O3", "O4"]),
            ("C", &["C", "D", "O", "O3"]),
            ("D", &["D", "O"]),
            ("O", &["O"]),
            ("D2", &["D2", "O4"]),
            ("O2", &["O2"]),
            ("O3", &["O3"]),
            ("O4", &["O4"]),
            ("Q", &["Q", "QO"]),
            ("QO", &["QO"]),
        ];
        for (name, want) in expected {
            let p = world().into_iter().find(|(n, _)| *n == name).unwrap().1;
            let scope = Scope::Resource { path: p, include_subresources: true };
            assert_eq!(received(&scope, &[], "deleted"), want.to_vec(), "subtree scope of {name}");
        }
    }

    #[test]
    fn type_filters_narrow_any_scope() {
        let p = world().into_iter().find(|(n, _)| *n == "C").unwrap().1;
        let scope = Scope::Resource { path: p, include_subresources: true };
        let only_created = [TypeFilter::Exact("created".into())];
        assert_eq!(received(&scope, &only_created, "created"), ["C", "D", "O", "O3"]);
        assert!(received(&scope, &only_created, "updated").is_empty());
        let jobs = [TypeFilter::Prefix("job".into())];
        assert_eq!(received(&scope, &jobs, "job.step.failed"), ["C", "D", "O", "O3"]);
        assert!(received(&scope, &jobs, "jobs.done").is_empty());
        assert!(received(&scope, &jobs, "created").is_empty());
    }

    #[test]
    fn user_announcement_and_all_scopes() {
        let user = filter_subjects(&Scope::User("U1".into()), &[]);
        assert!(any_matches(&user, &user_subject("U1", "herald.token.created")));
        assert!(!any_matches(&user, &user_subject("U2", "herald.token.created")));
        let ann = filter_subjects(&Scope::Announcements, &[]);
        assert!(any_matches(&ann, &announcement_subject("herald.announcement")));
        assert!(!any_matches(&ann, &user_subject("U1", "herald.token.created")));
        let all = filter_subjects(&Scope::All, &[]);
        assert_eq!(all, [ALL_EVENTS]);
        let all_created = filter_subjects(&Scope::All, &[TypeFilter::Exact("herald.user.created".into())]);
        assert!(any_matches(&all_created, &user_subject("U1", "herald.user.created")));
        assert!(!any_matches(&all_created, &user_subject("U1", "herald.token.created")));
        assert!(!any_matches(&all_created, &resource_subject(&world()[0].1, "created")));
    }

    #[test]
    fn covered_type_filters_are_dropped_so_filters_never_overlap() {
        let types = [
            TypeFilter::Exact("job.done".into()),
            TypeFilter::Prefix("job".into()),
            TypeFilter::Prefix("job.step".into()),
            TypeFilter::Exact("created".into()),
            TypeFilter::Exact("created".into()),
            TypeFilter::Exact("jobs.x".into()),
        ];
        assert_eq!(
            normalize_types(&types),
            [TypeFilter::Exact("created".into()), TypeFilter::Exact("jobs.x".into()), TypeFilter::Prefix("job".into())]
        );
    }

    #[test]
    fn subject_matching_follows_nats_rules() {
        assert!(subject_matches("a.*.c", "a.b.c"));
        assert!(!subject_matches("a.*.c", "a.b.c.d"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(!subject_matches("a.b", "a"));
        assert!(subject_matches("a.b", "a.b"));
    }
}
