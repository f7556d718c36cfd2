//! The actor's side of the federation (WIRE.md §12): taking rosters and rotation statements
//! from the operator and from peers, keeping the peer set, the transport's allow-list and the
//! engine's policy in line with them, acting on revocations and rotations (disconnecting,
//! moving pins, owners changing their groups), warning about expiry, rotating this node's own
//! keys, and rotating group keys on a timer.
//!
//! Who is a peer: the operator's pins, plus every entry of a roster in force; minus nodes that
//! are revoked, rotated away from or refused here (whose connections are closed at once), and
//! minus roster-only peers whose roster expired past the grace period (whose connections stay,
//! but which are neither dialled nor accepted again). A pin overrides a roster entry's name and
//! address; a revocation overrides a pin.
//!
//! Longer than the node's other files: rosters, rotation statements, revocations and timed
//! group-key rotation all change the same peer set, allow-list and groups, in steps that call
//! one another; this node's own key rotation (about 250 lines) is the part that could stand
//! alone.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::BoxFuture;
use liaison_protocol::group::Change;
use liaison_protocol::identity::Descriptor;
use liaison_protocol::roster::{Entry, RosterUpdate, Rotation, RotationUpdate, SignedRoster};
use liaison_protocol::{ExchangeSecret, Frame, GroupId, IdentityKey, NodeId, Rejection};
use rand_core::OsRng;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::command::{ControlReply, Internal};
use super::peers::{PeerEntry, PeerRecord};
use super::{now, Actor};
use crate::error::{Error, Result};
use crate::federation::{Expiry, ROSTER_PREFIX, ROTATION_PREFIX};
use crate::views::{RosterLoaded, RosterStatus, Rotated as RotatedView};

/// How often the actor checks rosters for expiry and groups for a timed key rotation.
pub(super) const TICK: Duration = Duration::from_secs(1);

/// How long connections made under a key this node rotated away from stay open, so that the
/// rotation statement sent on them arrives.
const ROTATION_CLOSE_DELAY: Duration = Duration::from_secs(2);

/// Most statements in one `Rotation` frame.
const ROTATIONS_PER_FRAME: usize = 256;

/// New keys written to the data directory, on their way back to the actor.
pub(super) struct Rotated {
    identity: IdentityKey,
    exchange: ExchangeSecret,
    statement: Vec<u8>,
    result: Result<()>,
    reply: oneshot::Sender<Result<RotatedView>>,
}

impl std::fmt::Debug for Rotated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotated")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// The record of a peer known only through a roster: its roster name and first address (the
/// descriptor kept from before, if any).
pub(super) fn roster_record(entry: &Entry, existing: Option<&PeerEntry>) -> PeerRecord {
    PeerRecord {
        name: entry.name.clone(),
        node_id: entry.node.to_string(),
        address: entry.addresses.first().cloned().unwrap_or_default(),
        descriptor: existing.and_then(|p| p.record.descriptor.clone()),
    }
}

impl Actor {
    // ----- start-up -------------------------------------------------------------------------

    /// Takes the rosters and rotation statements the store holds, this node's own statements
    /// (`own`, from the data directory), and the roster file of the configuration; then sets
    /// the peer set and the engine's policy from them, and moves this node's own groups to its
    /// current keys if a rotation was interrupted.
    pub(super) fn load_federation(&mut self, own: Vec<Vec<u8>>) -> Result<()> {
        for (key, bytes) in self.store.meta_prefix(ROSTER_PREFIX)? {
            if let Err(e) = self.trust.take_roster(&bytes) {
                warn!(%key, error = %e, "a stored roster is no longer taken");
            }
        }
        let mut statements: Vec<Vec<u8>> = self
            .store
            .meta_prefix(ROTATION_PREFIX)?
            .into_iter()
            .map(|(_, b)| b)
            .collect();
        statements.extend(own);
        for bytes in statements {
            if let Err(e) = self.trust.take_rotation(&bytes) {
                debug!(error = %e, "a stored rotation statement is not taken");
            }
        }
        if let Some(file) = self.config.federation.roster.clone() {
            let path = self.dir.root().join(&file);
            let bytes = std::fs::read(&path)
                .map_err(|e| Error::io(format!("cannot read the roster {}", path.display()), e))?;
            match self.trust.take_roster(&bytes) {
                Ok(RosterUpdate::New { version, .. }) => {
                    info!(version, file = %path.display(), "roster taken from the configuration");
                    self.store_roster_logged(&bytes);
                }
                Ok(RosterUpdate::Older { offered, held }) => {
                    warn!(file = %path.display(), offered, held, "the configured roster is older than the one in force; ignored");
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(Error::Invalid(format!(
                        "the roster {} is refused: {e}",
                        path.display()
                    )))
                }
            }
        }
        self.engine.set_policy(self.trust.policy());
        self.refresh_admission();
        self.rekey_own_groups();
        Ok(())
    }

