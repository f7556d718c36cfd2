//! Group commit: write tickets, the flusher task and the durability wait (see "Durability"
//! in the store's module docs); after a failed flush, reopening the database once the disk
//! allows it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use tokio::sync::{mpsc, watch};

use super::error::EngineError;
use super::keys::KEY_WATERMARK;
use super::{Engine, Inner, Store, StoreError};

/// How often a store whose flush failed tries to reopen its database.
const REOPEN_INTERVAL: Duration = Duration::from_secs(1);
/// How long a reopen waits for reads of the failed database to finish.
const REOPEN_WAIT: Duration = Duration::from_secs(10);
/// The free space a store whose flush failed waits for before it reopens, unless it keeps
/// less ([`StoreOptions::min_free_bytes`](super::StoreOptions::min_free_bytes)): room for the
/// small writes reads need (audit records); new messages wait for the whole free space the
/// store keeps.
const REOPEN_MIN_FREE: u64 = 4 * 1024 * 1024;
/// How long a measurement of the free space is used.
const SPACE_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// What the watermark entry records: the log end below which every byte is synced, and what
/// the index held when that end was noted (under the writer lock, so that every message,
/// control event and audit record counted lies below it). Recovery compares the counts with
/// what it finds, which tells damage to sled's files that its own recovery passed over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Mark {
    pub(super) end: u64,
    pub(super) messages: u64,
    pub(super) controls: u64,
    pub(super) last_audit: u64,
}

impl Mark {
    pub(super) const LEN: usize = 32;

    /// end ‖ messages ‖ control events ‖ last audit seq, each u64 big-endian.
    pub(super) fn encode(&self) -> [u8; Mark::LEN] {
        let mut out = [0u8; Mark::LEN];
        for (i, n) in [self.end, self.messages, self.controls, self.last_audit]
            .into_iter()
            .enumerate()
        {
            out[i * 8..i * 8 + 8].copy_from_slice(&n.to_be_bytes());
        }
        out
    }

