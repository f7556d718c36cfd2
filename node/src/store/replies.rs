//! The reply index: each message's replies in its group, so that a thread costs its own
//! messages instead of a read of the whole group.
//!
//! Whom a message answers is inside its encrypted content, which the store never opens: the
//! caller hands it over with the message ([`NewMessage::reply_to`]), and entries live in
//! `messages-v4` beside the listing index, written in the same sled batch as the message's run
//! (see [`Engine::apply_messages`]):
//!
//! | key                                                  | value                         |
//! |------------------------------------------------------|-------------------------------|
//! | `r` ‖ group(16) ‖ parent(32) ‖ reply(32)             | empty                         |
//! | `R`                                                  | present once the index is whole |
//!
//! Unlike the listing, which holds only what the cleartext header shows, the index tells
//! which message answers which, which the envelopes keep encrypted: a node holds its keys on
//! the same disk, so it tells nothing its data directory does not, but a backup made without
//! the keys leaves it out (see `backup`).
//!
//! The index is derived data, like the listing: an entry whose reply is no longer held is
//! skipped by readers. A store without `R` (a data directory written before the index
//! existed) has every held message described again by [`Store::relist`], which the node runs
//! at start, and one whose listing lacks entries (indexed again after a crash) has the replies
//! of those messages added with their listing entries.
//!
//! [`NewMessage::reply_to`]: super::NewMessage::reply_to

use liaison_protocol::{GroupId, MessageId};

use super::keys::{GROUP_LEN, ID_LEN};
use super::{Engine, Store, StoreError};

/// Key prefix of reply entries.
pub(super) const P_REPLY: u8 = b'r';
/// Present once every held message's reply is indexed.
pub(super) const KEY_REPLIES_WHOLE: &[u8] = b"R";
/// Key space of the reply index, as named in errors.
const PART_REPLIES: &str = "messages-v4 (reply index)";
/// A reply key: `r` ‖ group ‖ parent ‖ reply.
const REPLY_KEY_LEN: usize = 1 + GROUP_LEN + ID_LEN + ID_LEN;

/// The reply key of `reply`, which answers `parent` in `group`.
pub(super) fn reply_key(group: &GroupId, parent: &MessageId, reply: &MessageId) -> Vec<u8> {
    let mut k = Vec::with_capacity(REPLY_KEY_LEN);
    k.push(P_REPLY);
    k.extend_from_slice(group.as_bytes());
    k.extend_from_slice(parent.as_bytes());
    k.extend_from_slice(reply.as_bytes());
    k
}

/// Whether `key` of `messages-v4` belongs to the reply index (left out of backups, see
/// `backup`).
pub(super) fn is_reply_entry(key: &[u8]) -> bool {
    key.first() == Some(&P_REPLY) || key == KEY_REPLIES_WHOLE
}

impl Store {
    /// The messages of `group` that answer `parent`, in id order. Entries whose message is no
    /// longer held may appear: check by reading the message.
    pub fn replies(
        &self,
        group: &GroupId,
        parent: &MessageId,
    ) -> Result<Vec<MessageId>, StoreError> {
        let engine = self.engine()?;
        let prefix =
            &reply_key(group, parent, &MessageId::from([0; ID_LEN]))[..1 + GROUP_LEN + ID_LEN];
        let mut out = Vec::new();
        for item in engine.messages.scan_prefix(prefix) {
            let (k, _) = item.map_err(|e| engine.engine("reading the reply index", e))?;
            if k.len() != REPLY_KEY_LEN {
                return Err(engine.bad_key_len(PART_REPLIES, k.len(), REPLY_KEY_LEN));
            }
            let mut id = [0u8; ID_LEN];
            id.copy_from_slice(&k[1 + GROUP_LEN + ID_LEN..]);
            out.push(MessageId::from(id));
        }
        Ok(out)
    }

    /// Whether every held message's reply is indexed (see the module docs); if not,
    /// [`Store::relist`] describes every message again.
    pub fn replies_whole(&self) -> Result<bool, StoreError> {
        self.engine()?.replies_whole()
    }
}

