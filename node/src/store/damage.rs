//! Messages found damaged: their envelopes no longer match their checksums (or are gone), so
//! they are marked by place, to be fetched again from peers that hold them. Storing a marked
//! message again repairs it and clears its mark (see `Engine::apply_messages`).

use liaison_protocol::{MessageId, Place};
use tokio::sync::watch;

use super::keys::{place_of, AuthorKey, ID_LEN, TREE_DAMAGED};
use super::{Engine, Store, StoreError};

impl Store {
    /// The messages found damaged and not yet stored again, with their places.
    pub fn damaged(&self) -> Result<Vec<(MessageId, Place)>, StoreError> {
        self.engine()?.damaged_messages()
    }

    /// A value that changes whenever a message is newly found damaged: watch it to fetch such
    /// messages again (see [`Store::damaged`]).
    pub fn damage_notices(&self) -> watch::Receiver<u64> {
        self.inner.damage.subscribe()
    }
}

impl Engine {
    /// Marks message `id` at `key` as damaged (unless it is marked already) and tells
    /// whoever watches [`Store::damage_notices`].
    pub(super) fn mark_damaged(&self, key: &AuthorKey, id: &MessageId) -> Result<(), StoreError> {
        let old = self
            .damaged
            .insert(&key[..], &id.as_bytes()[..])
            .map_err(|e| self.engine("marking a damaged message", e))?;
        if old.is_none() {
            tracing::error!(
                path = %self.path.display(),
                id = %id,
                "a stored message is damaged; it is fetched again from peers that hold it"
            );
            self.notices.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    /// Whether message `id` at `key` is marked damaged.
    pub(super) fn is_damaged(&self, key: &AuthorKey, id: &MessageId) -> Result<bool, StoreError> {
        Ok(self
            .damaged
            .get(&key[..])
            .map_err(|e| self.engine("reading damaged messages", e))?
            .is_some_and(|v| v.as_ref() == id.as_bytes()))
    }

    pub(super) fn damaged_messages(&self) -> Result<Vec<(MessageId, Place)>, StoreError> {
        let mut out = Vec::new();
        for item in self.damaged.iter() {
            let (k, v) = item.map_err(|e| self.engine("reading damaged messages", e))?;
            let key: AuthorKey = self.array(TREE_DAMAGED, &k)?;
            let id = MessageId::from(self.array::<ID_LEN>(TREE_DAMAGED, &v)?);
            let place = place_of(&key)
                .ok_or_else(|| self.corrupt(TREE_DAMAGED, "key names no place".into()))?;
            out.push((id, place));
        }
        Ok(out)
    }

    /// Number of messages marked damaged.
    pub(super) fn damaged_count(&self) -> usize {
        self.damaged.len()
    }
}