    pub(super) fn decode(b: &[u8]) -> Option<Mark> {
        let b: &[u8; Mark::LEN] = b.try_into().ok()?;
        let n = |i: usize| -> Option<u64> {
            Some(u64::from_be_bytes(
                b.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        Some(Mark {
            end: n(0)?,
            messages: n(1)?,
            controls: n(2)?,
            last_audit: n(3)?,
        })
    }
}

impl Engine {
    /// The log end and the index's counts, noted together under the writer lock.
    pub(super) fn mark_now(&self) -> Mark {
        let _writer = self.lock_writer();
        Mark {
            end: self.log_end.load(Ordering::Acquire),
            messages: self.message_count() as u64,
            controls: self.control_count.load(Ordering::Acquire),
            last_audit: self.last_audit.load(Ordering::Acquire),
        }
    }
}

/// A write that has been applied but may not be on disk yet; see [`Store::wait_for`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct DurableTicket(pub(super) u64);

/// Flush progress published by the flusher task.
#[derive(Debug, Clone, Default)]
pub(super) struct FlushState {
    /// Every write ticket `<= flushed` is durable, except those in `lost`.
    pub(super) flushed: u64,
    /// Number of successful flushes run by the flusher.
    pub(super) flushes: u64,
    /// Set while the store is failed: a flush failed and the database has not been reopened
    /// yet. Writes are refused meanwhile.
    pub(super) failed: Option<EngineError>,
    /// The tickets of the last failure (taken after the last good flush, before the reopen):
    /// never durable, whatever `flushed` says.
    pub(super) lost: Option<(u64, u64, EngineError)>,
    /// Times the database was reopened after a failed flush.
    pub(super) reopened: u64,
    /// When the last flush succeeded (wall clock, for status reports).
    pub(super) last_flush: Option<std::time::SystemTime>,
}

/// State shared with the flusher task that does not keep the database open.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// Write tickets handed out; bumped after each applied write.
    pub(super) written: AtomicU64,
    /// Set by a write only sled holds (not framed in the envelope log), before its ticket:
    /// the next flush must flush sled too.
    pub(super) sled_dirty: AtomicBool,
    /// Whether the disk was below the free-space floor at the last check.
    pub(super) low_space: AtomicBool,
    /// Why the last write failed, while no write has succeeded since (see
    /// [`Store::note_write`]).
    pub(super) write_error: std::sync::Mutex<Option<String>>,
    /// When the free space was last measured, and what it was.
    pub(super) space: std::sync::Mutex<Option<(Instant, u64)>>,
    /// How long each successful flush took.
    pub(super) flush_times: FlushTimes,
    /// Test hook: make the next flush fail.
    #[cfg(test)]
    pub(super) fail_next_flush: AtomicBool,
    /// Test hook: simulate a slow disk by sleeping this long in each flush.
    #[cfg(test)]
    pub(super) flush_delay_ms: AtomicU64,
}

/// The durations of successful flushes, in seconds (a Prometheus histogram, shared with the
/// node's metrics).
#[derive(Debug, Clone)]
pub(super) struct FlushTimes(pub(super) Histogram);

impl Default for FlushTimes {
    fn default() -> Self {
        // 0.25 ms to about 4 s: an SSD's fdatasync to a disk that stalls.
        FlushTimes(Histogram::new(exponential_buckets(0.000_25, 2.0, 15)))
    }
}

impl Store {
    /// The durations of the store's successful flushes since it opened, in seconds.
    pub fn flush_times(&self) -> Histogram {
        self.inner.shared.flush_times.0.clone()
    }

    /// Waits until the write behind `ticket` is flushed to disk.
    pub async fn wait_for(&self, ticket: DurableTicket) -> Result<(), StoreError> {
        self.wait_durable(ticket.0).await
    }

    /// Waits until every write applied before this call is durable, sled's own included
    /// (joins the next group flush). Call at shutdown.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.check_writable()?;
        self.wait_durable(self.note_written(true)).await
    }

    /// Starts a flush covering every write applied before this call, without waiting for it
    /// (if one is running, the next one covers them). [`Store::wait_for`] on such a write's
    /// ticket then returns as soon as that flush has.
    pub fn flush_soon(&self) {
        // Full: a wake-up is already pending. Closed: the flusher has stopped; a later wait
        // reports it.
        let _ = self.inner.wake.try_send(());
    }

    /// Refuses a write that must follow the write behind `ticket`, if that one can no longer
    /// become durable: the store is failed, or a failed flush lost it (see
    /// [`Store::stage_messages_after`]).
    pub(super) fn check_not_lost(&self, ticket: DurableTicket) -> Result<(), StoreError> {
        let state = self.inner.state.borrow();
        if let Some(e) = &state.failed {
            return Err(self.flush_failed(e.clone()));
        }
        match &state.lost {
            Some((from, to, e)) if (*from..=*to).contains(&ticket.0) => {
                Err(self.flush_failed(e.clone()))
            }
            _ => Ok(()),
        }
    }

    /// Refuses writes while the store is failed.
    pub(super) fn check_writable(&self) -> Result<(), StoreError> {
        match &self.inner.state.borrow().failed {
            Some(e) => Err(self.flush_failed(e.clone())),
            None => Ok(()),
        }
    }

    /// Whether the store would take new messages now: it is not failed, and the disk has the
    /// free space it keeps. The node asks before it gives a post its seq.
    pub fn check_room(&self) -> Result<(), StoreError> {
        self.check_writable()?;
        self.check_free_space()
    }

    /// Refuses new messages while the file system holding the store has less free space than
    /// the store keeps. The free space is measured at most every [`SPACE_CHECK_INTERVAL`].
    pub(super) fn check_free_space(&self) -> Result<(), StoreError> {
        let floor = self.inner.options.min_free_bytes;
        if floor == 0 {
            return Ok(());
        }
        match self.free_space(false) {
            Some(available) if available < floor => Err(StoreError::DiskFull {
                path: self.inner.path.clone(),
                available,
                floor,
            }),
            _ => Ok(()),
        }
    }

    /// The free bytes of the file system holding the store: measured now if `fresh` or if
    /// the last measurement is older than [`SPACE_CHECK_INTERVAL`], else the last one. Every
    /// measurement is what [`Store::check_free_space`] goes by next; entering and leaving the
    /// state below the floor is logged. `None` if it cannot be measured.
    pub(super) fn free_space(&self, fresh: bool) -> Option<u64> {
        let mut last = self
            .inner
            .shared
            .space
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((at, available)) = *last {
            if !fresh && at.elapsed() < SPACE_CHECK_INTERVAL {
                return Some(available);
            }
        }
        let available = match fs2::available_space(&self.inner.path) {
            Ok(available) => available,
            Err(e) => {
                tracing::warn!(path = %self.inner.path.display(), error = %e, "cannot measure free space");
                return None;
            }
        };
        *last = Some((Instant::now(), available));
        let floor = self.inner.options.min_free_bytes;
        let low = available < floor;
        let was = self.inner.shared.low_space.swap(low, Ordering::AcqRel);
        if low && !was {
            tracing::error!(
                path = %self.inner.path.display(),
                available,
                floor,
                "the disk holding the store is nearly full: new messages are refused until \
                 space is freed; reads go on"
            );
        } else if !low && was {
            tracing::info!(path = %self.inner.path.display(), available, "disk space freed; new messages are accepted again");
        }
        Some(available)
    }

    /// Notes how a write went, for [`Store::health`]: a failure is kept (and logged at error
    /// level when it is the first of a run) until a write succeeds again.
    pub(super) fn note_write<T>(&self, result: &Result<T, StoreError>) {
        let mut last = self
            .inner
            .shared
            .write_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match result {
            Ok(_) => {
                if last.take().is_some() {
                    tracing::info!(path = %self.inner.path.display(), "the store writes again");
                }
            }
            Err(e) => {
                if last.is_none() {
                    tracing::error!(
                        path = %self.inner.path.display(),
                        error = %e,
                        "a write to the store failed; it is refused until one succeeds again"
                    );
                }
                *last = Some(e.to_string());
            }
        }
    }

    /// Records that a write has been applied; returns its ticket. Any flush that starts after
    /// this call covers the write. `sled`: whether sled holds the write alone (it is not framed
    /// in the envelope log), so that the flush must flush sled too.
    pub(super) fn note_written(&self, sled: bool) -> u64 {
        if sled {
            self.inner.shared.sled_dirty.store(true, Ordering::SeqCst);
        }
        self.inner.shared.written.fetch_add(1, Ordering::SeqCst) + 1
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
        if let Some((from, to, e)) = &s.lost {
            if (*from..=*to).contains(&ticket) {
                return Some(Err(self.flush_failed(e.clone())));
            }
        }
        if s.flushed >= ticket {
            Some(Ok(()))
        } else {
            s.failed.as_ref().map(|e| Err(self.flush_failed(e.clone())))
        }
    }
}

/// The flusher: waits for a wake-up, then flushes until every ticket
/// handed out so far is covered, publishing progress on `state`. After a failed flush it
/// reopens the database (see [`reopen`]) and goes on.
///
/// It holds the database only through `weak` (and only while flushing), so
/// dropping the last [`Store`] closes the database and stops the flusher.
pub(super) async fn run_flusher(
    weak: Weak<Inner>,
    shared: Arc<Shared>,
    mut wake: mpsc::Receiver<()>,
    state: watch::Sender<FlushState>,
) {
    let mut flushed = 0u64;
    while wake.recv().await.is_some() {
        loop {
            // Let writers that are about to finish join this flush.
            tokio::task::yield_now().await;
            // Every write that took a ticket <= target completed before
            // this load, hence before the flush below starts.
            let target = shared.written.load(Ordering::SeqCst);
            if target <= flushed {
                break;
            }
            let Some(inner) = weak.upgrade() else { return };
            let started = Instant::now();
            let result = match inner.engine() {
                Ok(engine) => flush_once(engine, &shared).await,
                Err(e) => Err(EngineError::from(std::io::Error::other(e.to_string()))),
            };
            let path = inner.path.clone();
            // Release the database before waking waiters, so a caller that
            // drops its Store right after a write really closes it.
            drop(inner);
            match result {
                Ok(bytes) => {
                    flushed = target;
                    shared
                        .flush_times
                        .0
                        .observe(started.elapsed().as_secs_f64());
                    tracing::trace!(
                        covered = target,
                        bytes,
                        elapsed = ?started.elapsed(),
                        "store flushed"
                    );
                    state.send_modify(|s| {
                        s.flushed = target;
                        s.flushes += 1;
                        s.last_flush = Some(std::time::SystemTime::now());
                    });
                }
                Err(e) => {
                    tracing::error!(
                        path = %path.display(),
                        error = %e,
                        "store flush failed: refusing writes until the database is reopened, \
                         which is tried every second once the disk has room"
                    );
                    state.send_modify(|s| s.failed = Some(e.clone()));
                    let Some(reopened_at) = reopen_when_possible(&weak, &shared).await else {
                        return;
                    };
                    tracing::info!(path = %path.display(), "store reopened after a failed flush; writes are accepted again");
                    state.send_modify(|s| {
                        s.lost = Some((flushed + 1, reopened_at, e));
                        s.failed = None;
                        s.flushed = reopened_at;
                        s.reopened += 1;
                    });
                    flushed = reopened_at;
                }
            }
        }
    }
}

/// Tries to reopen the database every [`REOPEN_INTERVAL`] until it works; returns the
/// written ticket count at the moment it did (every ticket up to it belongs to the failed
/// database), or `None` once the store is dropped.
async fn reopen_when_possible(weak: &Weak<Inner>, shared: &Arc<Shared>) -> Option<u64> {
    let mut last_reason = String::new();
    loop {
        tokio::time::sleep(REOPEN_INTERVAL).await;
        let inner = weak.upgrade()?;
        let shared = shared.clone();
        let attempt = tokio::task::spawn_blocking(move || reopen(&inner, &shared)).await;
        let reason = match attempt {
            Ok(Ok(reopened_at)) => return Some(reopened_at),
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("the reopen did not finish: {e}"),
        };
        if reason != last_reason {
            tracing::warn!(reason = %reason, "the store cannot reopen yet");
            last_reason = reason;
        }
    }
}

/// Closes the failed database and opens it again, as a restart would (recovery included), once
/// the disk has some room ([`REOPEN_MIN_FREE`], or the free space the store keeps if that is
/// less). Writers get [`StoreError::Reopening`] meanwhile.
fn reopen(inner: &Inner, shared: &Shared) -> Result<u64, StoreError> {
    let floor = inner.options.min_free_bytes.clamp(1, REOPEN_MIN_FREE);
    if let Ok(available) = fs2::available_space(&inner.path) {
        if available < floor {
            return Err(StoreError::DiskFull {
                path: inner.path.clone(),
                available,
                floor,
            });
        }
    }
    let old = inner
        .engine
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    if let Some(mut old) = old {
        // Wait for the reads still using it: sled's lock is released when it closes.
        let started = Instant::now();
        loop {
            match Arc::try_unwrap(old) {
                Ok(engine) => {
                    drop(engine);
                    break;
                }
                Err(still) if started.elapsed() < REOPEN_WAIT => {
                    old = still;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(still) => {
                    *inner
                        .engine
                        .write()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(still);
                    return Err(StoreError::Reopening {
                        path: inner.path.clone(),
                    });
                }
            }
        }
    }
    let reopened_at = shared.written.load(Ordering::SeqCst);
    let (engine, report) = Engine::open(&inner.path, &inner.options, inner.damage.clone())?;
    *inner
        .engine
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(engine));
    *inner
        .opened
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = report;
    Ok(reopened_at)
}

/// One flush cycle: makes every write applied before it started durable. If frames were
/// appended since the last cycle, first syncs the log up to the end `W` noted at the start and
/// then records `W` as the watermark in `messages`; then, if a write only sled holds is
/// covered, flushes sled and `fdatasync`s its data file (which makes the watermark durable
/// too; otherwise sled persists it on its own within half a second). Returns the bytes sled
/// flushed.
///
/// The order is what recovery relies on: a stored watermark never covers a log byte that was
/// not synced, so every entry below it points at durable bytes; and everything past it is
/// replayed from the log when the store opens, so that sled need not be flushed for what the
/// log holds.
async fn flush_once(engine: Arc<Engine>, shared: &Shared) -> Result<usize, EngineError> {
    #[cfg(test)]
    if shared.fail_next_flush.swap(false, Ordering::AcqRel) {
        return Err(std::io::Error::other("injected flush failure").into());
    }
    #[cfg(test)]
    match shared.flush_delay_ms.load(Ordering::Acquire) {
        0 => {}
        ms => tokio::time::sleep(Duration::from_millis(ms)).await,
    }
    // Every write whose ticket this cycle covers set `sled_dirty` before it, if it needs
    // sled; and published its log end before it, so the mark noted below covers its frames.
    let flush_sled = shared.sled_dirty.swap(false, Ordering::SeqCst);
    let watermark = engine.watermark.load(Ordering::Acquire);
    // Not `flush_async`: that runs the flush on sled's own small IO thread pool, where it
    // blocks until buffer writes queued on the same pool are done; with seven or more stores
    // flushing at once in one process (tests, the benchmark's fan-out) every pool thread waits
    // and nothing writes. tokio's blocking pool has no such ceiling.
    let result = tokio::task::spawn_blocking(move || -> Result<usize, EngineError> {
        let mark = engine.mark_now();
        if mark.end > watermark {
            engine.log.sync()?;
            raise_watermark(&engine.messages, &mark)?;
            engine.watermark.store(mark.end, Ordering::Release);
        }
        if !flush_sled {
            return Ok(0);
        }
        engine.flush_sled()
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string()).into()));
    if result.is_err() && flush_sled {
        // Not flushed: the next cycle (after a reopen) must not skip it.
        shared.sled_dirty.store(true, Ordering::SeqCst);
    }
    result
}

/// Records `mark` as the log's watermark. Call only once the log is synced up to its end.
pub(super) fn raise_watermark(messages: &sled::Tree, mark: &Mark) -> sled::Result<()> {
    messages.insert(KEY_WATERMARK, &mark.encode()[..])?;
    Ok(())
}