impl Engine {
    /// See [`Store::replies_whole`].
    pub(super) fn replies_whole(&self) -> Result<bool, StoreError> {
        self.messages
            .contains_key(KEY_REPLIES_WHOLE)
            .map_err(|e| self.engine("reading the reply index", e))
    }

    /// Adds the reply entries of new messages (`(group, parent, reply)`) to `writes`.
    pub(super) fn reply_new(
        writes: &mut sled::Batch,
        new: impl IntoIterator<Item = (GroupId, MessageId, MessageId)>,
    ) {
        for (group, parent, reply) in new {
            writes.insert(reply_key(&group, &parent, &reply), &[][..]);
        }
    }
}

#[cfg(test)]
impl Store {
    /// Drops the reply index and its mark, as a data directory written before the index
    /// existed lacks them.
    pub(crate) async fn forget_replies(&self) -> Result<(), StoreError> {
        let engine = self.engine()?;
        let mut batch = sled::Batch::default();
        for item in engine.messages.scan_prefix([P_REPLY]) {
            let (k, _) = item.map_err(|e| engine.engine("reading the reply index", e))?;
            batch.remove(k);
        }
        batch.remove(KEY_REPLIES_WHOLE);
        engine
            .messages
            .apply_batch(batch)
            .map_err(|e| engine.engine("dropping the reply index", e))?;
        self.flush().await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use liaison_protocol::{NodeId, Place};

    use super::*;
    use crate::store::{Described, NewMessage, RelistReport};

    fn id(n: u64) -> MessageId {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&n.to_be_bytes());
        MessageId::from(id)
    }

    /// Message `n` of `group`, answering `parent`: its envelope is its creation time and its
    /// parent, which `describe` reads back as a node reads them from a real envelope.
    fn message(n: u64, group: GroupId, parent: Option<u64>) -> NewMessage {
        let mut envelope = (100 + n).to_be_bytes().to_vec();
        if let Some(p) = parent {
            envelope.extend_from_slice(id(p).as_bytes());
        }
        NewMessage {
            id: id(n),
            place: Place {
                group,
                author: NodeId::from_bytes([9; 32]).unwrap(),
                epoch: 1,
                seq: n,
            },
            envelope,
            meta: Vec::new(),
            created_at: 100 + n,
            reply_to: parent.map(id),
        }
    }

    fn describe(envelope: &[u8]) -> Option<Described> {
        let (time, parent) = envelope.split_at_checked(8)?;
        Some(Described {
            created_at: u64::from_be_bytes(time.try_into().ok()?),
            reply_to: <[u8; 32]>::try_from(parent).ok().map(MessageId::from),
        })
    }

    /// A thread of `g`: 2 and 3 answer 1, 4 answers 3, 5 stands alone; 6 in another group
    /// answers 1 as well.
    fn thread(g: GroupId, other: GroupId) -> Vec<NewMessage> {
        vec![
            message(1, g, None),
            message(2, g, Some(1)),
            message(3, g, Some(1)),
            message(4, g, Some(3)),
            message(5, g, None),
            message(6, other, Some(1)),
        ]
    }

