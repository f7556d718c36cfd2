//! A consistent copy of the store while it is written to, and a store made from such a copy.
//!
//! [`Store::snapshot`] takes the writer lock (every message, control event and audit record is
//! written under it), notes the envelope log's end `W`, and writes every entry of the index's
//! trees to an export file; then it releases the lock and copies the log's first `W` bytes.
//! Writes pause only while the trees are exported; the log copy runs while they go on, as
//! appends land beyond `W`. Every entry of the export points below `W`, and every message
//! acknowledged before the snapshot began is in both, because it was written before its ack.
//! What sled alone holds and is written without the lock (receipts, peer pins, node values,
//! accounts) is exported as it stands at that moment. The reply index is left out: it says
//! which message answers which, which the envelopes keep encrypted, so a copy made without
//! the node's keys would show it in the clear. A node started on the copy, with its keys,
//! indexes the replies again before it answers (see `replies`).
//!
//! [`import`] makes a store directory from the two files: a new sled database holding the
//! exported entries, and the log. Opening it afterwards runs the recovery of every start:
//! frames past the exported watermark are checked and indexed.
//!
//! The export file: [`EXPORT_MAGIC`], then per entry `tree index (1 byte) ‖ key length (4,
//! big-endian) ‖ key ‖ value length (4, big-endian) ‖ value`, then one byte 0xff. Tree indexes
//! are positions in [`TREES`]; keys and values are bounded by [`MAX_KEY`] and [`MAX_VALUE`].

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use super::error::engine_at;
use super::keys::{
    TREE_AUDIT, TREE_CONTROL, TREE_DAMAGED, TREE_MESSAGES, TREE_META, TREE_PEERS,
    TREE_RECEIPT_BLOBS, TREE_RECEIPT_RUNS, TREE_USERS,
};
use super::{envelope_log, Store, StoreError};

/// The first bytes of an export file.
pub(super) const EXPORT_MAGIC: &[u8; 16] = b"LIAISON-INDEX-1\n";

/// The trees of the store, in the order of their index in an export file. Only appended to.
const TREES: [&str; 9] = [
    TREE_MESSAGES,
    TREE_CONTROL,
    TREE_RECEIPT_RUNS,
    TREE_RECEIPT_BLOBS,
    TREE_PEERS,
    TREE_META,
    TREE_AUDIT,
    TREE_USERS,
    TREE_DAMAGED,
];

/// The end of the entries in an export file.
const END: u8 = 0xff;
/// Longest key an export may hold.
pub(super) const MAX_KEY: usize = 4096;
/// Longest value an export may hold (a run of 128 messages with their metadata, a receipt,
/// an account: far below this).
pub(super) const MAX_VALUE: usize = 16 * 1024 * 1024;

/// What [`Store::snapshot`] copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// The log's length at the moment of the snapshot: the bytes copied.
    pub log_end: u64,
    /// The messages the store held at that moment.
    pub messages: u64,
    /// The index entries exported.
    pub entries: u64,
    /// How long writes waited for the export (the writer lock was held), in microseconds.
    pub paused_us: u64,
}

impl Store {
    /// Writes a consistent copy of the store: the index's entries to `export` (a new file)
    /// and the envelope log to `log` (a new file), both synced. See the module docs. Blocking:
    /// call it on the blocking pool.
    pub fn snapshot(&self, export: &Path, log: &Path) -> Result<Snapshot, StoreError> {
        let engine = self.engine()?;
        let path = engine.path.clone();
        let err = |op: &'static str| {
            let path = path.clone();
            move |e: io::Error| engine_at(&path, op, e)
        };
        let mut out = BufWriter::new(create_new(export).map_err(err("creating the export"))?);
        let (log_end, messages, entries, paused_us) = {
            let _writer = engine.lock_writer();
            let locked = std::time::Instant::now();
            let log_end = engine.log_end.load(Ordering::Acquire);
            let messages = engine.message_count() as u64;
            out.write_all(EXPORT_MAGIC)
                .map_err(err("writing the export"))?;
            let mut entries = 0u64;
            for (index, name) in TREES.iter().enumerate() {
                let tree = engine
                    .db
                    .open_tree(name)
                    .map_err(|e| engine.engine("opening a tree to export", e))?;
                for item in tree.iter() {
                    let (k, v) = item.map_err(|e| engine.engine("reading a tree to export", e))?;
                    if *name == TREE_MESSAGES && super::replies::is_reply_entry(&k) {
                        continue;
                    }
                    write_entry(&mut out, index as u8, &k, &v)
                        .map_err(err("writing the export"))?;
                    entries += 1;
                }
            }
            let paused_us = u64::try_from(locked.elapsed().as_micros()).unwrap_or(u64::MAX);
            (log_end, messages, entries, paused_us)
        };
        out.write_all(&[END]).map_err(err("writing the export"))?;
        let file = out
            .into_inner()
            .map_err(|e| engine.engine("writing the export", e.into_error()))?;
        file.sync_all().map_err(err("syncing the export"))?;