    // ----- who is a peer ----------------------------------------------------------------------

    /// Brings the peer set in line with the pins and the federation view: tracks every roster
    /// entry, forgets roster-only peers no roster lists any more, and re-checks who is blocked.
    /// A peer newly revoked, rotated away from, refused or dropped from the rosters is
    /// disconnected at once; one whose roster expired keeps its connection but is neither
    /// dialled nor accepted again.
    pub(super) fn refresh_admission(&mut self) {
        let entries = self.trust.entries(&self.me);
        for (node, entry) in &entries {
            if let Some(p) = self.peers.entries.get_mut(node) {
                p.roster = Some(entry.clone());
                if !p.pinned {
                    let record = roster_record(entry, Some(p));
                    if record.name != p.record.name || record.address != p.record.address {
                        p.record = record;
                        let node = *node;
                        self.admit(node);
                    }
                }
            } else {
                // Tracked even when refused here, so that `peer list` says why it is no peer.
                let record = roster_record(entry, None);
                self.insert_peer(*node, record, false, Some(entry.clone()));
            }
        }
        let gone: Vec<NodeId> = self
            .peers
            .entries
            .values()
            .filter(|p| !p.pinned && !entries.contains_key(&p.node))
            .map(|p| p.node)
            .collect();
        for node in gone {
            self.peers.forget(&node);
            self.disconnect(&node, 4, b"no longer admitted");
            info!(peer = %node.short(), "peer left the rosters");
        }
        for p in self.peers.entries.values_mut().filter(|p| p.pinned) {
            p.roster = entries.get(&p.node).cloned();
        }
        let nodes: Vec<NodeId> = self.peers.entries.keys().copied().collect();
        for node in nodes {
            let blocked = self.peer_blocked(&node);
            let was = self
                .peers
                .entries
                .get(&node)
                .and_then(|p| p.blocked.clone());
            if blocked == was {
                continue;
            }
            self.admit(node);
            match &blocked {
                Some(why) if self.trust.blocked(&node).is_some() => {
                    warn!(peer = %node.short(), reason = %why, "peer cut off");
                    self.disconnect(&node, 4, b"revoked, rotated or refused");
                }
                Some(why) => {
                    warn!(peer = %node.short(), reason = %why, "peer no longer admitted for new connections");
                }
                None => info!(peer = %node.short(), "peer admitted"),
            }
        }
    }

    /// Sends `peer` the rosters in force (one per frame) and the rotation statements held:
    /// what a connection starts with, so that rosters travel through the federation.
    pub(super) fn send_federation(&mut self, peer: NodeId) {
        let rosters: Vec<Vec<u8>> = self
            .trust
            .view()
            .roster_bytes()
            .map(<[u8]>::to_vec)
            .collect();
        for roster in rosters {
            self.engine.send_frame(
                peer,
                &Frame::Roster {
                    rosters: vec![roster],
                },
            );
        }
        let statements: Vec<Vec<u8>> = self
            .trust
            .view()
            .rotation_bytes()
            .map(<[u8]>::to_vec)
            .collect();
        for chunk in statements.chunks(ROTATIONS_PER_FRAME) {
            self.engine.send_frame(
                peer,
                &Frame::Rotation {
                    statements: chunk.to_vec(),
                },
            );
        }
    }

