//! Durable storage for the node: a narrow interface over an embedded
//! key-value engine (sled 0.34), so the engine can be swapped later.
//!
//! The store keeps opaque byte blobs indexed by fixed-size ids. It knows
//! nothing about cryptography or the wire format: envelopes, metadata,
//! control events, receipts and peer records are stored exactly as the
//! caller hands them over.
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
//! watermark against the log and drops those that are not intact (see `load`).
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
//! | `receipts-v2`  | message_id(32) ‖ receiver(32)         | receipt key(32): read only |
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
//! run there confirms it. It costs 30 to 60 bytes of memory per message (a hash
//! table of 25-byte slots, between half and seven eighths full) and, at
//! open, one read of every run. The message count is its size.
//!
//! Receipts are indexed the same way: per receipt, one `receipts-v3` entry per
//! run of consecutive seqs of one author that it names and the author index
//! holds (checked at write, by place and id), keyed by the run's first seq and
//! the receiver. A later receipt of the same receiver whose run starts at the
//! same seq replaces the earlier entry. A receipt names at most 1,024 messages,
//! so the runs holding a seq start at most 1,023 below it: a lookup is one
//! range scan. One entry per message and receiver (`receipts-v2`, still read
//! for receipts stored before) cost about as much as the author index did.
//!
//! Arrival order is not indexed (version 1 kept `by-group-v1` for it): every
//! reader lists a group's messages whole and orders them itself, and the
//! author index already lists them by group.
//!
//! Message writers take turns on a mutex, so the duplicate and conflict checks
//! read a state no other writer changes before the batch lands, and the log end
//! and the id index move only under it.
//!
//! A store written by an earlier version is converted when it is opened (see
//! `convert`): version 3 (`messages-v3`, one `m` entry per message) into
//! version 4, version 2 (`messages-v2`, the envelope inside each message value)
//! through version 3, version 1 (`messages-v1` and four more trees) through
//! version 2. The envelope log is shared by versions 3 and 4.
//!
//! Keys in `meta-v1` starting with [`RESERVED_META_PREFIX`] are reserved for
//! the store itself.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use convert::{migrate_v1, migrate_v2, migrate_v3, recover_v3, V2_MESSAGES, V3_MESSAGES};
use envelope_log::{EnvelopeLog, Location, LOCATION_LEN};

mod convert;
mod envelope_log;

/// Identifier of a group (16 bytes).
pub type GroupId = [u8; 16];
/// Identifier of a node (32 bytes).
pub type NodeId = [u8; 32];
/// Identifier of a message (32 bytes).
pub type MessageId = [u8; 32];
/// A stored receipt: the node that signed it and its exact bytes.
pub type StoredReceipt = (NodeId, Vec<u8>);

/// Prefix of `meta-v1` keys that belong to the store itself;
/// [`Store::put_meta`] refuses them.
pub const RESERVED_META_PREFIX: &str = "store/";

/// How long [`Store::open`] waits for a held store lock to be released before reporting
/// [`StoreError::InUse`], and how often it tries meanwhile. sled gives no event for the
/// release: in about 1 of 100 runs of a test that reopened a store right after closing it,
/// sled's IO threads still held it.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

/// Messages: their author index runs and the log watermark (see the module docs).
const TREE_MESSAGES: &str = "messages-v4";
/// Key spaces of `messages-v4`, as named in errors.
const PART_BY_AUTHOR: &str = "messages-v4 (author index)";
const PART_WATERMARK: &str = "messages-v4 (watermark)";
/// Key prefix of the author index.
const P_AUTHOR: u8 = b'a';
/// The envelope log's watermark (u64 big-endian): every byte of the log below it is durable.
const KEY_WATERMARK: &[u8] = b"w";
/// In `meta-v1` while an earlier format is being converted into format 4 (see `Store::open`).
const KEY_CONVERTING: &str = "store/converting-to-v4";
const TREE_CONTROL: &str = "control-v1";
/// Per message and receiver, the key of the receipt blob that names the message (one receipt
/// covers many messages, so it is stored once).
const TREE_RECEIPTS: &str = "receipts-v2";
/// Per run of consecutive seqs of one author that one receipt names, the run's end and the
/// receipt's key (see the module docs); replaces `receipts-v2` for new receipts.
const TREE_RECEIPT_RUNS: &str = "receipts-v3";
const TREE_RECEIPT_BLOBS: &str = "receipt-blobs-v2";
const TREE_PEERS: &str = "peers-v1";
const TREE_META: &str = "meta-v1";
/// The audit log: seq -> record.
const TREE_AUDIT: &str = "audit-v1";
/// Officer accounts: name -> record.
const TREE_USERS: &str = "users-v1";

const GROUP_LEN: usize = 16;
const ID_LEN: usize = 32;
const SEQ_LEN: usize = 8;
const EPOCH_LEN: usize = 8;
/// group ‖ author ‖ epoch: the prefix of one author's sequence space.
const SEQ_SPACE_LEN: usize = GROUP_LEN + ID_LEN + EPOCH_LEN;
/// Author index key: prefix ‖ group ‖ author ‖ epoch ‖ seq.
const BY_AUTHOR_KEY_LEN: usize = 1 + SEQ_SPACE_LEN + SEQ_LEN;
/// A record in an author index run: id ‖ envelope location ‖ meta_len(4); then the metadata.
const RECORD_HEAD_LEN: usize = ID_LEN + LOCATION_LEN + 4;
const CONTROL_KEY_LEN: usize = GROUP_LEN + SEQ_LEN;
const RECEIPT_KEY_LEN: usize = ID_LEN + ID_LEN;
/// Receipt run key: group ‖ author ‖ epoch ‖ first seq ‖ receiver.
const RECEIPT_RUN_KEY_LEN: usize = SEQ_SPACE_LEN + SEQ_LEN + ID_LEN;
/// Most seqs one receipt run covers: a receipt names at most this many messages.
const MAX_RECEIPT_RUN: usize = liaison_protocol::receipt::MAX_RECEIPT_MESSAGES;

/// Errors returned by the [`Store`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process (or another `Store` in this process) holds the
    /// store's lock.
    #[error(
        "store at {} is in use by another process (or already open in this one); \
         stop the other instance or use a different data directory",
        path.display()
    )]
    InUse {
        /// Directory of the store.
        path: PathBuf,
    },
    /// The store could not be opened.
    #[error("cannot open store at {}: {source}", path.display())]
    Open {
        /// Directory of the store.
        path: PathBuf,
        /// Underlying engine error.
        #[source]
        source: sled::Error,
    },
    /// [`Store::open`] was called outside a tokio runtime; the store needs one
    /// for its flusher task.
    #[error("cannot open store at {}: Store::open must be called from within a tokio runtime", path.display())]
    NoRuntime {
        /// Directory of the store.
        path: PathBuf,
    },
    /// The storage engine failed while reading or writing.
    #[error("storage error while {op} (store at {}): {source}", path.display())]
    Engine {
        /// What the store was doing.
        op: &'static str,
        /// Directory of the store.
        path: PathBuf,
        /// Underlying engine error.
        #[source]
        source: sled::Error,
    },
    /// Data read from disk does not have the expected shape.
    #[error(
        "corrupt entry in `{tree}` of store at {}: {detail}; \
         restore the store from a backup or re-sync it from peers",
        path.display()
    )]
    Corrupt {
        /// Name of the tree (or part of a tree, or the envelope log file) holding the bad entry.
        tree: &'static str,
        /// Directory of the store.
        path: PathBuf,
        /// What is wrong with the entry.
        detail: String,
    },
    /// Flushing to disk failed. Writes since the last successful flush are
    /// not known to be durable and the store refuses further writes.
    #[error(
        "flushing store at {} to disk failed: {source}; recent writes may be lost and \
         the store refuses further writes; check the disk and restart the node",
        path.display()
    )]
    FlushFailed {
        /// Directory of the store.
        path: PathBuf,
        /// Underlying engine error.
        #[source]
        source: sled::Error,
    },
    /// The background flusher is gone (the tokio runtime that opened the
    /// store has shut down), so durability cannot be confirmed.
    #[error(
        "the flusher of the store at {} has stopped (its tokio runtime shut down); \
         durability cannot be confirmed",
        path.display()
    )]
    FlusherStopped {
        /// Directory of the store.
        path: PathBuf,
    },
    /// The caller used a `meta-v1` key reserved for the store itself.
    #[error("meta key {key:?} is reserved for the store (prefix {RESERVED_META_PREFIX:?})")]
    ReservedKey {
        /// The refused key.
        key: String,
    },
}

