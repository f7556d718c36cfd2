//! What officer queries need from the actor, published as one immutable value.
//!
//! The actor owns the sync engine, the trust view, the peer table and the quarantine set;
//! queries run beside it and must not wait for it. So the actor publishes a [`Snapshot`] of
//! what a view needs (group states, node names, revocations, quarantines, this node's id and
//! name) and replaces it whenever any of those changes: [`Actor::snapshot`] compares a
//! fingerprint of them with the last one published and publishes afresh when it moved. The
//! loop calls it at the end of every turn, and the actor's own views call it before they
//! read, so no change can be missed by forgetting to publish.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use liaison_protocol::message::Header;
use liaison_protocol::{GroupId, GroupState, MessageId, NodeId, Timestamp};
use tokio::sync::watch;

use super::super::Actor;
use crate::accounts::Principal;
use crate::error::{Error, Result};
use crate::views::rfc3339;

/// A quarantine in force, as views need it.
#[derive(Debug, Clone)]
pub(crate) struct Quarantine {
    /// When it was set, milliseconds since the Unix epoch.
    pub(crate) at_ms: u64,
    /// Why, in the admin's words.
    pub(crate) reason: String,
}

/// What views need from the actor at one moment (see the module docs).
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// This node's id.
    pub(crate) me: NodeId,
    /// This node's name.
    pub(crate) name: String,
    /// Every group this node holds.
    pub(crate) groups: BTreeMap<GroupId, GroupState>,
    /// Names of pinned peers.
    pub(crate) peer_names: HashMap<NodeId, String>,
    /// Revoked nodes, from when.
    pub(crate) revoked: HashMap<NodeId, Timestamp>,
    /// Messages the admin quarantined.
    pub(crate) quarantined: HashMap<MessageId, Quarantine>,
}

/// The actor's end of the published snapshot.
#[derive(Debug)]
pub(crate) struct Publisher {
    tx: watch::Sender<Arc<Snapshot>>,
    fingerprint: std::cell::Cell<Option<u64>>,
}

impl Publisher {
    /// A publisher with an empty snapshot, and the receiving end for the read model.
    pub(crate) fn new(me: NodeId, name: String) -> (Publisher, watch::Receiver<Arc<Snapshot>>) {
        let empty = Snapshot {
            me,
            name,
            groups: BTreeMap::new(),
            peer_names: HashMap::new(),
            revoked: HashMap::new(),
            quarantined: HashMap::new(),
        };
        let (tx, rx) = watch::channel(Arc::new(empty));
        (
            Publisher {
                tx,
                fingerprint: std::cell::Cell::new(None),
            },
            rx,
        )
    }
}

impl Actor {
    /// The snapshot of what views need, published afresh first if anything in it changed
    /// since the last one (see the module docs).
    pub(in crate::node) fn snapshot(&self) -> Arc<Snapshot> {
        let fingerprint = self.snapshot_fingerprint();
        if self.reads.fingerprint.get() != Some(fingerprint) {
            self.reads.fingerprint.set(Some(fingerprint));
            self.reads.tx.send_replace(Arc::new(self.take_snapshot()));
        }
        self.reads.tx.borrow().clone()
    }

    /// A hash of everything [`Snapshot`] holds that can change: cheap (no group state is
    /// cloned), computed at every loop turn.
    fn snapshot_fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.me.hash(&mut h);
        self.name.hash(&mut h);
        for g in self.engine.groups() {
            (g.id(), g.seq(), g.epoch()).hash(&mut h);
        }
        for (node, p) in &self.peers.entries {
            (node, &p.record.name).hash(&mut h);
        }
        for (node, r) in self.trust.view().revocations() {
            (node, r.at).hash(&mut h);
        }
        // The quarantine set in any order: a sum of the hashes of its entries.
        let mut quarantined = 0u64;
        for (id, q) in &self.quarantined {
            let mut one = DefaultHasher::new();
            (id, q.at_ms).hash(&mut one);
            quarantined = quarantined.wrapping_add(one.finish());
        }
        (self.quarantined.len(), quarantined).hash(&mut h);
        h.finish()
    }

    fn take_snapshot(&self) -> Snapshot {
        Snapshot {
            me: self.me,
            name: self.name.clone(),
            groups: self.engine.groups().map(|g| (g.id(), g.clone())).collect(),
            peer_names: self
                .peers
                .entries
                .iter()
                .map(|(node, p)| (*node, p.record.name.clone()))
                .collect(),
            revoked: self
                .trust
                .view()
                .revocations()
                .iter()
                .map(|(node, r)| (*node, r.at))
                .collect(),
            quarantined: self
                .quarantined
                .iter()
                .map(|(id, q)| {
                    (
                        *id,
                        Quarantine {
                            at_ms: q.at_ms,
                            reason: q.reason.clone(),
                        },
                    )
                })
                .collect(),
        }
    }
}

