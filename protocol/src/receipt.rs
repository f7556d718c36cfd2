//! Delivery receipts: a receiving node's signed statement that it durably holds a message.

use serde::{Deserialize, Serialize};

use crate::codec::{self, MAX_RECEIPT_LEN};
use crate::error::{Rejection, UsageError};
use crate::identity::{IdentityKey, NodeId, Timestamp};
use crate::message::MessageId;

/// Domain-separation prefix of receipt signatures.
pub const RECEIPT_DOMAIN: &[u8] = b"liaison/v1/receipt\0";

/// The signed statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The message received.
    pub message: MessageId,
    /// The node that holds it.
    pub receiver: NodeId,
    /// When it was durably stored there.
    pub stored_at: Timestamp,
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
    /// Signs a receipt for `message` as `receiver`, returning the encoded bytes.
    pub fn sign(
        receiver: &IdentityKey,
        message: MessageId,
        stored_at: Timestamp,
    ) -> Result<Vec<u8>, UsageError> {
        let receipt = Receipt {
            message,
            receiver: receiver.node_id(),
            stored_at,
        };
        let body = codec::encode_bare(&receipt)?;
        let signature = receiver.sign(RECEIPT_DOMAIN, &body);
        codec::encode(&SignedReceipt { body, signature })
    }

    /// Decodes and verifies a receipt against the receiver it names.
    pub fn verify(bytes: &[u8]) -> Result<Receipt, Rejection> {
        let signed: SignedReceipt = codec::decode(bytes, MAX_RECEIPT_LEN)?;
        let receipt: Receipt = codec::decode_bare(&signed.body, MAX_RECEIPT_LEN)?;
        receipt
            .receiver
            .verify(RECEIPT_DOMAIN, &signed.body, &signed.signature, "receipt")?;
        Ok(receipt)
    }
}