/// A message to insert, borrowing its byte blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewMessage<'a> {
    /// Message id.
    pub id: MessageId,
    /// Group the message belongs to.
    pub group: GroupId,
    /// Author node.
    pub author: NodeId,
    /// Epoch of the group the message was sealed in.
    pub epoch: u64,
    /// Author's sequence number within the group and epoch (from 1).
    pub seq: u64,
    /// The envelope, exactly as received.
    pub envelope: &'a [u8],
    /// Small opaque metadata blob (e.g. group, author, seq, received_at).
    pub meta: &'a [u8],
}

/// A receipt to store with [`Store::insert_receipts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReceipt {
    /// The node that signed it.
    pub receiver: NodeId,
    /// The group of the messages it names.
    pub group: GroupId,
    /// The messages it names that this node holds, and where each sits (index entries are
    /// written for those the author index confirms).
    pub messages: Vec<Placed>,
    /// The exact receipt bytes.
    pub bytes: Vec<u8>,
}

/// A message and its place in its author's sequence space (within a group known from
/// context).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// Message id.
    pub id: MessageId,
    /// Its author.
    pub author: NodeId,
    /// The author's epoch.
    pub epoch: u64,
    /// Its sequence number.
    pub seq: u64,
}

/// A message to insert, owning its byte blobs (for batches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessageOwned {
    /// Message id.
    pub id: MessageId,
    /// Group the message belongs to.
    pub group: GroupId,
    /// Author node.
    pub author: NodeId,
    /// Epoch of the group the message was sealed in.
    pub epoch: u64,
    /// Author's sequence number within the group and epoch (from 1).
    pub seq: u64,
    /// The envelope, exactly as received.
    pub envelope: Vec<u8>,
    /// Small opaque metadata blob.
    pub meta: Vec<u8>,
}

impl NewMessageOwned {
    /// Borrows this message as a [`NewMessage`].
    pub fn borrowed(&self) -> NewMessage<'_> {
        NewMessage {
            id: self.id,
            group: self.group,
            author: self.author,
            epoch: self.epoch,
            seq: self.seq,
            envelope: &self.envelope,
            meta: &self.meta,
        }
    }
}

impl From<NewMessage<'_>> for NewMessageOwned {
    fn from(m: NewMessage<'_>) -> Self {
        NewMessageOwned {
            id: m.id,
            group: m.group,
            author: m.author,
            epoch: m.epoch,
            seq: m.seq,
            envelope: m.envelope.to_vec(),
            meta: m.meta.to_vec(),
        }
    }
}

/// A write that has been applied but may not be on disk yet; see [`Store::wait_for`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct DurableTicket(u64);

/// Outcome of inserting one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The message was new and has been stored (durably, once the insert
    /// call returned).
    New,
    /// A message with this id is already stored; nothing was written.
    Duplicate,
    /// `(group, author, epoch, seq)` is already taken by a different message id;
    /// nothing was written. The author equivocated (or the sender lies);
    /// the existing id is available via [`Store::message_by_seq`].
    Conflict,
}

/// Outcome of inserting a control event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlInserted {
    /// The event was new and has been stored.
    New,
    /// The identical event was already stored at this `(group, seq)`.
    Duplicate,
    /// A different event is already stored at this `(group, seq)`;
    /// nothing was written.
    Conflict,
}

/// Flush progress published by the flusher task.
#[derive(Debug, Clone, Default)]
struct FlushState {
    /// Every write ticket `<= flushed` is durable.
    flushed: u64,
    /// Number of successful flushes run by the flusher.
    flushes: u64,
    /// Set once a flush failed; the store is then unusable for writes.
    failed: Option<sled::Error>,
}