impl Snapshot {
    /// The state of a group this node holds.
    pub(crate) fn group(&self, id: &GroupId) -> Option<&GroupState> {
        self.groups.get(id)
    }

    /// The groups `who` may see.
    pub(crate) fn visible(&self, who: &Principal) -> Vec<GroupId> {
        self.groups
            .keys()
            .filter(|g| who.access(g).is_some())
            .copied()
            .collect()
    }

    /// A group `who` may see, by id or name; any other group answers exactly like a group
    /// that does not exist, so that its existence is not revealed.
    pub(crate) fn visible_group(&self, who: &Principal, sel: &str) -> Result<GroupId> {
        let unknown = || {
            Error::NotFound(format!(
                "unknown group {sel:?}: `liaison group list` shows the groups"
            ))
        };
        if let Ok(id) = sel.parse::<GroupId>() {
            if self.groups.contains_key(&id) {
                return who.access(&id).map(|_| id).ok_or_else(unknown);
            }
        }
        let matches: Vec<GroupId> = self
            .groups
            .values()
            .filter(|g| g.name() == sel)
            .map(GroupState::id)
            .collect();
        match matches.as_slice() {
            [one] if who.access(one).is_some() => Ok(*one),
            [] | [_] => Err(unknown()),
            _ if *who != Principal::Admin => Err(unknown()),
            many => Err(Error::Invalid(format!(
                "group name {sel:?} is ambiguous; use one of the ids {}",
                many.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// A node's name: this node's, a pinned peer's, or the name it had as a member of
    /// `group`; its short id otherwise.
    pub(crate) fn node_name(&self, node: &NodeId, group: Option<&GroupId>) -> String {
        if *node == self.me {
            return self.name.clone();
        }
        if let Some(name) = self.peer_names.get(node) {
            return name.clone();
        }
        if let Some(state) = group.and_then(|g| self.groups.get(g)) {
            for epoch in (1..=state.epoch()).rev() {
                if let Some(m) = state.members_at(epoch).and_then(|m| m.get(node)) {
                    return m.name.clone();
                }
            }
        }
        node.short()
    }

    /// Whether a stored message is withheld from every view: it was taken before this node
    /// learned that its author was removed, beyond the cut-off the owner recorded (no member
    /// keeps it), or that its author was revoked from a time at or before its creation.
    pub(crate) fn withheld(&self, state: &GroupState, header: &Header) -> bool {
        state.beyond_cutoff(&header.author, header.epoch, header.seq)
            || self
                .revoked
                .get(&header.author)
                .is_some_and(|at| header.created_at >= *at)
    }

    /// Refuses a view of `id` if it is quarantined: the admin learns why, anyone else that no
    /// such message is here.
    pub(crate) fn check_quarantine(&self, who: &Principal, id: &MessageId) -> Result<()> {
        match self.quarantined.get(id) {
            None => Ok(()),
            Some(q) if *who == Principal::Admin => Err(Error::NotFound(format!(
                "message {id} is quarantined on this node since {} ({}); `liaison quarantine release {id}` shows it again",
                rfc3339(q.at_ms),
                q.reason
            ))),
            Some(_) => Err(Error::NotFound(format!("no message {id} on this node"))),
        }
    }
}
