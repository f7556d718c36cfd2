//! The listing index: each group's messages by creation time, so that a page of a group is
//! one reverse range scan instead of a read of the whole group.
//!
//! Entries live in `messages-v4` beside the author index, so a message's entry is written in
//! the same sled batch as its run (see [`Engine::apply_messages`]). Like the author index, the
//! listing keeps its positions in runs: up to [`MAX_LISTING_RUN`] positions of one group back
//! to back, keyed by the lowest of them:
//!
//! | key                                                | value                                  |
//! |----------------------------------------------------|----------------------------------------|
//! | `L` ‖ group(16) ‖ created_at ms(8, big-endian) ‖ id(32) | positions, created_at(8) ‖ id(32) each, ascending; the first is the key's |
//! | `N`                                                | number of positions in all runs (u64)  |
//!
//! The runs of a group never overlap: a position belongs to the run with the greatest key at or
//! below it, or to the group's first run when it lies below every key. Messages mostly arrive
//! in the order they were created, so a batch of new messages mostly rewrites its group's last
//! run: a few sled writes per batch, where one entry per message cost a write each (7 % of the
//! end-to-end throughput and 11 % of the catch-up rate; `docs/performance.md`).
//!
//! The creation time is the one the caller hands over with the message ([`NewMessage`]), read
//! from the message's cleartext header; the store does not read envelopes itself. The index
//! is derived data: a position whose message is no longer held is skipped by readers, and a
//! store whose count of positions differs from its count of messages (a data directory written
//! before the index existed, or a crash recovery that indexed frames from the log again) is
//! brought back in line by [`Store::relist`], which the node runs at start before it answers
//! its API. Development builds kept one entry per message (`l` ‖ group ‖ created_at ‖ id, and
//! their count at `n`): such a store has no `N`, so it is relisted, and `relist` moves those
//! entries into runs without opening a message.
//!
//! [`NewMessage`]: super::NewMessage

use std::collections::BTreeMap;

use liaison_protocol::{GroupId, MessageId};

use super::keys::{GROUP_LEN, ID_LEN, TREE_MESSAGES};
use super::{Engine, Store, StoreError};

/// Key prefix of listing runs.
const P_LISTING: u8 = b'L';
/// The number of positions in the listing runs.
const KEY_LISTED: &[u8] = b"N";
/// Key prefix and count of the one-entry-per-message listing of development builds, which
/// [`Store::relist`] moves into runs.
const P_LISTING_ENTRIES: u8 = b'l';
const KEY_LISTED_ENTRIES: &[u8] = b"n";
/// Key space of the listing index, as named in errors.
const PART_LISTING: &str = "messages-v4 (listing index)";
/// Most positions in one listing run: 1.25 KiB, rewritten whole when a position is added.
pub(super) const MAX_LISTING_RUN: usize = 32;
/// A position: created_at ‖ id.
const POSITION_LEN: usize = 8 + ID_LEN;
/// A listing run key: `L` ‖ group ‖ its first position.
const LISTING_KEY_LEN: usize = 1 + GROUP_LEN + POSITION_LEN;

/// A message's position in its group's listing: newer is greater, and two messages created in
/// the same millisecond are told apart by their ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Listed {
    /// Creation time, milliseconds since the Unix epoch (from the message's header).
    pub created_at: u64,
    /// The message.
    pub id: MessageId,
}

impl Listed {
    /// The position's bytes, which sort as positions do.
    fn encode(&self) -> [u8; POSITION_LEN] {
        let mut out = [0u8; POSITION_LEN];
        out[..8].copy_from_slice(&self.created_at.to_be_bytes());
        out[8..].copy_from_slice(self.id.as_bytes());
        out
    }

    /// The position [`Listed::encode`] wrote.
    fn decode(bytes: &[u8; POSITION_LEN]) -> Listed {
        let (time, id) = bytes.split_at(8);
        let mut t = [0u8; 8];
        t.copy_from_slice(time);
        let mut i = [0u8; ID_LEN];
        i.copy_from_slice(id);
        Listed {
            created_at: u64::from_be_bytes(t),
            id: MessageId::from(i),
        }
    }
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
    /// Positions added for held messages the index lacked.
    pub added: usize,
    /// Positions removed because their message is no longer held.
    pub removed: usize,
    /// Reply entries written (see [`Store::replies`]).
    pub replies: usize,
    /// Held messages whose envelope could not be read or described (left out of listings).
    pub unreadable: usize,
}