/// State shared with the flusher task that does not keep the database open.
#[derive(Debug, Default)]
struct Shared {
    /// Write tickets handed out; bumped after each applied write.
    written: AtomicU64,
    /// Test hook: make the next flush fail.
    #[cfg(test)]
    fail_next_flush: std::sync::atomic::AtomicBool,
    /// Test hook: simulate a slow disk by sleeping this long in each flush.
    #[cfg(test)]
    flush_delay_ms: AtomicU64,
}

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
    receipts: sled::Tree,
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
    /// Opens (creating if needed) the store in directory `path`.
    ///
    /// Must be called from within a tokio runtime: the store spawns its
    /// flusher task on it, and durability waits fail with
    /// [`StoreError::FlusherStopped`] once that runtime shuts down.
    ///
    /// A store held by another process is reported as [`StoreError::InUse`] after
    /// a second: a store just closed in this process can hold its lock a moment longer,
    /// while sled's IO threads finish their last buffer writes.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let path_buf = path.to_path_buf();
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StoreError::NoRuntime {
            path: path_buf.clone(),
        })?;
        let started = Instant::now();
        let db = loop {
            match sled::Config::new().path(path).open() {
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
        let open_tree = |name: &str| db.open_tree(name).map_err(|e| open_error(path, e));
        let control = open_tree(TREE_CONTROL)?;
        let receipts = open_tree(TREE_RECEIPTS)?;
        let receipt_runs = open_tree(TREE_RECEIPT_RUNS)?;
        let receipt_blobs = open_tree(TREE_RECEIPT_BLOBS)?;
        let peers = open_tree(TREE_PEERS)?;
        let meta = open_tree(TREE_META)?;
        let audit = open_tree(TREE_AUDIT)?;
        let users = open_tree(TREE_USERS)?;
        migrate_v1(&db, &meta).map_err(|e| open_error(path, e))?;
        let messages = open_tree(TREE_MESSAGES)?;
        // After sled, whose lock keeps a second process out of the directory.
        let log = EnvelopeLog::open(path).map_err(|e| open_error(path, sled::Error::Io(e)))?;
        let names = db.tree_names();
        let has = |name: &str| names.iter().any(|n| n.as_ref() == name.as_bytes());
        if has(V2_MESSAGES) || has(V3_MESSAGES) {
            let open_err = |e| open_error(path, e);
            let v3 = open_tree(V3_MESSAGES)?;
            // The conversion into format 4 starts over from an empty tree if it was
            // interrupted, which the marker tells. Format 4 messages without it were there
            // before: an older binary has opened the store since it was converted (it sees an
            // empty store). If that binary stored messages, starting over would drop the
            // format 4 ones, and keeping both is not attempted.
            let converting = meta.get(KEY_CONVERTING).map_err(open_err)?.is_some();
            if !converting && !messages.is_empty() {
                let v2_holds = has(V2_MESSAGES) && !open_tree(V2_MESSAGES)?.is_empty();
                let v3_holds = v3
                    .iter()
                    .keys()
                    .next()
                    .transpose()
                    .map_err(open_err)?
                    .is_some_and(|k| k.as_ref() != KEY_WATERMARK);
                if v2_holds || v3_holds {
                    return Err(corrupt_at(
                        path,
                        V3_MESSAGES,
                        "the store holds messages in format 4 and in an earlier format: a \
                         binary older than this one has stored messages in it since it was \
                         converted"
                            .into(),
                    ));
                }
                for name in [V2_MESSAGES, V3_MESSAGES] {
                    db.drop_tree(name).map_err(open_err)?;
                }
                db.flush().map_err(open_err)?;
            } else {
                meta.insert(KEY_CONVERTING, &[][..]).map_err(open_err)?;
                db.flush().map_err(open_err)?;
                let log_state = recover_v3(path, &db, &v3, &log)?;
                let log_state = migrate_v2(path, &db, &v3, &log, log_state)?;
                migrate_v3(path, &db, &v3, &messages, log_state)?;
                meta.remove(KEY_CONVERTING).map_err(open_err)?;
                db.flush().map_err(open_err)?;
            }
        }
        let (log_state, index) = load(path, &db, &messages, &log)?;

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
            receipts,
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

    // ----- messages -----------------------------------------------------

    /// Inserts a message with its indexes atomically and waits until it is
    /// durable.
    ///
    /// Idempotent: if the id is already stored, returns
    /// [`Inserted::Duplicate`] and writes nothing. If `(group, author, epoch, seq)`
    /// is held by a different id, returns [`Inserted::Conflict`] and writes
    /// nothing. In both cases the call still waits until the stored
    /// original is durable, so any outcome may be acknowledged.
    pub async fn insert_message(&self, m: NewMessage<'_>) -> Result<Inserted, StoreError> {
        self.check_writable()?;
        let outcome = self.apply_messages(&[m])?[0];
        self.wait_durable(self.note_written()).await?;
        Ok(outcome)
    }

    /// Inserts several messages in one batch and waits once until all
    /// are durable. Returns one outcome per input, in order (a later copy
    /// of an id earlier in the same batch is a [`Inserted::Duplicate`]).
    pub async fn insert_messages(
        &self,
        batch: Vec<NewMessageOwned>,
    ) -> Result<Vec<Inserted>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.check_writable()?;
        let (messages, started) = (batch.len(), Instant::now());
        let outcomes = self
            .blocking("inserting messages", move |store| {
                let borrowed: Vec<NewMessage<'_>> = batch.iter().map(|m| m.borrowed()).collect();
                store.apply_messages(&borrowed)
            })
            .await?;
        let applied = started.elapsed();
        self.wait_durable(self.note_written()).await?;
        tracing::trace!(
            messages,
            ?applied,
            durable = ?started.elapsed(),
            "message batch stored"
        );
        Ok(outcomes)
    }

    /// Appends the envelopes of the messages that are neither duplicates nor conflicts to the
    /// log with one write, then writes their author index runs in one atomic batch and adds
    /// them to the id index; one outcome per message, in order. Does not wait for durability.
    fn apply_messages(&self, batch: &[NewMessage<'_>]) -> Result<Vec<Inserted>, StoreError> {
        // A panic while holding the lock cannot leave the log end behind bytes an entry points
        // to: it moves before the batch is applied. Nor the id index behind the tree in a way
        // that loses a message: the index is rebuilt from the tree at the next open.
        let _writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let log_start = self.inner.log_end.load(Ordering::Acquire);
        // The envelopes to append, back to back from `log_start`.
        let mut envelopes = Vec::new();
        // Earlier messages of this batch, which the tree does not show yet.
        let mut ids = std::collections::HashSet::new();
        // The new messages' records by place in their author's sequence space: the runs.
        let mut records: std::collections::BTreeMap<[u8; BY_AUTHOR_KEY_LEN], Vec<u8>> =
            std::collections::BTreeMap::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        let places: Vec<[u8; BY_AUTHOR_KEY_LEN]> = batch
            .iter()
            .map(|m| by_author_key(&m.group, &m.author, m.epoch, m.seq))
            .collect();
        let taken = self.held_among(&places)?;
        for (m, author_key) in batch.iter().zip(places) {
            if ids.contains(&m.id) || self.locate(&m.id)?.is_some() {
                outcomes.push(Inserted::Duplicate);
                continue;
            }
            let existing = match records.get(&author_key) {
                Some(record) => Some(record_id(record)),
                None => taken.get(&author_key).copied(),
            };
            if let Some(existing) = existing {
                // Not this id: it would have been found above.
                debug_assert_ne!(existing, m.id);
                outcomes.push(Inserted::Conflict);
                continue;
            }
            let offset = log_start.saturating_add(envelopes.len() as u64);
            let mut record = Vec::new();
            Location::new(offset, m.envelope)
                .and_then(|loc| encode_record(&mut record, &m.id, &loc, m.meta))
                .ok_or_else(|| {
                    self.corrupt(
                        PART_BY_AUTHOR,
                        "message metadata or envelope over 4 GiB".into(),
                    )
                })?;
            envelopes.extend_from_slice(m.envelope);
            ids.insert(m.id);
            records.insert(author_key, record);
            outcomes.push(Inserted::New);
        }
        if records.is_empty() {
            return Ok(outcomes);
        }
        self.inner
            .log
            .write_at(log_start, &envelopes)
            .map_err(|e| self.engine("appending envelopes", sled::Error::Io(e)))?;
        // Published before the batch: a flush that sees an entry of this batch syncs these
        // bytes, and one that does not may still cover them.
        let log_end = log_start.saturating_add(envelopes.len() as u64);
        self.inner.log_end.store(log_end, Ordering::Release);
        let mut writes = sled::Batch::default();
        for (key, run, _) in author_runs(&records, MAX_RUN) {
            writes.insert(&key[..], run);
        }
        self.inner
            .messages
            .apply_batch(writes)
            .map_err(|e| self.engine("inserting messages", e))?;
        let mut index = self
            .inner
            .index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (key, record) in &records {
            index.insert(&record_id(record), key);
        }
        Ok(outcomes)
    }

    /// Which of `places` (author index keys) hold a message, and its id: per sequence space,
    /// one range read over the runs that can hold the seqs asked about, unless they are
    /// spread too far apart for that to be cheap, then one lookup per seq.
    fn held_among(
        &self,
        places: &[[u8; BY_AUTHOR_KEY_LEN]],
    ) -> Result<std::collections::HashMap<[u8; BY_AUTHOR_KEY_LEN], MessageId>, StoreError> {
        let mut spaces: std::collections::BTreeMap<&[u8], std::collections::BTreeSet<u64>> =
            std::collections::BTreeMap::new();
        for key in places {
            spaces
                .entry(&key[..1 + SEQ_SPACE_LEN])
                .or_default()
                .insert(seq_of(key));
        }
        let mut held = std::collections::HashMap::new();
        for (space, seqs) in spaces {
            let (Some(&low), Some(&high)) = (seqs.first(), seqs.last()) else {
                continue;
            };
            let mut at = [0u8; BY_AUTHOR_KEY_LEN];
            at[..1 + SEQ_SPACE_LEN].copy_from_slice(space);
            let key = |seq: u64| by_author_key_at(&at, seq);
            // A range read visits every run between the seqs asked about: at most one per seq
            // in between.
            let dense = (high - low) / 4 <= (seqs.len() + MAX_RUN) as u64;
            if !dense {
                for &seq in &seqs {
                    if let Some(id) = self.held_at(&key(seq))? {
                        held.insert(key(seq), id);
                    }
                }
                continue;
            }
            let start = match self.run_at_or_below(&key(low))? {
                Some((k, _)) => k.to_vec(),
                None => key(low).to_vec(),
            };
            for item in self.inner.messages.range(start..=key(high).to_vec()) {
                let (k, v) = item.map_err(|e| self.engine("reading the author index", e))?;
                let (first, records) = self.run(&k, &v)?;
                for (seq, record) in numbered(first, &records) {
                    if seqs.contains(&seq) {
                        held.insert(key(seq), record.id);
                    }
                }
            }
        }
        Ok(held)
    }

    /// The stored envelope of a message.
    pub fn message(&self, id: &MessageId) -> Result<Option<Vec<u8>>, StoreError> {
        self.stored_message(id, |record| self.read_envelope(&record))
    }

    /// Hands the stored envelope of a message to `read`.
    pub fn with_envelope<T>(
        &self,
        id: &MessageId,
        read: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.message(id)?.map(|envelope| read(&envelope)))
    }

    /// The metadata blob stored with a message.
    pub fn message_meta(&self, id: &MessageId) -> Result<Option<Vec<u8>>, StoreError> {
        self.stored_message(id, |record| Ok(record.meta.to_vec()))
    }

    /// Hands the record of message `id` to `take`, if the message is stored.
    fn stored_message<T>(
        &self,
        id: &MessageId,
        take: impl FnOnce(Record<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let Some(key) = self.candidate(id) else {
            return Ok(None);
        };
        match self.record_at(&key, |record| (record.id == *id).then(|| take(record)))? {
            Some(Some(taken)) => taken.map(Some),
            _ => Ok(None),
        }
    }

    /// Where the id index says message `id` is, if anywhere; [`Store::held_at`] confirms it.
    fn candidate(&self, id: &MessageId) -> Option<[u8; BY_AUTHOR_KEY_LEN]> {
        self.inner
            .index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .candidate(id)
    }

    /// The author index key of message `id`, if it is stored.
    fn locate(&self, id: &MessageId) -> Result<Option<[u8; BY_AUTHOR_KEY_LEN]>, StoreError> {
        let Some(key) = self.candidate(id) else {
            return Ok(None);
        };
        Ok((self.held_at(&key)? == Some(*id)).then_some(key))
    }

    /// Reads the envelope a record points to from the log and checks it against its checksum.
    fn read_envelope(&self, record: &Record<'_>) -> Result<Vec<u8>, StoreError> {
        // Loaded after the record was read, so it covers the record's bytes.
        let end = self.inner.log_end.load(Ordering::Acquire);
        let loc = &record.loc;
        match self.inner.log.read(loc, end) {
            Ok(Ok(envelope)) => Ok(envelope),
            Ok(Err(fault)) => Err(self.corrupt(
                envelope_log::FILE_NAME,
                format!(
                    "the envelope of message {} at offset {} ({} bytes) {fault}",
                    hex::encode(record.id),
                    loc.offset,
                    loc.len
                ),
            )),
            Err(e) => Err(self.engine("reading an envelope", sled::Error::Io(e))),
        }
    }

    /// Whether a message with this id is stored.
    pub fn has_message(&self, id: &MessageId) -> Result<bool, StoreError> {
        Ok(self.locate(id)?.is_some())
    }

    /// The id of the message `(group, author, epoch, seq)`, if held.
    pub fn message_by_seq(
        &self,
        group: &GroupId,
        author: &NodeId,
        epoch: u64,
        seq: u64,
    ) -> Result<Option<MessageId>, StoreError> {
        self.held_at(&by_author_key(group, author, epoch, seq))
    }

    /// The id held at `key` (an author index key naming one seq).
    fn held_at(&self, key: &[u8; BY_AUTHOR_KEY_LEN]) -> Result<Option<MessageId>, StoreError> {
        self.record_at(key, |record| record.id)
    }

    /// Hands the record held at `key` (an author index key naming one seq) to `take`: the run
    /// holding a seq is the one starting at the highest key not above it, if it reaches that
    /// far.
    fn record_at<T>(
        &self,
        key: &[u8; BY_AUTHOR_KEY_LEN],
        take: impl FnOnce(Record<'_>) -> T,
    ) -> Result<Option<T>, StoreError> {
        let Some((k, v)) = self.run_at_or_below(key)? else {
            return Ok(None);
        };
        let (first, records) = self.run(&k, &v)?;
        // `first` is at most the seq asked for: the key is not above it.
        let held = usize::try_from(seq_of(key) - first)
            .ok()
            .and_then(|n| records.get(n));
        Ok(held.map(|record| take(*record)))
    }

    /// The author index entry with the highest key not above `key` in its author's sequence
    /// space: the only run that can hold `key`'s seq.
    fn run_at_or_below(
        &self,
        key: &[u8; BY_AUTHOR_KEY_LEN],
    ) -> Result<Option<(sled::IVec, sled::IVec)>, StoreError> {
        let space = &key[..1 + SEQ_SPACE_LEN];
        self.inner
            .messages
            .range(space..=&key[..])
            .next_back()
            .transpose()
            .map_err(|e| self.engine("reading the author index", e))
    }

    /// Calls `each(seq, record)` for the held messages of `author` in `epoch` of `group` with
    /// seq `from` or above, ascending, until it returns `false`.
    fn each_held(
        &self,
        group: &GroupId,
        author: &NodeId,
        epoch: u64,
        from: u64,
        mut each: impl FnMut(u64, &Record<'_>) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let read = |e| self.engine("reading the author index", e);
        let tree = &self.inner.messages;
        let from_key = by_author_key(group, author, epoch, from);
        let end = by_author_key(group, author, epoch, u64::MAX);
        // Start at the run holding `from` when it starts below it.
        let start = match self.run_at_or_below(&from_key)? {
            Some((k, _)) => k.to_vec(),
            None => from_key.to_vec(),
        };
        for item in tree.range(start..=end.to_vec()) {
            let (k, v) = item.map_err(read)?;
            let (first, records) = self.run(&k, &v)?;
            for (seq, record) in numbered(first, &records) {
                if seq >= from && !each(seq, record)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Up to `limit` held `(seq, id)` pairs of `author` in `epoch` of
    /// `group` with `seq >= from_seq`, ascending by seq.
    pub fn author_seqs(
        &self,
        group: &GroupId,
        author: &NodeId,
        epoch: u64,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, MessageId)>, StoreError> {
        let mut out = Vec::new();
        if limit > 0 {
            self.each_held(group, author, epoch, from_seq, |seq, record| {
                out.push((seq, record.id));
                Ok(out.len() < limit)
            })?;
        }
        Ok(out)
    }

    /// Envelopes of `author` in `epoch` of `group` with seq above `after`,
    /// ascending by seq, stopping before their total size would exceed
    /// `max_bytes` (but returning at least one if any exists). Serves
    /// `liaison_protocol::sync::Archive::envelopes`.
    pub fn envelopes_after(
        &self,
        group: &GroupId,
        author: &NodeId,
        epoch: u64,
        after: u64,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut total = 0usize;
        self.each_held(group, author, epoch, first, |_, record| {
            total = total.saturating_add(record.loc.len as usize);
            if total > max_bytes && !out.is_empty() {
                return Ok(false);
            }
            out.push(self.read_envelope(record)?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// All sequence numbers held for `author` in `epoch` of `group`,
    /// ascending.
    pub fn held_seqs(
        &self,
        group: &GroupId,
        author: &NodeId,
        epoch: u64,
    ) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        self.each_held(group, author, epoch, 0, |seq, _| {
            out.push(seq);
            Ok(true)
        })?;
        Ok(out)
    }

    /// Calls `each(author, epoch, seq, id)` for every held message of `group`, ordered by
    /// author, epoch and seq.
    fn each_in_group(
        &self,
        group: &GroupId,
        mut each: impl FnMut(NodeId, u64, u64, MessageId),
    ) -> Result<(), StoreError> {
        for item in self.inner.messages.scan_prefix(author_space(group)) {
            let (k, v) = item.map_err(|e| self.engine("reading the author index", e))?;
            let (_, author, epoch, _) = self.parse_by_author_key(&k)?;
            let (first, records) = self.run(&k, &v)?;
            for (seq, record) in numbered(first, &records) {
                each(author, epoch, seq, record.id);
            }
        }
        Ok(())
    }

    /// Every held message of `group` as `(author, epoch, seq)`, ascending.
    /// Used at start-up to rebuild the sync engine's version vectors.
    pub fn held(&self, group: &GroupId) -> Result<Vec<(NodeId, u64, u64)>, StoreError> {
        let mut out = Vec::new();
        self.each_in_group(group, |author, epoch, seq, _| {
            out.push((author, epoch, seq))
        })?;
        Ok(out)
    }

    /// Every `(author, epoch)` with at least one message in `group`, with
    /// the highest seq `n` such that seqs `1..=n` are all held (0 if seq 1
    /// is missing), as `(author, epoch, n)`. Ascending by author, then
    /// epoch. Skips over held seqs beyond the contiguous prefix; use
    /// [`Store::held_seqs`] or [`Store::held`] for those.
    pub fn authors(&self, group: &GroupId) -> Result<Vec<(NodeId, u64, u64)>, StoreError> {
        let tree = &self.inner.messages;
        let mut out = Vec::new();
        let space = author_space(group);
        let mut cursor: Vec<u8> = space.to_vec();
        loop {
            let first = match tree.range(cursor.as_slice()..).next() {
                None => break,
                Some(item) => item.map_err(|e| self.engine("reading the author index", e))?,
            };
            if !first.0.starts_with(&space) {
                break;
            }
            let (_, author, epoch, _) = self.parse_by_author_key(&first.0)?;
            let mut contiguous = 0u64;
            self.each_held(group, &author, epoch, 1, |seq, _| {
                let next = Some(seq) == contiguous.checked_add(1);
                if next {
                    contiguous = seq;
                }
                Ok(next)
            })?;
            out.push((author, epoch, contiguous));
            match successor(&seq_space_prefix(group, &author, epoch)) {
                Some(next) => cursor = next,
                None => break,
            }
        }
        Ok(out)
    }

    /// The ids of every message held in `group`, ordered by author, epoch and seq.
    pub fn group_messages(&self, group: &GroupId) -> Result<Vec<MessageId>, StoreError> {
        let mut out = Vec::new();
        self.each_in_group(group, |_, _, _, id| out.push(id))?;
        Ok(out)
    }

    /// Number of stored messages (the size of the id index; O(1)).
    pub fn message_count(&self) -> usize {
        self.inner
            .index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    // ----- control events ----------------------------------------------

    /// Stores control event `seq` of `group` unless that slot is taken, and
    /// waits until it is durable.
    pub async fn insert_control(
        &self,
        group: &GroupId,
        seq: u64,
        bytes: &[u8],
    ) -> Result<ControlInserted, StoreError> {
        self.check_writable()?;
        let key = group_seq_key(group, seq);
        let cas = self
            .inner
            .control
            .compare_and_swap(key, None::<&[u8]>, Some(bytes))
            .map_err(|e| self.engine("writing a control event", e))?;
        let outcome = match cas {
            Ok(()) => ControlInserted::New,
            Err(e) if e.current.as_deref() == Some(bytes) => ControlInserted::Duplicate,
            Err(_) => ControlInserted::Conflict,
        };
        self.wait_durable(self.note_written()).await?;
        Ok(outcome)
    }

    /// All control events of `group` as `(seq, bytes)`, ascending by seq.
    pub fn control_events(&self, group: &GroupId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.control.scan_prefix(group) {
            let (k, v) = item.map_err(|e| self.engine("reading control events", e))?;
            let seq = self.parse_group_seq_key(TREE_CONTROL, &k)?.1;
            out.push((seq, v.to_vec()));
        }
        Ok(out)
    }

    /// Groups that have at least one control event, ascending.
    pub fn groups(&self) -> Result<Vec<GroupId>, StoreError> {
        let tree = &self.inner.control;
        let mut out = Vec::new();
        let mut cursor: Vec<u8> = Vec::new();
        loop {
            let key = match tree.range(cursor.as_slice()..).next() {
                None => break,
                Some(item) => {
                    item.map_err(|e| self.engine("reading control events", e))?
                        .0
                }
            };
            let group = self.parse_group_seq_key(TREE_CONTROL, &key)?.0;
            out.push(group);
            match successor(&group) {
                Some(next) => cursor = next,
                None => break,
            }
        }
        Ok(out)
    }

    // ----- receipts ------------------------------------------------------

    /// Stores receipts — each once, however many messages it names — and, per message named
    /// that the store holds and receiver, which receipt that is (replacing an earlier one);
    /// waits until all of it is durable. A receipt that names no message held here is not
    /// stored. The blobs are written before the index, so an index entry never points to a
    /// missing blob.
    pub async fn insert_receipts(&self, receipts: Vec<NewReceipt>) -> Result<(), StoreError> {
        if receipts.is_empty() {
            return Ok(());
        }
        self.check_writable()?;
        self.blocking("writing receipts", move |store| {
            let mut blobs = sled::Batch::default();
            let mut index = sled::Batch::default();
            for r in &receipts {
                let key = blake3::hash(&r.bytes);
                // The named messages the author index holds where the receipt's sender says,
                // by place: one index entry per run of consecutive seqs.
                let places: Vec<_> = r
                    .messages
                    .iter()
                    .map(|m| by_author_key(&r.group, &m.author, m.epoch, m.seq))
                    .collect();
                let found = store.held_among(&places)?;
                let mut held = std::collections::BTreeMap::new();
                for (m, at) in r.messages.iter().zip(places) {
                    if found.get(&at) == Some(&m.id) {
                        held.insert(at, m.id);
                    }
                }
                for (first, _, n) in author_runs(&held, MAX_RECEIPT_RUN) {
                    let last = first_plus(&first, n);
                    let mut k = [0u8; RECEIPT_RUN_KEY_LEN];
                    k[..SEQ_SPACE_LEN + SEQ_LEN].copy_from_slice(&first[1..]);
                    k[SEQ_SPACE_LEN + SEQ_LEN..].copy_from_slice(&r.receiver);
                    let mut v = [0u8; SEQ_LEN + ID_LEN];
                    v[..SEQ_LEN].copy_from_slice(&last.to_be_bytes());
                    v[SEQ_LEN..].copy_from_slice(key.as_bytes());
                    index.insert(&k[..], &v[..]);
                }
                if !held.is_empty() {
                    blobs.insert(key.as_bytes(), r.bytes.as_slice());
                }
            }
            let i = &store.inner;
            i.receipt_blobs
                .apply_batch(blobs)
                .and_then(|()| i.receipt_runs.apply_batch(index))
                .map_err(|e| store.engine("writing receipts", e))
        })
        .await?;
        self.wait_durable(self.note_written()).await
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
            .map_err(|e| StoreError::Engine {
                op,
                path: self.inner.path.clone(),
                source: sled::Error::Io(std::io::Error::other(e.to_string())),
            })?
    }

    /// All receipts naming message `msg` of `group` as `(receiver, bytes)`, ascending by
    /// receiver; a receiver may have sent more than one.
    pub fn receipts(
        &self,
        group: &GroupId,
        msg: &Placed,
    ) -> Result<Vec<StoredReceipt>, StoreError> {
        let op = "reading receipts";
        let mut found = std::collections::BTreeSet::new();
        // Receipt runs holding the seq start at most a receipt's length below it.
        let space = &seq_space_prefix(group, &msg.author, msg.epoch)[1..];
        let low = msg.seq.saturating_sub(MAX_RECEIPT_RUN as u64 - 1);
        let start = [space, &low.to_be_bytes()[..]].concat();
        let end = [space, &msg.seq.to_be_bytes()[..], &[0xff; ID_LEN][..]].concat();
        for item in self.inner.receipt_runs.range(start..=end) {
            let (k, v) = item.map_err(|e| self.engine(op, e))?;
            if k.len() != RECEIPT_RUN_KEY_LEN || v.len() != SEQ_LEN + ID_LEN {
                return Err(self.corrupt(
                    TREE_RECEIPT_RUNS,
                    format!("entry of {} and {} bytes", k.len(), v.len()),
                ));
            }
            let last = u64::from_be_bytes(self.array(TREE_RECEIPT_RUNS, &v[..SEQ_LEN])?);
            if last >= msg.seq {
                found.insert((
                    self.array::<ID_LEN>(TREE_RECEIPT_RUNS, &k[SEQ_SPACE_LEN + SEQ_LEN..])?,
                    self.array::<ID_LEN>(TREE_RECEIPT_RUNS, &v[SEQ_LEN..])?,
                ));
            }
        }
        // Receipts stored before runs, one entry per message and receiver.
        for item in self.inner.receipts.scan_prefix(msg.id) {
            let (k, v) = item.map_err(|e| self.engine(op, e))?;
            if k.len() != RECEIPT_KEY_LEN {
                return Err(self.bad_key_len(TREE_RECEIPTS, k.len(), RECEIPT_KEY_LEN));
            }
            found.insert((
                self.array(TREE_RECEIPTS, &k[ID_LEN..])?,
                self.array(TREE_RECEIPTS, &v)?,
            ));
        }
        let mut out = Vec::with_capacity(found.len());
        for (receiver, blob) in found {
            let bytes = self
                .get(&self.inner.receipt_blobs, &blob, op)?
                .ok_or_else(|| {
                    self.corrupt(
                        TREE_RECEIPT_BLOBS,
                        format!("indexed receipt {} is missing", hex::encode(blob)),
                    )
                })?;
            out.push((receiver, bytes));
        }
        Ok(out)
    }

    // ----- peers ---------------------------------------------------------

    /// Stores (or replaces) the record of peer `node` and waits until it is
    /// durable.
    pub async fn put_peer(&self, node: &NodeId, record: &[u8]) -> Result<(), StoreError> {
        self.check_writable()?;
        self.inner
            .peers
            .insert(node, record)
            .map_err(|e| self.engine("writing a peer record", e))?;
        self.wait_durable(self.note_written()).await
    }

    /// The record of peer `node`.
    pub fn peer(&self, node: &NodeId) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(&self.inner.peers, node, "reading a peer record")
    }

    /// All peer records as `(node, record)`, ascending by node id.
    pub fn peers(&self) -> Result<Vec<(NodeId, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.peers.iter() {
            let (k, v) = item.map_err(|e| self.engine("reading peer records", e))?;
            out.push((self.array(TREE_PEERS, &k)?, v.to_vec()));
        }
        Ok(out)
    }

    /// Removes peer `node` and waits until the removal is durable. Returns
    /// whether the peer was present.
    pub async fn remove_peer(&self, node: &NodeId) -> Result<bool, StoreError> {
        self.check_writable()?;
        let old = self
            .inner
            .peers
            .remove(node)
            .map_err(|e| self.engine("removing a peer record", e))?;
        self.wait_durable(self.note_written()).await?;
        Ok(old.is_some())
    }

    // ----- node-level values -------------------------------------------

    /// Stores (or replaces) a small node-level value and waits until it is
    /// durable. Keys starting with [`RESERVED_META_PREFIX`] are refused.
    pub async fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if key.starts_with(RESERVED_META_PREFIX) {
            return Err(StoreError::ReservedKey {
                key: key.to_owned(),
            });
        }
        self.check_writable()?;
        self.inner
            .meta
            .insert(key.as_bytes(), value)
            .map_err(|e| self.engine("writing a meta value", e))?;
        self.wait_durable(self.note_written()).await
    }

    /// A node-level value.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(&self.inner.meta, key.as_bytes(), "reading a meta value")
    }

    // ----- audit log and officer accounts --------------------------------

    /// Writes audit record `seq` (big-endian key) unless one exists, and returns a ticket to
    /// wait on with [`Store::wait_for`]. Records are write-once: an existing `seq` is an error.
    pub fn append_audit(&self, seq: u64, record: &[u8]) -> Result<DurableTicket, StoreError> {
        self.check_writable()?;
        let swapped = self
            .inner
            .audit
            .compare_and_swap(seq.to_be_bytes(), None as Option<&[u8]>, Some(record))
            .map_err(|e| self.engine("appending an audit record", e))?;
        if swapped.is_err() {
            return Err(StoreError::Corrupt {
                tree: TREE_AUDIT,
                path: self.inner.path.clone(),
                detail: format!("audit record {seq} already exists"),
            });
        }
        Ok(DurableTicket(self.note_written()))
    }

    /// Waits until the write behind `ticket` is flushed to disk.
    pub async fn wait_for(&self, ticket: DurableTicket) -> Result<(), StoreError> {
        self.wait_durable(ticket.0).await
    }

    /// Audit records with `seq >= from`, in order.
    pub fn audit_records(&self, from: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.audit.range(from.to_be_bytes()..) {
            let (k, v) = item.map_err(|e| self.engine("reading the audit log", e))?;
            let key: [u8; 8] = k.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                tree: TREE_AUDIT,
                path: self.inner.path.clone(),
                detail: "audit key is not 8 bytes".into(),
            })?;
            out.push((u64::from_be_bytes(key), v.to_vec()));
        }
        Ok(out)
    }

    /// The last audit record.
    pub fn last_audit(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        match self
            .inner
            .audit
            .last()
            .map_err(|e| self.engine("reading the audit log", e))?
        {
            None => Ok(None),
            Some((k, v)) => {
                let key: [u8; 8] = k.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    tree: TREE_AUDIT,
                    path: self.inner.path.clone(),
                    detail: "audit key is not 8 bytes".into(),
                })?;
                Ok(Some((u64::from_be_bytes(key), v.to_vec())))
            }
        }
    }

    /// Stores (or replaces) the account `name` and waits until it is durable.
    pub async fn put_user(&self, name: &str, record: &[u8]) -> Result<(), StoreError> {
        self.check_writable()?;
        self.inner
            .users
            .insert(name.as_bytes(), record)
            .map_err(|e| self.engine("writing an account", e))?;
        self.wait_durable(self.note_written()).await
    }

    /// Removes the account `name`; whether it existed.
    pub async fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        self.check_writable()?;
        let old = self
            .inner
            .users
            .remove(name.as_bytes())
            .map_err(|e| self.engine("removing an account", e))?;
        self.wait_durable(self.note_written()).await?;
        Ok(old.is_some())
    }

    /// Every account, by name.
    pub fn users(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.users.iter() {
            let (k, v) = item.map_err(|e| self.engine("reading accounts", e))?;
            let name = String::from_utf8(k.to_vec()).map_err(|_| StoreError::Corrupt {
                tree: TREE_USERS,
                path: self.inner.path.clone(),
                detail: "account name is not UTF-8".into(),
            })?;
            out.push((name, v.to_vec()));
        }
        Ok(out)
    }

    /// Every meta value whose key starts with `prefix`, in key order.
    pub fn meta_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.meta.scan_prefix(prefix.as_bytes()) {
            let (k, v) = item.map_err(|e| self.engine("reading meta values", e))?;
            let key = String::from_utf8(k.to_vec()).map_err(|_| StoreError::Corrupt {
                tree: TREE_META,
                path: self.inner.path.clone(),
                detail: "meta key is not UTF-8".into(),
            })?;
            out.push((key, v.to_vec()));
        }
        Ok(out)
    }

    // ----- maintenance ---------------------------------------------------

    /// Bytes the store occupies on disk (sled's files and the envelope log).
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        let op = "measuring size on disk";
        let db = self
            .inner
            .db
            .size_on_disk()
            .map_err(|e| self.engine(op, e))?;
        let log = self
            .inner
            .log
            .len()
            .map_err(|e| self.engine(op, sled::Error::Io(e)))?;
        Ok(db.saturating_add(log))
    }

    /// Waits until every write applied before this call is durable (joins
    /// the next group flush). Call at shutdown.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.check_writable()?;
        self.wait_durable(self.note_written()).await
    }

    /// Number of successful flushes the flusher has completed since open.
    pub fn flush_count(&self) -> u64 {
        self.inner.state.borrow().flushes
    }

    // ----- durability internals ----------------------------------------

    /// Refuses writes once a flush has failed.
    fn check_writable(&self) -> Result<(), StoreError> {
        match &self.inner.state.borrow().failed {
            Some(e) => Err(self.flush_failed(e.clone())),
            None => Ok(()),
        }
    }

    /// Records that a write has been applied; returns its ticket. Any flush
    /// that starts after this call covers the write.
    fn note_written(&self) -> u64 {
        self.inner.shared.written.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Waits until a flush covering `ticket` (i.e. started after the ticket
    /// was taken) has completed.
    async fn wait_durable(&self, ticket: u64) -> Result<(), StoreError> {
        let mut rx = self.inner.state.clone();
        // Full: a wake-up is already pending. Closed: the flusher has
        // stopped, which `changed()` reports below.
        let _ = self.inner.wake.try_send(());
        loop {
            if let Some(res) = self.durable_status(&rx.borrow_and_update(), ticket) {
                return res;
            }
            if rx.changed().await.is_err() {
                return self
                    .durable_status(&rx.borrow(), ticket)
                    .unwrap_or_else(|| {
                        Err(StoreError::FlusherStopped {
                            path: self.inner.path.clone(),
                        })
                    });
            }
        }
    }

    fn durable_status(&self, s: &FlushState, ticket: u64) -> Option<Result<(), StoreError>> {
        if s.flushed >= ticket {
            Some(Ok(()))
        } else {
            s.failed.as_ref().map(|e| Err(self.flush_failed(e.clone())))
        }
    }

    // ----- helpers --------------------------------------------------------

    fn get(
        &self,
        tree: &sled::Tree,
        key: &[u8],
        op: &'static str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        tree.get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| self.engine(op, e))
    }

    fn parse_by_author_key(&self, k: &[u8]) -> Result<(GroupId, NodeId, u64, u64), StoreError> {
        if k.len() != BY_AUTHOR_KEY_LEN {
            return Err(self.bad_key_len(PART_BY_AUTHOR, k.len(), BY_AUTHOR_KEY_LEN));
        }
        let k = &k[1..];
        let group = self.array(PART_BY_AUTHOR, &k[..GROUP_LEN])?;
        let author = self.array(PART_BY_AUTHOR, &k[GROUP_LEN..GROUP_LEN + ID_LEN])?;
        let epoch =
            u64::from_be_bytes(self.array(PART_BY_AUTHOR, &k[GROUP_LEN + ID_LEN..SEQ_SPACE_LEN])?);
        let seq = u64::from_be_bytes(self.array(PART_BY_AUTHOR, &k[SEQ_SPACE_LEN..])?);
        Ok((group, author, epoch, seq))
    }

    fn parse_group_seq_key(
        &self,
        tree: &'static str,
        k: &[u8],
    ) -> Result<(GroupId, u64), StoreError> {
        if k.len() != CONTROL_KEY_LEN {
            return Err(self.bad_key_len(tree, k.len(), CONTROL_KEY_LEN));
        }
        let group = self.array(tree, &k[..GROUP_LEN])?;
        let seq = u64::from_be_bytes(self.array(tree, &k[GROUP_LEN..])?);
        Ok((group, seq))
    }

    /// An author index entry: a run of held messages, as its first seq and the records of
    /// that seq and the ones after it.
    fn run<'v>(&self, k: &[u8], v: &'v [u8]) -> Result<(u64, Vec<Record<'v>>), StoreError> {
        let first = self.parse_by_author_key(k)?.3;
        let records = parse_run(v).filter(|records| {
            records
                .len()
                .checked_sub(1)
                .and_then(|last| first.checked_add(u64::try_from(last).ok()?))
                .is_some()
        });
        records
            .ok_or_else(|| {
                self.corrupt(
                    PART_BY_AUTHOR,
                    format!(
                        "value has {} bytes, expected message records of seqs from {first}",
                        v.len()
                    ),
                )
            })
            .map(|records| (first, records))
    }

    fn array<const N: usize>(
        &self,
        tree: &'static str,
        bytes: &[u8],
    ) -> Result<[u8; N], StoreError> {
        bytes.try_into().map_err(|_| {
            self.corrupt(
                tree,
                format!("field has {} bytes, expected {N}", bytes.len()),
            )
        })
    }

    fn bad_key_len(&self, tree: &'static str, got: usize, want: usize) -> StoreError {
        self.corrupt(tree, format!("key has {got} bytes, expected {want}"))
    }

    fn corrupt(&self, tree: &'static str, detail: String) -> StoreError {
        StoreError::Corrupt {
            tree,
            path: self.inner.path.clone(),
            detail,
        }
    }

    fn engine(&self, op: &'static str, source: sled::Error) -> StoreError {
        StoreError::Engine {
            op,
            path: self.inner.path.clone(),
            source,
        }
    }

    fn flush_failed(&self, source: sled::Error) -> StoreError {
        StoreError::FlushFailed {
            path: self.inner.path.clone(),
            source,
        }
    }
}

