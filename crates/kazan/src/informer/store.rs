//! The informer's cache: objects by namespace and name, the version they reflect, whether the first
//! list is complete, and the user's indexes. The informer's task is its only writer; every
//! [`Store`] handle reads it.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use tokio::sync::watch;

use super::{
    InformerError,
    index::{IndexFn, Indexes},
};
use crate::Object;

/// Where an object lives in the store: its namespace (`""` for cluster-scoped objects) and name.
pub(crate) type Key = (String, String);

/// The key of an object.
pub(crate) fn key_of<K: Object>(object: &K) -> Key {
    (
        object.namespace().unwrap_or_default().to_string(),
        object.name().to_string(),
    )
}

/// One cached object and the relist generation that last saw it (mark-and-sweep).
pub(crate) struct Entry<K> {
    held: Held<K>,
    pub(crate) generation: u64,
}

/// How an entry holds its object.
enum Held<K> {
    /// Decoded and shared with subscribers.
    Decoded(Arc<K>),
    /// As compact JSON ([`InformerOptions::compact_store`](super::InformerOptions::compact_store)).
    Compact(Compact),
}

/// An object kept as compact JSON in an allocation of its own, sized to it: it never keeps a
/// network buffer alive. Its identity (the map key and `resource_version`) is readable without
/// decoding.
struct Compact {
    resource_version: Option<Box<str>>,
    bytes: Box<[u8]>,
}

/// How a compact store encodes and decodes its objects: function pointers made where `K` is known
/// to be (de)serializable, so that the store's own bounds stay `K: Object`.
pub(crate) struct Codec<K> {
    pub(crate) encode: fn(&K) -> Result<Vec<u8>, serde_json::Error>,
    pub(crate) decode: fn(&[u8]) -> Result<K, serde_json::Error>,
}

/// Reads a store's numbers while the store lives; `None` once it is gone.
pub(crate) type StatsReader = Box<dyn Fn() -> Option<StoreStats> + Send + Sync>;

/// What a store holds, in numbers ([`Store::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Objects held.
    pub objects: usize,
    /// Whether objects are kept as compact JSON.
    pub compact: bool,
    /// Bytes of compact JSON held (0 for a store of decoded objects, whose size the allocator
    /// alone knows).
    pub compact_bytes: usize,
    /// Relists completed after a 410 Gone (or a list started over).
    pub relists: u64,
    /// Objects a relist did not contain, reported as `Deleted { final_state_unknown: true }`.
    pub synthesized_deletes: u64,
}

/// Where the store stands towards its first complete list.
#[derive(Clone, Debug)]
pub(crate) enum SyncState {
    /// The first list (or the checkpoint) is not applied yet.
    Pending,
    /// The store holds a complete list (or checkpoint) and what followed it.
    Synced,
    /// The informer ended before the store was ever synced.
    Ended(Arc<InformerError>),
}

/// The store's contents, behind the lock.
pub(crate) struct StoreState<K> {
    /// Namespace → name → entry: the namespace index is the outer map.
    objects: BTreeMap<String, BTreeMap<String, Entry<K>>>,
    len: usize,
    pub(crate) resource_version: Option<String>,
    /// Between a 410 Gone and the end of the relist that follows.
    pub(crate) relisting: bool,
    pub(crate) indexes: Indexes<K>,
    /// `Some` for a compact store.
    codec: Option<Codec<K>>,
    /// Bytes of compact JSON held.
    compact_bytes: usize,
    /// Relists completed (for [`StoreStats`]).
    pub(crate) relists: u64,
    /// Objects relists reported deleted (for [`StoreStats`]).
    pub(crate) synthesized_deletes: u64,
}

/// What a listed object did to the store during a (re)list.
pub(crate) enum Listed<K> {
    /// A key the store did not hold.
    Added(Arc<K>),
    /// A known key with another resourceVersion: the previous and the new object.
    Modified { old: Arc<K>, new: Arc<K> },
    /// The same key at the same version: only marked as seen, the listed copy dropped.
    Unchanged,
}

