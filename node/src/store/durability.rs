//! Group commit: write tickets, the flusher task and the durability wait (see "Durability"
//! in the store's module docs).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use super::error::EngineError;
use super::keys::KEY_WATERMARK;
use super::{Inner, Store, StoreError};

/// A write that has been applied but may not be on disk yet; see [`Store::wait_for`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct DurableTicket(pub(super) u64);

/// Flush progress published by the flusher task.
#[derive(Debug, Clone, Default)]
pub(super) struct FlushState {
    /// Every write ticket `<= flushed` is durable.
    pub(super) flushed: u64,
    /// Number of successful flushes run by the flusher.
    pub(super) flushes: u64,
    /// Set once a flush failed; the store is then unusable for writes.
    pub(super) failed: Option<EngineError>,
}

/// State shared with the flusher task that does not keep the database open.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// Write tickets handed out; bumped after each applied write.
    pub(super) written: AtomicU64,
    /// Test hook: make the next flush fail.
    #[cfg(test)]
    pub(super) fail_next_flush: std::sync::atomic::AtomicBool,
    /// Test hook: simulate a slow disk by sleeping this long in each flush.
    #[cfg(test)]
    pub(super) flush_delay_ms: AtomicU64,
}

impl Store {
    /// Waits until the write behind `ticket` is flushed to disk.
    pub async fn wait_for(&self, ticket: DurableTicket) -> Result<(), StoreError> {
        self.wait_durable(ticket.0).await
    }

    /// Waits until every write applied before this call is durable (joins
    /// the next group flush). Call at shutdown.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.check_writable()?;
        self.wait_durable(self.note_written()).await
    }

    /// Refuses writes once a flush has failed.
    pub(super) fn check_writable(&self) -> Result<(), StoreError> {
        match &self.inner.state.borrow().failed {
            Some(e) => Err(self.flush_failed(e.clone())),
            None => Ok(()),
        }
    }

    /// Records that a write has been applied; returns its ticket. Any flush
    /// that starts after this call covers the write.
    pub(super) fn note_written(&self) -> u64 {
        self.inner.shared.written.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Waits until a flush covering `ticket` (i.e. started after the ticket
    /// was taken) has completed.
    pub(super) async fn wait_durable(&self, ticket: u64) -> Result<(), StoreError> {
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
}

/// The flusher: waits for a wake-up, then flushes until every ticket
/// handed out so far is covered, publishing progress on `state`.
///
/// `watermark` is the log watermark stored in `messages` when the store was opened.
///
/// It holds the database only through `weak` (and only while flushing), so
/// dropping the last [`Store`] closes the database and stops the flusher.
pub(super) async fn run_flusher(
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
) -> Result<(usize, u64), EngineError> {
    #[cfg(test)]
    if shared.fail_next_flush.swap(false, Ordering::AcqRel) {
        return Err(std::io::Error::other("injected flush failure").into());
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
    tokio::task::spawn_blocking(move || -> Result<(usize, u64), EngineError> {
        let mut raised = watermark;
        if sync_log {
            log.sync()?;
            raise_watermark(&messages, end)?;
            raised = end;
        }
        Ok((db.flush()?, raised))
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string()).into()))
}

/// Records `end` as the log's watermark. Call only once the log is synced up to `end`.
pub(super) fn raise_watermark(messages: &sled::Tree, end: u64) -> sled::Result<()> {
    messages.insert(KEY_WATERMARK, &end.to_be_bytes()[..])?;
    Ok(())
}
