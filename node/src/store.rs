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
//! one tree, so a message and all of its indexes land together) and then
//! wait for a flush that *started after* the write completed. A dedicated
//! flusher task runs one flush at a time; all writers that completed while a
//! flush was running are covered together by the next flush (group commit),
//! so durability costs one `fsync` per batch of concurrent writes, not one per
//! message.
//!
//! Envelopes do not live in sled but in the envelope log, one append-only file
//! in the store's directory (`envelopes-v3.log`); the message's entry in sled
//! says where (offset, length and a BLAKE3 checksum). The order of one
//! message write, and of one flush, is:
//!
//! ```text
//! writer (under the writer lock)          flusher (one cycle)
//!   duplicate and conflict checks           W = log end
//!   append the envelopes at the log end     sync the log (fdatasync)
//!   publish the new log end                 insert `w` = W (the watermark)
//!   apply_batch: entries, indexes, count    flush sled
//!   take a ticket, wait for a flush ──────▶ every ticket taken before the cycle began is durable
//! ```
//!
//! So a stored watermark never covers a log byte that was not synced. sled may
//! persist entries on its own before their envelopes are synced; after a crash,
//! [`Store::open`] checks every message whose envelope starts at or past the
//! watermark against the log and drops those that are not intact (see
//! `recover`). They were never acknowledged. A damaged envelope below the
//! watermark is not dropped: reading it fails with [`StoreError::Corrupt`].
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
//! | `messages-v3`  | `m` ‖ message_id(32)                  | meta_len(4) ‖ caller metadata ‖ offset(8) ‖ len(4) ‖ checksum(16) |
//! |                | `a` ‖ group(16) ‖ author(32) ‖ epoch(8) ‖ seq(8) | message_id(32) × n: seqs `seq..seq+n` |
//! |                | `l` ‖ offset(8)                       | message_id(32) × n: one batch |
//! |                | `c` ‖ `message-count`                 | u64                  |
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
//! The `l` entries (the log index) exist for recovery only: one per batch
//! written since the last flush, keyed by where the batch's envelopes start in
//! the log and listing its messages in log order, so that `open` visits only
//! the envelopes past the watermark. The flush that raises the watermark past a
//! batch removes its entry, so the log index stays as
//! small as the writes of one flush interval. (One entry per message, as first
//! built, cost 8 % of end-to-end throughput: sled splits the rightmost leaf over
//! and over when keys only grow.) Bytes no entry points to (the torn tail of a
//! crashed write, envelopes of dropped messages) are never read.
//!
//! A message, its index entries and the message count live in one
//! tree, `messages-v3`, and are written with one `apply_batch`: sled makes a
//! batch atomic within a tree, and a batch costs about a third less than the
//! transaction over five trees that version 1 used (and a transaction holds a
//! process-wide lock in sled 0.34 for its whole run, as a batch does only while
//! it applies). Message writers take turns on a mutex, so the duplicate and
//! conflict checks read a state no other writer changes before the batch lands,
//! and the log end moves only under it.
//!
//! Envelopes moved out of sled in version 3 because sled rewrites whole tree
//! leaves: a 1 KiB envelope cost about 4 KB of disk writes and a third of the
//! CPU sled spends on a message. The log costs one `write` per batch and one
//! `fdatasync` per flush.
//!
//! The author index (`a`) holds runs: one entry per run of consecutive seqs of
//! one author and epoch written in one batch (at most 128), keyed by the run's
//! first seq, its value the ids in seq order. Runs never overlap (a seq is
//! written only while no run holds it), so the run holding a seq is the entry
//! with the highest key not above it, if it reaches that far: one reverse range
//! step, about what a point lookup costs. A message arriving into a gap gets a
//! run of its own; runs are never merged or rewritten except when recovery drops
//! a message from one. One entry per message, as before, was measured at 5–12 %
//! of end-to-end CPU per message (sled splits the rightmost leaf over and over
//! when keys only grow, as with the log index). An entry of one id, as versions
//! 2 and early 3 wrote, is a run of one, so existing stores read unchanged; a
//! binary from before runs reports a longer run as a corrupt entry instead of
//! misreading it.
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
//! author index already lists them by group; an index entry is a large part of
//! what a message costs to write.
//!
//! A store written by an earlier version is converted when it is opened:
//! version 2 (`messages-v2`, with the envelope inside each message value) by
//! `migrate_v2`, version 1 (`messages-v1`, `msg-meta-v1`, `by-author-v1`,
//! `by-group-v1` and two counters in `meta-v1`) by `migrate_v1` into
//! version 2 first.
//!
//! Keys in `meta-v1` starting with [`RESERVED_META_PREFIX`] are reserved for
//! the store itself.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use envelope_log::{EnvelopeLog, Location};

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

