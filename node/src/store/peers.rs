//! Pinned peers: one record per node id, as the node encodes it.

use liaison_protocol::NodeId;

use super::keys::TREE_PEERS;
use super::{Store, StoreError};

impl Store {
    /// Stores (or replaces) the record of peer `node` and waits until it is
    /// durable.
    pub async fn put_peer(&self, node: &NodeId, record: &[u8]) -> Result<(), StoreError> {
        self.check_writable()?;
        let engine = self.engine()?;
        engine
            .peers
            .insert(node.as_bytes(), record)
            .map_err(|e| engine.engine("writing a peer record", e))?;
        self.wait_durable(self.note_written(true)).await
    }

    /// All peer records as `(node, record)`, ascending by node id.
    pub fn peers(&self) -> Result<Vec<(NodeId, Vec<u8>)>, StoreError> {
        let engine = self.engine()?;
        let mut out = Vec::new();
        for item in engine.peers.iter() {
            let (k, v) = item.map_err(|e| engine.engine("reading peer records", e))?;
            let node = NodeId::from_bytes(engine.array(TREE_PEERS, &k)?).map_err(|_| {
                engine.corrupt(
                    TREE_PEERS,
                    format!("key {} is not a node id", hex::encode(&k)),
                )
            })?;
            out.push((node, v.to_vec()));
        }
        Ok(out)
    }

    /// Removes peer `node` and waits until the removal is durable. Returns
    /// whether the peer was present.
    pub async fn remove_peer(&self, node: &NodeId) -> Result<bool, StoreError> {
        self.check_writable()?;
        let engine = self.engine()?;
        let old = engine
            .peers
            .remove(node.as_bytes())
            .map_err(|e| engine.engine("removing a peer record", e))?;
        self.wait_durable(self.note_written(true)).await?;
        Ok(old.is_some())
    }
}
