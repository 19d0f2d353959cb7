//! The engine's one hashed collection: a map that is looked up by key and
//! never iterated.
//!
//! Every input names its room by id, and a fleet holds tens of thousands
//! of rooms: a B-tree lookup compares the id with a dozen or more keys
//! that share the scheduler's name as a prefix, each comparison a call to
//! `memcmp` and most of them a cache miss. A hash lookup reads one bucket.
//! Iteration order is what a hash seed would make process-random, so this
//! type offers none: what a decision walks in order (the fleet's ids, its
//! indexes) stays in ordered collections, and the results of `get`,
//! `insert` and `remove` do not depend on the seed. `scripts/architecture`
//! allows a hashed collection in this file only and checks that the type
//! exposes no iteration.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;

/// Keys to values, by lookup only. The hasher is foldhash (hashbrown's
/// default; in place of std's SipHash it took a one-day Dota 2 plan from
/// 11.5-11.9 s to 10.3-10.4 s, docs/PERFORMANCE.md), seeded
/// at random for each map so that chosen ids cannot flood one bucket;
/// nothing observable depends on the seed, as nothing iterates the map
/// (its `Debug` shows the length only).
#[derive(Clone)]
pub struct IdIndex<K, V> {
    map: HashMap<K, V, foldhash::fast::RandomState>,
}

impl<K, V> fmt::Debug for IdIndex<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdIndex")
            .field("len", &self.map.len())
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V> Default for IdIndex<K, V> {
    fn default() -> Self {
        IdIndex {
            map: HashMap::default(),
        }
    }
}

impl<K: Hash + Eq, V> IdIndex<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_mut(key)
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(key)
    }

    /// Returns the value the key had.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.map.insert(key, value)
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_up_inserts_and_removes_by_borrowed_key() {
        let mut index: IdIndex<String, u32> = IdIndex::new();
        assert!(index.is_empty());
        assert_eq!(index.insert("s-abcde".to_string(), 1), None);
        assert_eq!(index.insert("s-abcde".to_string(), 2), Some(1));
        assert_eq!(index.get("s-abcde"), Some(&2));
        *index.get_mut("s-abcde").unwrap() += 1;
        assert!(index.contains_key("s-abcde"));
        assert!(!index.contains_key("s-abcdf"));
        assert_eq!(index.len(), 1);
        assert_eq!(index.remove("s-abcde"), Some(3));
        assert_eq!(index.remove("s-abcde"), None);
        assert!(index.is_empty());
    }
}
