//! Recovery: opening the database after a clean shutdown, a crash or the loss of sled's files;
//! and the operator's tools, a full check and a rebuild of the index from the envelope log.
//!
//! When the store opens ([`recover`]):
//!
//! 1. Every author index run is read once, to build the id index. A message whose frame does
//!    not lie wholly below the log's watermark is checked against the log, and dropped if it is
//!    not intact: sled persists on its own schedule, so after a crash the tree may hold the
//!    runs of a batch whose frames never reached the disk. Those messages were never
//!    acknowledged: a write is reported durable only after the log was synced. Below the
//!    watermark nothing is checked: those frames were synced, so damage there is real, found
//!    when they are read (or by [`Store::check`]), and marked for fetching again.
//! 2. The log is read from the watermark to its end ([`replay`]): every whole frame the index
//!    lacks is indexed — messages, control events, audit records. The log is synced before
//!    any write it holds is acknowledged, but sled need not be: what sled had not persisted
//!    comes back from here. If sled's files were lost or set aside, the watermark is 0 and
//!    this rebuilds the whole index.
//! 3. Bytes after the last whole frame are a write torn by a crash: the log is cut there.
//!    Then it is synced, and the watermark raised to its end.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;

use liaison_protocol::{GroupId, MessageId};

use super::durability::{raise_watermark, Mark};
use super::envelope_log::{self, message_parts, Kind, Location, Scanned};
use super::error::{corrupt_at, open_error};
use super::health::OpenReport;
use super::id_index;
use super::keys::{
    author_key_at, seq_of, AuthorKey, BY_AUTHOR_KEY_LEN, GROUP_LEN, KEY_WATERMARK, PART_BY_AUTHOR,
    PART_WATERMARK, P_AUTHOR,
};
use super::runs::{author_runs, encode_record, numbered, parse_run, MAX_RUN};
use super::{Engine, Store, StoreError, StoreOptions};

/// Most messages indexed by one batch while replaying.
const REPLAY_BATCH: usize = 4096;

/// Opens the messages of `engine` (see the module docs) and leaves its log end, watermark,
/// counts and id index set.
pub(super) fn recover(engine: &Engine, report: &mut OpenReport) -> Result<(), StoreError> {
    let path = engine.path.as_path();
    let open_err = |e| open_error(path, e);
    let mark = stored_mark(engine, report)?;
    let watermark = mark.map_or(0, |m| m.end);
    let file_len = engine.log.len().map_err(open_err_io(path))?;
    if file_len < watermark {
        tracing::error!(
            path = %path.display(),
            file = envelope_log::FILE_NAME,
            file_len,
            watermark,
            "the envelope log is shorter than the part known to be on disk; \
             the messages stored there are fetched again from peers"
        );
    }
    let end = file_len.max(watermark);
    engine.log_end.store(end, Ordering::Release);

    // 1. The author index: drop what did not reach the disk, build the id index.
    scan_index(engine, watermark, report)?;

    // 2. What the log holds beyond the watermark.
    let tail = replay(engine, watermark.min(file_len), file_len, report)?;
    count(engine)?;

    // Counts short of what the mark recorded: sled lost entries below the watermark (damage
    // its own recovery passed over). The log holds them.
    let short = |engine: &Engine| {
        mark.is_some_and(|m| {
            (engine.message_count() as u64) < m.messages
                || engine.control_count.load(Ordering::Acquire) < m.controls
                || engine.last_audit.load(Ordering::Acquire) < m.last_audit
        })
    };
    if (report.index_damaged || short(engine)) && watermark > 0 {
        report.index_damaged = true;
        tracing::error!(
            path = %path.display(),
            "the store's index lost entries (sled's files are damaged); indexing the whole \
             envelope log again"
        );
        replay(engine, 0, watermark.min(file_len), report)?;
        count(engine)?;
        if short(engine) {
            tracing::error!(
                path = %path.display(),
                "entries the index held are in neither the index nor the envelope log; \
                 messages among them are fetched again from peers"
            );
        }
    }

    // 3. Cut a torn tail, sync, raise the watermark.
    let mut end = end;
    if file_len > watermark && tail < file_len {
        let cut = tail.max(watermark);
        report.torn_bytes = file_len - cut;
        engine.log.truncate(cut).map_err(open_err_io(path))?;
        end = cut.max(watermark);
    }
    engine.log_end.store(end, Ordering::Release);
    let mark_now = engine.mark_now();
    if mark != Some(mark_now) || report.dropped > 0 || report.replayed > 0 {
        engine.log.sync().map_err(open_err_io(path))?;
        // Every location left lies below `end` (new frames go from there) at synced bytes.
        raise_watermark(&engine.messages, &mark_now).map_err(open_err)?;
        engine.flush_sled().map_err(|e| open_error(path, e))?;
    }
    engine.watermark.store(end, Ordering::Release);
    Ok(())
}

