//! The archive: what the sync engine reads back from the store to answer a peer
//! ([`StoreArchive`]), the envelopes read ahead of the request that will ask for them
//! ([`ReadAhead`]), and the origins of recently stored messages ([`Origins`]) that spare a
//! store read per receipt.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};

use liaison_protocol::message::{self, MessageId, Place};
use liaison_protocol::sync::Archive;
use liaison_protocol::{GroupId, NodeId};
use tracing::{debug, warn};

use crate::error::{Error, Result};
use crate::store::Store;

use super::command::Internal;
use super::Actor;

/// One range of envelopes for a sync response: the sequence space of a place, from the seq
/// after it.
pub(super) type ReadKey = Place;

/// Most ranges read ahead and kept at once (each at most one response budget, 1 MiB).
pub(super) const MAX_READ_AHEAD: usize = 8;

/// Envelopes read from the store ahead of the sync request that will ask for them.
///
/// A peer catching up asks for the next range only once it has checked the last one. Reading
/// that next range on the blocking pool as soon as the last one is answered lets the store
/// read overlap the peer's checks, so the request is answered from memory. Stored messages
/// never change, so a range read ahead is still right when it is asked for (it may only lack
/// messages stored since, which the response's `more` and the next request bring).
#[derive(Default)]
pub(super) struct ReadAhead {
    pub(super) ready: HashMap<ReadKey, Vec<Vec<u8>>>,
    pub(super) reading: HashSet<ReadKey>,
    /// Ranges that the engine's answers suggest a peer will ask for next, with their budget.
    pub(super) wanted: Vec<(ReadKey, usize)>,
}

/// Reads envelopes back from the store for the engine.
pub(super) struct StoreArchive<'a> {
    pub(super) store: &'a Store,
    pub(super) origins: &'a Origins,
    /// Origins read from the store while handling the frame at hand, for [`Origins`].
    pub(super) learned: RefCell<Vec<(MessageId, Place)>>,
    pub(super) ahead: &'a RefCell<ReadAhead>,
    /// Store reads made for receipts of the frame at hand (see [`MAX_RECEIPT_READS`]).
    pub(super) receipt_reads: Cell<usize>,
}

/// Most store reads one inbound frame's receipts may cause. A receipt names up to 1,024
/// messages and a `Receipts` frame carries up to 64, which a member can sign once and send
/// again and again; the messages an honest receipt names were stored moments ago, and their
/// origins are in [`Origins`] without any read. Messages beyond this count that would need a
/// read count as not held: receipts are best effort.
pub(super) const MAX_RECEIPT_READS: usize = 1024;

impl StoreArchive<'_> {
    /// Group and author of a stored message from the store, decoding only its header.
    pub(super) fn stored_origin(&self, id: &MessageId) -> Option<Place> {
        let header = match self.store.with_envelope(id, message::decode_header) {
            Ok(found) => found?,
            Err(e) => {
                warn!(id = %id.short(), error = %e, "cannot read a stored message's origin");
                return None;
            }
        };
        match header {
            Ok(h) => {
                let origin = h.place();
                self.learned.borrow_mut().push((*id, origin));
                Some(origin)
            }
            Err(e) => {
                warn!(id = %id.short(), error = %e, "a stored message's header does not decode");
                None
            }
        }
    }
}

/// Those of `envelopes` (ascending by seq) with seq at most `through` (a range read ahead
/// may run past the end of what is asked for).
pub(super) fn through_seq(mut envelopes: Vec<Vec<u8>>, through: u64) -> Vec<Vec<u8>> {
    let seq = |e: &Vec<u8>| message::decode_header(e).map_or(u64::MAX, |h| h.seq);
    if envelopes.last().is_some_and(|e| seq(e) > through) {
        let keep = envelopes.partition_point(|e| seq(e) <= through);
        envelopes.truncate(keep);
    }
    envelopes
}

