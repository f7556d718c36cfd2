//! Prometheus metrics, served on a listener of their own (`[metrics] listen`, off by default).
//!
//! ```text
//!  actor ── counts (received, stored, rejected, receipts) ──▶ Metrics ◀── API layer (latency)
//!  store flusher ── flush durations (histogram) ───────────▶    │
//!  GET /metrics ── asks the actor for a Snapshot (peers, lag, ─▶ │ ── OpenMetrics text
//!                  relayed, streams), reads the store and the attachment traffic
//! ```
//!
//! Counters are bumped where the events happen; gauges are set from a [`Snapshot`] the actor
//! takes when Prometheus scrapes, so that nothing is computed between scrapes. The endpoint
//! needs no token: it shows counts, peer names and group ids, never a message, key or token.
//! Bind it where only the Prometheus server reaches it (see `docs/operations.md`, which lists
//! every metric, and `docs/grafana-dashboard.json`, which reads them).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use liaison_protocol::Rejection;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::attachments::Attachments;
use crate::store::Store;

/// The content type of the OpenMetrics text format that Prometheus scrapes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the actor reports when Prometheus scrapes (see [`Source`]).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Pinned peers by state (`connected`, `connecting`, `disconnected`).
    pub peers: Vec<(&'static str, i64)>,
    /// Per peer and group, how far apart the two were at the peer's last sync request.
    pub lag: Vec<LagEntry>,
    /// Envelopes of other authors sent to peers since the node started.
    pub relayed: u64,
    /// Messages in the store.
    pub messages: u64,
    /// Free bytes on the disk holding the store, if known.
    pub free_bytes: Option<u64>,
    /// Event streams (API and web) open now.
    pub event_streams: u64,
}

/// One peer's lag in one group (see [`liaison_protocol::sync::Lag`]).
#[derive(Debug, Clone)]
pub struct LagEntry {
    /// The operator's name for the peer, or its short id if it is not pinned.
    pub peer: String,
    /// The group's short id.
    pub group: String,
    /// Messages the peer held that this node lacked.
    pub lacks: u64,
    /// Messages this node held that the peer lacked.
    pub peer_lacks: u64,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginLabel {
    origin: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    peer: String,
    group: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn request_histogram() -> Histogram {
    // 0.5 ms to about 8 s.
    Histogram::new(exponential_buckets(0.000_5, 2.0, 15))
}

/// The metrics of one node. Cheap to share ([`Arc`]); every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    received: Counter,
    stored: Family<OriginLabel, Counter>,
    relayed: Counter,
    rejected: Family<ReasonLabel, Counter>,
    receipts: Family<DirectionLabel, Counter>,
    peers: Family<StateLabel, Gauge>,
    lag: Family<LagLabels, Gauge>,
    peer_lag: Family<LagLabels, Gauge>,
    store_messages: Gauge,
    store_bytes: Gauge,
    disk_free: Gauge,
    requests: HistogramFamily<RequestLabels>,
    event_streams: Gauge,
    attachment_bytes: Family<DirectionLabel, Counter>,
    store_path: PathBuf,
    attachments: Arc<Attachments>,
}

impl Metrics {
    /// The metrics of the node whose store and attachments these are.
    pub fn new(store: &Store, attachments: Arc<Attachments>) -> Metrics {
        let mut registry = Registry::with_prefix("liaison");
        let m = Metrics {
            registry: Registry::default(),
            received: Counter::default(),
            stored: Family::default(),
            relayed: Counter::default(),
            rejected: Family::default(),
            receipts: Family::default(),
            peers: Family::default(),
            lag: Family::default(),
            peer_lag: Family::default(),
            store_messages: Gauge::default(),
            store_bytes: Gauge::default(),
            disk_free: Gauge::default(),
            requests: Family::new_with_constructor(request_histogram),
            event_streams: Gauge::default(),
            attachment_bytes: Family::default(),
            store_path: store.path().to_path_buf(),
            attachments,
        };
        registry.register(
            "messages_received",
            "Messages from peers that passed every check (before they are stored)",
            m.received.clone(),
        );
        registry.register(
            "messages_stored",
            "Messages durably stored, by origin (peer: received; local: posted here)",
            m.stored.clone(),
        );
        registry.register(
            "messages_relayed",
            "Envelopes of other authors sent to peers (relayed pushes and sync answers)",
            m.relayed.clone(),
        );
        registry.register(
            "rejected",
            "Inputs from peers refused (messages, control events, receipts, frames), by reason",
            m.rejected.clone(),
        );
        registry.register(
            "receipts",
            "Delivery receipts, by direction (received: from peers; signed: by this node)",
            m.receipts.clone(),
        );
        registry.register("peers", "Pinned peers, by state", m.peers.clone());
        registry.register(
            "sync_lag_messages",
            "Messages a peer held that this node lacked, at the peer's last sync request",
            m.lag.clone(),
        );
        registry.register(
            "sync_peer_lag_messages",
            "Messages this node held that a peer lacked, at the peer's last sync request",
            m.peer_lag.clone(),
        );
        registry.register(
            "store_messages",
            "Messages in the store",
            m.store_messages.clone(),
        );
        registry.register(
            "store_size_bytes",
            "Bytes of the store's files on disk (attachments included)",
            m.store_bytes.clone(),
        );
        registry.register(
            "disk_free_bytes",
            "Free bytes on the disk holding the store",
            m.disk_free.clone(),
        );
        registry.register(
            "store_flush_seconds",
            "Duration of the store's successful flushes (one covers many writes)",
            store.flush_times(),
        );
        registry.register(
            "api_request_duration_seconds",
            "Local API requests by method, route and status, and how long they took",
            m.requests.clone(),
        );
        registry.register(
            "event_streams_open",
            "Server-sent event streams (API and web workspace) open now",
            m.event_streams.clone(),
        );
        registry.register(
            "attachment_bytes",
            "Attachment bytes, by direction (uploaded here, fetched from peers, served to peers)",
            m.attachment_bytes.clone(),
        );
        Metrics { registry, ..m }
    }