fn open_err_io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |e| open_error(path, e)
}

/// The watermark entry (`None` if there is none; a malformed one is reported as damage to
/// the index and read as none).
fn stored_mark(engine: &Engine, report: &mut OpenReport) -> Result<Option<Mark>, StoreError> {
    let path = engine.path.as_path();
    let Some(v) = engine
        .messages
        .get(KEY_WATERMARK)
        .map_err(|e| open_error(path, e))?
    else {
        return Ok(None);
    };
    let mark = Mark::decode(&v);
    if mark.is_none() {
        tracing::error!(
            path = %path.display(),
            part = PART_WATERMARK,
            len = v.len(),
            "the log watermark is malformed"
        );
        report.index_damaged = true;
    }
    Ok(mark)
}

/// Sets the counts of control events and audit records from the trees.
fn count(engine: &Engine) -> Result<(), StoreError> {
    let path = engine.path.as_path();
    engine
        .control_count
        .store(engine.control.len() as u64, Ordering::Release);
    let last = match engine.audit.last().map_err(|e| open_error(path, e))? {
        Some((k, _)) => engine.audit_seq(&k)?,
        None => 0,
    };
    engine.last_audit.store(last, Ordering::Release);
    Ok(())
}

/// Reads every author index run: drops the messages past `watermark` whose frames are not
/// intact, and entries that are not runs at all (damage, reported); builds the id index.
fn scan_index(engine: &Engine, watermark: u64, report: &mut OpenReport) -> Result<(), StoreError> {
    let path = engine.path.as_path();
    let open_err = |e| open_error(path, e);
    let mut index = id_index::Builder::default();
    let mut rewrites = sled::Batch::default();
    let mut rewrite = false;
    for item in engine.messages.scan_prefix([P_AUTHOR]) {
        let (k, v) = item.map_err(open_err)?;
        let key: Option<AuthorKey> = k.as_ref().try_into().ok();
        let records = key.and_then(|key| {
            let first = seq_of(&key);
            parse_run(&v)
                .filter(|records| numbered(first, records).count() == records.len())
                .map(|records| (key, first, records))
        });
        let Some((key, first, records)) = records else {
            tracing::error!(
                path = %path.display(),
                part = PART_BY_AUTHOR,
                key = %hex::encode(&k),
                len = v.len(),
                "an entry of the author index is not a run of message records; dropped"
            );
            report.index_damaged = true;
            rewrites.remove(k);
            rewrite = true;
            continue;
        };
        let mut kept = BTreeMap::new();
        for (seq, record) in numbered(first, &records) {
            if record.loc.end() > watermark && engine.read_frame(&record.loc)?.is_err() {
                continue;
            }
            kept.insert(author_key_at(&key, seq), *record);
        }
        if kept.len() < records.len() {
            report.dropped += records.len() - kept.len();
            rewrites.remove(k);
            rewrite = true;
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
    if rewrite {
        engine.messages.apply_batch(rewrites).map_err(open_err)?;
    }
    let (index, shared) = index.finish();
    *engine
        .index
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = index;
    if !shared.is_empty() {
        index_shared_prefixes(engine, &shared)?;
    }
    Ok(())
}

/// Ids that share their first 8 bytes are found by whole id (see `id_index`): a second pass
/// over the author index adds them.
fn index_shared_prefixes(
    engine: &Engine,
    shared: &std::collections::BTreeSet<u64>,
) -> Result<(), StoreError> {
    let mut index = engine
        .index
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for item in engine.messages.scan_prefix([P_AUTHOR]) {
        let (k, v) = item.map_err(|e| open_error(&engine.path, e))?;
        let (Ok(key), Some(records)) = (AuthorKey::try_from(k.as_ref()), parse_run(&v)) else {
            continue;
        };
        for (seq, record) in numbered(seq_of(&key), &records) {
            if shared.contains(&id_index::id_prefix(&record.id)) {
                index.insert_whole(&record.id, &author_key_at(&key, seq));
            }
        }
    }
    Ok(())
}

/// A message frame found in the log, to index.
struct Found {
    id: MessageId,
    key: AuthorKey,
    loc: Location,
    meta: Vec<u8>,
}

/// Indexes every whole frame of the log between `from` and `to` that the index lacks;
/// returns where the last whole frame ends (`from` if there is none).
fn replay(engine: &Engine, from: u64, to: u64, report: &mut OpenReport) -> Result<u64, StoreError> {
    let path = engine.path.as_path();
    let mut tail = from;
    let mut batch: Vec<Found> = Vec::new();
    for item in engine.log.scan(from, to) {
        let (loc, frame) = match item.map_err(open_err_io(path))? {
            Scanned::Frame { loc, frame } => (loc, frame),
            Scanned::Damaged { offset, len } => {
                tracing::warn!(
                    path = %path.display(),
                    offset,
                    len,
                    "bytes of the envelope log past the watermark are not whole frames"
                );
                continue;
            }
        };
        tail = loc.end();
        match frame.kind {
            Kind::Message => {
                let Some(parts) = message_parts(&frame.body) else {
                    continue;
                };
                let mut key = [P_AUTHOR; BY_AUTHOR_KEY_LEN];
                key[1..].copy_from_slice(&parts.place);
                batch.push(Found {
                    id: MessageId::from(parts.id),
                    key,
                    loc,
                    meta: parts.meta.to_vec(),
                });
                if batch.len() >= REPLAY_BATCH {
                    report.replayed += index_found(engine, std::mem::take(&mut batch))?;
                }
            }
            Kind::Control => {
                let Some((group, seq, event)) = control_parts(&frame.body) else {
                    continue;
                };
                report.replayed += usize::from(engine.restore_control(&group, seq, event)?);
            }
            Kind::Audit => {
                let Some((seq, record)) = audit_parts(&frame.body) else {
                    continue;
                };
                report.replayed += usize::from(engine.restore_audit(seq, record)?);
            }
        }
    }
    report.replayed += index_found(engine, batch)?;
    Ok(tail)
}

/// The group, seq and event of a control frame's body.
fn control_parts(body: &[u8]) -> Option<(GroupId, u64, &[u8])> {
    let (group, rest) = body.split_first_chunk::<GROUP_LEN>()?;
    let (seq, event) = rest.split_first_chunk::<8>()?;
    Some((GroupId::from(*group), u64::from_be_bytes(*seq), event))
}

/// The seq and record of an audit frame's body.
fn audit_parts(body: &[u8]) -> Option<(u64, &[u8])> {
    let (seq, record) = body.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*seq), record))
}

