//! The peer table: who is a peer (pinned by the operator, admitted through a roster), their
//! live connections, the transport's allow-list and the directory of descriptors learned
//! through peers. It owns the dial-race rule ([`PeerTable::keeps_existing`]): when both sides
//! dial at once, the connection made by the node with the smaller id wins, so both ends keep
//! the same one.
//!
//! The [`Actor`] methods here change the table together with what depends on it (the engine's
//! connected peers, the dialers, the stored pins).

use std::time::Duration;

use liaison_protocol::identity::{Descriptor, SignedDescriptor};
use liaison_protocol::{ExchangeKey, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::clock::now;
use crate::error::{Error, Result};
use crate::transport::AllowList;
use crate::views::PeerView;

use super::connection::Connection;
use super::dial::Dialer;
use super::Actor;

/// Capacity of each connection's outbound frame channel.
pub(super) const OUTBOUND_QUEUE: usize = 1024;

/// A second connection from a peer within this time of the first is a simultaneous dial, settled
/// by the node-id rule; a later one means the peer lost the first (it dials only while it has
/// none), so it replaces the first, which may be a dead connection to an old address.
pub(super) const DIAL_RACE: Duration = Duration::from_secs(2);

/// A pinned peer as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct PeerRecord {
    pub(super) name: String,
    pub(super) node_id: String,
    pub(super) address: String,
    /// Hex of the peer's last signed descriptor.
    #[serde(default)]
    pub(super) descriptor: Option<String>,
}

/// A peer as the actor tracks it: pinned by the operator, admitted through a roster, or both.
#[derive(Debug)]
pub(super) struct PeerEntry {
    /// The operator's pin, or (for a peer known only through a roster) its roster name and
    /// first address.
    pub(super) record: PeerRecord,
    pub(super) node: NodeId,
    pub(super) descriptor: Option<Descriptor>,
    pub(super) connected: watch::Sender<bool>,
    pub(super) last_error: Option<String>,
    pub(super) dialer: CancellationToken,
    /// Whether the operator pinned it (the record is stored).
    pub(super) pinned: bool,
    /// Its roster entry, if a roster in force admits it.
    pub(super) roster: Option<liaison_protocol::roster::Entry>,
    /// Why it is not admitted now (revoked, rotated away, refused here, roster expired): not
    /// on the allow-list and not dialled.
    pub(super) blocked: Option<String>,
}

/// A live connection.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) id: u64,
    pub(super) initiator: NodeId,
    pub(super) conn: quinn::Connection,
    pub(super) tx: mpsc::Sender<Vec<u8>>,
    pub(super) since: std::time::Instant,
}

/// The peers the actor tracks and their live connections (see the module docs).
#[derive(Debug)]
pub(super) struct PeerTable {
    /// Every tracked peer: pinned, admitted by a roster, or both (blocked ones included, so
    /// that `peer list` says why).
    pub(super) entries: BTreeMap<NodeId, PeerEntry>,
    /// The live connection to each connected peer (at most one: see [`Self::keeps_existing`]).
    pub(super) conns: HashMap<NodeId, Conn>,
    /// The transport's allow-list: the keys an incoming connection may have.
    pub(super) allow: AllowList,
    /// Descriptors of nodes learned through peers (not pinned).
    pub(super) directory: BTreeMap<NodeId, Descriptor>,
    /// The id of the next connection.
    pub(super) next_conn: u64,
    /// The dialer of each admitted peer and the task of each connection; they end when the
    /// node shuts down (their tokens are children of its token), and shutdown joins them.
    pub(super) links: JoinSet<()>,
}

impl PeerTable {
    /// An empty table that keeps `allow`.
    pub(super) fn new(allow: AllowList) -> PeerTable {
        PeerTable {
            entries: BTreeMap::new(),
            conns: HashMap::new(),
            allow,
            directory: BTreeMap::new(),
            next_conn: 1,
            links: JoinSet::new(),
        }
    }

    /// The dial race rule: whether a new connection to `peer` made by `initiator` gives way to
    /// the one already there. Within [`DIAL_RACE`] of the first, both sides dialled at once:
    /// the connection made by the node with the smaller id wins on both ends. Later, or when
    /// the first is closed, the new one replaces it (the peer restarted).
    pub(super) fn keeps_existing(&self, me: NodeId, peer: NodeId, initiator: NodeId) -> bool {
        let preferred = |init: NodeId| init == peer.min(me);
        self.conns.get(&peer).is_some_and(|existing| {
            existing.conn.close_reason().is_none()
                && existing.since.elapsed() < DIAL_RACE
                && (preferred(existing.initiator) || !preferred(initiator))
        })
    }

