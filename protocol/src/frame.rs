//! The frames two nodes exchange over a connection.
//!
//! Each frame is one encoded [`Frame`] (version byte first), carried length-prefixed by the
//! transport. Envelopes, control events, receipts and descriptors travel inside frames as the
//! exact bytes their signers produced.

use serde::{Deserialize, Serialize};

use crate::codec::{self, MAX_FRAME_LEN};
use crate::error::{DecodeError, UsageError};
use crate::group::GroupId;
use crate::identity::NodeId;
use crate::message::MessageId;

/// One entry of a version vector: the highest contiguous sequence number held for an author
/// in one epoch of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorEntry {
    /// The author.
    pub author: NodeId,
    /// The epoch.
    pub epoch: u64,
    /// Every seq from 1 to `high` is held.
    pub high: u64,
}

/// "This is what I hold of `group`; send me what I lack."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The group.
    pub group: GroupId,
    /// The last control event applied (0: the group is unknown to the sender).
    pub control_seq: u64,
    /// What the sender holds; absent entries mean 0.
    pub vector: Vec<VectorEntry>,
}

/// An answer to a [`SyncRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// The group.
    pub group: GroupId,
    /// Control events after the requester's `control_seq`, in order.
    #[serde(with = "crate::codec::bytes::list")]
    pub controls: Vec<Vec<u8>>,
    /// Envelopes the requester lacks.
    #[serde(with = "crate::codec::bytes::list")]
    pub envelopes: Vec<Vec<u8>>,
    /// More is available: request again after applying this.
    pub more: bool,
}

/// A frame. Variants are only ever appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// First frame on a connection: the sender's signed descriptor.
    Hello {
        /// An encoded [`crate::identity::SignedDescriptor`].
        #[serde(with = "crate::codec::bytes")]
        descriptor: Vec<u8>,
    },
    /// New envelopes.
    Push {
        /// Encoded envelopes.
        #[serde(with = "crate::codec::bytes::list")]
        envelopes: Vec<Vec<u8>>,
    },
    /// These messages are durably stored by the sender of this frame.
    Ack {
        /// Their ids.
        ids: Vec<MessageId>,
    },
    /// A version vector for one group.
    SyncRequest(SyncRequest),
    /// What the requester lacked.
    SyncResponse(SyncResponse),
    /// Signed delivery receipts.
    Receipts {
        /// Encoded receipts.
        #[serde(with = "crate::codec::bytes::list")]
        receipts: Vec<Vec<u8>>,
    },
    /// New control events of a group, in order.
    Control {
        /// The group.
        group: GroupId,
        /// Encoded signed control events.
        #[serde(with = "crate::codec::bytes::list")]
        events: Vec<Vec<u8>>,
    },
    /// Signed descriptors of other nodes the sender knows, so that a group owner can admit a
    /// node it reaches only through others.
    Directory {
        /// Encoded [`crate::identity::SignedDescriptor`]s.
        #[serde(with = "crate::codec::bytes::list")]
        descriptors: Vec<Vec<u8>>,
    },
    /// Federation rosters the sender holds (WIRE.md §12), so that they travel through the
    /// federation.
    Roster {
        /// Encoded [`crate::roster::SignedRoster`]s.
        #[serde(with = "crate::codec::bytes::list")]
        rosters: Vec<Vec<u8>>,
    },
    /// Key rotation statements the sender holds (WIRE.md §12).
    Rotation {
        /// Encoded [`crate::roster::SignedRotation`]s.
        #[serde(with = "crate::codec::bytes::list")]
        statements: Vec<Vec<u8>>,
    },
}

impl Frame {
    /// Encodes the frame.
    pub fn encode(&self) -> Result<Vec<u8>, UsageError> {
        let bytes = codec::encode(self)?;
        if bytes.len() > MAX_FRAME_LEN {
            return Err(UsageError::Encode(format!(
                "frame of {} bytes exceeds {MAX_FRAME_LEN}",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// Decodes a frame, enforcing [`MAX_FRAME_LEN`].
    pub fn decode(bytes: &[u8]) -> Result<Frame, DecodeError> {
        codec::decode(bytes, MAX_FRAME_LEN)
    }

    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "hello",
            Frame::Push { .. } => "push",
            Frame::Ack { .. } => "ack",
            Frame::SyncRequest(_) => "sync-request",
            Frame::SyncResponse(_) => "sync-response",
            Frame::Receipts { .. } => "receipts",
            Frame::Control { .. } => "control",
            Frame::Directory { .. } => "directory",
            Frame::Roster { .. } => "roster",
            Frame::Rotation { .. } => "rotation",
        }
    }
}

/// Whether a peer id appears in a vector (helper for tests and the node).
pub fn vector_high(vector: &[VectorEntry], author: &NodeId, epoch: u64) -> u64 {
    vector
        .iter()
        .find(|e| e.author == *author && e.epoch == epoch)
        .map_or(0, |e| e.high)
}
