//! Earlier store formats, converted when a store is opened: version 1 (`messages-v1` and
//! friends) into version 2, version 2 (`messages-v2`, envelopes inside the entries) into
//! version 3, version 3 (`messages-v3`: one `m` entry per message, the log index, a counter)
//! into version 4 (see the module docs of [`super`]). Each step is restartable after a crash.
//!
//! Version 3 is kept whole here because a version 3 store may have crashed: its own recovery
//! ([`recover_v3`]) runs before the conversion, and version 2 converts through it.
//!
//! Layout of `messages-v3`:
//!
//! | key                                   | value                |
//! |---------------------------------------|----------------------|
//! | `m` ‖ message_id(32)                  | meta_len(4) ‖ caller metadata ‖ offset(8) ‖ len(4) ‖ checksum(16) |
//! | `a` ‖ group(16) ‖ author(32) ‖ epoch(8) ‖ seq(8) | message_id(32) × n: seqs `seq..seq+n` |
//! | `l` ‖ offset(8)                       | message_id(32) × n: the batch written at `offset` |
//! | `c` ‖ `message-count`                 | u64                  |
//! | `w`                                   | u64: log watermark   |

use std::path::Path;

use super::envelope_log::{EnvelopeLog, Location};
use super::{
    author_key, author_runs, by_author_key_at, corrupt_at, encode_record, log_state, open_error,
    seq_of, stored_u64, LogState, MessageId, StoreError, ID_LEN, KEY_WATERMARK, MAX_RUN, P_AUTHOR,
    SEQ_SPACE_LEN,
};

/// The version 3 message tree, converted and dropped by `Store::open`.
pub(super) const V3_MESSAGES: &str = "messages-v3";
/// The version 2 message tree, converted and dropped by `Store::open`.
pub(super) const V2_MESSAGES: &str = "messages-v2";
/// Version 1 trees, converted and dropped by `Store::open`.
pub(super) const V1_MESSAGES: &str = "messages-v1";
pub(super) const V1_MSG_META: &str = "msg-meta-v1";
pub(super) const V1_BY_AUTHOR: &str = "by-author-v1";
pub(super) const V1_BY_GROUP: &str = "by-group-v1";
pub(super) const V1_KEY_NEXT_ORDER: &str = "store/next-local-order";
pub(super) const V1_KEY_MESSAGE_COUNT: &str = "store/message-count";
/// Key spaces of `messages-v3`, as named in errors.
pub(super) const PART_MESSAGES: &str = "messages-v3 (messages)";
pub(super) const V3_PART_BY_AUTHOR: &str = "messages-v3 (author index)";
pub(super) const PART_BY_OFFSET: &str = "messages-v3 (log index)";
pub(super) const PART_COUNTERS: &str = "messages-v3 (counters)";
/// Key prefixes of `messages-v3` besides the author index.
pub(super) const P_MESSAGE: u8 = b'm';
pub(super) const P_OFFSET: u8 = b'l';
/// Number of messages stored (u64 big-endian).
pub(super) const KEY_MESSAGE_COUNT: &[u8] = b"cmessage-count";
/// Log index key: prefix ‖ offset.
pub(super) const BY_OFFSET_KEY_LEN: usize = 1 + 8;
/// Length of the metadata length that starts a stored message.
const META_LEN_LEN: usize = 4;

