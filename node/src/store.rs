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
//! | `messages`     | writing a batch of messages, reading them by id, place, group  |
//! | `control`      | control events                                                 |
//! | `receipts`     | delivery receipts and their index by runs of seqs              |
//! | `peers`, `meta`, `audit` | peer records, node-level values, audit records, accounts |
//! | `durability`   | write tickets, the flusher, the durability wait               |
//! | `recovery`     | opening the messages after a crash, building the id index     |
//! | `envelope_log`, `runs`, `id_index`, `keys` | the log file, run values, the id index, key layouts |
//!
//! # Durability
//!
//! Every `async` write method returns only after the write has been flushed
//! to disk (`fsync`). Writes are applied atomically first (one sled batch on
//! one tree, so the messages of a batch land together) and then
//! wait for a flush that *started after* the write completed. A dedicated
//! flusher task runs one flush at a time; all writers that completed while a
//! flush was running are covered together by the next flush (group commit),
//! so durability costs one `fsync` per batch of concurrent writes, not one per
//! message.
//!
//! Envelopes do not live in sled but in the envelope log, one append-only file
//! in the store's directory (`envelopes-v3.log`); the message's record in sled
//! says where (offset, length and a BLAKE3 checksum). The order of one
//! message write, and of one flush, is:
//!
//! ```text
//! writer (under the writer lock)          flusher (one cycle)
//!   duplicate and conflict checks           W = log end
//!   append the envelopes at the log end     sync the log (fdatasync)
//!   publish the new log end                 insert `w` = W (the watermark)
//!   apply_batch: the author index runs      flush sled
//!   add the ids to the id index
//!   take a ticket, wait for a flush ──────▶ every ticket taken before the cycle began is durable
//! ```
//!
//! So a stored watermark never covers a log byte that was not synced. sled may
//! persist runs on its own before their envelopes are synced; after a crash,
//! [`Store::open`] checks every message whose envelope does not lie below the
//! watermark against the log and drops those that are not intact (see `recovery`).
//! They were never acknowledged. A damaged envelope below the watermark is not
//! dropped: reading it fails with [`StoreError::Corrupt`].
//!
//! A failed flush — of sled or of the log — is fatal for the store: every
//! writer waiting for it, and every later write, gets
//! [`StoreError::FlushFailed`]. (After a failed `fsync` the kernel may have
//! dropped dirty pages, so retrying cannot prove anything is on disk.) Restart
//! the process to recover.
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
//! |                | `w`                                   | u64: log watermark   |
//! | `control-v1`   | group(16) ‖ seq(8)                    | control event bytes  |
//! | `receipts-v3`  | group(16) ‖ author(32) ‖ epoch(8) ‖ first seq(8) ‖ receiver(32) | last seq(8) ‖ receipt key(32) |
//! | `receipt-blobs-v2` | receipt key(32) = BLAKE3(receipt bytes) | receipt bytes  |
//! | `peers-v1`     | node_id(32)                           | peer record bytes    |
//! | `meta-v1`      | UTF-8 key                             | bytes                |
//! | `users-v1`     | officer name (UTF-8)                  | account record bytes |
//! | `audit-v1`     | seq(8)                                | audit record bytes   |
//!
//! The envelope log `envelopes-v3.log` is the envelopes back to back, without
//! framing; the checksum is the first 16 bytes of the envelope's BLAKE3 hash.
//! Bytes no record points to (the torn tail of a crashed write, envelopes of
//! dropped messages) are never read.
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
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use durability::{run_flusher, FlushState, Shared};
use envelope_log::EnvelopeLog;
use error::open_error;
use id_index::IdIndex;
use keys::{
    RETIRED_TREES, TREE_AUDIT, TREE_CONTROL, TREE_MESSAGES, TREE_META, TREE_PEERS,
    TREE_RECEIPT_BLOBS, TREE_RECEIPT_RUNS, TREE_USERS,
};

mod audit;
mod control;
mod durability;
mod envelope_log;
mod error;
mod id_index;
mod keys;
mod messages;
mod meta;
mod peers;
mod receipts;
mod recovery;
mod runs;

pub use control::ControlInserted;
pub use durability::DurableTicket;
pub use error::{EngineError, StoreError};
pub use messages::{Inserted, NewMessage};
pub use receipts::{NewReceipt, StoredReceipt};

