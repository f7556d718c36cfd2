//! The node proves to its CLI who it is before the CLI sends a token.
//!
//! The CLI finds its node's API address in the data directory (`runtime.json`, or the config).
//! Once the node has stopped, or was killed and left a stale `runtime.json`, any local process
//! may hold that port; a CLI that simply sent its request would hand that process the admin
//! token. So the CLI first sends a fresh random challenge to `GET /v1/identity` (no token) and
//! checks the answer: the node's signature, by the identity key of the data directory, over
//! [`DOMAIN`] followed by the challenge. Only then does it send its token.
//!
//! The domain keeps these signatures apart from every signature of the wire protocol (each of
//! which starts with a domain of its own, `liaison/v1/...\0`).

use ed25519_dalek::Signer;
use liaison_protocol::{IdentityKey, NodeId};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What the signature covers before the challenge.
pub const DOMAIN: &[u8] = b"liaison/v1/api-identity\0";

/// `GET /v1/identity?challenge=HEX`: the node's answer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Proof {
    /// The node id (hex).
    pub node_id: String,
    /// Its signature over [`DOMAIN`] and the challenge (hex).
    pub signature: String,
}

/// The node's proof over `challenge`.
pub fn prove(key: &IdentityKey, challenge: &[u8; 32]) -> Proof {
    let mut input = DOMAIN.to_vec();
    input.extend_from_slice(challenge);
    Proof {
        node_id: key.node_id().to_string(),
        signature: hex::encode(key.signing_key().sign(&input).to_bytes()),
    }
}

/// Checks that `proof` answers `challenge` and comes from `expected`.
pub fn check(expected: &NodeId, challenge: &[u8; 32], proof: &Proof) -> Result<()> {
    let refused = |why: &str| {
        Error::Forbidden(format!(
            "the process answering at the node's API address is not this data directory's node \
             ({why}); no token was sent. Is the node running? A stale runtime.json names a port \
             another process may now hold"
        ))
    };
    if proof.node_id != expected.to_string() {
        return Err(refused("another node id"));
    }
    let mut signature = [0u8; 64];
    hex::decode_to_slice(&proof.signature, &mut signature)
        .map_err(|_| refused("a malformed signature"))?;
    expected
        .verify(DOMAIN, challenge, &signature, "API identity")
        .map_err(|_| refused("a bad signature"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_checks_only_for_its_node_and_challenge() {
        let key = IdentityKey::from_seed(&[7; 32]);
        let other = IdentityKey::from_seed(&[8; 32]);
        let proof = prove(&key, &[1; 32]);
        assert!(check(&key.node_id(), &[1; 32], &proof).is_ok());
        assert!(check(&key.node_id(), &[2; 32], &proof).is_err());
        assert!(check(&other.node_id(), &[1; 32], &proof).is_err());
        let forged = Proof {
            node_id: key.node_id().to_string(),
            ..prove(&other, &[1; 32])
        };
        assert!(check(&key.node_id(), &[1; 32], &forged).is_err());
    }
}
