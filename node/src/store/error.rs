//! The store's errors: what failed, in which store, and what an operator can do about it.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{Store, RESERVED_META_PREFIX};

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
        source: EngineError,
    },
    /// The store was written by a development build in a layout this one does not read.
    #[error(
        "the store at {} holds data in `{tree}`, a layout of development builds before store \
         format 4 that this version does not read; start with a new data directory",
        path.display()
    )]
    Unsupported {
        /// Directory of the store.
        path: PathBuf,
        /// The tree of the earlier layout.
        tree: &'static str,
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
        source: EngineError,
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
    /// not known to be durable and the store refuses further writes until it has reopened
    /// its database (see the module docs, "Durability").
    #[error(
        "flushing store at {} to disk failed: {source}; recent writes may be lost and \
         the store refuses writes until it has reopened its database, which it does by \
         itself once the disk has room",
        path.display()
    )]
    FlushFailed {
        /// Directory of the store.
        path: PathBuf,
        /// Underlying engine error.
        #[source]
        source: EngineError,
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
    /// The store is reopening its database after a failed flush; try again in a moment.
    #[error(
        "the store at {} is reopening after a failed flush; try again in a moment",
        path.display()
    )]
    Reopening {
        /// Directory of the store.
        path: PathBuf,
    },
    /// The file system holding the store has less free space than the store keeps
    /// ([`StoreOptions::min_free_bytes`](super::StoreOptions::min_free_bytes)): new messages
    /// are refused until space is freed; reads go on.
    #[error(
        "the disk holding the store at {} is nearly full ({available} bytes free, the store \
         keeps {floor}): new messages are refused until space is freed; reads go on",
        path.display()
    )]
    DiskFull {
        /// Directory of the store.
        path: PathBuf,
        /// Bytes free.
        available: u64,
        /// Bytes the store keeps free.
        floor: u64,
    },
    /// The caller used a `meta-v1` key reserved for the store itself.
    #[error("meta key {key:?} is reserved for the store (prefix {RESERVED_META_PREFIX:?})")]
    ReservedKey {
        /// The refused key.
        key: String,
    },
}

/// A failure of the engine underneath the store: an I/O error, or one the embedded database
/// reported. Its text says what failed; [`EngineError::io_kind`] tells the kind of an I/O
/// failure.
#[derive(Debug)]
pub struct EngineError(sled::Error);

/// sled's own `Clone` turns an I/O error into the `Debug` text of the original, nested once per
/// clone; this keeps its kind and its message.
impl Clone for EngineError {
    fn clone(&self) -> Self {
        match &self.0 {
            sled::Error::Io(e) => EngineError(sled::Error::Io(std::io::Error::new(
                e.kind(),
                e.to_string(),
            ))),
            other => EngineError(other.clone()),
        }
    }
}

impl EngineError {
    /// The kind of the I/O error behind this failure, if it is one.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match &self.0 {
            sled::Error::Io(e) => Some(e.kind()),
            _ => None,
        }
    }

    /// Whether the engine found its own files damaged.
    pub fn is_corruption(&self) -> bool {
        matches!(self.0, sled::Error::Corruption { .. })
    }
}

impl StoreError {
    /// Whether the store's files were found damaged (by the engine when opening them).
    pub fn is_corruption(&self) -> bool {
        match self {
            StoreError::Open { source, .. } => source.is_corruption(),
            _ => false,
        }
    }

    /// Whether this is the file system running out of space, found by the store
    /// ([`StoreError::DiskFull`]) or reported by the operating system.
    pub fn is_disk_full(&self) -> bool {
        let source = match self {
            StoreError::DiskFull { .. } => return true,
            StoreError::Open { source, .. }
            | StoreError::Engine { source, .. }
            | StoreError::FlushFailed { source, .. } => source,
            _ => return false,
        };
        matches!(
            source.io_kind(),
            Some(std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
        )
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            // Without sled's "IO error: " prefix: the context says what was done.
            sled::Error::Io(e) => e.fmt(f),
            other => other.fmt(f),
        }
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            sled::Error::Io(e) => e.source(),
            _ => None,
        }
    }
}

impl From<sled::Error> for EngineError {
    fn from(e: sled::Error) -> Self {
        EngineError(e)
    }
}

impl From<std::io::Error> for EngineError {
    fn from(e: std::io::Error) -> Self {
        EngineError(sled::Error::Io(e))
    }
}

pub(super) fn open_error(path: &Path, source: impl Into<EngineError>) -> StoreError {
    StoreError::Open {
        path: path.to_path_buf(),
        source: source.into(),
    }
}

pub(super) fn engine_at(
    path: &Path,
    op: &'static str,
    source: impl Into<EngineError>,
) -> StoreError {
    StoreError::Engine {
        op,
        path: path.to_path_buf(),
        source: source.into(),
    }
}

pub(super) fn corrupt_at(path: &Path, tree: &'static str, detail: String) -> StoreError {
    StoreError::Corrupt {
        tree,
        path: path.to_path_buf(),
        detail,
    }
}

impl super::Engine {
    pub(super) fn corrupt(&self, tree: &'static str, detail: String) -> StoreError {
        corrupt_at(&self.path, tree, detail)
    }

    pub(super) fn bad_key_len(&self, tree: &'static str, got: usize, want: usize) -> StoreError {
        self.corrupt(tree, format!("key has {got} bytes, expected {want}"))
    }

    pub(super) fn engine(&self, op: &'static str, source: impl Into<EngineError>) -> StoreError {
        engine_at(&self.path, op, source)
    }

    /// `bytes` as an array of `N` bytes, or corrupt in `tree`.
    pub(super) fn array<const N: usize>(
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
}

impl Store {
    pub(super) fn flush_failed(&self, source: EngineError) -> StoreError {
        StoreError::FlushFailed {
            path: self.inner.path.clone(),
            source,
        }
    }
}
