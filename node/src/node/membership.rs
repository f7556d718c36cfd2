//! Membership changes made here: creating a group, adding and removing members (this node as
//! owner), storing the signed control event before the engine commits it, and the group views
//! and name lookups these need.

use liaison_protocol::group::Change;
use liaison_protocol::{GroupId, NodeId, Role};
use rand_core::OsRng;
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::clock::now;
use crate::error::{Error, Result};
use crate::views::{GroupView, MemberView, RemovedView};

use super::command::{ControlReply, Internal};
use super::Actor;

impl Actor {
    /// A current member of `group` by node id or member name.
    pub(super) fn resolve_member(&self, group: &GroupId, sel: &str) -> Option<NodeId> {
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

    pub(super) fn resolve_group(&self, sel: &str) -> Result<GroupId> {
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

    pub(super) fn node_name(&self, node: &NodeId, group: Option<&GroupId>) -> String {
        if *node == self.me {
            return self.name.clone();
        }
        if let Some(p) = self.peers.entries.get(node) {
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

    pub(super) fn group_view(&self, id: &GroupId) -> Result<GroupView> {
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

    pub(super) fn create_group(&mut self, name: String, reply: oneshot::Sender<Result<GroupId>>) {
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

    pub(super) fn change_member(
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
    pub(super) fn unreachable_warning(&self, node: &NodeId, name: &str) -> Option<String> {
        let dialled = self
            .peers
            .entries
            .get(node)
            .is_some_and(|p| p.blocked.is_none() && !p.record.address.is_empty());
        if dialled || self.peers.conns.contains_key(node) {
            return None;
        }
        Some(format!(
            "{name} ({}) is not a peer of this node and not connected to it: it receives the \
             group's messages only if a member it is connected to passes them on, which this \
             node cannot see. Pin it (`liaison peer add`) so that this node reaches it itself",
            node.short()
        ))
    }

    pub(super) fn store_control(
        &mut self,
        gid: GroupId,
        seq: u64,
        event: Vec<u8>,
        reply: ControlReply,
    ) {
        self.pending_writes += 1;
        let store = self.store.clone();
        let tx = self.internal_tx.clone();
        self.writes.spawn(async move {
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

    /// A control event of this node's making was written (or failed): the engine commits it,
    /// and whoever asked hears the outcome.
    pub(super) fn on_control_stored(
        &mut self,
        event: Vec<u8>,
        result: Result<()>,
        reply: ControlReply,
    ) {
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
}