/// Converts `messages-v3` (complete: [`recover_v3`] and [`migrate_v2`] have run) into
/// `messages`, the version 4 tree, then drops `messages-v3`.
///
/// Restartable: `messages` is cleared first (nothing else writes it before the conversion is
/// done), and `messages-v3` is dropped only once everything copied is flushed. The envelope
/// log is shared by both formats and not touched: every envelope `messages-v3` points to is
/// below its watermark, which is copied.
pub(super) fn migrate_v3(
    path: &Path,
    db: &sled::Db,
    old: &sled::Tree,
    messages: &sled::Tree,
    state: LogState,
) -> Result<(), StoreError> {
    let open_err = |e| open_error(path, e);
    messages.clear().map_err(open_err)?;
    let mut batch = sled::Batch::default();
    let (mut pending, mut copied, mut lost) = (0usize, 0u64, 0u64);
    for item in old.scan_prefix([P_AUTHOR]) {
        let (k, v) = item.map_err(open_err)?;
        let key = author_key(path, V3_PART_BY_AUTHOR, &k)?;
        check_ids(path, V3_PART_BY_AUTHOR, &v)?;
        // The run's messages as version 4 records; a seq whose entry is missing (which atomic
        // batches rule out) splits the run.
        let mut records = std::collections::BTreeMap::new();
        for (seq, id) in run_ids(seq_of(&key), &v) {
            let Some(value) = old.get(message_key(&id)).map_err(open_err)? else {
                lost += 1;
                continue;
            };
            let (meta, loc) = message_entry(path, &id, &value)?;
            let mut record = Vec::new();
            encode_record(&mut record, &id, &loc, meta).ok_or_else(|| {
                corrupt_at(
                    path,
                    PART_MESSAGES,
                    format!("message {} has metadata over 4 GiB", hex::encode(id)),
                )
            })?;
            records.insert(by_author_key_at(&key, seq), record);
            copied += 1;
        }
        for (first, run, _) in author_runs(&records, MAX_RUN) {
            batch.insert(&first[..], run);
            pending += 1;
        }
        if pending >= 1024 {
            messages
                .apply_batch(std::mem::take(&mut batch))
                .map_err(open_err)?;
            pending = 0;
        }
    }
    batch.insert(KEY_WATERMARK, &state.watermark.to_be_bytes()[..]);
    messages.apply_batch(batch).map_err(open_err)?;
    db.flush().map_err(open_err)?;
    db.drop_tree(V3_MESSAGES).map_err(open_err)?;
    db.flush().map_err(open_err)?;
    tracing::info!(messages = copied, "store converted from format version 3");
    if lost > 0 {
        tracing::warn!(
            path = %path.display(),
            lost,
            "format 3 index entries without their message were not kept"
        );
    }
    Ok(())
}

/// Checks that a version 3 value in `part` is message ids, at least one.
fn check_ids(path: &Path, part: &'static str, v: &[u8]) -> Result<(), StoreError> {
    if v.is_empty() || v.len() % ID_LEN != 0 {
        return Err(corrupt_at(
            path,
            part,
            format!("value has {} bytes, expected message ids", v.len()),
        ));
    }
    Ok(())
}

/// The metadata and envelope location of version 3 message `id`, from its entry.
fn message_entry<'v>(
    path: &Path,
    id: &MessageId,
    value: &'v [u8],
) -> Result<(&'v [u8], Location), StoreError> {
    split_message_value(value).ok_or_else(|| {
        corrupt_at(
            path,
            PART_MESSAGES,
            format!("message {} is malformed", hex::encode(id)),
        )
    })
}

/// The `(seq, id)` pairs of a version 3 run starting at seq `first`; stops at the last seq
/// rather than overflow.
fn run_ids(first: u64, ids: &[u8]) -> impl Iterator<Item = (u64, MessageId)> + '_ {
    ids.chunks_exact(ID_LEN)
        .enumerate()
        .map_while(move |(i, id)| {
            let seq = first.checked_add(u64::try_from(i).ok()?)?;
            Some((seq, id.try_into().unwrap_or_default()))
        })
}

pub(super) fn message_key(id: &MessageId) -> [u8; 1 + ID_LEN] {
    let mut k = [0u8; 1 + ID_LEN];
    k[0] = P_MESSAGE;
    k[1..].copy_from_slice(id);
    k
}

/// `prefix` ‖ `key`.
fn prefixed(prefix: u8, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(prefix);
    k.extend_from_slice(key);
    k
}

/// Records `end` as the log's watermark and removes the log index entries of every batch
/// below it. Call only once the log is synced up to `end`.
///
/// Plain writes, not one sled batch (which takes sled's process-wide lock exclusively: with
/// ten stores in one process, one hop of a delivery took 15 % longer). Nothing here needs to
/// land together: every batch below `end` has its envelopes synced, so an entry of one that
/// survives a crash only costs a check at the next open, and one removed before the
/// watermark lands is not needed for it.
///
/// Entries are removed from the start of the log index, not from the previous watermark: a
/// writer publishes its log end before it applies its entries, so a batch below `end` may land
/// after the flush that covered it, and the next one removes it.
fn raise_watermark_v3(messages: &sled::Tree, end: u64) -> sled::Result<()> {
    messages.insert(KEY_WATERMARK, &end.to_be_bytes()[..])?;
    let below: Vec<sled::IVec> = messages
        .range(offset_key(0)..offset_key(end))
        .keys()
        .collect::<sled::Result<_>>()?;
    for k in below {
        messages.remove(k)?;
    }
    Ok(())
}

/// `l` ‖ offset: the log index entry of the batch whose envelopes start at `offset`.
pub(super) fn offset_key(offset: u64) -> [u8; BY_OFFSET_KEY_LEN] {
    let mut k = [0u8; BY_OFFSET_KEY_LEN];
    k[0] = P_OFFSET;
    k[1..].copy_from_slice(&offset.to_be_bytes());
    k
}

