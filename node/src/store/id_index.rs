//! The id index: where each stored message is, by id, kept in memory.
//!
//! Built from the author index when the store opens and extended by every batch written. It
//! names a candidate place for an id; the author index run at that place confirms it (see
//! `Store::locate`), so a stale or colliding entry can only make a lookup miss, never return
//! another message.
//!
//! A message costs 16 bytes: the first 8 bytes of its id, its sequence space by number (4
//! bytes) and its seq (4 bytes), in one array sorted by id (found by binary search). Messages
//! stored since the array was last rebuilt wait in a small hash table (at most a sixteenth of
//! the array, and [`MIN_RECENT`]) and are merged into the array when it fills; the merge is a
//! linear pass, so each message is copied about sixteen times over its life, a few hundred
//! bytes. A hash table of every message cost 30 to 60 bytes each, and twice that while it grew.
//!
//! What does not fit is kept by whole id, in a table of its own: a seq or space number beyond
//! 32 bits, and ids that share their first 8 bytes. Ids are hashes, but an author picks its
//! envelopes and could make two share 8 bytes (2^32 tries); every id with such a prefix is
//! then found by its whole id.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BTreeSet, HashMap};

use liaison_protocol::MessageId;

use super::keys::{author_key_at, seq_of, AuthorKey, SpaceKey, BY_AUTHOR_KEY_LEN, SEQ_SPACE_LEN};

/// Fewest messages the table of recent ones holds before it is merged into the array.
const MIN_RECENT: usize = 4096;

/// A message in the sorted array.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// The first 8 bytes of its id.
    prefix: u64,
    /// Its sequence space, an index into [`IdIndex::spaces`].
    space: u32,
    seq: u32,
}

#[derive(Debug, Default)]
pub(super) struct IdIndex {
    /// Author index prefixes (`a` ‖ group ‖ author ‖ epoch), numbered from 0.
    spaces: Vec<SpaceKey>,
    numbers: HashMap<SpaceKey, u32>,
    /// By id prefix, ascending, each prefix once.
    sorted: Vec<Slot>,
    /// Messages added since `sorted` was last rebuilt, by id prefix (none of them in it).
    recent: HashMap<u64, (u32, u32)>,
    /// Messages found by whole id: see the module docs.
    whole: HashMap<MessageId, AuthorKey>,
    /// Number of messages indexed.
    len: usize,
}

/// Builds an [`IdIndex`] from every stored message, in one pass over the author index.
#[derive(Debug, Default)]
pub(super) struct Builder {
    index: IdIndex,
    /// Messages by whole id, while building.
    whole: Vec<(MessageId, AuthorKey)>,
}

impl Builder {
    /// Adds message `id`, held at `key`.
    pub(super) fn push(&mut self, id: &MessageId, key: &AuthorKey) {
        self.index.len += 1;
        match self.index.slot(id, key) {
            Some(slot) => self.index.sorted.push(slot),
            None => self.whole.push((*id, *key)),
        }
    }

    /// The index, and the id prefixes more than one message has: every message with one of
    /// them must be added with [`IdIndex::insert_whole`] before the index is used (found by a
    /// second pass, as ids that share 8 bytes are rare).
    pub(super) fn finish(self) -> (IdIndex, BTreeSet<u64>) {
        let Builder { mut index, whole } = self;
        index.sorted.sort_unstable_by_key(|s| s.prefix);
        let mut shared = BTreeSet::new();
        for pair in index.sorted.windows(2) {
            if pair[0].prefix == pair[1].prefix {
                shared.insert(pair[0].prefix);
            }
        }
        if !shared.is_empty() {
            let before = index.sorted.len();
            index.sorted.retain(|s| !shared.contains(&s.prefix));
            index.len -= before - index.sorted.len();
        }
        index.len -= whole.len();
        for (id, key) in whole {
            index.insert_whole(&id, &key);
        }
        index.sorted.shrink_to_fit();
        (index, shared)
    }
}

