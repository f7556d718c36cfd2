//! The listing index: each group's messages by creation time, so that a page of a group is
//! one reverse range scan instead of a read of the whole group.
//!
//! Entries live in `messages-v4` beside the author index, so a message's entry is written in
//! the same sled batch as its run (see [`Engine::apply_messages`]):
//!
//! | key                                                       | value                       |
//! |-----------------------------------------------------------|-----------------------------|
//! | `l` ‖ group(16) ‖ created_at ms(8, big-endian) ‖ id(32)   | empty                       |
//! | `n`                                                       | number of `l` entries (u64) |
//!
//! The creation time is the one the caller hands over with the message ([`NewMessage`]), read
//! from the message's cleartext header; the store does not read envelopes itself. The index
//! is derived data: an entry whose message is no longer held is skipped by readers, and a
//! store whose count of entries differs from its count of messages (a data directory written
//! before the index existed, or a crash recovery that indexed frames from the log again) is
//! brought back in line by [`Store::relist`], which the node runs at start before it answers
//! its API.
//!
//! [`NewMessage`]: super::NewMessage

use std::collections::HashMap;

use liaison_protocol::{GroupId, MessageId};

use super::keys::{GROUP_LEN, ID_LEN, P_AUTHOR, TREE_MESSAGES};
use super::replies::KEY_REPLIES_WHOLE;
use super::runs::numbered;
use super::{Engine, Store, StoreError};

/// Key prefix of listing entries.
const P_LISTING: u8 = b'l';
/// The number of listing entries.
const KEY_LISTED: &[u8] = b"n";
/// Key space of the listing index, as named in errors.
const PART_LISTING: &str = "messages-v4 (listing index)";
/// A listing key: `l` ‖ group ‖ created_at ‖ id.
const LISTING_KEY_LEN: usize = 1 + GROUP_LEN + 8 + ID_LEN;
/// Messages whose entries [`Store::relist`] applies in one sled batch.
const RELIST_CHUNK: usize = 10_000;

/// A message's position in its group's listing: newer is greater, and two messages created in
/// the same millisecond are told apart by their ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Listed {
    /// Creation time, milliseconds since the Unix epoch (from the message's header).
    pub created_at: u64,
    /// The message.
    pub id: MessageId,
}

/// What [`Store::relist`] needs to know of a held message, read from its envelope by the
/// caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Described {
    /// Its creation time, from its header.
    pub created_at: u64,
    /// The message it answers, from its content (`None` as well if the content cannot be
    /// opened).
    pub reply_to: Option<MessageId>,
}

/// What [`Store::relist`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelistReport {
    /// Entries added for held messages the index lacked.
    pub added: usize,
    /// Entries removed because their message is no longer held.
    pub removed: usize,
    /// Reply entries written (see [`Store::replies`]).
    pub replies: usize,
    /// Held messages whose envelope could not be read or described (left out of listings).
    pub unreadable: usize,
}

/// A group's listing from a position down, newest first (see [`Store::listing`]).
pub struct Listing {
    iter: std::iter::Rev<sled::Iter>,
    store: Store,
}

impl std::fmt::Debug for Listing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listing").finish_non_exhaustive()
    }
}

impl Iterator for Listing {
    type Item = Result<Listed, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.iter.next()?;
        Some(self.store.engine().and_then(|engine| {
            let (k, _) = item.map_err(|e| engine.engine("reading the listing index", e))?;
            engine.listed_of(&k)
        }))
    }
}