impl<K: Object> StoreState<K> {
    fn new(codec: Option<Codec<K>>) -> Self {
        StoreState {
            objects: BTreeMap::new(),
            len: 0,
            resource_version: None,
            relisting: false,
            indexes: Indexes::default(),
            codec,
            compact_bytes: 0,
            relists: 0,
            synthesized_deletes: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The object held by `entry`, decoded if it is compact (`None`, logged, if it no longer
    /// decodes: it was encoded from a decoded object, so only a bug gets here).
    fn object(&self, entry: &Entry<K>) -> Option<Arc<K>> {
        match (&entry.held, &self.codec) {
            (Held::Decoded(object), _) => Some(object.clone()),
            (Held::Compact(compact), Some(codec)) => match (codec.decode)(&compact.bytes) {
                Ok(object) => Some(Arc::new(object)),
                Err(error) => {
                    tracing::error!("a compact store's object does not decode: {error}");
                    None
                }
            },
            (Held::Compact(_), None) => None,
        }
    }

    /// How to hold `object`: as it is, or as compact JSON (decoded if it does not encode).
    fn hold(&mut self, object: Arc<K>) -> Held<K> {
        let Some(codec) = &self.codec else {
            return Held::Decoded(object);
        };
        match (codec.encode)(object.as_ref()) {
            Ok(bytes) => {
                self.compact_bytes += bytes.len();
                Held::Compact(Compact {
                    resource_version: object.resource_version().map(Box::from),
                    bytes: bytes.into_boxed_slice(),
                })
            }
            Err(error) => {
                tracing::error!("an object does not encode for the compact store, kept decoded: {error}");
                Held::Decoded(object)
            }
        }
    }

    /// Accounts for an entry leaving the store.
    fn release(&mut self, entry: &Entry<K>) {
        if let Held::Compact(compact) = &entry.held {
            self.compact_bytes -= compact.bytes.len();
        }
    }

    pub(crate) fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let entry = self.objects.get(namespace).and_then(|names| names.get(name))?;
        self.object(entry)
    }

    /// Every object, in namespace and name order (decoded one by one from a compact store).
    pub(crate) fn iter(&self) -> impl Iterator<Item = Arc<K>> + '_ {
        self.objects
            .values()
            .flat_map(|names| names.values().filter_map(|e| self.object(e)))
    }

    /// The resourceVersion of an object, read without decoding it.
    pub(crate) fn version_of(&self, namespace: &str, name: &str) -> Option<Option<String>> {
        let entry = self.objects.get(namespace).and_then(|names| names.get(name))?;
        Some(entry_version(entry).map(str::to_string))
    }

    pub(crate) fn stats(&self) -> StoreStats {
        StoreStats {
            objects: self.len,
            compact: self.codec.is_some(),
            compact_bytes: self.compact_bytes,
            relists: self.relists,
            synthesized_deletes: self.synthesized_deletes,
        }
    }

    /// Inserts or replaces an object, marked with `generation`; returns the one it replaced.
    pub(crate) fn upsert(&mut self, object: Arc<K>, generation: u64) -> Option<Arc<K>> {
        let (namespace, name) = key_of(object.as_ref());
        let held = self.hold(object.clone());
        let names = self.objects.entry(namespace.clone()).or_default();
        let replaced = names.insert(name.clone(), Entry { held, generation });
        let old = match replaced {
            Some(entry) => {
                self.release(&entry);
                self.object(&entry)
            }
            None => {
                self.len += 1;
                None
            }
        };
        self.indexes
            .update(&(namespace, name), old.as_deref(), Some(object.as_ref()));
        old
    }

    /// Applies one object of a (re)list: marks it seen by `generation`, and replaces the cached
    /// copy only when the version differs.
    pub(crate) fn apply_listed(&mut self, object: K, generation: u64) -> Listed<K> {
        let (namespace, name) = key_of(&object);
        if let Some(entry) = self
            .objects
            .get_mut(&namespace)
            .and_then(|names| names.get_mut(&name))
        {
            entry.generation = generation;
            if entry_version(entry) == object.resource_version() {
                return Listed::Unchanged;
            }
        }
        let new = Arc::new(object);
        match self.upsert(new.clone(), generation) {
            Some(old) => Listed::Modified { old, new },
            None => Listed::Added(new),
        }
    }

    /// Removes an object; returns it.
    pub(crate) fn remove(&mut self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let names = self.objects.get_mut(namespace)?;
        let entry = names.remove(name)?;
        if names.is_empty() {
            self.objects.remove(namespace);
        }
        self.len -= 1;
        self.release(&entry);
        let object = self.object(&entry)?;
        self.indexes.update(
            &(namespace.to_string(), name.to_string()),
            Some(object.as_ref()),
            None,
        );
        Some(object)
    }

    /// Removes every object a (re)list of `generation` did not contain; returns them.
    pub(crate) fn sweep(&mut self, generation: u64) -> Vec<Arc<K>> {
        let stale: Vec<Key> = self
            .objects
            .iter()
            .flat_map(|(namespace, names)| {
                names
                    .iter()
                    .filter(|(_, e)| e.generation < generation)
                    .map(|(name, _)| (namespace.clone(), name.clone()))
            })
            .collect();
        stale
            .iter()
            .filter_map(|(namespace, name)| self.remove(namespace, name))
            .collect()
    }

    /// The objects of one namespace.
    fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.objects
            .get(namespace)
            .map(|names| names.values().filter_map(|e| self.object(e)).collect())
            .unwrap_or_default()
    }
}

