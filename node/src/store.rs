//! Durable storage for the node: a narrow interface over an embedded
//! key-value engine (sled 0.34), so the engine can be swapped later.
//!
//! The store keeps opaque byte blobs under the protocol's ids: a message by its
//! [`MessageId`](liaison_protocol::MessageId) and its [`Place`](liaison_protocol::Place),
//! control events by group and seq, receipts by the places they name, peers by
//! [`NodeId`](liaison_protocol::NodeId). It knows nothing about cryptography or the wire
//! format: envelopes, metadata, control events, receipts and peer records are stored exactly
//! as the caller hands them over. Its public methods are what the node needs, its errors
//! are [`StoreError`] (the engine's own wrapped in [`EngineError`]), and nothing of the
//! engine shows through.
//!
//! | module         | what it owns                                                   |
//! |----------------|----------------------------------------------------------------|
//! | `messages`     | writing a batch of messages (checks, the log, the indexes)     |
//! | `reading`      | reading messages back by id, place, group; envelopes for peers |
//! | `listing`      | each group's messages by creation time, for pages              |
//! | `replies`      | each message's replies, for threads                            |
//! | `control`      | control events                                                 |
//! | `receipts`     | delivery receipts and their index by runs of seqs              |
//! | `peers`, `meta`, `audit` | peer records, node-level values, audit records, accounts |
//! | `durability`   | write tickets, the flusher, the durability wait, reopening     |
//! | `recovery`     | opening after a crash or damage, the id index, check, rebuild  |
//! | `backup`       | a consistent copy while writes go on, and a store made from one |
//! | `damage`, `health`, `sled_files` | damaged messages, the store's state, sled's own files |
//! | `envelope_log`, `runs`, `id_index`, `keys` | the log file, run values, the id index, key layouts |
//!
//! # Durability
//!
//! Every `async` write method returns only after the write is on disk. Writes are applied
//! first (a batch of messages lands together) and then wait for a flush that *started after*
//! the write completed. A dedicated flusher task runs one flush at a time; all writers that
//! completed while a flush was running are covered together by the next flush (group
//! commit), so durability costs one `fsync` per batch of concurrent writes, not one per
//! message.
//!
//! Envelopes do not live in sled but in the envelope log, one append-only file in the store's
//! directory (`envelopes-v4.log`, see `envelope_log`) of checksummed frames; the message's
//! record in sled says where its frame lies. Control events and audit records are framed in
//! the log too. The order of one message write, and of one flush, is:
//!
//! ```text
//! writer (under the writer lock)          flusher (one cycle)
//!   duplicate and conflict checks           note W = log end, with the index's counts
//!   append the frames at the log end        sync the log (fdatasync)
//!   publish the new log end                 insert `w` = W and the counts (the watermark)
//!   apply_batch: the author index runs      flush sled and fdatasync its file, if a write
//!                                           only sled holds is covered
//!   add the ids to the id index
//!   take a ticket, wait for a flush ──────▶ every ticket taken before the cycle began is durable
//! ```
//!
//! So a stored watermark never covers a log byte that was not synced. What the log holds is
//! durable once the log is synced; sled need not be: when the store opens, every frame past
//! the watermark that the index lacks is indexed again, and sled persists the watermark on its
//! own within half a second. sled is flushed only for what it alone holds (receipts, peers,
//! node values, accounts) and at [`Store::flush`]. sled may also persist runs before their
//! frames are synced; after a crash, the store checks every message whose frame does not lie
//! below the watermark and drops those that are not intact (see `recovery`): they were never
//! acknowledged. The counts in the watermark tell when sled's files lost entries below it
//! (damage sled's own recovery passes over), and the whole log is indexed again.
//!
//! A damaged envelope below the watermark is not dropped: reading it fails with
//! [`StoreError::Corrupt`], and it is marked to be fetched again from peers
//! ([`Store::damaged`], [`Store::damage_notices`]); storing it again repairs it.
//!
//! A failed flush — of sled or of the log — fails every writer waiting for it, and the store
//! refuses writes with [`StoreError::FlushFailed`]: after a failed `fsync` the kernel may have
//! dropped dirty pages, so retrying cannot prove anything is on disk. Once the disk has some
//! room again (4 MiB, or the free space the store keeps if that is less), the store closes its
//! database and opens it again, with the recovery of a start, and takes writes again;
//! [`Store::health`] says what state it is in. Below the free space the store keeps
//! ([`StoreOptions::min_free_bytes`]) new messages are refused with [`StoreError::DiskFull`]
//! before anything is written, so that sled, whose own writes fail for good once the disk is
//! full, keeps room for the small writes reads need (audit records). A write that fails (the
//! disk full after all, an I/O error) changes nothing the store reads, and shows in
//! [`Store::health`] until a write succeeds again. Every read is audited, so a disk with no
//! room at all refuses reads too, with an error that says so, until it has some again.
//!
//! Reads are synchronous and may observe writes whose durability wait has
//! not finished yet. Every envelope read checks the checksum.
//!
//! If a write future is dropped after the write was applied but before the
//! durability wait finished, the write stays applied (and is flushed by a
//! later flush) but was never acknowledged.
//!
//! # Layout
//!
//! Tree names carry a format version; numeric key parts are big-endian so
//! that ranges sort numerically.
//!
//! | tree           | key                                   | value                |
//! |----------------|---------------------------------------|----------------------|
//! | `messages-v4`  | `a` ‖ group(16) ‖ author(32) ‖ epoch(8) ‖ seq(8) | n records, seqs `seq..seq+n`: message_id(32) ‖ offset(8) ‖ len(4) ‖ checksum(16) ‖ meta_len(4) ‖ caller metadata |
//! |                | `L` ‖ group(16) ‖ created_at(8) ‖ message_id(32) of its first position | up to 32 positions created_at(8) ‖ message_id(32), ascending: the listing index (see `listing`) |
//! |                | `N`                                   | number of listed positions (u64) |
//! |                | `r` ‖ group(16) ‖ parent(32) ‖ reply(32) | empty: the reply index (see `replies`) |
//! |                | `R`                                   | empty: every held message's reply is indexed |
//! |                | `w`                                   | the watermark: log end ‖ messages ‖ control events ‖ last audit seq (u64 each) |
//! | `control-v1`   | group(16) ‖ seq(8)                    | control event bytes  |
//! | `receipts-v3`  | group(16) ‖ author(32) ‖ epoch(8) ‖ first seq(8) ‖ receiver(32) | last seq(8) ‖ receipt key(32) |
//! | `receipt-blobs-v2` | receipt key(32) = BLAKE3(receipt bytes) | receipt bytes  |
//! | `peers-v1`     | node_id(32)                           | peer record bytes    |
//! | `meta-v1`      | UTF-8 key                             | bytes                |
//! | `users-v1`     | officer name (UTF-8)                  | account record bytes |
//! | `audit-v1`     | seq(8)                                | audit record bytes   |
//! | `damaged-v1`   | `a` ‖ group(16) ‖ author(32) ‖ epoch(8) ‖ seq(8) | message_id(32): found damaged, to fetch again |
//!
//! The envelope log `envelopes-v4.log` holds checksummed frames back to back (see
//! `envelope_log`): a message's frame holds its id, place, metadata and envelope, so that
//! the author index can be rebuilt from the log alone; a record's location is its frame's
//! offset, length and checksum. Bytes no record points to (the torn tail of a crashed write,
//! frames of dropped or repaired messages) are never read.
//!
//! A message is stored as a record in the author index (`a`), and nowhere else
//! in sled: one entry per run of consecutive seqs of one author and epoch
//! written in one batch (at most 128), keyed by the run's first seq, its value
//! the records in seq order. Runs never overlap (a seq is written only while no
//! run holds it), so the run holding a seq is the entry with the highest key not
//! above it, if it reaches that far: one reverse range step, about what a point
//! lookup costs. A message arriving into a gap gets a run of its own; runs are
//! never merged or rewritten except when recovery drops a message from one.
//! So a batch of messages from one author costs one sled entry, whatever its
//! size. sled splits the rightmost leaf over and over when keys only grow, and
//! rewrites a leaf for every entry written into it: an entry per message (for
//! the message itself, as format 3 had, and in the author index, as format 2
//! had) was measured at about a fifth of end-to-end CPU per message.
//!
//! Finding a message by id goes through the id index, which lives in memory
//! only: the store builds it when it opens, from one scan of the author index
//! (the same scan that checks the messages past the watermark after a crash),
//! and adds every batch to it. It names the place where an id may be held; the
//! run there confirms it. It costs 16 bytes of memory per message (an array
//! sorted by id; see `id_index`) and, at open, one read of every run. The
//! message count is its size.
//!
//! Receipts are indexed the same way: per receipt, one `receipts-v3` entry per
//! run of consecutive seqs of one author that it names and the author index
//! holds (checked at write, by place and id), keyed by the run's first seq and
//! the receiver. A later receipt of the same receiver whose run starts at the
//! same seq replaces the earlier entry. A receipt names at most 1,024 messages,
//! so the runs holding a seq start at most 1,023 below it: a lookup is one
//! range scan. One entry per message and receiver (an earlier layout) cost about
//! as much as the author index did.
//!
//! Arrival order is not indexed: every reader lists a group's messages whole and
//! orders them itself, and the author index already lists them by group.
//!
//! Message writers take turns on a mutex, so the duplicate and conflict checks
//! read a state no other writer changes before the batch lands, and the log end
//! and the id index move only under it.
//!
//! This layout is store format 4, the first one released. The version in a tree's
//! name is that of its own layout; names of the layouts development builds used
//! before are never used again, and a store holding data in one of them is refused
//! with [`StoreError::Unsupported`].
//!
//! Keys in `meta-v1` starting with [`RESERVED_META_PREFIX`] are reserved for
//! the store itself.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use durability::{run_flusher, FlushState, Shared};
use envelope_log::EnvelopeLog;
use error::open_error;
use id_index::IdIndex;
use keys::{
    RETIRED_TREES, TREE_AUDIT, TREE_CONTROL, TREE_DAMAGED, TREE_MESSAGES, TREE_META, TREE_PEERS,
    TREE_RECEIPT_BLOBS, TREE_RECEIPT_RUNS, TREE_USERS,
};

