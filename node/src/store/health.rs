//! What the store tells about its own state: whether it can write, how much room the disk has,
//! what is damaged, and what the last open found and repaired.

use std::path::{Path, PathBuf};

use super::{Store, StoreError};

/// What opening the store found and did about it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct OpenReport {
    /// Half-written files sled left behind (a snapshot interrupted by a full disk or a
    /// crash), removed.
    pub removed: Vec<String>,
    /// sled's files that could not be used (a damaged `conf` or snapshot, or its whole index),
    /// moved into a directory beside them, named here.
    pub set_aside: Vec<PathBuf>,
    /// Whether the index was rebuilt from the envelope log because sled's files did not open.
    pub rebuilt: bool,
    /// Messages whose envelopes had not reached the disk before a crash, dropped (they were
    /// never acknowledged).
    pub dropped: usize,
    /// Messages, control events and audit records found in the envelope log but not in the
    /// index, indexed again.
    pub replayed: usize,
    /// Whether sled's files had lost entries its own recovery passed over (damage), so that
    /// the whole envelope log was indexed again.
    pub index_damaged: bool,
    /// Bytes at the end of the envelope log that were not whole frames (a write torn by a
    /// crash), cut off.
    pub torn_bytes: u64,
}

impl OpenReport {
    /// Logs what was done: repairs at error level (an operator should know), the ordinary
    /// recovery from a crash at warning or info level.
    pub(super) fn log(&self, path: &Path) {
        for file in &self.removed {
            tracing::warn!(path = %path.display(), file = %file, "removed a file sled left half-written");
        }
        for aside in &self.set_aside {
            tracing::error!(
                path = %path.display(),
                aside = %aside.display(),
                "set damaged files of the store's index aside"
            );
        }
        if self.rebuilt {
            tracing::error!(
                path = %path.display(),
                replayed = self.replayed,
                "the store's index did not open and was rebuilt from the envelope log; peer \
                 pins, accounts and receipts are not in the log: check them"
            );
        } else if self.index_damaged {
            tracing::error!(
                path = %path.display(),
                replayed = self.replayed,
                "the store's index was damaged; what it lost was indexed again from the \
                 envelope log"
            );
        } else if self.replayed > 0 {
            tracing::info!(path = %path.display(), replayed = self.replayed, "indexed what the envelope log held beyond the index");
        }
        if self.dropped > 0 {
            tracing::warn!(
                path = %path.display(),
                dropped = self.dropped,
                "dropped messages whose envelopes did not reach the disk before a crash \
                 (they were never acknowledged, to peers or through the API)"
            );
        }
        if self.torn_bytes > 0 {
            tracing::warn!(path = %path.display(), bytes = self.torn_bytes, "cut off a write to the envelope log torn by a crash");
        }
    }
}

/// The store's state, for status reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// Why the store refuses writes, while a failed flush waits for the database to reopen.
    pub failed: Option<String>,
    /// Free bytes on the file system holding the store, if they could be measured.
    pub free_bytes: Option<u64>,
    /// Free bytes the store keeps; below them new messages are refused.
    pub min_free_bytes: u64,
    /// Messages found damaged, waiting to be fetched again from peers.
    pub damaged: usize,
    /// Times the database was reopened after a failed flush since the store was opened.
    pub reopened: u64,
    /// Why the last write failed (the disk full, an I/O error), while none has succeeded since.
    pub write_failed: Option<String>,
    /// When the last flush to disk succeeded, if one has since the store was opened.
    pub last_flush: Option<std::time::SystemTime>,
    /// Flushes since the store was opened.
    pub flushes: u64,
    /// What the last open found and did.
    pub opened: OpenReport,
}

impl Health {
    /// The health of a store that has just opened with `report`, and has nothing else to say.
    pub fn from_report(report: &OpenReport) -> Health {
        Health {
            failed: None,
            free_bytes: None,
            min_free_bytes: 0,
            damaged: 0,
            reopened: 0,
            write_failed: None,
            last_flush: None,
            flushes: 0,
            opened: report.clone(),
        }
    }

    /// Whether the free space is below what the store keeps.
    pub fn low_space(&self) -> bool {
        self.free_bytes
            .is_some_and(|free| free < self.min_free_bytes)
    }

    /// Whether anything needs an operator's attention.
    pub fn is_healthy(&self) -> bool {
        self.failed.is_none()
            && self.write_failed.is_none()
            && !self.low_space()
            && self.damaged == 0
    }
}

impl Store {
    /// The store's state now.
    pub fn health(&self) -> Health {
        let state = self.inner.state.borrow().clone();
        let damaged = self.engine().map(|e| e.damaged_count()).unwrap_or(0);
        let failed = match (&state.failed, self.engine()) {
            (Some(e), _) => Some(format!(
                "a flush failed ({e}); writes are refused until the store reopens"
            )),
            (None, Err(StoreError::Reopening { .. })) => {
                Some("reopening after a failed flush".into())
            }
            _ => None,
        };
        Health {
            failed,
            free_bytes: self.free_space(true),
            min_free_bytes: self.inner.options.min_free_bytes,
            damaged,
            reopened: state.reopened,
            write_failed: self
                .inner
                .shared
                .write_error
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
            last_flush: state.last_flush,
            flushes: state.flushes,
            opened: self
                .inner
                .opened
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
        }
    }
}