/// The flusher: waits for a wake-up, then flushes until every ticket
/// handed out so far is covered, publishing progress on `state`.
///
/// `watermark` is the log watermark stored in `messages` when the store was opened.
///
/// It holds the database only through `weak` (and only while flushing), so
/// dropping the last [`Store`] closes the database and stops the flusher.
async fn run_flusher(
    weak: Weak<Inner>,
    shared: Arc<Shared>,
    mut wake: mpsc::Receiver<()>,
    state: watch::Sender<FlushState>,
    mut watermark: u64,
) {
    let mut flushed = 0u64;
    while wake.recv().await.is_some() {
        loop {
            // Let writers that are about to finish join this flush.
            tokio::task::yield_now().await;
            // Every write that took a ticket <= target completed before
            // this load, hence before the flush below starts.
            let target = shared.written.load(Ordering::Acquire);
            if target <= flushed {
                break;
            }
            let Some(inner) = weak.upgrade() else { return };
            let started = Instant::now();
            let result = flush_once(&inner, &shared, watermark).await;
            if let Err(e) = &result {
                tracing::error!(
                    path = %inner.path.display(),
                    error = %e,
                    "store flush failed; refusing further writes"
                );
            }
            // Release the database before waking waiters, so a caller that
            // drops its Store right after a write really closes it.
            drop(inner);
            match result {
                Ok((bytes, raised)) => {
                    flushed = target;
                    watermark = raised;
                    tracing::trace!(
                        covered = target,
                        bytes,
                        watermark,
                        elapsed = ?started.elapsed(),
                        "store flushed"
                    );
                    state.send_modify(|s| {
                        s.flushed = target;
                        s.flushes += 1;
                    });
                }
                Err(e) => {
                    state.send_modify(|s| s.failed = Some(e));
                    return;
                }
            }
        }
    }
}

