//! The operator's pins: pinning a peer (`peer add`, `--replace`) and unpinning it, each
//! answered once the change is on disk. What a pin changes in the peer table goes through
//! [`super::peers`] (`insert_peer`, `forget`, `disconnect`).

use liaison_protocol::NodeId;
use tokio::sync::oneshot;
use tracing::info;

use crate::error::{Error, Result};
use crate::views::PeerView;

use super::peers::PeerRecord;
use super::{trust, Actor};

impl Actor {
    /// Pins a peer and answers once the pin is on disk; with `replace`, in place of the pin
    /// that has its name or node id.
    pub(super) fn pin(
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
                self.writes.spawn(async move {
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
    pub(super) fn add_peer(
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
        if let Some(same) = self.peers.entries.get(&node).filter(|p| p.pinned) {
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
            .entries
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
            self.peers.forget(&existing);
            self.disconnect(&existing, 4, b"peer replaced");
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
        let entry = self.peers.entries.get(&node).ok_or(Error::ShuttingDown)?;
        let record =
            serde_json::to_vec(&entry.record).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok((self.peer_view(entry), record, unpinned))
    }

    /// Unpins a peer and drops its connection; returns its id for the store update.
    pub(super) fn remove_peer(&mut self, sel: &str) -> Result<NodeId> {
        let node = self.resolve_peer(sel)?;
        if !self.peers.entries.get(&node).is_some_and(|p| p.pinned) {
            return Err(Error::Conflict(format!(
                "peer {sel:?} is not pinned: a federation roster admits it (refuse it with federation.refuse in node.toml)"
            )));
        }
        if let Some(entry) = self.trust.entries(&self.me).remove(&node) {
            // Still admitted by a roster: it stays a peer, connection and all.
            let record = trust::roster_record(&entry, self.peers.entries.get(&node));
            self.insert_peer(node, record, false, Some(entry));
            info!(peer = %node.short(), "pin removed; the roster still admits the peer");
            return Ok(node);
        }
        self.peers.forget(&node);
        self.disconnect(&node, 4, b"peer removed");
        info!(peer = %node.short(), "peer removed");
        Ok(node)
    }
}