impl IdIndex {
    /// Records that message `id` is held at author index key `key`.
    pub(super) fn insert(&mut self, id: &MessageId, key: &AuthorKey) {
        let Some(slot) = self.slot(id, key) else {
            self.insert_whole(id, key);
            return;
        };
        if self.whole.contains_key(id) {
            return;
        }
        if self.sorted_find(slot.prefix).is_some() || self.recent.contains_key(&slot.prefix) {
            self.insert_whole(id, key);
            return;
        }
        self.recent.insert(slot.prefix, (slot.space, slot.seq));
        self.len += 1;
        if self.recent.len() >= MIN_RECENT.max(self.sorted.len() / 16) {
            self.merge();
        }
    }

    /// Records that message `id` is held at `key`, by its whole id.
    pub(super) fn insert_whole(&mut self, id: &MessageId, key: &AuthorKey) {
        if self.whole.insert(*id, *key).is_none() {
            self.len += 1;
        }
    }

    /// The author index key where message `id` may be held.
    pub(super) fn candidate(&self, id: &MessageId) -> Option<AuthorKey> {
        if let Some(key) = self.whole.get(id) {
            return Some(*key);
        }
        let prefix = id_prefix(id);
        let (space, seq) = match self.recent.get(&prefix) {
            Some(&found) => found,
            None => {
                let slot = self.sorted_find(prefix)?;
                (slot.space, slot.seq)
            }
        };
        let space = self.spaces.get(usize::try_from(space).ok()?)?;
        let mut key = [0u8; BY_AUTHOR_KEY_LEN];
        key[..1 + SEQ_SPACE_LEN].copy_from_slice(space);
        Some(author_key_at(&key, u64::from(seq)))
    }

    /// Number of messages indexed.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Bytes the index holds on the heap (its tables' capacities; the hash tables' control
    /// bytes and unused slots are estimated).
    pub(super) fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let table = |cap: usize, entry: usize| cap * (entry + 1);
        self.sorted.capacity() * size_of::<Slot>()
            + self.spaces.capacity() * size_of::<SpaceKey>()
            + table(self.numbers.capacity(), size_of::<(SpaceKey, u32)>())
            + table(self.recent.capacity(), size_of::<(u64, (u32, u32))>())
            + table(self.whole.capacity(), size_of::<(MessageId, AuthorKey)>())
    }

    /// `id` at `key` as a slot of the sorted array, numbering its space if it is new; `None`
    /// if its space number or seq does not fit 32 bits.
    fn slot(&mut self, id: &MessageId, key: &AuthorKey) -> Option<Slot> {
        let seq = u32::try_from(seq_of(key)).ok()?;
        let mut prefix = [0u8; 1 + SEQ_SPACE_LEN];
        prefix.copy_from_slice(&key[..1 + SEQ_SPACE_LEN]);
        let space = match self.numbers.entry(prefix) {
            MapEntry::Occupied(e) => *e.get(),
            MapEntry::Vacant(e) => {
                let number = u32::try_from(self.spaces.len()).ok()?;
                self.spaces.push(prefix);
                *e.insert(number)
            }
        };
        Some(Slot {
            prefix: id_prefix(id),
            space,
            seq,
        })
    }

    fn sorted_find(&self, prefix: u64) -> Option<&Slot> {
        let at = self
            .sorted
            .binary_search_by_key(&prefix, |s| s.prefix)
            .ok()?;
        self.sorted.get(at)
    }

    /// Moves the recent messages into the sorted array, merging from the back in place (the
    /// array grows by exactly what it takes in).
    fn merge(&mut self) {
        let mut recent: Vec<Slot> = self
            .recent
            .drain()
            .map(|(prefix, (space, seq))| Slot { prefix, space, seq })
            .collect();
        recent.sort_unstable_by_key(|s| s.prefix);
        self.recent.shrink_to(MIN_RECENT);
        let old = self.sorted.len();
        self.sorted.reserve_exact(recent.len());
        self.sorted.extend_from_slice(&recent);
        // Slots `..i` of the array and `..j` of `recent` are still to place, the largest at
        // `k - 1`; `k == i + j` throughout, so nothing unplaced is overwritten.
        let (mut i, mut j) = (old, recent.len());
        while let Some(next) = recent.get(j.wrapping_sub(1)) {
            let k = i + j - 1;
            match self.sorted.get(i.wrapping_sub(1)).copied() {
                Some(prev) if prev.prefix > next.prefix => {
                    self.sorted[k] = prev;
                    i -= 1;
                }
                _ => {
                    self.sorted[k] = *next;
                    j -= 1;
                }
            }
        }
    }
}