    /// Forgets the dialers and connection tasks that have ended.
    pub(super) fn reap(&mut self) {
        while self.links.try_join_next().is_some() {}
    }

    /// Stops tracking `node`: its dialer stops and it leaves the allow-list (its connection,
    /// if any, is the caller's to close).
    pub(super) fn forget(&mut self, node: &NodeId) {
        if let Some(entry) = self.entries.remove(node) {
            entry.dialer.cancel();
        }
        self.allow.remove(node.as_bytes());
    }
}

/// Meta key prefix of directory entries in the store.
pub(super) const DIRECTORY_PREFIX: &str = "directory/";

impl Actor {
    pub(super) fn load_peers(&mut self) -> Result<()> {
        for (node, bytes) in self.store.peers()? {
            let record: PeerRecord = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Corrupt(format!("peer record: {e}")))?;
            self.insert_peer(node, record, true, None);
        }
        Ok(())
    }

    pub(super) fn load_directory(&mut self) -> Result<()> {
        let now = now();
        for (_, bytes) in self.store.meta_prefix(DIRECTORY_PREFIX)? {
            if let Ok(d) = SignedDescriptor::verify(&bytes, now) {
                self.peers.directory.insert(d.node, d);
                self.engine.restore_descriptor(now, bytes);
            }
        }
        for entry in self.peers.entries.values() {
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
    pub(super) fn insert_peer(
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
            .or_else(|| self.peers.directory.get(&node).cloned());
        let (connected, _) = watch::channel(self.peers.conns.contains_key(&node));
        if let Some(old) = self.peers.entries.remove(&node) {
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
        self.peers.entries.insert(node, entry);
        self.admit(node);
    }

    /// Why `node` is not admitted now, if it is not.
    pub(super) fn peer_blocked(&self, node: &NodeId) -> Option<String> {
        if let Some(why) = self.trust.blocked(node) {
            return Some(why);
        }
        let entry = self.peers.entries.get(node)?;
        if entry.pinned {
            return None;
        }
        match self.trust.admission(node, now()) {
            liaison_protocol::roster::Admission::Member { .. } => None,
            liaison_protocol::roster::Admission::Expired { valid_until } => Some(format!(
                "its roster expired at {}",
                crate::views::rfc3339(valid_until.0)
            )),
            _ => Some("no roster in force admits it".into()),
        }
    }

    /// Puts a tracked peer on the allow-list and starts dialling it, unless the federation view
    /// blocks it (then it is taken off and not dialled; its connection, if any, stays).
    pub(super) fn admit(&mut self, node: NodeId) {
        let blocked = self.peer_blocked(&node);
        let Some(entry) = self.peers.entries.get_mut(&node) else {
            return;
        };
        entry.dialer.cancel();
        entry.blocked = blocked;
        if entry.blocked.is_some() {
            self.peers.allow.remove(node.as_bytes());
            return;
        }
        self.peers.allow.insert(*node.as_bytes());
        let dialer = self.shutdown.child_token();
        entry.dialer = dialer.clone();
        let dial = Dialer {
            transport: self.transport.clone(),
            me: self.me,
            peer: node,
            address: entry.record.address.clone(),
            connected: entry.connected.subscribe(),
            tx: self.internal_tx.clone(),
            cancel: dialer,
            min_ms: self.config.transport.redial_min_ms,
            max_ms: self.config.transport.redial_max_ms,
        };
        self.peers.links.spawn(
            dial.run()
                .instrument(info_span!("dial", peer = %node.short())),
        );
    }

    pub(super) fn on_descriptor(&mut self, peer: NodeId, descriptor: Descriptor, bytes: &[u8]) {
        let Some(entry) = self.peers.entries.get_mut(&peer) else {
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
                self.peers.directory.insert(peer, descriptor);
                let stored = self
                    .store
                    .put_meta(&format!("{DIRECTORY_PREFIX}{peer}"), bytes);
                self.writes.spawn(async move {
                    if let Err(e) = stored.await {
                        warn!(error = %e, "cannot store a directory entry");
                    }
                });
            }
        }
    }

    pub(super) fn persist_peer(&mut self, peer: NodeId) {
        let Some(entry) = self.peers.entries.get(&peer).filter(|e| e.pinned) else {
            return;
        };
        let Ok(bytes) = serde_json::to_vec(&entry.record) else {
            return;
        };
        let store = self.store.clone();
        self.writes.spawn(async move {
            if let Err(e) = store.put_peer(&peer, &bytes).await {
                warn!(error = %e, "cannot store a peer record");
            }
        });
    }

    /// Closes the connection to `node`, if any, with `code` and `reason`, and tells the engine
    /// and the dialer.
    pub(super) fn disconnect(&mut self, node: &NodeId, code: u32, reason: &[u8]) {
        if let Some(c) = self.peers.conns.remove(node) {
            c.conn.close(code.into(), reason);
            self.engine.handle_disconnected(node);
            self.set_connected(node, false);
        }
    }

    pub(super) fn set_connected(&mut self, peer: &NodeId, up: bool) {
        if let Some(entry) = self.peers.entries.get(peer) {
            entry.connected.send_replace(up);
        }
    }

    // ----- internal messages -------------------------------------------------------------

    pub(super) fn on_conn_up(&mut self, peer: NodeId, conn: quinn::Connection, initiator: NodeId) {
        match self.peers.entries.get(&peer).map(|p| p.blocked.is_some()) {
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
        if self.peers.keeps_existing(self.me, peer, initiator) {
            conn.close(3u32.into(), b"duplicate connection");
            return;
        }
        if let Some(existing) = self.peers.conns.get(&peer) {
            existing.conn.close(3u32.into(), b"duplicate connection");
            self.engine.handle_disconnected(&peer);
        }
        let id = self.peers.next_conn;
        self.peers.next_conn += 1;
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let connection = Connection {
            conn: conn.clone(),
            peer,
            id,
            outbound: rx,
            inbound: self.inbound_tx.clone(),
            internal: self.internal_tx.clone(),
            shutdown: self.shutdown.clone(),
            attachments: self.attachments.clone(),
        };
        self.peers.links.spawn(
            connection
                .run()
                .instrument(info_span!("conn", peer = %peer.short(), id)),
        );
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(peer, conn.clone());
        info!(peer = %peer.short(), remote = %conn.remote_address(), "peer connected");
        self.peers.conns.insert(
            peer,
            Conn {
                id,
                initiator,
                conn,
                tx,
                since: std::time::Instant::now(),
            },
        );
        if let Some(entry) = self.peers.entries.get_mut(&peer) {
            entry.last_error = None;
        }
        self.set_connected(&peer, true);
        self.engine.handle_connected(now(), peer);
        self.send_federation(peer);
    }

    // ----- commands ----------------------------------------------------------------------

    pub(super) fn peer_view(&self, p: &PeerEntry) -> PeerView {
        let state = if self.peers.conns.contains_key(&p.node) {
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

    /// A peer by node id, or by name: the name it is pinned under or its roster name (a
    /// node's self-chosen descriptor name is never used).
    pub(super) fn resolve_peer(&self, sel: &str) -> Result<NodeId> {
        if let Ok(id) = sel.parse::<NodeId>() {
            if self.peers.entries.contains_key(&id) {
                return Ok(id);
            }
        }
        // A pinned peer answers to its pin name and to its roster name.
        let named: Vec<NodeId> = self
            .peers
            .entries
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
    pub(super) fn resolve_candidate(&self, sel: &str) -> Result<(NodeId, String, ExchangeKey)> {
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
        let entry = self.peers.entries.get(&node);
        let descriptor = entry
            .and_then(|p| p.descriptor.as_ref())
            .or_else(|| self.peers.directory.get(&node));
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

    /// A connection task ended: if it is still the peer's connection, the peer is
    /// disconnected (its dialer dials again).
    pub(super) fn on_conn_down(&mut self, peer: NodeId, id: u64) {
        if self.peers.conns.get(&peer).is_some_and(|c| c.id == id) {
            self.peers.conns.remove(&peer);
            self.connections
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&peer);
            self.engine.handle_disconnected(&peer);
            self.set_connected(&peer, false);
            info!(peer = %peer.short(), "peer disconnected");
        }
    }
}
