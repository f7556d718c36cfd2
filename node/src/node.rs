//! The running node: one actor task that owns the sync engine and the store handle, plus the
//! tasks around it.
//!
//! ```text
//!  accept loop ──ConnUp──┐                         ┌──▶ connection writer (per peer, bounded)
//!  dialer (per peer) ────┤                         │
//!  connection readers ───┼──▶ Actor::run ──────────┤──▶ store writes (group commit) ──Durable──┐
//!  API handlers ─Command─┘    (Engine, Store)      └──▶ timer (engine.poll_timeout)           │
//!                  ▲                                                                         │
//!                  └─────────────────────────────── Internal ◀───────────────────────────────┘
//! ```
//!
//! Every channel is bounded. Nothing is acknowledged — to a peer or an API caller — before the
//! store reports the write durable (flushed); one flush covers a whole batch of writes.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use liaison_protocol::attachment::{AttachmentId, AttachmentRef};
use liaison_protocol::group::Change;
use liaison_protocol::identity::{Descriptor, SignedDescriptor};
use liaison_protocol::message::{self, Content, Handling, MessageId, Payload, Place, Sealed};
use liaison_protocol::receipt::Receipt;
use liaison_protocol::record::Record;
use liaison_protocol::sync::{self, Archive, Engine, Event};
use liaison_protocol::{
    ExchangeKey, GroupId, GroupState, IdentityKey, NodeId, Role, Timestamp, UsageError,
};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::accounts::{Access, Principal};
use crate::attachments::transfer::{self as attachment_transfer, Connections};
use crate::attachments::Attachments;
use crate::config::Config;
use crate::datadir::{DataDir, Runtime};
use crate::error::{Error, Result};
use crate::records::Shown;
use crate::store::{NewMessage, Store};
use crate::transport::{self, AllowList, Transport, TransportConfig};
mod trust;
pub use door::Scoped;
pub use feed::Fresh;

use crate::views::{
    ExportView, GroupView, MemberView, MessageView, PeerView, ReceiptView, Refused, RemovedView,
    Status,
};

/// Capacity of the command channel from the API.
const COMMAND_QUEUE: usize = 256;
/// Capacity of the inbound frame channel from all connections.
const INBOUND_QUEUE: usize = 1024;
/// Inputs the actor takes from its queues, when they are already waiting, before it drains the
/// engine once: one drain then stores many messages with one write and sends one frame per peer
/// for all of them.
const MAX_BATCH_INPUTS: usize = 64;
/// Fewest signed items checked per task on the blocking pool (see [`check_frame`]): a push of a
/// few dozen messages is checked by one task, and frames run side by side instead
/// ([`CHECKS_IN_FLIGHT`] per stream); a sync response of hundreds is spread over the cores.
/// With 8, pushes were split in two and the end-to-end benchmark spent about 4 % more CPU per
/// message (nine alternating pairs): one more hand-off to the pool per frame, and each task's
/// checks start with cold caches.
const CHECK_CHUNK_MIN: usize = 64;
/// Frames of one stream being checked at once while the next are read (see `check_frame`).
const CHECKS_IN_FLIGHT: usize = 4;
/// Message batches of each kind (received, posted here) being written at once. What arrives
/// meanwhile waits and goes into the next batch: under load, batches grow instead of writes
/// queueing up, so one store batch and one flush cover many messages.
const MAX_WRITES_IN_FLIGHT: usize = 4;
/// Capacity of each connection's outbound frame channel.
const OUTBOUND_QUEUE: usize = 1024;
/// A second connection from a peer within this time of the first is a simultaneous dial, settled
/// by the node-id rule; a later one means the peer lost the first (it dials only while it has
/// none), so it replaces the first, which may be a dead connection to an old address.
const DIAL_RACE: Duration = Duration::from_secs(2);
/// Messages accepted with attachments and waiting for the store, at most (beyond it their
/// attachments are fetched when opened).
const MAX_PENDING_ATTACHMENTS: usize = 4096;
/// Attachment fetches running at once.
const MAX_FETCHES: usize = 4;
/// Attachments waiting for a fetch slot, at most (beyond it they are fetched when opened, or
/// after a restart).
const MAX_FETCH_QUEUE: usize = 4096;

/// Milliseconds since the Unix epoch, now.
pub fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Timestamp(ms)
}

/// A request from the API to the actor.
#[derive(Debug)]
pub enum Command {
    /// Node status.
    Status(oneshot::Sender<Status>),
    /// Pinned peers.
    Peers(oneshot::Sender<Vec<PeerView>>),
    /// Pin a peer.
    AddPeer {
        /// Name.
        name: String,
        /// Node id.
        node: NodeId,
        /// Address.
        address: String,
        /// Reply.
        reply: oneshot::Sender<Result<PeerView>>,
    },
    /// Pin a peer in place of the pin that has its name or its node id (`peer add --replace`).
    ReplacePeer {
        /// Name.
        name: String,
        /// Node id.
        node: NodeId,
        /// Address.
        address: String,
        /// Reply.
        reply: oneshot::Sender<Result<PeerView>>,
    },
    /// Take a federation roster (its encoded bytes) from the operator.
    LoadRoster {
        /// The encoded signed roster.
        bytes: Vec<u8>,
        /// Reply: what changed.
        reply: oneshot::Sender<Result<crate::views::RosterLoaded>>,
    },
    /// The federation rosters in force.
    Rosters(oneshot::Sender<Vec<crate::federation::RosterView>>),
    /// Move this node to new keys, with a rotation statement its peers follow.
    RotateKeys {
        /// Only the exchange key (the key group keys are wrapped to), not the identity.
        exchange_only: bool,
        /// Reply: the node id from now on.
        reply: oneshot::Sender<Result<crate::views::Rotated>>,
    },
    /// Unpin a peer and drop its connection.
    RemovePeer {
        /// Peer name or node id.
        peer: String,
        /// Reply.
        reply: oneshot::Sender<Result<()>>,
    },
    /// Groups.
    Groups(oneshot::Sender<Vec<GroupView>>),
    /// One group.
    Group {
        /// Group id or name.
        group: String,
        /// Reply.
        reply: oneshot::Sender<Result<GroupView>>,
    },
    /// Create a group owned by this node.
    CreateGroup {
        /// Name.
        name: String,
        /// Reply with the group id.
        reply: oneshot::Sender<Result<GroupId>>,
    },
    /// Add a member (owner only).
    AddMember {
        /// Group id or name.
        group: String,
        /// Peer name or node id.
        peer: String,
        /// Role.
        role: Role,
        /// Reply.
        reply: oneshot::Sender<Result<GroupView>>,
    },
    /// Remove a member (owner only).
    RemoveMember {
        /// Group id or name.
        group: String,
        /// Peer name or node id.
        peer: String,
        /// Reply.
        reply: oneshot::Sender<Result<GroupView>>,
    },
    /// Post a message.
    Post {
        /// Group id or name.
        group: String,
        /// What to post.
        post: Post,
        /// Reply with the message id once durable.
        reply: oneshot::Sender<Result<MessageId>>,
    },
    /// Post several messages to one group, in order, each as [`Command::Post`] posts one and
    /// answered on its own channel; an item's audit record, if it has one, is written by the
    /// node with the message and made durable by the same flush. A refused item changes nothing
    /// for the others. `reply` says that every item was taken.
    PostEach {
        /// Group id or name.
        group: String,
        /// The posts.
        items: Vec<PostItem>,
        /// Answered once every item is taken (each has its own answer).
        reply: oneshot::Sender<()>,
    },
    /// List messages (newest last).
    Inbox {
        /// Group id or name, or all groups.
        group: Option<String>,
        /// Reply.
        reply: oneshot::Sender<Result<Vec<MessageView>>>,
    },
    /// Read one message.
    Read {
        /// Message id.
        id: MessageId,
        /// Reply.
        reply: oneshot::Sender<Result<MessageView>>,
    },
    /// The one message whose id starts with a prefix, among those the caller may read.
    ResolveId {
        /// 8 to 63 lowercase hex digits.
        prefix: String,
        /// Reply.
        reply: oneshot::Sender<Result<MessageId>>,
    },
    /// Receipts of one message.
    Receipts {
        /// Message id.
        id: MessageId,
        /// Reply.
        reply: oneshot::Sender<Result<Vec<ReceiptView>>>,
    },
    /// The messages of a group that may be exported, and those a handling code keeps in.
    Export {
        /// Group id or name.
        group: String,
        /// Keep the nominal section (persons, companies) of records; left out otherwise.
        include_nominal: bool,
        /// Reply.
        reply: oneshot::Sender<Result<ExportView>>,
    },
    /// The thread a message belongs to.
    Thread {
        /// A message of the thread.
        id: MessageId,
        /// Reply.
        reply: oneshot::Sender<Result<crate::views::ThreadView>>,
    },
    /// Counts of a group's messages by kind, commodity, outcome, month and state.
    Stats {
        /// Group id or name.
        group: String,
        /// Reply.
        reply: oneshot::Sender<Result<crate::views::StatsView>>,
    },
    /// An attachment the caller may open: the reference (key included) from a message naming
    /// it that the caller may read, once it is held whole here. Not held yet: it is fetched,
    /// and the answer is [`Error::NotYet`].
    Attachment {
        /// The attachment.
        id: AttachmentId,
        /// Reply.
        reply: oneshot::Sender<Result<AttachmentRef>>,
    },
    /// A feed of messages as they are durably stored, each opened once for every subscriber
    /// (see [`Fresh`]).
    Subscribe(oneshot::Sender<broadcast::Receiver<Arc<Fresh>>>),
    /// What the metrics endpoint shows (see [`crate::metrics`]).
    Metrics(oneshot::Sender<crate::metrics::Snapshot>),
    /// Quarantine a stored message: no view of this node shows it until it is released (admin
    /// only).
    Quarantine {
        /// The message.
        id: MessageId,
        /// Why.
        reason: String,
        /// Reply, once the quarantine is durable.
        reply: oneshot::Sender<Result<crate::views::QuarantineView>>,
    },
    /// End a message's quarantine (admin only).
    Release {
        /// The message.
        id: MessageId,
        /// Reply, once the release is durable.
        reply: oneshot::Sender<Result<crate::views::QuarantineView>>,
    },
    /// The quarantines in force (admin only).
    Quarantined(oneshot::Sender<Result<Vec<crate::views::QuarantineView>>>),
    /// Run the inner command as `who` instead of as the admin: only granted groups are
    /// visible, and TLP:RED messages only to their named recipients.
    As(Principal, Box<Command>),
}

/// A message to post.
#[derive(Debug, Clone)]
pub struct Post {
    /// Posting officer (replaced by the requesting officer's name under [`Command::As`]).
    pub officer: String,
    /// Named recipients `OFFICER@NODE`; required for TLP:RED.
    pub recipients: Vec<String>,
    /// Subject (of a note; unused with a record).
    pub subject: String,
    /// Body (of a note; unused with a record).
    pub body: String,
    /// A structured record to post instead of the subject and body (boxed: records are large
    /// and commands travel through channels).
    pub record: Option<Box<Record>>,
    /// Handling code.
    pub handling: Handling,
    /// Reply-to.
    pub reply_to: Option<MessageId>,
    /// Attachments uploaded by the posting officer (`POST /v1/attachments`) to name in it.
    pub attachments: Vec<AttachmentId>,
}

/// One post of [`Command::PostEach`].
#[derive(Debug)]
pub struct PostItem {
    /// What to post.
    pub post: Post,
    /// The audit record to write once the message is stored, before its flush.
    pub audit: Option<crate::audit::PostAudit>,
    /// Answered with the message id once the message and its audit record are durable.
    pub reply: oneshot::Sender<Result<MessageId>>,
}

/// A cheap handle to send commands to a running node.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Command>,
}

impl NodeHandle {
    /// Sends a command built around a reply channel and waits for the answer.
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| Error::ShuttingDown)?;
        rx.await.map_err(|_| {
            if self.tx.is_closed() {
                Error::ShuttingDown
            } else {
                // The node runs on, but handling this request failed (see `Actor::isolated`).
                Error::Internal("the node failed while handling this request; the fault is in its log, and the node goes on")
            }
        })
    }
}

/// What a node reports to observers (the benchmark, tests): ids only, in batches, never needed
/// to run a node. Sent on a bounded broadcast channel only while someone subscribes; a slow
/// subscriber loses events (`RecvError::Lagged`), the node never waits for it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NodeEvent {
    /// Messages received from peers are durably stored here (flushed); their `Ack`s are queued.
    Durable {
        /// The messages.
        ids: Arc<[MessageId]>,
    },
    /// A peer acknowledged that it durably stored these messages.
    Acked {
        /// The peer.
        peer: NodeId,
        /// The messages.
        ids: Arc<[MessageId]>,
    },
}

/// Batches of [`NodeEvent`]s buffered per subscriber.
const EVENT_QUEUE: usize = 4096;

/// A node started by [`start`].
#[derive(Debug)]
pub struct RunningNode {
    /// Commands to the node.
    pub handle: NodeHandle,
    /// This node's id.
    pub node_id: NodeId,
    /// This node's name.
    pub name: String,
    /// The bound QUIC address.
    pub quic_addr: SocketAddr,
    /// The bound API address.
    pub api_addr: SocketAddr,
    /// The bound metrics address, when metrics are served (`[metrics] listen`).
    pub metrics_addr: Option<SocketAddr>,
    /// The web workspace's URL, when it is served.
    pub web_url: Option<String>,
    /// The SHA-256 fingerprint of the workspace's self-signed certificate, if it has one.
    pub web_fingerprint: Option<String>,
    /// The store (for tests and the benchmark; the node owns it).
    pub store: Store,
    /// Officer accounts (for the demo and tests that make officers directly).
    pub accounts: Arc<crate::accounts::Accounts>,
    shutdown: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
    dir: DataDir,
    events: broadcast::Sender<NodeEvent>,
}