impl Archive for StoreArchive<'_> {
    fn envelopes(
        &self,
        group: &GroupId,
        author: &NodeId,
        epoch: u64,
        after: u64,
        through: u64,
        max_bytes: usize,
    ) -> Vec<Vec<u8>> {
        let key = Place {
            group: *group,
            author: *author,
            epoch,
            seq: after,
        };
        let mut ahead = self.ahead.borrow_mut();
        let envelopes = match ahead.ready.remove(&key) {
            Some(mut read) => {
                // Read with the full budget; this answer may have less left.
                let mut total = 0usize;
                let keep = read
                    .iter()
                    .position(|e| {
                        total = total.saturating_add(e.len());
                        total > max_bytes
                    })
                    .unwrap_or(read.len())
                    .max(1);
                read.truncate(keep);
                read
            }
            None => match self.store.readable_envelopes(&key, through, max_bytes) {
                Ok((envelopes, 0)) => envelopes,
                Ok((envelopes, skipped)) => {
                    warn!(
                        group = %group.short(),
                        author = %author.short(),
                        epoch,
                        skipped,
                        "stored envelopes cannot be read (damaged); left out of a sync response, peers that hold them serve them"
                    );
                    envelopes
                }
                Err(e) => {
                    warn!(error = %e, "cannot read envelopes for a sync response");
                    Vec::new()
                }
            },
        };
        let envelopes = through_seq(envelopes, through);
        // A range that (nearly) filled the budget is likely followed by a request for the next.
        let total: usize = envelopes.iter().map(Vec::len).sum();
        if total >= max_bytes / 2 {
            let last = envelopes
                .last()
                .and_then(|e| message::decode_header(e).ok())
                .map(|h| h.seq);
            if let Some(last) = last {
                ahead.wanted.push((Place { seq: last, ..key }, max_bytes));
            }
        }
        envelopes
    }

    fn message_origin(&self, id: &MessageId) -> Option<(GroupId, NodeId)> {
        if let Some(origin) = self.origins.get(id) {
            return Some((origin.group, origin.author));
        }
        self.stored_origin(id).map(|o| (o.group, o.author))
    }

    fn receipt_origin(&self, id: &MessageId) -> Option<(GroupId, NodeId)> {
        if let Some(origin) = self.origins.get(id) {
            return Some((origin.group, origin.author));
        }
        let reads = self.receipt_reads.get();
        if reads >= MAX_RECEIPT_READS {
            if reads == MAX_RECEIPT_READS {
                debug!("receipts of one frame name too many messages not recently stored; the rest are skipped");
                self.receipt_reads.set(reads + 1);
            }
            return None;
        }
        self.receipt_reads.set(reads + 1);
        self.stored_origin(id).map(|o| (o.group, o.author))
    }
}

/// The receipts `store` holds for message `id` as `(receiver, receipt bytes)` (see
/// [`Store::receipts`]), the message's place read from its stored header; `None` if the
/// message is not held.
pub fn stored_receipts(
    store: &Store,
    id: &MessageId,
) -> Result<Option<Vec<crate::store::StoredReceipt>>> {
    let Some(header) = store.with_envelope(id, message::decode_header)? else {
        return Ok(None);
    };
    let place = header
        .map_err(|e| Error::Invalid(format!("stored message {id} has a malformed header: {e}")))?
        .place();
    Ok(Some(store.receipts(&place)?))
}

/// Origins of recently stored messages, so that a receipt for one (the usual case) needs no
/// store read and no decoding of the envelope, and can be indexed by place. Two generations
/// of at most [`MAX_ORIGINS`] each: when the newer fills up it becomes the older and the
/// older is forgotten, so the latest [`MAX_ORIGINS`] are always there. The store answers
/// the rest.
#[derive(Default)]
pub(super) struct Origins {
    pub(super) newer: HashMap<MessageId, Place>,
    pub(super) older: HashMap<MessageId, Place>,
}

impl Origins {
    pub(super) fn get(&self, id: &MessageId) -> Option<&Place> {
        self.newer.get(id).or_else(|| self.older.get(id))
    }

    pub(super) fn insert(&mut self, id: MessageId, origin: Place) {
        if self.newer.len() >= MAX_ORIGINS {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(id, origin);
    }

    pub(super) fn remove(&mut self, id: &MessageId) {
        self.newer.remove(id);
        self.older.remove(id);
    }
}

/// Most entries in one generation of [`Origins`].
pub(super) const MAX_ORIGINS: usize = 32_768;

impl Actor {
    /// Remembers where a message being stored sits (see [`Origins`]).
    pub(super) fn note_origin(&mut self, id: MessageId, header: &message::Header) {
        self.origins.insert(id, header.place());
    }

    /// Starts reading the ranges the last answers suggest peers will ask for next.
    pub(super) fn read_ahead_wanted(&mut self) {
        let wanted = std::mem::take(&mut self.read_ahead.get_mut().wanted);
        for (key, budget) in wanted {
            let ahead = self.read_ahead.get_mut();
            if ahead.ready.contains_key(&key)
                || ahead.reading.contains(&key)
                || ahead.ready.len() + ahead.reading.len() >= MAX_READ_AHEAD
            {
                continue;
            }
            ahead.reading.insert(key);
            let store = self.store.clone();
            let tx = self.internal_tx.clone();
            self.writes.spawn(async move {
                let read =
                    tokio::task::spawn_blocking(move || store.envelopes_after(&key, budget)).await;
                // A failed read only loses the head start: the request reads the store itself.
                let envelopes = match read {
                    Ok(Ok(envelopes)) => envelopes,
                    Ok(Err(e)) => {
                        warn!(error = %e, "cannot read envelopes ahead for a sync response");
                        Vec::new()
                    }
                    Err(e) => {
                        debug!(error = %e, "read-ahead task did not finish");
                        Vec::new()
                    }
                };
                let _ = tx.send(Internal::ReadAhead { key, envelopes }).await;
            });
        }
    }

    /// A range read ahead is ready (see [`ReadAhead`]).
    pub(super) fn on_read_ahead(&mut self, key: ReadKey, envelopes: Vec<Vec<u8>>) {
        let ahead = self.read_ahead.get_mut();
        ahead.reading.remove(&key);
        if !envelopes.is_empty() {
            if ahead.ready.len() >= MAX_READ_AHEAD {
                // Ranges nobody asked for (a peer went away): drop them all.
                ahead.ready.clear();
            }
            ahead.ready.insert(key, envelopes);
        }
    }
}
