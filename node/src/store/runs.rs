//! The values of the author index: runs of message records (see the store's module docs).
//!
//! A record is id(32) ‖ envelope location(28) ‖ meta_len(4) ‖ caller metadata; a run is the
//! records of consecutive seqs back to back, keyed by the first seq.

use std::collections::BTreeMap;

use liaison_protocol::MessageId;

use super::envelope_log::{Location, LOCATION_LEN};
use super::keys::{seq_of, AuthorKey, ID_LEN, SEQ_SPACE_LEN};

/// Most messages in one author index entry.
pub(super) const MAX_RUN: usize = 128;
/// A record's fixed part: id ‖ envelope location ‖ meta_len(4); then the metadata.
pub(super) const RECORD_HEAD_LEN: usize = ID_LEN + LOCATION_LEN + 4;

/// A stored message as its author index run holds it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Record<'v> {
    pub(super) id: MessageId,
    /// Where its envelope lies in the log.
    pub(super) loc: Location,
    /// The caller's metadata.
    pub(super) meta: &'v [u8],
}

/// Appends the record of message `id` to `out`; `None` (with nothing appended) if the
/// metadata is 4 GiB or longer.
pub(super) fn encode_record(
    out: &mut Vec<u8>,
    id: &MessageId,
    loc: &Location,
    meta: &[u8],
) -> Option<()> {
    let meta_len = u32::try_from(meta.len()).ok()?;
    out.reserve(RECORD_HEAD_LEN + meta.len());
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(&loc.encode());
    out.extend_from_slice(&meta_len.to_be_bytes());
    out.extend_from_slice(meta);
    Some(())
}

/// The id of an encoded record (the first [`ID_LEN`] bytes, as [`encode_record`] writes).
pub(super) fn record_id(record: &[u8]) -> MessageId {
    let mut id = [0u8; ID_LEN];
    if let Some(bytes) = record.get(..ID_LEN) {
        id.copy_from_slice(bytes);
    }
    MessageId::from(id)
}

/// The records of an author index run; `None` if the value is empty or not whole records.
pub(super) fn parse_run(mut v: &[u8]) -> Option<Vec<Record<'_>>> {
    let mut records = Vec::with_capacity(v.len() / RECORD_HEAD_LEN);
    while !v.is_empty() {
        let (head, rest) = v.split_at_checked(RECORD_HEAD_LEN)?;
        let (id, head) = head.split_first_chunk::<ID_LEN>()?;
        let (loc, meta_len) = head.split_at(LOCATION_LEN);
        let meta_len = usize::try_from(u32::from_be_bytes(meta_len.try_into().ok()?)).ok()?;
        let (meta, rest) = rest.split_at_checked(meta_len)?;
        records.push(Record {
            id: MessageId::from(*id),
            loc: Location::decode(loc)?,
            meta,
        });
        v = rest;
    }
    (!records.is_empty()).then_some(records)
}

/// The records of a run starting at seq `first` with their seqs; stops at the last seq rather
/// than overflow (a run checked by `Store::run` never reaches that far).
pub(super) fn numbered<'a, 'v>(
    first: u64,
    records: &'a [Record<'v>],
) -> impl Iterator<Item = (u64, &'a Record<'v>)> + 'a {
    records
        .iter()
        .enumerate()
        .map_while(move |(i, record)| Some((first.checked_add(u64::try_from(i).ok()?)?, record)))
}

/// Entries given by their author index keys, as runs of consecutive seqs of one author and
/// epoch, each at most `max` long (the author index uses [`MAX_RUN`]): the key of each run's
/// first seq, the run's values back to back in seq order, and how many there are.
pub(super) fn author_runs<V: AsRef<[u8]>>(
    seqs: &BTreeMap<AuthorKey, V>,
    max: usize,
) -> Vec<(AuthorKey, Vec<u8>, usize)> {
    let mut runs: Vec<(AuthorKey, Vec<u8>, usize)> = Vec::new();
    let mut last: Option<&AuthorKey> = None;
    for (key, value) in seqs {
        let follows = last.is_some_and(|prev| {
            prev[..1 + SEQ_SPACE_LEN] == key[..1 + SEQ_SPACE_LEN]
                && seq_of(prev).checked_add(1) == Some(seq_of(key))
        });
        match runs.last_mut() {
            Some((_, bytes, n)) if follows && *n < max => {
                bytes.extend_from_slice(value.as_ref());
                *n += 1;
            }
            _ => runs.push((*key, value.as_ref().to_vec(), 1)),
        }
        last = Some(key);
    }
    runs
}

/// The last seq of a run of `n` entries (n ≥ 1) starting at the seq of `first`.
pub(super) fn first_plus(first: &AuthorKey, n: usize) -> u64 {
    seq_of(first).saturating_add(n.saturating_sub(1) as u64)
}
