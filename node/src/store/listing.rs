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

use std::collections::{BTreeMap, HashMap};

use liaison_protocol::{GroupId, MessageId};

use super::keys::{GROUP_LEN, ID_LEN, P_AUTHOR, TREE_MESSAGES};
use super::replies::KEY_REPLIES_WHOLE;
use super::runs::numbered;
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
            let engine = match self.store.engine() {
                Ok(engine) => engine,
                Err(e) => return Some(Err(e)),
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

    /// Brings the listing and reply indexes in line with the held messages: adds the position
    /// of each held message that has none (read from an entry of the one-entry-per-message
    /// listing of development builds if there is one, else from its envelope by `describe`),
    /// removes positions of messages no longer held, and writes the count; in a store whose
    /// reply index is not whole ([`Store::replies_whole`]), describes every held message for
    /// its reply entry, and marks the index whole. Holds the writer lock throughout: run it
    /// at start, before messages are written. Costs a read of every listing run and every
    /// author run, and an envelope read per message described.
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
        // Every listed position, by message.
        let mut listed: HashMap<MessageId, (GroupId, Listed)> = HashMap::new();
        for item in engine.messages.scan_prefix([P_LISTING]) {
            let (k, v) = item.map_err(read)?;
            let group = engine.listing_group(&k)?;
            for at in engine.listing_run(&k, &v)? {
                listed.insert(at.id, (group, at));
            }
        }
        // Entries of development builds: removed, their positions moved into runs.
        let mut earlier: HashMap<MessageId, (GroupId, Listed)> = HashMap::new();
        let mut earlier_keys = Vec::new();
        for item in engine.messages.scan_prefix([P_LISTING_ENTRIES]) {
            let (k, _) = item.map_err(read)?;
            if let Some(entry) = earlier_entry(&k) {
                earlier.insert(entry.1.id, entry);
            }
            earlier_keys.push(k);
        }
        let mut report = RelistReport::default();
        // Entries are applied a chunk at a time: one batch of a million entries held sled's
        // and the allocator's memory at gigabytes after the node started. Each chunk is
        // derived data whatever follows it; the count and the mark go in the last one, so a
        // start cut short relists again.
        let edit = |writes: &mut sled::Batch,
                    adds: BTreeMap<GroupId, Vec<Listed>>,
                    removes: &[(GroupId, Listed)]|
         -> Result<(u64, u64), StoreError> {
            let mut edits: BTreeMap<GroupId, (Vec<Listed>, Vec<Listed>)> = BTreeMap::new();
            for (group, positions) in adds {
                edits.entry(group).or_default().0 = positions;
            }
            for (group, at) in removes {
                edits.entry(*group).or_default().1.push(*at);
            }
            let (mut added, mut removed) = (0, 0);
            for (group, (mut add, mut remove)) in edits {
                add.sort_unstable();
                remove.sort_unstable();
                let (a, r) = engine.edit_listing(writes, &group, &add, &remove)?;
                added += a;
                removed += r;
            }
            Ok((added, removed))
        };
        let flush = |writes: &mut sled::Batch| {
            engine
                .messages
                .apply_batch(std::mem::take(writes))
                .map_err(|e| engine.engine("rebuilding the listing index", e))
        };
        let mut writes = sled::Batch::default();
        let mut adds: BTreeMap<GroupId, Vec<Listed>> = BTreeMap::new();
        let mut pending = 0usize;
        let mut count = 0u64;
        for k in earlier_keys {
            writes.remove(k);
            pending += 1;
            if pending >= chunk {
                flush(&mut writes)?;
                pending = 0;
            }
        }
        for item in engine.messages.scan_prefix([P_AUTHOR]) {
            let (k, v) = item.map_err(|e| engine.engine("reading the author index", e))?;
            let place = engine.place_of(&k)?;
            let (first, records) = engine.run(&k, &v)?;
            for (seq, record) in numbered(first, &records) {
                let was_listed = listed.remove(&record.id).is_some();
                let moved = earlier.remove(&record.id).map(|(_, at)| at);
                if was_listed {
                    count += 1;
                    if whole {
                        continue;
                    }
                }
                // A message whose position was moved is described only for its reply entry.
                let described = if whole && moved.is_some() {
                    None
                } else {
                    let key = super::keys::author_key(&liaison_protocol::Place { seq, ..place });
                    match engine.read_envelope(&key, record) {
                        Ok(envelope) => describe(&envelope),
                        Err(StoreError::Corrupt { .. }) => None,
                        Err(e) => return Err(e),
                    }
                };
                let at = moved.or(described.map(|d| Listed {
                    created_at: d.created_at,
                    id: record.id,
                }));
                let Some(at) = at else {
                    report.unreadable += 1;
                    continue;
                };
                if !was_listed {
                    adds.entry(place.group).or_default().push(at);
                }
                if let Some(parent) = described.and_then(|d| d.reply_to) {
                    Engine::reply_new(&mut writes, [(place.group, parent, record.id)]);
                    report.replies += 1;
                }
                pending += 1;
                if pending >= chunk {
                    let (added, _) = edit(&mut writes, std::mem::take(&mut adds), &[])?;
                    report.added += added as usize;
                    count += added;
                    flush(&mut writes)?;
                    pending = 0;
                }
            }
        }
        // Positions of messages no longer held (entries of development builds of such
        // messages were removed above), removed a chunk at a time with the last additions.
        report.removed += earlier.len();
        let stale: Vec<(GroupId, Listed)> = listed.into_values().collect();
        let mut parts = stale.chunks(chunk.max(1)).peekable();
        loop {
            let part = parts.next().unwrap_or_default();
            let (added, removed) = edit(&mut writes, std::mem::take(&mut adds), part)?;
            report.added += added as usize;
            report.removed += removed as usize;
            count += added;
            if parts.peek().is_none() {
                break;
            }
            flush(&mut writes)?;
        }
        writes.insert(KEY_LISTED, &count.to_be_bytes()[..]);
        writes.remove(KEY_LISTED_ENTRIES);
        writes.insert(KEY_REPLIES_WHOLE, &[][..]);
        flush(&mut writes)?;
        Ok(report)
    }
}

