//! The running node: one actor task that owns the sync engine and the store handle, plus the
//! tasks around it, each with one owner.
//!
//! ```text
//!  Acceptor ──────ConnUp──┐                        ┌──▶ Connection writer (per peer, bounded)
//!  Dialer (per peer) ─────┤                        │
//!  Connection readers ────┼──▶ Actor::run ─────────┼──▶ Writes (group commit) ──Durable──┐
//!  Scoped (the door) ─Command─┘  (Engine, Store)   └──▶ timer (engine.poll_timeout)      │
//!                  ▲                                                                    │
//!                  └──────────────────────────── Internal ◀─────────────────────────────┘
//! ```
//!
//! Every channel is bounded. Nothing is acknowledged — to a peer or an API caller — before the
//! store reports the write durable (flushed); one flush covers a whole batch of writes.
//!
//! Who owns what: the contract with callers is in `command` (reached through [`Scoped`]),
//! the loop in `actor`, its assembly in `launch`; the peer table (`peers`) owns peers,
//! connections and the dialer and connection tasks (`dial`, `connection`); `writes` owns every
//! store task the actor starts; `archive` answers the engine from the store; `posting` and
//! `membership` make local posts and group changes; `trust` keeps the federation view. The
//! daemon ([`crate::daemon`]) composes the node with its API and web workspace, which this
//! module does not know. This file holds the actor's state and the officer queries.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use liaison_protocol::attachment::{AttachmentId, AttachmentRef};
use liaison_protocol::message::{self, MessageId, Place};
use liaison_protocol::sync::Engine;
use liaison_protocol::{GroupId, GroupState, NodeId};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::accounts::Principal;
use crate::attachments::transfer::Connections;
use crate::attachments::Attachments;
use crate::config::Config;
use crate::datadir::DataDir;
use crate::error::{Error, Result};
use crate::store::{NewMessage, Store};
use crate::transport::Transport;

mod actor;
mod archive;
mod attached;
mod command;
mod connection;
mod dial;
mod door;
mod feed;
mod launch;
mod membership;
mod observe;
mod peers;
mod pins;
mod posting;
mod quarantine;
pub mod reads;
mod records;
pub mod resolve;
mod restoring;
mod trust;
mod writes;

pub use archive::stored_receipts;
pub use command::{NodeEvent, NodeHandle, Post, PostItem};
pub use door::Scoped;
pub use feed::Fresh;
pub use launch::advertised_address;
pub(crate) use launch::{launch, Parts};
pub use reads::{ExportStream, Feed, PageRequest};

use archive::{Origins, ReadAhead};
use attached::FetchWanted;
use command::Internal;
use connection::InboundFrame;
use peers::PeerTable;
use posting::LocalPost;
use writes::Writes;

use crate::views::MessageView;

/// Attachment fetches running at once.
const MAX_FETCHES: usize = 4;
/// Attachments waiting for a fetch slot, at most (beyond it they are fetched when opened, or
/// after a restart).
const MAX_FETCH_QUEUE: usize = 4096;

use crate::clock::now;

struct Actor {
    name: String,
    me: NodeId,
    engine: Engine,
    store: Store,
    transport: Arc<Transport>,
    /// Peers, their connections, the allow-list and the directory (see [`peers`]).
    peers: PeerTable,
    internal_tx: mpsc::Sender<Internal>,
    inbound_tx: mpsc::Sender<InboundFrame>,
    shutdown: CancellationToken,
    config: Config,
    quic_addr: SocketAddr,
    api_addr: SocketAddr,
    pending_writes: usize,
    /// The store work started and not yet finished (see [`writes`]).
    writes: Writes,
    /// Messages the admin quarantined (see the `quarantine` module).
    quarantined: quarantine::Quarantined,
    /// What queries read from the actor, published at every loop turn (see [`reads`]).
    reads: reads::Publisher,
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

impl Actor {
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

    /// Message `id` as `who` may see it, read on the actor for the actor's own checks (the
    /// reply-to of a post, the message an attachment is opened through): see
    /// [`reads::view::Ctx::read`].
    fn read(&self, who: &Principal, id: &MessageId, with_body: bool) -> Result<MessageView> {
        let snap = self.snapshot();
        let ctx = reads::view::Ctx {
            snap: &snap,
            store: &self.store,
            attachments: &self.attachments,
        };
        ctx.read(who, id, with_body)
    }
}

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

    /// Groups whose listings park at their next entry until released, with how many are
    /// parked now.
    static PARKED: Mutex<Vec<(liaison_protocol::GroupId, usize)>> = Mutex::new(Vec::new());
    static RELEASED: std::sync::Condvar = std::sync::Condvar::new();

    /// From now on, every listing of `group` stops at its next entry until
    /// [`release_listings`].
    pub(crate) fn park_listings(group: liaison_protocol::GroupId) {
        PARKED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((group, 0));
    }

    /// Lets parked listings of `group` go on, and no longer parks new ones.
    pub(crate) fn release_listings(group: liaison_protocol::GroupId) {
        PARKED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(g, _)| *g != group);
        RELEASED.notify_all();
    }

    /// How many listings of `group` are parked now.
    pub(crate) fn listings_parked(group: liaison_protocol::GroupId) -> usize {
        PARKED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(g, _)| *g == group)
            .map_or(0, |(_, n)| *n)
    }

    pub(crate) fn at_listing(group: &liaison_protocol::GroupId) {
        let mut parked = PARKED.lock().unwrap_or_else(|e| e.into_inner());
        let Some(at) = parked.iter_mut().find(|(g, _)| g == group) else {
            return;
        };
        at.1 += 1;
        while parked.iter().any(|(g, _)| g == group) {
            parked = RELEASED.wait(parked).unwrap_or_else(|e| e.into_inner());
        }
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
mod tests;