    /// A message from a peer passed every check.
    pub fn message_received(&self) {
        self.received.inc();
    }

    /// `count` messages from peers are durably stored.
    pub fn stored_from_peers(&self, count: usize) {
        let labels = OriginLabel { origin: "peer" };
        self.stored.get_or_create(&labels).inc_by(count as u64);
    }

    /// `count` messages posted here are durably stored.
    pub fn stored_local(&self, count: usize) {
        let labels = OriginLabel { origin: "local" };
        self.stored.get_or_create(&labels).inc_by(count as u64);
    }

    /// Input from a peer was refused.
    pub fn rejected(&self, reason: &Rejection) {
        let labels = ReasonLabel {
            reason: reason_label(reason),
        };
        self.rejected.get_or_create(&labels).inc();
    }

    /// A delivery receipt arrived from a peer (`signed`: this node signed one).
    pub fn receipt(&self, signed: bool) {
        let direction = if signed { "signed" } else { "received" };
        self.receipts
            .get_or_create(&DirectionLabel { direction })
            .inc();
    }

    /// The text Prometheus scrapes: the gauges set from `snapshot` and the disk, then every
    /// metric encoded.
    pub fn render(&self, snapshot: &Snapshot, store_bytes: u64) -> Result<String, std::fmt::Error> {
        self.peers.clear();
        for state in ["connected", "connecting", "disconnected"] {
            let count = snapshot
                .peers
                .iter()
                .filter(|(s, _)| *s == state)
                .map(|(_, n)| n)
                .sum();
            self.peers.get_or_create(&StateLabel { state }).set(count);
        }
        self.lag.clear();
        self.peer_lag.clear();
        for entry in &snapshot.lag {
            let labels = LagLabels {
                peer: entry.peer.clone(),
                group: entry.group.clone(),
            };
            self.lag.get_or_create(&labels).set(gauge(entry.lacks));
            self.peer_lag
                .get_or_create(&labels)
                .set(gauge(entry.peer_lacks));
        }
        catch_up(&self.relayed, snapshot.relayed);
        self.store_messages.set(gauge(snapshot.messages));
        if let Some(free) = snapshot.free_bytes {
            self.disk_free.set(gauge(free));
        }
        self.store_bytes.set(gauge(store_bytes));
        self.event_streams.set(gauge(snapshot.event_streams));
        let traffic = self.attachments.traffic();
        for (direction, value) in [
            ("uploaded", &traffic.uploaded),
            ("fetched", &traffic.fetched),
            ("served", &traffic.served),
        ] {
            let counter = self
                .attachment_bytes
                .get_or_create(&DirectionLabel { direction });
            catch_up(&counter, value.load(Ordering::Relaxed));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// Where the store's files are (measured at each scrape).
    pub fn store_path(&self) -> &Path {
        &self.store_path
    }
}

/// A gauge's value for a count.
fn gauge(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Moves a counter kept elsewhere as a plain number up to `value`.
fn catch_up(counter: &Counter, value: u64) {
    let now = counter.get();
    if value > now {
        counter.inc_by(value - now);
    }
}

/// The label of a rejection: its kind, without the details (which name nodes and groups).
pub fn reason_label(reason: &Rejection) -> &'static str {
    match reason {
        Rejection::Decode(_) => "decode",
        Rejection::BadSignature(_) => "bad_signature",
        Rejection::UnknownGroup(_) => "unknown_group",
        Rejection::NotAMember { .. } => "not_a_member",
        Rejection::ReaderMayNotPost { .. } => "reader_may_not_post",
        Rejection::UnknownEpoch { .. } => "unknown_epoch",
        Rejection::NoEpochKey { .. } => "no_epoch_key",
        Rejection::CiphertextMismatch => "ciphertext_mismatch",
        Rejection::CommitmentMismatch => "commitment_mismatch",
        Rejection::DecryptFailed => "decrypt_failed",
        Rejection::InvalidContent(_) => "invalid_content",
        Rejection::InvalidHeader(_) => "invalid_header",
        Rejection::NotOwner(_) => "not_owner",
        Rejection::OutOfOrder { .. } => "control_out_of_order",
        Rejection::ConflictingControl { .. } => "conflicting_control",
        Rejection::InvalidControl(_) => "invalid_control",
        Rejection::PeerNotAMember { .. } => "peer_not_a_member",
        Rejection::InvalidDescriptor(_) => "invalid_descriptor",
        Rejection::UnexpectedFrame(_) => "unexpected_frame",
        Rejection::InvalidReceipt(_) => "invalid_receipt",
        Rejection::BeyondCutoff { .. } => "beyond_cutoff",
        Rejection::BadTime { .. } => "bad_time",
        Rejection::OverQuota(_) => "over_quota",
        Rejection::Irrelevant(_) => "irrelevant",
        Rejection::UnknownAuthority(_) => "unknown_authority",
        Rejection::InvalidRoster(_) => "invalid_roster",
        Rejection::ConflictingRoster { .. } => "conflicting_roster",
        Rejection::Revoked(_) => "revoked",
        Rejection::ConflictingRotation(_) => "conflicting_rotation",
        Rejection::InvalidRotation(_) => "invalid_rotation",
        Rejection::NameClaimed { .. } => "name_claimed",
        _ => "other",
    }
}

/// The API layer: times every request and counts it by method, matched route (the pattern,
/// such as `/v1/messages/{id}`, never the ids themselves) and status.
pub async fn track_api(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    // Only the methods HTTP defines become labels: a client may send any token as a method,
    // and each would otherwise add a series for good.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m,
        _ => "other",
    }
    .to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let labels = RequestLabels {
        method,
        route,
        status: response.status().as_u16().to_string(),
    };
    metrics
        .requests
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Bytes of the files under `dir`, recursively (symbolic links are not followed).
fn size_on_disk(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                todo.push(entry.path());
            } else if meta.is_file() {
                total = total.saturating_add(meta.len());
            }
        }
    }
    total
}