/// An entry's resourceVersion, without decoding.
fn entry_version<K: Object>(entry: &Entry<K>) -> Option<&str> {
    match &entry.held {
        Held::Decoded(object) => object.resource_version(),
        Held::Compact(compact) => compact.resource_version.as_deref(),
    }
}

/// What the store handles share.
pub(crate) struct Shared<K> {
    state: RwLock<StoreState<K>>,
    synced: watch::Sender<SyncState>,
}

/// A read handle on an informer's cache: cheap to clone, safe to share between tasks.
///
/// The informer's task applies every event to it before handing the event to subscribers, so a
/// subscriber that reads the store on an event sees at least that event applied. Objects are
/// shared (`Arc<K>`): a read copies pointers, never objects.
pub struct Store<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for Store<K> {
    fn clone(&self) -> Self {
        Store {
            shared: self.shared.clone(),
        }
    }
}

impl<K> std::fmt::Debug for Store<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl<K: Object> Store<K> {
    pub(crate) fn new(codec: Option<Codec<K>>) -> Self {
        Store {
            shared: Arc::new(Shared {
                state: RwLock::new(StoreState::new(codec)),
                synced: watch::Sender::new(SyncState::Pending),
            }),
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, StoreState<K>> {
        self.shared.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, StoreState<K>> {
        self.shared.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A reader of the store's numbers that does not keep the store alive (for metrics).
    pub(crate) fn stats_reader(&self) -> StatsReader
    where
        K: Send + Sync + 'static,
    {
        let shared = Arc::downgrade(&self.shared);
        Box::new(move || {
            shared
                .upgrade()
                .map(|shared| shared.state.read().unwrap_or_else(|e| e.into_inner()).stats())
        })
    }

    pub(crate) fn set_sync_state(&self, state: SyncState) {
        self.shared.synced.send_replace(state);
    }

    /// The object `name` in `namespace` (`None` for cluster-scoped objects): a lookup, not a scan.
    ///
    /// ```
    /// # fn demo(store: &kazan::informer::Store<k8s_openapi::api::core::v1::Pod>) {
    /// let pod = store.get("default", "web-0");
    /// let node = store.get(None, "node-a"); // a cluster-scoped kind
    /// # }
    /// ```
    pub fn get<'a>(&self, namespace: impl Into<Option<&'a str>>, name: &str) -> Option<Arc<K>> {
        self.read().get(namespace.into().unwrap_or_default(), name)
    }

    /// Every object, in namespace and name order: a snapshot of pointers (of objects decoded
    /// now, from a compact store).
    pub fn list(&self) -> Vec<Arc<K>> {
        self.read().iter().collect()
    }

    /// The resourceVersion of the object `name` in `namespace`, read without decoding it (from a
    /// compact store too); `None` when the store does not hold it.
    pub fn resource_version_of<'a>(
        &self,
        namespace: impl Into<Option<&'a str>>,
        name: &str,
    ) -> Option<Option<String>> {
        self.read().version_of(namespace.into().unwrap_or_default(), name)
    }

    /// How many objects the store holds, and, for a compact store, how many bytes of JSON.
    pub fn stats(&self) -> StoreStats {
        self.read().stats()
    }

    /// The objects of one namespace (the built-in namespace index): a lookup, not a scan.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.read().in_namespace(namespace)
    }

    /// The objects whose index `index` (see [`Informer::index_by`](super::Informer::index_by))
    /// yields `value`, or `None` when no such index exists. A lookup, not a scan.
    pub fn by_index(&self, index: &str, value: &str) -> Option<Vec<Arc<K>>> {
        let state = self.read();
        let keys = state.indexes.keys(index, value)?;
        Some(
            keys.iter()
                .filter_map(|(namespace, name)| state.get(namespace, name))
                .collect(),
        )
    }

    /// The values index `index` holds now, sorted, or `None` when no such index exists.
    pub fn index_values(&self, index: &str) -> Option<Vec<String>> {
        self.read().indexes.values(index)
    }

    /// How many objects the store holds.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the store holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The resourceVersion the store reflects: the last complete list's, then the last event's or
    /// bookmark's. During a relist it stays at the version before the relist until the relist is
    /// complete. `None` before the first list.
    pub fn resource_version(&self) -> Option<String> {
        self.read().resource_version.clone()
    }

    /// Whether a relist (after 410 Gone) is under way: applied in place (the default), the store
    /// then holds a mix of the old state and the new one; either way it keeps the version before
    /// the relist until the relist is complete.
    pub fn is_relisting(&self) -> bool {
        self.read().relisting
    }

    /// Whether the first complete list (or a checkpoint) has been applied.
    pub fn is_synced(&self) -> bool {
        matches!(*self.shared.synced.borrow(), SyncState::Synced)
    }

    /// Waits until the first complete list (every page of it), or a checkpoint, has been applied.
    /// Returns at once when it already has; an error when the informer ended before that (its
    /// watch failed, or it was stopped).
    pub async fn wait_synced(&self) -> Result<(), Arc<InformerError>> {
        let mut rx = self.shared.synced.subscribe();
        let state = rx
            .wait_for(|s| !matches!(s, SyncState::Pending))
            .await
            .map(|s| s.clone());
        match state {
            Ok(SyncState::Synced) | Ok(SyncState::Pending) => Ok(()),
            Ok(SyncState::Ended(e)) => Err(e),
            // The sender lives as long as this handle: unreachable, but not worth a panic.
            Err(_) => Err(Arc::new(InformerError::Ended)),
        }
    }

    /// Adds (or replaces) an index, built at once over the objects present.
    pub(crate) fn add_index(&self, name: &str, index: Arc<IndexFn<K>>) {
        let mut state = self.write();
        let all: Vec<(Key, Arc<K>)> = state
            .iter()
            .map(|object| (key_of(object.as_ref()), object))
            .collect();
        state.indexes.insert(
            name,
            index,
            all.iter().map(|(key, object)| (key.clone(), object.as_ref())),
        );
    }
}