impl RunningNode {
    /// Stops the node: stops accepting, finishes in-flight writes, flushes, closes connections.
    pub async fn shutdown(mut self) -> Result<()> {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.store.flush().await?;
        self.dir.clear_runtime();
        info!(node = %self.node_id.short(), "stopped");
        Ok(())
    }

    /// A token that is cancelled when the node shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Reports of durable storage and acknowledgements from now on (see [`NodeEvent`]).
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }
}

/// A pinned peer as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PeerRecord {
    name: String,
    node_id: String,
    address: String,
    /// Hex of the peer's last signed descriptor.
    #[serde(default)]
    descriptor: Option<String>,
}

/// A peer as the actor tracks it: pinned by the operator, admitted through a roster, or both.
#[derive(Debug)]
struct PeerEntry {
    /// The operator's pin, or (for a peer known only through a roster) its roster name and
    /// first address.
    record: PeerRecord,
    node: NodeId,
    descriptor: Option<Descriptor>,
    connected: watch::Sender<bool>,
    last_error: Option<String>,
    dialer: CancellationToken,
    /// Whether the operator pinned it (the record is stored).
    pinned: bool,
    /// Its roster entry, if a roster in force admits it.
    roster: Option<liaison_protocol::roster::Entry>,
    /// Why it is not admitted now (revoked, rotated away, refused here, roster expired): not
    /// on the allow-list and not dialled.
    blocked: Option<String>,
}

/// A live connection.
#[derive(Debug)]
struct Conn {
    id: u64,
    initiator: NodeId,
    conn: quinn::Connection,
    tx: mpsc::Sender<Vec<u8>>,
    since: std::time::Instant,
}

/// Messages to the actor from its own helper tasks.
#[derive(Debug)]
enum Internal {
    ConnUp {
        peer: NodeId,
        conn: quinn::Connection,
        initiator: NodeId,
    },
    ConnDown {
        peer: NodeId,
        id: u64,
    },
    DialFailed {
        peer: NodeId,
        error: String,
    },
    Durable {
        ids: Vec<MessageId>,
        failed: Vec<MessageId>,
        /// What the written messages name, already in the attachment index.
        named: Vec<FetchWanted>,
    },
    /// A batch of local posts was written (or failed to be): one input for the whole batch.
    /// With each post, why its audit record could not be written, if it could not.
    PostsStored {
        posts: Vec<(Sealed, oneshot::Sender<Result<MessageId>>, Option<Error>)>,
        result: std::result::Result<(), String>,
        /// Whether the batch was applied to the store (else [`Internal::PostsStaged`] was
        /// never sent for it).
        staged: bool,
    },
    /// A batch of local posts was applied to the store with its audit records; its flush
    /// runs (see [`posting`]). `ticket`: its write.
    PostsStaged {
        ticket: Option<crate::store::DurableTicket>,
    },
    /// Envelopes read ahead for a sync response (see [`ReadAhead`]).
    ReadAhead {
        key: ReadKey,
        envelopes: Vec<Vec<u8>>,
    },
    ControlStored {
        event: Vec<u8>,
        result: Result<()>,
        reply: ControlReply,
    },
    /// New keys are on disk (see `trust::Actor::rotate_keys`).
    KeysRotated(Box<trust::Rotated>),
    /// Close these connections made under keys rotated away from.
    CloseRotated(Vec<(NodeId, u64)>),
    /// A peer asks for chunks of an attachment: may it have them?
    ServeAttachment {
        peer: NodeId,
        request: liaison_protocol::transfer::ChunkRequest,
        reply: oneshot::Sender<Option<AttachmentRef>>,
    },
    /// A fetch ended.
    FetchDone {
        id: AttachmentId,
        result: Result<()>,
    },
}

/// An attachment a stored message names, which may need fetching.
#[derive(Debug, Clone)]
struct FetchWanted {
    reference: AttachmentRef,
    message: MessageId,
    group: GroupId,
    author: NodeId,
    from: Option<NodeId>,
}

impl FetchWanted {
    /// The attachments `refs` that message `message`, at `place`, names; `from` is the peer it
    /// came from (`None`: posted here).
    fn named_by(
        message: MessageId,
        place: Place,
        refs: impl IntoIterator<Item = AttachmentRef>,
        from: Option<NodeId>,
    ) -> impl Iterator<Item = FetchWanted> {
        refs.into_iter().map(move |reference| FetchWanted {
            reference,
            message,
            group: place.group,
            author: place.author,
            from,
        })
    }
}

#[derive(Debug)]
enum ControlReply {
    Created(oneshot::Sender<Result<GroupId>>),
    /// A change asked for through the API: the group as it is then, with these warnings.
    Changed(oneshot::Sender<Result<GroupView>>, Vec<String>),
    /// A change the node made on its own (a revoked member removed, a rotated member moved, a
    /// timed key rotation): logged, nobody waits.
    Quiet,
}

/// Opens the store, binds the endpoints and starts every task of the node in `dir`.
pub async fn start(dir: &DataDir) -> Result<RunningNode> {
    let config = dir.config()?;
    dir.check_permissions()?;
    let (identity, exchange) = dir.keys()?;
    let store = Store::open_with(&dir.store_path(), &config.store.options())?;
    let attachments = Arc::new(Attachments::open(
        &dir.store_path(),
        config.attachments.options(),
    )?);
    let node_id = identity.node_id();
    let allow = AllowList::new();
    let transport_config = TransportConfig {
        keep_alive: config.transport.keep_alive(),
        idle_timeout: config.transport.idle_timeout(),
        ..TransportConfig::default()
    };
    let transport = Arc::new(Transport::bind(
        config.listen,
        identity.signing_key(),
        allow.clone(),
        transport_config,
    )?);
    let quic_addr = transport.local_addr()?;
    let api_listener = tokio::net::TcpListener::bind(config.api)
        .await
        .map_err(|e| Error::io(format!("cannot bind the API on {}", config.api), e))?;
    let api_addr = api_listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the API address", e))?;
    let web_listener = if config.web.enabled {
        Some(crate::web::bind(
            &config.web,
            &dir.root().join("web-tls"),
            &config.name,
        )?)
    } else {
        None
    };
    let web_url = web_listener.as_ref().map(crate::web::Listener::url);
    let web_fingerprint = web_listener
        .as_ref()
        .and_then(|l| l.self_signed_fingerprint().map(str::to_owned));

    let advertised = advertised_address(&config, quic_addr);
    let descriptor = Descriptor {
        node: node_id,
        name: config.name.clone(),
        addresses: vec![advertised],
        exchange_key: exchange.public(),
        valid_from: now(),
        valid_until: now().plus_millis(365 * 24 * 3600 * 1000),
    }
    .sign(&identity)?
    .to_bytes()?;
    let engine_config = sync::Config {
        sync_interval_ms: config.sync.interval_ms,
        max_strikes: config.sync.max_strikes,
        relay: config.sync.relay,
        max_clock_skew_ms: config.sync.max_clock_skew_ms,
        max_groups_per_owner: config.sync.max_groups_per_owner,
        max_controls_per_group: config.sync.max_controls_per_group,
        max_author_bytes_per_day: config.sync.max_author_bytes_per_day,
        ..sync::Config::default()
    };
    let mut engine = Engine::new(
        IdentityKey::from_seed(&identity.seed()),
        exchange,
        descriptor,
        engine_config,
    );
    let previous = dir.previous_keys()?;
    let mut own_rotations = Vec::with_capacity(previous.len());
    for (old_identity, old_exchange, statement) in previous {
        engine.add_previous_keys(old_identity, old_exchange);
        own_rotations.push(statement);
    }
    restore(&mut engine, &store)?;
    let restoring = crate::restored::at_start(dir, &node_id)?;
    engine.set_restoring(restoring.is_some());
    let trust = crate::federation::Trust::new(&config.federation)?;
    let rotate_after = config.groups.rotate_after().map_err(Error::Invalid)?;

    let accounts = Arc::new(crate::accounts::Accounts::load(
        store.clone(),
        &dir.admin_token()?,
    )?);
    let audit = Arc::new(crate::audit::AuditLog::open(store.clone())?);
    let metrics = Arc::new(crate::metrics::Metrics::new(&store, attachments.clone()));
    let metrics_listener = match config.metrics.listen {
        Some(addr) => Some(crate::metrics::bind(addr).await?),
        None => None,
    };
    let metrics_addr = match &metrics_listener {
        Some(l) => Some(
            l.local_addr()
                .map_err(|e| Error::io("cannot read the metrics address", e))?,
        ),
        None => None,
    };
    let shutdown = CancellationToken::new();
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (internal_tx, internal_rx) = mpsc::channel(COMMAND_QUEUE);
    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
    let handle = NodeHandle { tx: cmd_tx };
    let (events, _) = broadcast::channel(EVENT_QUEUE);

    let mut tasks = tokio::task::JoinSet::new();
    let mut actor = Actor {
        name: config.name.clone(),
        me: node_id,
        engine,
        store: store.clone(),
        transport: transport.clone(),
        allow,
        peers: BTreeMap::new(),
        conns: HashMap::new(),
        next_conn: Arc::new(AtomicU64::new(1)),
        internal_tx: internal_tx.clone(),
        inbound_tx,
        shutdown: shutdown.clone(),
        config: config.clone(),
        quic_addr,
        api_addr,
        pending_writes: 0,
        directory: BTreeMap::new(),
        quarantined: quarantine::Quarantined::new(),
        new_messages: broadcast::channel(1024).0,
        events: events.clone(),
        local_posts: Vec::new(),
        post_rounds: posting::Rounds::default(),
        received: Vec::new(),
        received_writes: 0,
        origins: Origins::default(),
        read_ahead: RefCell::default(),
        faults: 0,
        attachments: attachments.clone(),
        connections: Connections::default(),
        accepted_attachments: HashMap::new(),
        posted_attachments: HashMap::new(),
        fetching: HashSet::new(),
        fetch_queue: std::collections::VecDeque::new(),
        trust,
        dir: dir.clone(),
        rotate_after,
        expiry_logged: None,
        rotating: false,
        quiet_pending: HashSet::new(),
        metrics: metrics.clone(),
        restoring,
    };
    actor.load_peers()?;
    actor.load_directory()?;
    actor.resume_fetches();
    actor.load_quarantine()?;
    actor.load_federation(own_rotations)?;

    let span = info_span!("node", node = %node_id.short(), name = %config.name);
    tasks.spawn(
        accept_loop(transport.clone(), internal_tx.clone(), shutdown.clone())
            .instrument(span.clone()),
    );
    tasks.spawn(
        actor
            .run(cmd_rx, internal_rx, inbound_rx)
            .instrument(span.clone()),
    );
    let accounts_handle = accounts.clone();
    if let Some(listener) = web_listener {
        let parts = crate::web::Parts {
            node: handle.clone(),
            accounts: accounts.clone(),
            audit: audit.clone(),
            node_name: config.name.clone(),
            config: config.web.clone(),
            attachments: attachments.clone(),
        };
        tasks.spawn(crate::web::serve(listener, parts, shutdown.clone()).instrument(span.clone()));
    }
    tasks.spawn(sweep_unposted(attachments.clone(), shutdown.clone()).instrument(span.clone()));
    if let Some(listener) = metrics_listener {
        tasks.spawn(
            crate::metrics::serve(listener, metrics.clone(), handle.clone(), shutdown.clone())
                .instrument(span.clone()),
        );
    }
    tasks.spawn(
        crate::api::serve(
            api_listener,
            handle.clone(),
            accounts,
            audit,
            attachments,
            dir.clone(),
            metrics,
            shutdown.clone(),
        )
        .instrument(span.clone()),
    );
    dir.write_runtime(&Runtime {
        quic: quic_addr,
        api: api_addr,
        pid: std::process::id(),
        web: web_url.clone(),
    })?;
    info!(parent: &span, %quic_addr, %api_addr, ?metrics_addr, "node started");
    Ok(RunningNode {
        handle,
        node_id,
        name: config.name,
        quic_addr,
        api_addr,
        metrics_addr,
        web_url,
        web_fingerprint,
        store,
        accounts: accounts_handle,
        shutdown,
        tasks,
        dir: dir.clone(),
        events,
    })
}

/// The address shown to peers: `advertise`, or the bound address with an unspecified IP
/// shown as loopback.
pub fn advertised_address(config: &Config, bound: SocketAddr) -> String {
    if let Some(a) = &config.advertise {
        return a.clone();
    }
    let mut addr = bound;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr.to_string()
}

/// Rebuilds the engine's groups and version vectors from the store.
fn restore(engine: &mut Engine, store: &Store) -> Result<()> {
    for group in store.groups()? {
        let events = store.control_events(&group)?;
        // Apply the contiguous prefix; anything after a gap is fetched again from peers.
        let mut chain = Vec::new();
        for (i, (seq, bytes)) in events.into_iter().enumerate() {
            if seq != i as u64 + 1 {
                break;
            }
            chain.push(bytes);
        }
        let gid = group;
        while !chain.is_empty() {
            match engine.restore_group(chain.clone()) {
                Ok(_) => break,
                Err(e) => {
                    warn!(group = %gid.short(), error = %e, "stored control event unusable; refetching");
                    chain.pop();
                }
            }
        }
        engine.restore_held(store.held(&group)?);
    }
    // Messages found damaged: fetched again from peers (see `Actor::refetch_damaged`).
    let damaged: Vec<Place> = store.damaged()?.into_iter().map(|(_, p)| p).collect();
    engine.handle_lost(&damaged);
    Ok(())
}

/// One range of envelopes for a sync response: the sequence space of a place, from the seq
/// after it.
type ReadKey = Place;

/// Most ranges read ahead and kept at once (each at most one response budget, 1 MiB).
const MAX_READ_AHEAD: usize = 8;

