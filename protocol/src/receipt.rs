//! Delivery receipts: a receiving node's signed statement that it durably holds messages.
//!
//! One receipt covers every message of one group that a node stored in one write (up to
//! [`MAX_RECEIPT_MESSAGES`]), so a node signs — and its peer verifies — one signature per batch,
//! not one per message. A receipt names only messages of its group, so forwarding it to an
//! author reveals nothing about other groups.

use serde::{Deserialize, Serialize};

use crate::codec::{self, MAX_RECEIPT_LEN};
use crate::error::{DecodeError, Rejection, UsageError};
use crate::group::GroupId;
use crate::identity::{IdentityKey, NodeId, Timestamp};
use crate::message::MessageId;

/// Domain-separation prefix of receipt signatures.
pub const RECEIPT_DOMAIN: &[u8] = b"liaison/v1/receipt\0";

/// Most messages one receipt names.
pub const MAX_RECEIPT_MESSAGES: usize = 1024;

/// The signed statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The group of every message named.
    pub group: GroupId,
    /// The node that holds them.
    pub receiver: NodeId,
    /// When the last of them was durably stored there.
    pub stored_at: Timestamp,
    /// The messages: 1 to [`MAX_RECEIPT_MESSAGES`] ids, strictly ascending (so each once).
    pub messages: Vec<MessageId>,
}

/// A receipt with its signature, kept as the exact bytes signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedReceipt {
    /// The [`Receipt`], encoded without the version byte.
    #[serde(with = "crate::codec::bytes")]
    pub body: Vec<u8>,
    /// ed25519 signature by `receiver` over [`RECEIPT_DOMAIN`] `||` body.
    #[serde(with = "crate::codec::bytes64")]
    pub signature: [u8; 64],
}

impl Receipt {
    /// Signs a receipt for `messages` of `group` as `receiver`, returning the encoded bytes.
    /// The ids are sorted and deduplicated; there must be 1 to [`MAX_RECEIPT_MESSAGES`] of them.
    pub fn sign(
        receiver: &IdentityKey,
        group: GroupId,
        messages: &[MessageId],
        stored_at: Timestamp,
    ) -> Result<Vec<u8>, UsageError> {
        let mut messages = messages.to_vec();
        messages.sort_unstable();
        messages.dedup();
        if messages.is_empty() || messages.len() > MAX_RECEIPT_MESSAGES {
            return Err(UsageError::Invalid {
                field: "receipt messages",
                reason: format!(
                    "{} ids; a receipt names 1 to {MAX_RECEIPT_MESSAGES}",
                    messages.len()
                ),
            });
        }
        let receipt = Receipt {
            group,
            receiver: receiver.node_id(),
            stored_at,
            messages,
        };
        let body = codec::encode_bare(&receipt)?;
        let signature = receiver.sign(RECEIPT_DOMAIN, &body);
        codec::encode(&SignedReceipt { body, signature })
    }

    /// Decodes a receipt, checks its limits and that its ids are strictly ascending, then
    /// verifies it against the receiver it names.
    pub fn verify(bytes: &[u8]) -> Result<Receipt, Rejection> {
        let signed: SignedReceipt = codec::decode(bytes, MAX_RECEIPT_LEN)?;
        let receipt: Receipt = codec::decode_bare(&signed.body, MAX_RECEIPT_LEN)?;
        if receipt.messages.is_empty() || receipt.messages.len() > MAX_RECEIPT_MESSAGES {
            return Err(invalid("names no message, or too many"));
        }
        if receipt.messages.windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid("message ids not strictly ascending"));
        }
        receipt
            .receiver
            .verify(RECEIPT_DOMAIN, &signed.body, &signed.signature, "receipt")?;
        Ok(receipt)
    }

    /// Whether the receipt names `message` (its ids are sorted).
    pub fn covers(&self, message: &MessageId) -> bool {
        self.messages.binary_search(message).is_ok()
    }
}

fn invalid(reason: &'static str) -> Rejection {
    Rejection::Decode(DecodeError::InvalidField {
        field: "receipt messages",
        reason,
    })
}