/// One flush cycle: makes every write applied before it started durable. If envelopes were
/// appended since the last cycle, first syncs the log up to the end `W` noted at the start and
/// then records `W` as the watermark in `messages`; then flushes sled (which makes the
/// watermark durable too). Returns the bytes sled flushed and the watermark now stored.
///
/// The order is what recovery relies on: a stored watermark never covers a log byte that was
/// not synced, so every entry below it points at durable bytes.
async fn flush_once(
    inner: &Inner,
    shared: &Shared,
    watermark: u64,
) -> Result<(usize, u64), sled::Error> {
    #[cfg(test)]
    if shared.fail_next_flush.swap(false, Ordering::AcqRel) {
        return Err(sled::Error::Io(std::io::Error::other(
            "injected flush failure",
        )));
    }
    #[cfg(test)]
    match shared.flush_delay_ms.load(Ordering::Acquire) {
        0 => {}
        ms => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
    }
    #[cfg(not(test))]
    let _ = shared;
    // Every write whose ticket this cycle covers published its log end before taking the
    // ticket, so `end` covers its envelopes.
    let end = inner.log_end.load(Ordering::Acquire);
    let sync_log = end > watermark;
    // Not `flush_async`: that runs the flush on sled's own small IO thread pool, where it
    // blocks until buffer writes queued on the same pool are done; with seven or more stores
    // flushing at once in one process (tests, the benchmark's fan-out) every pool thread waits
    // and nothing writes. tokio's blocking pool has no such ceiling.
    let (db, messages, log) = (inner.db.clone(), inner.messages.clone(), inner.log.clone());
    tokio::task::spawn_blocking(move || {
        let mut raised = watermark;
        if sync_log {
            log.sync().map_err(sled::Error::Io)?;
            raise_watermark(&messages, end)?;
            raised = end;
        }
        db.flush().map(|bytes| (bytes, raised))
    })
    .await
    .unwrap_or_else(|e| Err(sled::Error::Io(std::io::Error::other(e.to_string()))))
}

