//! Records of requests refused before a handler took them: no token, a wrong token, a body
//! or query that does not parse, a method or route that does not exist.
//!
//! Anyone who can reach the API can send such requests, so what they cost the audit log is
//! bounded, whatever their number and size:
//!
//! - a record names at most [`MAX_PATH`] bytes of the request's path, with its source address
//!   and method;
//! - within an [`INTERVAL`], the first refusal of a kind (source, actor, action, outcome) is
//!   written at once, and the repeats are only counted: when the interval ends, one record
//!   says how many there were (`..., N more like it from SOURCE within 60 s`);
//! - at most [`MAX_KINDS`] kinds are told apart in an interval, and at most [`MAX_FIRST`] are
//!   written at once; past that, refusals are counted under the source `other`;
//! - the records do not wait for a flush of their own (they are on disk within one, and
//!   before the next change is answered; see [`AuditLog`]).
//!
//! So an interval costs at most about `2 * MAX_KINDS + MAX_FIRST` records of a few hundred
//! bytes, however many requests are refused in it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::AuditLog;

/// How long repeats of a refusal are counted before one record says how many there were.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// Most bytes of a refused request's path a record holds.
pub const MAX_PATH: usize = 64;
/// Most kinds of refusal told apart in an interval.
pub const MAX_KINDS: usize = 64;
/// Most refusals written at once in an interval (the first of each kind).
pub const MAX_FIRST: usize = 32;

/// What makes two refusals the same kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Kind {
    source: String,
    actor: String,
    action: String,
    outcome: String,
}

#[derive(Debug, Default)]
struct Window {
    /// By kind: whether its first refusal was written at once, and the refusals not written.
    counts: HashMap<Kind, (bool, u64)>,
    /// Refusals written at once in this interval.
    first: usize,
}

/// The bounded record of refused requests; [`Refusals::run`] writes the counts.
#[derive(Debug)]
pub struct Refusals {
    log: Arc<AuditLog>,
    window: Mutex<Window>,
}

impl Refusals {
    /// Refusals recorded in `log`.
    pub fn new(log: Arc<AuditLog>) -> Refusals {
        Refusals {
            log,
            window: Mutex::new(Window::default()),
        }
    }

    /// Records a refused request from `source` (`None`: unknown) by `actor`: its `action`
    /// (`auth`, `refused`), `method` and `path` (cut to [`MAX_PATH`]), and `outcome`. Written
    /// at once if it is the first of its kind in this interval, else counted.
    pub async fn record(
        &self,
        source: Option<IpAddr>,
        actor: &str,
        action: &str,
        method: &str,
        path: &str,
        outcome: &str,
    ) {
        let source = source.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let mut kind = Kind {
            source,
            actor: actor.to_owned(),
            action: action.to_owned(),
            outcome: outcome.to_owned(),
        };
        let write_now = {
            let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
            if !w.counts.contains_key(&kind) && w.counts.len() >= MAX_KINDS {
                kind.source = "other".to_owned();
            }
            let known = w.counts.contains_key(&kind);
            if !known && w.first < MAX_FIRST {
                w.first += 1;
                w.counts.insert(kind.clone(), (true, 0));
                true
            } else {
                w.counts.entry(kind.clone()).or_insert((false, 0)).1 += 1;
                false
            }
        };
        if write_now {
            let target = format!(
                "{} {} {}",
                kind.source,
                short(method, 16),
                short(path, MAX_PATH)
            );
            // Logged as it is recorded: the first of its kind in an interval.
            warn!(
                request = %target,
                actor = %kind.actor,
                outcome = %kind.outcome,
                "API request refused (repeats within a minute are counted in the audit log, \
                 not logged)"
            );
            self.write(&kind.actor, &kind.action, &target, &kind.outcome)
                .await;
        }
    }