/// Messages, their indexes and counters (see the module docs for its key spaces).
const TREE_MESSAGES: &str = "messages-v3";
/// Key spaces of `messages-v3`, as named in errors.
const PART_MESSAGES: &str = "messages-v3 (messages)";
const PART_BY_AUTHOR: &str = "messages-v3 (author index)";
const PART_BY_OFFSET: &str = "messages-v3 (log index)";
const PART_COUNTERS: &str = "messages-v3 (counters)";
/// Key prefixes of the key spaces of `messages-v3`.
const P_MESSAGE: u8 = b'm';
const P_AUTHOR: u8 = b'a';
const P_OFFSET: u8 = b'l';
/// Number of messages stored (u64 big-endian).
const KEY_MESSAGE_COUNT: &[u8] = b"cmessage-count";
/// The envelope log's watermark (u64 big-endian): every byte of the log below it is durable.
const KEY_WATERMARK: &[u8] = b"w";
/// The version 2 message tree, converted and dropped by [`Store::open`].
const V2_MESSAGES: &str = "messages-v2";
/// Version 1 trees, converted and dropped by [`Store::open`].
const V1_MESSAGES: &str = "messages-v1";
const V1_MSG_META: &str = "msg-meta-v1";
const V1_BY_AUTHOR: &str = "by-author-v1";
const V1_BY_GROUP: &str = "by-group-v1";
const V1_KEY_NEXT_ORDER: &str = "store/next-local-order";
const V1_KEY_MESSAGE_COUNT: &str = "store/message-count";
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
/// Log index key: prefix ‖ offset.
const BY_OFFSET_KEY_LEN: usize = 1 + 8;
/// Length of the metadata length that starts a stored message.
const META_LEN_LEN: usize = 4;
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
    /// The message count as last written; changed only by a holder of `writer`.
    message_count: AtomicU64,
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
        let log_state = recover(path, &db, &messages, &log)?;
        let log_state = migrate_v2(path, &db, &messages, &log, log_state)?;
        let count = read_count(path, &messages)?;

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
            message_count: AtomicU64::new(count),
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
    /// log with one write, then writes their entries, index entries and the message count in
    /// one atomic batch; one outcome per message, in order. Does not wait for durability.
    fn apply_messages(&self, batch: &[NewMessage<'_>]) -> Result<Vec<Inserted>, StoreError> {
        let tree = &self.inner.messages;
        let read = |e| self.engine("inserting messages", e);
        // A panic while holding the lock cannot leave the count ahead of the tree: it is
        // updated only after the batch is applied. Nor can it leave the log end behind bytes
        // an entry points to: it moves before the batch is applied.
        let _writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let log_start = self.inner.log_end.load(Ordering::Relaxed);
        // The envelopes to append, back to back from `log_start`.
        let mut envelopes = Vec::new();
        let mut writes = sled::Batch::default();
        // Earlier messages of this batch, which the tree does not show yet.
        let mut ids = std::collections::HashSet::new();
        // The same ids in log order: the batch's log index entry.
        let mut logged = Vec::new();
        // The new messages by place in their author's sequence space: the author index runs.
        let mut seqs = std::collections::BTreeMap::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        for m in batch {
            let key = message_key(&m.id);
            if ids.contains(&m.id) || tree.contains_key(&key[..]).map_err(read)? {
                outcomes.push(Inserted::Duplicate);
                continue;
            }
            let author_key = by_author_key(&m.group, &m.author, m.epoch, m.seq);
            let existing = match seqs.get(&author_key) {
                Some(id) => Some(*id),
                None => self.held_at(&author_key)?,
            };
            if let Some(existing) = existing {
                if existing != m.id {
                    outcomes.push(Inserted::Conflict);
                    continue;
                }
                // Index points at this id but the message is missing: cannot happen with
                // atomic batches; heal by writing the message again (its index run stays).
                tracing::warn!(
                    tree = PART_BY_AUTHOR,
                    "index entry without message; rewriting the message"
                );
            }
            let offset = log_start.saturating_add(envelopes.len() as u64);
            let value = Location::new(offset, m.envelope)
                .and_then(|loc| message_value(m.meta, &loc.encode()))
                .ok_or_else(|| {
                    self.corrupt(
                        PART_MESSAGES,
                        "message metadata or envelope over 4 GiB".into(),
                    )
                })?;
            envelopes.extend_from_slice(m.envelope);
            writes.insert(&key[..], value);
            logged.extend_from_slice(&m.id);
            ids.insert(m.id);
            if existing.is_none() {
                seqs.insert(author_key, m.id);
            }
            outcomes.push(Inserted::New);
        }
        if !ids.is_empty() {
            self.inner
                .log
                .write_at(log_start, &envelopes)
                .map_err(|e| self.engine("appending envelopes", sled::Error::Io(e)))?;
            // Published before the batch: a flush that sees an entry of this batch syncs
            // these bytes, and one that does not may still cover them.
            let log_end = log_start.saturating_add(envelopes.len() as u64);
            self.inner.log_end.store(log_end, Ordering::Release);
            for (key, run) in author_runs(&seqs, MAX_RUN) {
                writes.insert(&key[..], run);
            }
            writes.insert(&offset_key(log_start)[..], logged);
            let count = self.inner.message_count.load(Ordering::Relaxed);
            let count = count.saturating_add(ids.len() as u64);
            writes.insert(KEY_MESSAGE_COUNT, &count.to_be_bytes()[..]);
            tree.apply_batch(writes)
                .map_err(|e| self.engine("inserting messages", e))?;
            self.inner.message_count.store(count, Ordering::Relaxed);
        }
        Ok(outcomes)
    }

    /// The stored envelope of a message.
    pub fn message(&self, id: &MessageId) -> Result<Option<Vec<u8>>, StoreError> {
        self.stored_message(id, "reading a message", |_, loc| {
            self.read_envelope(id, &loc)
        })
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
        self.stored_message(id, "reading message metadata", |meta, _| Ok(meta.to_vec()))
    }

    /// Reads the entry of message `id` and hands its metadata and the location of its
    /// envelope to `take`.
    fn stored_message<T>(
        &self,
        id: &MessageId,
        op: &'static str,
        take: impl FnOnce(&[u8], Location) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let Some(v) = self
            .inner
            .messages
            .get(message_key(id))
            .map_err(|e| self.engine(op, e))?
        else {
            return Ok(None);
        };
        let (meta, loc) = split_message_value(&v).ok_or_else(|| {
            self.corrupt(
                PART_MESSAGES,
                format!(
                    "the entry of message {} ({} bytes) is not a metadata length, \
                     metadata and envelope location",
                    hex::encode(id),
                    v.len()
                ),
            )
        })?;
        take(meta, loc).map(Some)
    }

    /// Reads the envelope of message `id` from the log and checks it against its checksum.
    fn read_envelope(&self, id: &MessageId, loc: &Location) -> Result<Vec<u8>, StoreError> {
        // Loaded after the entry was read, so it covers the entry's bytes.
        let end = self.inner.log_end.load(Ordering::Acquire);
        match self.inner.log.read(loc, end) {
            Ok(Ok(envelope)) => Ok(envelope),
            Ok(Err(fault)) => Err(self.corrupt(
                envelope_log::FILE_NAME,
                format!(
                    "the envelope of message {} at offset {} ({} bytes) {fault}",
                    hex::encode(id),
                    loc.offset,
                    loc.len
                ),
            )),
            Err(e) => Err(self.engine("reading an envelope", sled::Error::Io(e))),
        }
    }

    /// Whether a message with this id is stored.
    pub fn has_message(&self, id: &MessageId) -> Result<bool, StoreError> {
        self.inner
            .messages
            .contains_key(message_key(id))
            .map_err(|e| self.engine("reading a message", e))
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

    /// The id held at `key` (an author index key naming one seq): the run holding a seq is
    /// the one starting at the highest key not above it, if it reaches that far.
    fn held_at(&self, key: &[u8; BY_AUTHOR_KEY_LEN]) -> Result<Option<MessageId>, StoreError> {
        let Some((k, v)) = self.run_at_or_below(key)? else {
            return Ok(None);
        };
        let (first, ids) = self.run(&k, &v)?;
        // `first` is at most the seq asked for: the key is not above it.
        let held = usize::try_from(seq_of(key) - first)
            .ok()
            .and_then(|n| n.checked_mul(ID_LEN))
            .and_then(|at| ids.get(at..at.checked_add(ID_LEN)?));
        Ok(held.map(|id| id.try_into().unwrap_or_default()))
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

    /// Calls `each(seq, id)` for the held messages of `author` in `epoch` of `group` with
    /// seq `from` or above, ascending, until it returns `false`.
    fn each_held(
        &self,
        group: &GroupId,
        author: &NodeId,
        epoch: u64,
        from: u64,
        mut each: impl FnMut(u64, MessageId) -> Result<bool, StoreError>,
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
            let (first, ids) = self.run(&k, &v)?;
            for (seq, id) in run_ids(first, ids) {
                if seq >= from && !each(seq, id)? {
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
            self.each_held(group, author, epoch, from_seq, |seq, id| {
                out.push((seq, id));
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
        self.each_held(group, author, epoch, first, |_, id| {
            let envelope = self.message(&id)?.ok_or_else(|| {
                self.corrupt(
                    PART_MESSAGES,
                    format!("indexed message {} is missing", hex::encode(id)),
                )
            })?;
            total = total.saturating_add(envelope.len());
            if total > max_bytes && !out.is_empty() {
                return Ok(false);
            }
            out.push(envelope);
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
            let (first, ids) = self.run(&k, &v)?;
            for (seq, id) in run_ids(first, ids) {
                each(author, epoch, seq, id);
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

    /// Number of stored messages (kept as a counter; O(1)).
    pub fn message_count(&self) -> usize {
        usize::try_from(self.inner.message_count.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
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
                let mut held = std::collections::BTreeMap::new();
                for m in &r.messages {
                    let at = by_author_key(&r.group, &m.author, m.epoch, m.seq);
                    if store.held_at(&at)? == Some(m.id) {
                        held.insert(at, m.id);
                    }
                }
                for (first, run) in author_runs(&held, MAX_RECEIPT_RUN) {
                    let last = first_plus(&first, run.len() / ID_LEN);
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

    /// An author index entry: a run of held messages, as its first seq and the ids of that
    /// seq and the ones after it.
    fn run<'v>(&self, k: &[u8], v: &'v [u8]) -> Result<(u64, &'v [u8]), StoreError> {
        let first = self.parse_by_author_key(k)?.3;
        let n = v.len() / ID_LEN;
        if v.is_empty() || v.len() % ID_LEN != 0 || first.checked_add(n as u64 - 1).is_none() {
            return Err(self.corrupt(
                PART_BY_AUTHOR,
                format!(
                    "value has {} bytes, expected {ID_LEN}-byte message ids of seqs from {first}",
                    v.len()
                ),
            ));
        }
        Ok((first, v))
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

/// Most ids in one author index entry.
const MAX_RUN: usize = 128;

/// Messages given by their author index keys, as runs of consecutive seqs of one author and
/// epoch, each at most `max` long (the author index uses [`MAX_RUN`]): the key of each run's
/// first seq, and the run's ids in seq order.
fn author_runs(
    seqs: &std::collections::BTreeMap<[u8; BY_AUTHOR_KEY_LEN], MessageId>,
    max: usize,
) -> Vec<([u8; BY_AUTHOR_KEY_LEN], Vec<u8>)> {
    let mut runs: Vec<([u8; BY_AUTHOR_KEY_LEN], Vec<u8>)> = Vec::new();
    let mut last: Option<&[u8; BY_AUTHOR_KEY_LEN]> = None;
    for (key, id) in seqs {
        let follows = last.is_some_and(|prev| {
            prev[..1 + SEQ_SPACE_LEN] == key[..1 + SEQ_SPACE_LEN]
                && seq_of(prev).checked_add(1) == Some(seq_of(key))
        });
        match runs.last_mut() {
            Some((_, ids)) if follows && ids.len() < max * ID_LEN => ids.extend_from_slice(id),
            _ => runs.push((*key, id.to_vec())),
        }
        last = Some(key);
    }
    runs
}

/// The `(seq, id)` pairs of a run starting at seq `first`; stops at the last seq rather
/// than overflow (a run checked by `Store::run` never reaches that far).
fn run_ids(first: u64, ids: &[u8]) -> impl Iterator<Item = (u64, MessageId)> + '_ {
    ids.chunks_exact(ID_LEN)
        .enumerate()
        .map_while(move |(i, id)| {
            let seq = first.checked_add(u64::try_from(i).ok()?)?;
            Some((seq, id.try_into().unwrap_or_default()))
        })
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

fn message_key(id: &MessageId) -> [u8; 1 + ID_LEN] {
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
fn raise_watermark(messages: &sled::Tree, end: u64) -> sled::Result<()> {
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
fn offset_key(offset: u64) -> [u8; BY_OFFSET_KEY_LEN] {
    let mut k = [0u8; BY_OFFSET_KEY_LEN];
    k[0] = P_OFFSET;
    k[1..].copy_from_slice(&offset.to_be_bytes());
    k
}

/// meta_len ‖ meta ‖ `rest`: a stored message, `rest` being the location of its envelope
/// (format 3, [`Location::encode`]) or the envelope itself (format 2); `None` if the metadata
/// is too long to describe.
fn message_value(meta: &[u8], rest: &[u8]) -> Option<Vec<u8>> {
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
fn split_message_value(v: &[u8]) -> Option<(&[u8], Location)> {
    let (meta, loc) = split_meta(v)?;
    Some((meta, Location::decode(loc)?))
}

/// Where the envelope log stands once the store is open.
#[derive(Debug, Clone, Copy)]
struct LogState {
    /// Where the next envelope goes.
    end: u64,
    /// The watermark stored in `messages-v3` (0 if none).
    watermark: u64,
}

/// The message count stored in `messages` (0 before the first message).
fn read_count(path: &Path, messages: &sled::Tree) -> Result<u64, StoreError> {
    match messages
        .get(KEY_MESSAGE_COUNT)
        .map_err(|e| open_error(path, e))?
    {
        Some(v) => decode_u64(&v).ok_or_else(|| {
            corrupt_at(
                path,
                PART_COUNTERS,
                format!("message-count has {} bytes, expected 8", v.len()),
            )
        }),
        None => Ok(0),
    }
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
fn recover(
    path: &Path,
    db: &sled::Db,
    messages: &sled::Tree,
    log: &EnvelopeLog,
) -> Result<LogState, StoreError> {
    let open_err = |e| open_error(path, e);
    let watermark = match messages.get(KEY_WATERMARK).map_err(open_err)? {
        Some(v) => decode_u64(&v).ok_or_else(|| {
            corrupt_at(
                path,
                PART_COUNTERS,
                format!("log watermark has {} bytes, expected 8", v.len()),
            )
        })?,
        None => 0,
    };
    let file_len = log.len().map_err(|e| open_err(sled::Error::Io(e)))?;
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
    let end = file_len.max(watermark);

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
        if v.is_empty() || v.len() % ID_LEN != 0 {
            return Err(corrupt_at(
                path,
                PART_BY_OFFSET,
                format!("value has {} bytes, expected message ids", v.len()),
            ));
        }
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
            let (_, loc) = split_message_value(&value).ok_or_else(|| {
                corrupt_at(
                    path,
                    PART_MESSAGES,
                    format!("message {} is malformed", hex::encode(id)),
                )
            })?;
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
            let Ok(key) = <[u8; BY_AUTHOR_KEY_LEN]>::try_from(k.as_ref()) else {
                return Err(corrupt_at(
                    path,
                    PART_BY_AUTHOR,
                    format!("key has {} bytes, expected {BY_AUTHOR_KEY_LEN}", k.len()),
                ));
            };
            removals.remove(k);
            let kept: std::collections::BTreeMap<_, _> = run_ids(seq_of(&key), &v)
                .filter(|(_, id)| !dropped.contains(id))
                .map(|(seq, id)| {
                    let mut at = key;
                    at[1 + SEQ_SPACE_LEN..].copy_from_slice(&seq.to_be_bytes());
                    (at, id)
                })
                .collect();
            for (key, run) in author_runs(&kept, MAX_RUN) {
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
    raise_watermark(messages, end).map_err(open_err)?;
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
/// missing ([`recover`] has run first and dropped converted messages whose envelopes did not
/// reach the disk). Envelopes are written to the log before the entries that point at them,
/// as on the write path. `messages-v2` is dropped only once everything copied is durable: the
/// log synced, the watermark raised past it and the tree flushed.
fn migrate_v2(
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
    raise_watermark(messages, end).map_err(open_err)?;
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
fn migrate_v1(db: &sled::Db, meta: &sled::Tree) -> sled::Result<()> {
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