mod audit;
mod backup;
mod control;
mod damage;
mod durability;
mod envelope_log;
mod error;
mod health;
mod id_index;
mod keys;
mod listing;
mod messages;
mod meta;
mod peers;
mod reading;
mod receipts;
mod recovery;
mod replies;
mod runs;
mod sled_files;

pub use backup::{import as import_snapshot, Snapshot};
pub use control::ControlInserted;
pub use durability::DurableTicket;
pub use error::{EngineError, StoreError};
pub use health::{Health, OpenReport};
pub use listing::{Described, Listed, Listing, RelistReport};
pub use messages::{Inserted, NewMessage};
pub use receipts::{NewReceipt, StoredReceipt};
pub use recovery::{CheckReport, RebuildReport};

/// How the store is tuned: the `[store]` section of the node's configuration. [`Store::open`]
/// uses the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Bytes of sled's page cache ([`DEFAULT_CACHE_BYTES`] by default). sled keeps the tree
    /// pages it read or wrote up to about this much; opening the store reads every author
    /// index run once (to build the id index), so without a bound the cache holds the whole
    /// index after every start.
    pub cache_bytes: u64,
    /// Free bytes the file system must keep ([`DEFAULT_MIN_FREE_BYTES`] by default): below it,
    /// new messages are refused with [`StoreError::DiskFull`], while everything else (audit
    /// records, receipts, accounts, peers) still fits in what is left, so reads go on.
    pub min_free_bytes: u64,
}

