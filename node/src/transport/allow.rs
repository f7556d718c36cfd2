//! The allow-list: the node keys that may connect, shared with the handshake.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

/// The set of node keys allowed to connect to this node; shared, and changeable at runtime.
///
/// Clones share the same set. A change applies to every handshake that starts checking the
/// client key afterwards.
#[derive(Clone, Default)]
pub struct AllowList {
    keys: Arc<RwLock<HashSet<[u8; 32]>>>,
}

impl AllowList {
    /// An empty allow-list: nobody may connect.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows `key`. Returns `false` if it was already allowed.
    pub fn insert(&self, key: [u8; 32]) -> bool {
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key)
    }

    /// Disallows `key`. Returns `true` if it was allowed.
    pub fn remove(&self, key: &[u8; 32]) -> bool {
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key)
    }

    /// Whether `key` is allowed.
    pub fn contains(&self, key: &[u8; 32]) -> bool {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(key)
    }

    /// Number of allowed keys.
    pub fn len(&self) -> usize {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no key is allowed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllowList")
            .field("keys", &self.len())
            .finish()
    }
}
