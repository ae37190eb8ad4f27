//! User indexes (client-go's `Indexers`): a function from an object to the values it is filed
//! under (a label's value, an owner's UID, a node name), kept up to date on every change so that
//! a lookup by value reads a set instead of scanning the store.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use super::store::Key;

/// An index function: the values an object is filed under (none, one or several).
pub type IndexFn<K> = dyn Fn(&K) -> Vec<String> + Send + Sync;

/// One index: its function and, for each value, the keys of the objects filed under it.
struct Index<K> {
    function: Arc<IndexFn<K>>,
    by_value: HashMap<String, BTreeSet<Key>>,
}

impl<K> Index<K> {
    fn add(&mut self, key: &Key, values: Vec<String>) {
        for value in values {
            self.by_value.entry(value).or_default().insert(key.clone());
        }
    }

    fn remove(&mut self, key: &Key, values: Vec<String>) {
        for value in values {
            if let Some(keys) = self.by_value.get_mut(&value) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_value.remove(&value);
                }
            }
        }
    }
}

/// Every index of a store, by name.
pub(crate) struct Indexes<K> {
    indexes: BTreeMap<String, Index<K>>,
}

impl<K> Default for Indexes<K> {
    fn default() -> Self {
        Indexes {
            indexes: BTreeMap::new(),
        }
    }
}

impl<K> Indexes<K> {
    /// Adds (or replaces) an index, filing every object of `all` at once.
    pub(crate) fn insert<'a>(
        &mut self,
        name: &str,
        function: Arc<IndexFn<K>>,
        all: impl Iterator<Item = (Key, &'a K)>,
    ) where
        K: 'a,
    {
        let mut index = Index {
            function,
            by_value: HashMap::new(),
        };
        for (key, object) in all {
            let values = (index.function)(object);
            index.add(&key, values);
        }
        self.indexes.insert(name.to_string(), index);
    }

    /// Refiles `key` after a change from `old` to `new` (either absent for a create or a delete).
    /// Only the values that changed are touched.
    pub(crate) fn update(&mut self, key: &Key, old: Option<&K>, new: Option<&K>) {
        for index in self.indexes.values_mut() {
            let mut before = old.map(|o| (index.function)(o)).unwrap_or_default();
            let mut after = new.map(|n| (index.function)(n)).unwrap_or_default();
            before.sort();
            before.dedup();
            after.sort();
            after.dedup();
            let gone: Vec<String> = before
                .iter()
                .filter(|v| after.binary_search(v).is_err())
                .cloned()
                .collect();
            let came: Vec<String> = after
                .iter()
                .filter(|v| before.binary_search(v).is_err())
                .cloned()
                .collect();
            index.remove(key, gone);
            index.add(key, came);
        }
    }

    /// The keys filed under `value` in `index`; `None` when there is no such index.
    pub(crate) fn keys(&self, index: &str, value: &str) -> Option<Vec<Key>> {
        let index = self.indexes.get(index)?;
        Some(
            index
                .by_value
                .get(value)
                .map(|keys| keys.iter().cloned().collect())
                .unwrap_or_default(),
        )
    }

    /// The values `index` files objects under now, sorted.
    pub(crate) fn values(&self, index: &str) -> Option<Vec<String>> {
        let index = self.indexes.get(index)?;
        let mut values: Vec<String> = index.by_value.keys().cloned().collect();
        values.sort();
        Some(values)
    }
}