/// sled's page cache by default: 64 MiB (sled's own default is 1 GiB).
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// The free space the store keeps by default: 256 MiB.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 256 * 1024 * 1024;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: DEFAULT_CACHE_BYTES,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
        }
    }
}

/// The store format this version reads and writes (see the module docs); `liaison --version`
/// prints it.
pub const STORE_FORMAT: u32 = 4;

/// Prefix of `meta-v1` keys that belong to the store itself;
/// [`Store::put_meta`] refuses them.
pub const RESERVED_META_PREFIX: &str = "store/";

/// How long [`Store::open`] waits for a held store lock to be released before reporting
/// [`StoreError::InUse`], and how often it tries meanwhile. sled gives no event for the
/// release: in about 1 of 100 runs of a test that reopened a store right after closing it,
/// sled's IO threads still held it.
const LOCK_WAIT: Duration = Duration::from_secs(1);
const LOCK_RETRY: Duration = Duration::from_millis(10);

/// The open database: sled's trees and the envelope log, with what the store keeps in memory
/// about them. Replaced as a whole when the store reopens after a failed flush.
struct Engine {
    path: PathBuf,
    db: sled::Db,
    messages: sled::Tree,
    control: sled::Tree,
    receipt_runs: sled::Tree,
    receipt_blobs: sled::Tree,
    peers: sled::Tree,
    meta: sled::Tree,
    audit: sled::Tree,
    users: sled::Tree,
    /// Messages whose envelopes were found damaged, by place, to be fetched again.
    damaged: sled::Tree,
    /// Holds the envelopes, control events and audit records; the trees say where.
    log: EnvelopeLog,
    /// sled's own data file, opened again for reading only to `fdatasync` it after sled's
    /// flush: sled makes its writes durable with `sync_file_range`, which neither flushes the
    /// disk's write cache nor the file's size, so what sled alone holds (accounts, peer pins,
    /// receipts, node values) would not survive a power cut.
    sled_file: std::fs::File,
    /// Held by whoever appends to the log or writes message records, and by the flusher while
    /// it notes the log end with the counts that go with it (see [`durability::Mark`]).
    writer: std::sync::Mutex<()>,
    /// Control events stored.
    control_count: AtomicU64,
    /// The seq of the last audit record stored.
    last_audit: AtomicU64,
    /// Where the next frame is appended; changed only by a holder of the writer lock, after
    /// the bytes below it have been written (not necessarily synced). Every location in the
    /// trees lies below it.
    log_end: AtomicU64,
    /// The log watermark stored in `messages`: every log byte below it is synced.
    watermark: AtomicU64,
    /// Where each stored message is, by id (built when the store opens, see [`IdIndex`]);
    /// changed only by a holder of the writer lock, right after its batch landed.
    index: RwLock<IdIndex>,
    /// Told when a message is newly found damaged.
    notices: Arc<watch::Sender<u64>>,
}

