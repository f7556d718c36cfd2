//! Signed checkpoints of the audit chain's head.
//!
//! The hash chain shows a record altered, inserted or removed, unless whoever changed it also
//! recomputed every later hash, which anyone who can write the store can do. A checkpoint
//! closes that gap: the node signs, with its identity key, the head of the chain (the last
//! record's number and hash, and the time), and the checkpoint is kept where the store's
//! writer cannot change it. `liaison audit verify --checkpoint FILE` then checks that record
//! `seq` still has the signed hash: a rewritten history before it cannot match without the
//! node's key.
//!
//! Where checkpoints go:
//!
//! - on demand, `liaison audit checkpoint --out FILE` (`POST /v1/audit/checkpoint`), to keep
//!   on another machine, in a ticket, with a colleague;
//! - every [`INTERVAL`] that the log grew, as a line of the node's log (`audit checkpoint`,
//!   with the signed fields): shipped off the host (journald remote, syslog), the lines are
//!   checkpoints too.
//!
//! The signature covers [`DOMAIN`], then the node id (32 bytes), `seq` (8 bytes, big endian),
//! the record's hash (32 bytes) and `at_ms` (8 bytes, big endian). A checkpoint is checked
//! against the node's current id: one signed before a key rotation is refused as another
//! node's.

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::Signer;
use liaison_protocol::{IdentityKey, NodeId};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::read::Anchor;
use super::AuditLog;
use crate::datadir::DataDir;
use crate::error::{Error, Result};

/// What the signature covers before the signed fields.
pub const DOMAIN: &[u8] = b"liaison/v1/audit-checkpoint\0";

/// How often the node signs the head, if the log grew since the last time.
pub const INTERVAL: Duration = Duration::from_secs(3600);

/// A signed head of the audit chain, as `liaison audit checkpoint` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Checkpoint {
    /// The signing node's id (hex).
    pub node_id: String,
    /// The number of the chain's last record then.
    pub seq: u64,
    /// That record's hash (hex).
    pub hash: String,
    /// When it was signed, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The node's signature (hex; see the module documentation).
    pub signature: String,
}

fn signed(node: &NodeId, seq: u64, hash: &[u8; 32], at_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(DOMAIN.len() + 80);
    out.extend_from_slice(DOMAIN);
    out.extend_from_slice(node.as_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(hash);
    out.extend_from_slice(&at_ms.to_be_bytes());
    out
}

impl Checkpoint {
    /// `key`'s checkpoint of record `seq` with hash `hash` at `at_ms`.
    pub fn sign(key: &IdentityKey, seq: u64, hash: &[u8; 32], at_ms: u64) -> Checkpoint {
        let node = key.node_id();
        let signature = key.signing_key().sign(&signed(&node, seq, hash, at_ms));
        Checkpoint {
            node_id: node.to_string(),
            seq,
            hash: hex::encode(hash),
            at_ms,
            signature: hex::encode(signature.to_bytes()),
        }
    }

    /// Checks that `node` signed this checkpoint; what the chain must then hold.
    pub fn check(&self, node: &NodeId) -> Result<Anchor> {
        let bad = |why: &str| Error::Invalid(format!("audit checkpoint refused: {why}"));
        if self.node_id != node.to_string() {
            return Err(bad(&format!(
                "it was signed by node {}, and this node is {node} (a checkpoint from before a \
                 key rotation names the old key)",
                self.node_id
            )));
        }
        if self.seq == 0 {
            return Err(bad("it names record 0; records start at 1"));
        }
        let mut hash = [0u8; 32];
        hex::decode_to_slice(&self.hash, &mut hash)
            .map_err(|_| bad("its hash is not 64 hex digits"))?;
        let mut signature = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut signature)
            .map_err(|_| bad("its signature is not 128 hex digits"))?;
        let message = signed(node, self.seq, &hash, self.at_ms);
        node.verify(&[], &message, &signature, "audit checkpoint")
            .map_err(|_| bad("its signature does not verify (altered, or not this node's)"))?;
        Ok(Anchor {
            seq: self.seq,
            hash,
        })
    }
}

/// Signs the head of `log` now with `key`; `None` while the log is empty.
pub async fn take(log: &AuditLog, key: &IdentityKey) -> Option<Checkpoint> {
    let (seq, hash) = log.head().await;
    (seq > 0).then(|| Checkpoint::sign(key, seq, &hash, crate::clock::now().0))
}

/// Signs the head every [`INTERVAL`] that the log grew, and logs the checkpoint, until
/// `shutdown`.
pub async fn run(log: Arc<AuditLog>, dir: DataDir, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last = 0;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let dir = dir.clone();
        // Read afresh each time: `liaison key rotate` replaces it.
        let key = match tokio::task::spawn_blocking(move || dir.identity_key()).await {
            Ok(Ok(key)) => key,
            Ok(Err(e)) => {
                warn!(error = %e, "cannot sign an audit checkpoint");
                continue;
            }
            Err(_) => return,
        };
        match take(&log, &key).await {
            Some(c) if c.seq != last => {
                last = c.seq;
                info!(
                    node_id = %c.node_id,
                    seq = c.seq,
                    hash = %c.hash,
                    at_ms = c.at_ms,
                    signature = %c.signature,
                    "audit checkpoint"
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_checks_only_for_its_node_and_unaltered() {
        let key = IdentityKey::from_seed(&[7; 32]);
        let other = IdentityKey::from_seed(&[8; 32]);
        let c = Checkpoint::sign(&key, 12, &[3; 32], 1_000);
        assert_eq!(
            c.check(&key.node_id()).expect("checks"),
            Anchor {
                seq: 12,
                hash: [3; 32]
            }
        );
        assert!(c.check(&other.node_id()).is_err());
        for altered in [
            Checkpoint {
                seq: 11,
                ..c.clone()
            },
            Checkpoint {
                hash: hex::encode([4; 32]),
                ..c.clone()
            },
            Checkpoint {
                at_ms: 1_001,
                ..c.clone()
            },
            Checkpoint {
                signature: Checkpoint::sign(&other, 12, &[3; 32], 1_000).signature,
                ..c.clone()
            },
        ] {
            assert!(altered.check(&key.node_id()).is_err(), "{altered:?}");
        }
    }
}
