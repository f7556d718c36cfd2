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
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use liaison_protocol::attachment::{AttachmentId, AttachmentRef};
use liaison_protocol::message::{self, Content, Handling, MessageId, Place};
use liaison_protocol::receipt::Receipt;
use liaison_protocol::sync::Engine;
use liaison_protocol::{GroupId, GroupState, NodeId};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::accounts::Principal;
use crate::attachments::transfer::Connections;
use crate::attachments::Attachments;
use crate::config::Config;
use crate::datadir::DataDir;
use crate::error::{Error, Result};
use crate::records::Shown;
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
mod records;
pub mod resolve;
mod restoring;
mod trust;
mod writes;

pub use archive::stored_receipts;
pub use command::{Command, NodeEvent, NodeHandle, Post, PostItem};
pub use door::Scoped;
pub use feed::Fresh;
pub use launch::advertised_address;
pub(crate) use launch::{launch, Parts};

use archive::{Origins, ReadAhead};
use attached::FetchWanted;
use command::Internal;
use connection::InboundFrame;
use peers::PeerTable;
use posting::LocalPost;
use writes::Writes;

use crate::views::{ExportView, MessageView, ReceiptView, Refused};

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
mod tests;
