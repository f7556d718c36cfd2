//! The id index: where each stored message is, by id, kept in memory.
//!
//! Built from the author index when the store opens and extended by every batch written. It
//! names a candidate place for an id; the author index run at that place confirms it (see
//! `Store::locate`), so a stale or colliding entry can only make a lookup miss, never return
//! another message.
//!
//! 30 to 60 bytes per message: ids by their first 8 bytes, each naming a sequence space by
//! number and a seq. Ids are hashes, but an author picks its envelopes and could make two
//! share their first 8 bytes (2^32 tries); the later one is then kept by its whole id.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use liaison_protocol::MessageId;

use super::keys::{seq_of, AuthorKey, SpaceKey, BY_AUTHOR_KEY_LEN, SEQ_SPACE_LEN};

#[derive(Debug, Default)]
pub(super) struct IdIndex {
    /// Author index prefixes (`a` ‖ group ‖ author ‖ epoch), numbered from 0.
    spaces: Vec<SpaceKey>,
    numbers: HashMap<SpaceKey, usize>,
    /// By the first 8 bytes of the id: the first message stored with them.
    by_prefix: HashMap<u64, Slot>,
    /// Messages whose first 8 id bytes an earlier message has, by whole id.
    collided: HashMap<MessageId, Slot>,
}

/// A place in the author index: a sequence space of [`IdIndex::spaces`] and a seq.
#[derive(Debug, Clone, Copy)]
struct Slot {
    space: usize,
    seq: u64,
}

impl IdIndex {
    /// Records that message `id` is held at author index key `key`.
    pub(super) fn insert(&mut self, id: &MessageId, key: &AuthorKey) {
        let mut prefix = [0u8; 1 + SEQ_SPACE_LEN];
        prefix.copy_from_slice(&key[..1 + SEQ_SPACE_LEN]);
        let space = *self.numbers.entry(prefix).or_insert_with(|| {
            self.spaces.push(prefix);
            self.spaces.len() - 1
        });
        let slot = Slot {
            space,
            seq: seq_of(key),
        };
        match self.by_prefix.entry(id_prefix(id)) {
            Entry::Vacant(e) => {
                e.insert(slot);
            }
            Entry::Occupied(_) => {
                self.collided.insert(*id, slot);
            }
        }
    }

    /// The author index key where message `id` may be held.
    pub(super) fn candidate(&self, id: &MessageId) -> Option<AuthorKey> {
        let slot = self
            .collided
            .get(id)
            .or_else(|| self.by_prefix.get(&id_prefix(id)))?;
        let mut key = [0u8; BY_AUTHOR_KEY_LEN];
        key[..1 + SEQ_SPACE_LEN].copy_from_slice(self.spaces.get(slot.space)?);
        key[1 + SEQ_SPACE_LEN..].copy_from_slice(&slot.seq.to_be_bytes());
        Some(key)
    }

    /// Number of messages indexed.
    pub(super) fn len(&self) -> usize {
        self.by_prefix.len() + self.collided.len()
    }
}

/// The first 8 bytes of an id, the key of [`IdIndex::by_prefix`].
fn id_prefix(id: &MessageId) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&id.as_bytes()[..8]);
    u64::from_ne_bytes(first)
}