fn open_error(path: &Path, source: sled::Error) -> StoreError {
    StoreError::Open {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt_at(path: &Path, tree: &'static str, detail: String) -> StoreError {
    StoreError::Corrupt {
        tree,
        path: path.to_path_buf(),
        detail,
    }
}

/// sled reports a held lock as an `Io` error of kind `Other` with this text.
fn is_lock_error(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(io) => io.to_string().contains("could not acquire lock"),
        _ => false,
    }
}

fn decode_u64(v: &[u8]) -> Option<u64> {
    v.try_into().ok().map(u64::from_be_bytes)
}

/// `a` ‖ group: the author index of one group.
fn author_space(group: &GroupId) -> [u8; 1 + GROUP_LEN] {
    let mut k = [0u8; 1 + GROUP_LEN];
    k[0] = P_AUTHOR;
    k[1..].copy_from_slice(group);
    k
}

/// `a` ‖ group ‖ author ‖ epoch: the author index of one sequence space.
fn seq_space_prefix(group: &GroupId, author: &NodeId, epoch: u64) -> [u8; 1 + SEQ_SPACE_LEN] {
    let mut k = [0u8; 1 + SEQ_SPACE_LEN];
    k[..1 + GROUP_LEN].copy_from_slice(&author_space(group));
    k[1 + GROUP_LEN..1 + GROUP_LEN + ID_LEN].copy_from_slice(author);
    k[1 + GROUP_LEN + ID_LEN..].copy_from_slice(&epoch.to_be_bytes());
    k
}

fn by_author_key(
    group: &GroupId,
    author: &NodeId,
    epoch: u64,
    seq: u64,
) -> [u8; BY_AUTHOR_KEY_LEN] {
    let mut k = [0u8; BY_AUTHOR_KEY_LEN];
    k[..1 + SEQ_SPACE_LEN].copy_from_slice(&seq_space_prefix(group, author, epoch));
    k[1 + SEQ_SPACE_LEN..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// `key` (an author index key) with its seq replaced by `seq`.
fn by_author_key_at(key: &[u8; BY_AUTHOR_KEY_LEN], seq: u64) -> [u8; BY_AUTHOR_KEY_LEN] {
    let mut at = *key;
    at[1 + SEQ_SPACE_LEN..].copy_from_slice(&seq.to_be_bytes());
    at
}

/// Most messages in one author index entry.
const MAX_RUN: usize = 128;

/// Entries given by their author index keys, as runs of consecutive seqs of one author and
/// epoch, each at most `max` long (the author index uses [`MAX_RUN`]): the key of each run's
/// first seq, the run's values back to back in seq order, and how many there are.
fn author_runs<V: AsRef<[u8]>>(
    seqs: &std::collections::BTreeMap<[u8; BY_AUTHOR_KEY_LEN], V>,
    max: usize,
) -> Vec<([u8; BY_AUTHOR_KEY_LEN], Vec<u8>, usize)> {
    let mut runs: Vec<([u8; BY_AUTHOR_KEY_LEN], Vec<u8>, usize)> = Vec::new();
    let mut last: Option<&[u8; BY_AUTHOR_KEY_LEN]> = None;
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

/// A stored message as its author index run holds it (see the module docs).
#[derive(Debug, Clone, Copy)]
struct Record<'v> {
    id: MessageId,
    /// Where its envelope lies in the log.
    loc: Location,
    /// The caller's metadata.
    meta: &'v [u8],
}

/// Appends the record of message `id` to `out`: id ‖ location ‖ meta_len(4) ‖ meta; `None`
/// (with nothing appended) if the metadata is 4 GiB or longer.
fn encode_record(out: &mut Vec<u8>, id: &MessageId, loc: &Location, meta: &[u8]) -> Option<()> {
    let meta_len = u32::try_from(meta.len()).ok()?;
    out.reserve(RECORD_HEAD_LEN + meta.len());
    out.extend_from_slice(id);
    out.extend_from_slice(&loc.encode());
    out.extend_from_slice(&meta_len.to_be_bytes());
    out.extend_from_slice(meta);
    Some(())
}

/// The id of an encoded record (the first [`ID_LEN`] bytes, as [`encode_record`] writes).
fn record_id(record: &[u8]) -> MessageId {
    record
        .get(..ID_LEN)
        .and_then(|id| id.try_into().ok())
        .unwrap_or_default()
}

/// The records of an author index run; `None` if the value is empty or not whole records.
fn parse_run(mut v: &[u8]) -> Option<Vec<Record<'_>>> {
    let mut records = Vec::with_capacity(v.len() / RECORD_HEAD_LEN);
    while !v.is_empty() {
        let (head, rest) = v.split_at_checked(RECORD_HEAD_LEN)?;
        let (id, head) = head.split_first_chunk::<ID_LEN>()?;
        let (loc, meta_len) = head.split_at(LOCATION_LEN);
        let meta_len = usize::try_from(u32::from_be_bytes(meta_len.try_into().ok()?)).ok()?;
        let (meta, rest) = rest.split_at_checked(meta_len)?;
        records.push(Record {
            id: *id,
            loc: Location::decode(loc)?,
            meta,
        });
        v = rest;
    }
    (!records.is_empty()).then_some(records)
}

/// The records of a run starting at seq `first` with their seqs; stops at the last seq rather
/// than overflow (a run checked by `Store::run` never reaches that far).
fn numbered<'a, 'v>(
    first: u64,
    records: &'a [Record<'v>],
) -> impl Iterator<Item = (u64, &'a Record<'v>)> + 'a {
    records
        .iter()
        .enumerate()
        .map_while(move |(i, record)| Some((first.checked_add(u64::try_from(i).ok()?)?, record)))
}