/// A group's listing from a position down, newest first (see [`Store::listing`]).
///
/// Each run is found with a lookup of its own rather than by one sled iterator: an iterator
/// keeps reading the tree node it is in as it was when it came to it, so a run split while
/// it read (the split moves the run's upper half to a new key above it) could have its upper
/// half in a node read before the split and its lower half in one read after, and neither
/// copy of the moved positions would be listed. A lookup sees the tree between two batches.
pub struct Listing {
    group: GroupId,
    /// Where the next run lies: at or below this key, or below it.
    upper: Upper,
    /// The positions of the run being read, ascending: handed out from the back.
    run: Vec<Listed>,
    /// Positions handed out are below this one: the cursor, then the last handed out. A run
    /// merged into a lower key while the listing read shows what was read already again.
    floor: Option<Listed>,
    store: Store,
}

/// The upper end of what a [`Listing`] has still to read.
#[derive(Debug)]
enum Upper {
    /// Every run of the group.
    All,
    /// Runs keyed at or below this key (the run holding the cursor starts at or below it).
    Through([u8; LISTING_KEY_LEN]),
    /// Runs keyed below this key (the last run read).
    Below(Vec<u8>),
    /// Nothing: the group's first run was read.
    Done,
}

impl std::fmt::Debug for Listing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listing")
            .field("group", &self.group)
            .field("floor", &self.floor)
            .finish_non_exhaustive()
    }
}