    /// Sends `frame` to every connected peer but `except`.
    fn spread(&mut self, except: Option<NodeId>, frame: &Frame) {
        let peers: Vec<NodeId> = self
            .peers
            .conns
            .keys()
            .copied()
            .filter(|p| Some(*p) != except)
            .collect();
        for peer in peers {
            self.engine.send_frame(peer, frame);
        }
    }

    // ----- rosters ----------------------------------------------------------------------------

    /// Rosters from a peer.
    pub(super) fn on_rosters(&mut self, peer: NodeId, rosters: Vec<Vec<u8>>) {
        if !self.trust.enabled() {
            return; // This node trusts no authority: rosters are not its business.
        }
        for bytes in rosters {
            match self.trust.take_roster(&bytes) {
                Ok(update) => {
                    if let Some(stored) = self.after_roster(Some(peer), &bytes, update) {
                        self.writes.log_failure(stored, "cannot store a roster");
                    }
                }
                Err(Rejection::UnknownAuthority(a)) => {
                    debug!(peer = %peer.short(), authority = %a.short(), "roster of an authority not trusted here");
                }
                Err(e) => {
                    warn!(peer = %peer.short(), error = %e, "roster refused");
                    self.engine.strike(peer, e);
                }
            }
        }
    }

    /// A roster from the operator (`liaison roster load`).
    pub(super) fn load_roster(
        &mut self,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<RosterLoaded>>,
    ) {
        let result = (|| {
            if !self.trust.enabled() {
                return Err(Error::Invalid(
                    "this node trusts no federation authority: list its key in federation.authorities in node.toml and restart".into(),
                ));
            }
            let roster = SignedRoster::verify(&bytes, self.trust.view().authorities())
                .map_err(|e| Error::Invalid(format!("roster refused: {e}")))?;
            let update = self
                .trust
                .take_roster(&bytes)
                .map_err(|e| Error::Invalid(format!("roster refused: {e}")))?;
            let loaded = match &update {
                RosterUpdate::New {
                    revoked,
                    joined,
                    left,
                    ..
                } => RosterLoaded {
                    federation: roster.federation.clone(),
                    version: roster.version,
                    outcome: "new".into(),
                    revoked: revoked.iter().map(ToString::to_string).collect(),
                    joined: joined.iter().map(ToString::to_string).collect(),
                    left: left.iter().map(ToString::to_string).collect(),
                },
                RosterUpdate::Older { offered, held } => {
                    return Err(Error::Conflict(format!(
                        "roster version {offered} is older than version {held}, which is in force; refused"
                    )))
                }
                _ => RosterLoaded {
                    federation: roster.federation.clone(),
                    version: roster.version,
                    outcome: "known".into(),
                    revoked: Vec::new(),
                    joined: Vec::new(),
                    left: Vec::new(),
                },
            };
            let stored = match update {
                // The roster in force: written again, so that a load whose write failed (the
                // roster in force here, but not on disk) is mended by loading it again.
                RosterUpdate::Known => Some(self.store_roster(&bytes)),
                update => self.after_roster(None, &bytes, update),
            };
            Ok((loaded, stored))
        })();
        match result {
            Err(e) => {
                let _ = reply.send(Err(e));
            }
            Ok((loaded, None)) => {
                let _ = reply.send(Ok(loaded));
            }
            // Answered once the roster is durable: a roster the operator was told is loaded
            // is still in force after a crash.
            Ok((loaded, Some(stored))) => {
                self.writes.spawn(async move {
                    let _ = reply.send(stored.await.map(|()| loaded));
                });
            }
        }
    }