/// meta_len ‖ meta ‖ `rest`: a stored message, `rest` being the location of its envelope
/// (format 3, [`Location::encode`]) or the envelope itself (format 2); `None` if the metadata
/// is too long to describe.
pub(super) fn message_value(meta: &[u8], rest: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(meta.len()).ok()?;
    let mut v = Vec::with_capacity(META_LEN_LEN + meta.len() + rest.len());
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(meta);
    v.extend_from_slice(rest);
    Some(v)
}

/// The metadata and what follows it in a message value (see [`message_value`]); `None` if the
/// metadata length runs past the end.
fn split_meta(v: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = v.split_first_chunk::<META_LEN_LEN>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// The metadata and envelope location of a stored message; `None` if the value is malformed.
pub(super) fn split_message_value(v: &[u8]) -> Option<(&[u8], Location)> {
    let (meta, loc) = split_meta(v)?;
    Some((meta, Location::decode(loc)?))
}

/// The message count stored in `messages` (0 before the first message).
fn read_count(path: &Path, messages: &sled::Tree) -> Result<u64, StoreError> {
    Ok(stored_u64(
        path,
        messages,
        KEY_MESSAGE_COUNT,
        PART_COUNTERS,
        "message-count",
    )?
    .unwrap_or(0))
}

/// Drops the messages whose envelope lies at or beyond the log's watermark and is not intact
/// in the log, with their index entries, and lowers the message count to match; then syncs the
/// log and raises the watermark past everything kept; returns where the log ends and its
/// watermark.
///
/// sled persists on its own schedule (and in the background), so after a crash the tree may
/// hold the entries of a batch whose envelopes never reached the disk. Those messages were
/// never acknowledged: a write is reported durable only after the log was synced. The batches
/// to check are those the log index still lists at or past the watermark. Entries below the
/// watermark are not checked here: their envelopes were synced, so damage to them is real
/// corruption, reported when they are read. A log shorter than the watermark is logged as an
/// error and the store opens anyway; new envelopes go at the watermark, so that they cannot
/// be mistaken for what is missing.
///
/// The envelopes kept were read back intact, but after a crash of the process alone they may
/// still be only in the kernel's cache: the log is synced before the watermark moves past them.
pub(super) fn recover_v3(
    path: &Path,
    db: &sled::Db,
    messages: &sled::Tree,
    log: &EnvelopeLog,
) -> Result<LogState, StoreError> {
    let open_err = |e| open_error(path, e);
    let LogState { end, watermark } = log_state(path, messages, PART_COUNTERS, log)?;

    let mut removals = sled::Batch::default();
    let mut batches = 0usize;
    let mut dropped = std::collections::HashSet::new();
    let (start, stop): (&[u8], &[u8]) = (&offset_key(watermark), &[P_OFFSET + 1]);
    for item in messages.range(start..stop) {
        let (k, v) = item.map_err(open_err)?;
        if k.len() != BY_OFFSET_KEY_LEN {
            return Err(corrupt_at(
                path,
                PART_BY_OFFSET,
                format!("key has {} bytes, expected {BY_OFFSET_KEY_LEN}", k.len()),
            ));
        }
        check_ids(path, PART_BY_OFFSET, &v)?;
        batches += 1;
        // Batches past `end` are not below the raised watermark; remove them here.
        removals.remove(k);
        for id in v.chunks_exact(ID_LEN) {
            let id: MessageId = id.try_into().unwrap_or_default();
            let key = message_key(&id);
            // Gone: dropped already, or the entry is stale.
            let Some(value) = messages.get(key).map_err(open_err)? else {
                continue;
            };
            let (_, loc) = message_entry(path, &id, &value)?;
            let intact = log
                .read(&loc, end)
                .map_err(|e| open_err(sled::Error::Io(e)))?
                .is_ok();
            if !intact && dropped.insert(id) {
                removals.remove(&key[..]);
            }
        }
    }
    if batches == 0 {
        return Ok(LogState { end, watermark });
    }
    if !dropped.is_empty() {
        // The author index names a message only in the value of its run; this scan runs only
        // after a crash lost envelopes. A run naming a dropped message is replaced by the
        // runs of the messages it kept.
        for item in messages.scan_prefix([P_AUTHOR]) {
            let (k, v) = item.map_err(open_err)?;
            if !v
                .chunks_exact(ID_LEN)
                .any(|id| <MessageId>::try_from(id).is_ok_and(|id| dropped.contains(&id)))
            {
                continue;
            }
            let key = author_key(path, V3_PART_BY_AUTHOR, &k)?;
            removals.remove(k);
            let kept: std::collections::BTreeMap<_, _> = run_ids(seq_of(&key), &v)
                .filter(|(_, id)| !dropped.contains(id))
                .map(|(seq, id)| {
                    let mut at = key;
                    at[1 + SEQ_SPACE_LEN..].copy_from_slice(&seq.to_be_bytes());
                    (at, id)
                })
                .collect();
            for (key, run, _) in author_runs(&kept, MAX_RUN) {
                removals.insert(&key[..], run);
            }
        }
        let count = read_count(path, messages)?.saturating_sub(dropped.len() as u64);
        removals.insert(KEY_MESSAGE_COUNT, &count.to_be_bytes()[..]);
        tracing::warn!(
            path = %path.display(),
            dropped = dropped.len(),
            "dropped messages whose envelopes did not reach the disk before a crash \
             (they were never acknowledged, to peers or through the API)"
        );
    }
    messages.apply_batch(removals).map_err(open_err)?;
    log.sync().map_err(|e| open_err(sled::Error::Io(e)))?;
    // Every entry left points below `end` (new envelopes go from there) at synced bytes.
    raise_watermark_v3(messages, end).map_err(open_err)?;
    db.flush().map_err(open_err)?;
    Ok(LogState {
        end,
        watermark: end,
    })
}

/// Converts a version 2 message store, if there is one, into `messages-v3` and the envelope
/// log, then drops `messages-v2`; returns where the log stands afterwards.
///
/// Restartable, and never loses what `messages-v3` already holds: an entry already there is
/// kept and its `messages-v2` copy skipped, so a repeat after a crash copies only what is
/// missing ([`recover_v3`] has run first and dropped converted messages whose envelopes did not
/// reach the disk). Envelopes are written to the log before the entries that point at them,
/// as on the write path. `messages-v2` is dropped only once everything copied is durable: the
/// log synced, the watermark raised past it and the tree flushed.
pub(super) fn migrate_v2(
    path: &Path,
    db: &sled::Db,
    messages: &sled::Tree,
    log: &EnvelopeLog,
    state: LogState,
) -> Result<LogState, StoreError> {
    if !db
        .tree_names()
        .iter()
        .any(|n| n.as_ref() == V2_MESSAGES.as_bytes())
    {
        return Ok(state);
    }
    let open_err = |e| open_error(path, e);
    let io_err = |e| open_error(path, sled::Error::Io(e));
    let old = db.open_tree(V2_MESSAGES).map_err(open_err)?;
    let mut count = read_count(path, messages)?;
    let mut end = state.end;
    let mut envelopes = Vec::new();
    // The ids whose envelopes are in `envelopes`, in the same order.
    let mut logged = Vec::new();
    let mut batch = sled::Batch::default();
    let mut pending = 0usize;
    let apply = |batch: &mut sled::Batch,
                 envelopes: &mut Vec<u8>,
                 logged: &mut Vec<u8>,
                 end: &mut u64,
                 count: u64|
     -> Result<(), StoreError> {
        log.write_at(*end, envelopes).map_err(io_err)?;
        if !logged.is_empty() {
            batch.insert(&offset_key(*end)[..], std::mem::take(logged));
        }
        *end = end.saturating_add(envelopes.len() as u64);
        envelopes.clear();
        batch.insert(KEY_MESSAGE_COUNT, &count.to_be_bytes()[..]);
        messages
            .apply_batch(std::mem::take(batch))
            .map_err(open_err)
    };

    // Ids whose sequence slot `messages-v3` already gives to another message (only if a store
    // went back to format 2 for a while): the first one stored keeps the slot, as on insert.
    let mut conflicts = std::collections::HashSet::new();
    for item in old.scan_prefix([P_AUTHOR]) {
        let (k, v) = item.map_err(open_err)?;
        match messages.get(&k).map_err(open_err)? {
            None => {
                batch.insert(k, v);
                pending += 1;
            }
            Some(current) if current != v => {
                conflicts.insert(v);
            }
            Some(_) => {}
        }
        if pending >= 4096 {
            apply(&mut batch, &mut envelopes, &mut logged, &mut end, count)?;
            pending = 0;
        }
    }
    let mut copied = 0u64;
    for item in old.scan_prefix([P_MESSAGE]) {
        let (k, v) = item.map_err(open_err)?;
        let id: MessageId = k
            .get(1..)
            .and_then(|id| id.try_into().ok())
            .ok_or_else(|| {
                corrupt_at(
                    path,
                    V2_MESSAGES,
                    format!("key has {} bytes, expected {}", k.len(), 1 + ID_LEN),
                )
            })?;
        if conflicts.contains(&id[..]) || messages.contains_key(&k).map_err(open_err)? {
            continue;
        }
        let (meta, envelope) = split_meta(&v).ok_or_else(|| {
            corrupt_at(
                path,
                V2_MESSAGES,
                format!(
                    "message {} has a metadata length beyond its {} bytes",
                    hex::encode(id),
                    v.len()
                ),
            )
        })?;
        let offset = end.saturating_add(envelopes.len() as u64);
        let value = Location::new(offset, envelope)
            .and_then(|loc| message_value(meta, &loc.encode()))
            .ok_or_else(|| {
                corrupt_at(
                    path,
                    V2_MESSAGES,
                    format!("message {} is over 4 GiB", hex::encode(id)),
                )
            })?;
        envelopes.extend_from_slice(envelope);
        batch.insert(k, value);
        logged.extend_from_slice(&id);
        count += 1;
        copied += 1;
        pending += 1;
        if pending >= 256 || envelopes.len() >= 4 << 20 {
            apply(&mut batch, &mut envelopes, &mut logged, &mut end, count)?;
            pending = 0;
        }
    }
    apply(&mut batch, &mut envelopes, &mut logged, &mut end, count)?;
    log.sync().map_err(io_err)?;
    raise_watermark_v3(messages, end).map_err(open_err)?;
    db.flush().map_err(open_err)?;
    db.drop_tree(V2_MESSAGES).map_err(open_err)?;
    db.flush().map_err(open_err)?;
    tracing::info!(messages = copied, "store converted from format version 2");
    if !conflicts.is_empty() {
        tracing::warn!(
            path = %path.display(),
            skipped = conflicts.len(),
            "format 2 messages whose sequence slot already held another message were not kept"
        );
    }
    Ok(LogState {
        end,
        watermark: end,
    })
}

/// Converts a version 1 message store, if there is one, into `messages-v2` (which
/// [`migrate_v2`] then converts), then drops the version 1 trees and counters.
///
/// Restartable: every step either copies (the same keys, so a repeat writes the same
/// values) or drops, and `messages-v1` — whose presence starts the conversion — is dropped
/// first and only after everything copied from it is flushed. A crash after that leaves
/// only trees and keys whose contents are already in `messages-v2`, which a later open drops.
pub(super) fn migrate_v1(db: &sled::Db, meta: &sled::Tree) -> sled::Result<()> {
    let names = db.tree_names();
    let has = |name: &str| names.iter().any(|n| n.as_ref() == name.as_bytes());
    if has(V1_MESSAGES) {
        let messages = db.open_tree(V2_MESSAGES)?;
        let old = db.open_tree(V1_MESSAGES)?;
        let old_meta = db.open_tree(V1_MSG_META)?;
        let mut count = 0u64;
        let mut batch = sled::Batch::default();
        let mut pending = 0usize;
        let flush_batch = |batch: &mut sled::Batch, pending: &mut usize| {
            *pending = 0;
            messages.apply_batch(std::mem::take(batch))
        };
        for item in old.iter() {
            let (id, envelope) = item?;
            let m = old_meta.get(&id)?.unwrap_or_default();
            let value = message_value(&m, &envelope)
                .ok_or_else(|| sled::Error::Unsupported("message metadata over 4 GiB".into()))?;
            batch.insert(prefixed(P_MESSAGE, &id), value);
            count += 1;
            pending += 1;
            if pending >= 256 {
                flush_batch(&mut batch, &mut pending)?;
            }
        }
        // The arrival index (`by-group-v1`) is not kept; see the module docs.
        for item in db.open_tree(V1_BY_AUTHOR)?.iter() {
            let (k, v) = item?;
            batch.insert(prefixed(P_AUTHOR, &k), v);
            pending += 1;
            if pending >= 4096 {
                flush_batch(&mut batch, &mut pending)?;
            }
        }
        batch.insert(KEY_MESSAGE_COUNT, &count.to_be_bytes()[..]);
        flush_batch(&mut batch, &mut pending)?;
        db.flush()?;
        db.drop_tree(V1_MESSAGES)?;
        db.flush()?;
        tracing::info!(messages = count, "store converted from format version 1");
    }
    let mut dropped = false;
    for name in [V1_MSG_META, V1_BY_AUTHOR, V1_BY_GROUP] {
        if has(name) {
            dropped |= db.drop_tree(name)?;
        }
    }
    for key in [V1_KEY_NEXT_ORDER, V1_KEY_MESSAGE_COUNT] {
        dropped |= meta.remove(key)?.is_some();
    }
    if dropped {
        db.flush()?;
    }
    Ok(())
}