/// The last seq of a run of `n` ids (n ≥ 1) starting at the seq of `first`.
fn first_plus(first: &[u8; BY_AUTHOR_KEY_LEN], n: usize) -> u64 {
    seq_of(first).saturating_add(n.saturating_sub(1) as u64)
}

/// The seq of an author index key.
fn seq_of(key: &[u8; BY_AUTHOR_KEY_LEN]) -> u64 {
    u64::from_be_bytes(key[1 + SEQ_SPACE_LEN..].try_into().unwrap_or_default())
}

fn group_seq_key(group: &GroupId, n: u64) -> [u8; CONTROL_KEY_LEN] {
    let mut k = [0u8; CONTROL_KEY_LEN];
    k[..GROUP_LEN].copy_from_slice(group);
    k[GROUP_LEN..].copy_from_slice(&n.to_be_bytes());
    k
}

/// Where the envelope log stands once the store is open.
#[derive(Debug, Clone, Copy)]
struct LogState {
    /// Where the next envelope goes.
    end: u64,
    /// The watermark stored in the message tree (0 if none).
    watermark: u64,
}

/// Records `end` as the log's watermark. Call only once the log is synced up to `end`.
fn raise_watermark(messages: &sled::Tree, end: u64) -> sled::Result<()> {
    messages.insert(KEY_WATERMARK, &end.to_be_bytes()[..])?;
    Ok(())
}