/// Indexes the messages of `found` that the index lacks, where their frames lie; returns how
/// many. One whose place holds another message is left out (and logged): the writer checks
/// for that before it appends, so only damage can bring it about.
fn index_found(engine: &Engine, found: Vec<Found>) -> Result<usize, StoreError> {
    if found.is_empty() {
        return Ok(0);
    }
    let keys: Vec<AuthorKey> = found.iter().map(|f| f.key).collect();
    let taken = engine.held_among(&keys)?;
    let mut records: BTreeMap<AuthorKey, Vec<u8>> = BTreeMap::new();
    for f in found {
        if engine.locate(&f.id)?.is_some() {
            continue;
        }
        if let Some(other) = taken.get(&f.key) {
            tracing::warn!(
                path = %engine.path.display(),
                id = %f.id,
                held = %other,
                "a message in the envelope log has the place of another; left out"
            );
            continue;
        }
        let mut record = Vec::new();
        encode_record(&mut record, &f.id, &f.loc, &f.meta)
            .ok_or_else(|| engine.corrupt(PART_BY_AUTHOR, "metadata over 4 GiB".into()))?;
        records.entry(f.key).or_insert(record);
    }
    let mut writes = sled::Batch::default();
    for (key, run, _) in author_runs(&records, MAX_RUN) {
        writes.insert(&key[..], run);
    }
    engine
        .messages
        .apply_batch(writes)
        .map_err(|e| engine.engine("indexing messages from the envelope log", e))?;
    engine.index_records(&records);
    Ok(records.len())
}

