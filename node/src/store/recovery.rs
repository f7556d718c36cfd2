//! Opening the messages after a clean shutdown or a crash: where the envelope log stands, which
//! messages past its watermark did not reach the disk, and the id index.

use std::collections::BTreeMap;
use std::path::Path;

use super::durability::raise_watermark;
use super::envelope_log::{self, EnvelopeLog};
use super::error::{corrupt_at, open_error};
use super::id_index::{self, IdIndex};
use super::keys::{
    author_key_at, seq_of, AuthorKey, BY_AUTHOR_KEY_LEN, GROUP_LEN, ID_LEN, KEY_WATERMARK,
    PART_BY_AUTHOR, PART_WATERMARK, P_AUTHOR,
};
use super::runs::{author_runs, encode_record, numbered, parse_run, MAX_RUN};
use super::StoreError;

/// Where the envelope log stands once the store is open.
#[derive(Debug, Clone, Copy)]
pub(super) struct LogState {
    /// Where the next envelope goes.
    pub(super) end: u64,
    /// The watermark stored in the message tree (0 if none).
    pub(super) watermark: u64,
}

/// Where the envelope log stands as `messages` records it: the stored watermark (0 if none)
/// and where new envelopes go, the end of the file or the watermark if the file is shorter
/// (logged as an error: reading what is missing will fail, and new envelopes cannot be
/// mistaken for it).
fn log_state(
    path: &Path,
    messages: &sled::Tree,
    log: &EnvelopeLog,
) -> Result<LogState, StoreError> {
    let watermark = match messages
        .get(KEY_WATERMARK)
        .map_err(|e| open_error(path, e))?
    {
        None => 0,
        Some(v) => {
            let bytes: [u8; 8] = v.as_ref().try_into().map_err(|_| {
                corrupt_at(
                    path,
                    PART_WATERMARK,
                    format!("log watermark has {} bytes, expected 8", v.len()),
                )
            })?;
            u64::from_be_bytes(bytes)
        }
    };
    let file_len = log.len().map_err(|e| open_error(path, e))?;
    if file_len < watermark {
        tracing::error!(
            path = %path.display(),
            file = envelope_log::FILE_NAME,
            file_len,
            watermark,
            "the envelope log is shorter than the part known to be on disk; \
             reading the messages stored there will fail"
        );
    }
    Ok(LogState {
        end: file_len.max(watermark),
        watermark,
    })
}

/// Opens `messages` after a clean shutdown or a crash, and builds the id index.
///
/// Every author index run is read once. A message whose envelope does not lie wholly below
/// the log's watermark is checked against the log, and dropped if it is not intact: sled
/// persists on its own schedule (and in the background), so after a crash the tree may hold
/// the runs of a batch whose envelopes never reached the disk. Those messages were never
/// acknowledged: a write is reported durable only after the log was synced. A run that lost
/// messages is replaced by the runs of those it kept. Messages below the watermark are not
/// checked: their envelopes were synced, so damage to them is real corruption, reported when
/// they are read. A log shorter than the watermark is logged as an error and the store opens
/// anyway; new envelopes go at the watermark, so that they cannot be mistaken for what is
/// missing.
///
/// If the log holds bytes past the watermark, it is synced and the watermark raised to its
/// end: the envelopes kept were read back intact, but after a crash of the process alone
/// they may still be only in the kernel's cache.
pub(super) fn load(
    path: &Path,
    db: &sled::Db,
    messages: &sled::Tree,
    log: &EnvelopeLog,
) -> Result<(LogState, IdIndex), StoreError> {
    let open_err = |e| open_error(path, e);
    let LogState { end, watermark } = log_state(path, messages, log)?;

    let mut index = id_index::Builder::default();
    let mut rewrites = sled::Batch::default();
    let mut dropped = 0usize;
    for item in messages.scan_prefix([P_AUTHOR]) {
        let (k, v) = item.map_err(open_err)?;
        let key: AuthorKey = k.as_ref().try_into().map_err(|_| {
            corrupt_at(
                path,
                PART_BY_AUTHOR,
                format!("key has {} bytes, expected {BY_AUTHOR_KEY_LEN}", k.len()),
            )
        })?;
        let first = seq_of(&key);
        let records = parse_run(&v)
            .filter(|records| numbered(first, records).count() == records.len())
            .ok_or_else(|| {
                corrupt_at(
                    path,
                    PART_BY_AUTHOR,
                    format!(
                        "the run from seq {first} of author {} has {} bytes that are not \
                         message records",
                        hex::encode(&key[1 + GROUP_LEN..1 + GROUP_LEN + ID_LEN]),
                        v.len()
                    ),
                )
            })?;
        let mut kept = BTreeMap::new();
        for (seq, record) in numbered(first, &records) {
            if record.loc.end() > watermark
                && log
                    .read(&record.loc, end)
                    .map_err(|e| open_error(path, e))?
                    .is_err()
            {
                continue;
            }
            kept.insert(author_key_at(&key, seq), *record);
        }
        if kept.len() < records.len() {
            dropped += records.len() - kept.len();
            rewrites.remove(k);
            let mut encoded = BTreeMap::new();
            for (key, r) in &kept {
                // Decoded from a record, so its metadata length fits again.
                let mut record = Vec::new();
                encode_record(&mut record, &r.id, &r.loc, r.meta).ok_or_else(|| {
                    corrupt_at(path, PART_BY_AUTHOR, "metadata over 4 GiB".into())
                })?;
                encoded.insert(*key, record);
            }
            for (key, run, _) in author_runs(&encoded, MAX_RUN) {
                rewrites.insert(&key[..], run);
            }
        }
        for (key, record) in &kept {
            index.push(&record.id, key);
        }
    }
    if dropped > 0 {
        messages.apply_batch(rewrites).map_err(open_err)?;
        tracing::warn!(
            path = %path.display(),
            dropped,
            "dropped messages whose envelopes did not reach the disk before a crash \
             (they were never acknowledged, to peers or through the API)"
        );
    }
    let (mut index, shared) = index.finish();
    if !shared.is_empty() {
        // Ids sharing their first 8 bytes are found by whole id: a second pass finds them.
        for item in messages.scan_prefix([P_AUTHOR]) {
            let (k, v) = item.map_err(open_err)?;
            let (Ok(key), Some(records)) = (AuthorKey::try_from(k.as_ref()), parse_run(&v)) else {
                continue;
            };
            for (seq, record) in numbered(seq_of(&key), &records) {
                if shared.contains(&id_index::id_prefix(&record.id)) {
                    index.insert_whole(&record.id, &author_key_at(&key, seq));
                }
            }
        }
    }
    if end > watermark || dropped > 0 {
        log.sync().map_err(|e| open_error(path, e))?;
        // Every record left points below `end` (new envelopes go from there) at synced bytes.
        raise_watermark(messages, end).map_err(open_err)?;
        db.flush().map_err(open_err)?;
    }
    Ok((
        LogState {
            end,
            watermark: end,
        },
        index,
    ))
}