/// The group and position of an entry of the one-entry-per-message listing of development
/// builds; `None` if the key is not one.
fn earlier_entry(k: &[u8]) -> Option<(GroupId, Listed)> {
    let rest = k.strip_prefix(&[P_LISTING_ENTRIES])?;
    let (group, position) = rest.split_first_chunk::<GROUP_LEN>()?;
    let position: &[u8; POSITION_LEN] = position.try_into().ok()?;
    Some((GroupId::from(*group), Listed::decode(position)))
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
        for (group, mut positions) in groups {
            positions.sort_unstable();
            added += self.edit_listing(writes, &group, &positions, &[])?.0;
        }
        let count = self.listed_count()?.saturating_add(added);
        writes.insert(KEY_LISTED, &count.to_be_bytes()[..]);
        Ok(())
    }

    /// Adds to `writes` the runs of `group` rewritten to hold the positions `add` and lose
    /// the positions `remove` (both ascending); how many were added and removed (adding a
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
        let (k, v) = listing_run_entry(
            &g,
            &[Listed {
                created_at: stale.created_at,
                id: stale.id,
            }],
        );
        wipe.insert(k, v);
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

    /// The listing runs of `group`: how many positions each holds.
    fn runs(store: &Store, group: &GroupId) -> Vec<usize> {
        let engine = store.engine().unwrap();
        engine
            .messages
            .scan_prefix(group_prefix(group))
            .map(|item| {
                let (k, v) = item.unwrap();
                engine.listing_run(&k, &v).unwrap().len()
            })
            .collect()
    }

    /// Every page of `group`'s listing, `size` positions each, each below the last one of the
    /// page before.
    fn paged(store: &Store, group: &GroupId, size: usize) -> Vec<Listed> {
        let mut all: Vec<Listed> = Vec::new();
        loop {
            let page: Vec<Listed> = store
                .listing(group, all.last().copied())
                .unwrap()
                .take(size)
                .collect::<Result<_, _>>()
                .unwrap();
            if page.is_empty() {
                return all;
            }
            all.extend(page);
        }
    }

    /// Positions are kept in runs, not an entry per message: messages stored in creation
    /// order fill runs to the brim; messages arriving out of order land in the runs that hold
    /// their times, which split without leaving runs of one. Listing and paging see every
    /// position in order whatever the runs.
    #[tokio::test]
    async fn positions_are_kept_in_runs_that_split_as_they_fill() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (g, other) = (GroupId::from([1; 16]), GroupId::from([2; 16]));
        // 200 messages in creation order, seven a batch, with another group's in between.
        let in_order: Vec<NewMessage> = (1..=200).map(|n| message(n, g, 10 * n)).collect();
        for (i, batch) in in_order.chunks(7).enumerate() {
            let mut batch = batch.to_vec();
            batch.push(message(1000 + i as u64, other, 5));
            store.insert_messages(batch).await.unwrap();
        }
        let full = 200 / MAX_LISTING_RUN;
        let mut want = vec![MAX_LISTING_RUN; full];
        want.push(200 % MAX_LISTING_RUN);
        assert_eq!(runs(&store, &g), want);
        let all = listed(&store, &g, None);
        let times: Vec<u64> = all.iter().map(|l| l.created_at).collect();
        assert_eq!(times, (1..=200).rev().map(|n| 10 * n).collect::<Vec<_>>());
        // A cursor at any position, a run's first and last included.
        for i in [0, 1, 31, 32, 33, 100, 199] {
            assert_eq!(listed(&store, &g, Some(all[i])), all[i + 1..], "below {i}");
        }

        // 150 more, created between the first ones, arriving in a scrambled order, five a
        // batch, one of them twice.
        let mut late: Vec<NewMessage> = (0..150u64)
            .map(|i| (i * 97) % 150)
            .map(|i| message(300 + i, g, 10 * (i + 1) + 5))
            .collect();
        late.push(late[3].clone());
        for batch in late.chunks(5) {
            store.insert_messages(batch.to_vec()).await.unwrap();
        }
        assert_eq!(store.listed_count().unwrap(), 200 + 150 + 29);
        let mut want: Vec<u64> = (1..=200)
            .map(|n| 10 * n)
            .chain((1..=150).map(|n| 10 * n + 5))
            .collect();
        want.sort_unstable_by(|a, b| b.cmp(a));
        let all = listed(&store, &g, None);
        assert_eq!(all.iter().map(|l| l.created_at).collect::<Vec<_>>(), want);
        for size in [1, 7, 50] {
            assert_eq!(paged(&store, &g, size), all, "pages of {size}");
        }
        let sizes = runs(&store, &g);
        assert!(
            sizes.iter().all(|n| (2..=MAX_LISTING_RUN).contains(n)),
            "{sizes:?}"
        );
        assert!(
            sizes.len() < 350 / 8,
            "{} runs for 350 positions",
            sizes.len()
        );
        assert_eq!(listed(&store, &other, None).len(), 29);
    }

    /// A listing read while a batch splits a run below where it stands still lists every
    /// position held when it began: the split moves the run's upper half to a key above the
    /// run, between it and what the reader has read.
    #[tokio::test]
    async fn a_listing_read_while_runs_split_misses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let g = GroupId::from([1; 16]);
        let fill: Vec<NewMessage> = (1..=2048).map(|n| message(n, g, 10 * n)).collect();
        for batch in fill.chunks(256) {
            store.insert_messages(batch.to_vec()).await.unwrap();
        }
        let engine = store.engine().unwrap();
        let runs_now = || -> Vec<Vec<Listed>> {
            engine
                .messages
                .scan_prefix(group_prefix(&g))
                .map(|item| {
                    let (k, v) = item.unwrap();
                    engine.listing_run(&k, &v).unwrap()
                })
                .collect()
        };
        let mut split = 0;
        for n in 0.. {
            let runs = runs_now();
            // The lowest full run with a run above it.
            let Some(i) = (0..runs.len() - 1).find(|&i| runs[i].len() == MAX_LISTING_RUN) else {
                break;
            };
            let (run, above) = (&runs[i], &runs[i + 1]);
            let held = listed(&store, &g, Some(above[0]));
            let mut listing = store.listing(&g, Some(above[1])).unwrap();
            assert_eq!(listing.next().unwrap().unwrap(), above[0]);
            // A message created in the middle of the run arrives: the run splits in two.
            let late = message(10_000 + n, g, run[MAX_LISTING_RUN / 2].created_at + 1);
            store.insert_messages(vec![late]).await.unwrap();
            assert_eq!(runs_now().len(), runs.len() + 1, "the run split");
            split += 1;
            let rest: Vec<Listed> = listing.collect::<Result<_, _>>().unwrap();
            assert!(
                rest.windows(2).all(|w| w[0] > w[1]),
                "newest first, once each"
            );
            let missed: Vec<&Listed> = held.iter().filter(|at| !rest.contains(at)).collect();
            assert!(
                missed.is_empty(),
                "split {n}: {} positions missed",
                missed.len()
            );
        }
        assert!(split >= 32, "{split} runs split");
    }

    /// The one entry per message of development builds is moved into runs without a message
    /// opened, entries of messages no longer held are dropped, and their count goes.
    #[tokio::test]
    async fn relist_moves_entries_of_development_builds_into_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let g = GroupId::from([1; 16]);
        let batch: Vec<NewMessage> = (1..=6).map(|n| message(n, g, 100 + n)).collect();
        store.insert_messages(batch.clone()).await.unwrap();
        // Its reply index whole, so that no message needs describing for it.
        store
            .relist(|e| {
                Some(Described {
                    created_at: u64::from_be_bytes(e.try_into().ok()?),
                    reply_to: None,
                })
            })
            .unwrap();
        assert!(store.replies_whole().unwrap());
        let earlier_key = |m: &NewMessage| {
            let mut k = vec![P_LISTING_ENTRIES];
            k.extend_from_slice(g.as_bytes());
            k.extend_from_slice(&m.created_at.to_be_bytes());
            k.extend_from_slice(m.id.as_bytes());
            k
        };
        let engine = store.engine().unwrap();
        let mut earlier = sled::Batch::default();
        for item in engine.messages.scan_prefix([P_LISTING]) {
            earlier.remove(item.unwrap().0);
        }
        earlier.remove(KEY_LISTED);
        for m in batch.iter().chain([&message(99, g, 500)]) {
            earlier.insert(earlier_key(m), &[][..]);
        }
        earlier.insert(KEY_LISTED_ENTRIES, &7u64.to_be_bytes()[..]);
        engine.messages.apply_batch(earlier).unwrap();
        // What the node compares with its count of messages, to relist at start.
        assert_eq!(store.listed_count().unwrap(), 0);

        let report = store.relist(|_| panic!("a message opened")).unwrap();
        assert_eq!((report.added, report.removed, report.unreadable), (6, 1, 0));
        assert_eq!(store.listed_count().unwrap(), 6);
        let ids: Vec<MessageId> = listed(&store, &g, None).iter().map(|l| l.id).collect();
        let want: Vec<MessageId> = batch.iter().rev().map(|m| m.id).collect();
        assert_eq!(ids, want);
        assert_eq!(engine.messages.scan_prefix([P_LISTING_ENTRIES]).count(), 0);
        assert!(engine.messages.get(KEY_LISTED_ENTRIES).unwrap().is_none());
    }

    /// A run that is not whole positions in order is reported corrupt, not listed.
    #[tokio::test]
    async fn a_damaged_run_is_reported_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let g = GroupId::from([1; 16]);
        store
            .insert_messages((1..=3).map(|n| message(n, g, n)).collect())
            .await
            .unwrap();
        let engine = store.engine().unwrap();
        let (k, v) = engine
            .messages
            .scan_prefix([P_LISTING])
            .next()
            .unwrap()
            .unwrap();
        for damaged in [&v[..v.len() - 1], &v[POSITION_LEN..]] {
            engine.messages.insert(&k, damaged).unwrap();
            let err = store
                .listing(&g, None)
                .unwrap()
                .find_map(Result::err)
                .unwrap();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        }
    }

    /// What the listing costs the write path: 64,000 messages of one group applied in batches
    /// of 256 without waiting for flushes, once in creation order from one author, once from
    /// 16 authors whose messages interleave in time, each author's whole history in turn (as a
    /// new member's catch-up fetches them). Prints microseconds per message and the tree's
    /// entry count; asserts nothing about them. Run with `--release --ignored --nocapture`.
    #[tokio::test]
    #[ignore = "a measure, not a test"]
    async fn measure_the_listing_on_the_write_path() {
        const MESSAGES: u64 = 64_000;
        for authors in [1, 16, 128] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let g = GroupId::from([1; 16]);
            let per = MESSAGES / authors;
            let ids: Vec<NodeId> = (0u8..=255)
                .filter_map(|b| NodeId::from_bytes([b; 32]).ok())
                .collect();
            let ids = &ids;
            let all: Vec<NewMessage> = (0..authors)
                .flat_map(|a| {
                    (0..per).map(move |s| {
                        let n = a * per + s + 1;
                        let mut m = message(n, g, 1_000 + s * authors + a);
                        m.place.author = ids[a as usize];
                        m.place.seq = s + 1;
                        m
                    })
                })
                .collect();
            let engine = store.engine().unwrap();
            let start = std::time::Instant::now();
            for batch in all.chunks(256) {
                engine.apply_messages(batch).unwrap();
            }
            let took = start.elapsed();
            store.flush().await.unwrap();
            println!(
                "{} author(s): {:.2} µs a message, {} entries in messages-v4, {} listed",
                authors,
                took.as_secs_f64() * 1e6 / MESSAGES as f64,
                engine.messages.len(),
                store.listing(&g, None).unwrap().count(),
            );
        }
    }
}