impl Iterator for Listing {
    type Item = Result<Listed, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(at) = self.run.pop() {
                self.floor = Some(at);
                return Some(Ok(at));
            }
            if matches!(self.upper, Upper::Done) {
                return None;
            }
            let engine = match self.store.engine() {
                Ok(engine) => engine,
                Err(e) => {
                    self.upper = Upper::Done;
                    return Some(Err(e));
                }
            };
            let prefix = group_prefix(&self.group);
            let found = match &self.upper {
                Upper::All => engine.messages.scan_prefix(prefix).next_back(),
                Upper::Through(k) => engine.messages.range(&prefix[..]..=&k[..]).next_back(),
                Upper::Below(k) => engine.messages.range(&prefix[..]..&k[..]).next_back(),
                Upper::Done => return None,
            };
            let (k, v) = match found {
                None => {
                    self.upper = Upper::Done;
                    return None;
                }
                Some(Err(e)) => {
                    self.upper = Upper::Done;
                    return Some(Err(engine.engine("reading the listing index", e)));
                }
                Some(Ok(run)) => run,
            };
            let run = engine.listing_run(&k, &v);
            self.upper = Upper::Below(k.to_vec());
            match run {
                Ok(mut run) => {
                    if let Some(floor) = self.floor {
                        run.retain(|at| *at < floor);
                    }
                    self.run = run;
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// `L` ‖ group: the listing of one group.
fn group_prefix(group: &GroupId) -> [u8; 1 + GROUP_LEN] {
    let mut k = [0u8; 1 + GROUP_LEN];
    k[0] = P_LISTING;
    k[1..].copy_from_slice(group.as_bytes());
    k
}

/// The key of the run of `group` whose first position is `first`.
fn run_key(group: &GroupId, first: &Listed) -> [u8; LISTING_KEY_LEN] {
    let mut k = [0u8; LISTING_KEY_LEN];
    k[..1 + GROUP_LEN].copy_from_slice(&group_prefix(group));
    k[1 + GROUP_LEN..].copy_from_slice(&first.encode());
    k
}

/// A run's value: its positions back to back.
fn encode_run(positions: &[Listed]) -> Vec<u8> {
    let mut v = Vec::with_capacity(positions.len() * POSITION_LEN);
    for at in positions {
        v.extend_from_slice(&at.encode());
    }
    v
}

/// A listing run of `group` holding `positions` (ascending, not empty), as a test writes one
/// straight into the tree: its key and value.
#[cfg(test)]
pub(super) fn listing_run_entry(group: &GroupId, positions: &[Listed]) -> (Vec<u8>, Vec<u8>) {
    (
        run_key(group, &positions[0]).to_vec(),
        encode_run(positions),
    )
}

impl Store {
    /// The messages of `group` listed strictly below `before` (all of them without it),
    /// newest first. Positions whose message is no longer held may appear: check with
    /// [`Store::has_message`] or by reading the message.
    pub fn listing(&self, group: &GroupId, before: Option<Listed>) -> Result<Listing, StoreError> {
        self.engine()?;
        Ok(Listing {
            group: *group,
            upper: match before {
                // The run holding `before` starts at or below it.
                Some(b) => Upper::Through(run_key(group, &b)),
                None => Upper::All,
            },
            run: Vec::new(),
            floor: before,
            store: self.clone(),
        })
    }

    /// Number of positions in the listing index.
    pub fn listed_count(&self) -> Result<u64, StoreError> {
        self.engine()?.listed_count()
    }
}

impl Engine {
    /// Adds the listing positions of new messages (`(group, created_at, id)`) and the new
    /// count to `writes`. Call with the writer lock, so that the runs and the count read here
    /// are not raced, and once per batch: the runs are read from the tree, not from `writes`.
    pub(super) fn list_new(
        &self,
        writes: &mut sled::Batch,
        new: &[(GroupId, u64, MessageId)],
    ) -> Result<(), StoreError> {
        if new.is_empty() {
            return Ok(());
        }
        let mut groups: BTreeMap<GroupId, Vec<Listed>> = BTreeMap::new();
        for (group, created_at, id) in new {
            groups.entry(*group).or_default().push(Listed {
                created_at: *created_at,
                id: *id,
            });
        }
        let mut added = 0u64;
        for (group, positions) in groups {
            added += self.edit_listing(writes, &group, &positions, &[])?.0;
        }
        let count = self.listed_count()?.saturating_add(added);
        writes.insert(KEY_LISTED, &count.to_be_bytes()[..]);
        Ok(())
    }

    /// Adds to `writes` the runs of `group` rewritten to hold the positions `add` and lose
    /// the positions `remove` (in any order); how many were added and removed (adding a
    /// listed position or removing an unlisted one changes nothing). Each run touched costs
    /// two lookups (the run, and where the next one starts), a parse and a write; a run that
    /// grows past [`MAX_LISTING_RUN`] splits.
    fn edit_listing(
        &self,
        writes: &mut sled::Batch,
        group: &GroupId,
        add: &[Listed],
        remove: &[Listed],
    ) -> Result<(u64, u64), StoreError> {
        let mut edits: Vec<(Listed, bool)> = Vec::with_capacity(add.len() + remove.len());
        edits.extend(remove.iter().map(|at| (*at, false)));
        edits.extend(add.iter().map(|at| (*at, true)));
        edits.sort_unstable();
        let (mut added, mut removed) = (0u64, 0u64);
        let mut rest = &edits[..];
        while let Some(&(at, _)) = rest.first() {
            let owner = self.listing_owner(group, &at)?;
            // Where the next run starts: positions from there on are another run's.
            let next = match &owner {
                Some((k, _)) => self.next_listing_run(group, k)?,
                None => None,
            };
            let mine = next.as_ref().map_or(rest.len(), |next| {
                rest.partition_point(|(p, _)| run_key(group, p)[..] < next[..])
            });
            let (here, later) = rest.split_at(mine);
            rest = later;
            let mut positions = match &owner {
                Some((k, v)) => self.listing_run(k, v)?,
                None => Vec::new(),
            };
            let last_before = positions.last().copied();
            let mut appended = true;
            for &(at, add) in here {
                match (positions.binary_search(&at), add) {
                    (Err(i), true) => {
                        appended &= last_before.is_none_or(|last| at > last);
                        positions.insert(i, at);
                        added += 1;
                    }
                    (Ok(i), false) => {
                        appended = false;
                        positions.remove(i);
                        removed += 1;
                    }
                    _ => {}
                }
            }
            write_runs(writes, group, owner.as_ref(), &positions, appended);
        }
        Ok((added, removed))
    }

    /// The run of `group` holding position `at`: the greatest at or below it, else the
    /// group's first run; `None` if the group has none.
    fn listing_owner(
        &self,
        group: &GroupId,
        at: &Listed,
    ) -> Result<Option<(sled::IVec, sled::IVec)>, StoreError> {
        let read = |e| self.engine("reading the listing index", e);
        let prefix = group_prefix(group);
        let below = self
            .messages
            .range(&prefix[..]..=&run_key(group, at)[..])
            .next_back()
            .transpose()
            .map_err(read)?;
        match below {
            Some(run) => Ok(Some(run)),
            None => self
                .messages
                .scan_prefix(prefix)
                .next()
                .transpose()
                .map_err(read),
        }
    }

    /// The key of the run of `group` after the run keyed `key`, if there is one.
    fn next_listing_run(
        &self,
        group: &GroupId,
        key: &[u8],
    ) -> Result<Option<sled::IVec>, StoreError> {
        let next = self
            .messages
            .range::<&[u8], _>((std::ops::Bound::Excluded(key), std::ops::Bound::Unbounded))
            .next()
            .transpose()
            .map_err(|e| self.engine("reading the listing index", e))?;
        Ok(next
            .map(|(k, _)| k)
            .filter(|k| k.starts_with(&group_prefix(group))))
    }

    /// Number of positions in the listing index, as counted by the writes.
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

    /// The group of a listing run's key.
    fn listing_group(&self, k: &[u8]) -> Result<GroupId, StoreError> {
        match k.get(1..).and_then(<[u8]>::first_chunk::<GROUP_LEN>) {
            Some(group) if k.len() == LISTING_KEY_LEN => Ok(GroupId::from(*group)),
            _ => Err(self.bad_key_len(PART_LISTING, k.len(), LISTING_KEY_LEN)),
        }
    }

    /// The positions of a listing run read back, ascending; corrupt unless the value is whole
    /// positions, ascending, the first one the key's.
    fn listing_run(&self, k: &[u8], v: &[u8]) -> Result<Vec<Listed>, StoreError> {
        if k.len() != LISTING_KEY_LEN {
            return Err(self.bad_key_len(PART_LISTING, k.len(), LISTING_KEY_LEN));
        }
        let bad = |detail: &str| self.corrupt(PART_LISTING, format!("a listing run {detail}"));
        if v.is_empty() || !v.len().is_multiple_of(POSITION_LEN) {
            return Err(bad(&format!(
                "has {} bytes, not a multiple of {POSITION_LEN}",
                v.len()
            )));
        }
        let (positions, _) = v.as_chunks::<POSITION_LEN>();
        let run: Vec<Listed> = positions.iter().map(Listed::decode).collect();
        if v[..POSITION_LEN] != k[1 + GROUP_LEN..] {
            return Err(bad("does not start at its key"));
        }
        if run.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("is not in ascending order"));
        }
        Ok(run)
    }
}

/// Adds to `writes` the runs that hold `positions` (ascending), which the run `old` held
/// before an edit (`None`: the group had none): `old` itself if it still fits, else split
/// into runs of at most [`MAX_LISTING_RUN`]. A run that only grew at its end is cut into full
/// runs and a rest, so that runs filled in creation order stay full; any other split is even,
/// so that positions added in the middle of a run do not leave runs of one. A run whose key
/// and value are unchanged is not written; `old`'s key is removed unless a run keeps it.
fn write_runs(
    writes: &mut sled::Batch,
    group: &GroupId,
    old: Option<&(sled::IVec, sled::IVec)>,
    positions: &[Listed],
    appended: bool,
) {
    let size = if appended || positions.len() <= MAX_LISTING_RUN {
        MAX_LISTING_RUN
    } else {
        let runs = positions.len().div_ceil(MAX_LISTING_RUN);
        positions.len().div_ceil(runs)
    };
    let mut kept = false;
    for run in positions.chunks(size) {
        let key = run_key(group, &run[0]);
        let value = encode_run(run);
        if let Some((k, v)) = old {
            if k[..] == key[..] {
                kept = true;
                if v[..] == value[..] {
                    continue;
                }
            }
        }
        writes.insert(&key[..], value);
    }
    if let Some((k, _)) = old {
        if !kept {
            writes.remove(k.clone());
        }
    }
}

mod relist;
#[cfg(test)]
mod tests;