    /// A store in a temporary directory holding [`thread`] of two groups, the directory, and
    /// the groups.
    async fn stored_thread() -> (tempfile::TempDir, Store, GroupId, GroupId) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (g, other) = (GroupId::from([1; 16]), GroupId::from([2; 16]));
        store.insert_messages(thread(g, other)).await.unwrap();
        (dir, store, g, other)
    }

    /// Removes every key of `messages-v4` starting with one of `prefixes`.
    fn wipe(store: &Store, prefixes: &[&[u8]]) {
        let engine = store.engine().unwrap();
        let mut batch = sled::Batch::default();
        for prefix in prefixes {
            for item in engine.messages.scan_prefix(prefix) {
                batch.remove(item.unwrap().0);
            }
        }
        engine.messages.apply_batch(batch).unwrap();
    }

    /// A stored message's reply entry is written with it: a parent's replies are those of its
    /// own group, and a duplicate adds none.
    #[tokio::test]
    async fn replies_are_indexed_as_messages_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (g, other) = (GroupId::from([1; 16]), GroupId::from([2; 16]));
        let batch = thread(g, other);
        store.insert_messages(batch.clone()).await.unwrap();
        assert_eq!(store.replies(&g, &id(1)).unwrap(), [id(2), id(3)]);
        assert_eq!(store.replies(&g, &id(3)).unwrap(), [id(4)]);
        assert!(store.replies(&g, &id(5)).unwrap().is_empty());
        assert_eq!(store.replies(&other, &id(1)).unwrap(), [id(6)]);
        // A copy claiming another parent is a duplicate: it changes nothing.
        let mut copy = batch[1].clone();
        copy.reply_to = Some(id(5));
        store.insert_messages(vec![copy]).await.unwrap();
        assert!(store.replies(&g, &id(5)).unwrap().is_empty());
    }

    /// A store written before the reply index (its messages listed, no reply entries, not
    /// marked whole) has every message described again by `relist`, once.
    #[tokio::test]
    async fn relist_indexes_the_replies_of_a_store_written_before_the_index() {
        let (_dir, store, g, other) = stored_thread().await;
        wipe(&store, &[&[P_REPLY], KEY_REPLIES_WHOLE]);
        assert!(!store.replies_whole().unwrap());
        assert!(store.replies(&g, &id(1)).unwrap().is_empty());

        let report = store.relist(describe).unwrap();
        assert_eq!(
            report,
            RelistReport {
                replies: 4,
                ..RelistReport::default()
            }
        );
        assert!(store.replies_whole().unwrap());
        assert_eq!(store.replies(&g, &id(1)).unwrap(), [id(2), id(3)]);
        assert_eq!(store.replies(&g, &id(3)).unwrap(), [id(4)]);
        assert_eq!(store.replies(&other, &id(1)).unwrap(), [id(6)]);
        // Whole now: messages already listed are not described again.
        let again = store.relist(|_| panic!("described again")).unwrap();
        assert_eq!(again, RelistReport::default());
    }

    /// A rebuild applied a few entries at a time (as `relist` applies ten thousand) writes
    /// the same indexes as one applied at once, a stale listing entry removed included.
    #[tokio::test]
    async fn relist_in_chunks_writes_every_entry() {
        let (_dir, store, g, other) = stored_thread().await;
        wipe(&store, &[&[P_REPLY], b"L", b"N", KEY_REPLIES_WHOLE]);
        let engine = store.engine().unwrap();
        let (k, v) = super::super::listing::listing_run_entry(
            &g,
            &[super::super::Listed {
                created_at: 1,
                id: id(99),
            }],
        );
        engine.messages.insert(k, v).unwrap();

        let report = store.relist_in_chunks(describe, 2).unwrap();
        assert_eq!((report.added, report.replies, report.removed), (6, 4, 1));
        assert_eq!(store.listed_count().unwrap(), 6);
        assert!(store.replies_whole().unwrap());
        assert_eq!(store.replies(&g, &id(1)).unwrap(), [id(2), id(3)]);
        assert_eq!(store.replies(&g, &id(3)).unwrap(), [id(4)]);
        assert_eq!(store.replies(&other, &id(1)).unwrap(), [id(6)]);
        let listed: Vec<_> = store
            .listing(&g, None)
            .unwrap()
            .map(|l| l.unwrap().id)
            .collect();
        assert_eq!(listed, [id(5), id(4), id(3), id(2), id(1)]);
    }

    /// Messages indexed again after a crash (no listing entry, no reply entry) get both from
    /// `relist`, and only they are described.
    #[tokio::test]
    async fn relist_adds_the_replies_of_messages_indexed_again() {
        let (_dir, store, g, _) = stored_thread().await;
        store.relist(describe).unwrap();
        wipe(&store, &[&[P_REPLY], b"L"]);

        let described = std::cell::Cell::new(0);
        let report = store
            .relist(|e| {
                described.set(described.get() + 1);
                describe(e)
            })
            .unwrap();
        assert_eq!(described.get(), 6);
        assert_eq!((report.added, report.replies), (6, 4));
        assert_eq!(store.replies(&g, &id(1)).unwrap(), [id(2), id(3)]);
        assert_eq!(store.listed_count().unwrap(), 6);
    }
}