struct Inner {
    path: PathBuf,
    options: StoreOptions,
    /// The open database; `None` only while it is being reopened.
    engine: RwLock<Option<Arc<Engine>>>,
    shared: Arc<Shared>,
    /// Wakes the flusher (capacity 1: a pending wake-up covers all writes).
    /// Dropping it (with the last `Store`) stops the flusher.
    wake: mpsc::Sender<()>,
    state: watch::Receiver<FlushState>,
    /// What the last open found and did.
    opened: RwLock<OpenReport>,
    /// Bumped whenever a message is found damaged (see [`Store::damage_notices`]).
    damage: Arc<watch::Sender<u64>>,
}

/// Handle to the node's durable storage. Cheap to clone; open one per
/// process (a second open of the same directory fails with
/// [`StoreError::InUse`]).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store in directory `path`, with the default
    /// [`StoreOptions`]; see [`Store::open_with`].
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, &StoreOptions::default())
    }

    /// Opens (creating if needed) the store in directory `path`.
    ///
    /// Must be called from within a tokio runtime: the store spawns its
    /// flusher task on it, and durability waits fail with
    /// [`StoreError::FlusherStopped`] once that runtime shuts down.
    ///
    /// A store held by another process is reported as [`StoreError::InUse`] after
    /// a second: a store just closed in this process can hold its lock a moment longer,
    /// while sled's IO threads finish their last buffer writes.
    ///
    /// What sled leaves behind when it fails (a half-written snapshot, a damaged `conf`) is
    /// removed or set aside, and if sled's files cannot be opened at all they are set aside and
    /// the index rebuilt from the envelope log (see `recovery`); [`Store::health`] says what
    /// was done, and it is logged.
    pub fn open_with(path: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StoreError::NoRuntime {
            path: path.to_path_buf(),
        })?;
        let started = Instant::now();
        let damage = Arc::new(watch::Sender::new(0));
        let (engine, report) = Engine::open(path, options, damage.clone())?;
        tracing::info!(
            path = %path.display(),
            messages = engine.message_count(),
            id_index_bytes = engine.id_index_bytes(),
            elapsed = ?started.elapsed(),
            "store opened"
        );
        let shared = Arc::new(Shared::default());
        let (wake_tx, wake_rx) = mpsc::channel(1);
        let (state_tx, state_rx) = watch::channel(FlushState::default());
        let inner = Arc::new(Inner {
            path: path.to_path_buf(),
            options: options.clone(),
            engine: RwLock::new(Some(Arc::new(engine))),
            shared: shared.clone(),
            wake: wake_tx,
            state: state_rx,
            opened: RwLock::new(report),
            damage,
        });
        runtime.spawn(run_flusher(
            Arc::downgrade(&inner),
            shared,
            wake_rx,
            state_tx,
        ));
        Ok(Store { inner })
    }

    /// Directory of the store.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Bytes of memory the id index takes (see the module docs).
    pub fn id_index_bytes(&self) -> usize {
        self.engine().map(|e| e.id_index_bytes()).unwrap_or(0)
    }

    /// The open database, unless it is being reopened.
    fn engine(&self) -> Result<Arc<Engine>, StoreError> {
        self.inner.engine()
    }

    /// Runs `work` on tokio's blocking pool: a sled batch takes milliseconds (and may wait on
    /// sled's log buffers), which would stall every task of a runtime worker.
    async fn blocking<T: Send + 'static>(
        &self,
        op: &'static str,
        work: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|e| {
                error::engine_at(&self.inner.path, op, std::io::Error::other(e.to_string()))
            })?
    }
}