    /// Writes one record per kind of refusal counted since the last call, and starts a new
    /// interval.
    pub async fn flush(&self) {
        let window =
            std::mem::take(&mut *self.window.lock().unwrap_or_else(PoisonError::into_inner));
        let mut counted: Vec<(Kind, bool, u64)> = window
            .counts
            .into_iter()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(kind, (written, n))| (kind, written, n))
            .collect();
        counted.sort_by(|a, b| a.0.source.cmp(&b.0.source));
        for (kind, written, n) in counted {
            let outcome = format!(
                "{}, {n} {} from {} within {} s",
                kind.outcome,
                if written { "more like it" } else { "times" },
                kind.source,
                INTERVAL.as_secs()
            );
            self.write(&kind.actor, &kind.action, &kind.source, &outcome)
                .await;
        }
    }

    /// Writes the counts every [`INTERVAL`] until `shutdown`, and once more then.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => self.flush().await,
            }
        }
        self.flush().await;
    }

    async fn write(&self, actor: &str, action: &str, target: &str, outcome: &str) {
        if let Err(e) = self.log.append_read(actor, action, target, outcome).await {
            warn!(error = %e, "cannot write the audit record of a refused request");
        }
    }
}

/// `text` cut to at most `max` bytes (at a character boundary), with control characters
/// replaced, and `…` where it was cut.
pub fn short(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out: String = text[..end]
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if end < text.len() {
        out.push('…');
    }
    out
}

tokio::task_local! {
    /// Set while a request is handled: whether its handler wrote its audit record.
    static HANDLED: std::cell::Cell<bool>;
}

/// Notes that the request being handled has its audit record (written by its handler).
pub fn mark_audited() {
    let _ = HANDLED.try_with(|h| h.set(true));
}

/// Runs `handling` (a request's way through the router and its handler) and says whether its
/// handler wrote the request's audit record ([`mark_audited`]).
pub async fn handled<F: std::future::Future>(handling: F) -> (F::Output, bool) {
    HANDLED
        .scope(std::cell::Cell::new(false), async move {
            let out = handling.await;
            (out, HANDLED.with(std::cell::Cell::get))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// Refusals from many sources cost at most [`MAX_FIRST`] records at once and one count per
    /// kind told apart ([`MAX_KINDS`], the rest under `other`), and every refusal is counted.
    #[tokio::test(flavor = "multi_thread")]
    async fn refusals_from_many_sources_cost_a_bounded_number_of_records() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("store")).expect("store");
        let log = Arc::new(AuditLog::open(store.clone()).expect("log"));
        let refusals = Refusals::new(log.clone());
        let sent = 1_000u64;
        for i in 0..sent {
            let source = IpAddr::from([127, 0, (i / 250) as u8, (i % 250) as u8]);
            let long = format!("/v1/{}", "x".repeat(10_000));
            refusals
                .record(
                    Some(source),
                    "unknown",
                    "auth",
                    "GET",
                    &long,
                    "denied: wrong token",
                )
                .await;
            refusals
                .record(
                    Some(source),
                    "unknown",
                    "auth",
                    "GET",
                    "/v1/status",
                    "denied: wrong token",
                )
                .await;
        }
        refusals.flush().await;
        let records = crate::audit::read::page(&store, 1).expect("records");
        assert!(
            records.len() <= MAX_FIRST + MAX_KINDS + 1,
            "{} records",
            records.len()
        );
        let mut told = 0;
        for r in &records {
            assert!(r.target.len() <= MAX_PATH + 40, "{}", r.target);
            told += match r.outcome.strip_prefix("denied: wrong token, ") {
                None => 1,
                Some(rest) => rest
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .expect("a count"),
            };
        }
        assert_eq!(told, 2 * sent);
        assert!(records.iter().any(|r| r.target == "other"));
    }

    #[test]
    fn paths_are_cut_at_a_character_boundary_and_control_characters_replaced() {
        assert_eq!(short("/v1/status", 64), "/v1/status");
        assert_eq!(short("/v1/\u{1b}[31m", 64), "/v1/?[31m");
        assert_eq!(short(&"a".repeat(100), 8), "aaaaaaaa…");
        assert_eq!(short("aé", 2), "a…");
    }
}
