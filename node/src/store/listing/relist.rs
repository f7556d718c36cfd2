//! Bringing the listing and reply indexes in line with the held messages at start (see the
//! listing's module docs): [`Store::relist`].

use std::collections::{BTreeMap, HashMap};

use liaison_protocol::{GroupId, MessageId};

use super::super::keys::{GROUP_LEN, P_AUTHOR};
use super::super::replies::KEY_REPLIES_WHOLE;
use super::super::runs::numbered;
use super::super::{Engine, Store, StoreError};
use super::{
    Described, Listed, RelistReport, KEY_LISTED, KEY_LISTED_ENTRIES, POSITION_LEN, P_LISTING,
    P_LISTING_ENTRIES,
};

/// Messages whose entries [`Store::relist`] applies in one sled batch.
const RELIST_CHUNK: usize = 10_000;

/// Positions to add to and to remove from each group's listing.
type Edits = BTreeMap<GroupId, (Vec<Listed>, Vec<Listed>)>;

impl Store {
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
    pub(in crate::store) fn relist_in_chunks(
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
        let mut earlier: HashMap<MessageId, Listed> = HashMap::new();
        let mut earlier_keys = Vec::new();
        for item in engine.messages.scan_prefix([P_LISTING_ENTRIES]) {
            let (k, _) = item.map_err(read)?;
            if let Some(at) = earlier_entry(&k) {
                earlier.insert(at.id, at);
            }
            earlier_keys.push(k);
        }
        let mut report = RelistReport::default();
        // Entries are applied a chunk at a time: one batch of a million entries held sled's
        // and the allocator's memory at gigabytes after the node started. Each chunk is
        // derived data whatever follows it; the count and the mark go in the last one, so a
        // start cut short relists again.
        let edit = |writes: &mut sled::Batch, edits: Edits| -> Result<(u64, u64), StoreError> {
            let (mut added, mut removed) = (0, 0);
            for (group, (add, remove)) in edits {
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
        let mut edits = Edits::new();
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
                let moved = earlier.remove(&record.id);
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
                    let key =
                        super::super::keys::author_key(&liaison_protocol::Place { seq, ..place });
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
                    edits.entry(place.group).or_default().0.push(at);
                }
                if let Some(parent) = described.and_then(|d| d.reply_to) {
                    Engine::reply_new(&mut writes, [(place.group, parent, record.id)]);
                    report.replies += 1;
                }
                pending += 1;
                if pending >= chunk {
                    let (added, _) = edit(&mut writes, std::mem::take(&mut edits))?;
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
            for (group, at) in parts.next().unwrap_or_default() {
                edits.entry(*group).or_default().1.push(*at);
            }
            let (added, removed) = edit(&mut writes, std::mem::take(&mut edits))?;
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

/// The position an entry of the one-entry-per-message listing of development builds names
/// (`l` ‖ group ‖ position); `None` if the key is not one.
fn earlier_entry(k: &[u8]) -> Option<Listed> {
    let rest = k.strip_prefix(&[P_LISTING_ENTRIES])?;
    let (_group, position) = rest.split_first_chunk::<GROUP_LEN>()?;
    let position: &[u8; POSITION_LEN] = position.try_into().ok()?;
    Some(Listed::decode(position))
}