        let mut source = File::open(engine.path.join(envelope_log::FILE_NAME))
            .map_err(err("opening the envelope log"))?
            .take(log_end);
        let mut target = create_new(log).map_err(err("creating the log copy"))?;
        let copied = io::copy(&mut source, &mut target).map_err(err("copying the log"))?;
        if copied != log_end {
            return Err(engine.engine(
                "copying the log",
                io::Error::other(format!(
                    "the envelope log is {copied} bytes, shorter than its end {log_end}"
                )),
            ));
        }
        target.sync_all().map_err(err("syncing the log copy"))?;
        tracing::info!(
            log_bytes = log_end,
            messages,
            index_entries = entries,
            writes_paused_us = paused_us,
            "store snapshot taken"
        );
        Ok(Snapshot {
            log_end,
            messages,
            entries,
            paused_us,
        })
    }
}

/// Makes a store in the empty directory `dir` from an export file and a log copy made by
/// [`Store::snapshot`]. Checks the export's form as it reads it; the store is opened (and so
/// checked) by the caller afterwards. Returns the entries imported.
pub fn import(dir: &Path, export: &Path, log: &Path) -> Result<u64, StoreError> {
    let err = |op: &'static str| move |e: io::Error| engine_at(dir, op, e);
    let db = sled::Config::new()
        .path(dir)
        .open()
        .map_err(|e| super::error::open_error(dir, e))?;
    let trees = TREES
        .iter()
        .map(|name| db.open_tree(name))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| engine_at(dir, "creating the trees", e))?;
    let mut input = BufReader::new(File::open(export).map_err(err("opening the export"))?);
    let mut magic = [0u8; EXPORT_MAGIC.len()];
    input
        .read_exact(&mut magic)
        .map_err(err("reading the export"))?;
    if &magic != EXPORT_MAGIC {
        return Err(corrupt_export(dir, "it does not start as an index export"));
    }
    let mut entries = 0u64;
    let mut batches: Vec<sled::Batch> = vec![sled::Batch::default(); TREES.len()];
    let mut pending = 0usize;
    loop {
        let mut tag = [0u8; 1];
        input
            .read_exact(&mut tag)
            .map_err(err("reading the export"))?;
        if tag[0] == END {
            break;
        }
        let Some(batch) = batches.get_mut(usize::from(tag[0])) else {
            return Err(corrupt_export(dir, "an entry names an unknown tree"));
        };
        let key = read_part(&mut input, MAX_KEY).map_err(err("reading the export"))?;
        let value = read_part(&mut input, MAX_VALUE).map_err(err("reading the export"))?;
        pending += key.len() + value.len();
        batch.insert(key, value);
        entries += 1;
        if pending >= 8 * 1024 * 1024 {
            apply(dir, &trees, &mut batches)?;
            pending = 0;
        }
    }
    let mut rest = [0u8; 1];
    if input.read(&mut rest).map_err(err("reading the export"))? != 0 {
        return Err(corrupt_export(dir, "bytes follow its end"));
    }
    apply(dir, &trees, &mut batches)?;
    db.flush()
        .map_err(|e| engine_at(dir, "flushing the imported index", e))?;
    drop(trees);
    drop(db);
    let target = dir.join(envelope_log::FILE_NAME);
    let mut to = create_new(&target).map_err(err("creating the envelope log"))?;
    io::copy(
        &mut File::open(log).map_err(err("opening the log copy"))?,
        &mut to,
    )
    .map_err(err("copying the envelope log"))?;
    to.sync_all().map_err(err("syncing the envelope log"))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err("syncing the store directory"))?;
    Ok(entries)
}

fn apply(dir: &Path, trees: &[sled::Tree], batches: &mut [sled::Batch]) -> Result<(), StoreError> {
    for (tree, batch) in trees.iter().zip(batches.iter_mut()) {
        tree.apply_batch(std::mem::take(batch))
            .map_err(|e| engine_at(dir, "writing the imported index", e))?;
    }
    Ok(())
}

fn corrupt_export(dir: &Path, why: &str) -> StoreError {
    engine_at(
        dir,
        "reading the export",
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the index export is damaged: {why}"),
        ),
    )
}

fn write_entry(out: &mut impl Write, tree: u8, key: &[u8], value: &[u8]) -> io::Result<()> {
    out.write_all(&[tree])?;
    for part in [key, value] {
        let len = u32::try_from(part.len()).map_err(io::Error::other)?;
        out.write_all(&len.to_be_bytes())?;
        out.write_all(part)?;
    }
    Ok(())
}

fn read_part(input: &mut impl Read, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the index export is damaged: an entry of {len} bytes (at most {max})"),
        ));
    }
    let mut part = vec![0u8; len];
    input.read_exact(&mut part)?;
    Ok(part)
}

fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}