/// Where the envelope log stands as `messages` (of any format since 3) records it: the stored
/// watermark (0 if none; a malformed one is corrupt in `part`) and where new envelopes go, the
/// end of the file or the watermark if the file is shorter (logged as an error: reading what
/// is missing will fail, and new envelopes cannot be mistaken for it).
fn log_state(
    path: &Path,
    messages: &sled::Tree,
    part: &'static str,
    log: &EnvelopeLog,
) -> Result<LogState, StoreError> {
    let watermark = stored_u64(path, messages, KEY_WATERMARK, part, "log watermark")?.unwrap_or(0);
    let file_len = log
        .len()
        .map_err(|e| open_error(path, sled::Error::Io(e)))?;
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

/// The u64 stored under `key` in `tree`, if any; one of another length is corrupt in `part`,
/// named `what`.
fn stored_u64(
    path: &Path,
    tree: &sled::Tree,
    key: &[u8],
    part: &'static str,
    what: &str,
) -> Result<Option<u64>, StoreError> {
    let Some(v) = tree.get(key).map_err(|e| open_error(path, e))? else {
        return Ok(None);
    };
    decode_u64(&v).map(Some).ok_or_else(|| {
        corrupt_at(
            path,
            part,
            format!("{what} has {} bytes, expected 8", v.len()),
        )
    })
}

/// An author index key read back from `part`, checked for length.
fn author_key(
    path: &Path,
    part: &'static str,
    k: &[u8],
) -> Result<[u8; BY_AUTHOR_KEY_LEN], StoreError> {
    k.try_into().map_err(|_| {
        corrupt_at(
            path,
            part,
            format!("key has {} bytes, expected {BY_AUTHOR_KEY_LEN}", k.len()),
        )
    })
}

/// Opens `messages` (format 4) after a clean shutdown or a crash, and builds the id index.
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
fn load(
    path: &Path,
    db: &sled::Db,
    messages: &sled::Tree,
    log: &EnvelopeLog,
) -> Result<(LogState, IdIndex), StoreError> {
    let open_err = |e| open_error(path, e);
    let io_err = |e| open_error(path, sled::Error::Io(e));
    let LogState { end, watermark } = log_state(path, messages, PART_WATERMARK, log)?;

    let mut index = IdIndex::default();
    let mut rewrites = sled::Batch::default();
    let mut dropped = 0usize;
    for item in messages.scan_prefix([P_AUTHOR]) {
        let (k, v) = item.map_err(open_err)?;
        let key = author_key(path, PART_BY_AUTHOR, &k)?;
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
        let mut kept = std::collections::BTreeMap::new();
        for (seq, record) in numbered(first, &records) {
            if record.loc.end() > watermark && log.read(&record.loc, end).map_err(io_err)?.is_err()
            {
                continue;
            }
            kept.insert(by_author_key_at(&key, seq), *record);
        }
        if kept.len() < records.len() {
            dropped += records.len() - kept.len();
            rewrites.remove(k);
            let mut encoded = std::collections::BTreeMap::new();
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
            index.insert(&record.id, key);
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
    if end > watermark || dropped > 0 {
        log.sync().map_err(io_err)?;
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

/// Where each stored message is, by id: kept in memory, built from the author index when the
/// store opens and extended by every batch written. It names a candidate place for an id; the
/// author index run at that place confirms it (see [`Store::locate`]), so a stale or colliding
/// entry can only make a lookup miss, never return another message.
///
/// 30 to 60 bytes per message: ids by their first 8 bytes, each naming a sequence space by
/// number and a seq. Ids are hashes, but an author picks its envelopes and could make two
/// share their first 8 bytes (2^32 tries); the later one is then kept by its whole id.
#[derive(Debug, Default)]
struct IdIndex {
    /// Author index prefixes (`a` ‖ group ‖ author ‖ epoch), numbered from 0.
    spaces: Vec<[u8; 1 + SEQ_SPACE_LEN]>,
    numbers: std::collections::HashMap<[u8; 1 + SEQ_SPACE_LEN], usize>,
    /// By the first 8 bytes of the id: the first message stored with them.
    by_prefix: std::collections::HashMap<u64, Slot>,
    /// Messages whose first 8 id bytes an earlier message has, by whole id.
    collided: std::collections::HashMap<MessageId, Slot>,
}

/// A place in the author index: a sequence space of [`IdIndex::spaces`] and a seq.
#[derive(Debug, Clone, Copy)]
struct Slot {
    space: usize,
    seq: u64,
}

impl IdIndex {
    /// Records that message `id` is held at author index key `key`.
    fn insert(&mut self, id: &MessageId, key: &[u8; BY_AUTHOR_KEY_LEN]) {
        let mut prefix = [0u8; 1 + SEQ_SPACE_LEN];
        prefix.copy_from_slice(&key[..1 + SEQ_SPACE_LEN]);
        let space = *self.numbers.entry(prefix).or_insert_with(|| {
            self.spaces.push(prefix);
            self.spaces.len() - 1
        });
        let slot = Slot {
            space,
            seq: seq_of(key),
        };
        match self.by_prefix.entry(id_prefix(id)) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(slot);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(*id, slot);
            }
        }
    }

    /// The author index key where message `id` may be held.
    fn candidate(&self, id: &MessageId) -> Option<[u8; BY_AUTHOR_KEY_LEN]> {
        let slot = self
            .collided
            .get(id)
            .or_else(|| self.by_prefix.get(&id_prefix(id)))?;
        let mut key = [0u8; BY_AUTHOR_KEY_LEN];
        key[..1 + SEQ_SPACE_LEN].copy_from_slice(self.spaces.get(slot.space)?);
        key[1 + SEQ_SPACE_LEN..].copy_from_slice(&slot.seq.to_be_bytes());
        Some(key)
    }

    /// Number of messages indexed.
    fn len(&self) -> usize {
        self.by_prefix.len() + self.collided.len()
    }
}

/// The first 8 bytes of an id, the key of [`IdIndex::by_prefix`].
fn id_prefix(id: &MessageId) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&id[..8]);
    u64::from_ne_bytes(first)
}

/// The smallest key greater than every key starting with `prefix`, or
/// `None` if there is none (prefix is all `0xff`).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.last_mut() {
        if *last == u8::MAX {
            next.pop();
        } else {
            *last += 1;
            return Some(next);
        }
    }
    None
}

#[cfg(test)]
mod tests;