/// The first 8 bytes of an id, the key of the sorted array.
pub(super) fn id_prefix(id: &MessageId) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&id.as_bytes()[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key(space: u8, seq: u64) -> AuthorKey {
        let mut key = [space; BY_AUTHOR_KEY_LEN];
        key[0] = b'a';
        author_key_at(&key, seq)
    }

    /// A pseudo-random id from `n` (a hash, as real ids are).
    fn id(n: u64) -> MessageId {
        MessageId::from(*blake3::hash(&n.to_be_bytes()).as_bytes())
    }

    fn with_prefix(prefix: u64, last: u8) -> MessageId {
        let mut bytes = [last; 32];
        bytes[..8].copy_from_slice(&prefix.to_be_bytes());
        MessageId::from(bytes)
    }

    /// Every message added, one by one (through many merges) or at once (the builder), is
    /// found at its place; ids not added are not; 16 bytes a message once merged.
    #[test]
    fn id_index_finds_every_message_through_merges_and_builds() {
        const N: u64 = 50_000;
        let place = |n: u64| key((n % 7) as u8, n / 7 + 1);
        let mut index = IdIndex::default();
        let mut builder = Builder::default();
        for n in 0..N {
            index.insert(&id(n), &place(n));
            builder.push(&id(n), &place(n));
        }
        let (built, shared) = builder.finish();
        assert!(shared.is_empty());
        for index in [&index, &built] {
            assert_eq!(index.len(), N as usize);
            for n in 0..N {
                assert_eq!(index.candidate(&id(n)), Some(place(n)), "{n}");
            }
            for n in N..N + 1000 {
                assert_eq!(index.candidate(&id(n)), None);
            }
        }
        assert!(index.sorted.len() > N as usize / 2, "merged into the array");
        assert!(index.sorted.windows(2).all(|w| w[0].prefix < w[1].prefix));
        assert!(built.sorted.windows(2).all(|w| w[0].prefix < w[1].prefix));
        assert_eq!(built.sorted.capacity(), N as usize);
        assert!(
            built.heap_bytes() < N as usize * 16 + 4096,
            "{}",
            built.heap_bytes()
        );
    }

    /// Ids sharing their first 8 bytes, and places beyond 32 bits, are kept by whole id.
    #[test]
    fn id_index_keeps_what_does_not_fit_by_whole_id() {
        let (a, b, c) = (with_prefix(9, 1), with_prefix(9, 2), with_prefix(9, 3));
        let far = key(1, u64::from(u32::MAX) + 1);
        let mut index = IdIndex::default();
        index.insert(&a, &key(1, 1));
        index.insert(&b, &key(1, 2));
        index.insert(&id(1), &far);
        assert_eq!(index.len(), 3);
        assert_eq!(index.candidate(&a), Some(key(1, 1)));
        assert_eq!(index.candidate(&b), Some(key(1, 2)));
        assert_eq!(index.candidate(&id(1)), Some(far));
        // The third with that prefix is not stored: found where the first is, which the
        // author index then does not confirm.
        assert_eq!(index.candidate(&c), Some(key(1, 1)));

        let mut builder = Builder::default();
        builder.push(&a, &key(1, 1));
        builder.push(&b, &key(1, 2));
        builder.push(&id(1), &far);
        builder.push(&id(2), &key(2, 5));
        let (mut built, shared) = builder.finish();
        assert_eq!(shared, BTreeSet::from([9]));
        // The second pass adds those with a shared prefix by whole id.
        built.insert_whole(&a, &key(1, 1));
        built.insert_whole(&b, &key(1, 2));
        assert_eq!(built.len(), 4);
        assert_eq!(built.candidate(&a), Some(key(1, 1)));
        assert_eq!(built.candidate(&b), Some(key(1, 2)));
        assert_eq!(built.candidate(&c), None);
        assert_eq!(built.candidate(&id(1)), Some(far));
        assert_eq!(built.candidate(&id(2)), Some(key(2, 5)));
    }
}
