//! An in-memory copy of one key-value bucket, kept current by a watch.
//!
//! Writers apply their own writes at once (read-your-writes on this replica);
//! the watch applies everyone's writes in revision order. A revision check
//! makes both paths commute, and a local delete leaves a tombstone until the
//! watch confirms it, so a late, older put can never resurrect a key.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

struct Slot<T> {
    /// Revision of the value; `None` for a local delete the watch has not confirmed yet.
    revision: Option<u64>,
    value: Option<Arc<T>>,
}

/// The mirrored key space of one bucket.
pub struct Mirror<T> {
    slots: RwLock<HashMap<String, Slot<T>>>,
}

impl<T> Default for Mirror<T> {
    fn default() -> Self {
        Mirror { slots: RwLock::new(HashMap::new()) }
    }
}

impl<T> Mirror<T> {
    /// The current value of `key`: `Some(None)` for a known deletion, `None` when unknown.
    pub fn lookup(&self, key: &str) -> Option<Option<Arc<T>>> {
        self.slots.read().expect("mirror lock").get(key).map(|slot| slot.value.clone())
    }

    /// Applies a put of `value` at `revision` seen by the watch.
    pub fn put(&self, key: &str, revision: u64, value: Arc<T>) {
        let mut slots = self.slots.write().expect("mirror lock");
        match slots.get_mut(key) {
            None => {
                slots.insert(key.to_owned(), Slot { revision: Some(revision), value: Some(value) });
            }
            // An unconfirmed local delete hides every put until the watch
            // delivers that delete; puts after it then arrive in order.
            Some(Slot { revision: None, .. }) => {}
            Some(Slot { revision: Some(current), .. }) if *current >= revision => {}
            Some(slot) => {
                slot.revision = Some(revision);
                slot.value = Some(value);
            }
        }
    }

    /// Applies a local put that certainly follows any local delete of `key`.
    pub fn put_local(&self, key: &str, revision: u64, value: Arc<T>) {
        let mut slots = self.slots.write().expect("mirror lock");
        let slot = slots.entry(key.to_owned()).or_insert(Slot { revision: None, value: None });
        if slot.revision.is_none_or(|r| r < revision) {
            slot.revision = Some(revision);
            slot.value = Some(value);
        }
    }

    /// Applies a local delete whose revision is not known.
    pub fn delete_local(&self, key: &str) {
        let mut slots = self.slots.write().expect("mirror lock");
        slots.insert(key.to_owned(), Slot { revision: None, value: None });
    }

    /// Applies a delete or purge seen by the watch at `revision`.
    pub fn delete_confirmed(&self, key: &str, revision: u64) {
        let mut slots = self.slots.write().expect("mirror lock");
        if slots.get(key).is_some_and(|slot| slot.revision.is_none_or(|r| r <= revision)) {
            slots.remove(key);
        }
    }

    /// Every live value whose key and value satisfy `keep`.
    pub fn select(&self, mut keep: impl FnMut(&str, &T) -> bool) -> Vec<Arc<T>> {
        let slots = self.slots.read().expect("mirror lock");
        slots.iter().filter_map(|(k, slot)| slot.value.as_ref().filter(|v| keep(k, v)).cloned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(m: &Mirror<u32>, key: &str) -> Option<u32> {
        m.lookup(key).flatten().map(|v| *v)
    }

    #[test]
    fn older_revisions_never_replace_newer_ones() {
        let m = Mirror::default();
        m.put_local("k", 5, Arc::new(5));
        m.put("k", 4, Arc::new(4));
        assert_eq!(value(&m, "k"), Some(5));
        m.put("k", 6, Arc::new(6));
        assert_eq!(value(&m, "k"), Some(6));
    }

    #[test]
    fn a_local_delete_is_not_undone_by_a_late_watch_put() {
        let m = Mirror::default();
        m.put("k", 1, Arc::new(1));
        m.delete_local("k");
        m.put("k", 1, Arc::new(1));
        assert_eq!(m.lookup("k"), Some(None), "tombstone hides the stale put");
        m.delete_confirmed("k", 2);
        assert_eq!(m.lookup("k"), None, "confirmed delete forgets the key");
    }

    #[test]
    fn a_recreation_after_a_local_delete_wins() {
        let m = Mirror::default();
        m.delete_local("k");
        m.put_local("k", 9, Arc::new(9));
        m.delete_confirmed("k", 8);
        assert_eq!(value(&m, "k"), Some(9));
    }

    #[test]
    fn select_skips_tombstones() {
        let m = Mirror::default();
        m.put("a", 1, Arc::new(1));
        m.put("b", 2, Arc::new(2));
        m.delete_local("b");
        let mut all: Vec<u32> = m.select(|_, _| true).into_iter().map(|v| *v).collect();
        all.sort();
        assert_eq!(all, [1]);
    }
}