/// What [`Store::check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CheckReport {
    /// What opening the store found and did.
    pub opened: OpenReport,
    /// Messages in the index.
    pub messages: usize,
    /// Messages whose envelopes are damaged or missing: marked, to be fetched again from
    /// peers when the node runs.
    pub damaged: usize,
    /// Whole frames in the envelope log: messages, control events, audit records.
    pub frames: usize,
    /// Stretches of the envelope log that are not frames, and their bytes.
    pub damaged_stretches: usize,
    /// Bytes in those stretches.
    pub damaged_bytes: u64,
    /// Those of the stretches that no message's record points into: bytes the store no
    /// longer reads (the old frame of an envelope stored again, a write torn by a crash), or
    /// frames of control events and audit records, which the index holds in full. Harmless
    /// while the index is intact; a rebuild from the log cannot bring back what they held.
    pub unused_stretches: usize,
    /// Messages, control events and audit records the log holds but the index lacks (a
    /// rebuild indexes them).
    pub unindexed: usize,
}

impl CheckReport {
    /// Whether nothing the store reads is damaged or missing: no damaged message, nothing the
    /// log holds and the index lacks. Damaged stretches that no record points into
    /// ([`CheckReport::unused_stretches`]) do not count.
    pub fn is_sound(&self) -> bool {
        self.damaged == 0 && self.unindexed == 0
    }
}

/// What [`Store::rebuild`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct RebuildReport {
    /// What opening the rebuilt store found and did (its `replayed` counts what the log gave
    /// back, its `set_aside` where the old index went).
    pub opened: OpenReport,
    /// Messages in the rebuilt index.
    pub messages: usize,
    /// Whether the old index opened, so that what only it held (peer pins, node values,
    /// accounts, receipts, marks of damaged messages) was copied over.
    pub salvaged: bool,
}

