//! Tree names and key layouts (see the store's module docs): fixed-width fields, numbers
//! big-endian so that ranges sort numerically.

use liaison_protocol::{GroupId, NodeId, Place};

/// Messages: their author index runs and the log watermark.
pub(super) const TREE_MESSAGES: &str = "messages-v4";
/// Key spaces of `messages-v4`, as named in errors.
pub(super) const PART_BY_AUTHOR: &str = "messages-v4 (author index)";
pub(super) const PART_WATERMARK: &str = "messages-v4 (watermark)";
/// Key prefix of the author index.
pub(super) const P_AUTHOR: u8 = b'a';
/// The envelope log's watermark (u64 big-endian): every byte of the log below it is durable.
pub(super) const KEY_WATERMARK: &[u8] = b"w";
pub(super) const TREE_CONTROL: &str = "control-v1";
/// Per run of consecutive seqs of one author that one receipt names, the run's end and the
/// receipt's key.
pub(super) const TREE_RECEIPT_RUNS: &str = "receipts-v3";
pub(super) const TREE_RECEIPT_BLOBS: &str = "receipt-blobs-v2";
pub(super) const TREE_PEERS: &str = "peers-v1";
pub(super) const TREE_META: &str = "meta-v1";
/// The audit log: seq -> record.
pub(super) const TREE_AUDIT: &str = "audit-v1";
/// Officer accounts: name -> record.
pub(super) const TREE_USERS: &str = "users-v1";
/// Messages found damaged, to be fetched again: author index key -> message id.
pub(super) const TREE_DAMAGED: &str = "damaged-v1";
/// Trees of layouts that development builds used before format 4, the first released one.
/// `Store::open` drops them when empty (opening a tree creates it) and refuses a store that
/// holds data in one. Their names are never used again.
pub(super) const RETIRED_TREES: [&str; 7] = [
    "messages-v1",
    "msg-meta-v1",
    "by-author-v1",
    "by-group-v1",
    "messages-v2",
    "messages-v3",
    "receipts-v2",
];

pub(super) const GROUP_LEN: usize = 16;
pub(super) const ID_LEN: usize = 32;
pub(super) const SEQ_LEN: usize = 8;
const EPOCH_LEN: usize = 8;
/// group ‖ author ‖ epoch: the prefix of one author's sequence space.
pub(super) const SEQ_SPACE_LEN: usize = GROUP_LEN + ID_LEN + EPOCH_LEN;
/// Author index key: prefix ‖ group ‖ author ‖ epoch ‖ seq.
pub(super) const BY_AUTHOR_KEY_LEN: usize = 1 + SEQ_SPACE_LEN + SEQ_LEN;
pub(super) const CONTROL_KEY_LEN: usize = GROUP_LEN + SEQ_LEN;
/// Receipt run key: group ‖ author ‖ epoch ‖ first seq ‖ receiver.
pub(super) const RECEIPT_RUN_KEY_LEN: usize = SEQ_SPACE_LEN + SEQ_LEN + ID_LEN;

/// An author index key: one place.
pub(super) type AuthorKey = [u8; BY_AUTHOR_KEY_LEN];
/// `a` ‖ group ‖ author ‖ epoch: the author index of one sequence space.
pub(super) type SpaceKey = [u8; 1 + SEQ_SPACE_LEN];

/// `a` ‖ group: the author index of one group.
pub(super) fn author_space(group: &GroupId) -> [u8; 1 + GROUP_LEN] {
    let mut k = [0u8; 1 + GROUP_LEN];
    k[0] = P_AUTHOR;
    k[1..].copy_from_slice(group.as_bytes());
    k
}

/// The author index prefix of `place`'s sequence space.
pub(super) fn seq_space(place: &Place) -> SpaceKey {
    let mut k = [0u8; 1 + SEQ_SPACE_LEN];
    k[..1 + GROUP_LEN].copy_from_slice(&author_space(&place.group));
    k[1 + GROUP_LEN..1 + GROUP_LEN + ID_LEN].copy_from_slice(place.author.as_bytes());
    k[1 + GROUP_LEN + ID_LEN..].copy_from_slice(&place.epoch.to_be_bytes());
    k
}

/// The author index key of `place`.
pub(super) fn author_key(place: &Place) -> AuthorKey {
    let mut k = [0u8; BY_AUTHOR_KEY_LEN];
    k[..1 + SEQ_SPACE_LEN].copy_from_slice(&seq_space(place));
    k[1 + SEQ_SPACE_LEN..].copy_from_slice(&place.seq.to_be_bytes());
    k
}

/// `key` (an author index key) with its seq replaced by `seq`.
pub(super) fn author_key_at(key: &AuthorKey, seq: u64) -> AuthorKey {
    let mut at = *key;
    at[1 + SEQ_SPACE_LEN..].copy_from_slice(&seq.to_be_bytes());
    at
}

/// The seq of an author index key.
pub(super) fn seq_of(key: &AuthorKey) -> u64 {
    let mut seq = [0u8; SEQ_LEN];
    seq.copy_from_slice(&key[1 + SEQ_SPACE_LEN..]);
    u64::from_be_bytes(seq)
}

/// The place an author index key names; `None` if its author is not a valid node id.
pub(super) fn place_of(key: &AuthorKey) -> Option<Place> {
    let (group, rest) = key[1..].split_first_chunk::<GROUP_LEN>()?;
    let (author, rest) = rest.split_first_chunk::<ID_LEN>()?;
    let (epoch, _) = rest.split_first_chunk::<EPOCH_LEN>()?;
    Some(Place {
        group: GroupId::from(*group),
        author: NodeId::from_bytes(*author).ok()?,
        epoch: u64::from_be_bytes(*epoch),
        seq: seq_of(key),
    })
}

/// group ‖ seq: the key of a control event.
pub(super) fn group_seq_key(group: &GroupId, n: u64) -> [u8; CONTROL_KEY_LEN] {
    let mut k = [0u8; CONTROL_KEY_LEN];
    k[..GROUP_LEN].copy_from_slice(group.as_bytes());
    k[GROUP_LEN..].copy_from_slice(&n.to_be_bytes());
    k
}

/// The smallest key greater than every key starting with `prefix`, or
/// `None` if there is none (prefix is all `0xff`).
pub(super) fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.last_mut() {
        if *last == u8::MAX {
            next.pop();
        } else {
            *last += 1;
            return Some(next);
        }
    }
    None
}
