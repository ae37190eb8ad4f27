//! Shared informers: one watch per (kind, path, label selector, field selector), handed to any
//! number of consumers (client-go's `SharedInformerFactory`).

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::{Serialize, de::DeserializeOwned};

use super::{Core, Informer, InformerError, InformerOptions, SubscribeOptions, Subscription};
use crate::{Client, Object, Request, resource::ObjectList};

/// What identifies one shared watch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    kind: TypeId,
    path: String,
    label_selector: Option<String>,
    field_selector: Option<String>,
}

/// The running informers: for each key, a serial number and the `Arc<Core<K>>`.
type Entries = HashMap<Key, (u64, Box<dyn Any + Send + Sync>)>;
type Map = Mutex<Entries>;

fn lock(map: &Map) -> MutexGuard<'_, Entries> {
    map.lock().unwrap_or_else(|e| e.into_inner())
}

/// An informer's place in its factory, so that it can leave it.
pub(crate) struct Registration {
    map: Weak<Map>,
    key: Key,
    serial: u64,
}

impl Registration {
    /// Decides under the factory's lock whether the informer stops (`decide`), and if so removes
    /// it: a consumer asking meanwhile gets either the running informer or a new one.
    pub(crate) fn retire(&self, decide: impl FnOnce() -> bool) -> bool {
        let Some(map) = self.map.upgrade() else {
            return decide();
        };
        let mut map = lock(&map);
        if !decide() {
            return false;
        }
        if map.get(&self.key).is_some_and(|(s, _)| *s == self.serial) {
            map.remove(&self.key);
        }
        true
    }

    /// The informer ended (stopped or failed): its key is free.
    pub(crate) fn forget(&self) {
        if let Some(map) = self.map.upgrade() {
            let mut map = lock(&map);
            if map.get(&self.key).is_some_and(|(s, _)| *s == self.serial) {
                map.remove(&self.key);
            }
        }
    }
}

/// A factory of shared informers: every consumer asking for the same kind, path (resource and
/// namespace) and selectors gets the same informer, hence one watch and one store.
///
/// The watch stops when its last handle and subscription are dropped, after the linger (default
/// 30 s here), unless someone asks for it again meanwhile.
#[derive(Clone)]
pub struct Informers {
    client: Client,
    options: InformerOptions,
    map: Arc<Map>,
    serial: Arc<AtomicU64>,
}

impl std::fmt::Debug for Informers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informers")
            .field("running", &self.running())
            .finish_non_exhaustive()
    }
}

impl Informers {
    /// A factory whose informers use `client`, the default options and a linger of 30 s.
    pub fn new(client: Client) -> Self {
        Informers {
            client,
            options: InformerOptions::new().linger(Duration::from_secs(30)),
            map: Arc::default(),
            serial: Arc::default(),
        }
    }

    /// The options of the informers it starts from now on. A checkpoint in them is ignored: one
    /// file cannot serve several watches (start an [`Informer`] of its own for that).
    pub fn options(mut self, options: InformerOptions) -> Self {
        self.options = options;
        self.options.checkpoint = None;
        self
    }

    /// The informer for `request` (its kind, path and selectors): the running one, or a new one.
    pub fn informer<K>(&self, request: Request<ObjectList<K>>) -> Result<Informer<K>, InformerError>
    where
        K: Object + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let key = Key {
            kind: TypeId::of::<K>(),
            path: request.path(),
            label_selector: request.params().label_selector.clone(),
            field_selector: request.params().field_selector.clone(),
        };
        let mut map = lock(&self.map);
        if let Some((_, entry)) = map.get(&key)
            && let Some(core) = entry.downcast_ref::<Arc<Core<K>>>()
            && !core.retired.load(Ordering::SeqCst)
        {
            return Ok(Informer::from_core(core.clone()));
        }
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let registration = super::factory::Registration {
            map: Arc::downgrade(&self.map),
            key: key.clone(),
            serial,
        };
        let informer = Informer::start_registered(
            self.client.clone(),
            request,
            self.options.clone(),
            Some(registration),
            None,
        )?
        .0;
        map.insert(key, (serial, Box::new(informer.user.0.clone())));
        Ok(informer)
    }

    /// Subscribes to the informer for `request` (started if need be); see
    /// [`Informer::subscribe_with`].
    pub fn subscribe<K>(
        &self,
        request: Request<ObjectList<K>>,
        options: SubscribeOptions,
    ) -> Result<Subscription<K>, InformerError>
    where
        K: Object + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        Ok(self.informer(request)?.subscribe_with(options))
    }

    /// How many informers (watches) this factory runs now.
    pub fn running(&self) -> usize {
        lock(&self.map).len()
    }
}