/// Where a scrape takes the node's side of the figures from: the node's handle, which asks the
/// actor (the endpoint itself knows nothing of the node).
pub trait Source: Send + Sync + 'static {
    /// What the node reports now.
    fn snapshot(&self) -> futures_util::future::BoxFuture<'_, crate::Result<Snapshot>>;
}

#[derive(Clone)]
struct Served {
    metrics: Arc<Metrics>,
    node: Arc<dyn Source>,
}

/// Binds the metrics listener on `addr`.
pub async fn bind(addr: SocketAddr) -> crate::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        crate::Error::io(
            format!("cannot bind the metrics endpoint on {addr} ([metrics] listen)"),
            e,
        )
    })
}

/// Serves `GET /metrics` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    node: Arc<dyn Source>,
    shutdown: CancellationToken,
) {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(Served { metrics, node });
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        warn!(error = %e, "metrics endpoint failed");
    }
    info!("metrics endpoint stopped");
}

async fn scrape(State(s): State<Served>) -> Response {
    let snapshot = match s.node.snapshot().await {
        Ok(snapshot) => snapshot,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the node does not answer: {e}\n"),
            )
                .into_response()
        }
    };
    let path = s.metrics.store_path().to_path_buf();
    let store_bytes = tokio::task::spawn_blocking(move || size_on_disk(&path))
        .await
        .unwrap_or(0);
    match s.metrics.render(&snapshot, store_bytes) {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be encoded\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_labels_carry_no_details() {
        let group = liaison_protocol::GroupId::from([7; 16]);
        assert_eq!(
            reason_label(&Rejection::UnknownGroup(group)),
            "unknown_group"
        );
        assert_eq!(
            reason_label(&Rejection::OverQuota("bytes per day")),
            "over_quota"
        );
    }

    #[test]
    fn size_on_disk_counts_nested_files() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("a"), [0u8; 10]).expect("write");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("sub").join("b"), [0u8; 32]).expect("write");
        assert_eq!(size_on_disk(dir.path()), 42);
    }

    #[test]
    fn counters_catch_up_and_never_go_back() {
        let c = Counter::default();
        catch_up(&c, 5);
        catch_up(&c, 3);
        assert_eq!(c.get(), 5);
        catch_up(&c, 9);
        assert_eq!(c.get(), 9);
    }
}