/// How the store is tuned: the `[store]` section of the node's configuration. [`Store::open`]
/// uses the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Bytes of sled's page cache ([`DEFAULT_CACHE_BYTES`] by default). sled keeps the tree
    /// pages it read or wrote up to about this much; opening the store reads every author
    /// index run once (to build the id index), so without a bound the cache holds the whole
    /// index after every start.
    pub cache_bytes: u64,
}

/// sled's page cache by default: 64 MiB (sled's own default is 1 GiB).
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: DEFAULT_CACHE_BYTES,
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
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

struct Inner {
    path: PathBuf,
    db: sled::Db,
    messages: sled::Tree,
    /// Holds the envelopes; the entries in `messages` say where.
    log: Arc<EnvelopeLog>,
    /// Held by whoever writes to `messages` or appends to `log`.
    writer: std::sync::Mutex<()>,
    /// Where the next envelope is appended; changed only by a holder of `writer`, after the
    /// bytes below it have been written (not necessarily synced). Every message entry in
    /// `messages` lies below it.
    log_end: AtomicU64,
    control: sled::Tree,
    receipt_runs: sled::Tree,
    receipt_blobs: sled::Tree,
    peers: sled::Tree,
    meta: sled::Tree,
    audit: sled::Tree,
    users: sled::Tree,
    shared: Arc<Shared>,
    /// Wakes the flusher (capacity 1: a pending wake-up covers all writes).
    /// Dropping it (with the last `Store`) stops the flusher.
    wake: mpsc::Sender<()>,
    state: watch::Receiver<FlushState>,
    /// Where each stored message is, by id (built when the store opens, see [`IdIndex`]);
    /// changed only by a holder of `writer`, right after its batch landed.
    index: std::sync::RwLock<IdIndex>,
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
    pub fn open_with(path: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        let path_buf = path.to_path_buf();
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StoreError::NoRuntime {
            path: path_buf.clone(),
        })?;
        let started = Instant::now();
        let db = loop {
            let config = sled::Config::new()
                .path(path)
                .cache_capacity(options.cache_bytes);
            match config.open() {
                Ok(db) => break db,
                Err(e) if is_lock_error(&e) && started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(LOCK_RETRY);
                }
                Err(e) if is_lock_error(&e) => {
                    return Err(StoreError::InUse {
                        path: path_buf.clone(),
                    })
                }
                Err(e) => return Err(open_error(path, e)),
            }
        };
        drop_retired_trees(path, &db)?;
        let open_tree = |name: &str| db.open_tree(name).map_err(|e| open_error(path, e));
        let control = open_tree(TREE_CONTROL)?;
        let receipt_runs = open_tree(TREE_RECEIPT_RUNS)?;
        let receipt_blobs = open_tree(TREE_RECEIPT_BLOBS)?;
        let peers = open_tree(TREE_PEERS)?;
        let meta = open_tree(TREE_META)?;
        let audit = open_tree(TREE_AUDIT)?;
        let users = open_tree(TREE_USERS)?;
        let messages = open_tree(TREE_MESSAGES)?;
        // After sled, whose lock keeps a second process out of the directory.
        let log = EnvelopeLog::open(path).map_err(|e| open_error(path, e))?;
        let (log_state, index) = recovery::load(path, &db, &messages, &log)?;
        tracing::info!(
            path = %path.display(),
            messages = index.len(),
            id_index_bytes = index.heap_bytes(),
            elapsed = ?started.elapsed(),
            "store opened"
        );

        let shared = Arc::new(Shared::default());
        let (wake_tx, wake_rx) = mpsc::channel(1);
        let (state_tx, state_rx) = watch::channel(FlushState::default());
        let inner = Arc::new(Inner {
            path: path_buf,
            db,
            messages,
            log: Arc::new(log),
            writer: std::sync::Mutex::new(()),
            log_end: AtomicU64::new(log_state.end),
            control,
            receipt_runs,
            receipt_blobs,
            peers,
            meta,
            audit,
            users,
            shared: shared.clone(),
            wake: wake_tx,
            state: state_rx,
            index: std::sync::RwLock::new(index),
        });
        runtime.spawn(run_flusher(
            Arc::downgrade(&inner),
            shared,
            wake_rx,
            state_tx,
            log_state.watermark,
        ));
        Ok(Store { inner })
    }

    /// Directory of the store.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Bytes of memory the id index takes (see the module docs).
    pub fn id_index_bytes(&self) -> usize {
        self.inner
            .index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .heap_bytes()
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
            .map_err(|e| self.engine(op, std::io::Error::other(e.to_string())))?
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