/// Trees that only sled holds, copied from the old index by a rebuild when it opens.
fn salvageable(engine: &Engine) -> [(&'static str, &sled::Tree); 6] {
    [
        ("peers", &engine.peers),
        ("meta", &engine.meta),
        ("users", &engine.users),
        ("receipt runs", &engine.receipt_runs),
        ("receipt blobs", &engine.receipt_blobs),
        ("damaged", &engine.damaged),
    ]
}

impl Store {
    /// Checks the store in `path` (which no process may have open) in full: opens it (which
    /// recovers as at every start), reads every frame of the envelope log, and checks every
    /// message of the index against its frame. Damaged messages are marked, to be fetched
    /// again from peers when the node next runs. Changes nothing else.
    pub fn check(path: &Path, options: &StoreOptions) -> Result<CheckReport, StoreError> {
        let notices = std::sync::Arc::new(tokio::sync::watch::Sender::new(0));
        let (engine, opened) = Engine::open(path, options, notices)?;
        let mut report = CheckReport {
            opened,
            messages: engine.message_count(),
            ..CheckReport::default()
        };
        // Every message of the index against its frame; where the frames lie.
        let mut used: Vec<(u64, u64)> = Vec::new();
        for item in engine.messages.scan_prefix([P_AUTHOR]) {
            let (k, v) = item.map_err(|e| engine.engine("reading the author index", e))?;
            let (first, records) = engine.run(&k, &v)?;
            let key: AuthorKey = engine.array(PART_BY_AUTHOR, &k)?;
            for (seq, record) in numbered(first, &records) {
                used.push((record.loc.offset, record.loc.end()));
                if engine.read_frame(&record.loc)?.is_err() {
                    engine.mark_damaged(&author_key_at(&key, seq), &record.id)?;
                }
            }
        }
        report.damaged = engine.damaged_count();
        used.sort_unstable();
        // Every frame of the log against the index.
        let end = engine.log_end.load(Ordering::Acquire);
        for item in engine.log.scan(0, end) {
            let frame = match item.map_err(|e| engine.engine("reading the envelope log", e))? {
                Scanned::Frame { frame, .. } => frame,
                Scanned::Damaged { offset, len } => {
                    report.damaged_stretches += 1;
                    report.damaged_bytes += len;
                    report.unused_stretches +=
                        usize::from(!overlaps(&used, offset, offset.saturating_add(len)));
                    continue;
                }
            };
            report.frames += 1;
            let indexed = match frame.kind {
                Kind::Message => match message_parts(&frame.body) {
                    Some(parts) => engine.locate(&MessageId::from(parts.id))?.is_some(),
                    None => true,
                },
                Kind::Control => match control_parts(&frame.body) {
                    Some((group, seq, _)) => engine
                        .control
                        .contains_key(super::keys::group_seq_key(&group, seq))
                        .map_err(|e| engine.engine("reading control events", e))?,
                    None => true,
                },
                Kind::Audit => match audit_parts(&frame.body) {
                    Some((seq, _)) => engine
                        .audit
                        .contains_key(seq.to_be_bytes())
                        .map_err(|e| engine.engine("reading the audit log", e))?,
                    None => true,
                },
            };
            report.unindexed += usize::from(!indexed);
        }
        engine
            .flush_sled()
            .map_err(|e| engine.engine("flushing the marks of damaged messages", e))?;
        Ok(report)
    }

    /// Rebuilds the index of the store in `path` (which no process may have open) from its
    /// envelope log: sets sled's files aside (into `set-aside-SECONDS/` beside them) and
    /// opens the store anew, which indexes every frame of the log. What only sled holds — peer
    /// pins, node values, accounts, receipts, marks of damaged messages — is copied from the old
    /// index if it still opens; otherwise it is lost (pin the peers and make the accounts
    /// again).
    pub fn rebuild(path: &Path, options: &StoreOptions) -> Result<RebuildReport, StoreError> {
        let notices = std::sync::Arc::new(tokio::sync::watch::Sender::new(0));
        let mut salvage: Vec<Vec<(sled::IVec, sled::IVec)>> = Vec::new();
        match Engine::open(path, options, notices.clone()) {
            // It did not open, so opening it rebuilt it already.
            Ok((engine, opened)) if opened.rebuilt => {
                return Ok(RebuildReport {
                    messages: engine.message_count(),
                    opened,
                    salvaged: false,
                })
            }
            Ok((old, _)) => {
                for (what, tree) in salvageable(&old) {
                    let entries: Result<Vec<_>, _> = tree.iter().collect();
                    salvage.push(entries.map_err(|e| engine_err(path, what, e))?);
                }
            }
            Err(e @ StoreError::InUse { .. }) => return Err(e),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "the old index does not open; what only it held is lost");
            }
        }
        let mut aside = OpenReport::default();
        super::sled_files::set_index_aside(path, &mut aside)?;
        let (engine, mut opened) = Engine::open(path, options, notices)?;
        opened.set_aside = aside.set_aside;
        opened.rebuilt = true;
        let salvaged = !salvage.is_empty();
        for ((what, tree), entries) in salvageable(&engine).into_iter().zip(salvage) {
            let mut batch = sled::Batch::default();
            for (k, v) in entries {
                batch.insert(k, v);
            }
            tree.apply_batch(batch)
                .map_err(|e| engine_err(path, what, e))?;
        }
        engine
            .flush_sled()
            .map_err(|e| engine.engine("flushing the rebuilt index", e))?;
        Ok(RebuildReport {
            messages: engine.message_count(),
            opened,
            salvaged,
        })
    }
}

/// Whether any of the `used` stretches (sorted, not overlapping each other) meets `from..to`.
fn overlaps(used: &[(u64, u64)], from: u64, to: u64) -> bool {
    // The first stretch ending after `from`; it meets `from..to` if it starts before `to`.
    let i = used.partition_point(|(_, end)| *end <= from);
    used.get(i).is_some_and(|(start, _)| *start < to)
}

fn engine_err(path: &Path, what: &'static str, e: sled::Error) -> StoreError {
    super::error::engine_at(path, what, e)
}