impl Inner {
    fn engine(&self) -> Result<Arc<Engine>, StoreError> {
        self.engine
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Reopening {
                path: self.path.clone(),
            })
    }
}

impl Engine {
    /// Flushes sled and makes what it wrote durable ([`Engine::sled_file`]); returns the bytes
    /// sled flushed.
    fn flush_sled(&self) -> Result<usize, EngineError> {
        let bytes = self.db.flush()?;
        self.sled_file.sync_data()?;
        Ok(bytes)
    }

    /// Takes the writer lock (see [`Engine::writer`]).
    fn lock_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Opens the database in `path`: sled (after clearing what it may have left half-made,
    /// and rebuilding from the log if its files cannot be opened), the envelope log, then
    /// recovery (see `recovery::load` and `recovery::replay`).
    fn open(
        path: &Path,
        options: &StoreOptions,
        notices: Arc<watch::Sender<u64>>,
    ) -> Result<(Engine, OpenReport), StoreError> {
        let mut report = OpenReport::default();
        if sled_files::holds_data(&path.join(envelope_log::RETIRED_FILE_NAME)) {
            return Err(StoreError::Unsupported {
                path: path.to_path_buf(),
                tree: envelope_log::RETIRED_FILE_NAME,
            });
        }
        sled_files::clear_leftovers(path, &mut report)?;
        let db = match open_sled(path, options) {
            Ok(db) => db,
            Err(first) => {
                if !first.is_corruption() {
                    return Err(first);
                }
                tracing::error!(
                    path = %path.display(),
                    error = %first,
                    "the store's index does not open; setting its newest snapshot aside"
                );
                let retried = if sled_files::set_snapshot_aside(path, &mut report)? {
                    open_sled(path, options)
                } else {
                    Err(first)
                };
                match retried {
                    Ok(db) => db,
                    Err(e) if !e.is_corruption() => return Err(e),
                    Err(e) => {
                        tracing::error!(
                            path = %path.display(),
                            error = %e,
                            "the store's index does not open; setting it aside and rebuilding \
                             it from the envelope log"
                        );
                        sled_files::set_index_aside(path, &mut report)?;
                        open_sled(path, options)?
                    }
                }
            }
        };
        drop_retired_trees(path, &db)?;
        let open_tree = |name: &str| db.open_tree(name).map_err(|e| open_error(path, e));
        let engine = Engine {
            path: path.to_path_buf(),
            control: open_tree(TREE_CONTROL)?,
            receipt_runs: open_tree(TREE_RECEIPT_RUNS)?,
            receipt_blobs: open_tree(TREE_RECEIPT_BLOBS)?,
            peers: open_tree(TREE_PEERS)?,
            meta: open_tree(TREE_META)?,
            audit: open_tree(TREE_AUDIT)?,
            users: open_tree(TREE_USERS)?,
            damaged: open_tree(TREE_DAMAGED)?,
            messages: open_tree(TREE_MESSAGES)?,
            // After sled, whose lock keeps a second process out of the directory.
            log: EnvelopeLog::open(path).map_err(|e| open_error(path, e))?,
            sled_file: std::fs::File::open(path.join(sled_files::DATA_FILE))
                .map_err(|e| open_error(path, e))?,
            writer: std::sync::Mutex::new(()),
            control_count: AtomicU64::new(0),
            last_audit: AtomicU64::new(0),
            db,
            log_end: AtomicU64::new(0),
            watermark: AtomicU64::new(0),
            index: RwLock::new(IdIndex::default()),
            notices,
        };
        recovery::recover(&engine, &mut report)?;
        report.log(path);
        Ok((engine, report))
    }
}

/// Opens sled in `path`, waiting [`LOCK_WAIT`] for a lock another handle still holds.
fn open_sled(path: &Path, options: &StoreOptions) -> Result<sled::Db, StoreError> {
    let started = Instant::now();
    loop {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_bytes);
        match config.open() {
            Ok(db) => return Ok(db),
            Err(e) if is_lock_error(&e) && started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(LOCK_RETRY);
            }
            Err(e) if is_lock_error(&e) => {
                return Err(StoreError::InUse {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => return Err(open_error(path, e)),
        }
    }
}

/// Drops the trees of retired layouts that are empty (opening a tree creates it, so an
/// earlier build may have left them so); refuses a store that holds data in one.
fn drop_retired_trees(path: &Path, db: &sled::Db) -> Result<(), StoreError> {
    let names = db.tree_names();
    for tree in RETIRED_TREES {
        if !names.iter().any(|n| n.as_ref() == tree.as_bytes()) {
            continue;
        }
        let old = db.open_tree(tree).map_err(|e| open_error(path, e))?;
        if !old.is_empty() {
            return Err(StoreError::Unsupported {
                path: path.to_path_buf(),
                tree,
            });
        }
        drop(old);
        db.drop_tree(tree).map_err(|e| open_error(path, e))?;
    }
    Ok(())
}

/// sled reports a held lock as an `Io` error of kind `Other` with this text.
fn is_lock_error(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(io) => io.to_string().contains("could not acquire lock"),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