/// The listing key of a message.
pub(super) fn listing_key(group: &GroupId, created_at: u64, id: &MessageId) -> Vec<u8> {
    let mut k = Vec::with_capacity(LISTING_KEY_LEN);
    k.push(P_LISTING);
    k.extend_from_slice(group.as_bytes());
    k.extend_from_slice(&created_at.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

impl Store {
    /// The messages of `group` listed strictly below `before` (all of them without it),
    /// newest first. Entries whose message is no longer held may appear: check with
    /// [`Store::has_message`] or by reading the message.
    pub fn listing(&self, group: &GroupId, before: Option<Listed>) -> Result<Listing, StoreError> {
        let engine = self.engine()?;
        let mut start = vec![P_LISTING];
        start.extend_from_slice(group.as_bytes());
        let end = match before {
            Some(b) => listing_key(group, b.created_at, &b.id),
            None => {
                // Past every key of the group: its prefix with the next group byte string.
                let mut end = start.clone();
                end.push(0xff);
                end.extend_from_slice(&[0xff; 8 + ID_LEN]);
                end
            }
        };
        let iter = if before.is_some() {
            engine.messages.range(start..end)
        } else {
            engine.messages.range(start..=end)
        };
        Ok(Listing {
            iter: iter.rev(),
            store: self.clone(),
        })
    }

    /// Number of entries in the listing index.
    pub fn listed_count(&self) -> Result<u64, StoreError> {
        self.engine()?.listed_count()
    }

    /// Brings the listing and reply indexes in line with the held messages: adds the entries
    /// of each held message that has no listing entry (its creation time and parent read from
    /// its envelope by `describe`), removes listing entries of messages no longer held, and
    /// writes the count; in a store whose reply index is not whole ([`Store::replies_whole`]),
    /// describes every held message for its reply entry, and marks the index whole. Holds the
    /// writer lock throughout: run it at start, before messages are written. Costs a read of
    /// every listing entry and every run, and an envelope read per message described.
    pub fn relist(
        &self,
        describe: impl Fn(&[u8]) -> Option<Described>,
    ) -> Result<RelistReport, StoreError> {
        self.relist_in_chunks(describe, RELIST_CHUNK)
    }

    /// [`Store::relist`], applying the entries of `chunk` messages per sled batch.
    pub(super) fn relist_in_chunks(
        &self,
        describe: impl Fn(&[u8]) -> Option<Described>,
        chunk: usize,
    ) -> Result<RelistReport, StoreError> {
        let engine = self.engine()?;
        let _writer = engine.lock_writer();
        let whole = engine.replies_whole()?;
        let read = |e| engine.engine("reading the listing index", e);
        let mut listed: HashMap<MessageId, sled::IVec> = HashMap::new();
        for item in engine.messages.scan_prefix([P_LISTING]) {
            let (k, _) = item.map_err(read)?;
            let entry = engine.listed_of(&k)?;
            listed.insert(entry.id, k);
        }
        let mut report = RelistReport::default();
        // Entries are applied a chunk at a time: one batch of a million entries held sled's
        // and the allocator's memory at gigabytes after the node started. Each chunk is
        // derived data whatever follows it; the count and the mark go in the last one, so a start
        // cut short relists again.
        let mut writes = sled::Batch::default();
        let mut pending = 0usize;
        let apply = |writes: &mut sled::Batch, pending: &mut usize| {
            *pending = 0;
            engine
                .messages
                .apply_batch(std::mem::take(writes))
                .map_err(|e| engine.engine("rebuilding the listing index", e))
        };
        let mut count = 0u64;
        for item in engine.messages.scan_prefix([P_AUTHOR]) {
            let (k, v) = item.map_err(|e| engine.engine("reading the author index", e))?;
            let place = engine.place_of(&k)?;
            let (first, records) = engine.run(&k, &v)?;
            for (seq, record) in numbered(first, &records) {
                let was_listed = listed.remove(&record.id).is_some();
                if was_listed {
                    count += 1;
                    if whole {
                        continue;
                    }
                }
                let key = super::keys::author_key(&liaison_protocol::Place { seq, ..place });
                let described = match engine.read_envelope(&key, record) {
                    Ok(envelope) => describe(&envelope),
                    Err(StoreError::Corrupt { .. }) => None,
                    Err(e) => return Err(e),
                };
                let Some(d) = described else {
                    report.unreadable += 1;
                    continue;
                };
                if !was_listed {
                    writes.insert(listing_key(&place.group, d.created_at, &record.id), &[][..]);
                    report.added += 1;
                    count += 1;
                }
                if let Some(parent) = d.reply_to {
                    Engine::reply_new(&mut writes, [(place.group, parent, record.id)]);
                    report.replies += 1;
                }
                pending += 1;
                if pending >= chunk {
                    apply(&mut writes, &mut pending)?;
                }
            }
        }
        for (_, k) in listed {
            writes.remove(k);
            report.removed += 1;
            pending += 1;
            if pending >= chunk {
                apply(&mut writes, &mut pending)?;
            }
        }
        writes.insert(KEY_LISTED, &count.to_be_bytes()[..]);
        writes.insert(KEY_REPLIES_WHOLE, &[][..]);
        apply(&mut writes, &mut pending)?;
        Ok(report)
    }
}

impl Engine {
    /// Adds the listing entries of new messages (`(group, created_at, id)`) and the new count
    /// to `writes`. Call with the writer lock, so that the count read here is not raced.
    pub(super) fn list_new(
        &self,
        writes: &mut sled::Batch,
        new: &[(GroupId, u64, MessageId)],
    ) -> Result<(), StoreError> {
        if new.is_empty() {
            return Ok(());
        }
        let count = self.listed_count()?.saturating_add(new.len() as u64);
        for (group, created_at, id) in new {
            writes.insert(listing_key(group, *created_at, id), &[][..]);
        }
        writes.insert(KEY_LISTED, &count.to_be_bytes()[..]);
        Ok(())
    }

    /// Number of entries in the listing index, as counted by the writes.
    fn listed_count(&self) -> Result<u64, StoreError> {
        let value = self
            .messages
            .get(KEY_LISTED)
            .map_err(|e| self.engine("reading the listing count", e))?;
        match value {
            None => Ok(0),
            Some(v) => <[u8; 8]>::try_from(v.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| {
                    self.corrupt(
                        TREE_MESSAGES,
                        format!("the listing count has {} bytes, not 8", v.len()),
                    )
                }),
        }
    }

    /// The position a listing key read back names.
    fn listed_of(&self, k: &[u8]) -> Result<Listed, StoreError> {
        if k.len() != LISTING_KEY_LEN {
            return Err(self.bad_key_len(PART_LISTING, k.len(), LISTING_KEY_LEN));
        }
        let mut time = [0u8; 8];
        time.copy_from_slice(&k[1 + GROUP_LEN..1 + GROUP_LEN + 8]);
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&k[1 + GROUP_LEN + 8..]);
        Ok(Listed {
            created_at: u64::from_be_bytes(time),
            id: MessageId::from(id),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use liaison_protocol::{NodeId, Place};

    use super::*;
    use crate::store::NewMessage;

    fn message(n: u64, group: GroupId, created_at: u64) -> NewMessage {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&n.to_be_bytes());
        NewMessage {
            id: MessageId::from(id),
            place: Place {
                group,
                author: NodeId::from_bytes([9; 32]).unwrap(),
                epoch: 1,
                seq: n,
            },
            envelope: created_at.to_be_bytes().to_vec(),
            meta: Vec::new(),
            created_at,
            reply_to: None,
        }
    }

    fn listed(store: &Store, group: &GroupId, before: Option<Listed>) -> Vec<Listed> {
        store
            .listing(group, before)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// A group's listing is newest first (ties by id), below a cursor when given, and holds
    /// no other group's messages.
    #[tokio::test]
    async fn a_listing_is_newest_first_below_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (g, other) = (GroupId::from([1; 16]), GroupId::from([2; 16]));
        let batch = vec![
            message(1, g, 30),
            message(2, g, 10),
            message(3, g, 20),
            message(4, g, 20),
            message(5, other, 15),
        ];
        store.insert_messages(batch.clone()).await.unwrap();
        let all = listed(&store, &g, None);
        let times: Vec<u64> = all.iter().map(|l| l.created_at).collect();
        assert_eq!(times, [30, 20, 20, 10]);
        assert_eq!(all[1].id, batch[3].id, "ties: the greater id first");
        assert_eq!(listed(&store, &g, Some(all[1])), all[2..]);
        assert_eq!(listed(&store, &other, None).len(), 1);
        assert_eq!(store.listed_count().unwrap(), 5);
        // A duplicate lists nothing new.
        store.insert_messages(vec![batch[0].clone()]).await.unwrap();
        assert_eq!(store.listed_count().unwrap(), 5);
    }

    /// A store whose listing index lacks entries (written before the index existed) or holds
    /// entries of messages no longer held is brought in line by `relist`.
    #[tokio::test]
    async fn relist_adds_missing_entries_and_drops_stale_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let g = GroupId::from([1; 16]);
        let batch: Vec<NewMessage> = (1..=6).map(|n| message(n, g, 100 + n)).collect();
        store.insert_messages(batch.clone()).await.unwrap();
        // As a data directory of before the index: no entries, no count; and one stale entry.
        let engine = store.engine().unwrap();
        let mut wipe = sled::Batch::default();
        for item in engine.messages.scan_prefix([P_LISTING]) {
            wipe.remove(item.unwrap().0);
        }
        wipe.remove(KEY_LISTED);
        let stale = message(99, g, 500);
        wipe.insert(listing_key(&g, stale.created_at, &stale.id), &[][..]);
        engine.messages.apply_batch(wipe).unwrap();
        assert_eq!(store.listed_count().unwrap(), 0);

        let report = store
            .relist(|envelope| {
                Some(Described {
                    created_at: u64::from_be_bytes(envelope.try_into().ok()?),
                    reply_to: None,
                })
            })
            .unwrap();
        assert_eq!(
            report,
            RelistReport {
                added: 6,
                removed: 1,
                replies: 0,
                unreadable: 0
            }
        );
        assert_eq!(store.listed_count().unwrap(), 6);
        let ids: Vec<MessageId> = listed(&store, &g, None).iter().map(|l| l.id).collect();
        let want: Vec<MessageId> = batch.iter().rev().map(|m| m.id).collect();
        assert_eq!(ids, want);
        // In line now: nothing to do.
        let again = store.relist(|_| None).unwrap();
        assert_eq!(again, RelistReport::default());
    }
}