/// Envelopes read from the store ahead of the sync request that will ask for them.
///
/// A peer catching up asks for the next range only once it has checked the last one. Reading
/// that next range on the blocking pool as soon as the last one is answered lets the store
/// read overlap the peer's checks, so the request is answered from memory. Stored messages
/// never change, so a range read ahead is still right when it is asked for (it may only lack
/// messages stored since, which the response's `more` and the next request bring).
#[derive(Default)]
struct ReadAhead {
    ready: HashMap<ReadKey, Vec<Vec<u8>>>,
    reading: HashSet<ReadKey>,
    /// Ranges that the engine's answers suggest a peer will ask for next, with their budget.
    wanted: Vec<(ReadKey, usize)>,
}

/// Reads envelopes back from the store for the engine.
struct StoreArchive<'a> {
    store: &'a Store,
    origins: &'a Origins,
    /// Origins read from the store while handling the frame at hand, for [`Origins`].
    learned: RefCell<Vec<(MessageId, Place)>>,
    ahead: &'a RefCell<ReadAhead>,
    /// Store reads made for receipts of the frame at hand (see [`MAX_RECEIPT_READS`]).
    receipt_reads: Cell<usize>,
}

/// Most store reads one inbound frame's receipts may cause. A receipt names up to 1,024
/// messages and a `Receipts` frame carries up to 64, which a member can sign once and send
/// again and again; the messages an honest receipt names were stored moments ago, and their
/// origins are in [`Origins`] without any read. Messages beyond this count that would need a
/// read count as not held: receipts are best effort.
const MAX_RECEIPT_READS: usize = 1024;

impl StoreArchive<'_> {
    /// Group and author of a stored message from the store, decoding only its header.
    fn stored_origin(&self, id: &MessageId) -> Option<Place> {
        let header = match self.store.with_envelope(id, message::decode_header) {
            Ok(found) => found?,
            Err(e) => {
                warn!(id = %id.short(), error = %e, "cannot read a stored message's origin");
                return None;
            }
        };
        match header {
            Ok(h) => {
                let origin = h.place();
                self.learned.borrow_mut().push((*id, origin));
                Some(origin)
            }
            Err(e) => {
                warn!(id = %id.short(), error = %e, "a stored message's header does not decode");
                None
            }
        }
    }
}

/// Those of `envelopes` (ascending by seq) with seq at most `through` (a range read ahead
/// may run past the end of what is asked for).
fn through_seq(mut envelopes: Vec<Vec<u8>>, through: u64) -> Vec<Vec<u8>> {
    let seq = |e: &Vec<u8>| message::decode_header(e).map_or(u64::MAX, |h| h.seq);
    if envelopes.last().is_some_and(|e| seq(e) > through) {
        let keep = envelopes.partition_point(|e| seq(e) <= through);
        envelopes.truncate(keep);
    }
    envelopes
}

impl Archive for StoreArchive<'_> {
    fn envelopes(
        &self,
        group: &GroupId,
        author: &NodeId,
        epoch: u64,
        after: u64,
        through: u64,
        max_bytes: usize,
    ) -> Vec<Vec<u8>> {
        let key = Place {
            group: *group,
            author: *author,
            epoch,
            seq: after,
        };
        let mut ahead = self.ahead.borrow_mut();
        let envelopes = match ahead.ready.remove(&key) {
            Some(mut read) => {
                // Read with the full budget; this answer may have less left.
                let mut total = 0usize;
                let keep = read
                    .iter()
                    .position(|e| {
                        total = total.saturating_add(e.len());
                        total > max_bytes
                    })
                    .unwrap_or(read.len())
                    .max(1);
                read.truncate(keep);
                read
            }
            None => match self.store.readable_envelopes(&key, through, max_bytes) {
                Ok((envelopes, 0)) => envelopes,
                Ok((envelopes, skipped)) => {
                    warn!(
                        group = %group.short(),
                        author = %author.short(),
                        epoch,
                        skipped,
                        "stored envelopes cannot be read (damaged); left out of a sync response, peers that hold them serve them"
                    );
                    envelopes
                }
                Err(e) => {
                    warn!(error = %e, "cannot read envelopes for a sync response");
                    Vec::new()
                }
            },
        };
        let envelopes = through_seq(envelopes, through);
        // A range that (nearly) filled the budget is likely followed by a request for the next.
        let total: usize = envelopes.iter().map(Vec::len).sum();
        if total >= max_bytes / 2 {
            let last = envelopes
                .last()
                .and_then(|e| message::decode_header(e).ok())
                .map(|h| h.seq);
            if let Some(last) = last {
                ahead.wanted.push((Place { seq: last, ..key }, max_bytes));
            }
        }
        envelopes
    }

    fn message_origin(&self, id: &MessageId) -> Option<(GroupId, NodeId)> {
        if let Some(origin) = self.origins.get(id) {
            return Some((origin.group, origin.author));
        }
        self.stored_origin(id).map(|o| (o.group, o.author))
    }

    fn receipt_origin(&self, id: &MessageId) -> Option<(GroupId, NodeId)> {
        if let Some(origin) = self.origins.get(id) {
            return Some((origin.group, origin.author));
        }
        let reads = self.receipt_reads.get();
        if reads >= MAX_RECEIPT_READS {
            if reads == MAX_RECEIPT_READS {
                debug!("receipts of one frame name too many messages not recently stored; the rest are skipped");
                self.receipt_reads.set(reads + 1);
            }
            return None;
        }
        self.receipt_reads.set(reads + 1);
        self.stored_origin(id).map(|o| (o.group, o.author))
    }
}

/// The receipts `store` holds for message `id` as `(receiver, receipt bytes)` (see
/// [`Store::receipts`]), the message's place read from its stored header; `None` if the
/// message is not held.
pub fn stored_receipts(
    store: &Store,
    id: &MessageId,
) -> Result<Option<Vec<crate::store::StoredReceipt>>> {
    let Some(header) = store.with_envelope(id, message::decode_header)? else {
        return Ok(None);
    };
    let place = header
        .map_err(|e| Error::Invalid(format!("stored message {id} has a malformed header: {e}")))?
        .place();
    Ok(Some(store.receipts(&place)?))
}

/// Origins of recently stored messages, so that a receipt for one (the usual case) needs no
/// store read and no decoding of the envelope, and can be indexed by place. Two generations
/// of at most [`MAX_ORIGINS`] each: when the newer fills up it becomes the older and the
/// older is forgotten, so the latest [`MAX_ORIGINS`] are always there. The store answers
/// the rest.
#[derive(Default)]
struct Origins {
    newer: HashMap<MessageId, Place>,
    older: HashMap<MessageId, Place>,
}

impl Origins {
    fn get(&self, id: &MessageId) -> Option<&Place> {
        self.newer.get(id).or_else(|| self.older.get(id))
    }

    fn insert(&mut self, id: MessageId, origin: Place) {
        if self.newer.len() >= MAX_ORIGINS {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(id, origin);
    }

    fn remove(&mut self, id: &MessageId) {
        self.newer.remove(id);
        self.older.remove(id);
    }
}

/// Most entries in one generation of [`Origins`].
const MAX_ORIGINS: usize = 32_768;

struct Actor {
    name: String,
    me: NodeId,
    engine: Engine,
    store: Store,
    transport: Arc<Transport>,
    allow: AllowList,
    peers: BTreeMap<NodeId, PeerEntry>,
    conns: HashMap<NodeId, Conn>,
    next_conn: Arc<AtomicU64>,
    internal_tx: mpsc::Sender<Internal>,
    inbound_tx: mpsc::Sender<InboundFrame>,
    shutdown: CancellationToken,
    config: Config,
    quic_addr: SocketAddr,
    api_addr: SocketAddr,
    pending_writes: usize,
    /// Descriptors of nodes learned through peers (not pinned).
    directory: BTreeMap<NodeId, Descriptor>,
    /// Messages the admin quarantined (see the `quarantine` module).
    quarantined: quarantine::Quarantined,
    /// Messages as they become durable, for live feeds (see [`feed`]).
    new_messages: broadcast::Sender<Arc<feed::Fresh>>,
    /// Observer hook: [`NodeEvent`]s, sent only while someone subscribes.
    events: broadcast::Sender<NodeEvent>,
    /// Posts waiting to be sealed and written together by `store_local_posts`.
    local_posts: Vec<LocalPost>,
    /// The batches of local posts being written (see [`posting`]).
    post_rounds: posting::Rounds,
    /// Messages accepted from peers and waiting for the store, written by `store_received`.
    received: Vec<NewMessage>,
    /// Batches of received messages being written.
    received_writes: usize,
    /// See [`Origins`].
    origins: Origins,
    /// See [`ReadAhead`].
    read_ahead: RefCell<ReadAhead>,
    /// The federation view: rosters, revocations, rotations (see [`crate::federation`]).
    trust: crate::federation::Trust,
    /// The data directory (its keys change when the node rotates them).
    dir: DataDir,
    /// `groups.rotate_after`.
    rotate_after: Option<Duration>,
    /// The roster expiry state last logged, so that it is logged once per change.
    expiry_logged: Option<crate::federation::Expiry>,
    /// A key rotation is being written.
    rotating: bool,
    /// Groups with a timed key rotation of this node's own making waiting to be stored.
    quiet_pending: HashSet<GroupId>,
    /// Inputs whose handling failed with a panic since the node started (see
    /// [`Actor::isolated`]).
    faults: u64,
    /// Attachment files and their index.
    attachments: Arc<Attachments>,
    /// The live connection to each peer, for attachment fetches.
    connections: Connections,
    /// Attachments of messages accepted from peers and being stored, by message.
    accepted_attachments: HashMap<MessageId, (NodeId, Place, Vec<AttachmentRef>)>,
    /// Attachments of local posts being stored, by message.
    posted_attachments: HashMap<MessageId, Vec<AttachmentRef>>,
    /// Attachments being fetched now (at most [`MAX_FETCHES`]).
    fetching: HashSet<AttachmentId>,
    /// Attachments waiting for a fetch slot (at most [`MAX_FETCH_QUEUE`]).
    fetch_queue: std::collections::VecDeque<FetchWanted>,
    /// The node's metrics (counted here, shown by [`crate::metrics`]).
    metrics: Arc<crate::metrics::Metrics>,
    /// The restore mark, while this node learns its own state from its peers.
    restoring: Option<crate::restored::Marker>,
}

/// A post accepted from the API, not yet sealed.
struct LocalPost {
    group: GroupId,
    content: Content,
    /// The attachments the content names, stored with the message once it is sealed.
    attachments: Vec<AttachmentRef>,
    handling: Handling,
    created_at: Timestamp,
    /// Until when it may wait for the group's sequence numbers to be confirmed (see
    /// `Engine::seal`): a node that has just started waits for its peers to connect.
    wait_until: std::time::Instant,
    reply: oneshot::Sender<Result<MessageId>>,
    /// Its audit record, written when it is stored (see [`Command::PostEach`]).
    audit: Option<crate::audit::PostAudit>,
}

/// How long a post waits, after the node started or joined the group, for a member to say
/// which of this node's sequence numbers it holds, before it is refused.
const POST_CONFIRM_WAIT: Duration = Duration::from_secs(10);

/// Meta key prefix of directory entries in the store.
const DIRECTORY_PREFIX: &str = "directory/";

impl Actor {
    fn load_peers(&mut self) -> Result<()> {
        for (node, bytes) in self.store.peers()? {
            let record: PeerRecord = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Corrupt(format!("peer record: {e}")))?;
            self.insert_peer(node, record, true, None);
        }
        Ok(())
    }

    fn load_directory(&mut self) -> Result<()> {
        let now = now();
        for (_, bytes) in self.store.meta_prefix(DIRECTORY_PREFIX)? {
            if let Ok(d) = SignedDescriptor::verify(&bytes, now) {
                self.directory.insert(d.node, d);
                self.engine.restore_descriptor(now, bytes);
            }
        }
        for entry in self.peers.values() {
            if let Some(bytes) = entry
                .record
                .descriptor
                .as_deref()
                .and_then(|h| hex::decode(h).ok())
            {
                self.engine.restore_descriptor(now, bytes);
            }
        }
        Ok(())
    }