    /// What follows a roster taken: store it, tell the engine, pass it on, act on revocations,
    /// and bring the peer set in line. A new roster is written at once; the future returned
    /// resolves once it is durable.
    fn after_roster(
        &mut self,
        from: Option<NodeId>,
        bytes: &[u8],
        update: RosterUpdate,
    ) -> Option<BoxFuture<'static, Result<()>>> {
        let RosterUpdate::New {
            version,
            previous,
            revoked,
            joined,
            left,
        } = update
        else {
            return None;
        };
        info!(
            version,
            previous = ?previous,
            revoked = revoked.len(),
            joined = joined.len(),
            left = left.len(),
            from = ?from.map(|p| p.short()),
            "new federation roster in force"
        );
        let stored = self.store_roster(bytes);
        self.engine.set_policy(self.trust.policy());
        self.spread(
            from,
            &Frame::Roster {
                rosters: vec![bytes.to_vec()],
            },
        );
        for node in &revoked {
            warn!(node = %node.short(), "node revoked by the federation");
            self.disconnect(node, 4, b"revoked");
        }
        self.remove_from_owned_groups(&revoked);
        self.refresh_admission();
        self.expiry_logged = None;
        Some(stored)
    }

    /// Writes a roster now, in the order rosters are taken (so a newer one is never
    /// overwritten by an older one); the future resolves once it is durable.
    fn store_roster(&self, bytes: &[u8]) -> BoxFuture<'static, Result<()>> {
        let roster = match SignedRoster::verify(bytes, self.trust.view().authorities()) {
            Ok(r) => r,
            Err(e) => {
                let e = Error::Invalid(format!("roster refused: {e}"));
                return Box::pin(async move { Err(e) });
            }
        };
        let stored = self
            .store
            .put_meta(&format!("{ROSTER_PREFIX}{}", roster.authority), bytes);
        Box::pin(async move { stored.await.map_err(Error::from) })
    }

    fn store_roster_logged(&mut self, bytes: &[u8]) {
        self.writes
            .log_failure(self.store_roster(bytes), "cannot store a roster");
    }

    /// As the owner, removes `nodes` from every group this node owns that they are in.
    fn remove_from_owned_groups(&mut self, nodes: &[NodeId]) {
        let me = self.me;
        let mut changes: BTreeMap<GroupId, Vec<Change>> = BTreeMap::new();
        for group in self.engine.groups().filter(|g| g.owner() == me) {
            for node in nodes {
                if group.members().contains_key(node) {
                    // With the owner's cut-off: a compromised key can still sign messages
                    // dated before its revocation, and members drop those above what the
                    // owner held when it removed the node.
                    match self.engine.removal(&group.id(), node) {
                        Ok(change) => changes.entry(group.id()).or_default().push(change),
                        Err(e) => {
                            warn!(group = %group.id().short(), error = %e, "cannot remove a revoked member")
                        }
                    }
                }
            }
        }
        for (gid, changes) in changes {
            info!(group = %gid.short(), removed = changes.len(), "removing revoked members");
            self.propose_quiet(gid, changes);
        }
    }

    /// Makes `changes` to group `gid` (owned here) one after the other, as the node's own
    /// decision: each stored durably, then applied and sent, in order.
    pub(super) fn propose_quiet(&mut self, gid: GroupId, changes: Vec<Change>) {
        let Some(mut state) = self.engine.group(&gid).cloned() else {
            return;
        };
        let room = self.engine.control_room(&gid);
        if changes.len() > room {
            warn!(
                group = %gid.short(),
                changes = changes.len(),
                room,
                "the group holds the most control events this node keeps; changes left out"
            );
        }
        let identity = self.engine.identity();
        let mut events = Vec::with_capacity(changes.len().min(room));
        for change in changes.into_iter().take(room) {
            match state.propose(identity, change, now(), &mut OsRng) {
                Ok(event) => {
                    if let Err(e) = state.apply(&event, None) {
                        warn!(group = %gid.short(), error = %e, "cannot apply an own change");
                        break;
                    }
                    events.push((state.seq(), event));
                }
                Err(e) => {
                    warn!(group = %gid.short(), error = %e, "cannot change a group");
                }
            }
        }
        self.store_controls_in_order(gid, events);
    }

    /// Stores `events` of group `gid` in order, each reported back as stored in the same order.
    fn store_controls_in_order(&mut self, gid: GroupId, events: Vec<(u64, Vec<u8>)>) {
        if events.is_empty() {
            return;
        }
        self.pending_writes += events.len();
        let store = self.store.clone();
        let tx = self.internal_tx.clone();
        self.writes.spawn(async move {
            for (seq, event) in events {
                let result = store
                    .insert_control(&gid, seq, &event)
                    .await
                    .map(|_| ())
                    .map_err(Error::from);
                let _ = tx
                    .send(Internal::ControlStored {
                        event,
                        result,
                        reply: ControlReply::Quiet,
                    })
                    .await;
            }
        });
    }

    // ----- rotation statements ------------------------------------------------------------------

    /// Rotation statements from a peer.
    pub(super) fn on_rotations(&mut self, peer: NodeId, statements: Vec<Vec<u8>>) {
        for bytes in statements {
            match self.trust.take_rotation(&bytes) {
                Ok(RotationUpdate::New(rotation)) => {
                    self.store_rotation(&rotation, &bytes);
                    self.spread(
                        Some(peer),
                        &Frame::Rotation {
                            statements: vec![bytes],
                        },
                    );
                    self.follow_rotation(&rotation);
                }
                Ok(_) => {}
                Err(e @ Rejection::Revoked(_)) => {
                    debug!(peer = %peer.short(), error = %e, "rotation of a revoked key ignored");
                }
                Err(e) => {
                    warn!(peer = %peer.short(), error = %e, "rotation statement refused");
                    self.engine.strike(peer, e);
                }
            }
        }
    }

    fn store_rotation(&mut self, rotation: &Rotation, bytes: &[u8]) {
        let key = format!(
            "{ROTATION_PREFIX}{}/{}/{:016x}",
            rotation.old, rotation.new, rotation.at.0
        );
        let stored = self.store.put_meta(&key, bytes);
        self.writes.spawn(async move {
            if let Err(e) = stored.await {
                warn!(error = %e, "cannot store a rotation statement");
            }
        });
    }

    /// A peer moved to new keys: its pin moves with it, its old key is cut off, and the groups
    /// this node owns move it too.
    fn follow_rotation(&mut self, rotation: &Rotation) {
        if rotation.new == self.me {
            return; // This node's own statement, come back.
        }
        info!(
            old = %rotation.old.short(),
            new = %rotation.new.short(),
            identity = rotation.is_identity(),
            "peer rotated its keys"
        );
        self.engine.set_policy(self.trust.policy());
        if rotation.is_identity() {
            if let Some(old) = self.peers.entries.get(&rotation.old).filter(|p| p.pinned) {
                let record = PeerRecord {
                    name: old.record.name.clone(),
                    node_id: rotation.new.to_string(),
                    address: old.record.address.clone(),
                    descriptor: None,
                };
                let (old_node, new_node) = (rotation.old, rotation.new);
                if let Ok(bytes) = serde_json::to_vec(&record) {
                    let store = self.store.clone();
                    self.writes.spawn(async move {
                        let moved = async {
                            store.put_peer(&new_node, &bytes).await?;
                            store.remove_peer(&old_node).await
                        };
                        if let Err(e) = moved.await {
                            warn!(error = %e, "cannot move a pin to a rotated key");
                        }
                    });
                }
                self.peers.forget(&old_node);
                self.disconnect(&old_node, 4, b"key rotated");
                let roster = self.trust.entries(&self.me).remove(&new_node);
                self.insert_peer(new_node, record, true, roster);
                info!(old = %old_node.short(), new = %new_node.short(), "pin moved to the rotated key");
            }
        }
        self.refresh_admission();
        // Owners move the member.
        let me = self.me;
        let mut moves: Vec<(GroupId, Change)> = Vec::new();
        for group in self.engine.groups().filter(|g| g.owner() == me) {
            let Some(member) = group.members().get(&rotation.old) else {
                continue;
            };
            if !rotation.is_identity() && member.exchange_key == rotation.exchange_key {
                continue;
            }
            moves.push((
                group.id(),
                Change::Rekey {
                    member: rotation.old,
                    node: rotation.new,
                    exchange_key: rotation.exchange_key,
                },
            ));
        }
        for (gid, change) in moves {
            info!(group = %gid.short(), "moving a rotated member to its new keys");
            self.propose_quiet(gid, vec![change]);
        }
    }

    // ----- this node's own keys ---------------------------------------------------------------

    /// Moves this node to new keys (`liaison key rotate`): new keys and a statement signed by
    /// the old key and the new one, written to the data directory off the actor, then taken
    /// in by [`Actor::on_keys_rotated`].
    pub(super) fn rotate_keys(
        &mut self,
        exchange_only: bool,
        reply: oneshot::Sender<Result<RotatedView>>,
    ) {
        if self.rotating {
            let _ = reply.send(Err(Error::Conflict("a key rotation is under way".into())));
            return;
        }
        let old = self.engine.identity();
        let identity = if exchange_only {
            IdentityKey::from_seed(&old.seed())
        } else {
            IdentityKey::generate(&mut OsRng)
        };
        let exchange = ExchangeSecret::generate(&mut OsRng);
        let rotation = Rotation {
            old: old.node_id(),
            new: identity.node_id(),
            exchange_key: exchange.public(),
            at: now(),
        };
        let statement = match rotation.sign(old, &identity) {
            Ok(s) => s,
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return;
            }
        };
        self.rotating = true;
        let dir = self.dir.clone();
        let tx = self.internal_tx.clone();
        self.writes.spawn(async move {
            let written = tokio::task::spawn_blocking(move || {
                let result = dir.rotate_keys(&identity, &exchange, &statement);
                (identity, exchange, statement, result)
            })
            .await;
            let Ok((identity, exchange, statement, result)) = written else {
                let _ = reply.send(Err(Error::ShuttingDown));
                return;
            };
            let _ = tx
                .send(Internal::KeysRotated(Box::new(Rotated {
                    identity,
                    exchange,
                    statement,
                    result,
                    reply,
                })))
                .await;
        });
    }

    /// The new keys are on disk: use them from now on, tell the peers, move the groups this
    /// node owns, and close the connections made under the old key once the statement had
    /// time to reach the other side.
    pub(super) fn on_keys_rotated(&mut self, rotated: Rotated) {
        self.rotating = false;
        let Rotated {
            identity,
            exchange,
            statement,
            result,
            reply,
        } = rotated;
        if let Err(e) = result {
            let _ = reply.send(Err(e));
            return;
        }
        let old = self.me;
        let new = identity.node_id();
        if let Err(e) = self.trust.take_rotation(&statement) {
            warn!(error = %e, "this node's own rotation statement is not taken");
        }
        let advertised = super::launch::advertised_address(&self.config, self.quic_addr);
        let descriptor = Descriptor {
            node: new,
            name: self.name.clone(),
            addresses: vec![advertised],
            exchange_key: exchange.public(),
            valid_from: now(),
            valid_until: now().plus_millis(365 * 24 * 3600 * 1000),
        }
        .sign(&identity)
        .and_then(|d| d.to_bytes());
        let descriptor = match descriptor {
            Ok(d) => d,
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return;
            }
        };
        if new != old {
            if let Err(e) = self.transport.set_identity(identity.signing_key()) {
                let _ = reply.send(Err(e.into()));
                return;
            }
        }
        let engine_identity = IdentityKey::from_seed(&identity.seed());
        self.engine
            .rotate_keys(engine_identity, exchange, descriptor);
        self.me = new;
        self.engine.set_policy(self.trust.policy());
        self.spread(
            None,
            &Frame::Rotation {
                statements: vec![statement],
            },
        );
        let moved = self.rekey_own_groups();
        info!(old = %old.short(), new = %new.short(), groups = moved, "keys rotated");
        if new != old {
            // Dialers know this node by its old id (it decides which of two simultaneous
            // connections stays): start them again.
            let peers: Vec<NodeId> = self.peers.entries.keys().copied().collect();
            for peer in peers {
                self.admit(peer);
            }
            let stale: Vec<(NodeId, u64)> =
                self.peers.conns.iter().map(|(p, c)| (*p, c.id)).collect();
            let tx = self.internal_tx.clone();
            self.writes.spawn(async move {
                tokio::time::sleep(ROTATION_CLOSE_DELAY).await;
                let _ = tx.send(Internal::CloseRotated(stale)).await;
            });
        }
        let _ = reply.send(Ok(RotatedView {
            old_node_id: old.to_string(),
            node_id: new.to_string(),
            groups_moved: moved,
        }));
    }

    /// Moves the groups this node owns under a previous key, or with a previous exchange key,
    /// to its current keys. Returns how many.
    fn rekey_own_groups(&mut self) -> usize {
        let proposals = self.engine.propose_own_rekeys(now(), &mut OsRng);
        let mut moved = 0;
        for (gid, seq, event) in proposals {
            match event {
                Ok(event) => {
                    moved += 1;
                    self.store_controls_in_order(gid, vec![(seq, event)]);
                }
                Err(e) => {
                    warn!(group = %gid.short(), error = %e, "cannot move an own group to the new keys")
                }
            }
        }
        moved
    }

    // ----- time ---------------------------------------------------------------------------------

    /// Once a second: roster expiry (warned about once per change, and peers no longer admitted
    /// past the grace period), and timed key rotations of owned groups.
    pub(super) fn federation_tick(&mut self) {
        let now = now();
        let expiry = self.trust.expiry(now);
        if self.expiry_logged != Some(expiry) {
            match expiry {
                Expiry::Expiring(until) => warn!(
                    valid_until = %crate::views::rfc3339(until.0),
                    "the federation roster expires soon: ask the authority for a new one"
                ),
                Expiry::Expired(until) => warn!(
                    valid_until = %crate::views::rfc3339(until.0),
                    grace_ms = self.config.federation.expiry_grace_ms,
                    "the federation roster has expired: peers known only through it are not admitted again once the grace period is over"
                ),
                Expiry::Valid | Expiry::None => {}
            }
            self.expiry_logged = Some(expiry);
        }
        if matches!(expiry, Expiry::Expiring(_) | Expiry::Expired(_)) {
            self.refresh_admission();
        }
        self.rotate_due_groups(now);
    }

    /// Opens a new epoch in every owned group whose current one is older than
    /// `groups.rotate_after`.
    fn rotate_due_groups(&mut self, now: liaison_protocol::Timestamp) {
        let Some(after) = self.rotate_after else {
            return;
        };
        let after = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        let me = self.me;
        let due: Vec<GroupId> = self
            .engine
            .groups()
            .filter(|g| g.owner() == me && !self.quiet_pending.contains(&g.id()))
            .filter(|g| {
                g.opened_at(g.epoch())
                    .is_some_and(|at| at.plus_millis(after) <= now)
            })
            .map(|g| g.id())
            .collect();
        for gid in due {
            info!(group = %gid.short(), "rotating the group key (groups.rotate_after)");
            self.quiet_pending.insert(gid);
            self.propose_quiet(gid, vec![Change::Rotate]);
        }
    }

    // ----- status ---------------------------------------------------------------------------

    pub(super) fn roster_status(&self) -> Vec<RosterStatus> {
        self.trust
            .views(&self.me, now())
            .into_iter()
            .map(|v| RosterStatus {
                authority: v.authority,
                federation: v.federation,
                version: v.version,
                valid_until: v.valid_until,
                state: v.state,
                entries: v.entries.len(),
                revoked: v.revocations.len(),
            })
            .collect()
    }

    pub(super) fn roster_warning(&self) -> Option<String> {
        match self.trust.expiry(now()) {
            Expiry::Expiring(until) => Some(format!(
                "the federation roster expires at {}: ask the authority for a new one",
                crate::views::rfc3339(until.0)
            )),
            Expiry::Expired(until) => Some(format!(
                "the federation roster expired at {}; peers known only through it are not admitted again after {} ms of grace",
                crate::views::rfc3339(until.0),
                self.config.federation.expiry_grace_ms
            )),
            Expiry::Valid | Expiry::None => None,
        }
    }

    /// Groups with a change of this node's own making waiting to be stored.
    pub(super) fn quiet_done(&mut self, group: &GroupId) {
        self.quiet_pending.remove(group);
    }
}