    /// Tracks a peer (replacing what was tracked for it): on the allow-list and dialled unless
    /// the federation view blocks it.
    fn insert_peer(
        &mut self,
        node: NodeId,
        record: PeerRecord,
        pinned: bool,
        roster: Option<liaison_protocol::roster::Entry>,
    ) {
        let descriptor = record
            .descriptor
            .as_deref()
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| SignedDescriptor::verify(&b, now()).ok())
            .filter(|d| d.node == node)
            .or_else(|| self.directory.get(&node).cloned());
        let (connected, _) = watch::channel(self.conns.contains_key(&node));
        if let Some(old) = self.peers.remove(&node) {
            old.dialer.cancel();
        }
        let entry = PeerEntry {
            record,
            node,
            descriptor,
            connected,
            last_error: None,
            dialer: self.shutdown.child_token(),
            pinned,
            roster,
            blocked: None,
        };
        self.peers.insert(node, entry);
        self.admit(node);
    }

    /// Puts a tracked peer on the allow-list and starts dialling it, unless the federation view
    /// blocks it (then it is taken off and not dialled; its connection, if any, stays).
    fn admit(&mut self, node: NodeId) {
        let blocked = self.peer_blocked(&node);
        let Some(entry) = self.peers.get_mut(&node) else {
            return;
        };
        entry.dialer.cancel();
        entry.blocked = blocked;
        if entry.blocked.is_some() {
            self.allow.remove(node.as_bytes());
            return;
        }
        self.allow.insert(*node.as_bytes());
        let dialer = self.shutdown.child_token();
        entry.dialer = dialer.clone();
        tokio::spawn(
            dial_loop(
                self.transport.clone(),
                self.me,
                node,
                entry.record.address.clone(),
                entry.connected.subscribe(),
                self.internal_tx.clone(),
                dialer,
                self.config.transport.redial_min_ms,
                self.config.transport.redial_max_ms,
            )
            .instrument(info_span!("dial", peer = %node.short())),
        );
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut internal: mpsc::Receiver<Internal>,
        mut inbound: mpsc::Receiver<InboundFrame>,
    ) {
        let mut damage = self.store.damage_notices();
        let mut federation = tokio::time::interval(trust::TICK);
        federation.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut deadline = self.engine.poll_timeout();
            if let Some(first) = self.local_posts.iter().map(|p| p.wait_until).min() {
                // Posts waiting for their group's sequence numbers are retried at each drain
                // and refused once their wait is over.
                let left = first.saturating_duration_since(std::time::Instant::now());
                let at = now().plus_millis(u64::try_from(left.as_millis()).unwrap_or(u64::MAX));
                deadline = Some(deadline.map_or(at, |d| d.min(at)));
            }
            let sleep = async {
                match deadline {
                    Some(t) => {
                        let wait = t.0.saturating_sub(now().0);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                Some(msg) = internal.recv() => self.isolated("internal", |a| a.on_internal(msg)),
                Some(frame) = inbound.recv() => self.isolated("frame", |a| a.on_inbound(frame)),
                Some(cmd) = commands.recv() => self.isolated("command", |a| a.on_command(cmd)),
                Ok(()) = damage.changed() => self.isolated("damage", Actor::refetch_damaged),
                () = sleep => self.isolated("timer", |a| a.engine.handle_timeout(now())),
                _ = federation.tick() => {
                    self.isolated("federation", Actor::federation_tick);
                    self.isolated("restore", Actor::restore_check);
                }
            }
            // Take what else is already waiting, in the same priority, before draining once.
            for _ in 0..MAX_BATCH_INPUTS {
                if let Ok(msg) = internal.try_recv() {
                    self.isolated("internal", |a| a.on_internal(msg));
                } else if let Ok(frame) = inbound.try_recv() {
                    self.isolated("frame", |a| a.on_inbound(frame));
                } else if let Ok(cmd) = commands.try_recv() {
                    self.isolated("command", |a| a.on_command(cmd));
                } else {
                    break;
                }
            }
            self.isolated("drain", Actor::drain);
        }
        // Shutdown: posts not yet sealed are refused; let in-flight store writes finish, then
        // close connections.
        for post in std::mem::take(&mut self.local_posts) {
            self.pending_writes = self.pending_writes.saturating_sub(1);
            let _ = post.reply.send(Err(Error::ShuttingDown));
        }
        while self.pending_writes > 0 {
            let Some(msg) = internal.recv().await else {
                break;
            };
            self.on_internal(msg);
            self.drain();
        }
        for (_, c) in self.conns.drain() {
            c.conn.close(0u32.into(), b"shutting down");
        }
        self.transport.close();
        // Give peers a moment to receive the close; the draining period itself is not needed.
        let _ = tokio::time::timeout(Duration::from_millis(300), self.transport.wait_idle()).await;
    }

    /// Runs one step of the actor (one command, one frame, one internal message, the timer, a
    /// drain) so that a fault in it fails that step alone instead of the node: a panic is
    /// caught and logged, the step's reply channel is dropped on the way (its caller gets
    /// [`Error::Internal`]), and the actor goes on with the next input. No single input, be it
    /// a command or a peer's frame, may stop every later one from being served.
    fn isolated(&mut self, step: &'static str, handle: impl FnOnce(&mut Actor)) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(self)));
        if let Err(panic) = result {
            self.note_fault(step, panic.as_ref());
        }
    }

    /// Logs and counts a panic caught while handling `step`.
    fn note_fault(&mut self, step: &'static str, panic: &(dyn std::any::Any + Send)) {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        self.faults = self.faults.saturating_add(1);
        tracing::error!(
            step,
            %reason,
            faults = self.faults,
            "a fault while handling one input: that input failed, the node goes on (please report this with the log)"
        );
    }

    /// Makes the engine ask peers again for the messages the store found damaged.
    fn refetch_damaged(&mut self) {
        match self.store.damaged() {
            Ok(damaged) => {
                let places: Vec<Place> = damaged.into_iter().map(|(_, p)| p).collect();
                warn!(
                    messages = places.len(),
                    "fetching damaged messages again from peers that hold them"
                );
                self.engine.handle_lost(&places);
            }
            Err(e) => warn!(error = %e, "cannot list damaged messages"),
        }
    }

    /// Remembers where a message being stored sits (see [`Origins`]).
    fn note_origin(&mut self, id: MessageId, header: &message::Header) {
        self.origins.insert(id, header.place());
    }

    /// A frame from a live connection: to the engine, its signatures already checked.
    fn on_inbound(&mut self, (peer, conn, frame): InboundFrame) {
        if self.conns.get(&peer).is_none_or(|c| c.id != conn) {
            return;
        }
        let archive = StoreArchive {
            store: &self.store,
            origins: &self.origins,
            learned: RefCell::new(Vec::new()),
            ahead: &self.read_ahead,
            receipt_reads: Cell::new(0),
        };
        match frame {
            Inbound::Raw(bytes) => self.engine.handle_frame(now(), peer, &bytes, &archive),
            Inbound::Split(split, checked) => {
                self.engine
                    .handle_split(now(), peer, split, checked, &archive);
            }
        }
        for (id, origin) in archive.learned.into_inner() {
            self.origins.insert(id, origin);
        }
        self.read_ahead_wanted();
    }

    /// Starts reading the ranges the last answers suggest peers will ask for next.
    fn read_ahead_wanted(&mut self) {
        let wanted = std::mem::take(&mut self.read_ahead.get_mut().wanted);
        for (key, budget) in wanted {
            let ahead = self.read_ahead.get_mut();
            if ahead.ready.contains_key(&key)
                || ahead.reading.contains(&key)
                || ahead.ready.len() + ahead.reading.len() >= MAX_READ_AHEAD
            {
                continue;
            }
            ahead.reading.insert(key);
            let store = self.store.clone();
            let tx = self.internal_tx.clone();
            tokio::spawn(async move {
                let read =
                    tokio::task::spawn_blocking(move || store.envelopes_after(&key, budget)).await;
                // A failed read only loses the head start: the request reads the store itself.
                let envelopes = match read {
                    Ok(Ok(envelopes)) => envelopes,
                    Ok(Err(e)) => {
                        warn!(error = %e, "cannot read envelopes ahead for a sync response");
                        Vec::new()
                    }
                    Err(e) => {
                        debug!(error = %e, "read-ahead task did not finish");
                        Vec::new()
                    }
                };
                let _ = tx.send(Internal::ReadAhead { key, envelopes }).await;
            });
        }
    }

    /// Writes the messages accepted from peers that wait for the store as one batch, unless
    /// [`MAX_WRITES_IN_FLIGHT`] batches are being written already.
    fn store_received(&mut self) {
        if self.received.is_empty() || self.received_writes >= MAX_WRITES_IN_FLIGHT {
            return;
        }
        self.received_writes += 1;
        let batch = std::mem::take(&mut self.received);
        self.pending_writes += 1;
        let named: Vec<FetchWanted> = batch
            .iter()
            .filter_map(|m| {
                let (from, place, refs) = self.accepted_attachments.remove(&m.id)?;
                Some(FetchWanted::named_by(m.id, place, refs, Some(from)))
            })
            .flatten()
            .collect();
        let store = self.store.clone();
        let attachments = self.attachments.clone();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let ids: Vec<MessageId> = batch.iter().map(|m| m.id).collect();
            if let Err(e) = attached::index_ahead(&attachments, &named).await {
                warn!(error = %e, "cannot index the attachments of received messages; they are not stored now and are asked for again");
                let _ = tx
                    .send(Internal::Durable {
                        ids: Vec::new(),
                        failed: ids,
                        named: Vec::new(),
                    })
                    .await;
                return;
            }
            let (durable, failed) = match store.insert_messages(batch).await {
                Ok(outcomes) => {
                    let mut durable = Vec::new();
                    let mut failed = Vec::new();
                    for (id, outcome) in ids.into_iter().zip(outcomes) {
                        if outcome == crate::store::Inserted::Conflict {
                            warn!(id = %id.short(), "an author used one sequence number twice; keeping the first");
                            failed.push(id);
                        } else {
                            durable.push(id);
                        }
                    }
                    (durable, failed)
                }
                Err(e) => {
                    warn!(error = %e, "cannot store received messages");
                    (Vec::new(), ids)
                }
            };
            let _ = tx
                .send(Internal::Durable {
                    ids: durable,
                    failed,
                    named,
                })
                .await;
        });
    }

    // ----- engine output -----------------------------------------------------------------

    fn drain(&mut self) {
        self.store_local_posts();
        let mut batch: Vec<NewMessage> = Vec::new();
        let mut controls: Vec<(GroupId, u64, Vec<u8>)> = Vec::new();
        let mut receipts: Vec<crate::store::NewReceipt> = Vec::new();
        while let Some(event) = self.engine.poll_event() {
            let accepted = match &event {
                Event::MessageAccepted { id, .. } => Some(*id),
                _ => None,
            };
            let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.on_event(event, &mut batch, &mut controls, &mut receipts);
            }));
            if let Err(panic) = step {
                self.note_fault("event", panic.as_ref());
                if let Some(id) = accepted {
                    // Not stored: forgotten by the engine, so that it is fetched again.
                    self.engine.handle_store_failed(&[id]);
                }
            }
        }
        if !controls.is_empty() {
            let store = self.store.clone();
            tokio::spawn(async move {
                for (group, seq, event) in controls {
                    if let Err(e) = store.insert_control(&group, seq, &event).await {
                        warn!(group = %group.short(), seq, error = %e, "cannot store a control event");
                    }
                }
            });
        }
        if !receipts.is_empty() {
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.insert_receipts(receipts).await {
                    warn!(error = %e, "cannot store receipts");
                }
            });
        }
        self.received.extend(batch);
        self.store_received();
        while let Some(t) = self.engine.poll_transmit() {
            if let Some(conn) = self.conns.get(&t.peer) {
                if conn.tx.try_send(t.frame).is_err() {
                    debug!(peer = %t.peer.short(), "outbound queue full; frame dropped");
                }
            }
        }
    }

    /// Handles one event of the engine within a drain: what is to be stored joins `batch`,
    /// `controls` or `receipts`.
    fn on_event(
        &mut self,
        event: Event,
        batch: &mut Vec<NewMessage>,
        controls: &mut Vec<(GroupId, u64, Vec<u8>)>,
        receipts: &mut Vec<crate::store::NewReceipt>,
    ) {
        match event {
            Event::MessageAccepted {
                from,
                id,
                header,
                envelope,
                attachments,
            } => {
                debug!(peer = %from.short(), id = %id.short(), "message accepted");
                self.metrics.message_received();
                #[cfg(test)]
                faults::at_accept(&header.author);
                self.note_origin(id, &header);
                if !attachments.is_empty()
                    && self.accepted_attachments.len() < MAX_PENDING_ATTACHMENTS
                {
                    self.accepted_attachments
                        .insert(id, (from, header.place(), attachments));
                }
                batch.push(NewMessage {
                    id,
                    place: header.place(),
                    envelope,
                    meta: now().0.to_be_bytes().to_vec(),
                });
            }
            Event::ControlApplied { group, seq, event } => {
                info!(group = %group.short(), seq, "control event applied");
                controls.push((group, seq, event));
            }
            Event::PeerDescriptor {
                peer,
                descriptor,
                bytes,
            } => self.on_descriptor(peer, *descriptor, &bytes),
            // This node's own receipts are not stored: they went to the author, and its
            // own store already says when it stored each message (see `receipts`). A
            // peer's may name messages still being written, which the store leaves out.
            // The engine found the origin of every message named (the store's author
            // index confirms each before indexing the receipt by place).
            Event::Receipt { receiver, .. } if receiver == self.me => {
                self.metrics.receipt(true);
            }
            Event::Receipt {
                group,
                receiver,
                messages,
                bytes,
            } => {
                self.metrics.receipt(false);
                let messages = messages
                    .iter()
                    .filter_map(|id| {
                        let o = self.origins.get(id).filter(|o| o.group == group)?;
                        Some((*id, *o))
                    })
                    .collect();
                receipts.push(crate::store::NewReceipt {
                    receiver,
                    messages,
                    bytes,
                });
            }
            Event::Directory {
                node,
                descriptor,
                bytes,
            } => {
                debug!(node = %node.short(), name = %descriptor.name, "directory entry learned");
                self.directory.insert(node, *descriptor);
                let stored = self
                    .store
                    .put_meta(&format!("{DIRECTORY_PREFIX}{node}"), &bytes);
                tokio::spawn(async move {
                    if let Err(e) = stored.await {
                        warn!(error = %e, "cannot store a directory entry");
                    }
                });
            }
            Event::Acked { peer, ids } => {
                debug!(peer = %peer.short(), count = ids.len(), "acknowledged");
                if self.events.receiver_count() > 0 {
                    let ids = ids.into();
                    let _ = self.events.send(NodeEvent::Acked { peer, ids });
                }
            }
            Event::Rejected { peer, reason } => {
                self.metrics.rejected(&reason);
                warn!(peer = %peer.short(), %reason, "rejected input from peer");
            }
            Event::Refused { peer, reason } => {
                info!(peer = %peer.short(), %reason, "refused input relayed by peer");
            }
            Event::Rosters { peer, rosters } => self.on_rosters(peer, rosters),
            Event::Rotations { peer, statements } => self.on_rotations(peer, statements),
            Event::OwnMessagesElsewhere {
                group,
                epoch,
                peer,
                held_by_peer,
                held_here,
            } => {
                warn!(
                    group = %group.short(),
                    epoch,
                    peer = %peer.short(),
                    held_by_peer,
                    held_here,
                    "a peer holds messages this node posted that its store lacks (restored from a backup, or its newest records lost); new posts continue after the peer's, and the missing ones are fetched back"
                );
            }
            Event::Disconnect { peer } => {
                warn!(peer = %peer.short(), "dropping peer after repeated invalid input");
                if let Some(c) = self.conns.remove(&peer) {
                    c.conn.close(1u32.into(), b"too many invalid frames");
                    self.engine.handle_disconnected(&peer);
                    self.set_connected(&peer, false);
                }
            }
            _ => {}
        }
    }

    fn on_descriptor(&mut self, peer: NodeId, descriptor: Descriptor, bytes: &[u8]) {
        let Some(entry) = self.peers.get_mut(&peer) else {
            return;
        };
        debug!(peer = %peer.short(), name = %descriptor.name, "descriptor received");
        let changed = entry.record.descriptor.as_deref() != Some(&hex::encode(bytes));
        entry.descriptor = Some(descriptor.clone());
        if changed {
            entry.record.descriptor = Some(hex::encode(bytes));
            if entry.pinned {
                self.persist_peer(peer);
            } else {
                // Known through a roster: kept as a directory entry, so that it can be added to
                // a group after a restart before it connects again.
                self.directory.insert(peer, descriptor);
                let stored = self
                    .store
                    .put_meta(&format!("{DIRECTORY_PREFIX}{peer}"), bytes);
                tokio::spawn(async move {
                    if let Err(e) = stored.await {
                        warn!(error = %e, "cannot store a directory entry");
                    }
                });
            }
        }
    }

    fn persist_peer(&self, peer: NodeId) {
        let Some(entry) = self.peers.get(&peer).filter(|e| e.pinned) else {
            return;
        };
        let Ok(bytes) = serde_json::to_vec(&entry.record) else {
            return;
        };
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.put_peer(&peer, &bytes).await {
                warn!(error = %e, "cannot store a peer record");
            }
        });
    }

    fn set_connected(&mut self, peer: &NodeId, up: bool) {
        if let Some(entry) = self.peers.get(peer) {
            entry.connected.send_replace(up);
        }
    }

    // ----- internal messages -------------------------------------------------------------

    fn on_internal(&mut self, msg: Internal) {
        match msg {
            Internal::ConnUp {
                peer,
                conn,
                initiator,
            } => self.on_conn_up(peer, conn, initiator),
            Internal::ConnDown { peer, id } => {
                if self.conns.get(&peer).is_some_and(|c| c.id == id) {
                    self.conns.remove(&peer);
                    self.connections
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&peer);
                    self.engine.handle_disconnected(&peer);
                    self.set_connected(&peer, false);
                    info!(peer = %peer.short(), "peer disconnected");
                }
            }
            Internal::DialFailed { peer, error } => {
                if let Some(entry) = self.peers.get_mut(&peer) {
                    entry.last_error = Some(error);
                }
            }
            Internal::Durable { ids, failed, named } => {
                self.pending_writes = self.pending_writes.saturating_sub(1);
                self.received_writes = self.received_writes.saturating_sub(1);
                if !failed.is_empty() {
                    self.engine.handle_store_failed(&failed);
                    for id in &failed {
                        self.origins.remove(id);
                        self.accepted_attachments.remove(id);
                    }
                }
                // Written, and indexed before that: fetch the eager ones.
                let written: HashSet<MessageId> = ids.iter().copied().collect();
                self.fetch_eager(
                    named
                        .into_iter()
                        .filter(|w| written.contains(&w.message))
                        .collect(),
                );
                self.metrics.stored_from_peers(ids.len());
                self.engine.handle_durable(now(), &ids);
                if self.events.receiver_count() > 0 && !ids.is_empty() {
                    let _ = self.events.send(NodeEvent::Durable {
                        ids: ids.as_slice().into(),
                    });
                }
                self.publish_fresh(ids.iter().map(|id| (*id, None)));
            }
            Internal::ReadAhead { key, envelopes } => {
                let ahead = self.read_ahead.get_mut();
                ahead.reading.remove(&key);
                if !envelopes.is_empty() {
                    if ahead.ready.len() >= MAX_READ_AHEAD {
                        // Ranges nobody asked for (a peer went away): drop them all.
                        ahead.ready.clear();
                    }
                    ahead.ready.insert(key, envelopes);
                }
            }
            Internal::PostsStaged { ticket } => self.on_posts_staged(ticket),
            Internal::PostsStored {
                posts,
                result,
                staged,
            } => self.on_posts_stored(posts, result, staged),
            Internal::KeysRotated(rotated) => self.on_keys_rotated(*rotated),
            Internal::CloseRotated(conns) => {
                for (peer, id) in conns {
                    if self.conns.get(&peer).is_some_and(|c| c.id == id) {
                        if let Some(c) = self.conns.remove(&peer) {
                            c.conn.close(4u32.into(), b"key rotated");
                        }
                        self.engine.handle_disconnected(&peer);
                        self.set_connected(&peer, false);
                    }
                }
            }
            Internal::ControlStored {
                event,
                result,
                reply,
            } => {
                self.pending_writes = self.pending_writes.saturating_sub(1);
                let outcome = result.and_then(|()| {
                    self.engine
                        .commit_local_control(now(), &event)
                        .map_err(Error::from)
                });
                match (reply, outcome) {
                    (ControlReply::Created(r), o) => {
                        let _ = r.send(o);
                    }
                    (ControlReply::Changed(r, warnings), Ok(gid)) => {
                        let _ = r.send(self.group_view(&gid).map(|mut view| {
                            view.warnings = warnings;
                            view
                        }));
                    }
                    (ControlReply::Changed(r, _), Err(e)) => {
                        let _ = r.send(Err(e));
                    }
                    (ControlReply::Quiet, Ok(gid)) => {
                        info!(group = %gid.short(), "group changed by this node on its own");
                        self.quiet_done(&gid);
                    }
                    (ControlReply::Quiet, Err(e)) => {
                        warn!(error = %e, "cannot change a group");
                        if let Ok((_, parsed)) = liaison_protocol::group::decode_control(&event) {
                            self.quiet_done(&parsed.group);
                        }
                    }
                }
            }
            Internal::ServeAttachment {
                peer,
                request,
                reply,
            } => {
                let _ = reply.send(self.serve_attachment(peer, &request));
            }
            Internal::FetchDone { id, result } => {
                self.fetching.remove(&id);
                match result {
                    Ok(()) => info!(attachment = %id.short(), "attachment held whole"),
                    Err(Error::ShuttingDown) => {}
                    Err(e) => {
                        warn!(attachment = %id.short(), error = %e, "attachment fetch stopped")
                    }
                }
                self.start_fetches();
            }
        }
    }

    fn on_conn_up(&mut self, peer: NodeId, conn: quinn::Connection, initiator: NodeId) {
        match self.peers.get(&peer).map(|p| p.blocked.is_some()) {
            None => {
                conn.close(2u32.into(), b"not an admitted peer");
                return;
            }
            Some(true) => {
                // Blocked between the handshake and now (revoked, rotated away, expired).
                conn.close(4u32.into(), b"not admitted");
                return;
            }
            Some(false) => {}
        }
        let preferred = |init: NodeId| init == peer.min(self.me);
        if let Some(existing) = self.conns.get(&peer) {
            let keep_existing = existing.conn.close_reason().is_none()
                && existing.since.elapsed() < DIAL_RACE
                && (preferred(existing.initiator) || !preferred(initiator));
            if keep_existing {
                conn.close(3u32.into(), b"duplicate connection");
                return;
            }
            existing.conn.close(3u32.into(), b"duplicate connection");
            self.engine.handle_disconnected(&peer);
        }
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        tokio::spawn(
            connection_task(
                conn.clone(),
                peer,
                id,
                rx,
                self.inbound_tx.clone(),
                self.internal_tx.clone(),
                self.shutdown.clone(),
                self.attachments.clone(),
            )
            .instrument(info_span!("conn", peer = %peer.short(), id)),
        );
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(peer, conn.clone());
        info!(peer = %peer.short(), remote = %conn.remote_address(), "peer connected");
        self.conns.insert(
            peer,
            Conn {
                id,
                initiator,
                conn,
                tx,
                since: std::time::Instant::now(),
            },
        );
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.last_error = None;
        }
        self.set_connected(&peer, true);
        self.engine.handle_connected(now(), peer);
        self.send_federation(peer);
    }

    // ----- commands ----------------------------------------------------------------------

    fn on_command(&mut self, cmd: Command) {
        self.on_command_as(&Principal::Admin, cmd);
    }

    fn on_command_as(&mut self, who: &Principal, cmd: Command) {
        match cmd {
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Peers(reply) => {
                let _ = reply.send(self.peers.values().map(|p| self.peer_view(p)).collect());
            }
            Command::AddPeer {
                name,
                node,
                address,
                reply,
            } => self.pin(name, node, address, false, reply),
            Command::ReplacePeer {
                name,
                node,
                address,
                reply,
            } => self.pin(name, node, address, true, reply),
            Command::LoadRoster { bytes, reply } => self.load_roster(bytes, reply),
            Command::Rosters(reply) => {
                let _ = reply.send(self.trust.views(&self.me, now()));
            }
            Command::RotateKeys {
                exchange_only,
                reply,
            } => self.rotate_keys(exchange_only, reply),
            Command::RemovePeer { peer, reply } => match self.remove_peer(&peer) {
                // Answer once the removal is on disk.
                Ok(node) => {
                    let store = self.store.clone();
                    tokio::spawn(async move {
                        let result = store
                            .remove_peer(&node)
                            .await
                            .map(|_| ())
                            .map_err(Error::from);
                        let _ = reply.send(result);
                    });
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::Groups(reply) => {
                let groups: Vec<GroupId> = self
                    .engine
                    .groups()
                    .map(|g| g.id())
                    .filter(|g| who.access(g).is_some())
                    .collect();
                let _ = reply.send(
                    groups
                        .iter()
                        .filter_map(|g| self.group_view(g).ok())
                        .collect(),
                );
            }
            Command::Group { group, reply } => {
                let _ = reply.send(
                    self.resolve_visible_group(who, &group)
                        .and_then(|g| self.group_view(&g)),
                );
            }
            Command::CreateGroup { name, reply } => self.create_group(name, reply),
            Command::AddMember {
                group,
                peer,
                role,
                reply,
            } => self.change_member(&group, &peer, Some(role), reply),
            Command::RemoveMember { group, peer, reply } => {
                self.change_member(&group, &peer, None, reply);
            }
            Command::Post {
                group,
                mut post,
                reply,
            } => {
                if *who != Principal::Admin {
                    who.name().clone_into(&mut post.officer);
                }
                self.post(who, &group, post, None, reply);
            }
            Command::PostEach {
                group,
                items,
                reply,
            } => {
                for mut item in items {
                    if *who != Principal::Admin {
                        who.name().clone_into(&mut item.post.officer);
                    }
                    self.post(who, &group, item.post, item.audit, item.reply);
                }
                let _ = reply.send(());
            }
            Command::Inbox { group, reply } => {
                let _ = reply.send(self.inbox(who, group.as_deref()));
            }
            Command::Read { id, reply } => {
                let _ = reply.send(self.read(who, &id, true));
            }
            Command::ResolveId { prefix, reply } => self.resolve_id(who, prefix, reply),
            Command::Receipts { id, reply } => {
                let _ = reply.send(self.receipts(who, &id));
            }
            Command::Export {
                group,
                include_nominal,
                reply,
            } => {
                let _ = reply.send(self.export(who, &group, include_nominal));
            }
            Command::Thread { id, reply } => {
                let _ = reply.send(self.thread(who, &id));
            }
            Command::Stats { group, reply } => {
                let _ = reply.send(self.stats(who, &group));
            }
            Command::Attachment { id, reply } => {
                let _ = reply.send(self.open_attachment(who, &id));
            }
            Command::Subscribe(reply) => {
                let _ = reply.send(self.new_messages.subscribe());
            }
            Command::Metrics(reply) => {
                let _ = reply.send(self.metrics_snapshot());
            }
            Command::Quarantine { id, reason, reply } => self.quarantine(who, id, reason, reply),
            Command::Release { id, reply } => self.release(who, id, reply),
            Command::Quarantined(reply) => {
                let _ = reply.send(self.quarantine_list(who));
            }
            Command::As(inner_who, inner) => self.on_command_as(&inner_who, *inner),
        }
    }

    fn status(&self) -> Status {
        Status {
            node_id: self.me.to_string(),
            name: self.name.clone(),
            quic_addr: self.quic_addr.to_string(),
            api_addr: self.api_addr.to_string(),
            peers: self.peers.len(),
            connected: self.conns.len(),
            groups: self.engine.groups().count(),
            messages: self.store.message_count(),
            in_flight: self.engine.in_flight(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            faults: self.faults,
            store: crate::views::StoreStatus::of(&self.store.health()),
            rosters: self.roster_status(),
            roster_warning: self.roster_warning(),
            restore: self.restore_status(),
        }
    }

    fn peer_view(&self, p: &PeerEntry) -> PeerView {
        let state = if self.conns.contains_key(&p.node) {
            "connected"
        } else if p.last_error.is_some() {
            "disconnected"
        } else {
            "connecting"
        };
        let state = match (&p.blocked, state) {
            (Some(_), "connected") => "connected",
            (Some(_), _) => "blocked",
            (None, s) => s,
        };
        PeerView {
            name: p.record.name.clone(),
            node_id: p.node.to_string(),
            address: p.record.address.clone(),
            state: state.to_owned(),
            descriptor_name: p.descriptor.as_ref().map(|d| d.name.clone()),
            last_error: p.last_error.clone(),
            source: match (p.pinned, p.roster.is_some()) {
                (true, true) => "pin+roster",
                (true, false) => "pin",
                (false, _) => "roster",
            }
            .to_owned(),
            blocked: p.blocked.clone(),
        }
    }

    /// Pins a peer and answers once the pin is on disk; with `replace`, in place of the pin
    /// that has its name or node id.
    fn pin(
        &mut self,
        name: String,
        node: NodeId,
        address: String,
        replace: bool,
        reply: oneshot::Sender<Result<PeerView>>,
    ) {
        match self.add_peer(name, node, address, replace) {
            Ok((view, record, unpinned)) => {
                let store = self.store.clone();
                tokio::spawn(async move {
                    let result = async {
                        if let Some(old) = unpinned {
                            store.remove_peer(&old).await?;
                        }
                        store.put_peer(&node, &record).await
                    }
                    .await
                    .map(|()| view)
                    .map_err(Error::from);
                    let _ = reply.send(result);
                });
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Pins a peer; returns its view, the record to store and the node whose pin it replaced.
    /// A name or node id already pinned is refused unless `replace`; the same pin again changes
    /// nothing.
    fn add_peer(
        &mut self,
        name: String,
        node: NodeId,
        address: String,
        replace: bool,
    ) -> Result<(PeerView, Vec<u8>, Option<NodeId>)> {
        if node == self.me {
            return Err(Error::Invalid("that node id is this node's own".into()));
        }
        liaison_protocol::fields::check_node_name(&name)
            .map_err(|e| Error::Invalid(format!("peer name {name:?}: {e}")))?;
        liaison_protocol::fields::check_address(&address).map_err(|e| {
            Error::Invalid(format!(
                "address {address:?}: {e} (as `liaison id` prints it)"
            ))
        })?;
        if let Some(why) = self.trust.blocked(&node) {
            return Err(Error::Conflict(format!(
                "node {} cannot be a peer: {why}",
                node.short()
            )));
        }
        if let Ok(Some(other)) = self.trust.resolve_name(&name) {
            if other != node {
                return Err(Error::Conflict(format!(
                    "the federation roster gives the name {name:?} to node {}; pin this node under another name",
                    other.short()
                )));
            }
        }
        if let Some(same) = self.peers.get(&node).filter(|p| p.pinned) {
            if same.record.name == name && same.record.address == address {
                let record =
                    serde_json::to_vec(&same.record).map_err(|e| Error::Invalid(e.to_string()))?;
                return Ok((self.peer_view(same), record, None));
            }
            if !replace {
                return Err(Error::Conflict(format!(
                    "node {} is already pinned as {:?} at {}; `liaison peer add --replace` changes the pin",
                    node.short(),
                    same.record.name,
                    same.record.address
                )));
            }
        }
        let mut unpinned = None;
        if let Some(existing) = self
            .peers
            .values()
            .find(|p| p.pinned && p.record.name == name && p.node != node)
            .map(|p| p.node)
        {
            if !replace {
                return Err(Error::Conflict(format!(
                    "another peer is already named {name:?} ({}); `liaison peer add --replace` replaces its pin",
                    existing.short()
                )));
            }
            if let Some(old) = self.peers.remove(&existing) {
                old.dialer.cancel();
            }
            self.allow.remove(existing.as_bytes());
            if let Some(c) = self.conns.remove(&existing) {
                c.conn.close(4u32.into(), b"peer replaced");
                self.engine.handle_disconnected(&existing);
            }
            info!(peer = %existing.short(), "pin replaced");
            unpinned = Some(existing);
        }
        let roster = self.trust.entries(&self.me).remove(&node);
        let record = PeerRecord {
            name,
            node_id: node.to_string(),
            address,
            descriptor: None,
        };
        self.insert_peer(node, record, true, roster);
        info!(peer = %node.short(), "peer pinned");
        let entry = self.peers.get(&node).ok_or(Error::ShuttingDown)?;
        let record =
            serde_json::to_vec(&entry.record).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok((self.peer_view(entry), record, unpinned))
    }

    /// Unpins a peer and drops its connection; returns its id for the store update.
    fn remove_peer(&mut self, sel: &str) -> Result<NodeId> {
        let node = self.resolve_peer(sel)?;
        if !self.peers.get(&node).is_some_and(|p| p.pinned) {
            return Err(Error::Conflict(format!(
                "peer {sel:?} is not pinned: a federation roster admits it (refuse it with federation.refuse in node.toml)"
            )));
        }
        if let Some(entry) = self.trust.entries(&self.me).remove(&node) {
            // Still admitted by a roster: it stays a peer, connection and all.
            let record = trust::roster_record(&entry, self.peers.get(&node));
            self.insert_peer(node, record, false, Some(entry));
            info!(peer = %node.short(), "pin removed; the roster still admits the peer");
            return Ok(node);
        }
        if let Some(entry) = self.peers.remove(&node) {
            entry.dialer.cancel();
        }
        self.allow.remove(node.as_bytes());
        if let Some(c) = self.conns.remove(&node) {
            c.conn.close(4u32.into(), b"peer removed");
            self.engine.handle_disconnected(&node);
        }
        info!(peer = %node.short(), "peer removed");
        Ok(node)
    }

    /// A peer by node id, or by name: the name it is pinned under or its roster name (a
    /// node's self-chosen descriptor name is never used).
    fn resolve_peer(&self, sel: &str) -> Result<NodeId> {
        if let Ok(id) = sel.parse::<NodeId>() {
            if self.peers.contains_key(&id) {
                return Ok(id);
            }
        }
        // A pinned peer answers to its pin name and to its roster name.
        let named: Vec<NodeId> = self
            .peers
            .values()
            .filter(|p| p.record.name == sel || p.roster.as_ref().is_some_and(|e| e.name == sel))
            .map(|p| p.node)
            .collect();
        match named.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::NotFound(format!(
                "unknown peer {sel:?}: `liaison peer list` shows the pinned peers and those a federation roster admits"
            ))),
            _ => Err(Error::Invalid(format!(
                "several peers answer to {sel:?} (a pin and a roster entry); give the node id"
            ))),
        }
    }

    /// The node to admit to a group, the member name the owner states for it, and the key its
    /// group keys are wrapped to. By name, only a pinned peer or a roster entry (never a name
    /// some node gave itself); a node known only through the directory, by its node id.
    fn resolve_candidate(&self, sel: &str) -> Result<(NodeId, String, ExchangeKey)> {
        let node = match sel.parse::<NodeId>() {
            Ok(id) => id,
            Err(_) => self.resolve_peer(sel)?,
        };
        if let Some(why) = self.trust.blocked(&node) {
            return Err(Error::Conflict(format!(
                "node {} cannot be added: {why}",
                node.short()
            )));
        }
        let entry = self.peers.get(&node);
        let descriptor = entry
            .and_then(|p| p.descriptor.as_ref())
            .or_else(|| self.directory.get(&node));
        let name = match entry {
            Some(p) => p.record.name.clone(),
            None => {
                let d = descriptor.ok_or_else(|| {
                    Error::NotFound(format!(
                        "node {} is neither a peer nor known through one: pin it with `liaison peer add`, or wait until a peer that knows it connects",
                        node.short()
                    ))
                })?;
                // Known only by its own descriptor: its name is taken only if nobody else
                // answers to it.
                if self.resolve_peer(&d.name).is_ok()
                    || self.trust.resolve_name(&d.name).ok().flatten().is_some()
                {
                    return Err(Error::Conflict(format!(
                        "node {} calls itself {:?}, which is another node's name; pin it under a name of your choice first",
                        node.short(),
                        d.name
                    )));
                }
                d.name.clone()
            }
        };
        let exchange_key = self
            .trust
            .exchange_key(&node)
            .or_else(|| descriptor.map(|d| d.exchange_key))
            .ok_or_else(|| {
                Error::Conflict(format!(
                    "peer {name:?} has not connected yet, so its key for receiving group keys is unknown; wait until `liaison peer list` shows it connected"
                ))
            })?;
        Ok((node, name, exchange_key))
    }

    /// A current member of `group` by node id or member name.
    fn resolve_member(&self, group: &GroupId, sel: &str) -> Option<NodeId> {
        let state = self.engine.group(group)?;
        if let Ok(node) = sel.parse::<NodeId>() {
            return state.members().contains_key(&node).then_some(node);
        }
        let named: Vec<NodeId> = state
            .members()
            .iter()
            .filter(|(_, m)| m.name == sel)
            .map(|(n, _)| *n)
            .collect();
        match named.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// A group `who` may see; any other group answers exactly like a group that does not
    /// exist, so that its existence is not revealed.
    fn resolve_visible_group(&self, who: &Principal, sel: &str) -> Result<GroupId> {
        match self.resolve_group(sel) {
            Ok(g) if who.access(&g).is_some() => Ok(g),
            Ok(_) => Err(Error::NotFound(format!(
                "unknown group {sel:?}: `liaison group list` shows the groups"
            ))),
            Err(Error::Invalid(_)) if *who != Principal::Admin => Err(Error::NotFound(format!(
                "unknown group {sel:?}: `liaison group list` shows the groups"
            ))),
            Err(e) => Err(e),
        }
    }

    fn export(&self, who: &Principal, group: &str, include_nominal: bool) -> Result<ExportView> {
        let gid = self.resolve_visible_group(who, group)?;
        let mut exported = Vec::new();
        let mut refused = Vec::new();
        for id in self.store.group_messages(&gid)? {
            let mut view = match self.read(who, &id, true) {
                Ok(v) => v,
                Err(Error::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            if !include_nominal {
                view.nominal_withheld = crate::records::withhold_nominal(&mut view);
            }
            let reason = match view.handling.as_str() {
                "red" => Some("TLP:RED is for its named recipients only and is never exported"),
                "amber+strict" => Some("TLP:AMBER+STRICT may not leave the organisation"),
                _ => None,
            };
            match reason {
                Some(r) => refused.push(Refused {
                    id: view.id,
                    handling: view.handling,
                    reason: r.to_owned(),
                }),
                None => exported.push(view),
            }
        }
        exported.sort_by_key(|m| m.created_at_ms);
        Ok(ExportView {
            group_id: gid.to_string(),
            exported,
            refused,
        })
    }

    fn resolve_group(&self, sel: &str) -> Result<GroupId> {
        if let Ok(id) = sel.parse::<GroupId>() {
            if self.engine.group(&id).is_some() {
                return Ok(id);
            }
        }
        let matches: Vec<GroupId> = self
            .engine
            .groups()
            .filter(|g| g.name() == sel)
            .map(|g| g.id())
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::NotFound(format!(
                "unknown group {sel:?}: `liaison group list` shows the groups"
            ))),
            many => Err(Error::Invalid(format!(
                "group name {sel:?} is ambiguous; use one of the ids {}",
                many.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    fn node_name(&self, node: &NodeId, group: Option<&GroupId>) -> String {
        if *node == self.me {
            return self.name.clone();
        }
        if let Some(p) = self.peers.get(node) {
            return p.record.name.clone();
        }
        if let Some(state) = group.and_then(|g| self.engine.group(g)) {
            for epoch in (1..=state.epoch()).rev() {
                if let Some(m) = state.members_at(epoch).and_then(|m| m.get(node)) {
                    return m.name.clone();
                }
            }
        }
        node.short()
    }

    fn group_view(&self, id: &GroupId) -> Result<GroupView> {
        let g = self
            .engine
            .group(id)
            .ok_or_else(|| Error::NotFound(format!("unknown group {id}")))?;
        let role = g
            .role(&self.me)
            .map_or("removed".to_owned(), |r| r.to_string());
        Ok(GroupView {
            id: id.to_string(),
            name: g.name().to_owned(),
            owner_id: g.owner().to_string(),
            owner_name: g
                .members()
                .get(&g.owner())
                .or_else(|| g.members_at(1).and_then(|m| m.get(&g.owner())))
                .map_or_else(|| g.owner().short(), |m| m.name.clone()),
            epoch: g.epoch(),
            role,
            owner_revoked: self.trust.view().revocation(&g.owner()).is_some(),
            members: g
                .members()
                .iter()
                .map(|(node, m)| MemberView {
                    node_id: node.to_string(),
                    name: m.name.clone(),
                    role: m.role.to_string(),
                })
                .collect(),
            removed: g
                .removed()
                .map(|(node, epoch)| {
                    let cutoff: Vec<crate::views::CutoffView> = g
                        .epochs_of(&node)
                        .filter_map(|e| {
                            g.cutoff(&node, e)
                                .map(|last_seq| crate::views::CutoffView { epoch: e, last_seq })
                        })
                        .collect();
                    RemovedView {
                        node_id: node.to_string(),
                        name: self.node_name(&node, Some(id)),
                        removed_in_epoch: epoch,
                        cutoff: (!cutoff.is_empty()).then_some(cutoff),
                    }
                })
                .collect(),
            warnings: Vec::new(),
        })
    }

    fn create_group(&mut self, name: String, reply: oneshot::Sender<Result<GroupId>>) {
        // A second group of the same name would make every lookup by that name ambiguous.
        if let Some(existing) = self.engine.groups().find(|g| g.name() == name) {
            let _ = reply.send(Err(Error::Conflict(format!(
                "a group named {name:?} exists already ({}); choose another name",
                existing.id()
            ))));
            return;
        }
        let proposed = self
            .engine
            .propose_create(&self.name, &name, now(), &mut OsRng);
        match proposed {
            Ok((gid, event)) => self.store_control(gid, 1, event, ControlReply::Created(reply)),
            Err(e) => {
                let _ = reply.send(Err(e.into()));
            }
        }
    }

    fn change_member(
        &mut self,
        group: &str,
        peer: &str,
        role: Option<Role>,
        reply: oneshot::Sender<Result<GroupView>>,
    ) {
        let mut warnings = Vec::new();
        let result = (|| {
            let gid = self.resolve_group(group)?;
            let change = match role {
                Some(role) => {
                    let (member, name, exchange_key) = self.resolve_candidate(peer)?;
                    warnings.extend(self.unreachable_warning(&member, &name));
                    Change::Add {
                        member,
                        name,
                        role,
                        exchange_key,
                    }
                }
                None => {
                    let member = match self.resolve_peer(peer) {
                        Ok(n) => n,
                        Err(e) => self.resolve_member(&gid, peer).ok_or(e)?,
                    };
                    let event = self
                        .engine
                        .propose_remove(&gid, &member, now(), &mut OsRng)?;
                    let seq = self.engine.group(&gid).map_or(0, |g| g.seq()) + 1;
                    return Ok((gid, seq, event));
                }
            };
            let event = self.engine.propose(&gid, change, now(), &mut OsRng)?;
            let seq = self.engine.group(&gid).map_or(0, |g| g.seq()) + 1;
            Ok((gid, seq, event))
        })();
        match result {
            Ok((gid, seq, event)) => {
                self.store_control(gid, seq, event, ControlReply::Changed(reply, warnings))
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Why a new member `node` may never receive the group's messages, if this node sees no way
    /// to it. This node passes a group's messages to the members it is connected to, and they
    /// pass them on to the members they are connected to; it sees only its own connections. So
    /// a member that is neither a peer this node dials (pinned, or in a roster with an address)
    /// nor connected to it now gets the messages only if some member it is connected to passes
    /// them on, which this node cannot check.
    fn unreachable_warning(&self, node: &NodeId, name: &str) -> Option<String> {
        let dialled = self
            .peers
            .get(node)
            .is_some_and(|p| p.blocked.is_none() && !p.record.address.is_empty());
        if dialled || self.conns.contains_key(node) {
            return None;
        }
        Some(format!(
            "{name} ({}) is not a peer of this node and not connected to it: it receives the \
             group's messages only if a member it is connected to passes them on, which this \
             node cannot see. Pin it (`liaison peer add`) so that this node reaches it itself",
            node.short()
        ))
    }

    fn store_control(&mut self, gid: GroupId, seq: u64, event: Vec<u8>, reply: ControlReply) {
        self.pending_writes += 1;
        let store = self.store.clone();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let result = store
                .insert_control(&gid, seq, &event)
                .await
                .map(|_| ())
                .map_err(Error::from);
            let _ = tx
                .send(Internal::ControlStored {
                    event,
                    result,
                    reply,
                })
                .await;
        });
    }

    fn post(
        &mut self,
        who: &Principal,
        group: &str,
        post: Post,
        audit: Option<crate::audit::PostAudit>,
        reply: oneshot::Sender<Result<MessageId>>,
    ) {
        let result = (|| {
            let gid = self.resolve_visible_group(who, group)?;
            if who.access(&gid) != Some(Access::Post) {
                return Err(Error::Forbidden(format!(
                    "officer {} may only read group {}",
                    who.name(),
                    self.engine.group(&gid).map_or("", |g| g.name())
                )));
            }
            if post.handling == Handling::Red && post.recipients.is_empty() {
                return Err(Error::Invalid(
                    "a TLP:RED message needs its recipients: --to OFFICER@NODE (repeatable)".into(),
                ));
            }
            let state = self.engine.group(&gid).ok_or(UsageError::NotAMember(gid))?;
            let known = |name: &str| self.resolve_peer(name).ok();
            let recipients = crate::names::resolve_recipients(
                state,
                self.me,
                &self.name,
                &known,
                &post.recipients,
            )?;
            if let Some(parent) = &post.reply_to {
                self.check_reply(who, &gid, parent, post.record.as_deref())?;
            }
            // Before sealing, which takes the next seq: a post the store would refuse must not
            // leave a gap in this node's sequence.
            self.store.check_room()?;
            let refs = post
                .attachments
                .iter()
                .map(|id| self.attachments.pending(who.name(), id))
                .collect::<Result<Vec<_>>>()?;
            let payload = match (&post.record, refs.is_empty()) {
                (Some(record), _) => record.to_payload(refs.clone())?,
                (None, true) => Payload::Text {
                    subject: post.subject,
                    body: post.body,
                },
                (None, false) => Record::Note(liaison_protocol::record::Note {
                    subject: post.subject,
                    body: post.body,
                })
                .to_payload(refs.clone())?,
            };
            let content = Content {
                officer: post.officer,
                recipients,
                reply_to: post.reply_to,
                payload,
            };
            // What `Engine::seal` would refuse (membership, role, content limits) is refused
            // now; sealing itself waits for the write (see `store_local_posts`).
            let state = self
                .engine
                .group(&gid)
                .ok_or(liaison_protocol::UsageError::NotAMember(gid))?;
            message::check_draft(state, &self.me, &content)?;
            Ok((gid, content, refs))
        })();
        let (group, content, attachments) = match result {
            Ok(s) => s,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        // Sealed and stored with the other posts of this round in one write.
        self.pending_writes += 1;
        self.local_posts.push(LocalPost {
            group,
            content,
            attachments,
            handling: post.handling,
            created_at: now(),
            wait_until: std::time::Instant::now() + POST_CONFIRM_WAIT,
            reply,
            audit,
        });
    }

    fn inbox(&self, who: &Principal, group: Option<&str>) -> Result<Vec<MessageView>> {
        let groups: Vec<GroupId> = match group {
            Some(sel) => vec![self.resolve_visible_group(who, sel)?],
            None => self
                .engine
                .groups()
                .map(|g| g.id())
                .filter(|g| who.access(g).is_some())
                .collect(),
        };
        let mut out = Vec::new();
        for gid in groups {
            for id in self.store.group_messages(&gid)? {
                match self.read(who, &id, false) {
                    Ok(v) => out.push(v),
                    Err(Error::NotFound(_)) => {}
                    Err(e) => {
                        warn!(id = %id.short(), error = %e, "cannot show a stored message")
                    }
                }
            }
        }
        out.sort_by_key(|m| m.created_at_ms);
        Ok(out)
    }

    /// Whether a stored message is withheld from every view, and its attachments from every
    /// fetch and every peer: it was taken before this node learned that its author was
    /// removed, beyond the cut-off the owner recorded (no member keeps it), or that its author
    /// was revoked from a time at or before its creation.
    fn withheld(&self, state: &GroupState, header: &message::Header) -> bool {
        state.beyond_cutoff(&header.author, header.epoch, header.seq)
            || self
                .trust
                .view()
                .revocation(&header.author)
                .is_some_and(|r| header.created_at >= r.at)
    }

    fn read(&self, who: &Principal, id: &MessageId, with_body: bool) -> Result<MessageView> {
        // Before a byte of it is read: a quarantined message may be one that breaks a view.
        self.check_quarantine(who, id)?;
        #[cfg(test)]
        faults::at_view(id);
        let not_found = || Error::NotFound(format!("no message {id} on this node"));
        let bytes = self.store.message(id)?.ok_or_else(not_found)?;
        let (_, header, _) = message::decode(&bytes)?;
        if who.access(&header.group).is_none() {
            return Err(not_found());
        }
        let state = self.engine.group(&header.group).ok_or_else(not_found)?;
        if self.withheld(state, &header) {
            return Err(not_found());
        }
        let (verified, content) = message::verify_and_open(&bytes, state)?;
        let h = verified.header;
        if h.handling == Handling::Red {
            let own = h.author == self.me && content.officer == who.name();
            if !own && !crate::names::is_recipient(&content.recipients, self.me, who.name()) {
                return Err(not_found());
            }
        }
        Ok(self.view_of(id, &h, content, state, with_body))
    }

    /// The view of a message this node holds and has opened (see [`Actor::read`]).
    fn view_of(
        &self,
        id: &MessageId,
        h: &message::Header,
        content: Content,
        state: &liaison_protocol::group::GroupState,
        with_body: bool,
    ) -> MessageView {
        let recipients = content
            .recipients
            .iter()
            .map(|r| format!("{}@{}", r.officer, self.node_name(&r.node, Some(&h.group))))
            .collect();
        let shown = Shown::of(&content.payload);
        MessageView {
            id: id.to_string(),
            group_id: h.group.to_string(),
            group_name: state.name().to_owned(),
            author_id: h.author.to_string(),
            author_name: self.node_name(&h.author, Some(&h.group)),
            officer: content.officer,
            created_at: crate::views::rfc3339(h.created_at.0),
            created_at_ms: h.created_at.0,
            subject: shown.subject,
            handling: h.handling.to_string(),
            expires_at: h.expires_at.map(|t| crate::views::rfc3339(t.0)),
            reply_to: content.reply_to.map(|r| r.to_string()),
            recipients,
            epoch: h.epoch,
            seq: h.seq,
            author_removed_in_epoch: state.removed_in(&h.author),
            body: with_body.then_some(shown.body),
            kind: shown.kind,
            record: shown.record.filter(|_| with_body),
            unreadable: shown.unreadable,
            nominal_withheld: false,
            attachments: content
                .payload
                .attachments()
                .iter()
                .map(|a| crate::views::AttachmentView {
                    id: a.id.to_string(),
                    name: a.name.clone(),
                    media_type: a.media_type.clone(),
                    size: a.size,
                    held: self.attachments.is_whole(&a.id),
                })
                .collect(),
        }
    }

    fn receipts(&self, who: &Principal, id: &MessageId) -> Result<Vec<ReceiptView>> {
        // Only whoever may read the message sees its receipts.
        let message = self.read(who, id, false)?;
        let (Ok(group), Ok(author)) = (
            message.group_id.parse::<GroupId>(),
            message.author_id.parse::<NodeId>(),
        ) else {
            return Err(Error::Invalid(format!(
                "message {id} names a malformed group or author"
            )));
        };
        let origin = Place {
            group,
            author,
            epoch: message.epoch,
            seq: message.seq,
        };
        // Per receiver, the earliest time it says it stored the message.
        let mut stored: BTreeMap<NodeId, u64> = BTreeMap::new();
        for (_, bytes) in self.store.receipts(&origin)? {
            let Ok(r) = Receipt::verify(&bytes) else {
                continue;
            };
            if !r.covers(id) || r.receiver == self.me || r.group != group {
                continue;
            }
            let at = stored.entry(r.receiver).or_insert(r.stored_at.0);
            *at = (*at).min(r.stored_at.0);
        }
        let mut out: Vec<(NodeId, u64)> = stored.into_iter().collect();
        // A message from another node was stored here when it arrived (the time kept with it);
        // this node's signed receipt for it went to the author and is not kept.
        if message.author_id != self.me.to_string() {
            let arrived = self
                .store
                .message_meta(id)?
                .and_then(|m| <[u8; 8]>::try_from(m.as_slice()).ok())
                .map(u64::from_be_bytes);
            if let Some(at) = arrived {
                out.push((self.me, at));
            }
        }
        out.sort_by_key(|(receiver, _)| *receiver.as_bytes());
        Ok(out
            .into_iter()
            .map(|(receiver, at)| ReceiptView {
                receiver_id: receiver.to_string(),
                receiver_name: self.node_name(&receiver, Some(&group)),
                stored_at: crate::views::rfc3339(at),
            })
            .collect())
    }
}

// ----- helper tasks ----------------------------------------------------------------------

/// How often the files of uploads never posted are looked for (see
/// [`Attachments::sweep_unposted`]).
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Deletes, at start and then every [`SWEEP_EVERY`], the files of uploads no message names
/// and that no longer wait for one, on the blocking pool.
async fn sweep_unposted(attachments: Arc<Attachments>, shutdown: CancellationToken) {
    loop {
        let a = attachments.clone();
        match tokio::task::spawn_blocking(move || a.sweep_unposted()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => info!(files = n, "deleted the files of uploads never posted"),
            Ok(Err(e)) => warn!(error = %e, "cannot delete the files of uploads never posted"),
            Err(_) => return,
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}

async fn accept_loop(
    transport: Arc<Transport>,
    tx: mpsc::Sender<Internal>,
    shutdown: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = transport.accept() => next,
        };
        let Some((conn, key)) = next else {
            return;
        };
        let Ok(peer) = NodeId::from_bytes(key) else {
            conn.close(5u32.into(), b"invalid key");
            continue;
        };
        info!(peer = %peer.short(), remote = %conn.remote_address(), "incoming connection");
        if tx
            .send(Internal::ConnUp {
                peer,
                conn,
                initiator: peer,
            })
            .await
            .is_err()
        {
            return;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn dial_loop(
    transport: Arc<Transport>,
    me: NodeId,
    peer: NodeId,
    address: String,
    mut connected: watch::Receiver<bool>,
    tx: mpsc::Sender<Internal>,
    cancel: CancellationToken,
    min_ms: u64,
    max_ms: u64,
) {
    if address.is_empty() {
        return; // A roster entry without an address: it dials us.
    }
    let mut backoff = min_ms;
    loop {
        // Wait while connected.
        while *connected.borrow_and_update() {
            tokio::select! {
                () = cancel.cancelled() => return,
                changed = connected.changed() => if changed.is_err() { return },
            }
        }
        // A host name is resolved again at every attempt: its address may have changed.
        let ipv6 = transport.local_addr().is_ok_and(|a| a.is_ipv6());
        let resolved = tokio::select! {
            () = cancel.cancelled() => return,
            r = resolve(&address, ipv6) => r,
        };
        let dialled = match resolved {
            Ok(addr) => tokio::select! {
                () = cancel.cancelled() => return,
                r = transport.connect(addr, *peer.as_bytes()) => r.map_err(|e| e.to_string()),
            },
            Err(e) => Err(e),
        };
        match dialled {
            Ok(conn) => {
                backoff = min_ms;
                if tx
                    .send(Internal::ConnUp {
                        peer,
                        conn,
                        initiator: me,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                // Give the actor a moment to register the connection before checking again.
                let _ =
                    tokio::time::timeout(Duration::from_millis(min_ms), connected.changed()).await;
            }
            Err(e) => {
                debug!(%address, error = %e, "dial failed");
                let _ = tx.send(Internal::DialFailed { peer, error: e }).await;
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(backoff)) => {}
                    _ = connected.changed() => {}
                }
                backoff = (backoff * 2).min(max_ms);
            }
        }
    }
}

/// The socket address `address` (`HOST:PORT`, WIRE.md §2.3) stands for: the first address a
/// host name resolves to in the family of the node's own socket (`ipv6`), which is the one it
/// can send to, or else the first one.
async fn resolve(address: &str, ipv6: bool) -> std::result::Result<SocketAddr, String> {
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = liaison_protocol::fields::split_address(address) else {
        return Err(format!("{address:?} is not HOST:PORT"));
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv6() == ipv6)
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{host} resolves to no address"))
}

/// A frame from a connection on its way to the actor.
#[derive(Debug)]
enum Inbound {
    /// Bytes that do not decode: the engine rejects them (a strike against the peer).
    Raw(Vec<u8>),
    /// A decoded frame with the signatures of what it carries already checked.
    Split(sync::SplitFrame, Vec<sync::Checked>),
}

/// A frame, the peer it came from and the id of its connection.
type InboundFrame = (NodeId, u64, Inbound);

/// Decodes a frame and checks the signatures of the envelopes or receipts it carries on tokio's
/// blocking pool, spread over up to `cores` tasks, so that the actor only finishes the checks
/// that need its state (membership, decryption). Frames keep their order: the connection's
/// reader starts the checks of up to [`CHECKS_IN_FLIGHT`] frames while it reads on, and hands
/// them to the actor in the order read.
async fn check_frame(bytes: Vec<u8>, cores: usize) -> Inbound {
    // Decoding walks the whole frame (up to 4 MiB of items): on the blocking pool too, never
    // on an async worker.
    let decoded = tokio::task::spawn_blocking(move || {
        let split = sync::SplitFrame::decode(&bytes).ok();
        (bytes, split)
    })
    .await;
    let Ok((bytes, split)) = decoded else {
        // The runtime is shutting down.
        return Inbound::Raw(Vec::new());
    };
    let Some((split, items)) = split else {
        return Inbound::Raw(bytes);
    };
    if items.is_empty() {
        return Inbound::Split(split, Vec::new());
    }
    let carried = split.carried();
    let per_task = items.len().div_ceil(cores.max(1)).max(CHECK_CHUNK_MIN);
    let count = items.len();
    let mut items = items.into_iter();
    let mut tasks = Vec::new();
    loop {
        let chunk: Vec<Vec<u8>> = items.by_ref().take(per_task).collect();
        if chunk.is_empty() {
            break;
        }
        tasks.push(tokio::task::spawn_blocking(move || {
            chunk
                .into_iter()
                .map(|item| carried.check(item))
                .collect::<Vec<_>>()
        }));
    }
    let mut checked = Vec::with_capacity(count);
    for task in tasks {
        match task.await {
            Ok(part) => checked.extend(part),
            // A check task failed (the runtime is shutting down): let the engine do it all.
            Err(_) => return Inbound::Raw(bytes),
        }
    }
    Inbound::Split(split, checked)
}

#[allow(clippy::too_many_arguments)]
async fn connection_task(
    conn: quinn::Connection,
    peer: NodeId,
    id: u64,
    mut outbound: mpsc::Receiver<Vec<u8>>,
    inbound: mpsc::Sender<InboundFrame>,
    internal: mpsc::Sender<Internal>,
    shutdown: CancellationToken,
    attachments: Arc<Attachments>,
) {
    let max = liaison_protocol::codec::MAX_FRAME_LEN;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let writer = {
        let conn = conn.clone();
        async move {
            let mut send = conn.open_uni().await.map_err(|e| e.to_string())?;
            while let Some(frame) = outbound.recv().await {
                transport::write_frame(&mut send, &frame)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        }
    };
    let reader = {
        let conn = conn.clone();
        let internal = internal.clone();
        async move {
            let mut streams = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    // Attachment chunk requests (WIRE.md §13); QUIC bounds how many at once.
                    accepted = conn.accept_bi() => {
                        let (send, recv) = accepted.map_err(|e| e.to_string())?;
                        let internal = internal.clone();
                        let attachments = attachments.clone();
                        tokio::spawn(async move {
                            let authorize = |request| async move {
                                let (reply, answer) = oneshot::channel();
                                internal
                                    .send(Internal::ServeAttachment { peer, request, reply })
                                    .await
                                    .ok()?;
                                answer.await.ok().flatten()
                            };
                            if let Err(e) =
                                attachment_transfer::serve_stream(send, recv, attachments, authorize)
                                    .await
                            {
                                debug!(error = %e, "attachment stream ended");
                            }
                        });
                    }
                    accepted = conn.accept_uni() => {
                        let mut recv = accepted.map_err(|e| e.to_string())?;
                        let inbound = inbound.clone();
                        streams.spawn(async move {
                            // Frames are checked while the next ones are read, at most
                            // CHECKS_IN_FLIGHT at once, and handed on in the order read.
                            let (checks_tx, mut checks_rx) =
                                mpsc::channel::<tokio::task::JoinHandle<Inbound>>(CHECKS_IN_FLIGHT);
                            let read = async move {
                                loop {
                                    match transport::read_frame(&mut recv, max).await {
                                        Ok(Some(frame)) => {
                                            let check = tokio::spawn(check_frame(frame, cores));
                                            if checks_tx.send(check).await.is_err() {
                                                return Ok(());
                                            }
                                        }
                                        Ok(None) => return Ok(()),
                                        Err(e) => return Err(e.to_string()),
                                    }
                                }
                            };
                            let forward = async move {
                                while let Some(check) = checks_rx.recv().await {
                                    let Ok(frame) = check.await else {
                                        return; // The runtime is shutting down.
                                    };
                                    if inbound.send((peer, id, frame)).await.is_err() {
                                        return;
                                    }
                                }
                            };
                            let (read, ()) = tokio::join!(read, forward);
                            read
                        });
                    }
                    Some(done) = streams.join_next() => {
                        if let Ok(Err(e)) = done {
                            return Err::<(), String>(e);
                        }
                    }
                }
            }
        }
    };
    let outcome = tokio::select! {
        () = shutdown.cancelled() => Ok(()),
        r = writer => r,
        r = reader => r,
        e = conn.closed() => Err(e.to_string()),
    };
    match outcome {
        Ok(()) => debug!("connection finished"),
        Err(e) => {
            info!(reason = %e, "connection closed");
            conn.close(6u32.into(), b"stream error");
        }
    }
    let _ = internal.send(Internal::ConnDown { peer, id }).await;
}

mod attached;
mod door;
mod feed;
mod observe;
mod posting;
mod quarantine;
mod records;
pub mod resolve;
mod restoring;

/// Faults the tests inject into a running node, to show that one failing input does not stop
/// the node (see [`Actor::isolated`]).
#[cfg(test)]
mod faults {
    use std::sync::Mutex;

    use liaison_protocol::{MessageId, NodeId};

    /// Messages whose every view panics.
    static AT_VIEW: Mutex<Vec<MessageId>> = Mutex::new(Vec::new());
    /// Authors the next accepted message of which panics (once each).
    static AT_ACCEPT: Mutex<Vec<NodeId>> = Mutex::new(Vec::new());

    pub(super) fn panic_at_view(id: MessageId) {
        AT_VIEW.lock().unwrap_or_else(|e| e.into_inner()).push(id);
    }

    pub(super) fn panic_at_accept(author: NodeId) {
        AT_ACCEPT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(author);
    }

    pub(super) fn at_view(id: &MessageId) {
        let hit = AT_VIEW
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id);
        assert!(!hit, "injected fault: viewing message {id}");
    }

    pub(super) fn at_accept(author: &NodeId) {
        let mut authors = AT_ACCEPT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = authors.iter().position(|a| a == author) {
            authors.remove(at);
            drop(authors);
            panic!("injected fault: accepting a message of {}", author.short());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use liaison_protocol::message::Draft;

    use super::*;

    /// Messages sealed by one author in a group of its own, and that group.
    fn sealed_messages(count: u64) -> (GroupId, NodeId, Vec<Sealed>) {
        let gid = GroupId::from([7u8; 16]);
        let (identity, state) = crate::demo::solo_group(gid).unwrap();
        let content = Content {
            officer: "o".into(),
            recipients: Vec::new(),
            reply_to: None,
            payload: Payload::Text {
                subject: "s".into(),
                body: "b".into(),
            },
        };
        let sealed = (1..=count)
            .map(|seq| {
                let draft = Draft {
                    seq,
                    now: Timestamp(2),
                    handling: Handling::Green,
                    expires_at: None,
                    content: &content,
                };
                message::seal(&state, &identity, draft, &mut OsRng).unwrap()
            })
            .collect();
        (gid, identity.node_id(), sealed)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn receipts_of_one_frame_cause_a_bounded_number_of_store_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (gid, author, sealed) = sealed_messages(MAX_RECEIPT_READS as u64 + 10);
        let batch = sealed
            .iter()
            .map(|s| NewMessage {
                id: s.id,
                place: s.header.place(),
                envelope: s.bytes.clone(),
                meta: 1u64.to_be_bytes().to_vec(),
            })
            .collect();
        store.insert_messages(batch).await.unwrap();
        let recent = sealed.last().unwrap();
        let mut origins = Origins::default();
        origins.insert(recent.id, recent.header.place());
        let ahead = RefCell::new(ReadAhead::default());
        let archive = |origins| StoreArchive {
            store: &store,
            origins,
            learned: RefCell::new(Vec::new()),
            ahead: &ahead,
            receipt_reads: Cell::new(0),
        };

        // One frame: the store answers the first MAX_RECEIPT_READS lookups, decoding only the
        // headers; the recently stored message is known without a read.
        let frame = archive(&origins);
        let found: Vec<bool> = sealed
            .iter()
            .map(|s| frame.receipt_origin(&s.id) == Some((gid, author)))
            .collect();
        assert!(found[..MAX_RECEIPT_READS].iter().all(|f| *f));
        assert_eq!(found.iter().filter(|f| **f).count(), MAX_RECEIPT_READS + 1);
        assert!(found[sealed.len() - 1]);
        assert_eq!(frame.receipt_reads.get(), MAX_RECEIPT_READS + 1);
        // What the reads found is kept, place included, for indexing receipts.
        let learned = frame.learned.borrow().clone();
        assert_eq!(learned.len(), MAX_RECEIPT_READS);
        assert!(learned
            .iter()
            .zip(&sealed)
            .all(|((id, o), s)| *id == s.id && *o == s.header.place()));
        // Duplicate envelopes are not bounded: saying "not held" there would blame the sender.
        assert!(sealed
            .iter()
            .all(|s| frame.message_origin(&s.id) == Some((gid, author))));
        // The next frame starts afresh; an unknown id is simply not held.
        let next = archive(&origins);
        assert_eq!(next.receipt_origin(&sealed[0].id), Some((gid, author)));
        assert_eq!(next.receipt_origin(&MessageId::from([0u8; 32])), None);
    }

    /// One command and one peer's frame whose handling panics (faults injected for the test):
    /// each fails alone, the caller gets an error that says so, and both nodes go on serving
    /// commands and taking frames. The actor used to die with the first, after which every
    /// call answered "shutting down" and no frame was handled, until a restart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fault_in_one_command_or_frame_fails_it_alone() {
        use crate::demo::{create_group, holds, init_node, knows_group, peer, post, wait_until};
        let root = tempfile::tempdir().unwrap();
        let a = start(&init_node(root.path(), "a", 200).unwrap())
            .await
            .unwrap();
        let b = start(&init_node(root.path(), "b", 200).unwrap())
            .await
            .unwrap();
        peer(&a, &b).await.unwrap();
        for (x, y) in [(&a, &b), (&b, &a)] {
            wait_until("the link", || crate::demo::peer_ready(&x.handle, &y.name))
                .await
                .unwrap();
        }
        let g = create_group(&a, "ops", &[(&b, Role::Member)])
            .await
            .unwrap();
        wait_until("b to know the group", || knows_group(&b.handle, g))
            .await
            .unwrap();

        // A command: reading this message panics on `a`.
        let first = post(&a, g, "j.doe", "first", "one", Handling::Green)
            .await
            .unwrap();
        faults::panic_at_view(first);
        let read = a
            .handle
            .ask(|reply| Command::Read { id: first, reply })
            .await;
        assert!(matches!(read, Err(Error::Internal(_))), "{read:?}");
        assert_eq!(a.handle.ask(Command::Status).await.unwrap().faults, 1);

        // A frame: `b` fails taking a's next message; the one after arrives as usual, and the
        // failed one with the next sync.
        faults::panic_at_accept(a.node_id);
        let second = post(&a, g, "j.doe", "second", "two", Handling::Green)
            .await
            .unwrap();
        let third = post(&a, g, "j.doe", "third", "three", Handling::Green)
            .await
            .unwrap();
        for id in [third, second] {
            wait_until("b to take a's messages", || holds(&b.handle, id))
                .await
                .unwrap();
        }
        assert_eq!(b.handle.ask(Command::Status).await.unwrap().faults, 1);
        assert!(holds(&a.handle, second).await);
        a.shutdown().await.unwrap();
        b.shutdown().await.unwrap();
    }

    #[test]
    fn origins_keep_at_least_the_latest_generation() {
        let (group, author, _) = sealed_messages(0);
        let origin = |n: u64| Place {
            group,
            author,
            epoch: 1,
            seq: n,
        };
        let id = |n: u64| {
            let mut b = [0u8; 32];
            b[..8].copy_from_slice(&n.to_be_bytes());
            MessageId::from(b)
        };
        let mut origins = Origins::default();
        let total = 2 * MAX_ORIGINS as u64 + 1;
        for n in 0..total {
            origins.insert(id(n), origin(n));
        }
        // The first generation was forgotten; every one of the latest MAX_ORIGINS is there.
        assert_eq!(origins.get(&id(0)), None);
        assert_eq!(origins.get(&id(MAX_ORIGINS as u64 - 1)), None);
        for n in total - MAX_ORIGINS as u64..total {
            assert_eq!(origins.get(&id(n)), Some(&origin(n)));
        }
        origins.remove(&id(total - 1));
        assert_eq!(origins.get(&id(total - 1)), None);
    }
}
